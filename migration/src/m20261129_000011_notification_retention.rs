//! Mail is never dropped: instead of `failed` after a fixed number of attempts, a mail is
//! retried for `smtp.retention` from the start of its delivery window, then marked `dead`
//! until an admin re-queues it. `queued_at` is the start of the window when an admin
//! re-queued the mail (NULL: the window starts at `created_at`). Mails left `failed` by the
//! old scheme go back to `pending` with their attempts reset, so they are tried again.

use sea_orm_migration::{prelude::*, schema::timestamp_with_time_zone_null};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Notifications {
    Table,
    QueuedAt,
    Status,
    Attempts,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Notifications::Table)
                    .add_column(timestamp_with_time_zone_null(Notifications::QueuedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::update()
                    .table(Notifications::Table)
                    .value(Notifications::Status, "pending")
                    .value(Notifications::Attempts, 0)
                    .and_where(Expr::col(Notifications::Status).eq("failed"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // `dead` mails read as the old scheme's `failed`.
        manager
            .exec_stmt(
                Query::update()
                    .table(Notifications::Table)
                    .value(Notifications::Status, "failed")
                    .and_where(Expr::col(Notifications::Status).eq("dead"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(Table::alter().table(Notifications::Table).drop_column(Notifications::QueuedAt).to_owned())
            .await
    }
}
