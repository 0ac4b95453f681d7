//! `GET /open311/v2/media/{token}.jpg`: the public thumbnail a request's `media_url` names
//! (`open311.publish_media`; see `service::open311_media`). No authentication: the token is
//! the secret. Errors are Open311 error arrays in JSON, like the rest of `/open311/v2`.

use actix_web::{
    HttpRequest, HttpResponse,
    http::{StatusCode, header},
    web,
};
use futures_util::StreamExt;

use super::{Format, answer};
use crate::{
    context::AppContext,
    error::{AppError, AppResult, Refusal},
    service::open311_media,
};

/// Public and cacheable for a day: the bytes behind a token never change, and an erased photo
/// may stay in caches for at most that long.
const CACHE_CONTROL: &str = "public, max-age=86400";

pub async fn thumbnail(req: HttpRequest, ctx: web::Data<AppContext>, token: web::Path<String>) -> HttpResponse {
    let result = serve(&ctx, &req, &token).await;
    answer(&req, Format::Json, result)
}

async fn serve(ctx: &AppContext, req: &HttpRequest, token: &str) -> AppResult<HttpResponse> {
    let thumbnail = open311_media::thumbnail_by_token(ctx, token).await?;
    let etag = format!("\"{}\"", thumbnail.sha256);
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim().trim_start_matches("W/") == etag || t.trim() == "*"));
    if matches {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .insert_header((header::CACHE_CONTROL, CACHE_CONTROL))
            .finish());
    }
    let fetched = ctx.storage.get(&thumbnail.sha256, None).await.map_err(|err| {
        if err.is_not_found() {
            // Erased between the row's read and now, or lost: not there for the client either.
            tracing::warn!(upload_id = %thumbnail.upload_id, "a published thumbnail's stored object is missing");
            AppError::refused(Refusal::NotFound, "未找到该图片", "media not found")
        } else {
            err.into()
        }
    })?;
    let served = fetched.range.clone();
    let stream = fetched.stream.map(|chunk| chunk.map_err(actix_web::error::ErrorInternalServerError));
    Ok(HttpResponse::build(StatusCode::OK)
        .insert_header((header::CONTENT_TYPE, "image/jpeg"))
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, CACHE_CONTROL))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CONTENT_SECURITY_POLICY, "default-src 'none'; sandbox"))
        .no_chunking(served.end - served.start)
        .streaming(stream))
}
