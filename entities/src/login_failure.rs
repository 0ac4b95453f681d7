use sea_orm::entity::prelude::*;

/// Consecutive failed logins under one user name, whether or not an account has that name.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "login_failures")]
pub struct Model {
    /// Trimmed, lower-cased, at most 64 characters.
    #[sea_orm(primary_key, auto_increment = false)]
    pub username: String,
    pub failures: i32,
    /// Logins under this name are refused until then, even with the right password.
    pub locked_until: Option<DateTimeUtc>,
    pub last_failed_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
