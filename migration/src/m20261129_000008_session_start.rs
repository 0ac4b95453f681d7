//! Each token carries the time its session began (the login), so refreshing cannot stretch a
//! session past `auth.session_max_age`. Existing tokens count from their own creation.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum ApiTokens {
    Table,
    CreatedAt,
    SessionStartedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Nullable: SQLite cannot add a NOT NULL column without a constant default. Every
        // row written from now on sets it, and the update below fills the old ones.
        manager
            .alter_table(
                Table::alter()
                    .table(ApiTokens::Table)
                    .add_column(timestamp_with_time_zone_null(ApiTokens::SessionStartedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::update()
                    .table(ApiTokens::Table)
                    .value(ApiTokens::SessionStartedAt, Expr::col(ApiTokens::CreatedAt))
                    .and_where(Expr::col(ApiTokens::SessionStartedAt).is_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(ApiTokens::Table).drop_column(ApiTokens::SessionStartedAt).to_owned())
            .await
    }
}
