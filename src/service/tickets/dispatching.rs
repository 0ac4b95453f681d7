//! The dispatcher's actions: 派单, 吹哨 and cancel.

use super::*;
use chrono::{DateTime, Utc};
use entities::{department, dispatch, grid_unit, ticket};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, IntoActiveModel, QueryFilter, Set,
};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::service::{referenced, require};
use crate::{
    context::AppContext,
    domain::{
        access::{Caller, Permission},
        sla::ClockKind,
        ticket::{DispatchRole, DispatchStatus, TicketAction, event},
        validate::FieldErrors,
    },
    error::{AppError, AppResult},
    repo::{self},
};

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DispatchRequest {
    /// Absent (with no co-handlers): route by the routing rules.
    pub primary_department_id: Option<Uuid>,
    #[serde(default)]
    pub co_handler_department_ids: Vec<Uuid>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WhistleRequest {
    pub department_ids: Vec<Uuid>,
    pub reason: String,
}

const MAX_DEPARTMENTS: usize = 10;

pub(crate) struct DispatchPlan {
    pub(crate) primary: Uuid,
    pub(crate) co_handlers: Vec<Uuid>,
    pub(crate) rule_id: Option<Uuid>,
    pub(crate) auto: bool,
}

/// Creates the dispatches of a plan and moves the ticket to `dispatched`.
pub(crate) async fn send_dispatches(
    ctx: &AppContext,
    txn: &DatabaseTransaction,
    ticket: ticket::Model,
    plan: &DispatchPlan,
    actor: Option<Uuid>,
    now: DateTime<Utc>,
) -> AppResult<ticket::Model> {
    let status = next_status(&ticket, TicketAction::Dispatch)?;
    let mut created = Vec::new();
    for (department, role) in std::iter::once((plan.primary, DispatchRole::Primary))
        .chain(plan.co_handlers.iter().map(|d| (*d, DispatchRole::CoHandler)))
    {
        created.push(new_dispatch(ctx, txn, &ticket, department, role, actor, now).await?);
    }
    // The ticket's own clocks start with its first dispatch and never restart: a return or
    // a re-dispatch buys no time.
    let mut resolve_due_at = None;
    if ticket.first_dispatched_at.is_none() {
        crate::service::sla::start(ctx, txn, &ticket, None, ClockKind::FirstContact, now).await?;
        resolve_due_at =
            Some(crate::service::sla::start(ctx, txn, &ticket, None, ClockKind::Resolve, now).await?.due_at);
    }
    let payload = json!({
        "primary_department_id": plan.primary,
        "co_handler_department_ids": plan.co_handlers,
        "rule_id": plan.rule_id,
        "auto": plan.auto,
        "dispatch_ids": created,
    });
    repo::tickets::record_event(txn, ticket.id, None, event::DISPATCHED, actor, now, payload).await?;
    let mut row = ticket.clone().into_active_model();
    row.status = Set(status.to_string());
    if ticket.first_dispatched_at.is_none() {
        row.first_dispatched_at = Set(Some(now));
        row.resolve_due_at = Set(resolve_due_at);
    }
    save(txn, row, &ticket, now).await
}

/// A new dispatch with its acknowledge clock, and a mail to the department.
async fn new_dispatch(
    ctx: &AppContext,
    txn: &DatabaseTransaction,
    ticket: &ticket::Model,
    department_id: Uuid,
    role: DispatchRole,
    actor: Option<Uuid>,
    now: DateTime<Utc>,
) -> AppResult<Uuid> {
    let id = Uuid::now_v7();
    dispatch::ActiveModel {
        id: Set(id),
        ticket_id: Set(ticket.id),
        department_id: Set(department_id),
        role: Set(role.as_str().to_owned()),
        status: Set(DispatchStatus::Pending.to_string()),
        dispatched_by: Set(actor),
        created_at: Set(now),
        acknowledged_at: Set(None),
        returned_at: Set(None),
        return_reason: Set(None),
        return_refused: Set(false),
        resolved_at: Set(None),
        reply: Set(None),
        updated_at: Set(now),
        ack_due_at: Set(None),
        ack_working_seconds: Set(None),
    }
    .insert(txn)
    .await?;
    let clock = crate::service::sla::start(ctx, txn, ticket, Some(id), ClockKind::Acknowledge, now).await?;
    dispatch::Entity::update_many()
        .col_expr(dispatch::Column::AckDueAt, sea_orm::sea_query::Expr::val(clock.due_at))
        .filter(dispatch::Column::Id.eq(id))
        .exec(txn)
        .await?;
    if let Some(department) = department::Entity::find_by_id(department_id).one(txn).await? {
        let headline = match role {
            DispatchRole::Primary => "新派单，请及时签收报到".to_owned(),
            DispatchRole::CoHandler => "吹哨：请协同办理并签收报到".to_owned(),
        };
        let mail = crate::service::notify::Mail {
            kind: "dispatched",
            ticket,
            headline,
            department: Some(crate::service::notify::department_label(&department.name, Some(role))),
            clock: Some(ClockKind::Acknowledge),
            deadline: Some(clock.due_at),
            note: None,
        };
        crate::service::notify::enqueue(ctx, txn, &mail, &[department.email], now).await?;
    }
    Ok(id)
}

/// Every department named must exist and be active; none twice.
async fn check_departments(db: &impl ConnectionTrait, field: &str, ids: &[Uuid]) -> AppResult<()> {
    if ids.len() > MAX_DEPARTMENTS {
        return Err(AppError::invalid(
            field,
            crate::domain::validate::Message::said(
                format!("最多 {MAX_DEPARTMENTS} 个部门"),
                format!("at most {MAX_DEPARTMENTS} departments"),
            ),
        ));
    }
    for (i, id) in ids.iter().enumerate() {
        if ids[..i].contains(id) {
            return Err(AppError::invalid(
                field,
                crate::domain::validate::Message::said(
                    format!("部门 {id} 重复"),
                    format!("department {id} is named twice"),
                ),
            ));
        }
        let department: department::Model = referenced::<department::Entity>(db, field, *id, "department").await?;
        if !department.active {
            let name = department.name;
            return Err(AppError::invalid(
                field,
                crate::domain::validate::Message::said(
                    format!("部门“{name}”已停用"),
                    format!("department {name} is not active"),
                ),
            ));
        }
    }
    Ok(())
}

/// 派单: by the routing rules (`{}`), or to the departments the dispatcher names.
pub async fn dispatch(
    ctx: &AppContext,
    caller: &Caller,
    id: Uuid,
    if_match: Option<i32>,
    request: DispatchRequest,
) -> AppResult<TicketView> {
    require(caller, Permission::DispatchTicket)?;
    let viewer = Viewer::of(&ctx.db, caller).await?;
    let Locked { txn, ticket, now, .. } = lock_in_scope(ctx, &viewer, id, if_match).await?;
    next_status(&ticket, TicketAction::Dispatch)?;
    let plan = match request.primary_department_id {
        Some(primary) => {
            check_departments(&txn, "primary_department_id", &[primary]).await?;
            check_departments(&txn, "co_handler_department_ids", &request.co_handler_department_ids).await?;
            if request.co_handler_department_ids.contains(&primary) {
                return Err(AppError::invalid(
                    "co_handler_department_ids",
                    crate::domain::validate::Message::said(
                        "主办部门不能同时作为协办部门",
                        "the primary department cannot also co-handle",
                    ),
                ));
            }
            DispatchPlan { primary, co_handlers: request.co_handler_department_ids, rule_id: None, auto: false }
        }
        None if !request.co_handler_department_ids.is_empty() => {
            return Err(AppError::invalid(
                "primary_department_id",
                crate::domain::validate::Message::said(
                    "指定协办部门时须同时指定主办部门",
                    "name the primary department when naming co-handlers",
                ),
            ));
        }
        None => {
            let unit = crate::service::found::<grid_unit::Entity>(&txn, ticket.unit_id, "grid unit").await?;
            let routing = crate::service::routing::resolve_for(&txn, ticket.category_id, &unit).await?;
            let primary = routing.primary_department_id.ok_or_else(|| {
                AppError::invalid(
                    "primary_department_id",
                    crate::domain::validate::Message::said(
                        "没有适用于该工单的派单规则，请指定部门",
                        "no routing rule covers this ticket; name the departments",
                    ),
                )
            })?;
            DispatchPlan {
                primary,
                co_handlers: routing.co_handler_department_ids,
                rule_id: routing.rule_id,
                auto: false,
            }
        }
    };
    let ticket = send_dispatches(ctx, &txn, ticket, &plan, Some(caller.user_id), now).await?;
    let view = view_in(ctx, &txn, &viewer, ticket).await?;
    txn.commit().await?;
    Ok(view)
}

/// 吹哨: summon more departments onto a live ticket; each must report in.
pub async fn whistle(
    ctx: &AppContext,
    caller: &Caller,
    id: Uuid,
    if_match: Option<i32>,
    request: WhistleRequest,
) -> AppResult<TicketView> {
    require(caller, Permission::DispatchTicket)?;
    let mut errors = FieldErrors::new();
    let reason = long_text(&mut errors, "reason", &request.reason, 500);
    if request.department_ids.is_empty() {
        errors.add(
            "department_ids",
            crate::domain::validate::Message::said("至少指定一个部门", "name at least one department"),
        );
    }
    errors.into_result()?;
    let viewer = Viewer::of(&ctx.db, caller).await?;
    let Locked { txn, ticket, dispatches, now } = lock_in_scope(ctx, &viewer, id, if_match).await?;
    next_status(&ticket, TicketAction::Whistle)?;
    check_departments(&txn, "department_ids", &request.department_ids).await?;
    for department in &request.department_ids {
        let already = dispatches.iter().any(|d| d.department_id == *department && dispatch_is_open(d));
        if already {
            return Err(AppError::refused(
                crate::error::Refusal::Conflict,
                format!("部门 {department} 在该工单上已有未完成的派单"),
                format!("department {department} already holds an open dispatch on this ticket"),
            ));
        }
    }
    let mut created = Vec::new();
    for department in &request.department_ids {
        created.push(
            new_dispatch(ctx, &txn, &ticket, *department, DispatchRole::CoHandler, Some(caller.user_id), now).await?,
        );
    }
    let payload = json!({"department_ids": request.department_ids, "reason": reason, "dispatch_ids": created});
    repo::tickets::record_event(&txn, id, None, event::WHISTLED, Some(caller.user_id), now, payload).await?;
    commit(ctx, txn, &viewer, ticket.clone().into_active_model(), &ticket, now).await
}

/// Duplicate or withdrawn: the ticket ends, its open dispatches with it.
pub async fn cancel(
    ctx: &AppContext,
    caller: &Caller,
    id: Uuid,
    if_match: Option<i32>,
    request: ReasonRequest,
) -> AppResult<TicketView> {
    require(caller, Permission::DispatchTicket)?;
    let mut errors = FieldErrors::new();
    let reason = long_text(&mut errors, "reason", &request.reason, 500);
    errors.into_result()?;
    let viewer = Viewer::of(&ctx.db, caller).await?;
    let Locked { txn, ticket, dispatches, now } = lock_in_scope(ctx, &viewer, id, if_match).await?;
    let status = next_status(&ticket, TicketAction::Cancel)?;
    end_open_work(&txn, id, &dispatches, now).await?;
    repo::tickets::record_event(&txn, id, None, event::CANCELLED, Some(caller.user_id), now, json!({"reason": reason}))
        .await?;
    let mut row = ticket.clone().into_active_model();
    row.status = Set(status.to_string());
    row.closed_at = Set(Some(now));
    commit(ctx, txn, &viewer, row, &ticket, now).await
}
