//! The grid-unit tree: create, move, delete, list, and locate a point to its grid.

use entities::{UnitLevel, grid_unit};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{ensure_unique, found, nullable, referenced, require};
use crate::{
    context::AppContext,
    db::begin_write,
    domain::{
        access::{Caller, Permission},
        geo::{Boundary, Point},
        levels::may_be_child_of,
        validate::FieldErrors,
    },
    error::{AppError, AppResult},
    repo::{
        self,
        page::{Page, PageRequest},
    },
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGridUnit {
    pub code: String,
    pub name: String,
    #[schema(value_type = String, example = "grid")]
    pub level: UnitLevel,
    pub parent_id: Option<Uuid>,
    /// GeoJSON Polygon or MultiPolygon, `[lon, lat]` positions.
    #[schema(value_type = Option<Object>)]
    pub boundary: Option<Value>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GridUnitChanges {
    pub code: Option<String>,
    pub name: Option<String>,
    /// Moves the unit (and its subtree) under another parent; `null` makes it a root.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Uuid>)]
    pub parent_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Object>)]
    pub boundary: Option<Option<Value>>,
}

#[derive(Debug, Default, Clone)]
pub struct GridUnitFilter {
    pub level: Option<UnitLevel>,
    pub parent: Option<Uuid>,
    pub code: Option<String>,
    /// Only units in this unit's subtree (itself included).
    pub under: Option<Uuid>,
}

pub async fn create(ctx: &AppContext, caller: &Caller, input: NewGridUnit) -> AppResult<grid_unit::Model> {
    require(caller, Permission::ManageReferenceData)?;
    let mut errors = FieldErrors::new();
    let code = errors.code("code", &input.code);
    let name = errors.text("name", &input.name, 100);
    let bbox_boundary = parse_boundary(&mut errors, input.boundary.as_ref());
    errors.into_result()?;

    let txn = begin_write(&ctx.db).await?;
    ensure_unique::<grid_unit::Entity>(&txn, grid_unit::Column::Code, &code, None, |m| m.id, "a grid unit with code")
        .await?;
    let id = Uuid::now_v7();
    let (path, depth) = match input.parent_id {
        Some(parent_id) => {
            let parent: grid_unit::Model =
                referenced::<grid_unit::Entity>(&txn, "parent_id", parent_id, "grid unit").await?;
            check_level(input.level, parent.level)?;
            (format!("{}{id}/", parent.path), parent.depth + 1)
        }
        None => (format!("/{id}/"), 0),
    };
    let now = ctx.clock.now();
    let mut row = grid_unit::ActiveModel {
        id: Set(id),
        code: Set(code),
        name: Set(name),
        level: Set(input.level),
        parent_id: Set(input.parent_id),
        path: Set(path),
        depth: Set(depth),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    set_boundary(&mut row, input.boundary, bbox_boundary);
    let created = row.insert(&txn).await?;
    txn.commit().await?;
    Ok(created)
}

pub async fn update(
    ctx: &AppContext,
    caller: &Caller,
    id: Uuid,
    changes: GridUnitChanges,
) -> AppResult<grid_unit::Model> {
    require(caller, Permission::ManageReferenceData)?;
    let mut errors = FieldErrors::new();
    let code = changes.code.as_deref().map(|c| errors.code("code", c));
    let name = changes.name.as_deref().map(|n| errors.text("name", n, 100));
    let parsed_boundary = match &changes.boundary {
        Some(value) => parse_boundary(&mut errors, value.as_ref()),
        None => None,
    };
    errors.into_result()?;

    let txn = begin_write(&ctx.db).await?;
    let unit: grid_unit::Model = found::<grid_unit::Entity>(&txn, id, "grid unit").await?;
    let mut row: grid_unit::ActiveModel = unit.clone().into();
    if let Some(code) = code {
        ensure_unique::<grid_unit::Entity>(
            &txn,
            grid_unit::Column::Code,
            &code,
            Some(id),
            |m| m.id,
            "a grid unit with code",
        )
        .await?;
        row.code = Set(code);
    }
    if let Some(name) = name {
        row.name = Set(name);
    }
    if let Some(boundary) = changes.boundary {
        set_boundary(&mut row, boundary, parsed_boundary);
    }
    if let Some(new_parent) = changes.parent_id
        && new_parent != unit.parent_id
    {
        let (path, depth) = match new_parent {
            Some(parent_id) => {
                let parent: grid_unit::Model =
                    referenced::<grid_unit::Entity>(&txn, "parent_id", parent_id, "grid unit").await?;
                if parent.path.starts_with(&unit.path) {
                    return Err(AppError::invalid("parent_id", "a unit cannot move under itself or its own subtree"));
                }
                check_level(unit.level, parent.level)?;
                (format!("{}{id}/", parent.path), parent.depth + 1)
            }
            None => (format!("/{id}/"), 0),
        };
        repo::grid_units::move_subtree(&txn, &unit.path, &path, depth - unit.depth).await?;
        repo::grid_units::refresh_ticket_ancestors(&txn, &path).await?;
        row.parent_id = Set(new_parent);
        row.path = Set(path);
        row.depth = Set(depth);
    }
    row.updated_at = Set(ctx.clock.now());
    let updated = row.update(&txn).await?;
    txn.commit().await?;
    Ok(updated)
}

pub async fn delete(ctx: &AppContext, caller: &Caller, id: Uuid) -> AppResult<()> {
    require(caller, Permission::ManageReferenceData)?;
    let txn = begin_write(&ctx.db).await?;
    found::<grid_unit::Entity>(&txn, id, "grid unit").await?;
    if repo::grid_units::has_children(&txn, id).await? {
        return Err(AppError::Conflict("the grid unit still has child units; delete or move them first".into()));
    }
    grid_unit::Entity::delete_by_id(id).exec(&txn).await?;
    txn.commit().await?;
    Ok(())
}

pub async fn get(ctx: &AppContext, caller: &Caller, id: Uuid) -> AppResult<grid_unit::Model> {
    require(caller, Permission::ReadReferenceData)?;
    found::<grid_unit::Entity>(&ctx.db, id, "grid unit").await
}

pub async fn list(
    ctx: &AppContext,
    caller: &Caller,
    filter: GridUnitFilter,
    page: PageRequest,
) -> AppResult<Page<grid_unit::Model>> {
    require(caller, Permission::ReadReferenceData)?;
    let mut select = grid_unit::Entity::find();
    if let Some(level) = filter.level {
        select = select.filter(grid_unit::Column::Level.eq(level));
    }
    if let Some(parent) = filter.parent {
        select = select.filter(grid_unit::Column::ParentId.eq(parent));
    }
    if let Some(code) = filter.code {
        select = select.filter(grid_unit::Column::Code.eq(code));
    }
    if let Some(under) = filter.under {
        let root: grid_unit::Model = referenced::<grid_unit::Entity>(&ctx.db, "under", under, "grid unit").await?;
        select = select.filter(grid_unit::Column::Path.starts_with(root.path));
    }
    Ok(repo::page::fetch(&ctx.db, select, grid_unit::Column::Id, |m| m.id, page).await?)
}

pub async fn children(
    ctx: &AppContext,
    caller: &Caller,
    id: Uuid,
    page: PageRequest,
) -> AppResult<Page<grid_unit::Model>> {
    require(caller, Permission::ReadReferenceData)?;
    found::<grid_unit::Entity>(&ctx.db, id, "grid unit").await?;
    let filter = GridUnitFilter { parent: Some(id), ..Default::default() };
    list(ctx, caller, filter, page).await
}

/// The deepest unit whose boundary holds the point.
pub async fn locate(ctx: &AppContext, caller: &Caller, lat: f64, lon: f64) -> AppResult<grid_unit::Model> {
    require(caller, Permission::ReadReferenceData)?;
    let point = Point::parse(lat, lon).map_err(|message| {
        let field = if message.starts_with("lat") { "lat" } else { "lon" };
        AppError::invalid(field, message)
    })?;
    let candidates = repo::grid_units::locate_candidates(&ctx.db, point).await?;
    candidates
        .into_iter()
        .find(|unit| unit.boundary.as_ref().and_then(|b| Boundary::parse(b).ok()).is_some_and(|b| b.contains(point)))
        .ok_or_else(|| {
            AppError::NotFound(format!("the point lat={lat}, lon={lon} lies outside every grid unit with a boundary"))
        })
}

pub async fn by_code(db: &impl sea_orm::ConnectionTrait, code: &str) -> AppResult<Option<grid_unit::Model>> {
    Ok(grid_unit::Entity::find().filter(grid_unit::Column::Code.eq(code)).one(db).await?)
}

fn check_level(child: UnitLevel, parent: UnitLevel) -> AppResult<()> {
    if may_be_child_of(child, parent) {
        Ok(())
    } else {
        Err(AppError::invalid(
            "parent_id",
            format!("a {} cannot sit directly under a {}", level_name(child), level_name(parent)),
        ))
    }
}

pub fn level_name(level: UnitLevel) -> &'static str {
    match level {
        UnitLevel::City => "city",
        UnitLevel::County => "county",
        UnitLevel::Township => "township",
        UnitLevel::Community => "community",
        UnitLevel::Grid => "grid",
    }
}

fn parse_boundary(errors: &mut FieldErrors, value: Option<&Value>) -> Option<Boundary> {
    let value = value?;
    match Boundary::parse(value) {
        Ok(boundary) => Some(boundary),
        Err(message) => {
            errors.add("boundary", message);
            None
        }
    }
}

fn set_boundary(row: &mut grid_unit::ActiveModel, value: Option<Value>, parsed: Option<Boundary>) {
    let bbox = parsed.map(|b| b.bounding_box());
    row.boundary = Set(value);
    row.min_lat = Set(bbox.map(|b| b.min_lat));
    row.max_lat = Set(bbox.map(|b| b.max_lat));
    row.min_lon = Set(bbox.map(|b| b.min_lon));
    row.max_lon = Set(bbox.map(|b| b.max_lon));
}
