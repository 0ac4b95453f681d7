//! Failed logins per user name. Keyed by the name, not the account, so a name nobody has
//! locks out exactly like a real one.

use chrono::{DateTime, Utc};
use entities::login_failure;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, ExprTrait, QueryFilter,
    sea_query::{Expr, OnConflict},
};

/// The longest name kept: user names are at most 64 characters, longer ones share a row.
const MAX_NAME: usize = 64;

/// The key a login attempt is counted under: trimmed and lower-cased, like stored user names.
pub fn normalise(username: &str) -> String {
    username.trim().to_lowercase().chars().take(MAX_NAME).collect()
}

pub async fn find(db: &impl ConnectionTrait, name: &str) -> Result<Option<login_failure::Model>, DbErr> {
    login_failure::Entity::find_by_id(name.to_owned()).one(db).await
}

/// Counts one more failure under `name` (one upsert, the same on SQLite and PostgreSQL) and
/// returns the count now stored.
pub async fn count_failure(db: &impl ConnectionTrait, name: &str, now: DateTime<Utc>) -> Result<i32, DbErr> {
    let first = login_failure::ActiveModel {
        username: sea_orm::Set(name.to_owned()),
        failures: sea_orm::Set(1),
        locked_until: sea_orm::Set(None),
        last_failed_at: sea_orm::Set(now),
    };
    login_failure::Entity::insert(first)
        .on_conflict(
            OnConflict::column(login_failure::Column::Username)
                // A lock that has run out starts the count afresh: one wrong password after it
                // is the first failure, not the sixth.
                .value(
                    login_failure::Column::Failures,
                    Expr::case(lock_expired(now), 1)
                        .finally(Expr::col((login_failure::Entity, login_failure::Column::Failures)).add(1)),
                )
                .value(
                    login_failure::Column::LockedUntil,
                    Expr::case(lock_expired(now), Expr::val(Option::<DateTime<Utc>>::None))
                        .finally(Expr::col((login_failure::Entity, login_failure::Column::LockedUntil))),
                )
                .value(login_failure::Column::LastFailedAt, Expr::val(now))
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(find(db, name).await?.map_or(1, |row| row.failures))
}

/// The stored row's lock is set and over (NULL — never locked — is not).
fn lock_expired(now: DateTime<Utc>) -> sea_orm::sea_query::SimpleExpr {
    Expr::col((login_failure::Entity, login_failure::Column::LockedUntil)).lte(now)
}

pub async fn lock(db: &impl ConnectionTrait, name: &str, until: DateTime<Utc>) -> Result<(), DbErr> {
    login_failure::Entity::update_many()
        .col_expr(login_failure::Column::LockedUntil, Expr::val(until))
        .filter(login_failure::Column::Username.eq(name))
        .exec(db)
        .await?;
    Ok(())
}

/// A successful login forgets the name's failures.
pub async fn clear(db: &impl ConnectionTrait, name: &str) -> Result<(), DbErr> {
    login_failure::Entity::delete_by_id(name.to_owned()).exec(db).await?;
    Ok(())
}

/// Forgets names that have not failed since `before` and are not locked any more.
pub async fn forget_older_than(db: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<u64, DbErr> {
    Ok(login_failure::Entity::delete_many()
        .filter(login_failure::Column::LastFailedAt.lt(before))
        .filter(
            Condition::any()
                .add(login_failure::Column::LockedUntil.is_null())
                .add(login_failure::Column::LockedUntil.lt(before)),
        )
        .exec(db)
        .await?
        .rows_affected)
}
