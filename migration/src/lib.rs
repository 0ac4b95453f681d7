//! Schema migrations. One file per schema change; they run unchanged on SQLite and PostgreSQL.

pub use sea_orm_migration::prelude::*;

mod m20261129_000001_reference_data;
mod m20261129_000002_identity;
mod m20261129_000003_tickets;
mod m20261129_000004_sla;
mod m20261129_000005_security;
mod m20261129_000006_report_columns;
mod m20261129_000007_housekeeping_indexes;
mod m20261129_000008_login_failures;
mod m20261129_000008_session_start;
mod m20261129_000009_notification_lease_token;
mod m20261129_000009_sla_clock_failures;
mod m20261129_000010_clock_stop_reason;
mod m20261129_000011_notification_retention;
mod m20261129_000012_rate_limit_counters;
mod m20261129_000013_open311;
mod m20261129_000014_webhooks_and_streams;
mod m20261129_000015_uploads;
mod m20261129_000016_list_indexes;
mod m20261129_000018_governance;
mod m20261129_000020_sensor_devices;
mod m20261129_000021_upload_public_tokens;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261129_000001_reference_data::Migration),
            Box::new(m20261129_000002_identity::Migration),
            Box::new(m20261129_000003_tickets::Migration),
            Box::new(m20261129_000004_sla::Migration),
            Box::new(m20261129_000005_security::Migration),
            Box::new(m20261129_000006_report_columns::Migration),
            Box::new(m20261129_000007_housekeeping_indexes::Migration),
            Box::new(m20261129_000008_login_failures::Migration),
            Box::new(m20261129_000008_session_start::Migration),
            Box::new(m20261129_000009_notification_lease_token::Migration),
            Box::new(m20261129_000009_sla_clock_failures::Migration),
            Box::new(m20261129_000010_clock_stop_reason::Migration),
            Box::new(m20261129_000011_notification_retention::Migration),
            Box::new(m20261129_000012_rate_limit_counters::Migration),
            Box::new(m20261129_000013_open311::Migration),
            Box::new(m20261129_000014_webhooks_and_streams::Migration),
            Box::new(m20261129_000015_uploads::Migration),
            Box::new(m20261129_000016_list_indexes::Migration),
            Box::new(m20261129_000018_governance::Migration),
            Box::new(m20261129_000020_sensor_devices::Migration),
            Box::new(m20261129_000021_upload_public_tokens::Migration),
        ]
    }
}
