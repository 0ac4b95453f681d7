use sea_orm::entity::prelude::*;

/// On which event whom to notify, and whether to open a supervision order.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "escalation_rules")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub trigger: String,
    /// JSON array of targets: department, department_head, township_dispatcher, county_supervisor, city_supervisor.
    pub notify: Json,
    /// `supervise` (督办) or `listed` (挂牌督办); none opens no order.
    pub supervision_level: Option<String>,
    pub active: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
