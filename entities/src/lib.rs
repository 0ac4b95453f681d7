//! sea-orm models of GridWhistle's tables and the enums stored in them. No logic lives here.

pub mod api_token;
pub mod audit_log;
pub mod calendar_year;
pub mod category;
pub mod department;
pub mod device;
pub mod dispatch;
pub mod enums;
pub mod escalation;
pub mod escalation_rule;
pub mod extension_request;
pub mod grid_unit;
pub mod idempotency_key;
pub mod login_failure;
pub mod notification;
pub mod rating;
pub mod routing_rule;
pub mod routing_rule_co_handler;
pub mod sensor_alarm_receipt;
pub mod sensor_open_alarm;
pub mod sla_clock;
pub mod sla_policy;
pub mod supervision_order;
pub mod ticket;
pub mod ticket_counter;
pub mod ticket_event;
pub mod user;

pub use enums::{ClockStop, Priority, Role, UnitLevel};
