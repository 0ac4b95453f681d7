//! Community sensors (issue 18): the device registry, the receipts that make a redelivered
//! MQTT message change nothing, and one row per device and alarm kind holding its open ticket.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261129_000001_reference_data::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Devices {
    Table,
    Id,
    /// The id the device publishes under: `{prefix}/sensors/{device_id}/alarm`.
    DeviceId,
    Name,
    UnitId,
    Lat,
    Lon,
    CategoryId,
    /// JSON array of the alarm kinds the device reports (`["smoke"]`).
    Kinds,
    HeartbeatTimeoutSeconds,
    Active,
    LastSeenAt,
    /// When silence becomes an alarm: last heard (or registered) + heartbeat timeout.
    SilentAfter,
    /// Set once a `device_offline` ticket was filed for the current silence.
    OfflineReportedAt,
    OfflineTicketId,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum SensorAlarmReceipts {
    Table,
    DeviceId,
    Kind,
    /// `m:{message_id}` or `t:{at}`: what makes two deliveries the same alarm.
    DedupKey,
    ReceivedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum SensorOpenAlarms {
    Table,
    DeviceId,
    Kind,
    TicketId,
    AlarmCount,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum GridUnits {
    Table,
    Id,
}

#[derive(DeriveIden, Clone, Copy)]
enum Categories {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Devices::Table)
                    .col(pk_uuid(Devices::Id))
                    .col(string_len_uniq(Devices::DeviceId, 64))
                    .col(string_len(Devices::Name, 200))
                    .col(uuid(Devices::UnitId))
                    .col(double_null(Devices::Lat))
                    .col(double_null(Devices::Lon))
                    .col(uuid(Devices::CategoryId))
                    .col(json(Devices::Kinds))
                    .col(big_integer_null(Devices::HeartbeatTimeoutSeconds))
                    .col(boolean(Devices::Active))
                    .col(timestamp_with_time_zone_null(Devices::LastSeenAt))
                    .col(timestamp_with_time_zone_null(Devices::SilentAfter))
                    .col(timestamp_with_time_zone_null(Devices::OfflineReportedAt))
                    .col(uuid_null(Devices::OfflineTicketId))
                    .col(timestamp_with_time_zone(Devices::CreatedAt))
                    .col(timestamp_with_time_zone(Devices::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create().from(Devices::Table, Devices::UnitId).to(GridUnits::Table, GridUnits::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Devices::Table, Devices::CategoryId)
                            .to(Categories::Table, Categories::Id),
                    )
                    .to_owned(),
            )
            .await?;
        index(manager, "idx_devices_unit", Devices::Table, &[Devices::UnitId]).await?;
        index(manager, "idx_devices_silent_after", Devices::Table, &[Devices::SilentAfter]).await?;

        manager
            .create_table(
                Table::create()
                    .table(SensorAlarmReceipts::Table)
                    .col(uuid(SensorAlarmReceipts::DeviceId))
                    .col(string_len(SensorAlarmReceipts::Kind, 32))
                    .col(string_len(SensorAlarmReceipts::DedupKey, 160))
                    .col(timestamp_with_time_zone(SensorAlarmReceipts::ReceivedAt))
                    .primary_key(
                        Index::create()
                            .col(SensorAlarmReceipts::DeviceId)
                            .col(SensorAlarmReceipts::Kind)
                            .col(SensorAlarmReceipts::DedupKey),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(SensorAlarmReceipts::Table, SensorAlarmReceipts::DeviceId)
                            .to(Devices::Table, Devices::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_sensor_alarm_receipts_received",
            SensorAlarmReceipts::Table,
            &[SensorAlarmReceipts::ReceivedAt],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(SensorOpenAlarms::Table)
                    .col(uuid(SensorOpenAlarms::DeviceId))
                    .col(string_len(SensorOpenAlarms::Kind, 32))
                    .col(uuid_null(SensorOpenAlarms::TicketId))
                    .col(integer(SensorOpenAlarms::AlarmCount))
                    .col(timestamp_with_time_zone(SensorOpenAlarms::UpdatedAt))
                    .primary_key(Index::create().col(SensorOpenAlarms::DeviceId).col(SensorOpenAlarms::Kind))
                    .foreign_key(
                        ForeignKey::create()
                            .from(SensorOpenAlarms::Table, SensorOpenAlarms::DeviceId)
                            .to(Devices::Table, Devices::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(SensorOpenAlarms::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(SensorAlarmReceipts::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Devices::Table).to_owned()).await
    }
}
