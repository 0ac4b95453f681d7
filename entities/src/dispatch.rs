use sea_orm::entity::prelude::*;

/// 派单: one department's share of a ticket.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "dispatches")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub department_id: Uuid,
    /// `primary` or `co_handler`.
    pub role: String,
    pub status: String,
    pub dispatched_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub acknowledged_at: Option<DateTimeUtc>,
    pub returned_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub return_reason: Option<String>,
    pub return_refused: bool,
    pub resolved_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub reply: Option<String>,
    pub updated_at: DateTimeUtc,
    /// The first acknowledge deadline of this dispatch.
    pub ack_due_at: Option<DateTimeUtc>,
    /// Working time from dispatch to report-in.
    pub ack_working_seconds: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
