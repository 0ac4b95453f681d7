//! Photo evidence: uploaded files (re-encoded images, PDFs) kept in the object store by their
//! sha256, attached at most once to a ticket (at filing) or to a dispatch (before/after/other);
//! and categories that require an `after` photo to resolve.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261129_000001_reference_data::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Uploads {
    Table,
    Id,
    /// The stored bytes' sha256 (hex): their name in the object store, and the ETag.
    Sha256,
    ContentType,
    Size,
    Width,
    Height,
    ThumbnailSha256,
    ThumbnailSize,
    UploadedBy,
    CreatedAt,
    /// Null until attached; an upload still unattached after `uploads.unattached_ttl` is deleted.
    TicketId,
    DispatchId,
    /// filing, before, after or other.
    Kind,
    AttachedBy,
    AttachedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Tickets {
    Table,
    Id,
}

#[derive(DeriveIden, Clone, Copy)]
enum Dispatches {
    Table,
    Id,
}

#[derive(DeriveIden, Clone, Copy)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden, Clone, Copy)]
enum Categories {
    Table,
    ResolveRequiresPhoto,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Uploads::Table)
                    .col(pk_uuid(Uploads::Id))
                    .col(string_len(Uploads::Sha256, 64))
                    .col(string_len(Uploads::ContentType, 64))
                    .col(big_integer(Uploads::Size))
                    .col(integer_null(Uploads::Width))
                    .col(integer_null(Uploads::Height))
                    .col(string_len_null(Uploads::ThumbnailSha256, 64))
                    .col(big_integer_null(Uploads::ThumbnailSize))
                    .col(uuid(Uploads::UploadedBy))
                    .col(timestamp_with_time_zone(Uploads::CreatedAt))
                    .col(uuid_null(Uploads::TicketId))
                    .col(uuid_null(Uploads::DispatchId))
                    .col(string_len_null(Uploads::Kind, 16))
                    .col(uuid_null(Uploads::AttachedBy))
                    .col(timestamp_with_time_zone_null(Uploads::AttachedAt))
                    .foreign_key(
                        ForeignKey::create().from(Uploads::Table, Uploads::UploadedBy).to(Users::Table, Users::Id),
                    )
                    .foreign_key(
                        ForeignKey::create().from(Uploads::Table, Uploads::TicketId).to(Tickets::Table, Tickets::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Uploads::Table, Uploads::DispatchId)
                            .to(Dispatches::Table, Dispatches::Id),
                    )
                    .to_owned(),
            )
            .await?;
        index(manager, "idx_uploads_ticket", Uploads::Table, &[Uploads::TicketId]).await?;
        index(manager, "idx_uploads_sha256", Uploads::Table, &[Uploads::Sha256]).await?;
        index(manager, "idx_uploads_thumbnail_sha256", Uploads::Table, &[Uploads::ThumbnailSha256]).await?;
        index(manager, "idx_uploads_unattached", Uploads::Table, &[Uploads::TicketId, Uploads::CreatedAt]).await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Categories::Table)
                    .add_column(boolean(Categories::ResolveRequiresPhoto).default(false))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table(Categories::Table).drop_column(Categories::ResolveRequiresPhoto).to_owned(),
            )
            .await?;
        manager.drop_table(Table::drop().table(Uploads::Table).to_owned()).await
    }
}
