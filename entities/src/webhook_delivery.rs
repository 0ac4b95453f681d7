use sea_orm::entity::prelude::*;

/// One event for one subscription: the webhook outbox, written in the event's transaction.
/// Its id is the `webhook-id` of every attempt, so receivers can drop duplicates.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub subscription_id: Uuid,
    pub event_id: Uuid,
    pub ticket_id: Uuid,
    /// `ticket.<kind>`
    pub event_type: String,
    pub event_at: DateTimeUtc,
    /// The `data` of the body: null until the first attempt writes it, then the same on
    /// every retry.
    pub payload: Json,
    /// pending, delivered or failed
    pub status: crate::enums::DeliveryStatus,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    pub lease_until: Option<DateTimeUtc>,
    pub lease_token: Option<Uuid>,
    pub last_status_code: Option<i32>,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub last_latency_ms: Option<i64>,
    pub created_at: DateTimeUtc,
    /// Where the retry window (`webhooks.retention`) starts: the event, or the last redelivery.
    pub queued_at: DateTimeUtc,
    pub delivered_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
