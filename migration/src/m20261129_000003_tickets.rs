//! Tickets (诉求工单), their dispatches (派单), the append-only timeline, ratings (好差评),
//! the per-year ticket number counter and the idempotency keys of filing.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261129_000001_reference_data::{Departments, GridUnits, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
pub enum Tickets {
    Table,
    Id,
    Number,
    CategoryId,
    Priority,
    Title,
    Description,
    UnitId,
    Lat,
    Lon,
    Address,
    ResidentName,
    ResidentPhone,
    Channel,
    Attachments,
    FiledBy,
    Status,
    Version,
    ReturnCount,
    NeedsArbitration,
    CreatedAt,
    UpdatedAt,
    /// When the first dispatch went out: the resolve clock never restarts after that.
    FirstDispatchedAt,
    FirstContactAt,
    ResolvedAt,
    /// Resolved tickets with no rating close themselves at this instant.
    RatingDueAt,
    ClosedAt,
}

#[derive(DeriveIden, Clone, Copy)]
pub enum Dispatches {
    Table,
    Id,
    TicketId,
    DepartmentId,
    Role,
    Status,
    DispatchedBy,
    CreatedAt,
    AcknowledgedAt,
    ReturnedAt,
    ReturnReason,
    /// A refused return: the department is the responsible unit (首办负责) and may not return again.
    ReturnRefused,
    ResolvedAt,
    Reply,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum TicketEvents {
    Table,
    Id,
    TicketId,
    DispatchId,
    Kind,
    ActorId,
    At,
    Payload,
}

#[derive(DeriveIden, Clone, Copy)]
enum Ratings {
    Table,
    Id,
    TicketId,
    Score,
    Comment,
    RatedBy,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum TicketCounters {
    Table,
    Year,
    Last,
}

#[derive(DeriveIden, Clone, Copy)]
enum IdempotencyKeys {
    Table,
    Id,
    UserId,
    Key,
    RequestHash,
    TicketId,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Categories {
    Table,
    Id,
}

#[derive(DeriveIden, Clone, Copy)]
enum Users {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Tickets::Table)
                    .col(pk_uuid(Tickets::Id))
                    .col(string_len_uniq(Tickets::Number, 32))
                    .col(uuid(Tickets::CategoryId))
                    .col(string_len(Tickets::Priority, 16))
                    .col(string_len(Tickets::Title, 200))
                    .col(text(Tickets::Description))
                    .col(uuid(Tickets::UnitId))
                    .col(double_null(Tickets::Lat))
                    .col(double_null(Tickets::Lon))
                    .col(string_len_null(Tickets::Address, 400))
                    .col(string_len_null(Tickets::ResidentName, 100))
                    .col(string_len_null(Tickets::ResidentPhone, 40))
                    .col(string_len(Tickets::Channel, 16))
                    .col(json(Tickets::Attachments))
                    .col(uuid(Tickets::FiledBy))
                    .col(string_len(Tickets::Status, 16))
                    .col(integer(Tickets::Version))
                    .col(integer(Tickets::ReturnCount))
                    .col(boolean(Tickets::NeedsArbitration))
                    .col(timestamp_with_time_zone(Tickets::CreatedAt))
                    .col(timestamp_with_time_zone(Tickets::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Tickets::FirstDispatchedAt))
                    .col(timestamp_with_time_zone_null(Tickets::FirstContactAt))
                    .col(timestamp_with_time_zone_null(Tickets::ResolvedAt))
                    .col(timestamp_with_time_zone_null(Tickets::RatingDueAt))
                    .col(timestamp_with_time_zone_null(Tickets::ClosedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Tickets::Table, Tickets::CategoryId)
                            .to(Categories::Table, Categories::Id),
                    )
                    .foreign_key(
                        ForeignKey::create().from(Tickets::Table, Tickets::UnitId).to(GridUnits::Table, GridUnits::Id),
                    )
                    .foreign_key(
                        ForeignKey::create().from(Tickets::Table, Tickets::FiledBy).to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        index(manager, "idx_tickets_status", Tickets::Table, &[Tickets::Status]).await?;
        index(manager, "idx_tickets_unit", Tickets::Table, &[Tickets::UnitId]).await?;
        index(manager, "idx_tickets_category", Tickets::Table, &[Tickets::CategoryId]).await?;
        index(manager, "idx_tickets_filed_by", Tickets::Table, &[Tickets::FiledBy]).await?;
        index(manager, "idx_tickets_created_at", Tickets::Table, &[Tickets::CreatedAt]).await?;
        index(manager, "idx_tickets_status_rating_due", Tickets::Table, &[Tickets::Status, Tickets::RatingDueAt])
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Dispatches::Table)
                    .col(pk_uuid(Dispatches::Id))
                    .col(uuid(Dispatches::TicketId))
                    .col(uuid(Dispatches::DepartmentId))
                    .col(string_len(Dispatches::Role, 16))
                    .col(string_len(Dispatches::Status, 16))
                    .col(uuid_null(Dispatches::DispatchedBy))
                    .col(timestamp_with_time_zone(Dispatches::CreatedAt))
                    .col(timestamp_with_time_zone_null(Dispatches::AcknowledgedAt))
                    .col(timestamp_with_time_zone_null(Dispatches::ReturnedAt))
                    .col(text_null(Dispatches::ReturnReason))
                    .col(boolean(Dispatches::ReturnRefused))
                    .col(timestamp_with_time_zone_null(Dispatches::ResolvedAt))
                    .col(text_null(Dispatches::Reply))
                    .col(timestamp_with_time_zone(Dispatches::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Dispatches::Table, Dispatches::TicketId)
                            .to(Tickets::Table, Tickets::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Dispatches::Table, Dispatches::DepartmentId)
                            .to(Departments::Table, Departments::Id),
                    )
                    .to_owned(),
            )
            .await?;
        index(manager, "idx_dispatches_ticket", Dispatches::Table, &[Dispatches::TicketId]).await?;
        index(
            manager,
            "idx_dispatches_department_status",
            Dispatches::Table,
            &[Dispatches::DepartmentId, Dispatches::Status],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(TicketEvents::Table)
                    .col(pk_uuid(TicketEvents::Id))
                    .col(uuid(TicketEvents::TicketId))
                    .col(uuid_null(TicketEvents::DispatchId))
                    .col(string_len(TicketEvents::Kind, 32))
                    .col(uuid_null(TicketEvents::ActorId))
                    .col(timestamp_with_time_zone(TicketEvents::At))
                    .col(json(TicketEvents::Payload))
                    .foreign_key(
                        ForeignKey::create()
                            .from(TicketEvents::Table, TicketEvents::TicketId)
                            .to(Tickets::Table, Tickets::Id),
                    )
                    .to_owned(),
            )
            .await?;
        index(manager, "idx_ticket_events_ticket", TicketEvents::Table, &[TicketEvents::TicketId, TicketEvents::Id])
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Ratings::Table)
                    .col(pk_uuid(Ratings::Id))
                    .col(uuid(Ratings::TicketId))
                    .col(small_integer(Ratings::Score))
                    .col(text_null(Ratings::Comment))
                    .col(uuid(Ratings::RatedBy))
                    .col(timestamp_with_time_zone(Ratings::CreatedAt))
                    .foreign_key(
                        ForeignKey::create().from(Ratings::Table, Ratings::TicketId).to(Tickets::Table, Tickets::Id),
                    )
                    .to_owned(),
            )
            .await?;
        index(manager, "idx_ratings_ticket", Ratings::Table, &[Ratings::TicketId]).await?;

        manager
            .create_table(
                Table::create()
                    .table(TicketCounters::Table)
                    .col(integer(TicketCounters::Year).primary_key())
                    .col(big_integer(TicketCounters::Last))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(IdempotencyKeys::Table)
                    .col(pk_uuid(IdempotencyKeys::Id))
                    .col(uuid(IdempotencyKeys::UserId))
                    .col(string_len(IdempotencyKeys::Key, 128))
                    .col(string_len(IdempotencyKeys::RequestHash, 64))
                    .col(uuid(IdempotencyKeys::TicketId))
                    .col(timestamp_with_time_zone(IdempotencyKeys::CreatedAt))
                    .index(
                        Index::create()
                            .name("uq_idempotency_user_key")
                            .col(IdempotencyKeys::UserId)
                            .col(IdempotencyKeys::Key)
                            .unique(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            IdempotencyKeys::Table.into_iden(),
            TicketCounters::Table.into_iden(),
            Ratings::Table.into_iden(),
            TicketEvents::Table.into_iden(),
            Dispatches::Table.into_iden(),
            Tickets::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
