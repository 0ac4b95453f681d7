//! Use cases. The only layer that opens and commits transactions.

pub mod api_keys;
pub mod attachments;
pub mod audit;
pub mod auth;
pub mod calendar;
pub mod categories;
pub mod coverage;
pub mod demo;
pub mod demo_governance;
pub mod demo_tickets;
pub mod departments;
pub mod devices;
pub mod dispatches;
pub mod duplicates;
pub mod escalation;
pub mod extensions;
pub mod hotspots;
pub mod housekeeping;
pub mod in_flight;
pub mod notifications;
pub mod notify;
pub mod open311;
pub mod open311_media;
pub mod operations;
pub mod sla;
pub mod supervision;
pub mod topics;

pub mod event_stream;
pub mod grid_units;
pub mod reports;
pub mod routing;
pub mod sensor_alarms;
pub mod tickets;
pub mod token_cache;
pub mod uploads;
pub mod users;
pub mod webhooks;

use sea_orm::{ConnectionTrait, EntityTrait};
use serde::{Deserialize, Deserializer};
use uuid::Uuid;

use crate::{
    domain::access::{Caller, Permission, role_may},
    error::{AppError, AppResult},
};

pub fn require(caller: &Caller, permission: Permission) -> AppResult<()> {
    if role_may(caller.role, permission) {
        Ok(())
    } else {
        let role = role_name(caller.role);
        Err(AppError::refused(
            crate::error::Refusal::Forbidden,
            format!("您的角色（{role}）无权执行此操作"),
            format!("role {role} may not do this"),
        ))
    }
}

pub fn role_name(role: entities::Role) -> &'static str {
    use entities::Role::*;
    match role {
        GridWorker => "grid_worker",
        Dispatcher => "dispatcher",
        DepartmentStaff => "department_staff",
        Supervisor => "supervisor",
        Admin => "admin",
    }
}

/// For PATCH bodies: absent → `None` (leave as is), `null` → `Some(None)` (clear).
pub fn nullable<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Loads a row a request refers to by id; a missing one is a 422 on that field, not a 404
/// of the whole request.
pub async fn referenced<E>(db: &impl ConnectionTrait, field: &str, id: Uuid, what: &str) -> AppResult<E::Model>
where
    E: EntityTrait,
    E::PrimaryKey: sea_orm::PrimaryKeyTrait<ValueType = Uuid>,
{
    E::find_by_id(id).one(db).await?.ok_or_else(|| {
        AppError::invalid(
            field,
            crate::domain::validate::Message::said(
                format!("找不到编号为 {id} 的记录"),
                format!("no {what} with id {id}"),
            ),
        )
    })
}

/// Loads the row a URL names; missing is 404.
pub async fn found<E>(db: &impl ConnectionTrait, id: Uuid, what: &str) -> AppResult<E::Model>
where
    E: EntityTrait,
    E::PrimaryKey: sea_orm::PrimaryKeyTrait<ValueType = Uuid>,
{
    E::find_by_id(id).one(db).await?.ok_or_else(|| AppError::not_found(what))
}

/// Refuses a value already taken by another row in a unique column, with a message naming it.
/// The unique index stays the backstop for races.
pub async fn ensure_unique<E>(
    db: &impl ConnectionTrait,
    column: E::Column,
    value: &str,
    except: Option<Uuid>,
    id_of: fn(&E::Model) -> Uuid,
    what: &str,
) -> AppResult<()>
where
    E: EntityTrait,
{
    use sea_orm::{ColumnTrait, QueryFilter};
    match E::find().filter(column.eq(value)).one(db).await? {
        Some(existing) if Some(id_of(&existing)) != except => {
            Err(AppError::Conflict(format!("{what} {value} already exists")))
        }
        _ => Ok(()),
    }
}

/// Deletes a reference row an admin names; rows still referenced elsewhere answer 409.
pub async fn delete_reference<E>(
    ctx: &crate::context::AppContext,
    caller: &Caller,
    id: Uuid,
    what: &str,
) -> AppResult<()>
where
    E: EntityTrait,
    E::PrimaryKey: sea_orm::PrimaryKeyTrait<ValueType = Uuid>,
{
    require(caller, Permission::ManageReferenceData)?;
    let txn = crate::db::begin_write(&ctx.db).await?;
    found::<E>(&txn, id, what).await?;
    E::delete_by_id(id).exec(&txn).await?;
    txn.commit().await?;
    Ok(())
}
