//! Push channels (issue 13): webhook subscriptions, their delivery outbox and its attempts,
//! and the short-lived tokens browsers' EventSource uses to open the live event stream.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261129_000001_reference_data::{Departments, GridUnits, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum WebhookSubscriptions {
    Table,
    Id,
    Url,
    Description,
    /// JSON array of event kinds; empty means every kind.
    EventKinds,
    UnitId,
    DepartmentId,
    Secret,
    Active,
    /// The first failed attempt since the last success; null while deliveries go through.
    FailingSince,
    DisabledAt,
    DisabledReason,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum WebhookDeliveries {
    Table,
    Id,
    SubscriptionId,
    EventId,
    TicketId,
    EventType,
    EventAt,
    Payload,
    /// pending, delivered or failed
    Status,
    Attempts,
    NextAttemptAt,
    LeaseUntil,
    LeaseToken,
    LastStatusCode,
    LastError,
    LastLatencyMs,
    CreatedAt,
    /// Where the retry window starts: the event, or the last manual redelivery.
    QueuedAt,
    DeliveredAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum WebhookAttempts {
    Table,
    Id,
    DeliveryId,
    AttemptedAt,
    StatusCode,
    LatencyMs,
    Error,
}

#[derive(DeriveIden, Clone, Copy)]
enum EventStreamTokens {
    Table,
    TokenHash,
    UserId,
    /// The bearer token's hash it was issued for: logging out ends the stream token too.
    SessionTokenHash,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use WebhookSubscriptions as S;
        manager
            .create_table(
                Table::create()
                    .table(S::Table)
                    .col(uuid(S::Id).primary_key())
                    .col(string_len(S::Url, 2048))
                    .col(string_len(S::Description, 500))
                    .col(json(S::EventKinds))
                    .col(uuid_null(S::UnitId))
                    .col(uuid_null(S::DepartmentId))
                    .col(string_len(S::Secret, 128))
                    .col(boolean(S::Active))
                    .col(timestamp_with_time_zone_null(S::FailingSince))
                    .col(timestamp_with_time_zone_null(S::DisabledAt))
                    .col(string_len_null(S::DisabledReason, 500))
                    .col(uuid_null(S::CreatedBy))
                    .col(timestamp_with_time_zone(S::CreatedAt))
                    .col(timestamp_with_time_zone(S::UpdatedAt))
                    .foreign_key(ForeignKey::create().from(S::Table, S::UnitId).to(GridUnits::Table, GridUnits::Id))
                    .foreign_key(
                        ForeignKey::create().from(S::Table, S::DepartmentId).to(Departments::Table, Departments::Id),
                    )
                    .to_owned(),
            )
            .await?;
        use WebhookDeliveries as D;
        manager
            .create_table(
                Table::create()
                    .table(D::Table)
                    .col(uuid(D::Id).primary_key())
                    .col(uuid(D::SubscriptionId))
                    .col(uuid(D::EventId))
                    .col(uuid(D::TicketId))
                    .col(string_len(D::EventType, 64))
                    .col(timestamp_with_time_zone(D::EventAt))
                    .col(json(D::Payload))
                    .col(string_len(D::Status, 16))
                    .col(integer(D::Attempts))
                    .col(timestamp_with_time_zone(D::NextAttemptAt))
                    .col(timestamp_with_time_zone_null(D::LeaseUntil))
                    .col(uuid_null(D::LeaseToken))
                    .col(integer_null(D::LastStatusCode))
                    .col(text_null(D::LastError))
                    .col(big_integer_null(D::LastLatencyMs))
                    .col(timestamp_with_time_zone(D::CreatedAt))
                    .col(timestamp_with_time_zone(D::QueuedAt))
                    .col(timestamp_with_time_zone_null(D::DeliveredAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(D::Table, D::SubscriptionId)
                            .to(S::Table, S::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // The worker's claim: the head of each subscription's queue, and due rows.
        index(manager, "idx_webhook_deliveries_queue", D::Table, &[D::SubscriptionId, D::Status, D::EventAt]).await?;
        index(manager, "idx_webhook_deliveries_due", D::Table, &[D::Status, D::NextAttemptAt]).await?;
        use WebhookAttempts as A;
        manager
            .create_table(
                Table::create()
                    .table(A::Table)
                    .col(uuid(A::Id).primary_key())
                    .col(uuid(A::DeliveryId))
                    .col(timestamp_with_time_zone(A::AttemptedAt))
                    .col(integer_null(A::StatusCode))
                    .col(big_integer(A::LatencyMs))
                    .col(text_null(A::Error))
                    .foreign_key(
                        ForeignKey::create()
                            .from(A::Table, A::DeliveryId)
                            .to(D::Table, D::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        index(manager, "idx_webhook_attempts_delivery", A::Table, &[A::DeliveryId]).await?;
        use EventStreamTokens as T;
        manager
            .create_table(
                Table::create()
                    .table(T::Table)
                    .col(string_len(T::TokenHash, 64).primary_key())
                    .col(uuid(T::UserId))
                    .col(string_len(T::SessionTokenHash, 64))
                    .col(timestamp_with_time_zone(T::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        index(manager, "idx_event_stream_tokens_expiry", T::Table, &[T::ExpiresAt]).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            EventStreamTokens::Table.into_iden(),
            WebhookAttempts::Table.into_iden(),
            WebhookDeliveries::Table.into_iden(),
            WebhookSubscriptions::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
