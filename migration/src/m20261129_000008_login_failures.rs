//! Failed logins counted per user name — known or not — so a lock-out does not tell which
//! accounts exist. Replaces `users.failed_logins` / `users.locked_until` (left unused).

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261129_000001_reference_data::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum LoginFailures {
    Table,
    /// The name as typed, trimmed and lower-cased, at most 64 characters.
    Username,
    Failures,
    LockedUntil,
    LastFailedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(LoginFailures::Table)
                    .col(string_len(LoginFailures::Username, 64).primary_key())
                    .col(integer(LoginFailures::Failures))
                    .col(timestamp_with_time_zone_null(LoginFailures::LockedUntil))
                    .col(timestamp_with_time_zone(LoginFailures::LastFailedAt))
                    .to_owned(),
            )
            .await?;
        index(manager, "idx_login_failures_last_failed_at", LoginFailures::Table, &[LoginFailures::LastFailedAt]).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(LoginFailures::Table).to_owned()).await
    }
}
