use sea_orm::entity::prelude::*;

/// 督办 / 挂牌督办: an instruction with a deadline, answered by the responsible department.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "supervision_orders")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub department_id: Option<Uuid>,
    /// supervise (督办) or listed (挂牌督办)
    pub level: String,
    #[sea_orm(column_type = "Text")]
    pub instruction: String,
    pub due_at: DateTimeUtc,
    /// open or replied
    pub status: String,
    pub issued_by: Option<Uuid>,
    #[sea_orm(column_type = "Text", nullable)]
    pub reply: Option<String>,
    pub replied_by: Option<Uuid>,
    pub replied_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
