use sea_orm::entity::prelude::*;

use crate::Role;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub unit_id: Option<Uuid>,
    pub department_id: Option<Uuid>,
    pub password_hash: String,
    /// Where escalations for this user's role reach them.
    pub email: Option<String>,
    /// Unused: failed logins are counted per name in `login_failures`, so that unknown
    /// names lock out like real ones. Kept for the rows written before that.
    pub failed_logins: i32,
    /// Unused, see `failed_logins`.
    pub locked_until: Option<DateTimeUtc>,

    pub active: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
