//! Pure domain types and rules. No database, HTTP or runtime in here.

pub mod access;
pub mod calendar;
pub mod duration;
pub mod escalation;
pub mod geo;
pub mod levels;
pub mod password;
pub mod privacy;
pub mod report;
pub mod sensor;
pub mod sla;
pub mod ticket;
pub mod validate;
pub mod webhooks;
