use sea_orm::entity::prelude::*;

/// An e-mail in the outbox, written in the same transaction as the event that causes it.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notifications")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub ticket_id: Option<Uuid>,
    pub kind: String,
    pub recipient: String,
    pub subject: String,
    #[sea_orm(column_type = "Text")]
    pub body: String,
    /// pending, sent or dead (undelivered within `smtp.retention`; an admin may re-queue it)
    pub status: crate::enums::MailStatus,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    pub lease_until: Option<DateTimeUtc>,
    /// Written at each claim; only the current claim's holder may record the outcome.
    pub lease_token: Option<Uuid>,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    /// When an admin last re-queued the mail: its delivery window starts here instead of at
    /// `created_at`.
    pub queued_at: Option<DateTimeUtc>,
    pub sent_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
