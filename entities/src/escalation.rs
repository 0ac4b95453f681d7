use sea_orm::entity::prelude::*;

/// A fired escalation: what triggered it, who was told, which order it opened.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "escalations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub clock_id: Option<Uuid>,
    pub trigger: String,
    pub rule_id: Option<Uuid>,
    pub notified: Json,
    pub supervision_order_id: Option<Uuid>,
    pub at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
