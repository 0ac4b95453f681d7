//! What every timeline event sets off inside its own transaction: a webhook outbox row for
//! each subscription that wants it, and (PostgreSQL) a `NOTIFY` that live event streams on
//! every replica pick up once the transaction commits. Called from the one place events are
//! written ([`super::tickets::record_event`]), so no change can forget it.

use chrono::{DateTime, Utc};
use entities::enums::DeliveryStatus;
use entities::{dispatch, grid_unit, ticket, ticket_event, webhook_delivery, webhook_subscription};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, Set, Statement,
};
use uuid::Uuid;

/// The PostgreSQL channel whose payload is the id of a committed timeline event.
pub const EVENTS_CHANNEL: &str = "gridwhistle_events";

pub async fn after_event(db: &impl ConnectionTrait, event: &ticket_event::Model) -> Result<(), DbErr> {
    enqueue_webhooks(db, event).await?;
    if db.get_database_backend() == DbBackend::Postgres {
        // Delivered by PostgreSQL only when (and if) the transaction commits.
        db.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [EVENTS_CHANNEL.into(), event.id.to_string().into()],
        ))
        .await?;
    }
    Ok(())
}

/// Whether a subscription's `event_kinds` (a JSON array; empty = all) names `kind`.
pub fn wants_kind(kinds: &serde_json::Value, kind: &str) -> bool {
    match kinds.as_array() {
        Some(kinds) if !kinds.is_empty() => kinds.iter().any(|k| k.as_str() == Some(kind)),
        _ => true,
    }
}

/// One pending delivery per active subscription whose kinds and scope take the event. The
/// body's `data` is written by the delivery worker at the first attempt, after this
/// transaction has committed, so it shows the ticket as the change left it.
async fn enqueue_webhooks(db: &impl ConnectionTrait, event: &ticket_event::Model) -> Result<(), DbErr> {
    let subscriptions: Vec<webhook_subscription::Model> = webhook_subscription::Entity::find()
        .filter(webhook_subscription::Column::Active.eq(true))
        .all(db)
        .await?
        .into_iter()
        .filter(|s| wants_kind(&s.event_kinds, &event.kind))
        .collect();
    if subscriptions.is_empty() {
        return Ok(());
    }
    let Some(ticket) = ticket::Entity::find_by_id(event.ticket_id).one(db).await? else {
        return Ok(());
    };
    let dispatches = dispatch::Entity::find().filter(dispatch::Column::TicketId.eq(ticket.id)).all(db).await?;
    let mut unit_ids: Vec<Uuid> = subscriptions.iter().filter_map(|s| s.unit_id).collect();
    unit_ids.push(ticket.unit_id);
    let paths: std::collections::HashMap<Uuid, String> = grid_unit::Entity::find()
        .filter(grid_unit::Column::Id.is_in(unit_ids))
        .all(db)
        .await?
        .into_iter()
        .map(|u| (u.id, u.path))
        .collect();
    let ticket_path = paths.get(&ticket.unit_id).cloned().unwrap_or_default();
    for subscription in subscriptions {
        let in_unit = subscription.unit_id.is_none_or(|unit| {
            paths.get(&unit).is_some_and(|path| !ticket_path.is_empty() && ticket_path.starts_with(path.as_str()))
        });
        let in_department = subscription.department_id.is_none_or(|department| {
            let own: Vec<Uuid> = dispatches.iter().filter(|d| d.department_id == department).map(|d| d.id).collect();
            // A department's receiver gets the ticket-level facts of tickets dispatched to
            // it and its own dispatches' events, never another department's (as its staff).
            !own.is_empty() && event.dispatch_id.is_none_or(|d| own.contains(&d))
        });
        if in_unit && in_department {
            insert_delivery(db, subscription.id, event, event.at).await?;
        }
    }
    Ok(())
}

async fn insert_delivery(
    db: &impl ConnectionTrait,
    subscription_id: Uuid,
    event: &ticket_event::Model,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    webhook_delivery::ActiveModel {
        id: Set(Uuid::now_v7()),
        subscription_id: Set(subscription_id),
        event_id: Set(event.id),
        ticket_id: Set(event.ticket_id),
        event_type: Set(format!("ticket.{}", event.kind)),
        event_at: Set(event.at),
        payload: Set(serde_json::Value::Null),
        status: Set(DeliveryStatus::Pending),
        attempts: Set(0),
        next_attempt_at: Set(now),
        lease_until: Set(None),
        lease_token: Set(None),
        last_status_code: Set(None),
        last_error: Set(None),
        last_latency_ms: Set(None),
        created_at: Set(now),
        queued_at: Set(now),
        delivered_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(())
}
