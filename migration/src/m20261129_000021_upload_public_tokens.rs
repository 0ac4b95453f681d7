//! Open311 `media_url` for uploaded photos: an unguessable token per upload, set the first time
//! its thumbnail is published, that names it at `/open311/v2/media/{token}.jpg`.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Uploads {
    Table,
    /// 32 random bytes, URL-safe base64 (43 characters); null until published.
    PublicToken,
}

const INDEX: &str = "idx_uploads_public_token";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite cannot add a UNIQUE column; a unique index does the same on both databases
        // (and both let any number of rows be null).
        manager
            .alter_table(
                Table::alter().table(Uploads::Table).add_column(string_len_null(Uploads::PublicToken, 64)).to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name(INDEX).table(Uploads::Table).col(Uploads::PublicToken).unique().to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name(INDEX).table(Uploads::Table).to_owned()).await?;
        manager.alter_table(Table::alter().table(Uploads::Table).drop_column(Uploads::PublicToken).to_owned()).await
    }
}
