use sea_orm::entity::prelude::*;

/// A category's SLA durations for one priority; categories without a row use the configured defaults.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sla_policies")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub category_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub priority: String,
    pub acknowledge: String,
    pub first_contact: String,
    pub resolve: String,
    pub rectify: String,
    pub rating_window: String,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
