//! The SLA sweeper: fires warnings, breaches and follow-ups of due clocks, once each, and
//! auto-closes unrated tickets. Due clocks come from the `next_check_at` index a batch at a
//! time; on PostgreSQL each batch is claimed `FOR UPDATE SKIP LOCKED`, so several replicas
//! share the work and never fire the same milestone twice. Each clock is processed in a
//! savepoint of its own: one that fails is rolled back alone, keeps its error, is counted in
//! `gridwhistle_sweeper_clock_failures_total` and is retried later with backoff.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entities::{dispatch, sla_clock, ticket};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    TransactionTrait,
    sea_query::{Expr, LockBehavior, LockType},
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::{
    context::AppContext,
    db::begin_write,
    domain::{escalation::Trigger, sla::ClockKind, ticket::event},
    error::{AppError, AppResult},
    metrics, repo,
    service::{escalation, sla::next_check, tickets},
};

/// How many batches one tick may take, so a backlog cannot starve the loop's cancellation.
const MAX_BATCHES_PER_TICK: usize = 50;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    pub warnings: usize,
    pub breaches: usize,
    pub followups: usize,
    pub auto_closed: usize,
}

pub async fn run(ctx: AppContext, token: CancellationToken) {
    let mut last_housekeeping: Option<std::time::Instant> = None;
    loop {
        if last_housekeeping.is_none_or(|at| at.elapsed() >= Duration::from_secs(3600)) {
            match crate::service::housekeeping::run(&ctx).await {
                Ok(removed) if removed > 0 => {
                    tracing::info!(removed, "expired tokens and old idempotency keys removed")
                }
                Ok(_) => {}
                Err(err) => tracing::error!(error = %err.chain(), "housekeeping failed"),
            }
            last_housekeeping = Some(std::time::Instant::now());
        }
        match run_once(&ctx).await {
            Ok(report) if report != SweepReport::default() => tracing::info!(?report, "sla sweep"),
            Ok(_) => {}
            Err(err) => tracing::error!(error = %err.chain(), "sla sweep failed; retrying next tick"),
        }
        match crate::service::sensor_alarms::report_silent_devices(&ctx, ctx.settings.sla.sweep_batch).await {
            Ok(0) => {}
            Ok(filed) => tracing::info!(filed, "silent sensors reported offline"),
            Err(err) => tracing::error!(error = %err.chain(), "silent-sensor sweep failed; retrying next tick"),
        }
        let wait = until_next_deadline(&ctx).await.unwrap_or(ctx.settings.sla.sweep_interval);
        if !super::pause(&token, wait.min(ctx.settings.sla.sweep_interval)).await {
            break;
        }
    }
}

/// Time until the earliest pending milestone, so a deadline is not late by a whole interval.
async fn until_next_deadline(ctx: &AppContext) -> Option<Duration> {
    let next: Option<DateTime<Utc>> = sla_clock::Entity::find()
        .select_only()
        .column_as(sla_clock::Column::NextCheckAt.min(), "next")
        .filter(sla_clock::Column::StoppedAt.is_null())
        .into_tuple()
        .one(&ctx.db)
        .await
        .ok()
        .flatten()
        .flatten();
    next.map(|at| (at - ctx.clock.now()).to_std().unwrap_or(Duration::ZERO).max(Duration::from_millis(200)))
}

pub async fn run_once(ctx: &AppContext) -> AppResult<SweepReport> {
    let mut report = SweepReport::default();
    for _ in 0..MAX_BATCHES_PER_TICK {
        if sweep_batch(ctx, &mut report).await? < ctx.settings.sla.sweep_batch as usize {
            break;
        }
    }
    report.auto_closed = tickets::auto_close_due(ctx, ctx.settings.sla.sweep_batch).await?;
    Ok(report)
}

async fn sweep_batch(ctx: &AppContext, report: &mut SweepReport) -> AppResult<usize> {
    let now = ctx.clock.now();
    let txn = begin_write(&ctx.db).await?;
    // A fixed order (deadline, then id) so replicas and retries see the same sequence; on
    // PostgreSQL rows another sweeper holds are skipped, never waited for.
    let mut select = sla_clock::Entity::find()
        .filter(sla_clock::Column::NextCheckAt.lte(now))
        .filter(sla_clock::Column::StoppedAt.is_null())
        .order_by_asc(sla_clock::Column::NextCheckAt)
        .order_by_asc(sla_clock::Column::Id)
        .limit(ctx.settings.sla.sweep_batch);
    if txn.get_database_backend() == DbBackend::Postgres {
        select = select.lock_with_behavior(LockType::NoKeyUpdate, LockBehavior::SkipLocked);
    }
    let due = select.all(&txn).await?;
    for clock in &due {
        // Each clock in a savepoint of its own: one that fails is undone alone and put aside,
        // and the batch goes on without it.
        let savepoint = txn.begin().await?;
        match fire_due(ctx, &savepoint, clock, now).await {
            Ok(fired) => {
                savepoint.commit().await?;
                fired.count(clock, report);
            }
            Err(err) => {
                savepoint.rollback().await?;
                put_aside(&txn, clock, &err, now).await?;
            }
        }
    }
    txn.commit().await?;
    Ok(due.len())
}

/// What one clock fired, counted once its savepoint is committed.
#[derive(Debug, Default)]
struct Fired {
    warning: bool,
    breach: bool,
    followup: bool,
}

impl Fired {
    fn count(&self, clock: &sla_clock::Model, report: &mut SweepReport) {
        if self.warning {
            report.warnings += 1;
            metrics::sla_events().with_label_values(&["warning", &clock.clock]).inc();
        }
        if self.breach {
            report.breaches += 1;
            metrics::sla_events().with_label_values(&["breach", &clock.clock]).inc();
        }
        if self.followup {
            report.followups += 1;
        }
    }
}

/// Records why a clock failed and when to try it again: a minute after the first failure,
/// doubling up to an hour, so a clock that keeps failing neither blocks nor floods.
async fn put_aside(
    db: &impl ConnectionTrait,
    clock: &sla_clock::Model,
    err: &AppError,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let failures = clock.failures.saturating_add(1);
    let retry_at = now + retry_delay(failures);
    let error: String = err.chain().chars().take(2000).collect();
    tracing::error!(
        clock_id = %clock.id,
        ticket_id = %clock.ticket_id,
        clock = %clock.clock,
        failures,
        %retry_at,
        error = %error,
        "an SLA clock could not be processed; the others go on and it is retried later"
    );
    let kind = ClockKind::parse(&clock.clock).map_or("unknown", |kind| kind.as_str());
    metrics::sweeper_clock_failures().with_label_values(&[kind]).inc();
    sla_clock::Entity::update_many()
        .col_expr(sla_clock::Column::LastError, Expr::value(error))
        .col_expr(sla_clock::Column::Failures, Expr::value(failures))
        .col_expr(sla_clock::Column::NextCheckAt, Expr::value(retry_at))
        .filter(sla_clock::Column::Id.eq(clock.id))
        .exec(db)
        .await?;
    Ok(())
}

fn retry_delay(failures: i32) -> chrono::Duration {
    let exponent = failures.clamp(1, 7) as u32 - 1;
    chrono::Duration::minutes((1_i64 << exponent).min(60))
}

/// Fires every milestone of one clock that has passed and not fired, then points the clock
/// at its next one. After downtime that can be warning and breach together — each once.
async fn fire_due(
    ctx: &AppContext,
    db: &impl ConnectionTrait,
    clock: &sla_clock::Model,
    now: DateTime<Utc>,
) -> AppResult<Fired> {
    let kind =
        ClockKind::parse(&clock.clock).ok_or_else(|| AppError::Internal(format!("unknown clock {}", clock.clock)))?;
    let ticket =
        ticket::Entity::find_by_id(clock.ticket_id).one(db).await?.ok_or_else(|| AppError::not_found("ticket"))?;
    let dispatch = match clock.dispatch_id {
        Some(id) => dispatch::Entity::find_by_id(id).one(db).await?,
        None => None,
    };
    let mut row: sla_clock::ActiveModel = clock.clone().into();
    let mut fired = Fired::default();
    let (mut warned, mut breached, mut followed_up) =
        (clock.warned_at.is_some(), clock.breached_at.is_some(), clock.followed_up_at.is_some());
    let cause = |trigger| escalation::Cause {
        trigger,
        ticket: &ticket,
        clock_id: Some(clock.id),
        dispatch: dispatch.as_ref(),
        deadline: Some(clock.due_at),
    };
    let payload = json!({
        "clock": kind.as_str(),
        "due_at": clock.due_at,
        "dispatch_id": clock.dispatch_id,
        "department_id": dispatch.as_ref().map(|d| d.department_id),
    });
    if !warned && now >= clock.warn_at {
        repo::tickets::record_event(db, ticket.id, clock.dispatch_id, event::SLA_WARNING, None, now, payload.clone())
            .await?;
        escalation::fire(ctx, db, &cause(Trigger::Warning(kind)), now).await?;
        row.warned_at = Set(Some(now));
        warned = true;
        fired.warning = true;
    }
    if !breached && now >= clock.due_at {
        repo::tickets::record_event(db, ticket.id, clock.dispatch_id, event::SLA_BREACHED, None, now, payload.clone())
            .await?;
        escalation::fire(ctx, db, &cause(Trigger::Breach(kind)), now).await?;
        row.breached_at = Set(Some(now));
        breached = true;
        fired.breach = true;
    }
    if breached && !followed_up && clock.followup_at.is_some_and(|at| now >= at) {
        escalation::fire(ctx, db, &cause(Trigger::ResolveFollowup), now).await?;
        row.followed_up_at = Set(Some(now));
        followed_up = true;
        fired.followup = true;
    }
    row.next_check_at = Set(next_check(warned, breached, followed_up, clock.warn_at, clock.due_at, clock.followup_at));
    if clock.failures > 0 {
        row.failures = Set(0);
        row.last_error = Set(None);
    }
    row.update(db).await?;
    Ok(fired)
}
