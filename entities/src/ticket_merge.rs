use sea_orm::entity::prelude::*;

/// 并单: a duplicate ticket merged into the one that carries on (the survivor).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ticket_merges")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub duplicate_id: Uuid,
    pub survivor_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub reason: String,
    pub across_categories: bool,
    pub merged_by: Uuid,
    pub merged_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
