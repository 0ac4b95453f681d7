use chrono::{DateTime, Utc};
use entities::{Role, api_token, grid_unit, user};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, FromQueryResult, JoinType, QueryFilter, QuerySelect,
    RelationDef, sea_query::Expr,
};
use uuid::Uuid;

/// One login and the tokens refreshed from it: a refresh continues the session, so what is
/// held per session (event streams, stream tokens) survives it. Named by its user and its
/// login time, which a login keeps unique per user ([`session_starts_from`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Session {
    pub user_id: Uuid,
    pub started_at: DateTime<Utc>,
}

impl Session {
    pub fn of(token: &api_token::Model) -> Self {
        // Tokens from before login times were recorded: their own creation stands in.
        Self { user_id: token.user_id, started_at: token.session_started_at.unwrap_or(token.created_at) }
    }

    fn tokens(&self) -> Condition {
        Condition::all().add(api_token::Column::UserId.eq(self.user_id)).add(
            Condition::any().add(api_token::Column::SessionStartedAt.eq(self.started_at)).add(
                Condition::all()
                    .add(api_token::Column::SessionStartedAt.is_null())
                    .add(api_token::Column::CreatedAt.eq(self.started_at)),
            ),
        )
    }
}

fn live(now: DateTime<Utc>) -> Condition {
    Condition::all().add(api_token::Column::RevokedAt.is_null()).add(api_token::Column::ExpiresAt.gt(now))
}

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
    live_caller_where(db, Condition::all().add(api_token::Column::TokenHash.eq(token_hash)), now).await
}

/// The active user of a session that still has a live token (not logged out, revoked or
/// expired), whichever token of it that is.
pub async fn live_caller_of_session(
    db: &impl ConnectionTrait,
    session: &Session,
    now: DateTime<Utc>,
) -> Result<Option<LiveCaller>, DbErr> {
    live_caller_where(db, session.tokens(), now).await
}

async fn live_caller_where(
    db: &impl ConnectionTrait,
    token: Condition,
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
        .filter(token)
        .filter(live(now))
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
    api_token::Entity::find().filter(api_token::Column::TokenHash.eq(token_hash)).filter(live(now)).one(db).await
}

/// The session a token belongs to, whether or not the token itself still works (one refreshed
/// since names the same session).
pub async fn session_of(db: &impl ConnectionTrait, token_hash: &str) -> Result<Option<Session>, DbErr> {
    let token = api_token::Entity::find().filter(api_token::Column::TokenHash.eq(token_hash)).one(db).await?;
    Ok(token.as_ref().map(Session::of))
}

/// Whether the session still has a live token: a refresh keeps it live; a logout of its
/// current token, a revocation or the last token's expiry ends it.
pub async fn session_is_live(db: &impl ConnectionTrait, session: &Session, now: DateTime<Utc>) -> Result<bool, DbErr> {
    let found = api_token::Entity::find()
        .select_only()
        .column(api_token::Column::Id)
        .filter(session.tokens())
        .filter(live(now))
        .into_tuple::<Uuid>()
        .one(db)
        .await?;
    Ok(found.is_some())
}

/// The login times of `user_id`'s sessions at or after `from`: a new login takes one not
/// among them, so a login time names one session even when two logins share an instant.
pub async fn session_starts_from(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    from: DateTime<Utc>,
) -> Result<Vec<DateTime<Utc>>, DbErr> {
    let starts = api_token::Entity::find()
        .select_only()
        .column(api_token::Column::SessionStartedAt)
        .filter(api_token::Column::UserId.eq(user_id))
        .filter(api_token::Column::SessionStartedAt.gte(from))
        .into_tuple::<Option<DateTime<Utc>>>()
        .all(db)
        .await?;
    Ok(starts.into_iter().flatten().collect())
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
