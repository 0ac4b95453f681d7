//! `POST /api/v1/uploads`: a photo or PDF as the raw body or as `multipart/form-data` (field
//! `file`), streamed to a temporary file under `uploads.max_bytes`.

use actix_web::{HttpRequest, HttpResponse, http::header, web};
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
/// is 400. A user may have `uploads.max_concurrent_per_user` (2) uploads in progress at once; the next is 429.
#[utoipa::path(post, path = "/api/v1/uploads", operation_id = "uploadFile", tag = "attachments",
    request_body(description = "the file, or a multipart form with the file in `file`",
        content(("image/jpeg"), ("image/png"), ("image/webp"), ("application/pdf"), (UploadForm = "multipart/form-data"))),
    responses((status = 201, body = Upload, description = "stored; `Location` names where to read it"),
        (status = 400, body = Problem, description = "the body could not be read, the file is empty, or a form has more than one `file` part"),
        (status = 413, body = Problem, description = "the file exceeds `uploads.max_bytes`"),
        (status = 415, body = Problem, description = "not a JPEG, PNG, WebP or PDF by its content, or not the type declared"),
        (status = 422, body = Problem, description = "an image too large or unreadable (`errors.file`), or no `file` part in a form"),
        (status = 429, body = Problem, description = "you already have `uploads.max_concurrent_per_user` uploads in progress")),
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
    let declared_length =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > max) {
        return Err(uploads::too_large(max));
    }
    let content_type =
        req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let stored = if content_type.to_ascii_lowercase().starts_with("multipart/form-data") {
        let mut form = actix_multipart::Multipart::new(req.headers(), payload);
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
            received = Some((uploads::receive(field, max).await?, declared));
        }
        let (received, declared) = received.ok_or_else(|| {
            AppError::invalid("file", Message::said("表单中缺少文件字段 file", "the form has no `file` part"))
        })?;
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
