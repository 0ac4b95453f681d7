//! Webhook subscriptions (admins): create with a secret shown once, read, change, delete,
//! rotate the secret; the deliveries of a subscription with their attempts; redelivery.
//! Outbox rows are written with each timeline event (`repo::push`); the delivery worker
//! (`workers::webhooks`) sends them.

use entities::enums::DeliveryStatus;
use std::collections::HashMap;

use chrono::Utc;
use entities::{department, grid_unit, webhook_attempt, webhook_delivery, webhook_subscription};
use rand::RngCore;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, Set};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{found, referenced, require};
use crate::{
    context::AppContext,
    db::begin_write,
    domain::{
        access::{Caller, Permission},
        ticket::event,
        validate::{FieldErrors, Message},
        webhooks as rules,
    },
    error::{AppError, AppResult},
    repo::page::{self, Page, PageRequest},
    service::audit::{self, Entry},
};

/// Every event kind a subscription may name: every kind of the timeline.
pub const EVENT_KINDS: &[&str] = event::ALL;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// `https://…` (or `http://…`) where deliveries are POSTed.
    pub url: String,
    pub description: Option<String>,
    /// Event kinds without the `ticket.` prefix (`filed`, `dispatched`, …); empty or absent = all.
    pub event_kinds: Option<Vec<String>>,
    /// Only tickets in this unit's subtree.
    pub unit_id: Option<Uuid>,
    /// Only tickets dispatched to this department (and only its own dispatches' events).
    pub department_id: Option<Uuid>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_kinds: Option<Vec<String>>,
    /// `null` removes the scope.
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<Uuid>)]
    pub unit_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<Uuid>)]
    pub department_id: Option<Option<Uuid>>,
    /// `true` re-enables a subscription that was disabled after failing for too long.
    pub active: Option<bool>,
}

/// A subscription and, when just created or rotated, its secret (shown this once).
pub struct Subscribed {
    pub subscription: webhook_subscription::Model,
    pub secret: String,
}

fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    rules::secret_from(&bytes)
}

/// Checks a receiver URL: absolute http(s) with a host; an address literal must not be
/// internal unless `webhooks.allow_private_targets` (names are checked when delivering,
/// against the address actually connected to).
fn check_url(ctx: &AppContext, errors: &mut FieldErrors, url: &str) -> String {
    let url = url.trim();
    let parsed = reqwest::Url::parse(url);
    let said = |zh: &'static str, en: &'static str| Message::said(zh, en);
    match parsed {
        _ if url.len() > 2048 => errors.add("url", Message::TooLong { max: 2048 }),
        Err(_) => errors.add("url", said("应为完整的 http(s) 网址", "must be an absolute http(s) URL")),
        Ok(parsed) if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() => {
            errors.add("url", said("应为完整的 http(s) 网址", "must be an absolute http(s) URL"))
        }
        Ok(parsed) => {
            let host = parsed.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
            if let Ok(ip) = host.parse::<std::net::IpAddr>()
                && rules::is_internal(ip)
                && !ctx.settings.webhooks.allow_private_targets
            {
                errors.add(
                    "url",
                    said(
                        "不能指向本机、内网或链路本地地址（webhooks.allow_private_targets）",
                        "must not point at a loopback, private or link-local address (webhooks.allow_private_targets)",
                    ),
                );
            }
        }
    }
    url.to_owned()
}

fn check_kinds(errors: &mut FieldErrors, kinds: &[String]) -> serde_json::Value {
    if kinds.iter().any(|k| !EVENT_KINDS.contains(&k.as_str())) {
        errors.add("event_kinds", Message::OneOf(EVENT_KINDS.iter().map(|k| k.to_string()).collect()));
    }
    let mut kinds: Vec<&str> = kinds.iter().map(String::as_str).collect();
    kinds.sort_unstable();
    kinds.dedup();
    json!(kinds)
}

fn description(errors: &mut FieldErrors, text: Option<&str>) -> String {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        Some(text) => errors.text("description", text, 500),
        None => String::new(),
    }
}

pub async fn create(ctx: &AppContext, caller: &Caller, input: NewWebhook) -> AppResult<Subscribed> {
    require(caller, Permission::Operate)?;
    let mut errors = FieldErrors::new();
    let url = check_url(ctx, &mut errors, &input.url);
    let kinds = check_kinds(&mut errors, input.event_kinds.as_deref().unwrap_or_default());
    let description = description(&mut errors, input.description.as_deref());
    errors.into_result()?;
    if let Some(unit) = input.unit_id {
        referenced::<grid_unit::Entity>(&ctx.db, "unit_id", unit, "grid unit").await?;
    }
    if let Some(department) = input.department_id {
        referenced::<department::Entity>(&ctx.db, "department_id", department, "department").await?;
    }
    let now = ctx.clock.now();
    let secret = new_secret();
    let txn = begin_write(&ctx.db).await?;
    let subscription = webhook_subscription::ActiveModel {
        id: Set(Uuid::now_v7()),
        url: Set(url),
        description: Set(description),
        event_kinds: Set(kinds),
        unit_id: Set(input.unit_id),
        department_id: Set(input.department_id),
        secret: Set(secret.clone()),
        active: Set(true),
        failing_since: Set(None),
        disabled_at: Set(None),
        disabled_reason: Set(None),
        created_by: Set(Some(caller.user_id).filter(|id| !id.is_nil())),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    audit::record(&txn, Entry::by(caller, "webhook_created", "webhook", subscription.id, json!({})), now).await?;
    txn.commit().await?;
    Ok(Subscribed { subscription, secret })
}

pub async fn list(
    ctx: &AppContext,
    caller: &Caller,
    request: PageRequest,
) -> AppResult<Page<webhook_subscription::Model>> {
    require(caller, Permission::Operate)?;
    let select = webhook_subscription::Entity::find();
    Ok(page::fetch(&ctx.db, select, webhook_subscription::Column::Id, |s| s.id, request).await?)
}

pub async fn get(ctx: &AppContext, caller: &Caller, id: Uuid) -> AppResult<webhook_subscription::Model> {
    require(caller, Permission::Operate)?;
    found::<webhook_subscription::Entity>(&ctx.db, id, "webhook").await
}

pub async fn update(
    ctx: &AppContext,
    caller: &Caller,
    id: Uuid,
    patch: WebhookPatch,
) -> AppResult<webhook_subscription::Model> {
    require(caller, Permission::Operate)?;
    let mut errors = FieldErrors::new();
    let url = patch.url.as_deref().map(|url| check_url(ctx, &mut errors, url));
    let kinds = patch.event_kinds.as_deref().map(|kinds| check_kinds(&mut errors, kinds));
    let description = patch.description.as_deref().map(|text| description(&mut errors, Some(text)));
    errors.into_result()?;
    if let Some(Some(unit)) = patch.unit_id {
        referenced::<grid_unit::Entity>(&ctx.db, "unit_id", unit, "grid unit").await?;
    }
    if let Some(Some(department)) = patch.department_id {
        referenced::<department::Entity>(&ctx.db, "department_id", department, "department").await?;
    }
    let now = ctx.clock.now();
    let txn = begin_write(&ctx.db).await?;
    let current = found::<webhook_subscription::Entity>(&txn, id, "webhook").await?;
    let mut row = current.into_active_model();
    if let Some(url) = url {
        row.url = Set(url);
    }
    if let Some(kinds) = kinds {
        row.event_kinds = Set(kinds);
    }
    if let Some(description) = description {
        row.description = Set(description);
    }
    if let Some(unit) = patch.unit_id {
        row.unit_id = Set(unit);
    }
    if let Some(department) = patch.department_id {
        row.department_id = Set(department);
    }
    if let Some(active) = patch.active {
        row.active = Set(active);
        if active {
            row.failing_since = Set(None);
            row.disabled_at = Set(None);
            row.disabled_reason = Set(None);
        }
    }
    row.updated_at = Set(now);
    let saved = row.update(&txn).await?;
    audit::record(&txn, Entry::by(caller, "webhook_updated", "webhook", id, json!({"active": saved.active})), now)
        .await?;
    txn.commit().await?;
    Ok(saved)
}

pub async fn delete(ctx: &AppContext, caller: &Caller, id: Uuid) -> AppResult<()> {
    require(caller, Permission::Operate)?;
    let now = ctx.clock.now();
    let txn = begin_write(&ctx.db).await?;
    found::<webhook_subscription::Entity>(&txn, id, "webhook").await?;
    // Its deliveries and their attempts go with it (ON DELETE CASCADE).
    webhook_subscription::Entity::delete_by_id(id).exec(&txn).await?;
    audit::record(&txn, Entry::by(caller, "webhook_deleted", "webhook", id, json!({})), now).await?;
    txn.commit().await?;
    Ok(())
}

/// Deletes delivered and failed deliveries with their attempts
/// queued more than `webhooks.keep_deliveries` ago, a batch at a time so no statement holds
/// the table for long. Pending deliveries are a receiver's undelivered events: never deleted.
pub async fn forget_old_deliveries(ctx: &AppContext) -> AppResult<u64> {
    const BATCH: u64 = 5000;
    let keep = chrono::Duration::from_std(ctx.settings.webhooks.keep_deliveries)
        .map_err(|e| AppError::internal_from("webhooks.keep_deliveries", e))?;
    let before = ctx.clock.now() - keep;
    let mut forgotten = 0;
    loop {
        let ids: Vec<Uuid> = webhook_delivery::Entity::find()
            .select_only()
            .column(webhook_delivery::Column::Id)
            .filter(webhook_delivery::Column::Status.is_in([DeliveryStatus::Delivered, DeliveryStatus::Failed]))
            .filter(webhook_delivery::Column::QueuedAt.lt(before))
            .limit(BATCH)
            .into_tuple()
            .all(&ctx.db)
            .await?;
        if ids.is_empty() {
            return Ok(forgotten);
        }
        // The attempts first and by name, not trusting a cascade the schema may not declare.
        webhook_attempt::Entity::delete_many()
            .filter(webhook_attempt::Column::DeliveryId.is_in(ids.clone()))
            .exec(&ctx.db)
            .await?;
        forgotten += webhook_delivery::Entity::delete_many()
            .filter(webhook_delivery::Column::Id.is_in(ids))
            .exec(&ctx.db)
            .await?
            .rows_affected;
    }
}

/// A new secret; deliveries from now on are signed with it (the old one stops at once).
pub async fn rotate_secret(ctx: &AppContext, caller: &Caller, id: Uuid) -> AppResult<Subscribed> {
    require(caller, Permission::Operate)?;
    let now = ctx.clock.now();
    let secret = new_secret();
    let txn = begin_write(&ctx.db).await?;
    let mut row = found::<webhook_subscription::Entity>(&txn, id, "webhook").await?.into_active_model();
    row.secret = Set(secret.clone());
    row.updated_at = Set(now);
    let subscription = row.update(&txn).await?;
    audit::record(&txn, Entry::by(caller, "webhook_secret_rotated", "webhook", id, json!({})), now).await?;
    txn.commit().await?;
    Ok(Subscribed { subscription, secret })
}

/// A delivery and its attempts, oldest attempt first.
pub struct DeliveryView {
    pub delivery: webhook_delivery::Model,
    pub attempts: Vec<webhook_attempt::Model>,
}

/// A subscription's deliveries, newest first, each with its attempts.
pub async fn deliveries(
    ctx: &AppContext,
    caller: &Caller,
    id: Uuid,
    request: PageRequest,
) -> AppResult<Page<DeliveryView>> {
    require(caller, Permission::Operate)?;
    found::<webhook_subscription::Entity>(&ctx.db, id, "webhook").await?;
    let select = webhook_delivery::Entity::find().filter(webhook_delivery::Column::SubscriptionId.eq(id));
    let page =
        page::fetch_ordered(&ctx.db, select, webhook_delivery::Column::Id, |d| d.id, request, page::Order::NewestFirst)
            .await?;
    let ids: Vec<Uuid> = page.items.iter().map(|d| d.id).collect();
    let mut attempts: HashMap<Uuid, Vec<webhook_attempt::Model>> = HashMap::new();
    for attempt in webhook_attempt::Entity::find()
        .filter(webhook_attempt::Column::DeliveryId.is_in(ids))
        .order_by_asc(webhook_attempt::Column::Id)
        .all(&ctx.db)
        .await?
    {
        attempts.entry(attempt.delivery_id).or_default().push(attempt);
    }
    Ok(page.map(|delivery| DeliveryView { attempts: attempts.remove(&delivery.id).unwrap_or_default(), delivery }))
}

/// Sends a delivery again (same `webhook-id`, so a receiver that has it can drop it): due
/// now, with a fresh `webhooks.retention` window. The subscription must be active.
pub async fn redeliver(ctx: &AppContext, caller: &Caller, id: Uuid) -> AppResult<DeliveryView> {
    require(caller, Permission::Operate)?;
    let now = ctx.clock.now();
    let txn = begin_write(&ctx.db).await?;
    let delivery = found::<webhook_delivery::Entity>(&txn, id, "webhook delivery").await?;
    let subscription = found::<webhook_subscription::Entity>(&txn, delivery.subscription_id, "webhook").await?;
    if !subscription.active {
        return Err(AppError::refused(
            crate::error::Refusal::Conflict,
            "该订阅已停用，请先以 PATCH {\"active\": true} 启用",
            "the subscription is disabled; enable it first with PATCH {\"active\": true}",
        ));
    }
    let mut row = delivery.into_active_model();
    row.status = Set(DeliveryStatus::Pending);
    row.next_attempt_at = Set(now);
    row.queued_at = Set(now);
    row.lease_until = Set(None);
    row.lease_token = Set(None);
    let delivery = row.update(&txn).await?;
    audit::record(&txn, Entry::by(caller, "webhook_redelivered", "webhook_delivery", id, json!({})), now).await?;
    txn.commit().await?;
    let attempts = webhook_attempt::Entity::find()
        .filter(webhook_attempt::Column::DeliveryId.eq(id))
        .order_by_asc(webhook_attempt::Column::Id)
        .all(&ctx.db)
        .await?;
    Ok(DeliveryView { delivery, attempts })
}

/// The wall-clock time for `webhook-timestamp`: receivers compare it with their own clocks
/// to refuse replays, so it is the real time of the attempt, not the injectable clock.
pub fn wall_clock_seconds() -> i64 {
    Utc::now().timestamp()
}
