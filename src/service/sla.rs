//! SLA clocks and policies: clocks start and stop with the lifecycle, in the caller's
//! transaction; their deadlines are stored so the sweeper finds due ones from an index.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entities::{ClockStop, Priority, category, sla_clock, sla_policy, ticket};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set, sea_query::Expr,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{found, require};
use crate::{
    context::AppContext,
    db::begin_write,
    domain::{
        access::{Caller, Permission},
        calendar::SlaDuration,
        sla::{ClockKind, SlaDurations, SlaState, warning_point},
        validate::FieldErrors,
    },
    error::{AppError, AppResult},
};

/// The durations that apply to tickets of `category_id` at `priority`.
pub async fn durations(
    ctx: &AppContext,
    db: &impl ConnectionTrait,
    category_id: Uuid,
    priority: Priority,
) -> AppResult<SlaDurations> {
    let stored = sla_policy::Entity::find_by_id((category_id, priority_name(priority).to_owned())).one(db).await?;
    Ok(match stored {
        Some(row) => from_row(&row, default_for(ctx, priority)),
        None => default_for(ctx, priority),
    })
}

fn default_for(ctx: &AppContext, priority: Priority) -> SlaDurations {
    match priority {
        Priority::Normal => ctx.settings.sla.normal.durations(),
        Priority::Urgent => ctx.settings.sla.urgent.durations(),
    }
}

pub fn priority_name(priority: Priority) -> &'static str {
    match priority {
        Priority::Normal => "normal",
        Priority::Urgent => "urgent",
    }
}

/// A stored policy's durations. One that no longer parses (stored before durations were capped
/// at a year) gives way to the configured default, with a warning, rather than failing every
/// filing of its category.
fn from_row(row: &sla_policy::Model, defaults: SlaDurations) -> SlaDurations {
    let parse = |name: &str, text: &str, default: SlaDuration| {
        SlaDuration::parse(text).unwrap_or_else(|message| {
            tracing::warn!(category_id = %row.category_id, priority = %row.priority, clock = name, %message,
                "stored SLA duration unusable; the default applies");
            default
        })
    };
    SlaDurations {
        acknowledge: parse("acknowledge", &row.acknowledge, defaults.acknowledge),
        first_contact: parse("first_contact", &row.first_contact, defaults.first_contact),
        resolve: parse("resolve", &row.resolve, defaults.resolve),
        rectify: parse("rectify", &row.rectify, defaults.rectify),
        rating_window: parse("rating_window", &row.rating_window, defaults.rating_window),
    }
}

/// Starts a clock now. A policy change later affects only clocks started after it.
pub async fn start(
    ctx: &AppContext,
    db: &impl ConnectionTrait,
    ticket: &ticket::Model,
    dispatch_id: Option<Uuid>,
    clock: ClockKind,
    now: DateTime<Utc>,
) -> AppResult<sla_clock::Model> {
    let duration = durations(ctx, db, ticket.category_id, ticket.priority).await?.of(clock);
    let deadline = ctx.calendar().add(now, duration);
    let warn_at = warning_point(&ctx.calendar(), duration, now, deadline.at, ctx.settings.sla.warn_at);
    let followup_at =
        (clock == ClockKind::Resolve).then(|| ctx.calendar().add(deadline.at, ctx.settings.sla.followup_after).at);
    Ok(sla_clock::ActiveModel {
        id: Set(Uuid::now_v7()),
        ticket_id: Set(ticket.id),
        dispatch_id: Set(dispatch_id),
        clock: Set(clock.as_str().to_owned()),
        duration: Set(duration.to_string()),
        started_at: Set(now),
        warn_at: Set(warn_at),
        due_at: Set(deadline.at),
        followup_at: Set(followup_at),
        next_check_at: Set(Some(warn_at)),
        warned_at: Set(None),
        breached_at: Set(None),
        followed_up_at: Set(None),
        stopped_at: Set(None),
        stop_reason: Set(None),
        estimated: Set(deadline.estimated),
        last_error: Set(None),
        failures: Set(0),
    }
    .insert(db)
    .await?)
}

/// Stops the running clocks of a ticket that match: of these kinds, and (if given) of one dispatch.
pub async fn stop(
    db: &impl ConnectionTrait,
    ticket_id: Uuid,
    kinds: &[ClockKind],
    dispatch_id: Option<Uuid>,
    reason: ClockStop,
    now: DateTime<Utc>,
) -> AppResult<u64> {
    let mut update = sla_clock::Entity::update_many()
        .col_expr(sla_clock::Column::StoppedAt, Expr::val(now))
        .col_expr(sla_clock::Column::StopReason, Expr::val(reason))
        .col_expr(sla_clock::Column::NextCheckAt, Expr::val(Option::<DateTime<Utc>>::None))
        .filter(sla_clock::Column::TicketId.eq(ticket_id))
        .filter(sla_clock::Column::StoppedAt.is_null())
        .filter(sla_clock::Column::Clock.is_in(kinds.iter().map(|k| k.as_str())));
    if let Some(dispatch_id) = dispatch_id {
        update = update.filter(sla_clock::Column::DispatchId.eq(dispatch_id));
    }
    Ok(update.exec(db).await?.rows_affected)
}

/// Moves a running clock's deadline (an approved extension); the milestones follow it.
pub async fn extend(
    ctx: &AppContext,
    db: &impl ConnectionTrait,
    clock: &sla_clock::Model,
    by: SlaDuration,
) -> AppResult<sla_clock::Model> {
    let due = ctx.calendar().add(clock.due_at, by);
    let original = SlaDuration::parse(&clock.duration).map_err(AppError::Internal)?;
    let warn_at = warning_point(&ctx.calendar(), original, clock.started_at, due.at, ctx.settings.sla.warn_at);
    let followup_at = clock.followup_at.map(|_| ctx.calendar().add(due.at, ctx.settings.sla.followup_after).at);
    let mut row: sla_clock::ActiveModel = clock.clone().into();
    row.due_at = Set(due.at);
    row.warn_at = Set(warn_at);
    row.followup_at = Set(followup_at);
    row.estimated = Set(clock.estimated || due.estimated);
    // Milestones not yet fired are looked at again against the new deadline.
    row.next_check_at = Set(next_check(
        clock.warned_at.is_some(),
        clock.breached_at.is_some(),
        clock.followed_up_at.is_some(),
        warn_at,
        due.at,
        followup_at,
    ));
    Ok(row.update(db).await?)
}

/// The next milestone that has not fired yet, or `None` when all have.
pub fn next_check(
    warned: bool,
    breached: bool,
    followed_up: bool,
    warn_at: DateTime<Utc>,
    due_at: DateTime<Utc>,
    followup_at: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    if !warned {
        Some(warn_at)
    } else if !breached {
        Some(due_at)
    } else if !followed_up {
        followup_at
    } else {
        None
    }
}

pub async fn clocks_of(
    db: &impl ConnectionTrait,
    ticket_ids: &[Uuid],
) -> AppResult<HashMap<Uuid, Vec<sla_clock::Model>>> {
    let mut by_ticket: HashMap<Uuid, Vec<sla_clock::Model>> = HashMap::new();
    for clock in sla_clock::Entity::find()
        .filter(sla_clock::Column::TicketId.is_in(ticket_ids.iter().copied()))
        .order_by_asc(sla_clock::Column::Id)
        .all(db)
        .await?
    {
        by_ticket.entry(clock.ticket_id).or_default().push(clock);
    }
    Ok(by_ticket)
}

/// How a clock reads now, for API responses.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClockStatus {
    /// acknowledge, first_contact, resolve or rectify
    pub clock: String,
    pub dispatch_id: Option<Uuid>,
    pub started_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    /// on_track, warning, breached — or met / missed once its goal was reached, cancelled when the
    /// ticket or dispatch ended without it (closure, cancellation, a return).
    pub state: String,
    /// Working time left (negative when late), in seconds, the way the clock counts.
    pub remaining_seconds: i64,
    pub stopped_at: Option<DateTime<Utc>>,
    /// The deadline relied on a year with no loaded holiday schedule.
    pub estimated: bool,
}

pub fn status(ctx: &AppContext, clock: &sla_clock::Model, now: DateTime<Utc>) -> ClockStatus {
    let end = clock.stopped_at.unwrap_or(now);
    let working = SlaDuration::parse(&clock.duration).is_ok_and(|d| !matches!(d, SlaDuration::Calendar(_)));
    let remaining = match (working, end <= clock.due_at) {
        (true, true) => ctx.calendar().working_time_between(end, clock.due_at).num_seconds(),
        (true, false) => -ctx.calendar().working_time_between(clock.due_at, end).num_seconds(),
        (false, _) => (clock.due_at - end).num_seconds(),
    };
    let state = match clock.stopped_at {
        // Stopped by closure, cancellation or a return: the goal was never reached.
        Some(_) if clock.stop_reason == Some(ClockStop::Cancelled) => "cancelled",
        Some(stopped) if stopped <= clock.due_at => "met",
        Some(_) => "missed",
        None => SlaState::at(now, clock.warn_at, clock.due_at).as_str(),
    };
    ClockStatus {
        clock: clock.clock.clone(),
        dispatch_id: clock.dispatch_id,
        started_at: clock.started_at,
        due_at: clock.due_at,
        state: state.to_owned(),
        remaining_seconds: remaining,
        stopped_at: clock.stopped_at,
        estimated: clock.estimated,
    }
}

// ---- the policy API ----------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DurationTexts {
    #[schema(example = "2h working")]
    pub acknowledge: String,
    #[schema(example = "24h")]
    pub first_contact: String,
    #[schema(example = "7d working")]
    pub resolve: String,
    #[schema(example = "15d working")]
    pub rectify: String,
    #[schema(example = "3d")]
    pub rating_window: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyBody {
    pub normal: DurationTexts,
    pub urgent: DurationTexts,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EffectivePolicy {
    pub category_id: Uuid,
    pub normal: DurationTexts,
    pub urgent: DurationTexts,
    /// false: the configured defaults apply.
    pub customised: bool,
}

fn texts(d: &SlaDurations) -> DurationTexts {
    DurationTexts {
        acknowledge: d.acknowledge.to_string(),
        first_contact: d.first_contact.to_string(),
        resolve: d.resolve.to_string(),
        rectify: d.rectify.to_string(),
        rating_window: d.rating_window.to_string(),
    }
}

pub async fn policy(ctx: &AppContext, caller: &Caller, category_id: Uuid) -> AppResult<EffectivePolicy> {
    require(caller, Permission::ReadRouting)?;
    found::<category::Entity>(&ctx.db, category_id, "category").await?;
    effective(ctx, category_id).await
}

async fn effective(ctx: &AppContext, category_id: Uuid) -> AppResult<EffectivePolicy> {
    let stored = sla_policy::Entity::find().filter(sla_policy::Column::CategoryId.eq(category_id)).all(&ctx.db).await?;
    Ok(EffectivePolicy {
        category_id,
        normal: texts(&durations(ctx, &ctx.db, category_id, Priority::Normal).await?),
        urgent: texts(&durations(ctx, &ctx.db, category_id, Priority::Urgent).await?),
        customised: !stored.is_empty(),
    })
}

/// The effective policy of each category, a page at a time (by category id).
pub async fn policies(
    ctx: &AppContext,
    caller: &Caller,
    request: crate::repo::page::PageRequest,
) -> AppResult<crate::repo::page::Page<EffectivePolicy>> {
    require(caller, Permission::ReadRouting)?;
    let categories =
        crate::repo::page::fetch(&ctx.db, category::Entity::find(), category::Column::Id, |c| c.id, request).await?;
    let mut items = Vec::with_capacity(categories.items.len());
    for category in &categories.items {
        items.push(effective(ctx, category.id).await?);
    }
    Ok(crate::repo::page::Page { items, next_cursor: categories.next_cursor })
}

pub async fn put_policy(
    ctx: &AppContext,
    caller: &Caller,
    category_id: Uuid,
    body: PolicyBody,
) -> AppResult<EffectivePolicy> {
    require(caller, Permission::ManageReferenceData)?;
    let mut errors = FieldErrors::new();
    for (priority, texts) in [("normal", &body.normal), ("urgent", &body.urgent)] {
        for (name, text) in [
            ("acknowledge", &texts.acknowledge),
            ("first_contact", &texts.first_contact),
            ("resolve", &texts.resolve),
            ("rectify", &texts.rectify),
            ("rating_window", &texts.rating_window),
        ] {
            if let Err(message) = SlaDuration::parse(text) {
                errors.add(&format!("{priority}.{name}"), message);
            }
        }
    }
    errors.into_result()?;
    let txn = begin_write(&ctx.db).await?;
    found::<category::Entity>(&txn, category_id, "category").await?;
    sla_policy::Entity::delete_many().filter(sla_policy::Column::CategoryId.eq(category_id)).exec(&txn).await?;
    let now = ctx.clock.now();
    for (priority, texts) in [("normal", &body.normal), ("urgent", &body.urgent)] {
        // Stored in the canonical spelling, so reading back gives what the clocks use.
        let canonical = |t: &str| SlaDuration::parse(t).map(|d| d.to_string()).unwrap_or_default();
        sla_policy::ActiveModel {
            category_id: Set(category_id),
            priority: Set(priority.to_owned()),
            acknowledge: Set(canonical(&texts.acknowledge)),
            first_contact: Set(canonical(&texts.first_contact)),
            resolve: Set(canonical(&texts.resolve)),
            rectify: Set(canonical(&texts.rectify)),
            rating_window: Set(canonical(&texts.rating_window)),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await?;
    }
    let detail = serde_json::json!({"normal": body.normal, "urgent": body.urgent});
    super::audit::record(
        &txn,
        super::audit::Entry::by(caller, "sla_policy_changed", "category", category_id, detail),
        now,
    )
    .await?;
    txn.commit().await?;
    effective(ctx, category_id).await
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    #[test]
    fn a_stored_duration_over_a_year_gives_way_to_the_default() {
        let defaults = SlaDurations {
            acknowledge: SlaDuration::WorkingTime(Duration::hours(2)),
            first_contact: SlaDuration::Calendar(Duration::hours(24)),
            resolve: SlaDuration::WorkingDays(7),
            rectify: SlaDuration::WorkingDays(15),
            rating_window: SlaDuration::Calendar(Duration::days(3)),
        };
        let row = sla_policy::Model {
            category_id: Uuid::nil(),
            priority: "normal".into(),
            acknowledge: "30m".into(),
            first_contact: "24h working".into(),
            resolve: "400d".into(),
            rectify: "9999999999h working".into(),
            rating_window: "5d".into(),
            updated_at: chrono::DateTime::UNIX_EPOCH,
        };
        let read = from_row(&row, defaults);
        assert_eq!(read.acknowledge, SlaDuration::Calendar(Duration::minutes(30)));
        assert_eq!(read.first_contact, SlaDuration::WorkingTime(Duration::hours(24)));
        assert_eq!(read.resolve, defaults.resolve);
        assert_eq!(read.rectify, defaults.rectify);
        assert_eq!(read.rating_window, SlaDuration::Calendar(Duration::days(5)));
    }
}
