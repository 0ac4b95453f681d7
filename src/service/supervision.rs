//! Supervision orders (督办 / 挂牌督办): issued by a supervisor or by the escalation chain,
//! answered by the responsible department, shown in the ticket's timeline.

use chrono::{DateTime, Utc};
use entities::{supervision_order, ticket};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, Set};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    escalation::{NewOrder, open_order},
    require,
    tickets::{Viewer, lock_in_scope, long_text},
};
use crate::{
    context::AppContext,
    db::begin_write,
    domain::{
        access::{Caller, Permission, own_department_only},
        escalation::SupervisionLevel,
        ticket::{TicketStatus, event},
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
pub struct SuperviseRequest {
    pub instruction: String,
    /// The new deadline for the department's answer.
    pub due_at: DateTime<Utc>,
    /// supervise (督办, default) or listed (挂牌督办).
    pub level: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyRequest {
    pub reply: String,
}

#[derive(Debug, Default, Clone)]
pub struct OrderFilter {
    pub level: Option<String>,
    pub status: Option<String>,
    pub department: Option<Uuid>,
}

pub async fn supervise(
    ctx: &AppContext,
    caller: &Caller,
    ticket_id: Uuid,
    request: SuperviseRequest,
) -> AppResult<supervision_order::Model> {
    require(caller, Permission::Supervise)?;
    let mut errors = FieldErrors::new();
    let instruction = long_text(&mut errors, "instruction", &request.instruction, 1000);
    let level = match request.level.as_deref() {
        None => SupervisionLevel::Supervise,
        Some(text) => SupervisionLevel::parse(text).unwrap_or_else(|| {
            errors.add("level", "supervise or listed");
            SupervisionLevel::Supervise
        }),
    };
    let now = ctx.clock.now();
    if request.due_at <= now {
        errors.add("due_at", "must be in the future");
    } else if let Err(message) = crate::domain::calendar::check_instant_near(now, request.due_at) {
        errors.add("due_at", message);
    }
    errors.into_result()?;
    let viewer = Viewer::of(&ctx.db, caller).await?;
    let locked = lock_in_scope(ctx, &viewer, ticket_id, None).await?;
    if TicketStatus::parse(&locked.ticket.status).is_some_and(TicketStatus::is_terminal) {
        return Err(AppError::Conflict(format!(
            "ticket {} is {}; nothing left to supervise",
            locked.ticket.number, locked.ticket.status
        )));
    }
    // Never a department that returned the ticket: the one responsible now, if any.
    let department = super::tickets::responsible_department(&locked.dispatches);
    let new = NewOrder {
        ticket: &locked.ticket,
        department_id: department,
        level,
        instruction: Some(instruction),
        issued: Some((caller.user_id, request.due_at)),
        clock: None,
    };
    let order = open_order(ctx, &locked.txn, new, now).await?;
    bump(&locked.txn, &locked.ticket, now).await?;
    locked.txn.commit().await?;
    Ok(order)
}

/// Any write to a ticket's timeline moves its version, so If-Match holders see the change.
async fn bump(txn: &sea_orm::DatabaseTransaction, ticket: &ticket::Model, now: DateTime<Utc>) -> AppResult<()> {
    super::tickets::save(txn, ticket.clone().into_active_model(), ticket, now).await.map(|_| ())
}

pub async fn list(
    ctx: &AppContext,
    caller: &Caller,
    filter: OrderFilter,
    request: PageRequest,
) -> AppResult<Page<supervision_order::Model>> {
    require(caller, Permission::ReadTickets)?;
    let viewer = Viewer::of(&ctx.db, caller).await?;
    let scoped = repo::tickets::ids_in_scope(&viewer.scope());
    let mut select = supervision_order::Entity::find().filter(supervision_order::Column::TicketId.in_subquery(scoped));
    if let Some(department) = own_department_only(caller) {
        select = select.filter(supervision_order::Column::DepartmentId.eq(department));
    }
    if let Some(level) = filter.level {
        select = select.filter(supervision_order::Column::Level.eq(level));
    }
    if let Some(status) = filter.status {
        select = select.filter(supervision_order::Column::Status.eq(status));
    }
    if let Some(department) = filter.department {
        select = select.filter(supervision_order::Column::DepartmentId.eq(department));
    }
    Ok(repo::page::fetch(&ctx.db, select, supervision_order::Column::Id, |o| o.id, request).await?)
}

/// The responsible department answers an order.
pub async fn reply(
    ctx: &AppContext,
    caller: &Caller,
    order_id: Uuid,
    request: ReplyRequest,
) -> AppResult<supervision_order::Model> {
    require(caller, Permission::HandleDispatch)?;
    let mut errors = FieldErrors::new();
    let reply = long_text(&mut errors, "reply", &request.reply, 2000);
    errors.into_result()?;
    let not_found = || AppError::not_found("supervision order");
    let txn = begin_write(&ctx.db).await?;
    let order = supervision_order::Entity::find_by_id(order_id).one(&txn).await?.ok_or_else(not_found)?;
    if order.department_id.is_none() || order.department_id != caller.department_id {
        return Err(not_found());
    }
    if order.status != "open" {
        return Err(AppError::refused(
            crate::error::Refusal::Conflict,
            "该督办单已经答复过了",
            "the order has been answered already",
        ));
    }
    let now = ctx.clock.now();
    let mut row = order.into_active_model();
    row.status = Set("replied".into());
    row.reply = Set(Some(reply.clone()));
    row.replied_by = Set(Some(caller.user_id));
    row.replied_at = Set(Some(now));
    let order = row.update(&txn).await?;
    let payload = json!({"supervision_order_id": order.id, "department_id": order.department_id, "reply": reply});
    repo::tickets::record_event(
        &txn,
        order.ticket_id,
        None,
        event::SUPERVISION_REPLIED,
        Some(caller.user_id),
        now,
        payload,
    )
    .await?;
    if let Some(ticket) = repo::tickets::lock(&txn, order.ticket_id).await? {
        bump(&txn, &ticket, now).await?;
    }
    txn.commit().await?;
    Ok(order)
}
