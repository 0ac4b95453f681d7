use sea_orm::entity::prelude::*;

/// 好差评. A ticket may collect several: a 差评 reopens it and the next resolution is rated again.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ratings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub score: i16,
    #[sea_orm(column_type = "Text", nullable)]
    pub comment: Option<String>,
    pub rated_by: Uuid,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
