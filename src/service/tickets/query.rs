//! Reading tickets and their timelines, as one caller may see them.

use super::*;

use chrono::{DateTime, Utc};
use entities::{Priority, dispatch, grid_unit, ticket};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::service::{referenced, require};
use crate::{
    context::AppContext,
    domain::{
        access::{Caller, Permission, may_see_contact, may_see_ticket, own_department_only},
        ticket::{TicketStatus, event},
    },
    error::AppResult,
    repo::{
        self,
        page::{Page, PageRequest},
        tickets::Scope,
    },
};

#[derive(Debug, Default, Clone)]
pub struct TicketFilter {
    pub status: Option<TicketStatus>,
    pub category: Option<Uuid>,
    pub unit: Option<Uuid>,
    pub department: Option<Uuid>,
    pub priority: Option<Priority>,
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
    pub needs_arbitration: Option<bool>,
    /// Only tickets with a running clock past its deadline.
    pub overdue: Option<bool>,
}

// ---- reading --------------------------------------------------------------------------------

pub async fn get(ctx: &AppContext, caller: &Caller, id: Uuid) -> AppResult<TicketView> {
    require(caller, Permission::ReadTickets)?;
    let viewer = Viewer::of(&ctx.db, caller).await?;
    // Two statements: the ticket with its unit's path, then its dispatches, clocks and rating.
    let row = repo::ticket_reads::one(&ctx.db, id).await?.ok_or_else(super::locked::ticket_not_found)?;
    let view = views_of_rows(ctx, &ctx.db, &viewer, vec![row]).await?.remove(0);
    // Out-of-jurisdiction tickets answer exactly like missing ones.
    if view.in_scope { Ok(view) } else { Err(super::locked::ticket_not_found()) }
}

pub async fn list(
    ctx: &AppContext,
    caller: &Caller,
    filter: TicketFilter,
    request: PageRequest,
) -> AppResult<Page<TicketView>> {
    require(caller, Permission::ReadTickets)?;
    let viewer = Viewer::of(&ctx.db, caller).await?;
    let select = list_select(ctx, &viewer, filter).await?;
    let page = repo::ticket_reads::newest_first(&ctx.db, select, request).await?;
    let items = views_of_rows(ctx, &ctx.db, &viewer, page.items).await?;
    Ok(Page { items, next_cursor: page.next_cursor })
}

/// The tickets in the viewer's jurisdiction that pass the filter (one statement when the
/// filter names a unit: its path).
pub(super) async fn list_select(
    ctx: &AppContext,
    viewer: &Viewer<'_>,
    filter: TicketFilter,
) -> AppResult<sea_orm::Select<ticket::Entity>> {
    let mut select = ticket::Entity::find().filter(repo::tickets::scope_condition(&viewer.scope()));
    if let Some(status) = filter.status {
        select = select.filter(ticket::Column::Status.eq(status.to_string()));
    }
    if let Some(category) = filter.category {
        select = select.filter(ticket::Column::CategoryId.eq(category));
    }
    if let Some(unit) = filter.unit {
        let root: grid_unit::Model = referenced::<grid_unit::Entity>(&ctx.db, "unit", unit, "grid unit").await?;
        select = select.filter(repo::tickets::in_unit_subtree(&root.path));
    }
    if let Some(department) = filter.department {
        select = select.filter(repo::tickets::scope_condition(&Scope::Department(department)));
    }
    if let Some(priority) = filter.priority {
        select = select.filter(ticket::Column::Priority.eq(priority));
    }
    if let Some(from) = filter.created_from {
        select = select.filter(ticket::Column::CreatedAt.gte(from));
    }
    if let Some(to) = filter.created_to {
        select = select.filter(ticket::Column::CreatedAt.lt(to));
    }
    if let Some(overdue) = filter.overdue {
        let mut late = sea_orm::sea_query::Query::select()
            .column(entities::sla_clock::Column::TicketId)
            .from(entities::sla_clock::Entity)
            .and_where(entities::sla_clock::Column::StoppedAt.is_null())
            .and_where(entities::sla_clock::Column::DueAt.lte(ctx.clock.now()))
            .to_owned();
        // Department staff are shown the ticket's clocks and their own dispatches' only, as in
        // a read or a summary: another department's late clock is not theirs to see.
        if let Some(own) = own_department_only(viewer.caller) {
            let own_dispatches = sea_orm::sea_query::Query::select()
                .column(dispatch::Column::Id)
                .from(dispatch::Entity)
                .and_where(dispatch::Column::DepartmentId.eq(own))
                .to_owned();
            late.cond_where(
                Condition::any()
                    .add(entities::sla_clock::Column::DispatchId.is_null())
                    .add(entities::sla_clock::Column::DispatchId.in_subquery(own_dispatches)),
            );
        }
        select = if overdue {
            select.filter(ticket::Column::Id.in_subquery(late))
        } else {
            select.filter(ticket::Column::Id.not_in_subquery(late))
        };
    }
    if let Some(flag) = filter.needs_arbitration {
        select = select.filter(ticket::Column::NeedsArbitration.eq(flag));
    }
    Ok(select)
}

pub async fn events(
    ctx: &AppContext,
    caller: &Caller,
    id: Uuid,
    request: PageRequest,
) -> AppResult<Page<entities::ticket_event::Model>> {
    use entities::ticket_event;
    let view = get(ctx, caller, id).await?;
    let mut select = ticket_event::Entity::find().filter(ticket_event::Column::TicketId.eq(id));
    let Some(department) = own_department_only(caller) else {
        return Ok(repo::page::fetch(&ctx.db, select, ticket_event::Column::Id, |e| e.id, request).await?);
    };
    // Department staff read the ticket-level facts and their own dispatches' events, never
    // another department's reply, return reason, clocks or supervision orders.
    let own: Vec<Uuid> = view.dispatches.iter().map(|d| d.id).collect();
    select = select.filter(
        Condition::any()
            .add(ticket_event::Column::DispatchId.is_null())
            .add(ticket_event::Column::DispatchId.is_in(own.clone()))
            .add(ticket_event::Column::Kind.eq(event::RESOLVED)),
    );
    let mut page = repo::page::fetch(&ctx.db, select, ticket_event::Column::Id, |e| e.id, request).await?;
    page.items.retain_mut(|e| department_may_read(e, department, &own));
    Ok(page)
}

/// One timeline event as `caller` may read it through `events` above (the live stream's
/// filter), or `None` when the ticket is out of the caller's jurisdiction or the event is
/// another department's.
pub async fn visible_event(
    ctx: &AppContext,
    caller: &Caller,
    mut event: entities::ticket_event::Model,
) -> AppResult<Option<entities::ticket_event::Model>> {
    let view = match get(ctx, caller, event.ticket_id).await {
        Ok(view) => view,
        Err(err) if err.is_not_found() => return Ok(None),
        Err(err) => return Err(err),
    };
    let Some(department) = own_department_only(caller) else {
        return Ok(Some(event));
    };
    let own: Vec<Uuid> = view.dispatches.iter().map(|d| d.id).collect();
    // The same two steps as `events`: the query's condition, then the per-event rule.
    let selected = event.dispatch_id.is_none_or(|d| own.contains(&d)) || event.kind == event::RESOLVED;
    Ok((selected && department_may_read(&mut event, department, &own)).then_some(event))
}

pub(crate) async fn view_in(
    ctx: &AppContext,
    db: &impl ConnectionTrait,
    viewer: &Viewer<'_>,
    ticket: ticket::Model,
) -> AppResult<TicketView> {
    Ok(views_in(ctx, db, viewer, vec![ticket]).await?.remove(0))
}

/// Views of tickets read without their unit's path (after a change): one more statement.
async fn views_in(
    ctx: &AppContext,
    db: &impl ConnectionTrait,
    viewer: &Viewer<'_>,
    tickets: Vec<ticket::Model>,
) -> AppResult<Vec<TicketView>> {
    let unit_ids: Vec<Uuid> = tickets.iter().map(|t| t.unit_id).collect();
    let paths = repo::tickets::unit_paths(db, &unit_ids).await?;
    let rows = tickets
        .into_iter()
        .map(|ticket| repo::ticket_reads::TicketRow { unit_path: paths.get(&ticket.unit_id).cloned(), ticket })
        .collect();
    views_of_rows(ctx, db, viewer, rows).await
}

/// Views of several tickets with one statement, whatever their number.
async fn views_of_rows(
    ctx: &AppContext,
    db: &impl ConnectionTrait,
    viewer: &Viewer<'_>,
    rows: Vec<repo::ticket_reads::TicketRow>,
) -> AppResult<Vec<TicketView>> {
    let ids: Vec<Uuid> = rows.iter().map(|row| row.ticket.id).collect();
    let repo::ticket_reads::Related { mut dispatches, department_names, mut clocks, mut ratings, uploads } =
        repo::ticket_reads::related(db, &ids).await?;
    let mut attachments = uploads;
    let own_department = own_department_only(viewer.caller);
    let now = ctx.clock.now();
    let placed: Vec<(&ticket::Model, &str)> =
        rows.iter().map(|row| (&row.ticket, row.unit_path.as_deref().unwrap_or_default())).collect();
    let followed = viewer.followed_among(db, &placed).await?;
    Ok(rows
        .into_iter()
        .map(|repo::ticket_reads::TicketRow { ticket, unit_path }| {
            let all = dispatches.remove(&ticket.id).unwrap_or_default();
            let facts = viewer.facts(&ticket, unit_path.as_deref().unwrap_or_default(), &all, &followed);
            let (contact_revealable, in_scope) =
                (may_see_contact(viewer.caller, &facts), may_see_ticket(viewer.caller, &facts));
            let (readable, others): (Vec<dispatch::Model>, Vec<dispatch::Model>) =
                all.into_iter().partition(|d| own_department.is_none_or(|own| d.department_id == own));
            let other_departments = others
                .into_iter()
                .map(|d| OtherDepartment {
                    department_name: department_names.get(&d.department_id).cloned().unwrap_or_default(),
                    department_id: d.department_id,
                    role: d.role,
                    status: d.status,
                })
                .collect();
            let sla = clocks
                .remove(&ticket.id)
                .unwrap_or_default()
                .iter()
                .filter(|c| c.dispatch_id.is_none_or(|id| readable.iter().any(|d| d.id == id)))
                .map(|c| crate::service::sla::status(ctx, c, now))
                .collect();
            let readable_ids: Vec<Uuid> = readable.iter().map(|d| d.id).collect();
            let attachments = attachments
                .remove(&ticket.id)
                .unwrap_or_default()
                .into_iter()
                .filter(|a| crate::service::attachments::visible_in(viewer.caller, &readable_ids, a))
                .collect();
            TicketView {
                attachments,
                rating: ratings.remove(&ticket.id),
                ticket,
                dispatches: readable,
                other_departments,
                contact_revealable,
                in_scope,
                sla,
            }
        })
        .collect())
}

/// Whether department staff of `department` may read a ticket event, redacting the payload
/// where only the fact is theirs (another department's resolution resolved the ticket).
fn department_may_read(event: &mut entities::ticket_event::Model, department: Uuid, own: &[Uuid]) -> bool {
    if event.dispatch_id.is_some_and(|d| own.contains(&d)) {
        return true;
    }
    // Ticket-level facts stay; who of another department caused them, and the ids of that
    // department's dispatches, do not.
    if let Some(ids) = event.payload.get_mut("dispatch_ids").and_then(|v| v.as_array_mut()) {
        ids.retain(|id| id.as_str().and_then(|id| id.parse::<Uuid>().ok()).is_some_and(|id| own.contains(&id)));
    }
    match event.kind.as_str() {
        // Not the caller's own dispatch (that returned above): the fact, without who or how.
        event::RESOLVED | event::WORK_STARTED => {
            event.payload = serde_json::json!({});
            event.dispatch_id = None;
            event.actor_id = None;
            true
        }
        event::SUPERVISION_ORDERED | event::SUPERVISION_REPLIED => {
            event.payload.get("department_id").and_then(|v| v.as_str()) == Some(department.to_string().as_str())
        }
        _ => event.dispatch_id.is_none(),
    }
}
