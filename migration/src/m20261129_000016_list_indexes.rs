//! Indexes for the hot list filters, each ending in `id` so a filtered page newest first is
//! read from the index in order and stops after one page, and a partial index for the
//! running clocks `?overdue=true` looks for. Each replaces the single-column index that is its
//! prefix (one index less to keep up on every filing). Checked with EXPLAIN on PostgreSQL at
//! a million tickets (README, Benchmarks).

use sea_orm_migration::prelude::*;

use crate::m20261129_000001_reference_data::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Tickets {
    Table,
    Id,
    Status,
    CategoryId,
    UnitId,
}

#[derive(DeriveIden, Clone, Copy)]
enum Dispatches {
    Table,
    Id,
    DepartmentId,
    Status,
}

/// (new index, the single-column or shorter index it replaces)
const REPLACED: [(&str, &str); 4] = [
    ("idx_tickets_status_id", "idx_tickets_status"),
    ("idx_tickets_category_id", "idx_tickets_category"),
    ("idx_tickets_unit_id", "idx_tickets_unit"),
    ("idx_dispatches_department_status_id", "idx_dispatches_department_status"),
];

/// Running clocks by deadline: SQLite and PostgreSQL both take a partial index.
const RUNNING_CLOCKS: &str =
    "CREATE INDEX IF NOT EXISTS idx_sla_clocks_running_due ON sla_clocks (due_at, ticket_id) WHERE stopped_at IS NULL";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        index(manager, "idx_tickets_status_id", Tickets::Table, &[Tickets::Status, Tickets::Id]).await?;
        index(manager, "idx_tickets_category_id", Tickets::Table, &[Tickets::CategoryId, Tickets::Id]).await?;
        index(manager, "idx_tickets_unit_id", Tickets::Table, &[Tickets::UnitId, Tickets::Id]).await?;
        index(
            manager,
            "idx_dispatches_department_status_id",
            Dispatches::Table,
            &[Dispatches::DepartmentId, Dispatches::Status, Dispatches::Id],
        )
        .await?;
        manager.get_connection().execute_unprepared(RUNNING_CLOCKS).await?;
        for (_, replaced) in REPLACED {
            manager.drop_index(Index::drop().name(replaced).if_exists().to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        index(manager, "idx_tickets_status", Tickets::Table, &[Tickets::Status]).await?;
        index(manager, "idx_tickets_category", Tickets::Table, &[Tickets::CategoryId]).await?;
        index(manager, "idx_tickets_unit", Tickets::Table, &[Tickets::UnitId]).await?;
        index(
            manager,
            "idx_dispatches_department_status",
            Dispatches::Table,
            &[Dispatches::DepartmentId, Dispatches::Status],
        )
        .await?;
        manager.get_connection().execute_unprepared("DROP INDEX IF EXISTS idx_sla_clocks_running_due").await?;
        for (added, _) in REPLACED {
            manager.drop_index(Index::drop().name(added).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
