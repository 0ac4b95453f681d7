//! The two shapes of `GET /api/v1/tickets` — the summary an inbox row shows (the default) and
//! the full ticket (`?view=full`) — and the list's ETag, so a client polling an unchanged
//! inbox gets `304 Not Modified` and no body.

use actix_web::{HttpRequest, HttpResponse, http::header};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use super::dto::{List, Ticket};
use crate::{
    repo::page::Page,
    service::tickets::{TicketSummaryView, TicketView},
};

/// Which shape a list returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ListView {
    /// The summary of each ticket (default).
    #[default]
    Summary,
    /// The full ticket, as `getTicket` returns it.
    Full,
}

/// One ticket in a summary list: what a list row needs, a few hundred bytes.
#[derive(Debug, Serialize, ToSchema)]
pub struct TicketSummary {
    pub id: Uuid,
    /// Human number, e.g. XZ-2026-000123.
    pub number: String,
    pub title: String,
    pub category_id: Uuid,
    pub grid_unit_id: Uuid,
    /// filed, dispatched, in_progress, resolved, closed or cancelled
    pub status: String,
    /// normal or urgent
    #[schema(value_type = String)]
    pub priority: entities::Priority,
    /// The ticket's version (the `If-Match` of a write).
    pub version: i32,
    /// The running SLA clock due first among those the caller may see; `null` when none runs.
    pub next_deadline: Option<NextDeadline>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NextDeadline {
    /// acknowledge, first_contact, resolve or rectify
    pub clock: String,
    pub dispatch_id: Option<Uuid>,
    pub due_at: DateTime<Utc>,
    /// on_track, warning or breached
    pub state: String,
}

impl From<TicketSummaryView> for TicketSummary {
    fn from(view: TicketSummaryView) -> Self {
        let t = view.ticket;
        Self {
            id: t.id,
            number: t.number,
            title: t.title,
            category_id: t.category_id,
            grid_unit_id: t.unit_id,
            status: t.status,
            priority: t.priority,
            version: t.version,
            next_deadline: view.next_deadline.map(|d| NextDeadline {
                clock: d.clock,
                dispatch_id: d.dispatch_id,
                due_at: d.due_at,
                state: d.state.as_str().to_owned(),
            }),
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// A page of `GET /api/v1/tickets`: summaries by default, full tickets with `?view=full`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum TicketPage {
    Summary(List<TicketSummary>),
    Full(List<Ticket>),
}

/// The ETag of a summary page: which tickets, at which version, with which next deadline and
/// state (a state moves with time alone), and where the next page starts.
pub fn summary_etag(page: &Page<TicketSummaryView>) -> String {
    let mut hash = Sha256::new();
    hash.update(b"summary;");
    for item in &page.items {
        hash.update(format!("{}/{};", item.ticket.id, item.ticket.version));
        if let Some(d) = &item.next_deadline {
            hash.update(format!(
                "{}/{:?}/{}/{};",
                d.clock,
                d.dispatch_id,
                d.due_at.timestamp_micros(),
                d.state.as_str()
            ));
        }
    }
    hash.update(page.next_cursor.as_deref().unwrap_or_default());
    tag(hash)
}

/// The ETag of a full page: the tickets' versions and every visible clock's state, as the
/// ETag of a single read.
pub fn full_etag(page: &Page<TicketView>) -> String {
    let mut hash = Sha256::new();
    hash.update(b"full;");
    for view in &page.items {
        hash.update(format!("{}/{}/{};", view.ticket.id, view.ticket.version, view.contact_revealable));
        for clock in &view.sla {
            hash.update(format!("{}/{:?}/{};", clock.clock, clock.dispatch_id, clock.state));
        }
    }
    hash.update(page.next_cursor.as_deref().unwrap_or_default());
    tag(hash)
}

fn tag(hash: Sha256) -> String {
    format!("\"l-{}\"", hex::encode(&hash.finalize()[..12]))
}

/// Whether the client's `If-None-Match` names the current tag (weak and strong compare equal).
pub fn still_current(req: &HttpRequest, current: &str) -> bool {
    req.headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim().trim_start_matches("W/") == current || t.trim() == "*"))
}

/// 304 with the tag when the client's copy is current, else 200 with the body and the tag.
pub fn respond(req: &HttpRequest, etag: String, body: &TicketPage) -> HttpResponse {
    if still_current(req, &etag) {
        return HttpResponse::NotModified().insert_header((header::ETAG, etag)).finish();
    }
    HttpResponse::Ok().insert_header((header::ETAG, etag)).json(body)
}
