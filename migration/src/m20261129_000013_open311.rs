//! Open311 GeoReport v2: API keys for the city's client systems (only a hash of each key is
//! kept; each key files through a service account of its own), the photos' addresses that
//! arrive as `media_url` (attachments that point outside), and the tokens of batch mode.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261129_000001_reference_data::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum ApiKeys {
    Table,
    Id,
    Name,
    /// Hex SHA-256 of the key; the key itself is shown once and never stored.
    KeyHash,
    /// The service account that files the key's requests (`tickets.filed_by`).
    UserId,
    CreatedBy,
    CreatedAt,
    RevokedAt,
    LastUsedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum TicketMediaUrls {
    Table,
    Id,
    TicketId,
    Url,
    /// Where the address came from: `open311`.
    Source,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Open311Tokens {
    Table,
    Token,
    TicketId,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden, Clone, Copy)]
enum Tickets {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .col(pk_uuid(ApiKeys::Id))
                    .col(string_len(ApiKeys::Name, 100))
                    .col(string_len_uniq(ApiKeys::KeyHash, 64))
                    .col(uuid(ApiKeys::UserId))
                    .col(uuid_null(ApiKeys::CreatedBy))
                    .col(timestamp_with_time_zone(ApiKeys::CreatedAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::RevokedAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::LastUsedAt))
                    .foreign_key(ForeignKey::create().from(ApiKeys::Table, ApiKeys::UserId).to(Users::Table, Users::Id))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(TicketMediaUrls::Table)
                    .col(pk_uuid(TicketMediaUrls::Id))
                    .col(uuid(TicketMediaUrls::TicketId))
                    .col(text(TicketMediaUrls::Url))
                    .col(string_len(TicketMediaUrls::Source, 16))
                    .col(timestamp_with_time_zone(TicketMediaUrls::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(TicketMediaUrls::Table, TicketMediaUrls::TicketId)
                            .to(Tickets::Table, Tickets::Id),
                    )
                    .to_owned(),
            )
            .await?;
        index(manager, "idx_ticket_media_urls_ticket", TicketMediaUrls::Table, &[TicketMediaUrls::TicketId]).await?;
        manager
            .create_table(
                Table::create()
                    .table(Open311Tokens::Table)
                    .col(string_len(Open311Tokens::Token, 64).primary_key())
                    .col(uuid(Open311Tokens::TicketId))
                    .col(timestamp_with_time_zone(Open311Tokens::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Open311Tokens::Table, Open311Tokens::TicketId)
                            .to(Tickets::Table, Tickets::Id),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Open311Tokens::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(TicketMediaUrls::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(ApiKeys::Table).to_owned()).await
    }
}
