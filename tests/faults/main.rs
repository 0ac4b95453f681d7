//! The fault suite: the experiments of issue 11 against the real server binary, run as child
//! processes so that kill -9, SIGTERM and a PostgreSQL restart are real. Each experiment prints
//! its figures (acknowledged / lost / duplicated, recovery times) and asserts the promise of
//! README "Reliability".
//!
//! Quick variants (a few seconds each) run with `cargo test`; the long ones are ignored and run
//! with `cargo test --release --test faults -- --ignored --nocapture` (TEST_DATABASE_URL set
//! for the PostgreSQL parts; without it they say they are skipped). Ports 56000–56099 are the
//! suite's.

mod kill9;
mod postgres_restart;
mod replicas;
mod sigterm;
mod smtp_outage;
mod support;
