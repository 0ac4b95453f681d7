use std::time::Duration;

use actix_web::{
    Error, HttpResponse,
    body::MessageBody,
    dev::{Payload, ServiceRequest, ServiceResponse},
    http::{Method, StatusCode},
    middleware::Next,
    web,
};
use sea_orm::{ConnectionTrait, DbBackend};
use serde_json::json;

use super::problem::{Problem, problem_response};
use crate::{
    context::AppContext,
    error::{AppError, DatabaseUnavailable},
};

/// The longest `/readyz` (and the outage probe) waits for the database: a probe that times out
/// tells a load balancer nothing.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the outage probe asks again while the database is away.
const PROBE_EVERY: Duration = Duration::from_millis(500);

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
/// not answer within 1 s or the server is draining after SIGTERM. Answers within about a second. No token needed. `mail` reports the outbox (`pending`, `dead`, `oldest_pending_at`) without
/// affecting readiness.
#[utoipa::path(get, path = "/readyz", operation_id = "getReadiness", tag = "operations", responses((status = 200, description = "ready"), (status = 503, body = Problem, description = "the database does not answer, or the server is draining")))]
pub async fn readyz(ctx: web::Data<AppContext>) -> HttpResponse {
    if ctx.health.is_draining() {
        return not_ready("the server is shutting down (draining); send new requests to another instance");
    }
    match database_answers(&ctx).await {
        Ok(()) => {
            if ctx.health.mark_database_up() {
                tracing::info!("the database answers again");
            }
            // The outbox is reported, never a reason to refuse traffic: dead mail needs an admin.
            // As the mailer last counted it: a probe polled every few seconds counts nothing.
            let mail = json!(ctx.health.last_outbox());
            HttpResponse::Ok().json(json!({"status": "ready", "database": "ok", "mail": mail}))
        }
        Err(why) => {
            if ctx.health.mark_database_down() {
                tracing::warn!(error = %why, "the database cannot be reached");
            }
            not_ready(&format!("the database does not answer: {why}"))
        }
    }
}

fn not_ready(detail: &str) -> HttpResponse {
    let mut response = problem_response(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Not ready", detail);
    response
        .headers_mut()
        .insert(actix_web::http::header::RETRY_AFTER, actix_web::http::header::HeaderValue::from_static("1"));
    response
}

/// Whether the database answers `SELECT 1` within [`PROBE_TIMEOUT`]. On PostgreSQL the probe
/// opens a connection of its own, so a full pool (busy, not down) does not read as an outage.
async fn database_answers(ctx: &AppContext) -> Result<(), String> {
    let probe = async {
        if ctx.db.get_database_backend() == DbBackend::Postgres {
            use sea_orm::sqlx::Connection;
            let options = ctx.db.get_postgres_connection_pool().connect_options();
            let mut connection =
                sea_orm::sqlx::PgConnection::connect_with(&options).await.map_err(|e| e.to_string())?;
            let answered = sea_orm::sqlx::query("SELECT 1").execute(&mut connection).await.map(|_| ());
            connection.close().await.ok();
            answered.map_err(|e| e.to_string())
        } else {
            ctx.db.execute_unprepared("SELECT 1").await.map(|_| ()).map_err(|e| e.to_string())
        }
    };
    match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(answer) => answer,
        Err(_) => Err(format!("no answer within {} ms", PROBE_TIMEOUT.as_millis())),
    }
}

/// Wrap the routes with `middleware::from_fn(health::database_gate)`.
///
/// While the database is known to be unreachable, API requests answer 503 (with Retry-After)
/// at once instead of each waiting out the pool's acquire timeout. A request that fails on its
/// connection starts the outage; a probe in the background (one at a time) ends it as soon as
/// the database answers. Probes (`/healthz`, `/readyz`) always pass.
pub async fn database_gate<B: MessageBody>(req: ServiceRequest, next: Next<B>) -> Result<ServiceResponse<B>, Error> {
    let ctx = req.app_data::<web::Data<AppContext>>().cloned();
    let Some(ctx) = ctx else { return next.call(req).await };
    if req.path().starts_with("/api/") && ctx.health.database_down_since().is_some() {
        start_probe(&ctx);
        return Err(AppError::Unavailable(DatabaseUnavailable::Unreachable).into());
    }
    let idempotent_read = matches!(*req.method(), Method::GET | Method::HEAD);
    let mut response = next.call(req).await?;
    if idempotent_read && unavailability(&response) == Some(DatabaseUnavailable::Unreachable) {
        // A read whose connection broke (a database restart cut it mid-query) is asked once more:
        // the pool tests a connection before lending it, so the retry runs on a fresh one. A
        // read changes nothing, so asking twice is safe; writes are left to the client's retry
        // with its Idempotency-Key.
        let (request, _) = response.into_parts();
        tracing::info!("a read lost its database connection; retried once on a fresh connection");
        let mut again = ServiceRequest::from_parts(request, Payload::None);
        // Routing consumed the path on the first pass: route it from the start again.
        again.match_info_mut().reset();
        response = next.call(again).await?;
    }
    // On PostgreSQL a pool that times out may mean the server is gone; the probe's own
    // connection tells at once if it is merely busy. SQLite's pool waits only on itself.
    let failed_on_connection = match unavailability(&response) {
        Some(DatabaseUnavailable::Unreachable) => true,
        Some(DatabaseUnavailable::Busy) => ctx.db.get_database_backend() == DbBackend::Postgres,
        None => false,
    };
    if failed_on_connection {
        if ctx.health.mark_database_down() {
            tracing::warn!("the database cannot be reached: API requests answer 503 until it answers again");
        }
        start_probe(&ctx);
    }
    Ok(response)
}

/// Why the database failed the request that this response answers, if it did.
fn unavailability<B>(response: &ServiceResponse<B>) -> Option<DatabaseUnavailable> {
    match response.response().error()?.as_error::<AppError>()? {
        AppError::Unavailable(why) => Some(*why),
        _ => None,
    }
}

/// Starts the outage probe unless one runs: it asks every [`PROBE_EVERY`] until the database
/// answers, then lets requests through again.
fn start_probe(ctx: &AppContext) {
    if !ctx.health.claim_probe() {
        return;
    }
    let ctx = ctx.clone();
    tokio::spawn(async move {
        // Released however the task ends (its worker thread may stop first).
        struct Release(AppContext);
        impl Drop for Release {
            fn drop(&mut self) {
                self.0.health.release_probe();
            }
        }
        let guard = Release(ctx);
        while guard.0.health.database_down_since().is_some() {
            match database_answers(&guard.0).await {
                Ok(()) => {
                    if guard.0.health.mark_database_up() {
                        tracing::info!("the database answers again: API requests pass");
                    }
                }
                Err(_) => tokio::time::sleep(PROBE_EVERY).await,
            }
        }
    });
}
