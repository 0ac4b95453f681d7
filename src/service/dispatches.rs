//! The department side of a ticket: 签收/报到, 退单, progress and 办结 on its own dispatches,
//! and the dispatcher's refusal of a return.

use entities::{ClockStop, dispatch, ticket};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, Set};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    escalation::Cause,
    require,
    tickets::{
        Locked, TicketView, Viewer, commit, dispatch_is_open, lock_in_scope, long_text, next_dispatch_status,
        next_status,
    },
};
use crate::{
    context::AppContext,
    domain::{
        access::{Caller, Permission, is_own_department, own_department_only},
        escalation::Trigger,
        sla::ClockKind,
        ticket::{DispatchAction, DispatchRole, DispatchStatus, TicketAction, TicketStatus, event},
        validate::FieldErrors,
    },
    error::{AppError, AppResult},
    repo::{
        self,
        page::{Page, PageRequest},
    },
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnRequest {
    /// Why the ticket is not this department's (shown in the timeline).
    pub reason: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgressRequest {
    pub note: String,
    /// Whether the handler reached the resident; the first progress counts as first contact
    /// unless this is `false`.
    pub contacted_resident: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// The reply to the resident (办结答复).
    pub reply: String,
    /// Evidence attached with the resolution (`kind` before, after or other). A category with
    /// `resolve_requires_photo` needs an `after` image on the dispatch, here or attached before.
    #[serde(default)]
    pub attachments: Vec<super::attachments::EvidenceRef>,
}

#[derive(Debug, Default, Clone)]
pub struct DispatchFilter {
    pub status: Option<DispatchStatus>,
    pub ticket: Option<Uuid>,
    pub department: Option<Uuid>,
}

/// A dispatch and the ticket after the change.
pub struct DispatchOutcome {
    pub dispatch: dispatch::Model,
    pub ticket: TicketView,
}

pub async fn list(
    ctx: &AppContext,
    caller: &Caller,
    filter: DispatchFilter,
    request: PageRequest,
) -> AppResult<Page<dispatch::Model>> {
    require(caller, Permission::ReadTickets)?;
    let viewer = Viewer::of(&ctx.db, caller).await?;
    let scoped_tickets = repo::tickets::ids_in_scope(&viewer.scope());
    let mut select = dispatch::Entity::find().filter(dispatch::Column::TicketId.in_subquery(scoped_tickets));
    // A department sees its own dispatches, not its partners' on the same ticket.
    if let Some(department) = own_department_only(caller) {
        select = select.filter(dispatch::Column::DepartmentId.eq(department));
    }
    if let Some(status) = filter.status {
        select = select.filter(dispatch::Column::Status.eq(status.to_string()));
    }
    if let Some(ticket) = filter.ticket {
        select = select.filter(dispatch::Column::TicketId.eq(ticket));
    }
    if let Some(department) = filter.department {
        select = select.filter(dispatch::Column::DepartmentId.eq(department));
    }
    Ok(repo::page::fetch(&ctx.db, select, dispatch::Column::Id, |d| d.id, request).await?)
}

pub async fn get(ctx: &AppContext, caller: &Caller, id: Uuid) -> AppResult<dispatch::Model> {
    require(caller, Permission::ReadTickets)?;
    let dispatch =
        dispatch::Entity::find_by_id(id).one(&ctx.db).await?.ok_or_else(|| AppError::not_found("dispatch"))?;
    if !is_own_department(caller, Some(dispatch.department_id)) {
        return Err(AppError::not_found("dispatch"));
    }
    super::tickets::get(ctx, caller, dispatch.ticket_id).await.map_err(|_| AppError::not_found("dispatch"))?;
    Ok(dispatch)
}

/// Locks the ticket of one of the caller's department's dispatches; another department's
/// dispatch answers 404 like a missing one.
pub(crate) async fn lock_own<'a>(
    ctx: &AppContext,
    viewer: &Viewer<'a>,
    dispatch_id: Uuid,
) -> AppResult<(Locked, dispatch::Model)> {
    let not_found = || AppError::not_found("dispatch");
    let dispatch = dispatch::Entity::find_by_id(dispatch_id).one(&ctx.db).await?.ok_or_else(not_found)?;
    if viewer.caller.department_id != Some(dispatch.department_id) {
        return Err(not_found());
    }
    let locked = lock_in_scope(ctx, viewer, dispatch.ticket_id, None).await.map_err(|e| match e {
        e if e.is_not_found() => not_found(),
        other => other,
    })?;
    // Re-read under the lock: the status may have moved since.
    let fresh = locked.dispatches.iter().find(|d| d.id == dispatch_id).cloned().ok_or_else(not_found)?;
    Ok((locked, fresh))
}

async fn set_dispatch(
    locked: &Locked,
    dispatch: &dispatch::Model,
    change: impl FnOnce(&mut dispatch::ActiveModel),
) -> AppResult<dispatch::Model> {
    let mut row = dispatch.clone().into_active_model();
    change(&mut row);
    row.updated_at = Set(locked.now);
    Ok(row.update(&locked.txn).await?)
}

async fn finish(
    ctx: &AppContext,
    locked: Locked,
    viewer: &Viewer<'_>,
    row: ticket::ActiveModel,
    dispatch: dispatch::Model,
) -> AppResult<DispatchOutcome> {
    let view = commit(ctx, locked.txn, viewer, row, &locked.ticket, locked.now).await?;
    Ok(DispatchOutcome { dispatch, ticket: view })
}

fn is_primary(d: &dispatch::Model) -> bool {
    d.role == DispatchRole::Primary.as_str()
}

/// 签收/报到. When every open primary dispatch has reported in, work starts on the ticket.
pub async fn acknowledge(ctx: &AppContext, caller: &Caller, id: Uuid) -> AppResult<DispatchOutcome> {
    require(caller, Permission::HandleDispatch)?;
    let viewer = Viewer::of(&ctx.db, caller).await?;
    let (locked, current) = lock_own(ctx, &viewer, id).await?;
    let status = next_dispatch_status(&current, DispatchAction::Acknowledge)?;
    let now = locked.now;
    let worked = ctx.calendar().working_time_between(current.created_at, now).num_seconds();
    let dispatch = set_dispatch(&locked, &current, |row| {
        row.status = Set(status.to_string());
        row.acknowledged_at = Set(Some(now));
        row.ack_working_seconds = Set(Some(worked));
    })
    .await?;
    super::sla::stop(&locked.txn, dispatch.ticket_id, &[ClockKind::Acknowledge], Some(id), ClockStop::GoalMet, now)
        .await?;
    let actor = Some(caller.user_id);
    let payload = json!({"department_id": dispatch.department_id, "role": dispatch.role});
    repo::tickets::record_event(&locked.txn, dispatch.ticket_id, Some(id), event::ACKNOWLEDGED, actor, now, payload)
        .await?;

    let mut row = locked.ticket.clone().into_active_model();
    let primaries_waiting = locked
        .dispatches
        .iter()
        .any(|d| is_primary(d) && d.id != id && d.status == DispatchStatus::Pending.to_string());
    if locked.ticket.status == TicketStatus::Dispatched.to_string() && !primaries_waiting {
        let started = next_status(&locked.ticket, TicketAction::StartWork)?;
        row.status = Set(started.to_string());
        repo::tickets::record_event(&locked.txn, dispatch.ticket_id, None, event::WORK_STARTED, actor, now, json!({}))
            .await?;
    }
    finish(ctx, locked, &viewer, row, dispatch).await
}

/// 退单: only within the return window after dispatch, and never after a refused return —
/// past that the department is the responsible unit (首办负责).
pub async fn return_dispatch(
    ctx: &AppContext,
    caller: &Caller,
    id: Uuid,
    request: ReturnRequest,
) -> AppResult<DispatchOutcome> {
    require(caller, Permission::HandleDispatch)?;
    let mut errors = FieldErrors::new();
    let reason = long_text(&mut errors, "reason", &request.reason, 500);
    errors.into_result()?;
    let viewer = Viewer::of(&ctx.db, caller).await?;
    let (locked, current) = lock_own(ctx, &viewer, id).await?;
    let status = next_dispatch_status(&current, DispatchAction::Return)?;
    if current.return_refused {
        return Err(AppError::refused(
            crate::error::Refusal::Conflict,
            "调度员已驳回该退单：本部门为首办负责单位",
            "the dispatcher refused this return: the department is responsible (首办负责)",
        ));
    }
    let closes = ctx.calendar().add(current.created_at, ctx.settings.tickets.return_window).at;
    if locked.now > closes {
        let until = closes.with_timezone(&ctx.calendar().offset()).format("%Y-%m-%d %H:%M");
        return Err(AppError::refused(
            crate::error::Refusal::Conflict,
            format!("退单期限已于 {until} 截止；本部门现为首办负责单位"),
            format!("returns were possible until {closes}; the department is now the responsible unit (首办负责)"),
        ));
    }
    let now = locked.now;
    let dispatch = set_dispatch(&locked, &current, |row| {
        row.status = Set(status.to_string());
        row.returned_at = Set(Some(now));
        row.return_reason = Set(Some(reason.clone()));
    })
    .await?;
    let actor = Some(caller.user_id);
    let ticket_id = dispatch.ticket_id;
    let returns = locked.ticket.return_count + 1;
    let payload =
        json!({"department_id": dispatch.department_id, "role": dispatch.role, "reason": reason, "returns": returns});
    repo::tickets::record_event(&locked.txn, ticket_id, Some(id), event::RETURNED, actor, now, payload).await?;
    super::sla::stop(&locked.txn, ticket_id, &[ClockKind::Acknowledge], Some(id), ClockStop::Cancelled, now).await?;

    let mut row = locked.ticket.clone().into_active_model();
    row.return_count = Set(returns);
    if returns >= ctx.settings.tickets.arbitration_after_returns && !locked.ticket.needs_arbitration {
        row.needs_arbitration = Set(true);
        let payload = json!({"returns": returns, "note": "多次退单，提请督办部门裁定"});
        repo::tickets::record_event(&locked.txn, ticket_id, None, event::ARBITRATION_REQUESTED, None, now, payload)
            .await?;
        let cause = Cause {
            trigger: Trigger::ThirdReturn,
            ticket: &locked.ticket,
            clock_id: None,
            dispatch: Some(&dispatch),
            deadline: None,
        };
        super::escalation::fire(ctx, &locked.txn, &cause, now).await?;
    }
    // The ticket goes back to the dispatcher once no primary dispatch is left open.
    let primary_left = locked.dispatches.iter().any(|d| is_primary(d) && d.id != id && dispatch_is_open(d));
    if is_primary(&dispatch) && !primary_left {
        row.status = Set(next_status(&locked.ticket, TicketAction::ReturnToDispatcher)?.to_string());
    }
    finish(ctx, locked, &viewer, row, dispatch).await
}

/// The dispatcher refuses a 退单: the department must handle the ticket after all.
pub async fn reject_return(
    ctx: &AppContext,
    caller: &Caller,
    id: Uuid,
    request: ReturnRequest,
) -> AppResult<DispatchOutcome> {
    require(caller, Permission::DispatchTicket)?;
    let mut errors = FieldErrors::new();
    let reason = long_text(&mut errors, "reason", &request.reason, 500);
    errors.into_result()?;
    let viewer = Viewer::of(&ctx.db, caller).await?;
    let not_found = || AppError::not_found("dispatch");
    let ticket_id = dispatch::Entity::find_by_id(id).one(&ctx.db).await?.ok_or_else(not_found)?.ticket_id;
    let locked = lock_in_scope(ctx, &viewer, ticket_id, None).await.map_err(|e| match e {
        e if e.is_not_found() => not_found(),
        other => other,
    })?;
    let current = locked.dispatches.iter().find(|d| d.id == id).cloned().ok_or_else(not_found)?;
    let status = next_dispatch_status(&current, DispatchAction::RefuseReturn)?;
    // Nothing comes back to life on a closed or cancelled ticket, whatever the dispatch's role.
    if TicketStatus::parse(&locked.ticket.status).is_some_and(TicketStatus::is_terminal) {
        let (number, status) = (&locked.ticket.number, &locked.ticket.status);
        return Err(AppError::refused(
            crate::error::Refusal::Conflict,
            format!("工单 {number} 已结束（{status}），不能再驳回其退单"),
            format!("ticket {number} is {status}; its returns can no longer be refused"),
        ));
    }
    let mut row = locked.ticket.clone().into_active_model();
    if is_primary(&current) {
        row.status = Set(next_status(&locked.ticket, TicketAction::ForceBack)?.to_string());
    }
    // Back to pending: reporting in is due again, and judged by the new deadline.
    let clock =
        super::sla::start(ctx, &locked.txn, &locked.ticket, Some(id), ClockKind::Acknowledge, locked.now).await?;
    let dispatch = set_dispatch(&locked, &current, |row| {
        row.status = Set(status.to_string());
        row.return_refused = Set(true);
        row.ack_due_at = Set(Some(clock.due_at));
    })
    .await?;
    let payload = json!({"department_id": dispatch.department_id, "reason": reason});
    repo::tickets::record_event(
        &locked.txn,
        ticket_id,
        Some(id),
        event::RETURN_REJECTED,
        Some(caller.user_id),
        locked.now,
        payload,
    )
    .await?;
    finish(ctx, locked, &viewer, row, dispatch).await
}

pub async fn progress(
    ctx: &AppContext,
    caller: &Caller,
    id: Uuid,
    request: ProgressRequest,
) -> AppResult<DispatchOutcome> {
    require(caller, Permission::HandleDispatch)?;
    let mut errors = FieldErrors::new();
    let note = long_text(&mut errors, "note", &request.note, 2000);
    errors.into_result()?;
    let viewer = Viewer::of(&ctx.db, caller).await?;
    let (locked, current) = lock_own(ctx, &viewer, id).await?;
    next_dispatch_status(&current, DispatchAction::Progress)?;
    next_status(&locked.ticket, TicketAction::Progress)?;
    let contacted = request.contacted_resident.unwrap_or(true);
    let mut row = locked.ticket.clone().into_active_model();
    let first_contact = contacted && locked.ticket.first_contact_at.is_none();
    if first_contact {
        row.first_contact_at = Set(Some(locked.now));
        super::sla::stop(
            &locked.txn,
            current.ticket_id,
            &[ClockKind::FirstContact],
            None,
            ClockStop::GoalMet,
            locked.now,
        )
        .await?;
    }
    let payload = json!({"department_id": current.department_id, "note": note, "contacted_resident": contacted, "first_contact": first_contact});
    repo::tickets::record_event(
        &locked.txn,
        current.ticket_id,
        Some(id),
        event::PROGRESS,
        Some(caller.user_id),
        locked.now,
        payload,
    )
    .await?;
    finish(ctx, locked, &viewer, row, current).await
}

/// 办结. The ticket is resolved once its primary work is resolved; the rating window starts.
pub async fn resolve(
    ctx: &AppContext,
    caller: &Caller,
    id: Uuid,
    request: ResolveRequest,
) -> AppResult<DispatchOutcome> {
    require(caller, Permission::HandleDispatch)?;
    let mut errors = FieldErrors::new();
    let reply = long_text(&mut errors, "reply", &request.reply, 2000);
    if request.attachments.len() > 10 {
        errors.add("attachments", crate::domain::validate::Message::said("最多 10 个附件", "at most 10 attachments"));
    }
    errors.into_result()?;
    let viewer = Viewer::of(&ctx.db, caller).await?;
    let (locked, current) = lock_own(ctx, &viewer, id).await?;
    let status = next_dispatch_status(&current, DispatchAction::Resolve)?;
    let now = locked.now;
    let evidence: Vec<super::attachments::ToAttach> = request
        .attachments
        .iter()
        .enumerate()
        .map(|(i, e)| super::attachments::ToAttach {
            field: format!("attachments[{i}].upload_id"),
            upload_id: e.upload_id,
            kind: e.kind.into(),
        })
        .collect();
    super::attachments::attach_in(&locked.txn, caller, current.ticket_id, Some(id), &evidence, now).await?;
    super::attachments::check_after_photo(&locked.txn, locked.ticket.category_id, id).await?;
    let dispatch = set_dispatch(&locked, &current, |row| {
        row.status = Set(status.to_string());
        row.resolved_at = Set(Some(now));
        row.reply = Set(Some(reply.clone()));
    })
    .await?;
    let actor = Some(caller.user_id);
    let ticket_id = dispatch.ticket_id;
    let payload = json!({"department_id": dispatch.department_id, "role": dispatch.role, "reply": reply});
    repo::tickets::record_event(&locked.txn, ticket_id, Some(id), event::DISPATCH_RESOLVED, actor, now, payload)
        .await?;

    let mut row = locked.ticket.clone().into_active_model();
    let primary_open = locked.dispatches.iter().any(|d| is_primary(d) && d.id != id && dispatch_is_open(d));
    if is_primary(&dispatch) && !primary_open {
        row.status = Set(next_status(&locked.ticket, TicketAction::Resolve)?.to_string());
        row.resolved_at = Set(Some(now));
        let since = locked.ticket.first_dispatched_at.unwrap_or(locked.ticket.created_at);
        row.resolve_working_seconds = Set(Some(ctx.calendar().working_time_between(since, now).num_seconds()));
        let policy = super::sla::durations(ctx, &locked.txn, locked.ticket.category_id, locked.ticket.priority).await?;
        row.rating_due_at = Set(Some(ctx.calendar().add(now, policy.rating_window).at));
        // The reply reaches the resident: that is a contact, whether or not progress said so.
        let clocks = [ClockKind::Resolve, ClockKind::Rectify, ClockKind::FirstContact];
        super::sla::stop(&locked.txn, ticket_id, &clocks, None, ClockStop::GoalMet, now).await?;
        if locked.ticket.first_contact_at.is_none() {
            row.first_contact_at = Set(Some(now));
        }
        repo::tickets::record_event(
            &locked.txn,
            ticket_id,
            Some(id),
            event::RESOLVED,
            actor,
            now,
            json!({"reply": reply}),
        )
        .await?;
    }
    finish(ctx, locked, &viewer, row, dispatch).await
}
