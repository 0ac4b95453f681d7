//! API tests: one binary, one module per capability. Each test runs on SQLite and, when
//! TEST_DATABASE_URL is set, on PostgreSQL.

mod access;
mod accounts;
mod api_description;
mod auth;
mod concurrency;
mod console;
mod contract;
mod error_messages;
mod errors;
mod event_stream;
mod geography;
mod governance;
mod helpers;
mod mail;
mod mail_delivery;
mod open311;
mod operations;
mod operator;
mod outages;
mod photos;
mod read_path;
mod reference_data;
mod reports;
mod security;
mod sensors;
mod sla;
mod ticket_access;
mod ticket_integrity;
mod ticket_rules;
mod tickets;
mod time_bounds;
mod uploads;
mod users;
mod webhooks;
