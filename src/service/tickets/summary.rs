//! The light list of tickets (the default of `GET /tickets`): what an inbox or a dashboard row
//! shows, with the next deadline the viewer may see — read in two statements like the full
//! list, the second only the running clocks (not every dispatch, clock, rating and upload),
//! and without the working-time arithmetic of every clock.

use chrono::{DateTime, Utc};
use entities::ticket;
use uuid::Uuid;

use super::{TicketFilter, Viewer, query::list_select};
use crate::{
    context::AppContext,
    domain::{
        access::{Caller, Permission, own_department_only},
        sla::SlaState,
    },
    error::AppResult,
    repo::{
        self,
        page::{Page, PageRequest},
    },
    service::require,
};

/// One ticket of a summary list.
#[derive(Debug, Clone)]
pub struct TicketSummaryView {
    pub ticket: ticket::Model,
    /// The running clock due first, among those the viewer may see.
    pub next_deadline: Option<NextDeadline>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextDeadline {
    pub clock: String,
    pub dispatch_id: Option<Uuid>,
    pub due_at: DateTime<Utc>,
    pub state: SlaState,
}

pub async fn list_summaries(
    ctx: &AppContext,
    caller: &Caller,
    filter: TicketFilter,
    request: PageRequest,
) -> AppResult<Page<TicketSummaryView>> {
    require(caller, Permission::ReadTickets)?;
    let viewer = Viewer::of(&ctx.db, caller).await?;
    let select = list_select(ctx, &viewer, filter).await?;
    let page = repo::ticket_reads::newest_first(&ctx.db, select, request).await?;
    let ids: Vec<Uuid> = page.items.iter().map(|row| row.ticket.id).collect();
    let mut clocks = repo::ticket_reads::running_clocks(&ctx.db, &ids).await?;
    let own_department = own_department_only(caller);
    let now = ctx.clock.now();
    let items = page
        .items
        .into_iter()
        .map(|row| {
            let ticket = row.ticket;
            // Department staff see their own dispatches' clocks and the ticket's, as in a full read.
            let next_deadline = clocks
                .remove(&ticket.id)
                .unwrap_or_default()
                .into_iter()
                .filter(|c| c.dispatch_id.is_none() || own_department.is_none_or(|own| c.department_id == Some(own)))
                .min_by_key(|c| (c.due_at, c.id))
                .map(|c| NextDeadline {
                    state: SlaState::at(now, c.warn_at, c.due_at),
                    clock: c.clock,
                    dispatch_id: c.dispatch_id,
                    due_at: c.due_at,
                });
            TicketSummaryView { ticket, next_deadline }
        })
        .collect();
    Ok(Page { items, next_cursor: page.next_cursor })
}
