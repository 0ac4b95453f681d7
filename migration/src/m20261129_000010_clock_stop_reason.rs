//! Why a clock stopped: its goal was met (on time or late), or the ticket ended without it
//! (closed, cancelled, returned) — which must never read as "met".

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum SlaClocks {
    Table,
    StopReason,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(SlaClocks::Table)
                    .add_column(ColumnDef::new(SlaClocks::StopReason).string_len(16).null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(SlaClocks::Table).drop_column(SlaClocks::StopReason).to_owned()).await
    }
}
