//! `POST /api/v1/uploads`: a photo or PDF as the raw body or as `multipart/form-data` (field
//! `file`), streamed to a temporary file under `uploads.max_bytes`.

use std::{cell::Cell, rc::Rc};

use actix_web::{HttpRequest, HttpResponse, error::PayloadError, http::header, web};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::problem::Problem;
use crate::{
    context::AppContext,
    domain::{
        access::{Caller, Permission},
        validate::Message,
    },
    error::{AppError, AppResult},
    service::{self, uploads},
};

/// A stored upload, ready to attach by its `id`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Upload {
    pub id: Uuid,
    /// image/jpeg, image/png, image/webp or application/pdf — from the file's content.
    pub content_type: String,
    /// Of the stored file: an image is re-encoded without its metadata, so this is not the
    /// size that was sent.
    pub size: i64,
    /// Hex SHA-256 of the stored file (its `ETag` when read).
    pub sha256: String,
    /// Pixels, upright; `null` for a PDF.
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub created_at: DateTime<Utc>,
}

impl From<entities::upload::Model> for Upload {
    fn from(m: entities::upload::Model) -> Self {
        Self {
            id: m.id,
            content_type: m.content_type,
            size: m.size,
            sha256: m.sha256,
            width: m.width,
            height: m.height,
            created_at: m.created_at,
        }
    }
}

/// The `multipart/form-data` form of an upload.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The file; its part's `Content-Type`, when given, must match its content.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Upload a photo or PDF to attach.
///
/// Send the file as the body with its `Content-Type` (image/jpeg, image/png, image/webp or application/pdf), or
/// as `multipart/form-data` with the file in the field `file`. The type is decided by the file's first bytes: a
/// type we do not take, or one that differs from the declared type, is 415. Files larger than `uploads.max_bytes`
/// (default 10 MiB) are 413. Images are decoded under limits (`uploads.max_pixels`, `uploads.max_decode_bytes`; a
/// larger image or decompression bomb is 422, so is a corrupt one), turned upright by their EXIF orientation and
/// re-encoded **without any metadata** (no EXIF, GPS, camera serials); the original bytes are not kept. A 320 px
/// JPEG thumbnail is made. PDFs are kept as sent. Attach the answer's `id` in a filing's `attachments`
/// (`{"upload_id"}`), a resolution's `attachments` or `POST /dispatches/{id}/attachments`; an upload attached to
/// nothing within `uploads.unattached_ttl` (24 h) is deleted. One file per request: a form with two `file` parts
/// is 400; a form larger than `uploads.max_bytes` plus 64 KiB for its other fields is 413. A user may have
/// `uploads.max_concurrent_per_user` (2) uploads in progress at once; the next is 429. Two images are decoded at
/// a time per replica, at most one per user: an upload that waits longer than `uploads.decode_wait` (30 s) for its
/// turn is 503 with `Retry-After`, and nothing is kept.
#[utoipa::path(post, path = "/api/v1/uploads", operation_id = "uploadFile", tag = "attachments",
    request_body(description = "the file, or a multipart form with the file in `file`",
        content(("image/jpeg"), ("image/png"), ("image/webp"), ("application/pdf"), (UploadForm = "multipart/form-data"))),
    responses((status = 201, body = Upload, description = "stored; `Location` names where to read it"),
        (status = 400, body = Problem, description = "the body could not be read, the file is empty, or a form has more than one `file` part"),
        (status = 413, body = Problem, description = "the file exceeds `uploads.max_bytes`, or a form exceeds it by more than 64 KiB"),
        (status = 415, body = Problem, description = "not a JPEG, PNG, WebP or PDF by its content, or not the type declared"),
        (status = 422, body = Problem, description = "an image too large or unreadable (`errors.file`), or no `file` part in a form"),
        (status = 429, body = Problem, description = "you already have `uploads.max_concurrent_per_user` uploads in progress"),
        (status = 503, body = Problem, description = "the image waited longer than `uploads.decode_wait` for the decoder; retry after `Retry-After`")),
    security(("bearer" = [])))]
pub async fn upload(
    ctx: web::Data<AppContext>,
    req: HttpRequest,
    caller: Caller,
    payload: web::Payload,
) -> AppResult<HttpResponse> {
    // The role is checked before a byte of the body is read.
    service::require(&caller, Permission::UploadFile)?;
    // Held until this upload is stored or refused (or its client leaves).
    let _in_progress = uploads::begin(&ctx, &caller)?;
    let max = ctx.settings.uploads.max_bytes;
    let content_type =
        req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let is_form = content_type.to_ascii_lowercase().starts_with("multipart/form-data");
    let declared_length =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if is_form && declared_length.is_some_and(|length| length > max + FORM_ALLOWANCE) {
        return Err(form_too_large(max));
    }
    if !is_form && declared_length.is_some_and(|length| length > max) {
        return Err(uploads::too_large(max));
    }
    let stored = if is_form {
        let (received, declared) = receive_form(&req, payload, max).await?;
        uploads::store(&ctx, &caller, received, declared.as_deref()).await?
    } else {
        if content_type.is_empty() {
            return Err(AppError::refused(
                crate::error::Refusal::UnsupportedMediaType,
                "请用 Content-Type 声明文件类型（image/jpeg、image/png、image/webp 或 application/pdf）",
                "declare the file's type in Content-Type (image/jpeg, image/png, image/webp or application/pdf)",
            ));
        }
        let received = uploads::receive(payload, max).await?;
        uploads::store(&ctx, &caller, received, Some(&content_type)).await?
    };
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/attachments/{}", stored.id)))
        .json(Upload::from(stored)))
}

/// What a form may carry besides its file: the other fields (a phone sends a note or two), the
/// boundaries and the parts' headers.
const FORM_ALLOWANCE: u64 = 64 * 1024;

/// 413 for a form larger than its file may be plus [`FORM_ALLOWANCE`].
fn form_too_large(max_file: u64) -> AppError {
    let mib = max_file as f64 / (1024.0 * 1024.0);
    let allowance = FORM_ALLOWANCE / 1024;
    AppError::refused(
        crate::error::Refusal::PayloadTooLarge,
        format!("表单不能超过文件上限 {mib:.1} MiB 加 {allowance} KiB（其他字段）"),
        format!("the form must be at most the file's {mib:.1} MiB plus {allowance} KiB for its other fields"),
    )
}

/// The `file` part of a `multipart/form-data` body and the type its part declares. The whole
/// body is bounded, not only the file: reading stops at `max_file` + [`FORM_ALLOWANCE`], whatever
/// part it is in (a part we skip is read to its end to reach the next), and the form is 413.
async fn receive_form(
    req: &HttpRequest,
    payload: web::Payload,
    max_file: u64,
) -> AppResult<(uploads::Received, Option<String>)> {
    let bound = max_file + FORM_ALLOWANCE;
    // Set when the bound stops the body: the parser then reports a payload error, which is ours.
    let overflowed = Rc::new(Cell::new(false));
    let mut seen: u64 = 0;
    let bounded = payload.map({
        let overflowed = overflowed.clone();
        move |chunk| {
            let chunk = chunk?;
            seen += chunk.len() as u64;
            if seen > bound {
                overflowed.set(true);
                return Err(PayloadError::Overflow);
            }
            Ok(chunk)
        }
    });
    let mut form = actix_multipart::Multipart::new(req.headers(), bounded);
    let read = async {
        let mut received = None;
        // The whole form is read before anything is stored: a second file must not be
        // dropped silently (the sender would believe both were kept).
        while let Some(field) = form.next().await {
            let field = field.map_err(|e| {
                AppError::refused(
                    crate::error::Refusal::BadRequest,
                    "表单格式有误，无法解析",
                    format!("the form cannot be read: {e}"),
                )
            })?;
            if field.name() != Some("file") {
                continue;
            }
            if received.is_some() {
                return Err(AppError::refused(
                    crate::error::Refusal::BadRequest,
                    "表单中有多个 file 字段：每次只能上传一个文件，请分别上传",
                    "the form has more than one `file` part: upload one file per request",
                ));
            }
            // A part without a type, or labelled as generic bytes, leaves the decision to the content.
            let declared =
                field.content_type().map(|m| m.essence_str().to_owned()).filter(|m| m != "application/octet-stream");
            received = Some((uploads::receive(field, max_file).await?, declared));
        }
        received.ok_or_else(|| {
            AppError::invalid("file", Message::said("表单中缺少文件字段 file", "the form has no `file` part"))
        })
    };
    read.await.map_err(|err| if overflowed.get() { form_too_large(max_file) } else { err })
}
