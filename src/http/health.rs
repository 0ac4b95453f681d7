use actix_web::{HttpResponse, http::StatusCode, web};
use sea_orm::ConnectionTrait;
use serde_json::json;

use super::problem::{Problem, problem_response};
use crate::context::AppContext;

/// The process is up.
///
/// Answers 200 while the process runs, without touching the database: for a liveness probe. No token needed.
#[utoipa::path(get, path = "/healthz", operation_id = "getLiveness", tag = "operations", responses((status = 200, description = "alive")))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The database answers: take traffic.
///
/// For a readiness probe or load balancer: 200 when a query succeeds, 503 (problem document) when the database does
/// not answer. No token needed. `mail` reports the outbox (`pending`, `dead`, `oldest_pending_at`) without
/// affecting readiness.
#[utoipa::path(get, path = "/readyz", operation_id = "getReadiness", tag = "operations", responses((status = 200, description = "ready"), (status = 503, body = Problem, description = "the database does not answer")))]
pub async fn readyz(ctx: web::Data<AppContext>) -> HttpResponse {
    match ctx.db.execute_unprepared("SELECT 1").await {
        // The outbox is reported, never a reason to refuse traffic: dead mail needs an admin.
        Ok(_) => HttpResponse::Ok().json(json!({"status": "ready", "database": "ok", "mail": mail_detail(&ctx).await})),
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

/// Mail waiting and dead, for an operator reading `/readyz`.
async fn mail_detail(ctx: &AppContext) -> serde_json::Value {
    match crate::service::notifications::outbox_health(&ctx.db).await {
        Ok(health) => json!(health),
        Err(err) => json!({"error": err.to_string()}),
    }
}
