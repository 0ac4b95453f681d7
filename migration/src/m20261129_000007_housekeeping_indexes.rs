//! Indexes for the hourly clean-up of expired tokens and old idempotency keys.

use sea_orm_migration::prelude::*;

use crate::m20261129_000001_reference_data::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum ApiTokens {
    Table,
    ExpiresAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum IdempotencyKeys {
    Table,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        index(manager, "idx_api_tokens_expires_at", ApiTokens::Table, &[ApiTokens::ExpiresAt]).await?;
        index(manager, "idx_idempotency_keys_created_at", IdempotencyKeys::Table, &[IdempotencyKeys::CreatedAt]).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name("idx_idempotency_keys_created_at").to_owned()).await?;
        manager.drop_index(Index::drop().name("idx_api_tokens_expires_at").to_owned()).await
    }
}
