//! The request taxonomy (养老, 托育, 物业, …) with default priority and auto-dispatch switch.

use entities::{Priority, category};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{ensure_unique, found, require};
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
pub struct NewCategory {
    pub code: String,
    pub name: String,
    #[serde(default = "normal")]
    #[schema(value_type = String, example = "normal")]
    pub default_priority: Priority,
    /// Dispatch tickets of this category at once along the routing rules.
    #[serde(default)]
    pub auto_dispatch: bool,
    #[serde(default = "yes")]
    pub active: bool,
    /// Resolving needs an `after` photo (办结需上传处置后照片): without one, 422 on `attachments`.
    #[serde(default)]
    pub resolve_requires_photo: bool,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryChanges {
    pub code: Option<String>,
    pub name: Option<String>,
    #[schema(value_type = Option<String>)]
    pub default_priority: Option<Priority>,
    pub auto_dispatch: Option<bool>,
    pub active: Option<bool>,
    pub resolve_requires_photo: Option<bool>,
}

#[derive(Debug, Default, Clone)]
pub struct CategoryFilter {
    pub code: Option<String>,
    pub active: Option<bool>,
}

fn normal() -> Priority {
    Priority::Normal
}

fn yes() -> bool {
    true
}

pub async fn create(ctx: &AppContext, caller: &Caller, input: NewCategory) -> AppResult<category::Model> {
    require(caller, Permission::ManageReferenceData)?;
    let mut errors = FieldErrors::new();
    let code = errors.code("code", &input.code);
    let name = errors.text("name", &input.name, 100);
    errors.into_result()?;

    let txn = begin_write(&ctx.db).await?;
    ensure_unique::<category::Entity>(&txn, category::Column::Code, &code, None, |m| m.id, "a category with code")
        .await?;
    let now = ctx.clock.now();
    let created = category::ActiveModel {
        id: Set(Uuid::now_v7()),
        code: Set(code),
        name: Set(name),
        default_priority: Set(input.default_priority),
        auto_dispatch: Set(input.auto_dispatch),
        resolve_requires_photo: Set(input.resolve_requires_photo),
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
    changes: CategoryChanges,
) -> AppResult<category::Model> {
    require(caller, Permission::ManageReferenceData)?;
    let mut errors = FieldErrors::new();
    let code = changes.code.as_deref().map(|c| errors.code("code", c));
    let name = changes.name.as_deref().map(|n| errors.text("name", n, 100));
    errors.into_result()?;

    let txn = begin_write(&ctx.db).await?;
    let mut row: category::ActiveModel = found::<category::Entity>(&txn, id, "category").await?.into();
    if let Some(code) = code {
        ensure_unique::<category::Entity>(
            &txn,
            category::Column::Code,
            &code,
            Some(id),
            |m| m.id,
            "a category with code",
        )
        .await?;
        row.code = Set(code);
    }
    if let Some(name) = name {
        row.name = Set(name);
    }
    if let Some(priority) = changes.default_priority {
        row.default_priority = Set(priority);
    }
    if let Some(auto_dispatch) = changes.auto_dispatch {
        row.auto_dispatch = Set(auto_dispatch);
    }
    if let Some(required) = changes.resolve_requires_photo {
        row.resolve_requires_photo = Set(required);
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
    super::delete_reference::<category::Entity>(ctx, caller, id, "category").await
}

pub async fn get(ctx: &AppContext, caller: &Caller, id: Uuid) -> AppResult<category::Model> {
    require(caller, Permission::ReadReferenceData)?;
    found::<category::Entity>(&ctx.db, id, "category").await
}

pub async fn list(
    ctx: &AppContext,
    caller: &Caller,
    filter: CategoryFilter,
    request: PageRequest,
) -> AppResult<Page<category::Model>> {
    require(caller, Permission::ReadReferenceData)?;
    let mut select = category::Entity::find();
    if let Some(code) = filter.code {
        select = select.filter(category::Column::Code.eq(code));
    }
    if let Some(active) = filter.active {
        select = select.filter(category::Column::Active.eq(active));
    }
    Ok(page::fetch(&ctx.db, select, category::Column::Id, |m| m.id, request).await?)
}

pub async fn by_code(db: &impl ConnectionTrait, code: &str) -> AppResult<Option<category::Model>> {
    Ok(category::Entity::find().filter(category::Column::Code.eq(code)).one(db).await?)
}
