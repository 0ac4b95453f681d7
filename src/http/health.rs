use actix_web::{HttpResponse, http::StatusCode, web};
use sea_orm::ConnectionTrait;
use serde_json::json;

use super::problem::problem_response;
use crate::context::AppContext;

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The database answers: take traffic.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200), (status = 503)))]
pub async fn readyz(ctx: web::Data<AppContext>) -> HttpResponse {
    match ctx.db.execute_unprepared("SELECT 1").await {
        Ok(_) => HttpResponse::Ok().json(json!({"status": "ready", "database": "ok"})),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            problem_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Not ready",
                "the database does not answer",
            )
        }
    }
}
