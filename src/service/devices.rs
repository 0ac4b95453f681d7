//! The device registry (社区感知设施): which sensor publishes under which id, where it stands,
//! which grid and category its alarms are filed in, what it reports and how often it must be
//! heard from. Admins manage it; everyone reads the devices of their own jurisdiction.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entities::{category, device, grid_unit};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set, sea_query::Query};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{ensure_unique, found, nullable, referenced, require, tickets::Viewer};
use crate::{
    context::AppContext,
    db::begin_write,
    domain::{
        access::{Caller, Permission},
        duration::parse_duration,
        geo::Point,
        sensor::{OFFLINE_KIND, is_device_id, is_kind},
        validate::{FieldErrors, Message},
    },
    error::{AppError, AppResult},
    repo::{
        page::{self, Page, PageRequest},
        tickets::Scope,
    },
};

const MIN_HEARTBEAT: Duration = Duration::from_secs(60);
const MAX_KINDS: usize = 16;

#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceLocation {
    pub lat: f64,
    pub lon: f64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDevice {
    /// The id the device publishes under (`SMOKE-001`): letters, digits, `-`, `_`, `.`.
    pub device_id: String,
    pub name: String,
    /// The grid its alarms are filed in.
    pub unit_id: Uuid,
    pub location: Option<DeviceLocation>,
    /// The category its tickets are filed under (routing, auto-dispatch and SLA follow it).
    pub category_id: Uuid,
    /// The alarm kinds it reports, e.g. `["smoke"]`.
    pub kinds: Vec<String>,
    /// Silence longer than this files a `device_offline` ticket, e.g. `"30m"`; absent: never.
    #[schema(example = "30m")]
    pub heartbeat_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceChanges {
    pub name: Option<String>,
    pub unit_id: Option<Uuid>,
    #[serde(default, deserialize_with = "nullable")]
    pub location: Option<Option<DeviceLocation>>,
    pub category_id: Option<Uuid>,
    pub kinds: Option<Vec<String>>,
    /// `null` turns the heartbeat check off.
    #[serde(default, deserialize_with = "nullable")]
    pub heartbeat_timeout: Option<Option<String>>,
    /// `false` ignores its messages (counted in `/metrics`, never filed); `true` takes it back.
    pub active: Option<bool>,
}

#[derive(Debug, Default, Clone)]
pub struct DeviceFilter {
    pub device_id: Option<String>,
    pub unit_id: Option<Uuid>,
    pub active: Option<bool>,
}

/// The stored kinds of a device.
pub fn kinds_of(device: &device::Model) -> Vec<String> {
    serde_json::from_value(device.kinds.clone()).unwrap_or_default()
}

fn check_kinds(errors: &mut FieldErrors, kinds: &[String]) -> Vec<String> {
    let mut checked: Vec<String> = Vec::new();
    if kinds.is_empty() || kinds.len() > MAX_KINDS {
        errors.add(
            "kinds",
            Message::said(format!("应列出 1–{MAX_KINDS} 种告警类型"), format!("must list 1–{MAX_KINDS} alarm kinds")),
        );
    }
    for (i, kind) in kinds.iter().enumerate() {
        let kind = kind.trim();
        if !is_kind(kind) || kind == OFFLINE_KIND {
            errors.add(
                &format!("kinds[{i}]"),
                Message::said(
                    "应为 1–32 个小写字母、数字或下划线（device_offline 为系统保留）",
                    "must be 1–32 of a-z, 0-9 and _ (device_offline is reserved)",
                ),
            );
        } else if !checked.iter().any(|k| k == kind) {
            checked.push(kind.to_owned());
        }
    }
    checked
}

fn check_heartbeat(errors: &mut FieldErrors, text: &str) -> Option<i64> {
    match parse_duration(text) {
        Ok(d) if d >= MIN_HEARTBEAT => i64::try_from(d.as_secs()).ok(),
        _ => {
            errors.add(
                "heartbeat_timeout",
                Message::said(
                    "应为 1m 到 366d 之间的时长，如 \"30m\"",
                    "must be a duration from 1m to 366d, like \"30m\"",
                ),
            );
            None
        }
    }
}

fn check_location(errors: &mut FieldErrors, location: Option<DeviceLocation>) -> Option<Point> {
    let location = location?;
    match Point::parse(location.lat, location.lon) {
        Ok(point) => Some(point),
        Err(_) => {
            errors.add(
                "location",
                Message::said(
                    "纬度（lat）应在 -90 到 90 之间，经度（lon）应在 -180 到 180 之间",
                    "lat must be between -90 and 90, lon between -180 and 180",
                ),
            );
            None
        }
    }
}

async fn active_category(db: &impl ConnectionTrait, id: Uuid) -> AppResult<category::Model> {
    let category = referenced::<category::Entity>(db, "category_id", id, "category").await?;
    if !category.active {
        return Err(AppError::invalid("category_id", Message::said("该类别已停用", "this category is retired")));
    }
    Ok(category)
}

/// When silence becomes an alarm, counted from `since`.
pub fn silent_after(since: DateTime<Utc>, heartbeat_timeout_seconds: Option<i64>) -> Option<DateTime<Utc>> {
    heartbeat_timeout_seconds.map(|s| since + chrono::Duration::seconds(s))
}

pub async fn create(ctx: &AppContext, caller: &Caller, input: NewDevice) -> AppResult<device::Model> {
    require(caller, Permission::ManageReferenceData)?;
    let mut errors = FieldErrors::new();
    let device_id = input.device_id.trim().to_owned();
    if !is_device_id(&device_id) {
        errors.add(
            "device_id",
            Message::said(
                "应为 1–64 个字母、数字或 - _ .（用作 MQTT 主题的一级）",
                "must be 1–64 letters, digits, '-', '_' or '.' (it is a level of the MQTT topic)",
            ),
        );
    }
    let name = errors.text("name", &input.name, 100);
    let kinds = check_kinds(&mut errors, &input.kinds);
    let heartbeat = input.heartbeat_timeout.as_deref().and_then(|t| check_heartbeat(&mut errors, t));
    let point = check_location(&mut errors, input.location);
    errors.into_result()?;

    let txn = begin_write(&ctx.db).await?;
    a_grid(&txn, input.unit_id).await?;
    active_category(&txn, input.category_id).await?;
    ensure_unique::<device::Entity>(&txn, device::Column::DeviceId, &device_id, None, |m| m.id, "a device with id")
        .await?;
    let now = ctx.clock.now();
    let created = device::ActiveModel {
        id: Set(Uuid::now_v7()),
        device_id: Set(device_id),
        name: Set(name),
        unit_id: Set(input.unit_id),
        lat: Set(point.map(|p| p.lat)),
        lon: Set(point.map(|p| p.lon)),
        category_id: Set(input.category_id),
        kinds: Set(serde_json::json!(kinds)),
        heartbeat_timeout_seconds: Set(heartbeat),
        active: Set(true),
        last_seen_at: Set(None),
        silent_after: Set(silent_after(now, heartbeat)),
        offline_reported_at: Set(None),
        offline_ticket_id: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(created)
}

/// A device sits in a grid (网格): its alarms are filed there and routed from there, so a
/// community or a township would file tickets no one is dispatched to.
async fn a_grid(db: &impl sea_orm::ConnectionTrait, unit_id: Uuid) -> AppResult<grid_unit::Model> {
    let unit = referenced::<grid_unit::Entity>(db, "unit_id", unit_id, "grid unit").await?;
    if unit.level != entities::UnitLevel::Grid {
        return Err(AppError::invalid(
            "unit_id",
            Message::said(format!("“{}”不是网格，设备须归属网格", unit.name), format!("{} is not a grid", unit.name)),
        ));
    }
    Ok(unit)
}

pub async fn update(ctx: &AppContext, caller: &Caller, id: Uuid, changes: DeviceChanges) -> AppResult<device::Model> {
    require(caller, Permission::ManageReferenceData)?;
    let mut errors = FieldErrors::new();
    let name = changes.name.as_deref().map(|n| errors.text("name", n, 100));
    let kinds = changes.kinds.as_deref().map(|k| check_kinds(&mut errors, k));
    let heartbeat =
        changes.heartbeat_timeout.as_ref().map(|t| t.as_deref().and_then(|t| check_heartbeat(&mut errors, t)));
    let location = changes.location.map(|l| check_location(&mut errors, l));
    errors.into_result()?;

    let txn = begin_write(&ctx.db).await?;
    let existing = found::<device::Entity>(&txn, id, "device").await?;
    let now = ctx.clock.now();
    let mut row: device::ActiveModel = existing.clone().into();
    if let Some(name) = name {
        row.name = Set(name);
    }
    if let Some(unit_id) = changes.unit_id {
        a_grid(&txn, unit_id).await?;
        row.unit_id = Set(unit_id);
    }
    if let Some(category_id) = changes.category_id {
        active_category(&txn, category_id).await?;
        row.category_id = Set(category_id);
    }
    if let Some(point) = location {
        row.lat = Set(point.map(|p| p.lat));
        row.lon = Set(point.map(|p| p.lon));
    }
    if let Some(kinds) = kinds {
        row.kinds = Set(serde_json::json!(kinds));
    }
    if let Some(heartbeat) = heartbeat {
        row.heartbeat_timeout_seconds = Set(heartbeat);
        row.silent_after = Set(silent_after(existing.last_seen_at.unwrap_or(now).max(existing.created_at), heartbeat));
    }
    if let Some(active) = changes.active {
        if active && !existing.active {
            // Back in service: its silence counts from now, not from before it was switched off.
            row.silent_after = Set(silent_after(now, heartbeat.unwrap_or(existing.heartbeat_timeout_seconds)));
        }
        row.active = Set(active);
    }
    row.updated_at = Set(now);
    let updated = row.update(&txn).await?;
    txn.commit().await?;
    Ok(updated)
}

/// Switches a device off (its messages are ignored and counted); the row and its history stay.
pub async fn disable(ctx: &AppContext, caller: &Caller, id: Uuid) -> AppResult<()> {
    update(ctx, caller, id, DeviceChanges { active: Some(false), ..Default::default() }).await.map(|_| ())
}

/// The device, when it lies in the caller's jurisdiction (404 otherwise, as for tickets).
pub async fn get(ctx: &AppContext, caller: &Caller, id: Uuid) -> AppResult<device::Model> {
    require(caller, Permission::ReadReferenceData)?;
    let viewer = Viewer::of(&ctx.db, caller).await?;
    device::Entity::find_by_id(id)
        .filter(in_scope(&viewer.scope()))
        .one(&ctx.db)
        .await?
        .ok_or_else(|| AppError::not_found("device"))
}

pub async fn list(
    ctx: &AppContext,
    caller: &Caller,
    filter: DeviceFilter,
    request: PageRequest,
) -> AppResult<Page<device::Model>> {
    require(caller, Permission::ReadReferenceData)?;
    let viewer = Viewer::of(&ctx.db, caller).await?;
    let mut select = device::Entity::find().filter(in_scope(&viewer.scope()));
    if let Some(device_id) = filter.device_id {
        select = select.filter(device::Column::DeviceId.eq(device_id));
    }
    if let Some(unit_id) = filter.unit_id {
        select = select.filter(device::Column::UnitId.eq(unit_id));
    }
    if let Some(active) = filter.active {
        select = select.filter(device::Column::Active.eq(active));
    }
    Ok(page::fetch(&ctx.db, select, device::Column::Id, |m| m.id, request).await?)
}

/// Devices in the caller's jurisdiction: the same home-unit subtree the ticket scope uses.
/// Department staff have no unit jurisdiction and see none.
fn in_scope(scope: &Scope) -> sea_orm::Condition {
    let subtree = |path: &str| {
        device::Column::UnitId.in_subquery(
            Query::select()
                .column(grid_unit::Column::Id)
                .from(grid_unit::Entity)
                .and_where(grid_unit::Column::Path.starts_with(path))
                .to_owned(),
        )
    };
    match scope {
        Scope::Everything => sea_orm::Condition::all(),
        Scope::UnitPath(path) | Scope::FiledByOrUnitPath { path, .. } => sea_orm::Condition::all().add(subtree(path)),
        Scope::Department(_) | Scope::Nothing => sea_orm::Condition::all().add(sea_orm::sea_query::Expr::cust("1 = 0")),
    }
}

pub async fn by_device_id(db: &impl ConnectionTrait, device_id: &str) -> AppResult<Option<device::Model>> {
    Ok(device::Entity::find().filter(device::Column::DeviceId.eq(device_id)).one(db).await?)
}
