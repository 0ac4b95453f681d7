use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// An uploaded file: an image re-encoded without metadata (with its JPEG thumbnail) or a PDF
/// as sent, stored by sha256. Attached at most once — to a ticket at filing, or to a dispatch
/// as evidence — after which it is an attachment of that ticket.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "uploads")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub sha256: String,
    pub content_type: String,
    pub size: i64,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub thumbnail_sha256: Option<String>,
    pub thumbnail_size: Option<i64>,
    pub uploaded_by: Uuid,
    pub created_at: DateTimeUtc,
    pub ticket_id: Option<Uuid>,
    pub dispatch_id: Option<Uuid>,
    pub kind: Option<AttachmentKind>,
    pub attached_by: Option<Uuid>,
    pub attached_at: Option<DateTimeUtc>,
    /// Names the thumbnail at `/open311/v2/media/{token}.jpg` once published there.
    pub public_token: Option<String>,
}

/// What an attachment shows: `filing` (sent with the filing: the grid worker's or resident's
/// picture), or a department's evidence `before`, `after` (the result of the work) or `other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum AttachmentKind {
    #[sea_orm(string_value = "filing")]
    Filing,
    #[sea_orm(string_value = "before")]
    Before,
    #[sea_orm(string_value = "after")]
    After,
    #[sea_orm(string_value = "other")]
    Other,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
