//! Webhook subscriptions and their deliveries (admins). See `service::webhooks`.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{
    dto::{List, page_request},
    extract::{PathId, Permitted, Query, may},
    problem::Problem,
};
use crate::{
    context::AppContext,
    domain::access::Caller,
    error::AppResult,
    service::webhooks::{self, DeliveryView, NewWebhook, Subscribed, WebhookPatch},
};

/// A webhook subscription. The secret is never shown again after creation or rotation.
#[derive(Debug, Serialize, ToSchema)]
pub struct Webhook {
    pub id: Uuid,
    pub url: String,
    pub description: String,
    /// Empty: every kind.
    pub event_kinds: Vec<String>,
    pub unit_id: Option<Uuid>,
    pub department_id: Option<Uuid>,
    /// False once disabled after failing for `webhooks.retention` (or by an admin).
    pub active: bool,
    /// The first failure since the last success; `null` while deliveries go through.
    pub failing_since: Option<DateTime<Utc>>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<entities::webhook_subscription::Model> for Webhook {
    fn from(s: entities::webhook_subscription::Model) -> Self {
        let event_kinds = s
            .event_kinds
            .as_array()
            .map(|kinds| kinds.iter().filter_map(|k| k.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        Self {
            id: s.id,
            url: s.url,
            description: s.description,
            event_kinds,
            unit_id: s.unit_id,
            department_id: s.department_id,
            active: s.active,
            failing_since: s.failing_since,
            disabled_at: s.disabled_at,
            disabled_reason: s.disabled_reason,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// A subscription with its signing secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookWithSecret {
    /// `whsec_` + base64 of 32 random bytes (Standard Webhooks). Store it now: it is not shown again.
    pub secret: String,
    #[serde(flatten)]
    pub webhook: Webhook,
}

impl From<Subscribed> for WebhookWithSecret {
    fn from(s: Subscribed) -> Self {
        Self { secret: s.secret, webhook: s.subscription.into() }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryAttempt {
    pub attempted_at: DateTime<Utc>,
    /// The receiver's HTTP status; `null` when no answer came (timeout, refused connection,
    /// internal address refused).
    pub status_code: Option<i32>,
    pub latency_ms: i64,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookDelivery {
    /// Also the `webhook-id` header of every attempt.
    pub id: Uuid,
    pub subscription_id: Uuid,
    pub event_id: Uuid,
    pub ticket_id: Uuid,
    /// `ticket.<kind>`
    #[serde(rename = "type")]
    pub event_type: String,
    pub event_at: DateTime<Utc>,
    /// pending, delivered or failed
    pub status: String,
    pub attempt_count: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub last_latency_ms: Option<i64>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// Oldest first.
    pub attempts: Vec<DeliveryAttempt>,
}

impl From<DeliveryView> for WebhookDelivery {
    fn from(v: DeliveryView) -> Self {
        let d = v.delivery;
        Self {
            id: d.id,
            subscription_id: d.subscription_id,
            event_id: d.event_id,
            ticket_id: d.ticket_id,
            event_type: d.event_type,
            event_at: d.event_at,
            status: sea_orm::ActiveEnum::to_value(&d.status),
            attempt_count: d.attempts,
            next_attempt_at: d.next_attempt_at,
            last_status_code: d.last_status_code,
            last_error: d.last_error,
            last_latency_ms: d.last_latency_ms,
            delivered_at: d.delivered_at,
            attempts: v
                .attempts
                .into_iter()
                .map(|a| DeliveryAttempt {
                    attempted_at: a.attempted_at,
                    status_code: a.status_code,
                    latency_ms: a.latency_ms,
                    error: a.error,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    limit: Option<u64>,
    cursor: Option<String>,
}

/// Subscribe a receiver to signed webhooks.
///
/// Admins only. Every timeline event of the kinds named (all when `event_kinds` is empty), of
/// tickets in the unit's subtree and/or dispatched to the department when those are given, is
/// POSTed to `url` as the Standard Webhooks specification says, signed with the secret answered
/// here — shown this once. An address literal that is loopback, private or link-local is 422
/// unless `webhooks.allow_private_targets`.
#[utoipa::path(post, path = "/api/v1/webhooks", operation_id = "createWebhook", tag = "operations",
    request_body = NewWebhook,
    responses((status = 201, body = WebhookWithSecret, description = "subscribed; the secret is shown this once"),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    ctx: web::Data<AppContext>,
    Permitted(caller, input, _): Permitted<may::Operate, NewWebhook>,
) -> AppResult<HttpResponse> {
    let created = WebhookWithSecret::from(webhooks::create(&ctx, &caller, input).await?);
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::LOCATION, format!("/api/v1/webhooks/{}", created.webhook.id)))
        .json(created))
}

/// Webhook subscriptions, oldest first.
#[utoipa::path(get, path = "/api/v1/webhooks", operation_id = "listWebhooks", tag = "operations", params(PageQuery),
    responses((status = 200, body = List<Webhook>)), security(("bearer" = [])))]
pub async fn list(
    ctx: web::Data<AppContext>,
    caller: Caller,
    Query(q): Query<PageQuery>,
) -> AppResult<web::Json<List<Webhook>>> {
    let page = page_request(q.limit, q.cursor.as_deref())?;
    Ok(web::Json(List::from_page(webhooks::list(&ctx, &caller, page).await?, Webhook::from)))
}

/// One webhook subscription (without its secret).
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", operation_id = "getWebhook", tag = "operations",
    params(("id" = Uuid, Path, description = "the id")),
    responses((status = 200, body = Webhook), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get(ctx: web::Data<AppContext>, caller: Caller, PathId(id): PathId) -> AppResult<web::Json<Webhook>> {
    Ok(web::Json(webhooks::get(&ctx, &caller, id).await?.into()))
}

/// Change a webhook subscription.
///
/// Fields left out stay as they are; `unit_id` / `department_id` `null` removes that scope.
/// `{"active": true}` re-enables a subscription disabled after failing for `webhooks.retention`.
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", operation_id = "updateWebhook", tag = "operations",
    params(("id" = Uuid, Path, description = "the id")), request_body = WebhookPatch,
    responses((status = 200, body = Webhook), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn update(
    ctx: web::Data<AppContext>,
    PathId(id): PathId,
    Permitted(caller, patch, _): Permitted<may::Operate, WebhookPatch>,
) -> AppResult<web::Json<Webhook>> {
    Ok(web::Json(webhooks::update(&ctx, &caller, id, patch).await?.into()))
}

/// Delete a webhook subscription, with its deliveries.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", operation_id = "deleteWebhook", tag = "operations",
    params(("id" = Uuid, Path, description = "the id")),
    responses((status = 204), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn delete(ctx: web::Data<AppContext>, caller: Caller, PathId(id): PathId) -> AppResult<HttpResponse> {
    webhooks::delete(&ctx, &caller, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Replace a subscription's signing secret.
///
/// Answers the new secret, shown this once; every delivery from now on is signed with it.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/rotate-secret", operation_id = "rotateWebhookSecret",
    tag = "operations", params(("id" = Uuid, Path, description = "the id")),
    responses((status = 200, body = WebhookWithSecret), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn rotate_secret(
    ctx: web::Data<AppContext>,
    caller: Caller,
    PathId(id): PathId,
) -> AppResult<web::Json<WebhookWithSecret>> {
    Ok(web::Json(webhooks::rotate_secret(&ctx, &caller, id).await?.into()))
}

/// A subscription's deliveries, newest first, with every attempt (status code, latency, error).
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", operation_id = "listWebhookDeliveries",
    tag = "operations", params(("id" = Uuid, Path, description = "the subscription's id"), PageQuery),
    responses((status = 200, body = List<WebhookDelivery>), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn deliveries(
    ctx: web::Data<AppContext>,
    caller: Caller,
    PathId(id): PathId,
    Query(q): Query<PageQuery>,
) -> AppResult<web::Json<List<WebhookDelivery>>> {
    let page = page_request(q.limit, q.cursor.as_deref())?;
    Ok(web::Json(List::from_page(webhooks::deliveries(&ctx, &caller, id, page).await?, WebhookDelivery::from)))
}

/// Send a delivery again.
///
/// Due at once, with the same `webhook-id` (receivers that have it drop it) and a fresh
/// `webhooks.retention` window. 409 while the subscription is disabled.
#[utoipa::path(post, path = "/api/v1/webhook-deliveries/{id}/redeliver", operation_id = "redeliverWebhook",
    tag = "operations", params(("id" = Uuid, Path, description = "the delivery's id")),
    responses((status = 200, body = WebhookDelivery, description = "pending again"), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "the subscription is disabled")),
    security(("bearer" = [])))]
pub async fn redeliver(
    ctx: web::Data<AppContext>,
    caller: Caller,
    PathId(id): PathId,
) -> AppResult<web::Json<WebhookDelivery>> {
    Ok(web::Json(webhooks::redeliver(&ctx, &caller, id).await?.into()))
}
