//! Columns the SLA reports group and measure by, kept on the rows so reports are plain
//! GROUP BYs over indexed columns: each ticket's township and county, its resolve deadline and
//! working time to resolve; each dispatch's acknowledge deadline and working time to report in.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261129_000001_reference_data::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Tickets {
    Table,
    TownshipId,
    CountyId,
    ResolveDueAt,
    ResolveWorkingSeconds,
}

#[derive(DeriveIden, Clone, Copy)]
enum Dispatches {
    Table,
    CreatedAt,
    AckDueAt,
    AckWorkingSeconds,
}

#[derive(DeriveIden, Clone, Copy)]
enum Ratings {
    Table,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum SlaClocks {
    Table,
    BreachedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum SupervisionOrders {
    Table,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            uuid_null(Tickets::TownshipId),
            uuid_null(Tickets::CountyId),
            timestamp_with_time_zone_null(Tickets::ResolveDueAt),
            big_integer_null(Tickets::ResolveWorkingSeconds),
        ] {
            let mut column = column;
            manager.alter_table(Table::alter().table(Tickets::Table).add_column(&mut column).to_owned()).await?;
        }
        for column in
            [timestamp_with_time_zone_null(Dispatches::AckDueAt), big_integer_null(Dispatches::AckWorkingSeconds)]
        {
            let mut column = column;
            manager.alter_table(Table::alter().table(Dispatches::Table).add_column(&mut column).to_owned()).await?;
        }
        // Backfill from the unit tree and the clocks (portable SQL: correlated subqueries).
        let db = manager.get_connection();
        for (column, level) in [("township_id", "township"), ("county_id", "county")] {
            db.execute_unprepared(&format!(
                "UPDATE tickets SET {column} = (SELECT a.id FROM grid_units g, grid_units a \
                 WHERE g.id = tickets.unit_id AND a.level = '{level}' AND g.path LIKE a.path || '%')"
            ))
            .await?;
        }
        db.execute_unprepared(
            "UPDATE tickets SET resolve_due_at = (SELECT MIN(c.due_at) FROM sla_clocks c \
             WHERE c.ticket_id = tickets.id AND c.clock = 'resolve')",
        )
        .await?;
        db.execute_unprepared(
            "UPDATE dispatches SET ack_due_at = (SELECT MIN(c.due_at) FROM sla_clocks c \
             WHERE c.dispatch_id = dispatches.id AND c.clock = 'acknowledge')",
        )
        .await?;
        index(manager, "idx_tickets_township", Tickets::Table, &[Tickets::TownshipId]).await?;
        index(manager, "idx_tickets_county", Tickets::Table, &[Tickets::CountyId]).await?;
        index(manager, "idx_tickets_resolve_due", Tickets::Table, &[Tickets::ResolveDueAt]).await?;
        index(manager, "idx_dispatches_created_at", Dispatches::Table, &[Dispatches::CreatedAt]).await?;
        index(manager, "idx_ratings_created_at", Ratings::Table, &[Ratings::CreatedAt]).await?;
        index(manager, "idx_sla_clocks_breached_at", SlaClocks::Table, &[SlaClocks::BreachedAt]).await?;
        index(manager, "idx_supervision_orders_created_at", SupervisionOrders::Table, &[SupervisionOrders::CreatedAt])
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in [
            "idx_supervision_orders_created_at",
            "idx_sla_clocks_breached_at",
            "idx_ratings_created_at",
            "idx_dispatches_created_at",
            "idx_tickets_resolve_due",
            "idx_tickets_county",
            "idx_tickets_township",
        ] {
            manager.drop_index(Index::drop().name(name).to_owned()).await?;
        }
        for column in [Dispatches::AckWorkingSeconds, Dispatches::AckDueAt] {
            manager.alter_table(Table::alter().table(Dispatches::Table).drop_column(column).to_owned()).await?;
        }
        for column in [Tickets::ResolveWorkingSeconds, Tickets::ResolveDueAt, Tickets::CountyId, Tickets::TownshipId] {
            manager.alter_table(Table::alter().table(Tickets::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}
