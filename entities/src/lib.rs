//! sea-orm models of GridWhistle's tables and the enums stored in them. No logic lives here.

pub mod api_token;
pub mod category;
pub mod department;
pub mod dispatch;
pub mod enums;
pub mod grid_unit;
pub mod idempotency_key;
pub mod rating;
pub mod routing_rule;
pub mod routing_rule_co_handler;
pub mod ticket;
pub mod ticket_counter;
pub mod ticket_event;
pub mod user;

pub use enums::{Priority, Role, UnitLevel};
