//! Rate-limit counters shared by every replica on PostgreSQL: one row per limit, key (client
//! address, user) and minute, bumped with one UPSERT.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261129_000001_reference_data::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum RateLimitCounters {
    Table,
    /// `login` or `filing`.
    Scope,
    Key,
    WindowStart,
    Hits,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RateLimitCounters::Table)
                    .col(string_len(RateLimitCounters::Scope, 16))
                    .col(string_len(RateLimitCounters::Key, 64))
                    .col(timestamp_with_time_zone(RateLimitCounters::WindowStart))
                    .col(integer(RateLimitCounters::Hits))
                    .primary_key(
                        Index::create()
                            .col(RateLimitCounters::Scope)
                            .col(RateLimitCounters::Key)
                            .col(RateLimitCounters::WindowStart),
                    )
                    .to_owned(),
            )
            .await?;
        index(manager, "idx_rate_limit_counters_window", RateLimitCounters::Table, &[RateLimitCounters::WindowStart])
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(RateLimitCounters::Table).to_owned()).await
    }
}
