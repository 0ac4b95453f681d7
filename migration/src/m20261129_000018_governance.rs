//! Issue 17 (survey coverage, recurring problems, duplicate reports): the record of each merge
//! (并单), who follows a ticket they did not file (the filer of a merged duplicate follows its
//! survivor), the month's topics (每月一题), and the indexes the duplicate search and the
//! hotspot report read: category and filing time, and a latitude/longitude box.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261129_000001_reference_data::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Tickets {
    Table,
    Id,
    CategoryId,
    CreatedAt,
    Lat,
    Lon,
}

#[derive(DeriveIden, Clone, Copy)]
enum TicketMerges {
    Table,
    /// The duplicate: merged once, so it is the key.
    DuplicateId,
    SurvivorId,
    Reason,
    /// The two tickets' categories differed and the dispatcher said so.
    AcrossCategories,
    MergedBy,
    MergedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum TicketFollowers {
    Table,
    TicketId,
    UserId,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Topics {
    Table,
    Id,
    Title,
    CategoryId,
    UnitId,
    /// The month, `YYYY-MM`.
    Period,
    CreatedBy,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Categories {
    Table,
    Id,
}

#[derive(DeriveIden, Clone, Copy)]
enum GridUnits {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TicketMerges::Table)
                    .col(pk_uuid(TicketMerges::DuplicateId))
                    .col(uuid(TicketMerges::SurvivorId))
                    .col(text(TicketMerges::Reason))
                    .col(boolean(TicketMerges::AcrossCategories))
                    .col(uuid(TicketMerges::MergedBy))
                    .col(timestamp_with_time_zone(TicketMerges::MergedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(TicketMerges::Table, TicketMerges::DuplicateId)
                            .to(Tickets::Table, Tickets::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(TicketMerges::Table, TicketMerges::SurvivorId)
                            .to(Tickets::Table, Tickets::Id),
                    )
                    .to_owned(),
            )
            .await?;
        index(manager, "idx_ticket_merges_survivor", TicketMerges::Table, &[TicketMerges::SurvivorId]).await?;
        index(manager, "idx_ticket_merges_merged_at", TicketMerges::Table, &[TicketMerges::MergedAt]).await?;

        manager
            .create_table(
                Table::create()
                    .table(TicketFollowers::Table)
                    .col(uuid(TicketFollowers::TicketId))
                    .col(uuid(TicketFollowers::UserId))
                    .col(timestamp_with_time_zone(TicketFollowers::CreatedAt))
                    .primary_key(Index::create().col(TicketFollowers::TicketId).col(TicketFollowers::UserId))
                    .foreign_key(
                        ForeignKey::create()
                            .from(TicketFollowers::Table, TicketFollowers::TicketId)
                            .to(Tickets::Table, Tickets::Id),
                    )
                    .to_owned(),
            )
            .await?;
        index(manager, "idx_ticket_followers_user", TicketFollowers::Table, &[TicketFollowers::UserId]).await?;

        manager
            .create_table(
                Table::create()
                    .table(Topics::Table)
                    .col(pk_uuid(Topics::Id))
                    .col(string_len(Topics::Title, 200))
                    .col(uuid(Topics::CategoryId))
                    .col(uuid(Topics::UnitId))
                    .col(string_len(Topics::Period, 7))
                    .col(uuid(Topics::CreatedBy))
                    .col(timestamp_with_time_zone(Topics::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Topics::Table, Topics::CategoryId)
                            .to(Categories::Table, Categories::Id),
                    )
                    .foreign_key(
                        ForeignKey::create().from(Topics::Table, Topics::UnitId).to(GridUnits::Table, GridUnits::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_topics_unit_category_period")
                    .table(Topics::Table)
                    .col(Topics::UnitId)
                    .col(Topics::CategoryId)
                    .col(Topics::Period)
                    .unique()
                    .to_owned(),
            )
            .await?;
        index(manager, "idx_topics_period", Topics::Table, &[Topics::Period]).await?;

        index(manager, "idx_tickets_category_created", Tickets::Table, &[Tickets::CategoryId, Tickets::CreatedAt])
            .await?;
        index(manager, "idx_tickets_lat_lon", Tickets::Table, &[Tickets::Lat, Tickets::Lon]).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in ["idx_tickets_lat_lon", "idx_tickets_category_created"] {
            manager.drop_index(Index::drop().name(name).table(Tickets::Table).to_owned()).await?;
        }
        manager.drop_table(Table::drop().table(Topics::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(TicketFollowers::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(TicketMerges::Table).to_owned()).await
    }
}
