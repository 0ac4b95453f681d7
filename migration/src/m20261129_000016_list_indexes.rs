//! Indexes for the hot list filters, each ending in `id` so a filtered page newest first (or
//! a department's inbox oldest first) is read from the index in order and stops after one
//! page. Each replaces the shorter index that is its prefix (one index less to keep up on
//! every filing). Chosen with EXPLAIN on PostgreSQL at a million tickets (README, Benchmarks):
//! a status filter in a township went from 262 ms to 5 ms, the department inbox from 817 ms
//! to 16 ms; the other filters already used an index.

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
        for (added, _) in REPLACED {
            manager.drop_index(Index::drop().name(added).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
