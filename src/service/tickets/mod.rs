//! Tickets (诉求工单): filing, reading, the dispatcher's actions (派单, 吹哨, 取消), the
//! resident's rating (好差评) and auto-close. Every change locks the ticket row, checks the
//! state machine, bumps `version` and writes its timeline events in one transaction.

mod closure;
mod dispatching;
mod filing;
mod locked;
mod merge;
mod personal_data;
mod query;
mod summary;

pub use closure::*;
pub use dispatching::*;
pub use filing::*;
pub(crate) use locked::*;
pub use merge::*;
pub use personal_data::*;
pub use query::*;
pub use summary::*;

use entities::{dispatch, rating, ticket};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::domain::validate::{FieldErrors, Message};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    pub reason: String,
}

/// A ticket as one caller may see it.
#[derive(Debug, Clone)]
pub struct TicketView {
    pub ticket: ticket::Model,
    /// The dispatches the viewer may read in full: all of them, or for department staff only
    /// their own department's.
    pub dispatches: Vec<dispatch::Model>,
    /// For department staff, the other departments on the ticket: who and in which state,
    /// never their replies, reasons or clocks.
    pub other_departments: Vec<OtherDepartment>,
    pub rating: Option<rating::Model>,
    /// The viewer may reveal the resident's contact through the audited `/contact` read.
    /// Every other read shows it masked.
    pub contact_revealable: bool,
    /// The ticket lies in the viewer's jurisdiction (decided with the same facts as
    /// `contact_revealable`, so a single read needs no second look-up).
    pub in_scope: bool,
    /// The SLA clocks of the ticket and of the dispatches above, oldest first.
    pub sla: Vec<crate::service::sla::ClockStatus>,
    /// The photos and documents the viewer may see (department staff: the filing's and their
    /// own department's evidence), oldest first.
    pub attachments: Vec<entities::upload::Model>,
}

/// Another department's share of a ticket, as department staff see it.
#[derive(Debug, Clone, serde::Serialize, ToSchema)]
pub struct OtherDepartment {
    pub department_id: uuid::Uuid,
    pub department_name: String,
    /// primary or co_handler
    pub role: String,
    /// pending, acknowledged, returned, resolved or cancelled
    pub status: String,
}

pub struct Filed {
    pub view: TicketView,
    /// True when an `Idempotency-Key` retry returned the ticket filed before.
    pub replayed: bool,
}

/// Free text of at most `max` characters; line breaks allowed, other control characters not.
pub(crate) fn long_text(errors: &mut FieldErrors, field: &str, value: &str, max: usize) -> String {
    let cleaned = crate::domain::validate::strip_bidi_overrides(value);
    let trimmed = cleaned.trim();
    if trimmed.is_empty() {
        errors.add(field, Message::Empty);
    } else if trimmed.chars().count() > max {
        errors.add(field, Message::TooLong { max });
    } else if trimmed.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
        errors.add(field, Message::ControlCharacters);
    }
    trimmed.to_owned()
}
