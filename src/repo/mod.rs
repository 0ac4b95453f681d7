//! sea-orm queries with substance. Each takes `&impl ConnectionTrait` so it runs on the pool
//! or inside the caller's transaction alike.

pub mod grid_units;
pub mod login_failures;
pub mod open311;
pub mod page;
pub mod push;
pub mod routing_rules;
pub mod ticket_reads;
pub mod tickets;
pub mod tokens;
