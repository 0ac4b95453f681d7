//! The outbox as operators see it: how much mail waits or is dead (for `/readyz` and the
//! metrics), and re-queueing dead mail once its cause (a wrong address, a long outage) is
//! dealt with. Sending is `workers::mailer`'s.

use chrono::{DateTime, Utc};
use entities::enums::MailStatus;
use entities::notification;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, sea_query::Expr,
};
use serde_json::json;
use uuid::Uuid;

use super::{audit, found, require};
use crate::{
    context::AppContext,
    domain::access::{Caller, Permission},
    error::{AppError, AppResult},
};

/// The outbox at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct OutboxHealth {
    pub pending: u64,
    pub dead: u64,
    /// When the oldest mail still waiting was written: how far behind delivery is.
    pub oldest_pending_at: Option<DateTime<Utc>>,
}

pub async fn outbox_health(db: &impl ConnectionTrait) -> AppResult<OutboxHealth> {
    let count =
        |status: MailStatus| notification::Entity::find().filter(notification::Column::Status.eq(status)).count(db);
    let pending = count(MailStatus::Pending).await?;
    let dead = count(MailStatus::Dead).await?;
    let oldest_pending_at = notification::Entity::find()
        .select_only()
        .column(notification::Column::CreatedAt)
        .filter(notification::Column::Status.eq(MailStatus::Pending))
        .order_by_asc(notification::Column::CreatedAt)
        .into_tuple::<DateTime<Utc>>()
        .one(db)
        .await?;
    Ok(OutboxHealth { pending, dead, oldest_pending_at })
}

/// Puts one mail back in the queue, due now and with a fresh `smtp.retention` window: a dead
/// mail, or a pending one an admin wants tried at once. A sent mail is not sent again (409).
pub async fn retry(ctx: &AppContext, caller: &Caller, id: Uuid) -> AppResult<notification::Model> {
    require(caller, Permission::Operate)?;
    let mail = found::<notification::Entity>(&ctx.db, id, "notification").await?;
    if mail.status == MailStatus::Sent {
        return Err(AppError::Conflict("this mail has been sent; it is not sent again".into()));
    }
    let now = ctx.clock.now();
    let requeued = requeue(now)
        .filter(notification::Column::Id.eq(id))
        .filter(notification::Column::Status.is_in([MailStatus::Dead, MailStatus::Pending]))
        .exec(&ctx.db)
        .await?;
    if requeued.rows_affected == 0 {
        return Err(AppError::Conflict("this mail has just been sent; it is not sent again".into()));
    }
    record(ctx, caller, "notification_requeued", id.to_string(), json!({"was": mail.status})).await?;
    found::<notification::Entity>(&ctx.db, id, "notification").await
}

/// Puts every dead mail back in the queue; answers how many.
pub async fn retry_dead(ctx: &AppContext, caller: &Caller) -> AppResult<u64> {
    require(caller, Permission::Operate)?;
    let now = ctx.clock.now();
    let requeued =
        requeue(now).filter(notification::Column::Status.eq(MailStatus::Dead)).exec(&ctx.db).await?.rows_affected;
    record(ctx, caller, "dead_notifications_requeued", "dead".into(), json!({"requeued": requeued})).await?;
    Ok(requeued)
}

/// Pending, due now, attempts counted afresh (the backoff starts over), the retention window
/// starting now. The last error stays for the record. A lease in progress is left alone.
fn requeue(now: DateTime<Utc>) -> sea_orm::UpdateMany<notification::Entity> {
    notification::Entity::update_many()
        .col_expr(notification::Column::Status, Expr::value(MailStatus::Pending))
        .col_expr(notification::Column::Attempts, Expr::value(0))
        .col_expr(notification::Column::NextAttemptAt, Expr::value(now))
        .col_expr(notification::Column::QueuedAt, Expr::value(Some(now)))
}

async fn record(
    ctx: &AppContext,
    caller: &Caller,
    action: &'static str,
    target: String,
    detail: serde_json::Value,
) -> AppResult<()> {
    audit::record(&ctx.db, audit::Entry::by(caller, action, "notification", target, detail), ctx.clock.now()).await
}
