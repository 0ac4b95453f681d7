//! Re-queueing mail from the outbox (admins). The list itself is `GET /api/v1/notifications`.

use actix_web::web;
use serde::Serialize;
use utoipa::ToSchema;

use super::{dto::Notification, extract::PathId, problem::Problem};
use crate::{context::AppContext, domain::access::Caller, error::AppResult, service::notifications};

/// Puts one mail back in the queue.
///
/// Admins only. A `dead` mail (refused by the SMTP server, or undelivered for longer than
/// `smtp.retention`) — or a `pending` one to be tried at once — becomes `pending`, due now,
/// with its attempts counted afresh and a new retention window. A `sent` mail is never sent
/// again: 409. The mail keeps its id, so it keeps its `Message-ID`.
#[utoipa::path(post, path = "/api/v1/notifications/{id}/retry", operation_id = "retryNotification",
    params(("id" = uuid::Uuid, Path, description = "the outbox row id")), tag = "operations",
    responses((status = 200, body = Notification, description = "the mail, pending again"),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "the mail has been sent")),
    security(("bearer" = [])))]
pub async fn retry(
    ctx: web::Data<AppContext>,
    caller: Caller,
    PathId(id): PathId,
) -> AppResult<web::Json<Notification>> {
    Ok(web::Json(notifications::retry(&ctx, &caller, id).await?.into()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Requeued {
    /// How many dead mails are pending again.
    pub requeued: u64,
}

/// Puts every dead mail back in the queue.
///
/// Admins only. Each `dead` mail becomes `pending`, due now, with its attempts counted afresh
/// and a new `smtp.retention` window. Answers how many.
#[utoipa::path(post, path = "/api/v1/notifications/retry-dead", operation_id = "retryDeadNotifications",
    tag = "operations",
    responses((status = 200, body = Requeued), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn retry_dead(ctx: web::Data<AppContext>, caller: Caller) -> AppResult<web::Json<Requeued>> {
    Ok(web::Json(Requeued { requeued: notifications::retry_dead(&ctx, &caller).await? }))
}
