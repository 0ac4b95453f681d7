use chrono::{DateTime, Utc};
use entities::{Role, api_token, grid_unit, user};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, FromQueryResult, JoinType, QueryFilter, QuerySelect, RelationDef,
    sea_query::Expr,
};
use uuid::Uuid;

/// What a request needs to know about the user behind a live token, in one row.
#[derive(Debug, FromQueryResult)]
pub struct LiveCaller {
    pub user_id: Uuid,
    pub username: String,
    pub role: Role,
    pub unit_id: Option<Uuid>,
    pub department_id: Option<Uuid>,
    /// The path of the user's home unit.
    pub home_path: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// The active user behind a live token with their home unit's path: one statement.
pub async fn live_caller(
    db: &impl ConnectionTrait,
    token_hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<LiveCaller>, DbErr> {
    let token_user: RelationDef =
        api_token::Entity::belongs_to(user::Entity).from(api_token::Column::UserId).to(user::Column::Id).into();
    let home: RelationDef =
        user::Entity::belongs_to(grid_unit::Entity).from(user::Column::UnitId).to(grid_unit::Column::Id).into();
    api_token::Entity::find()
        .select_only()
        .column_as(user::Column::Id, "user_id")
        .column_as(user::Column::Username, "username")
        .column_as(user::Column::Role, "role")
        .column_as(user::Column::UnitId, "unit_id")
        .column_as(user::Column::DepartmentId, "department_id")
        .column_as(grid_unit::Column::Path, "home_path")
        .column_as(api_token::Column::ExpiresAt, "expires_at")
        .join(JoinType::InnerJoin, token_user)
        .join(JoinType::LeftJoin, home)
        .filter(api_token::Column::TokenHash.eq(token_hash))
        .filter(api_token::Column::RevokedAt.is_null())
        .filter(api_token::Column::ExpiresAt.gt(now))
        .filter(user::Column::Active.eq(true))
        .into_model::<LiveCaller>()
        .one(db)
        .await
}

/// The token with this hash, unless it expired or was revoked.
pub async fn live_token(
    db: &impl ConnectionTrait,
    token_hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<api_token::Model>, DbErr> {
    api_token::Entity::find()
        .filter(api_token::Column::TokenHash.eq(token_hash))
        .filter(api_token::Column::RevokedAt.is_null())
        .filter(api_token::Column::ExpiresAt.gt(now))
        .one(db)
        .await
}

pub async fn revoke(db: &impl ConnectionTrait, token_hash: &str, now: DateTime<Utc>) -> Result<u64, DbErr> {
    Ok(api_token::Entity::update_many()
        .col_expr(api_token::Column::RevokedAt, Expr::val(now))
        .filter(api_token::Column::TokenHash.eq(token_hash))
        .filter(api_token::Column::RevokedAt.is_null())
        .exec(db)
        .await?
        .rows_affected)
}

/// Ends every session of a user: on password change and when the account is disabled.
pub async fn revoke_all_for_user(db: &impl ConnectionTrait, user_id: Uuid, now: DateTime<Utc>) -> Result<u64, DbErr> {
    Ok(api_token::Entity::update_many()
        .col_expr(api_token::Column::RevokedAt, Expr::val(now))
        .filter(api_token::Column::UserId.eq(user_id))
        .filter(api_token::Column::RevokedAt.is_null())
        .exec(db)
        .await?
        .rows_affected)
}
