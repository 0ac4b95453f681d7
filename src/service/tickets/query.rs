//! Reading tickets and their timelines, as one caller may see them.

use super::*;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entities::{Priority, dispatch, grid_unit, ticket};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::service::{referenced, require};
use crate::{
    context::AppContext,
    domain::{
        access::{Caller, Permission, may_see_contact, may_see_ticket},
        ticket::TicketStatus,
    },
    error::{AppError, AppResult},
    repo::{
        self,
        page::{Order, Page, PageRequest},
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
    let ticket = ticket::Entity::find_by_id(id).one(&ctx.db).await?.ok_or_else(|| AppError::not_found("ticket"))?;
    let view = view_in(ctx, &ctx.db, &viewer, ticket).await?;
    // Out-of-jurisdiction tickets answer exactly like missing ones.
    if view.in_scope { Ok(view) } else { Err(AppError::not_found("ticket")) }
}

pub async fn list(
    ctx: &AppContext,
    caller: &Caller,
    filter: TicketFilter,
    request: PageRequest,
) -> AppResult<Page<TicketView>> {
    require(caller, Permission::ReadTickets)?;
    let viewer = Viewer::of(&ctx.db, caller).await?;
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
        let late = sea_orm::sea_query::Query::select()
            .column(entities::sla_clock::Column::TicketId)
            .from(entities::sla_clock::Entity)
            .and_where(entities::sla_clock::Column::StoppedAt.is_null())
            .and_where(entities::sla_clock::Column::DueAt.lte(ctx.clock.now()))
            .to_owned();
        select = if overdue {
            select.filter(ticket::Column::Id.in_subquery(late))
        } else {
            select.filter(ticket::Column::Id.not_in_subquery(late))
        };
    }
    if let Some(flag) = filter.needs_arbitration {
        select = select.filter(ticket::Column::NeedsArbitration.eq(flag));
    }
    let page =
        repo::page::fetch_ordered(&ctx.db, select, ticket::Column::Id, |t| t.id, request, Order::NewestFirst).await?;
    let items = views_in(ctx, &ctx.db, &viewer, page.items).await?;
    Ok(Page { items, next_cursor: page.next_cursor })
}

pub async fn events(
    ctx: &AppContext,
    caller: &Caller,
    id: Uuid,
    request: PageRequest,
) -> AppResult<Page<entities::ticket_event::Model>> {
    use entities::ticket_event;
    get(ctx, caller, id).await?;
    let select = ticket_event::Entity::find().filter(ticket_event::Column::TicketId.eq(id));
    Ok(repo::page::fetch(&ctx.db, select, ticket_event::Column::Id, |e| e.id, request).await?)
}

pub(crate) async fn view_in(
    ctx: &AppContext,
    db: &impl ConnectionTrait,
    viewer: &Viewer<'_>,
    ticket: ticket::Model,
) -> AppResult<TicketView> {
    Ok(views_in(ctx, db, viewer, vec![ticket]).await?.remove(0))
}

/// Views of several tickets with three queries, whatever their number.
async fn views_in(
    ctx: &AppContext,
    db: &impl ConnectionTrait,
    viewer: &Viewer<'_>,
    tickets: Vec<ticket::Model>,
) -> AppResult<Vec<TicketView>> {
    let ids: Vec<Uuid> = tickets.iter().map(|t| t.id).collect();
    let unit_ids: Vec<Uuid> = tickets.iter().map(|t| t.unit_id).collect();
    let mut dispatches: HashMap<Uuid, Vec<dispatch::Model>> = HashMap::new();
    for d in repo::tickets::dispatches_of(db, &ids).await? {
        dispatches.entry(d.ticket_id).or_default().push(d);
    }
    let mut ratings = repo::tickets::latest_ratings(db, &ids).await?;
    let mut clocks = crate::service::sla::clocks_of(db, &ids).await?;
    let now = ctx.clock.now();
    let paths = repo::tickets::unit_paths(db, &unit_ids).await?;
    Ok(tickets
        .into_iter()
        .map(|ticket| {
            let dispatches = dispatches.remove(&ticket.id).unwrap_or_default();
            let path = paths.get(&ticket.unit_id).map(String::as_str).unwrap_or_default();
            let facts = viewer.facts(&ticket, path, &dispatches);
            let (show_contact, in_scope) =
                (may_see_contact(viewer.caller, &facts), may_see_ticket(viewer.caller, &facts));
            let sla = clocks
                .remove(&ticket.id)
                .unwrap_or_default()
                .iter()
                .map(|c| crate::service::sla::status(ctx, c, now))
                .collect();
            TicketView { rating: ratings.remove(&ticket.id), ticket, dispatches, show_contact, in_scope, sla }
        })
        .collect())
}
