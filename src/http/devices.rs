//! The device registry: `/api/v1/devices` (admins manage; everyone reads their jurisdiction's).

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use entities::device;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{
    dto::{List, page_request},
    extract::{PathId, Permitted, Query, may},
    grid_units::created,
    problem::Problem,
};
use crate::{
    context::AppContext,
    domain::access::Caller,
    error::AppResult,
    service::devices::{self, DeviceChanges, DeviceFilter, DeviceLocation, NewDevice, kinds_of},
};

/// A community sensor.
#[derive(Debug, Serialize, ToSchema)]
pub struct Device {
    pub id: Uuid,
    /// The id it publishes under: `{prefix}/sensors/{device_id}/alarm`.
    pub device_id: String,
    pub name: String,
    pub unit_id: Uuid,
    pub location: Option<DeviceLocation>,
    pub category_id: Uuid,
    pub kinds: Vec<String>,
    /// Like `"30m"`; `null` when silence is not watched.
    pub heartbeat_timeout: Option<String>,
    /// `false`: disabled, its messages are ignored.
    pub active: bool,
    /// The last message received from it.
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Set while a `device_offline` ticket stands for its current silence.
    pub offline_since: Option<DateTime<Utc>>,
    pub offline_ticket_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn duration_text(seconds: i64) -> String {
    match seconds {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

impl From<device::Model> for Device {
    fn from(m: device::Model) -> Self {
        let kinds = kinds_of(&m);
        Self {
            id: m.id,
            device_id: m.device_id,
            name: m.name,
            unit_id: m.unit_id,
            location: m.lat.zip(m.lon).map(|(lat, lon)| DeviceLocation { lat, lon }),
            category_id: m.category_id,
            kinds,
            heartbeat_timeout: m.heartbeat_timeout_seconds.map(duration_text),
            active: m.active,
            last_seen_at: m.last_seen_at,
            offline_since: m.offline_reported_at.and(m.last_seen_at.or(Some(m.created_at))),
            offline_ticket_id: m.offline_ticket_id,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeviceQuery {
    /// The id the device publishes under.
    device_id: Option<String>,
    unit_id: Option<Uuid>,
    active: Option<bool>,
    limit: Option<u64>,
    cursor: Option<String>,
}

/// Devices in the caller's jurisdiction.
///
/// Admins see every device; unit roles the devices in their unit's subtree.
#[utoipa::path(get, path = "/api/v1/devices", operation_id = "listDevices", tag = "devices", params(DeviceQuery),
    responses((status = 200, body = List<Device>), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn list(
    ctx: web::Data<AppContext>,
    caller: Caller,
    Query(q): Query<DeviceQuery>,
) -> AppResult<web::Json<List<Device>>> {
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let filter = DeviceFilter { device_id: q.device_id, unit_id: q.unit_id, active: q.active };
    let found = devices::list(&ctx, &caller, filter, page).await?;
    Ok(web::Json(List::from_page(found, Device::from)))
}

/// Register a device.
///
/// Its alarms are filed in `unit_id` under `category_id` (so routing, auto-dispatch and SLA
/// clocks follow the category). The `device_id` is unique (409).
#[utoipa::path(post, path = "/api/v1/devices", operation_id = "createDevice", tag = "devices", request_body = NewDevice,
    responses((status = 201, body = Device), (status = 409, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn create(
    ctx: web::Data<AppContext>,
    Permitted(caller, input, _): Permitted<may::ManageReferenceData, NewDevice>,
) -> AppResult<HttpResponse> {
    let device = devices::create(&ctx, &caller, input).await?;
    Ok(created(format!("/api/v1/devices/{}", device.id), Device::from(device)))
}

/// One device.
///
/// 404 outside the caller's jurisdiction.
#[utoipa::path(get, path = "/api/v1/devices/{id}", operation_id = "getDevice", params(("id" = uuid::Uuid, Path, description = "the id")), tag = "devices",
    responses((status = 200, body = Device), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get(ctx: web::Data<AppContext>, caller: Caller, PathId(id): PathId) -> AppResult<web::Json<Device>> {
    Ok(web::Json(devices::get(&ctx, &caller, id).await?.into()))
}

/// Change a device.
///
/// Send only the fields to change; `heartbeat_timeout: null` stops watching its silence,
/// `active: true` takes a disabled device back.
#[utoipa::path(patch, path = "/api/v1/devices/{id}", operation_id = "updateDevice", params(("id" = uuid::Uuid, Path, description = "the id")), tag = "devices", request_body = DeviceChanges,
    responses((status = 200, body = Device), (status = 404, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn update(
    ctx: web::Data<AppContext>,
    PathId(id): PathId,
    Permitted(caller, changes, _): Permitted<may::ManageReferenceData, DeviceChanges>,
) -> AppResult<web::Json<Device>> {
    Ok(web::Json(devices::update(&ctx, &caller, id, changes).await?.into()))
}

/// Disable a device.
///
/// Its messages are then ignored (counted in `/metrics`); the registration and its tickets stay.
#[utoipa::path(delete, path = "/api/v1/devices/{id}", operation_id = "disableDevice", params(("id" = uuid::Uuid, Path, description = "the id")), tag = "devices",
    responses((status = 204), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn disable(ctx: web::Data<AppContext>, caller: Caller, PathId(id): PathId) -> AppResult<HttpResponse> {
    devices::disable(&ctx, &caller, id).await?;
    Ok(HttpResponse::NoContent().finish())
}
