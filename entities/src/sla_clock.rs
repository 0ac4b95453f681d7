use sea_orm::entity::prelude::*;

/// One running SLA clock: its deadlines and which of its milestones have fired.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sla_clocks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub dispatch_id: Option<Uuid>,
    /// acknowledge, first_contact, resolve or rectify
    pub clock: String,
    pub duration: String,
    pub started_at: DateTimeUtc,
    pub warn_at: DateTimeUtc,
    pub due_at: DateTimeUtc,
    pub followup_at: Option<DateTimeUtc>,
    pub next_check_at: Option<DateTimeUtc>,
    pub warned_at: Option<DateTimeUtc>,
    pub breached_at: Option<DateTimeUtc>,
    pub followed_up_at: Option<DateTimeUtc>,
    pub stopped_at: Option<DateTimeUtc>,
    pub stop_reason: Option<crate::ClockStop>,
    pub estimated: bool,
    /// Why the sweeper last failed to process this clock; cleared when it succeeds.
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    /// Failures in a row; the next attempt waits longer after each.
    pub failures: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
