//! The audit log, and per-account failed-login tracking for lock-out.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261129_000001_reference_data::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum AuditLog {
    Table,
    Id,
    At,
    ActorId,
    Action,
    TargetType,
    TargetId,
    Ip,
    Detail,
    /// The unit the audited thing belongs to, so supervisors see their subtree's records.
    UnitId,
}

#[derive(DeriveIden, Clone, Copy)]
enum Users {
    Table,
    FailedLogins,
    LockedUntil,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .col(pk_uuid(AuditLog::Id))
                    .col(timestamp_with_time_zone(AuditLog::At))
                    .col(uuid_null(AuditLog::ActorId))
                    .col(string_len(AuditLog::Action, 40))
                    .col(string_len(AuditLog::TargetType, 40))
                    .col(string_len_null(AuditLog::TargetId, 64))
                    .col(string_len_null(AuditLog::Ip, 64))
                    .col(json(AuditLog::Detail))
                    .col(uuid_null(AuditLog::UnitId))
                    .to_owned(),
            )
            .await?;
        index(manager, "idx_audit_log_action", AuditLog::Table, &[AuditLog::Action]).await?;
        index(manager, "idx_audit_log_actor", AuditLog::Table, &[AuditLog::ActorId]).await?;
        manager
            .alter_table(
                Table::alter().table(Users::Table).add_column(integer(Users::FailedLogins).default(0)).to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(timestamp_with_time_zone_null(Users::LockedUntil))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(Users::Table).drop_column(Users::LockedUntil).to_owned()).await?;
        manager.alter_table(Table::alter().table(Users::Table).drop_column(Users::FailedLogins).to_owned()).await?;
        manager.drop_table(Table::drop().table(AuditLog::Table).to_owned()).await
    }
}
