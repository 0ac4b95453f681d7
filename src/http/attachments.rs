//! Attachments: reading their bytes (whole or a range) and thumbnails, a department's evidence
//! on its dispatch, and how an attachment appears in a ticket.

use std::ops::Range;

use actix_web::{
    HttpRequest, HttpResponse,
    http::{StatusCode, header},
    web,
};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    dto::DispatchOutcome,
    extract::{PathId, Permitted, may},
    problem::Problem,
};
use crate::{
    context::AppContext,
    domain::access::Caller,
    error::{AppError, AppResult, Refusal},
    service::attachments::{self, EvidenceRef, Readable, Rendition},
};

/// A photo or document of a ticket.
#[derive(Debug, Serialize, ToSchema)]
pub struct Attachment {
    pub id: Uuid,
    /// filing, before, after or other
    pub kind: Option<String>,
    pub content_type: String,
    pub size: i64,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub uploaded_by: Uuid,
    pub uploaded_at: DateTime<Utc>,
    /// The dispatch whose evidence it is; `null` for the filing's pictures.
    pub dispatch_id: Option<Uuid>,
    /// Where to read the bytes (`GET`, with the bearer token).
    pub url: String,
    /// A 320 px JPEG; `null` for a PDF.
    pub thumbnail_url: Option<String>,
}

impl From<entities::upload::Model> for Attachment {
    fn from(m: entities::upload::Model) -> Self {
        let url = format!("/api/v1/attachments/{}", m.id);
        let thumbnail_url = m.thumbnail_sha256.as_ref().map(|_| format!("{url}/thumbnail"));
        Self {
            id: m.id,
            kind: m.kind.and_then(|k| serde_json::to_value(k).ok()).and_then(|v| v.as_str().map(str::to_owned)),
            content_type: m.content_type,
            size: m.size,
            width: m.width,
            height: m.height,
            uploaded_by: m.uploaded_by,
            uploaded_at: m.created_at,
            dispatch_id: m.dispatch_id,
            url,
            thumbnail_url,
        }
    }
}

/// A ticket's `attachments`: its uploaded files first, then any metadata-only entries older
/// clients filed.
pub fn ticket_attachments(uploaded: Vec<entities::upload::Model>, metadata: serde_json::Value) -> serde_json::Value {
    let mut items: Vec<serde_json::Value> =
        uploaded.into_iter().filter_map(|m| serde_json::to_value(Attachment::from(m)).ok()).collect();
    if let serde_json::Value::Array(legacy) = metadata {
        items.extend(legacy);
    }
    serde_json::Value::Array(items)
}

/// Read an attachment's bytes.
///
/// Streams the stored file with its content type, `ETag` (its sha256), `Cache-Control: private` and a
/// `Content-Disposition` file name made from the id. Honours a single `Range` (`bytes=a-b`, `bytes=a-`,
/// `bytes=-n`: 206 with `Content-Range`; a range beyond the end is 416); a request for several ranges gets the
/// whole file (200). `If-None-Match` with the ETag answers 304. Who may read it: whoever may read the ticket (department
/// staff: the filing's pictures and their own department's evidence); anyone else gets 404, as for a missing id.
#[utoipa::path(get, path = "/api/v1/attachments/{id}", operation_id = "getAttachment", tag = "attachments",
    params(("id" = uuid::Uuid, Path, description = "the attachment's (upload's) id"),
        ("Range" = Option<String>, Header, description = "one byte range, e.g. `bytes=0-1023`")),
    responses((status = 200, description = "the file", content_type = "application/octet-stream"),
        (status = 206, description = "the requested range", content_type = "application/octet-stream"),
        (status = 304, description = "not modified (`If-None-Match`)"),
        (status = 404, body = Problem),
        (status = 416, body = Problem, description = "the range lies beyond the end of the file")),
    security(("bearer" = [])))]
pub async fn get(
    ctx: web::Data<AppContext>,
    req: HttpRequest,
    PathId(id): PathId,
    caller: Caller,
) -> AppResult<HttpResponse> {
    let readable = attachments::readable(&ctx, &caller, id, Rendition::Original).await?;
    serve(&ctx, &req, readable).await
}

/// Read an image attachment's thumbnail.
///
/// A JPEG at most 320 px on its long side, for lists and slow connections; served like `getAttachment`. A PDF has
/// none (404).
#[utoipa::path(get, path = "/api/v1/attachments/{id}/thumbnail", operation_id = "getAttachmentThumbnail", tag = "attachments",
    params(("id" = uuid::Uuid, Path, description = "the attachment's (upload's) id"),
        ("Range" = Option<String>, Header, description = "one byte range, e.g. `bytes=0-1023`")),
    responses((status = 200, description = "the thumbnail", content_type = "image/jpeg"),
        (status = 206, description = "the requested range", content_type = "image/jpeg"),
        (status = 304, description = "not modified (`If-None-Match`)"),
        (status = 404, body = Problem),
        (status = 416, body = Problem, description = "the range lies beyond the end of the file")),
    security(("bearer" = [])))]
pub async fn thumbnail(
    ctx: web::Data<AppContext>,
    req: HttpRequest,
    PathId(id): PathId,
    caller: Caller,
) -> AppResult<HttpResponse> {
    let readable = attachments::readable(&ctx, &caller, id, Rendition::Thumbnail).await?;
    serve(&ctx, &req, readable).await
}

/// Attach evidence to your department's dispatch.
///
/// `kind` says what it shows: `before` (the problem as found), `after` (the result: categories with
/// `resolve_requires_photo` need one to resolve) or `other`. The upload must be yours and not attached yet
/// (422 on `upload_id` otherwise). The attachment appears in the ticket and its timeline.
#[utoipa::path(post, path = "/api/v1/dispatches/{id}/attachments", operation_id = "attachDispatchEvidence",
    params(("id" = uuid::Uuid, Path, description = "the dispatch id")), tag = "dispatches", request_body = EvidenceRef,
    responses((status = 200, body = DispatchOutcome, description = "attached"), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "the dispatch was cancelled or returned"), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn attach(
    ctx: web::Data<AppContext>,
    PathId(id): PathId,
    Permitted(caller, body, _): Permitted<may::HandleDispatch, EvidenceRef>,
) -> AppResult<HttpResponse> {
    let result = attachments::attach_to_dispatch(&ctx, &caller, id, body).await?;
    let etag = super::tickets::etag(&result.ticket);
    Ok(HttpResponse::Ok().insert_header((header::ETAG, etag)).json(DispatchOutcome::from(result)))
}

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeRequest {
    /// No range, one we do not understand, or several ranges: the whole file.
    Full,
    Partial(Range<u64>),
    Unsatisfiable,
}

/// Parses a single `bytes=` range (RFC 9110 §14.1.2). An invalid header is ignored (the whole
/// file), as the RFC allows; several ranges get the whole file too.
pub fn parse_range(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let number = |s: &str| if s.chars().all(|c| c.is_ascii_digit()) { s.parse::<u64>().ok() } else { None };
    match (first.is_empty(), last.is_empty()) {
        // `-n`: the last n bytes.
        (true, false) => match number(last) {
            Some(0) => RangeRequest::Unsatisfiable,
            Some(n) if size > 0 => RangeRequest::Partial(size.saturating_sub(n)..size),
            Some(_) => RangeRequest::Unsatisfiable,
            None => RangeRequest::Full,
        },
        // `a-`: from a to the end.
        (false, true) => match number(first) {
            Some(a) if a < size => RangeRequest::Partial(a..size),
            Some(_) => RangeRequest::Unsatisfiable,
            None => RangeRequest::Full,
        },
        // `a-b`, inclusive; b past the end means the end.
        (false, false) => match (number(first), number(last)) {
            (Some(a), Some(b)) if a > b => RangeRequest::Full,
            (Some(a), Some(_)) if a >= size => RangeRequest::Unsatisfiable,
            (Some(a), Some(b)) => RangeRequest::Partial(a..b.min(size - 1) + 1),
            _ => RangeRequest::Full,
        },
        (true, true) => RangeRequest::Full,
    }
}

async fn serve(ctx: &AppContext, req: &HttpRequest, readable: Readable) -> AppResult<HttpResponse> {
    let etag = format!("\"{}\"", readable.sha256);
    let header_value = |name: header::HeaderName| req.headers().get(name).and_then(|v| v.to_str().ok());
    if header_value(header::IF_NONE_MATCH)
        .is_some_and(|tags| tags.split(',').any(|t| t.trim().trim_start_matches("W/") == etag || t.trim() == "*"))
    {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .insert_header((header::CACHE_CONTROL, "private"))
            .finish());
    }
    // `If-Range` with another tag: the file changed since the client's part, so all of it.
    let range_header = match header_value(header::IF_RANGE) {
        Some(tag) if tag.trim() != etag => None,
        _ => header_value(header::RANGE),
    };
    let size = readable.size;
    let range = match parse_range(range_header, size) {
        RangeRequest::Full => None,
        RangeRequest::Partial(range) => Some(range),
        RangeRequest::Unsatisfiable => {
            let mut response = super::problem::problem_response(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range-not-satisfiable",
                "Range Not Satisfiable",
                format!("the file has {size} bytes; the requested range lies beyond its end"),
            );
            if let Ok(value) = header::HeaderValue::from_str(&format!("bytes */{size}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return Ok(response);
        }
    };
    let fetched = ctx.storage.get(&readable.sha256, range.clone()).await.map_err(|err| {
        if err.is_not_found() {
            // Erased between the row's read and now, or lost: not there for the client either.
            tracing::warn!(attachment_id = %readable.id, "an attachment's stored object is missing");
            AppError::refused(Refusal::NotFound, "未找到该附件", "attachment not found")
        } else {
            err.into()
        }
    })?;
    let mut builder = HttpResponse::build(if range.is_some() { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK });
    builder
        .insert_header((header::CONTENT_TYPE, readable.content_type.clone()))
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "private"))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::CONTENT_DISPOSITION, format!("inline; filename=\"{}\"", readable.file_name)))
        // A stored PDF or image is never to run script in the API's origin.
        .insert_header((header::CONTENT_SECURITY_POLICY, "default-src 'none'; sandbox"));
    let served = fetched.range.clone();
    if range.is_some() {
        builder.insert_header((
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{size}", served.start, served.end.saturating_sub(1)),
        ));
    }
    let stream = fetched.stream.map(|chunk| chunk.map_err(actix_web::error::ErrorInternalServerError));
    Ok(builder.no_chunking(served.end - served.start).streaming(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeRequest::*;
        assert_eq!(parse_range(None, 100), Full);
        assert_eq!(parse_range(Some("bytes=0-9"), 100), Partial(0..10));
        assert_eq!(parse_range(Some("bytes=90-"), 100), Partial(90..100));
        assert_eq!(parse_range(Some("bytes=-10"), 100), Partial(90..100));
        assert_eq!(parse_range(Some("bytes=-1000"), 100), Partial(0..100));
        assert_eq!(parse_range(Some("bytes=50-1000"), 100), Partial(50..100));
        assert_eq!(parse_range(Some("bytes=100-"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=100-200"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), Full);
        assert_eq!(parse_range(Some("bytes=9-1"), 100), Full);
        assert_eq!(parse_range(Some("items=0-1"), 100), Full);
        assert_eq!(parse_range(Some("bytes=a-b"), 100), Full);
        assert_eq!(parse_range(Some("bytes=+1-2"), 100), Full);
    }
}
