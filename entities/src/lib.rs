//! sea-orm models of GridWhistle's tables and the enums stored in them. No logic lives here.

pub mod api_key;
pub mod api_token;
pub mod audit_log;
pub mod calendar_year;
pub mod category;
pub mod department;
pub mod dispatch;
pub mod enums;
pub mod escalation;
pub mod escalation_rule;
pub mod event_stream_token;
pub mod extension_request;
pub mod grid_unit;
pub mod idempotency_key;
pub mod login_failure;
pub mod notification;
pub mod open311_token;
pub mod rating;
pub mod routing_rule;
pub mod routing_rule_co_handler;
pub mod sla_clock;
pub mod sla_policy;
pub mod supervision_order;
pub mod ticket;
pub mod ticket_counter;
pub mod ticket_event;
pub mod ticket_media_url;
pub mod upload;
pub mod ticket_follower;
pub mod ticket_merge;
pub mod topic;
pub mod user;
pub mod webhook_attempt;
pub mod webhook_delivery;
pub mod webhook_subscription;

pub use enums::{ClockStop, Priority, Role, UnitLevel};
