//! The webhook delivery worker. Like the mailer it claims due outbox rows with a lease and a
//! token (no transaction is held while a receiver answers; an outcome is recorded only under
//! the claim's token), retries with capped exponential backoff, and gives up after
//! `webhooks.retention`. Unlike the mailer it claims only the head of each subscription's
//! queue — per-subscription order is event order — and sends to different subscriptions
//! concurrently, each in a task of its own, so one slow receiver never delays another.
//!
//! Each request follows the Standard Webhooks specification: `webhook-id` (the outbox row id:
//! the same on every retry, so receivers drop duplicates), `webhook-timestamp`, and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
//!
//! Outgoing requests time out after 10 s, follow no redirect, read at most
//! `webhooks.max_response_bytes` of the answer, and — unless `webhooks.allow_private_targets`
//! — connect only to public addresses: the check runs in the HTTP client's resolver, on the
//! very addresses it then connects to, so a DNS answer cannot point a delivery inward.

use entities::enums::DeliveryStatus;
use std::{net::SocketAddr, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use entities::{dispatch, ticket, webhook_attempt, webhook_delivery, webhook_subscription};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DbBackend, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect, Set,
    sea_query::{Alias, Expr, LockBehavior, LockType, Query},
};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use uuid::Uuid;

use crate::{
    context::AppContext,
    db::begin_write,
    domain::webhooks as rules,
    error::{AppError, AppResult},
    service::audit::{self, Entry},
};

/// The whole request, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A claim covers one request and the recording of its outcome, with a wide margin.
fn lease() -> chrono::Duration {
    chrono::Duration::seconds(REQUEST_TIMEOUT.as_secs() as i64 + 50)
}

/// 30 s, 1 min, 2 min, … capped at an hour.
pub fn backoff(attempts: i32) -> chrono::Duration {
    let exponent = attempts.clamp(1, 8) as u32 - 1;
    chrono::Duration::seconds((30_i64 << exponent).min(3600))
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryReport {
    pub delivered: usize,
    /// Failed this time, to be tried again.
    pub retried: usize,
    /// Given up on after `webhooks.retention`.
    pub failed: usize,
}

impl DeliveryReport {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Delivered => self.delivered += 1,
            Outcome::Retry => self.retried += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::LeaseLost => {}
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Delivered,
    Retry,
    Failed,
    LeaseLost,
}

/// The HTTP client deliveries go through.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    allow_private: bool,
    max_response_bytes: usize,
}

/// Resolves names like the system does, then drops every internal address; a name left with
/// none fails to resolve, so the client never connects to it.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = resolved.into_iter().filter(|a| !rules::is_internal(a.ip())).collect();
            if public.is_empty() {
                return Err(Box::new(Refused(format!(
                    "{host} resolves only to internal addresses (webhooks.allow_private_targets is false)"
                ))) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

pub fn sender(ctx: &AppContext) -> AppResult<Sender> {
    let settings = &ctx.settings.webhooks;
    let mut builder = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        // A proxy would resolve the name itself, past the check below.
        .no_proxy()
        .user_agent(concat!("GridWhistle-Webhooks/", env!("CARGO_PKG_VERSION")));
    if !settings.allow_private_targets {
        builder = builder.dns_resolver(Arc::new(PublicOnly));
    }
    let client = builder.build().map_err(|e| AppError::internal_from("webhook HTTP client", e))?;
    Ok(Sender {
        client,
        allow_private: settings.allow_private_targets,
        max_response_bytes: settings.max_response_bytes,
    })
}

pub async fn run(ctx: AppContext, token: CancellationToken) {
    let sender = match sender(&ctx) {
        Ok(sender) => sender,
        Err(err) => {
            tracing::error!(error = %err.chain(), "webhook delivery not started");
            return;
        }
    };
    let permits = Arc::new(Semaphore::new(ctx.settings.webhooks.concurrency));
    let in_flight = TaskTracker::new();
    loop {
        let free = permits.available_permits();
        if free > 0 {
            match claim(&ctx, free as u64).await {
                Ok(claimed) => {
                    for (delivery, claim_token) in claimed {
                        let Ok(permit) = permits.clone().try_acquire_owned() else { break };
                        let (ctx, sender) = (ctx.clone(), sender.clone());
                        in_flight.spawn(async move {
                            if let Err(err) = deliver(&ctx, &sender, delivery, claim_token).await {
                                tracing::error!(error = %err.chain(), "webhook delivery not recorded");
                            }
                            drop(permit);
                        });
                    }
                }
                Err(err) => tracing::error!(error = %err.chain(), "webhook claim failed; retrying next tick"),
            }
        }
        if !super::pause(&token, ctx.settings.webhooks.poll_interval).await {
            break;
        }
    }
    // Requests under way finish (each within REQUEST_TIMEOUT) and are recorded.
    in_flight.close();
    in_flight.wait().await;
}

/// One tick, for tests and tools: expires what is past retention, claims the head of every
/// subscription's queue that is due, and delivers them concurrently.
pub async fn run_once(ctx: &AppContext, sender: &Sender) -> AppResult<DeliveryReport> {
    let claimed = claim(ctx, ctx.settings.webhooks.concurrency as u64).await?;
    let mut report = DeliveryReport::default();
    let outcomes = futures_util::future::join_all(
        claimed.into_iter().map(|(delivery, token)| deliver(ctx, sender, delivery, token)),
    )
    .await;
    for outcome in outcomes {
        report.add(outcome?);
    }
    Ok(report)
}

/// Takes a lease on the due heads of active subscriptions' queues, at most `limit`.
async fn claim(ctx: &AppContext, limit: u64) -> AppResult<Vec<(webhook_delivery::Model, Uuid)>> {
    use sea_orm::sea_query::ExprTrait as _;
    use webhook_delivery::{Column, Entity};
    let now = ctx.clock.now();
    let earlier = Alias::new("earlier");
    let before_this = Query::select()
        .expr(Expr::val(1))
        .from_as(Entity, earlier.clone())
        .and_where(Expr::col((earlier.clone(), Column::SubscriptionId)).equals((Entity, Column::SubscriptionId)))
        .and_where(Expr::col((earlier.clone(), Column::Status)).eq(DeliveryStatus::Pending))
        .cond_where(
            Condition::any()
                .add(Expr::col((earlier.clone(), Column::EventAt)).lt(Expr::col((Entity, Column::EventAt))))
                .add(
                    Condition::all()
                        .add(Expr::col((earlier.clone(), Column::EventAt)).eq(Expr::col((Entity, Column::EventAt))))
                        .add(Expr::col((earlier, Column::Id)).lt(Expr::col((Entity, Column::Id)))),
                ),
        )
        .to_owned();
    let active = Query::select()
        .column(webhook_subscription::Column::Id)
        .from(webhook_subscription::Entity)
        .and_where(webhook_subscription::Column::Active.eq(true))
        .to_owned();
    let txn = begin_write(&ctx.db).await?;
    let mut select = Entity::find()
        .filter(Column::Status.eq(DeliveryStatus::Pending))
        .filter(Column::NextAttemptAt.lte(now))
        .filter(Condition::any().add(Column::LeaseUntil.is_null()).add(Column::LeaseUntil.lte(now)))
        .filter(Column::SubscriptionId.in_subquery(active))
        .filter(Expr::exists(before_this).not())
        .order_by_asc(Column::NextAttemptAt)
        .order_by_asc(Column::Id)
        .limit(limit);
    if ctx.db.get_database_backend() == DbBackend::Postgres {
        select = select.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let due = select.all(&txn).await?;
    let (token, lease_until) = (Uuid::now_v7(), now + lease());
    let mut claimed = Vec::with_capacity(due.len());
    for delivery in due {
        let mut row = delivery.into_active_model();
        row.lease_until = Set(Some(lease_until));
        row.lease_token = Set(Some(token));
        claimed.push((row.update(&txn).await?, token));
    }
    txn.commit().await?;
    Ok(claimed)
}

/// The body's `data`: ids, numbers, statuses, category, unit, departments and deadlines of
/// the ticket — never a resident's name, phone or address, nor free text that may hold them.
async fn data_of(
    ctx: &AppContext,
    delivery: &webhook_delivery::Model,
    subscription: &webhook_subscription::Model,
) -> AppResult<Value> {
    let ticket = ticket::Entity::find_by_id(delivery.ticket_id).one(&ctx.db).await?;
    let event = entities::ticket_event::Entity::find_by_id(delivery.event_id).one(&ctx.db).await?;
    let dispatches = dispatch::Entity::find()
        .filter(dispatch::Column::TicketId.eq(delivery.ticket_id))
        .order_by_asc(dispatch::Column::Id)
        .all(&ctx.db)
        .await?;
    let dispatches: Vec<Value> = dispatches
        .into_iter()
        .filter(|d| subscription.department_id.is_none_or(|own| own == d.department_id))
        .map(|d| {
            json!({
                "id": d.id,
                "department_id": d.department_id,
                "role": d.role,
                "status": d.status,
                "acknowledge_due_at": d.ack_due_at,
                "acknowledged_at": d.acknowledged_at,
                "resolved_at": d.resolved_at,
            })
        })
        .collect();
    let kind = delivery.event_type.strip_prefix("ticket.").unwrap_or(&delivery.event_type);
    Ok(json!({
        "event_id": delivery.event_id,
        "kind": kind,
        "at": delivery.event_at,
        "dispatch_id": event.as_ref().and_then(|e| e.dispatch_id),
        "ticket": ticket.map(|t| json!({
            "id": t.id,
            "number": t.number,
            "status": t.status,
            "priority": t.priority,
            "category_id": t.category_id,
            "unit_id": t.unit_id,
            "township_id": t.township_id,
            "county_id": t.county_id,
            "channel": t.channel,
            "created_at": t.created_at,
            "first_dispatched_at": t.first_dispatched_at,
            "resolve_due_at": t.resolve_due_at,
            "resolved_at": t.resolved_at,
            "rating_due_at": t.rating_due_at,
            "closed_at": t.closed_at,
        })),
        "dispatches": dispatches,
    }))
}

/// What one attempt came to.
struct Attempt {
    status_code: Option<u16>,
    error: Option<String>,
    latency_ms: i64,
}

impl Attempt {
    fn succeeded(&self) -> bool {
        self.status_code.is_some_and(|code| (200..300).contains(&code))
    }
}

/// The body of a request: `{"type", "timestamp", "data"}`.
pub fn body_of(delivery: &webhook_delivery::Model) -> Value {
    json!({
        "type": delivery.event_type,
        "timestamp": delivery.event_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": delivery.payload,
    })
}

async fn post(sender: &Sender, subscription: &webhook_subscription::Model, id: &str, body: &[u8]) -> Attempt {
    let started = std::time::Instant::now();
    let elapsed = |started: std::time::Instant| started.elapsed().as_millis().min(i64::MAX as u128) as i64;
    let refuse = |error: String| Attempt { status_code: None, error: Some(error), latency_ms: 0 };
    let Ok(url) = reqwest::Url::parse(&subscription.url) else {
        return refuse("the subscription's URL does not parse".into());
    };
    // A literal address never reaches the resolver: check it here.
    let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    if !sender.allow_private
        && let Ok(ip) = host.parse::<std::net::IpAddr>()
        && rules::is_internal(ip)
    {
        return refuse(format!("{ip} is an internal address (webhooks.allow_private_targets is false)"));
    }
    let timestamp = crate::service::webhooks::wall_clock_seconds();
    let Some(signature) = rules::signature(&subscription.secret, id, timestamp, body) else {
        return refuse("the subscription's secret is malformed; rotate it".into());
    };
    let request = sender
        .client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body.to_vec());
    match request.send().await {
        Err(err) => Attempt { status_code: None, error: Some(crate::error::chain(&err)), latency_ms: elapsed(started) },
        Ok(mut response) => {
            let status = response.status();
            // Read a little of the answer (it may say why), never more.
            let mut excerpt = Vec::new();
            let mut error = None;
            while excerpt.len() < sender.max_response_bytes {
                match response.chunk().await {
                    Ok(Some(chunk)) => excerpt.extend_from_slice(&chunk),
                    Ok(None) => break,
                    Err(err) => {
                        error = Some(crate::error::chain(&err));
                        break;
                    }
                }
            }
            excerpt.truncate(sender.max_response_bytes);
            let latency_ms = elapsed(started);
            if status.is_success() {
                Attempt { status_code: Some(status.as_u16()), error: None, latency_ms }
            } else {
                let text = String::from_utf8_lossy(&excerpt).chars().take(500).collect::<String>();
                let redirect = if status.is_redirection() { " (redirects are not followed)" } else { "" };
                let error = error.unwrap_or_else(|| format!("HTTP {}{redirect}: {}", status.as_u16(), text.trim()));
                Attempt { status_code: Some(status.as_u16()), error: Some(error), latency_ms }
            }
        }
    }
}

/// Sends one claimed delivery and records the attempt, the delivery's new state and the
/// subscription's health — only while the claim still holds it.
async fn deliver(
    ctx: &AppContext,
    sender: &Sender,
    mut delivery: webhook_delivery::Model,
    token: Uuid,
) -> AppResult<Outcome> {
    let Some(subscription) = webhook_subscription::Entity::find_by_id(delivery.subscription_id).one(&ctx.db).await?
    else {
        return Ok(Outcome::LeaseLost);
    };
    if delivery.payload.is_null() {
        // Fixed at the first attempt, so every retry carries the same message.
        let data = data_of(ctx, &delivery, &subscription).await?;
        let written = webhook_delivery::Entity::update_many()
            .col_expr(webhook_delivery::Column::Payload, Expr::value(data.clone()))
            .filter(webhook_delivery::Column::Id.eq(delivery.id))
            .filter(webhook_delivery::Column::LeaseToken.eq(token))
            .exec(&ctx.db)
            .await?;
        if written.rows_affected == 0 {
            return Ok(Outcome::LeaseLost);
        }
        delivery.payload = data;
    }
    let id = delivery.id.to_string();
    let body = serde_json::to_vec(&body_of(&delivery)).map_err(|e| AppError::internal_from("webhook body", e))?;
    let attempt = post(sender, &subscription, &id, &body).await;
    record(ctx, &delivery, &subscription, token, attempt).await
}

async fn record(
    ctx: &AppContext,
    delivery: &webhook_delivery::Model,
    subscription: &webhook_subscription::Model,
    token: Uuid,
    attempt: Attempt,
) -> AppResult<Outcome> {
    let now = ctx.clock.now();
    let retention = chrono::Duration::from_std(ctx.settings.webhooks.retention).unwrap_or(chrono::Duration::MAX);
    let attempts = delivery.attempts + 1;
    let mut row = webhook_delivery::ActiveModel {
        attempts: Set(attempts),
        lease_until: Set(None),
        lease_token: Set(None),
        last_status_code: Set(attempt.status_code.map(i32::from)),
        last_error: Set(attempt.error.clone()),
        last_latency_ms: Set(Some(attempt.latency_ms)),
        ..Default::default()
    };
    let outcome = if attempt.succeeded() {
        row.status = Set(DeliveryStatus::Delivered);
        row.delivered_at = Set(Some(now));
        Outcome::Delivered
    } else if now - delivery.queued_at >= retention {
        row.status = Set(DeliveryStatus::Failed);
        Outcome::Failed
    } else {
        row.next_attempt_at = Set(now + backoff(attempts));
        Outcome::Retry
    };
    let txn = begin_write(&ctx.db).await?;
    let recorded = webhook_delivery::Entity::update_many()
        .set(row)
        .filter(webhook_delivery::Column::Id.eq(delivery.id))
        .filter(webhook_delivery::Column::LeaseToken.eq(token))
        .exec(&txn)
        .await?;
    if recorded.rows_affected == 0 {
        tracing::warn!(delivery_id = %delivery.id, "webhook lease lost; outcome not recorded");
        return Ok(Outcome::LeaseLost);
    }
    webhook_attempt::ActiveModel {
        id: Set(Uuid::now_v7()),
        delivery_id: Set(delivery.id),
        attempted_at: Set(now),
        status_code: Set(attempt.status_code.map(i32::from)),
        latency_ms: Set(attempt.latency_ms),
        error: Set(attempt.error.clone()),
    }
    .insert(&txn)
    .await?;
    health(&txn, subscription, outcome == Outcome::Delivered, now, retention).await?;
    txn.commit().await?;
    match outcome {
        Outcome::Failed => tracing::warn!(
            delivery_id = %delivery.id, subscription_id = %subscription.id, attempts,
            "webhook delivery failed for longer than webhooks.retention; redeliver it with \
             POST /api/v1/webhook-deliveries/{{id}}/redeliver"
        ),
        Outcome::Retry => tracing::debug!(
            delivery_id = %delivery.id, subscription_id = %subscription.id, attempts,
            error = attempt.error.as_deref().unwrap_or_default(), "webhook delivery will be retried"
        ),
        _ => {}
    }
    Ok(outcome)
}

/// A success clears the subscription's failing streak; a failure starts one, and a streak
/// as long as `webhooks.retention` disables the subscription (audited).
async fn health(
    txn: &sea_orm::DatabaseTransaction,
    subscription: &webhook_subscription::Model,
    succeeded: bool,
    now: DateTime<Utc>,
    retention: chrono::Duration,
) -> AppResult<()> {
    use webhook_subscription::Column;
    if succeeded {
        webhook_subscription::Entity::update_many()
            .col_expr(Column::FailingSince, Expr::value(Option::<DateTime<Utc>>::None))
            .filter(Column::Id.eq(subscription.id))
            .filter(Column::FailingSince.is_not_null())
            .exec(txn)
            .await?;
        return Ok(());
    }
    webhook_subscription::Entity::update_many()
        .col_expr(Column::FailingSince, Expr::value(now))
        .filter(Column::Id.eq(subscription.id))
        .filter(Column::FailingSince.is_null())
        .exec(txn)
        .await?;
    let since = subscription.failing_since.unwrap_or(now);
    if subscription.active && now - since >= retention {
        let reason = format!("every delivery failed for {} s", (now - since).num_seconds());
        let disabled = webhook_subscription::Entity::update_many()
            .col_expr(Column::Active, Expr::value(false))
            .col_expr(Column::DisabledAt, Expr::value(now))
            .col_expr(Column::DisabledReason, Expr::value(reason.clone()))
            .filter(Column::Id.eq(subscription.id))
            .filter(Column::Active.eq(true))
            .exec(txn)
            .await?;
        if disabled.rows_affected > 0 {
            let entry = Entry {
                actor_id: None,
                action: "webhook_disabled",
                target_type: "webhook",
                target_id: Some(subscription.id.to_string()),
                ip: None,
                detail: json!({"reason": reason, "failing_since": since}),
                unit_id: None,
            };
            audit::record(txn, entry, now).await?;
            tracing::warn!(
                subscription_id = %subscription.id, failing_since = %since,
                "webhook subscription disabled after failing for webhooks.retention; \
                 re-enable it with PATCH /api/v1/webhooks/{{id}} {{\"active\": true}}"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped_at_an_hour() {
        assert_eq!(backoff(1), chrono::Duration::seconds(30));
        assert_eq!(backoff(3), chrono::Duration::minutes(2));
        assert_eq!(backoff(50), chrono::Duration::hours(1));
    }
}
