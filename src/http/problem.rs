//! RFC 9457 problem details for every failure, and the one place errors are logged.

use actix_web::{
    HttpResponse, ResponseError,
    body::EitherBody,
    dev::ServiceResponse,
    http::{StatusCode, header},
    middleware::ErrorHandlerResponse,
};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

use crate::error::AppError;

/// A problem-details body. `errors` names each invalid field on 422.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<BTreeMap<String, String>>,
}

pub fn problem_response(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> HttpResponse {
    respond(
        status,
        Problem {
            kind: type_uri(slug),
            title: title.into(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: None,
        },
    )
}

fn respond(status: StatusCode, problem: Problem) -> HttpResponse {
    let mut builder = HttpResponse::build(status);
    builder.content_type("application/problem+json");
    if status == StatusCode::UNAUTHORIZED {
        builder.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
    }
    builder.json(problem)
}

fn type_uri(slug: &str) -> String {
    format!("urn:gridwhistle:problem:{slug}")
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            AppError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) | AppError::InternalCause { .. } | AppError::Database(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let (slug, title) = match self {
            AppError::BadRequest(_) => ("bad-request", "Malformed request"),
            AppError::Validation(_) => ("validation", "Invalid fields"),
            AppError::Unauthenticated(_) => ("unauthenticated", "Authentication required"),
            AppError::Forbidden(_) => ("forbidden", "Not allowed"),
            AppError::NotFound(_) => ("not-found", "Not found"),
            AppError::Conflict(_) => ("conflict", "Conflict"),
            AppError::PreconditionFailed(_) => ("precondition-failed", "Stale version"),
            AppError::PayloadTooLarge(_) => ("payload-too-large", "Request body too large"),
            AppError::UnsupportedMediaType(_) => ("unsupported-media-type", "Unsupported media type"),
            AppError::TooManyRequests { .. } => ("too-many-requests", "Too many requests"),
            AppError::Unavailable(_) => ("unavailable", "Service busy"),
            AppError::Internal(_) | AppError::InternalCause { .. } | AppError::Database(_) => {
                ("internal", "Internal error")
            }
        };
        let (detail, errors) = match self {
            AppError::Validation(fields) => {
                let names: Vec<&str> = fields.0.keys().map(String::as_str).collect();
                (format!("invalid fields: {}", names.join(", ")), Some(fields.0.clone()))
            }
            AppError::Internal(_) | AppError::InternalCause { .. } | AppError::Database(_) => {
                // Logged once, with the cause chain; the client learns nothing internal.
                tracing::error!(error = %self.chain(), "request failed");
                ("the server could not complete the request; it has been logged".to_owned(), None)
            }
            other => (other.to_string(), None),
        };
        let mut response = respond(
            status,
            Problem { kind: type_uri(slug), title: title.into(), status: status.as_u16(), detail, errors },
        );
        // A busy database (pool exhausted, deadlock, serialization failure) clears within
        // moments; the client is told when to try the same request again.
        let retry_after = match self {
            AppError::TooManyRequests { retry_after_secs, .. } => Some((*retry_after_secs).max(1)),
            AppError::Unavailable(_) => Some(1),
            _ => None,
        };
        if let Some(secs) = retry_after
            && let Ok(value) = header::HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// The router answers a wrong method with an empty 405; give it a problem body too.
pub fn method_not_allowed<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let (req, _) = res.into_parts();
    let response = problem_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        format!("{} is not supported on {}", req.method(), req.path()),
    );
    Ok(ErrorHandlerResponse::Response(ServiceResponse::new(req, response).map_body(|_, body| EitherBody::right(body))))
}

pub async fn not_found(req: actix_web::HttpRequest) -> HttpResponse {
    problem_response(StatusCode::NOT_FOUND, "not-found", "Not found", format!("no resource at {}", req.path()))
}
