//! The shared frame of every ticket change: the viewer, the locked ticket, the checked
//! transition and the versioned save.

use super::{TicketView, view_in};
use chrono::{DateTime, Utc};
use entities::{ClockStop, dispatch, grid_unit, ticket};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, IntoActiveModel, QueryFilter, Set,
};
use uuid::Uuid;

use crate::{
    context::AppContext,
    db::begin_write,
    domain::{
        access::{Caller, DepartmentDispatch, TicketFacts, TicketScope, may_see_ticket, ticket_scope},
        sla::ClockKind,
        ticket::{DispatchAction, DispatchStatus, TicketAction, TicketStatus, dispatch_transition, ticket_transition},
    },
    error::{AppError, AppResult, Refusal},
    repo::{self, tickets::Scope},
};

/// The caller with their home unit's path, looked up once per request.
pub struct Viewer<'a> {
    pub caller: &'a Caller,
    home_path: Option<String>,
}

impl<'a> Viewer<'a> {
    /// The home path comes with the caller when the token was read (no query), else from the
    /// database.
    pub async fn of(db: &impl ConnectionTrait, caller: &'a Caller) -> AppResult<Self> {
        let home_path = match (caller.unit_id, &caller.home_path) {
            (Some(_), Some(path)) => Some(path.clone()),
            (Some(unit), None) => grid_unit::Entity::find_by_id(unit).one(db).await?.map(|u| u.path),
            (None, _) => None,
        };
        Ok(Self { caller, home_path })
    }

    /// Which of `tickets` (with their units' paths) a grid worker follows (see
    /// [`TicketScope::GridWorker`]). Asks the database only when one of them is neither in their
    /// grid nor filed by them, so reading one's own grid costs no statement.
    pub async fn followed_among(
        &self,
        db: &impl ConnectionTrait,
        tickets: &[(&ticket::Model, &str)],
    ) -> AppResult<Vec<Uuid>> {
        let TicketScope::GridWorker { user_id, .. } = ticket_scope(self.caller) else { return Ok(Vec::new()) };
        let elsewhere = tickets.iter().any(|(t, path)| !self.in_home_subtree(path) && t.filed_by != user_id);
        if !elsewhere {
            return Ok(Vec::new());
        }
        Ok(repo::tickets::followed_ids(db, user_id).await?)
    }

    pub fn scope(&self) -> Scope {
        match (ticket_scope(self.caller), &self.home_path) {
            (TicketScope::Everything, _) => Scope::Everything,
            (TicketScope::UnitSubtree(_), Some(path)) => Scope::UnitPath(path.clone()),
            (TicketScope::GridWorker { user_id, .. }, Some(path)) => {
                Scope::FiledByOrUnitPath { user_id, path: path.clone() }
            }
            (TicketScope::Department(department), _) => Scope::Department(department),
            _ => Scope::Nothing,
        }
    }

    pub fn in_home_subtree(&self, unit_path: &str) -> bool {
        self.home_path.as_deref().is_some_and(|home| unit_path.starts_with(home))
    }

    /// What access rules look at; `followed` as from [`Viewer::followed_among`].
    pub fn facts(
        &self,
        ticket: &ticket::Model,
        unit_path: &str,
        dispatches: &[dispatch::Model],
        followed: &[Uuid],
    ) -> TicketFacts {
        let department_dispatch = self.caller.department_id.and_then(|department| {
            let mine: Vec<&dispatch::Model> = dispatches.iter().filter(|d| d.department_id == department).collect();
            if mine.is_empty() {
                None
            } else if mine.iter().any(|d| d.acknowledged_at.is_some()) {
                Some(DepartmentDispatch::Acknowledged)
            } else {
                Some(DepartmentDispatch::NotYetAcknowledged)
            }
        });
        TicketFacts {
            in_home_subtree: self.in_home_subtree(unit_path),
            filed_by: ticket.filed_by,
            follows: followed.contains(&ticket.id),
            department_dispatch,
        }
    }
}

/// A locked ticket in the caller's jurisdiction, with its dispatches, ready to change.
pub(crate) struct Locked {
    pub txn: DatabaseTransaction,
    pub ticket: ticket::Model,
    pub dispatches: Vec<dispatch::Model>,
    pub now: DateTime<Utc>,
}

/// Opens the change: lock, jurisdiction (404), `If-Match` (412).
pub(crate) async fn lock_in_scope(
    ctx: &AppContext,
    viewer: &Viewer<'_>,
    id: Uuid,
    if_match: Option<i32>,
) -> AppResult<Locked> {
    let txn = begin_write(&ctx.db).await?;
    let ticket = repo::tickets::lock(&txn, id).await?.ok_or_else(ticket_not_found)?;
    let dispatches = repo::tickets::dispatches_of(&txn, &[id]).await?;
    let paths = repo::tickets::unit_paths(&txn, &[ticket.unit_id]).await?;
    let path = paths.get(&ticket.unit_id).map(String::as_str).unwrap_or_default();
    let followed = viewer.followed_among(&txn, &[(&ticket, path)]).await?;
    if !may_see_ticket(viewer.caller, &viewer.facts(&ticket, path, &dispatches, &followed)) {
        return Err(ticket_not_found());
    }
    if let Some(expected) = if_match
        && expected != ticket.version
    {
        let now = ticket.version;
        return Err(AppError::refused(
            Refusal::PreconditionFailed,
            format!("工单已被他人修改（现为第 {now} 版，If-Match 为第 {expected} 版），请刷新后重试"),
            format!("the ticket changed (version {now} now, {expected} in If-Match); reload it and try again"),
        ));
    }
    Ok(Locked { txn, ticket, dispatches, now: ctx.clock.now() })
}

pub(crate) fn next_status(ticket: &ticket::Model, action: TicketAction) -> AppResult<TicketStatus> {
    let from = TicketStatus::parse(&ticket.status)
        .ok_or_else(|| AppError::Internal(format!("unknown ticket status {}", ticket.status)))?;
    ticket_transition(from, action).ok_or_else(|| {
        let number = &ticket.number;
        AppError::refused(
            Refusal::Conflict,
            format!(
                "工单 {number} 当前{}（{from}），不能{}（{action}）",
                ticket_status_zh(from),
                ticket_action_zh(action)
            ),
            format!("ticket {number} is {from}; it cannot {action} now"),
        )
    })
}

pub(crate) fn next_dispatch_status(dispatch: &dispatch::Model, action: DispatchAction) -> AppResult<DispatchStatus> {
    let from = DispatchStatus::parse(&dispatch.status)
        .ok_or_else(|| AppError::Internal(format!("unknown dispatch status {}", dispatch.status)))?;
    dispatch_transition(from, action).ok_or_else(|| {
        AppError::refused(
            Refusal::Conflict,
            format!("该派单当前{}（{from}），不能{}（{action}）", dispatch_status_zh(from), dispatch_action_zh(action)),
            format!("the dispatch is {from}; cannot {action} it"),
        )
    })
}

/// 404 for a ticket that does not exist and for one outside the caller's sight alike.
pub(crate) fn ticket_not_found() -> AppError {
    AppError::refused(Refusal::NotFound, "未找到该工单", "ticket not found")
}

fn ticket_status_zh(status: TicketStatus) -> &'static str {
    match status {
        TicketStatus::Filed => "已受理、待派单",
        TicketStatus::Dispatched => "已派单",
        TicketStatus::InProgress => "办理中",
        TicketStatus::Resolved => "已办结",
        TicketStatus::Closed => "已关闭",
        TicketStatus::Cancelled => "已撤销",
        TicketStatus::Merged => "已合并",
    }
}

fn ticket_action_zh(action: TicketAction) -> &'static str {
    match action {
        TicketAction::Dispatch => "派单",
        TicketAction::Whistle => "吹哨",
        TicketAction::StartWork => "开始办理",
        TicketAction::ReturnToDispatcher => "退回调度",
        TicketAction::ForceBack => "驳回退单",
        TicketAction::Progress => "报告进展",
        TicketAction::Resolve => "办结",
        TicketAction::RateSatisfied | TicketAction::Reopen => "评价",
        TicketAction::AutoClose => "自动关闭",
        TicketAction::Cancel => "撤销",
        TicketAction::Merge => "合并",
    }
}

fn dispatch_status_zh(status: DispatchStatus) -> &'static str {
    match status {
        DispatchStatus::Pending => "待签收",
        DispatchStatus::Acknowledged => "已签收",
        DispatchStatus::Returned => "已退单",
        DispatchStatus::Resolved => "已办结",
        DispatchStatus::Cancelled => "已撤销",
    }
}

fn dispatch_action_zh(action: DispatchAction) -> &'static str {
    match action {
        DispatchAction::Acknowledge => "签收",
        DispatchAction::Return => "退单",
        DispatchAction::RefuseReturn => "驳回退单",
        DispatchAction::Progress => "报告进展",
        DispatchAction::Resolve => "办结",
        DispatchAction::Reopen => "重新办理",
        DispatchAction::Cancel => "撤销",
    }
}

/// Writes the changed ticket with the next version; the row lock makes the check certain.
pub(crate) async fn save(
    txn: &DatabaseTransaction,
    mut row: ticket::ActiveModel,
    current: &ticket::Model,
    now: DateTime<Utc>,
) -> AppResult<ticket::Model> {
    row.version = Set(current.version + 1);
    row.updated_at = Set(now);
    ticket::Entity::update(row).validate()?.filter(ticket::Column::Version.eq(current.version)).exec(txn).await.map_err(
        |err| match err {
            sea_orm::DbErr::RecordNotUpdated => AppError::refused(
                Refusal::Conflict,
                "工单在同一时刻被他人修改，请重试",
                "the ticket changed at the same moment; retry",
            ),
            other => other.into(),
        },
    )
}

/// The last step of every change: save the ticket with the next version, read it back as the
/// caller sees it, commit.
pub(crate) async fn commit(
    ctx: &AppContext,
    txn: DatabaseTransaction,
    viewer: &Viewer<'_>,
    row: ticket::ActiveModel,
    current: &ticket::Model,
    now: DateTime<Utc>,
) -> AppResult<TicketView> {
    let ticket = save(&txn, row, current, now).await?;
    let view = view_in(ctx, &txn, viewer, ticket).await?;
    txn.commit().await?;
    Ok(view)
}

/// A ticket ends (closed, auto-closed, cancelled, merged): every open dispatch ends with it and every
/// running clock stops without its goal, so nothing on it can act, fire or escalate again.
pub(crate) async fn end_open_work(
    txn: &DatabaseTransaction,
    ticket_id: Uuid,
    dispatches: &[dispatch::Model],
    now: DateTime<Utc>,
) -> AppResult<()> {
    for open in dispatches.iter().filter(|d| dispatch_is_open(d)) {
        let mut row = open.clone().into_active_model();
        row.status = Set(next_dispatch_status(open, DispatchAction::Cancel)?.to_string());
        row.updated_at = Set(now);
        row.update(txn).await?;
    }
    crate::service::sla::stop(txn, ticket_id, &ClockKind::ALL, None, ClockStop::Cancelled, now).await?;
    // Open supervision orders end with the ticket: nobody answers them any more. (Pending
    // extension requests stay as they are; deciding one on an ended ticket is refused.)
    entities::supervision_order::Entity::update_many()
        .col_expr(entities::supervision_order::Column::Status, sea_orm::sea_query::Expr::val("cancelled"))
        .filter(entities::supervision_order::Column::TicketId.eq(ticket_id))
        .filter(entities::supervision_order::Column::Status.eq("open"))
        .exec(txn)
        .await?;
    Ok(())
}

pub(crate) fn dispatch_is_open(d: &dispatch::Model) -> bool {
    DispatchStatus::parse(&d.status).is_some_and(DispatchStatus::is_open)
}

/// The department responsible for a ticket now, from its dispatches (see
/// [`crate::domain::ticket::holds_responsibility`]); `None` while it lies with the dispatcher.
pub(crate) fn responsible_department(dispatches: &[dispatch::Model]) -> Option<Uuid> {
    dispatches
        .iter()
        .rev()
        .find(|d| crate::domain::ticket::holds_responsibility(&d.role, &d.status))
        .map(|d| d.department_id)
}
