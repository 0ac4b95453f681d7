//! Clean-up nobody should have to remember: tokens that expired or were revoked a week ago,
//! idempotency keys older than a week (phones retry within minutes, not days), and failed
//! logins under names that have been quiet and unlocked for a week; uploads never attached
//! (after `uploads.unattached_ttl`) and stored objects no upload names; finished webhook
//! deliveries after `webhooks.keep_deliveries`.

use chrono::Duration;
use entities::{api_token, idempotency_key};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter};

use crate::{context::AppContext, error::AppResult};

const KEEP: Duration = Duration::days(7);

/// Deletes what is past keeping; returns how many records (tokens, idempotency keys, failed-login
/// counts, uploads, sensor receipts, webhook deliveries) went.
pub async fn run(ctx: &AppContext) -> AppResult<u64> {
    let before = ctx.clock.now() - KEEP;
    let tokens = api_token::Entity::delete_many()
        .filter(
            Condition::any().add(api_token::Column::ExpiresAt.lt(before)).add(api_token::Column::RevokedAt.lt(before)),
        )
        .exec(&ctx.db)
        .await?
        .rows_affected;
    let keys = idempotency_key::Entity::delete_many()
        .filter(idempotency_key::Column::CreatedAt.lt(before))
        .exec(&ctx.db)
        .await?
        .rows_affected;
    let login_failures = crate::repo::login_failures::forget_older_than(&ctx.db, before).await?;
    let receipts = crate::service::sensor_alarms::forget_old_receipts(ctx).await?;
    // Rate-limit minutes are counters, not records: cleared, not counted.
    let windows = crate::limits::forget_old_windows(&ctx.db, ctx.clock.now()).await?;
    tracing::debug!(windows, "old rate-limit windows cleared");
    let uploads = crate::service::uploads::forget_unattached(ctx).await?;
    let deliveries = crate::service::webhooks::forget_old_deliveries(ctx).await?;
    Ok(tokens + keys + login_failures + uploads + receipts + deliveries)
}
