//! Departments (部门): who handles dispatched tickets, and where their notices go.

use entities::{department, grid_unit};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{ensure_unique, found, nullable, referenced, require};

use crate::{
    context::AppContext,
    db::begin_write,
    domain::{
        access::{Caller, Permission},
        validate::FieldErrors,
    },
    error::AppResult,
    repo::page::{self, Page, PageRequest},
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDepartment {
    pub code: String,
    pub name: String,
    /// The unit whose jurisdiction the department serves.
    pub unit_id: Uuid,
    /// Where dispatch and SLA notices are mailed.
    pub email: String,
    /// The head's address for escalations; the department's own is used when absent.
    pub head_email: Option<String>,
    #[serde(default = "yes")]
    pub active: bool,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DepartmentChanges {
    pub code: Option<String>,
    pub name: Option<String>,
    pub unit_id: Option<Uuid>,
    pub email: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub head_email: Option<Option<String>>,
    pub active: Option<bool>,
}

#[derive(Debug, Default, Clone)]
pub struct DepartmentFilter {
    pub unit: Option<Uuid>,
    pub code: Option<String>,
    pub active: Option<bool>,
}

fn yes() -> bool {
    true
}

pub async fn create(ctx: &AppContext, caller: &Caller, input: NewDepartment) -> AppResult<department::Model> {
    require(caller, Permission::ManageReferenceData)?;
    let mut errors = FieldErrors::new();
    let code = errors.code("code", &input.code);
    let name = errors.text("name", &input.name, 100);
    let email = errors.email("email", &input.email);
    let head_email = input.head_email.as_deref().map(|e| errors.email("head_email", e));
    errors.into_result()?;

    let txn = begin_write(&ctx.db).await?;
    referenced::<grid_unit::Entity>(&txn, "unit_id", input.unit_id, "grid unit").await?;
    ensure_unique::<department::Entity>(
        &txn,
        department::Column::Code,
        &code,
        None,
        |m| m.id,
        "a department with code",
    )
    .await?;
    let now = ctx.clock.now();
    let created = department::ActiveModel {
        id: Set(Uuid::now_v7()),
        code: Set(code),
        name: Set(name),
        unit_id: Set(input.unit_id),
        email: Set(email),
        head_email: Set(head_email),
        active: Set(input.active),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(created)
}

pub async fn update(
    ctx: &AppContext,
    caller: &Caller,
    id: Uuid,
    changes: DepartmentChanges,
) -> AppResult<department::Model> {
    require(caller, Permission::ManageReferenceData)?;
    let mut errors = FieldErrors::new();
    let code = changes.code.as_deref().map(|c| errors.code("code", c));
    let name = changes.name.as_deref().map(|n| errors.text("name", n, 100));
    let email = changes.email.as_deref().map(|e| errors.email("email", e));
    let head_email = changes.head_email.map(|h| h.map(|e| errors.email("head_email", &e)));
    errors.into_result()?;

    let txn = begin_write(&ctx.db).await?;
    let mut row: department::ActiveModel = found::<department::Entity>(&txn, id, "department").await?.into();
    if let Some(code) = code {
        ensure_unique::<department::Entity>(
            &txn,
            department::Column::Code,
            &code,
            Some(id),
            |m| m.id,
            "a department with code",
        )
        .await?;
        row.code = Set(code);
    }
    if let Some(unit_id) = changes.unit_id {
        referenced::<grid_unit::Entity>(&txn, "unit_id", unit_id, "grid unit").await?;
        row.unit_id = Set(unit_id);
    }
    if let Some(name) = name {
        row.name = Set(name);
    }
    if let Some(email) = email {
        row.email = Set(email);
    }
    if let Some(head_email) = head_email {
        row.head_email = Set(head_email);
    }
    if let Some(active) = changes.active {
        row.active = Set(active);
    }
    row.updated_at = Set(ctx.clock.now());
    let updated = row.update(&txn).await?;
    txn.commit().await?;
    Ok(updated)
}

/// Refused with 409 while tickets or routing rules refer to it: set `active: false` instead.
pub async fn delete(ctx: &AppContext, caller: &Caller, id: Uuid) -> AppResult<()> {
    super::delete_reference::<department::Entity>(ctx, caller, id, "department").await
}

pub async fn get(ctx: &AppContext, caller: &Caller, id: Uuid) -> AppResult<department::Model> {
    require(caller, Permission::ReadReferenceData)?;
    found::<department::Entity>(&ctx.db, id, "department").await
}

pub async fn list(
    ctx: &AppContext,
    caller: &Caller,
    filter: DepartmentFilter,
    request: PageRequest,
) -> AppResult<Page<department::Model>> {
    require(caller, Permission::ReadReferenceData)?;
    let mut select = department::Entity::find();
    if let Some(unit) = filter.unit {
        select = select.filter(department::Column::UnitId.eq(unit));
    }
    if let Some(code) = filter.code {
        select = select.filter(department::Column::Code.eq(code));
    }
    if let Some(active) = filter.active {
        select = select.filter(department::Column::Active.eq(active));
    }
    Ok(page::fetch(&ctx.db, select, department::Column::Id, |m| m.id, request).await?)
}

pub async fn by_code(db: &impl ConnectionTrait, code: &str) -> AppResult<Option<department::Model>> {
    Ok(department::Entity::find().filter(department::Column::Code.eq(code)).one(db).await?)
}
