use sea_orm::entity::prelude::*;

/// A community sensor (社区感知设施) that reports alarms over MQTT.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "devices")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The id it publishes under (`SMOKE-001`).
    #[sea_orm(unique)]
    pub device_id: String,
    pub name: String,
    pub unit_id: Uuid,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub category_id: Uuid,
    /// JSON array of alarm kinds.
    pub kinds: Json,
    pub heartbeat_timeout_seconds: Option<i64>,
    pub active: bool,
    pub last_seen_at: Option<DateTimeUtc>,
    pub silent_after: Option<DateTimeUtc>,
    pub offline_reported_at: Option<DateTimeUtc>,
    pub offline_ticket_id: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
