//! The business calendar as a service: deadline arithmetic for clients, and adding a year's
//! holiday schedule without a restart.

use crate::domain::{calendar::parse_instant, validate::Message};
use entities::calendar_year;
use sea_orm::{EntityTrait, QueryOrder, Set, sea_query::OnConflict};

use super::require;
use crate::{
    context::AppContext,
    db::begin_write,
    domain::{
        access::{Caller, Permission},
        calendar::{Deadline, SlaDuration, YearSchedule, check_instant_near},
        validate::FieldErrors,
    },
    error::{AppError, AppResult},
};

/// `start + duration`; both bounded (a year at most, within a century of today), so the
/// arithmetic is short and never leaves the calendar.
/// `start` as the client wrote it: with an offset, or local time in the city's time zone.
pub fn deadline(ctx: &AppContext, start: &str, duration: &str) -> AppResult<Deadline> {
    let mut errors = FieldErrors::new();
    // The specifics stay in English after a Chinese summary: they quote what was sent.
    let duration = SlaDuration::parse(duration)
        .map_err(|m| {
            errors.add("duration", Message::said(format!("应为时长，如 30m、2h working、7d working（{m}）"), m))
        })
        .ok();
    let start = parse_instant(start, ctx.calendar().offset())
        .and_then(|at| check_instant_near(ctx.clock.now(), at).map(|()| at))
        .map_err(|m| {
            errors.add("start", Message::said(format!("应为时间，如 2026-11-27T09:00:00（北京时间）（{m}）"), m))
        })
        .ok();
    errors.into_result()?;
    let (Some(start), Some(duration)) = (start, duration) else {
        return Err(AppError::invalid("duration", "a duration like \"2h working\""));
    };
    ctx.calendar().try_add(start, duration).map_err(|e| AppError::invalid("duration", e.to_string()))
}

pub fn loaded_years(ctx: &AppContext) -> Vec<i32> {
    ctx.calendar().loaded_years().collect()
}

/// Stores a year's schedule (replacing that year's) and switches the running calendar to it.
pub async fn add_year(ctx: &AppContext, caller: &Caller, schedule: serde_json::Value) -> AppResult<Vec<i32>> {
    require(caller, Permission::ManageReferenceData)?;
    let parsed = YearSchedule::parse(&schedule.to_string()).map_err(|m| AppError::invalid("days", m))?;
    if !(2000..=2100).contains(&parsed.year) {
        return Err(AppError::invalid("year", "must be between 2000 and 2100"));
    }
    let txn = begin_write(&ctx.db).await?;
    calendar_year::Entity::insert(calendar_year::ActiveModel {
        year: Set(parsed.year),
        schedule: Set(schedule),
        updated_at: Set(ctx.clock.now()),
    })
    .on_conflict(
        OnConflict::column(calendar_year::Column::Year)
            .update_columns([calendar_year::Column::Schedule, calendar_year::Column::UpdatedAt])
            .to_owned(),
    )
    .exec_without_returning(&txn)
    .await?;
    let detail = serde_json::json!({"year": parsed.year, "days": parsed.days.len()});
    super::audit::record(
        &txn,
        super::audit::Entry::by(caller, "calendar_changed", "calendar_year", parsed.year, detail),
        ctx.clock.now(),
    )
    .await?;
    txn.commit().await?;
    reload(ctx).await?;
    Ok(loaded_years(ctx))
}

/// Rebuilds the calendar: configuration and files first, then the years stored through the API.
pub async fn reload(ctx: &AppContext) -> AppResult<()> {
    let mut calendar = ctx.settings.business_calendar().map_err(|e| AppError::Internal(e.to_string()))?;
    for row in calendar_year::Entity::find().order_by_asc(calendar_year::Column::Year).all(&ctx.db).await? {
        match YearSchedule::parse(&row.schedule.to_string()) {
            Ok(schedule) => calendar.load(&schedule),
            Err(message) => tracing::warn!(year = row.year, %message, "stored holiday schedule ignored"),
        }
    }
    ctx.replace_calendar(calendar);
    Ok(())
}
