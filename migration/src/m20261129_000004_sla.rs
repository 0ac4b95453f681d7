//! SLA clocks, policies, escalation rules and records, supervision orders (督办), extension
//! requests (延期), and the notification outbox. Also e-mail addresses for department heads
//! and users, so escalations can reach people.

use sea_orm_migration::{prelude::*, schema::*};

use crate::{
    m20261129_000001_reference_data::{Departments, index},
    m20261129_000003_tickets::{Dispatches, Tickets},
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Users {
    Table,
    Email,
}

#[derive(DeriveIden, Clone, Copy)]
enum DepartmentsExtra {
    HeadEmail,
}

#[derive(DeriveIden, Clone, Copy)]
enum SlaPolicies {
    Table,
    CategoryId,
    Priority,
    Acknowledge,
    FirstContact,
    Resolve,
    Rectify,
    RatingWindow,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum SlaClocks {
    Table,
    Id,
    TicketId,
    DispatchId,
    Clock,
    Duration,
    StartedAt,
    WarnAt,
    DueAt,
    /// Breach + N working days: the next rung of the escalation ladder (挂牌督办).
    FollowupAt,
    /// The next instant the sweeper must look at this clock; NULL when nothing is left to fire.
    NextCheckAt,
    WarnedAt,
    BreachedAt,
    FollowedUpAt,
    StoppedAt,
    /// The deadline crossed a year with no loaded holiday schedule (weekdays only).
    Estimated,
}

#[derive(DeriveIden, Clone, Copy)]
enum EscalationRules {
    Table,
    Id,
    Trigger,
    Notify,
    SupervisionLevel,
    Active,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Escalations {
    Table,
    Id,
    TicketId,
    ClockId,
    Trigger,
    RuleId,
    Notified,
    SupervisionOrderId,
    At,
}

#[derive(DeriveIden, Clone, Copy)]
enum SupervisionOrders {
    Table,
    Id,
    TicketId,
    DepartmentId,
    Level,
    Instruction,
    DueAt,
    Status,
    IssuedBy,
    Reply,
    RepliedBy,
    RepliedAt,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum ExtensionRequests {
    Table,
    Id,
    DispatchId,
    TicketId,
    Duration,
    Reason,
    Status,
    RequestedBy,
    DecidedBy,
    DecidedAt,
    Note,
    CreatedAt,
}

/// Holiday schedules added through the API, one row per year (holiday-cn JSON).
#[derive(DeriveIden, Clone, Copy)]
enum CalendarYears {
    Table,
    Year,
    Schedule,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Notifications {
    Table,
    Id,
    TicketId,
    Kind,
    Recipient,
    Subject,
    Body,
    Status,
    Attempts,
    NextAttemptAt,
    /// A sender's claim on the row while it talks to the SMTP server (no transaction is held).
    LeaseUntil,
    LastError,
    CreatedAt,
    SentAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(Users::Table).add_column(string_len_null(Users::Email, 254)).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Departments::Table)
                    .add_column(string_len_null(DepartmentsExtra::HeadEmail, 254))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(SlaPolicies::Table)
                    .col(uuid(SlaPolicies::CategoryId))
                    .col(string_len(SlaPolicies::Priority, 16))
                    .col(string_len(SlaPolicies::Acknowledge, 32))
                    .col(string_len(SlaPolicies::FirstContact, 32))
                    .col(string_len(SlaPolicies::Resolve, 32))
                    .col(string_len(SlaPolicies::Rectify, 32))
                    .col(string_len(SlaPolicies::RatingWindow, 32))
                    .col(timestamp_with_time_zone(SlaPolicies::UpdatedAt))
                    .primary_key(Index::create().col(SlaPolicies::CategoryId).col(SlaPolicies::Priority))
                    .foreign_key(
                        ForeignKey::create()
                            .from(SlaPolicies::Table, SlaPolicies::CategoryId)
                            .to(Alias::new("categories"), Alias::new("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(SlaClocks::Table)
                    .col(pk_uuid(SlaClocks::Id))
                    .col(uuid(SlaClocks::TicketId))
                    .col(uuid_null(SlaClocks::DispatchId))
                    .col(string_len(SlaClocks::Clock, 16))
                    .col(string_len(SlaClocks::Duration, 32))
                    .col(timestamp_with_time_zone(SlaClocks::StartedAt))
                    .col(timestamp_with_time_zone(SlaClocks::WarnAt))
                    .col(timestamp_with_time_zone(SlaClocks::DueAt))
                    .col(timestamp_with_time_zone_null(SlaClocks::FollowupAt))
                    .col(timestamp_with_time_zone_null(SlaClocks::NextCheckAt))
                    .col(timestamp_with_time_zone_null(SlaClocks::WarnedAt))
                    .col(timestamp_with_time_zone_null(SlaClocks::BreachedAt))
                    .col(timestamp_with_time_zone_null(SlaClocks::FollowedUpAt))
                    .col(timestamp_with_time_zone_null(SlaClocks::StoppedAt))
                    .col(boolean(SlaClocks::Estimated))
                    .foreign_key(
                        ForeignKey::create()
                            .from(SlaClocks::Table, SlaClocks::TicketId)
                            .to(Tickets::Table, Tickets::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(SlaClocks::Table, SlaClocks::DispatchId)
                            .to(Dispatches::Table, Dispatches::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // The sweeper's whole work list is one range scan of this index.
        index(manager, "idx_sla_clocks_next_check", SlaClocks::Table, &[SlaClocks::NextCheckAt]).await?;
        index(manager, "idx_sla_clocks_ticket", SlaClocks::Table, &[SlaClocks::TicketId]).await?;
        index(manager, "idx_sla_clocks_dispatch", SlaClocks::Table, &[SlaClocks::DispatchId]).await?;

        manager
            .create_table(
                Table::create()
                    .table(EscalationRules::Table)
                    .col(pk_uuid(EscalationRules::Id))
                    .col(string_len(EscalationRules::Trigger, 32))
                    .col(json(EscalationRules::Notify))
                    .col(string_len_null(EscalationRules::SupervisionLevel, 16))
                    .col(boolean(EscalationRules::Active))
                    .col(timestamp_with_time_zone(EscalationRules::CreatedAt))
                    .col(timestamp_with_time_zone(EscalationRules::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(SupervisionOrders::Table)
                    .col(pk_uuid(SupervisionOrders::Id))
                    .col(uuid(SupervisionOrders::TicketId))
                    .col(uuid_null(SupervisionOrders::DepartmentId))
                    .col(string_len(SupervisionOrders::Level, 16))
                    .col(text(SupervisionOrders::Instruction))
                    .col(timestamp_with_time_zone(SupervisionOrders::DueAt))
                    .col(string_len(SupervisionOrders::Status, 16))
                    .col(uuid_null(SupervisionOrders::IssuedBy))
                    .col(text_null(SupervisionOrders::Reply))
                    .col(uuid_null(SupervisionOrders::RepliedBy))
                    .col(timestamp_with_time_zone_null(SupervisionOrders::RepliedAt))
                    .col(timestamp_with_time_zone(SupervisionOrders::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(SupervisionOrders::Table, SupervisionOrders::TicketId)
                            .to(Tickets::Table, Tickets::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(SupervisionOrders::Table, SupervisionOrders::DepartmentId)
                            .to(Departments::Table, Departments::Id),
                    )
                    .to_owned(),
            )
            .await?;
        index(manager, "idx_supervision_orders_ticket", SupervisionOrders::Table, &[SupervisionOrders::TicketId])
            .await?;
        index(
            manager,
            "idx_supervision_orders_department",
            SupervisionOrders::Table,
            &[SupervisionOrders::DepartmentId],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Escalations::Table)
                    .col(pk_uuid(Escalations::Id))
                    .col(uuid(Escalations::TicketId))
                    .col(uuid_null(Escalations::ClockId))
                    .col(string_len(Escalations::Trigger, 32))
                    .col(uuid_null(Escalations::RuleId))
                    .col(json(Escalations::Notified))
                    .col(uuid_null(Escalations::SupervisionOrderId))
                    .col(timestamp_with_time_zone(Escalations::At))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Escalations::Table, Escalations::TicketId)
                            .to(Tickets::Table, Tickets::Id),
                    )
                    .to_owned(),
            )
            .await?;
        index(manager, "idx_escalations_ticket", Escalations::Table, &[Escalations::TicketId]).await?;

        manager
            .create_table(
                Table::create()
                    .table(ExtensionRequests::Table)
                    .col(pk_uuid(ExtensionRequests::Id))
                    .col(uuid(ExtensionRequests::DispatchId))
                    .col(uuid(ExtensionRequests::TicketId))
                    .col(string_len(ExtensionRequests::Duration, 32))
                    .col(text(ExtensionRequests::Reason))
                    .col(string_len(ExtensionRequests::Status, 16))
                    .col(uuid(ExtensionRequests::RequestedBy))
                    .col(uuid_null(ExtensionRequests::DecidedBy))
                    .col(timestamp_with_time_zone_null(ExtensionRequests::DecidedAt))
                    .col(text_null(ExtensionRequests::Note))
                    .col(timestamp_with_time_zone(ExtensionRequests::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ExtensionRequests::Table, ExtensionRequests::DispatchId)
                            .to(Dispatches::Table, Dispatches::Id),
                    )
                    .to_owned(),
            )
            .await?;
        index(manager, "idx_extension_requests_dispatch", ExtensionRequests::Table, &[ExtensionRequests::DispatchId])
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Notifications::Table)
                    .col(pk_uuid(Notifications::Id))
                    .col(uuid_null(Notifications::TicketId))
                    .col(string_len(Notifications::Kind, 32))
                    .col(string_len(Notifications::Recipient, 254))
                    .col(string_len(Notifications::Subject, 200))
                    .col(text(Notifications::Body))
                    .col(string_len(Notifications::Status, 16))
                    .col(integer(Notifications::Attempts))
                    .col(timestamp_with_time_zone(Notifications::NextAttemptAt))
                    .col(timestamp_with_time_zone_null(Notifications::LeaseUntil))
                    .col(text_null(Notifications::LastError))
                    .col(timestamp_with_time_zone(Notifications::CreatedAt))
                    .col(timestamp_with_time_zone_null(Notifications::SentAt))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_notifications_due",
            Notifications::Table,
            &[Notifications::Status, Notifications::NextAttemptAt],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(CalendarYears::Table)
                    .col(integer(CalendarYears::Year).primary_key())
                    .col(json(CalendarYears::Schedule))
                    .col(timestamp_with_time_zone(CalendarYears::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            CalendarYears::Table.into_iden(),
            Notifications::Table.into_iden(),
            ExtensionRequests::Table.into_iden(),
            Escalations::Table.into_iden(),
            SupervisionOrders::Table.into_iden(),
            EscalationRules::Table.into_iden(),
            SlaClocks::Table.into_iden(),
            SlaPolicies::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        manager
            .alter_table(Table::alter().table(Departments::Table).drop_column(DepartmentsExtra::HeadEmail).to_owned())
            .await?;
        manager.alter_table(Table::alter().table(Users::Table).drop_column(Users::Email).to_owned()).await
    }
}
