use sea_orm::entity::prelude::*;

/// A photo of a ticket kept elsewhere: an attachment that points outside (Open311 `media_url`).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ticket_media_urls")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub ticket_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub url: String,
    /// Where the address came from: `open311`.
    pub source: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
