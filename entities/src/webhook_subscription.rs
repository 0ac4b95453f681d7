use sea_orm::entity::prelude::*;

/// A receiver of signed webhooks (Standard Webhooks), managed by admins.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_subscriptions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub url: String,
    pub description: String,
    /// JSON array of event kinds (`filed`, `dispatched`, …); empty means every kind.
    pub event_kinds: Json,
    pub unit_id: Option<Uuid>,
    pub department_id: Option<Uuid>,
    /// `whsec_` + base64 of 32 random bytes; shown once, used to sign every delivery.
    pub secret: String,
    pub active: bool,
    pub failing_since: Option<DateTimeUtc>,
    pub disabled_at: Option<DateTimeUtc>,
    pub disabled_reason: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
