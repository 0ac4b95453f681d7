//! A clock the sweeper could not process keeps its last error and how often it failed in a
//! row, so it is retried later with backoff instead of blocking the clocks behind it.

use sea_orm_migration::{
    prelude::*,
    schema::{integer, text_null},
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum SlaClocks {
    Table,
    LastError,
    Failures,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        manager
            .alter_table(Table::alter().table(SlaClocks::Table).add_column(text_null(SlaClocks::LastError)).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter().table(SlaClocks::Table).add_column(integer(SlaClocks::Failures).default(0)).to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(SlaClocks::Table).drop_column(SlaClocks::Failures).to_owned()).await?;
        manager.alter_table(Table::alter().table(SlaClocks::Table).drop_column(SlaClocks::LastError).to_owned()).await
    }
}
