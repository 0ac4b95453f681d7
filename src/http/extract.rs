//! Request extractors: strict JSON and query strings that name the offending field, the
//! authenticated caller, and ids in paths.

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::{context::AppContext, domain::access::Caller, domain::validate::FieldErrors, error::AppError, service};

/// A JSON body. Malformed JSON is 400; well-formed JSON of the wrong shape (missing or unknown
/// field, wrong type) is 422 naming the field.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<mime::Mime>().ok())
            .is_some_and(|m| m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON));
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            if !is_json {
                return Err(AppError::UnsupportedMediaType("send the body as Content-Type: application/json".into()));
            }
            let bytes = bytes.await.map_err(|e| {
                if e.as_response_error().status_code() == actix_web::http::StatusCode::PAYLOAD_TOO_LARGE {
                    AppError::PayloadTooLarge("the request body exceeds the configured limit".into())
                } else {
                    AppError::BadRequest(format!("could not read the request body: {e}"))
                }
            })?;
            let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
            let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
                let path = err.path().to_string();
                let inner = err.into_inner();
                match inner.classify() {
                    serde_json::error::Category::Data => field_error(&path, &inner.to_string()),
                    _ => AppError::BadRequest(format!("the body is not valid JSON: {inner}")),
                }
            })?;
            deserializer.end().map_err(|e| AppError::BadRequest(format!("the body is not valid JSON: {e}")))?;
            Ok(Json(value))
        })
    }
}

/// Query parameters, strictly: unknown or ill-typed ones are 422 naming the parameter.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let pairs = form_urlencoded::parse(req.query_string().as_bytes());
        let deserializer = serde_urlencoded::Deserializer::new(pairs);
        std::future::ready(
            serde_path_to_error::deserialize(deserializer)
                .map(Query)
                .map_err(|err| field_error(&err.path().to_string(), &err.into_inner().to_string())),
        )
    }
}

/// Names the field even when serde reports it only in the message (missing/unknown field).
fn field_error(path: &str, message: &str) -> AppError {
    let quoted = message.split('`').nth(1).unwrap_or("body");
    let field = if path.is_empty() || path == "." { quoted } else { path };
    AppError::Validation(FieldErrors::single(field, message.to_owned()))
}

/// A UUID path segment; anything else names no resource, so 404.
pub struct PathId(pub Uuid);

impl FromRequest for PathId {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let segment = req.match_info().get("id").unwrap_or_default();
        std::future::ready(
            Uuid::parse_str(segment)
                .map(PathId)
                .map_err(|_| AppError::NotFound(format!("`{segment}` is not an id of this API"))),
        )
    }
}

/// The authenticated caller; 401 without a live bearer token.
impl FromRequest for Caller {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer_token(req);
        let ctx = req.app_data::<web::Data<AppContext>>().cloned();
        let ip = ctx.as_ref().and_then(|ctx| client_ip(req, ctx.settings.security.trust_forwarded_for));
        Box::pin(async move {
            let ctx = ctx.ok_or_else(|| AppError::Internal("application context missing".into()))?;
            let token = token.ok_or_else(|| {
                AppError::Unauthenticated(
                    "send Authorization: Bearer <token>; get one from POST /api/v1/auth/token".into(),
                )
            })?;
            let caller = service::auth::authenticate(&ctx, &token).await?;
            Ok(Caller { ip: ip.map(|ip| ip.to_string()), ..caller })
        })
    }
}

pub fn bearer_token(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

/// `If-Match: "<version>"` on ticket writes. Absent or `*`: no precondition.
pub struct IfMatch(pub Option<i32>);

impl FromRequest for IfMatch {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let parsed = match req.headers().get(header::IF_MATCH) {
            None => Ok(IfMatch(None)),
            Some(value) => {
                let text = value.to_str().unwrap_or_default().trim();
                let tag = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
                if text == "*" {
                    Ok(IfMatch(None))
                } else {
                    tag.parse::<i32>()
                        .map(|v| IfMatch(Some(v)))
                        .map_err(|_| AppError::BadRequest("If-Match must be the ETag of the ticket, like \"3\"".into()))
                }
            }
        };
        std::future::ready(parsed)
    }
}

/// The optional `Idempotency-Key` header of filing.
pub struct IdempotencyKey(pub Option<String>);

impl FromRequest for IdempotencyKey {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let key = match req.headers().get("idempotency-key") {
            None => Ok(None),
            Some(value) => value
                .to_str()
                .map(|v| Some(v.to_owned()))
                .map_err(|_| AppError::invalid("Idempotency-Key", "must be visible ASCII")),
        };
        std::future::ready(key.map(IdempotencyKey))
    }
}

/// The client's address: the peer, or with `security.trust_forwarded_for` the first
/// X-Forwarded-For entry a proxy set.
pub fn client_ip(req: &HttpRequest, trust_forwarded_for: bool) -> Option<std::net::IpAddr> {
    if trust_forwarded_for
        && let Some(forwarded) = req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok())
        && let Some(first) = forwarded.split(',').next().and_then(|ip| ip.trim().parse().ok())
    {
        return Some(first);
    }
    req.peer_addr().map(|addr| addr.ip())
}
