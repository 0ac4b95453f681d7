use sea_orm::entity::prelude::*;

/// One line of a ticket's append-only timeline.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ticket_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub dispatch_id: Option<Uuid>,
    pub kind: String,
    /// `None` for the system itself (auto-dispatch, auto-close, timers).
    pub actor_id: Option<Uuid>,
    pub at: DateTimeUtc,
    pub payload: Json,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
