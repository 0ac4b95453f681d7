//! 延期: a department asks for more time on its resolve clock before it runs out; the
//! dispatcher decides. A few, short, and all in the timeline — and no other way to buy time:
//! returns and re-dispatches never reset the resolve clock.

use entities::{extension_request, sla_clock};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter, Set};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    require,
    tickets::{Viewer, lock_in_scope, long_text, save},
};
use crate::{
    context::AppContext,
    domain::{
        access::{Caller, Permission},
        calendar::SlaDuration,
        sla::ClockKind,
        ticket::{TicketStatus, event},
        validate::FieldErrors,
    },
    error::{AppError, AppResult},
    repo,
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtensionBody {
    pub reason: String,
    /// How much more time, e.g. "2d working".
    #[schema(example = "2d working")]
    pub duration: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    pub note: Option<String>,
}

/// The running clock an extension moves: rectification after a 差评, else the resolve clock.
async fn target_clock(db: &impl sea_orm::ConnectionTrait, ticket_id: Uuid) -> AppResult<Option<sla_clock::Model>> {
    let running = sla_clock::Entity::find()
        .filter(sla_clock::Column::TicketId.eq(ticket_id))
        .filter(sla_clock::Column::StoppedAt.is_null())
        .filter(sla_clock::Column::Clock.is_in([ClockKind::Resolve.as_str(), ClockKind::Rectify.as_str()]))
        .all(db)
        .await?;
    Ok(running.iter().find(|c| c.clock == ClockKind::Rectify.as_str()).or(running.first()).cloned())
}

/// Whether `duration` buys more working time from `from` than one extension may. The duration
/// is already at most a year, so this is a short calculation.
fn over_the_cap(ctx: &AppContext, duration: SlaDuration, from: chrono::DateTime<chrono::Utc>) -> AppResult<bool> {
    let calendar = ctx.calendar();
    let working = |d: SlaDuration| -> AppResult<i64> {
        let until = calendar.try_add(from, d).map_err(|e| AppError::invalid("duration", e.to_string()))?;
        Ok(calendar.working_time_between(from, until.at).num_seconds())
    };
    Ok(working(duration)? > working(ctx.settings.extensions.max_duration)?)
}

pub async fn request(
    ctx: &AppContext,
    caller: &Caller,
    dispatch_id: Uuid,
    body: ExtensionBody,
) -> AppResult<extension_request::Model> {
    require(caller, Permission::HandleDispatch)?;
    let mut errors = FieldErrors::new();
    let reason = long_text(&mut errors, "reason", &body.reason, 500);
    let duration = SlaDuration::parse(&body.duration).map_err(|m| errors.add("duration", m)).ok();
    errors.into_result()?;
    let duration = duration.ok_or_else(|| {
        AppError::invalid(
            "duration",
            crate::domain::validate::Message::said("应为时长，如 \"2d working\"", "a duration like \"2d working\""),
        )
    })?;
    // The cap first: no lock, no transaction for a request that cannot succeed.
    if over_the_cap(ctx, duration, ctx.clock.now())? {
        let most = &ctx.settings.extensions.max_duration;
        return Err(AppError::invalid(
            "duration",
            crate::domain::validate::Message::said(
                format!("每次延期最多 {most}"),
                format!("at most {most} per extension"),
            ),
        ));
    }
    let viewer = Viewer::of(&ctx.db, caller).await?;
    // The dispatch as it is under the ticket's lock, not as it was a moment before.
    let (locked, dispatch) = super::dispatches::lock_own(ctx, &viewer, dispatch_id).await?;
    if dispatch.status != "acknowledged" {
        let status = &dispatch.status;
        return Err(AppError::refused(
            crate::error::Refusal::Conflict,
            format!("该派单当前为 {status}，只有已签收、办理中的派单可以申请延期"),
            format!("the dispatch is {status}; only work in hand can be extended"),
        ));
    }
    let clock = target_clock(&locked.txn, dispatch.ticket_id).await?.ok_or_else(|| {
        AppError::refused(
            crate::error::Refusal::Conflict,
            "没有正在计时的办结时限可以延期",
            "no running resolve clock to extend",
        )
    })?;
    if locked.now >= clock.due_at {
        return Err(AppError::refused(
            crate::error::Refusal::Conflict,
            "办结时限已过，请在截止前申请延期",
            "the clock has already run out; ask before the deadline",
        ));
    }
    let approved = extension_request::Entity::find()
        .filter(extension_request::Column::DispatchId.eq(dispatch_id))
        .filter(extension_request::Column::Status.eq("approved"))
        .count(&locked.txn)
        .await?;
    if approved >= ctx.settings.extensions.max_per_dispatch {
        return Err(AppError::refused(
            crate::error::Refusal::Conflict,
            format!("已批准 {approved} 次延期，已达上限"),
            format!("{approved} extensions were approved already; that is the limit"),
        ));
    }
    let pending = extension_request::Entity::find()
        .filter(extension_request::Column::DispatchId.eq(dispatch_id))
        .filter(extension_request::Column::Status.eq("pending"))
        .count(&locked.txn)
        .await?;
    if pending > 0 {
        return Err(AppError::refused(
            crate::error::Refusal::Conflict,
            "已有一份延期申请在等待调度员审批",
            "an extension request is already waiting for the dispatcher",
        ));
    }
    let created = extension_request::ActiveModel {
        id: Set(Uuid::now_v7()),
        dispatch_id: Set(dispatch_id),
        ticket_id: Set(dispatch.ticket_id),
        duration: Set(duration.to_string()),
        reason: Set(reason.clone()),
        status: Set("pending".into()),
        requested_by: Set(caller.user_id),
        decided_by: Set(None),
        decided_at: Set(None),
        note: Set(None),
        created_at: Set(locked.now),
    }
    .insert(&locked.txn)
    .await?;
    let payload = json!({"extension_request_id": created.id, "duration": created.duration, "reason": reason, "due_at": clock.due_at});
    repo::tickets::record_event(
        &locked.txn,
        dispatch.ticket_id,
        Some(dispatch_id),
        event::EXTENSION_REQUESTED,
        Some(caller.user_id),
        locked.now,
        payload,
    )
    .await?;
    save(&locked.txn, locked.ticket.clone().into_active_model(), &locked.ticket, locked.now).await?;
    locked.txn.commit().await?;
    Ok(created)
}

/// The dispatcher approves (the clock moves) or rejects.
pub async fn decide(
    ctx: &AppContext,
    caller: &Caller,
    id: Uuid,
    approve: bool,
    body: DecisionBody,
) -> AppResult<extension_request::Model> {
    require(caller, Permission::DispatchTicket)?;
    let mut errors = FieldErrors::new();
    let note = body.note.as_deref().map(|n| long_text(&mut errors, "note", n, 500));
    errors.into_result()?;
    let not_found = || AppError::not_found("extension request");
    let request = extension_request::Entity::find_by_id(id).one(&ctx.db).await?.ok_or_else(not_found)?;
    let viewer = Viewer::of(&ctx.db, caller).await?;
    let locked = lock_in_scope(ctx, &viewer, request.ticket_id, None).await.map_err(|e| match e {
        e if e.is_not_found() => not_found(),
        other => other,
    })?;
    let request = extension_request::Entity::find_by_id(id).one(&locked.txn).await?.ok_or_else(not_found)?;
    if TicketStatus::parse(&locked.ticket.status).is_some_and(TicketStatus::is_terminal) {
        return Err(AppError::Conflict(format!(
            "ticket {} is {}; nothing on it can be extended",
            locked.ticket.number, locked.ticket.status
        )));
    }
    if request.status != "pending" {
        return Err(AppError::Conflict(format!("the request is {} already", request.status)));
    }
    let mut new_due = None;
    if approve {
        let duration = SlaDuration::parse(&request.duration).map_err(AppError::Internal)?;
        if let Some(clock) = target_clock(&locked.txn, request.ticket_id).await? {
            let moved = super::sla::extend(ctx, &locked.txn, &clock, duration).await?;
            if moved.clock == ClockKind::Resolve.as_str() {
                let mut ticket = locked.ticket.clone().into_active_model();
                ticket.resolve_due_at = Set(Some(moved.due_at));
                ticket.update(&locked.txn).await?;
            }
            new_due = Some(moved.due_at);
        }
    }
    let mut row = request.into_active_model();
    row.status = Set(if approve { "approved" } else { "rejected" }.into());
    row.decided_by = Set(Some(caller.user_id));
    row.decided_at = Set(Some(locked.now));
    row.note = Set(note.clone());
    let decided = row.update(&locked.txn).await?;
    let payload = json!({"extension_request_id": decided.id, "status": decided.status, "duration": decided.duration, "note": note, "new_due_at": new_due});
    repo::tickets::record_event(
        &locked.txn,
        decided.ticket_id,
        Some(decided.dispatch_id),
        event::EXTENSION_DECIDED,
        Some(caller.user_id),
        locked.now,
        payload,
    )
    .await?;
    save(&locked.txn, locked.ticket.clone().into_active_model(), &locked.ticket, locked.now).await?;
    locked.txn.commit().await?;
    Ok(decided)
}
