//! Filing (接诉): checks, locating the grid, the idempotency key, auto-dispatch.

use super::*;
use chrono::Datelike;
use entities::{Priority, category, grid_unit, idempotency_key, ticket};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, Set,
    SqlErr,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::service::{referenced, require};
use crate::{
    context::AppContext,
    db::begin_write,
    domain::{
        access::{Caller, Permission},
        geo::{Boundary, Point},
        ticket::{Channel, TicketStatus, event},
        validate::{FieldErrors, Message},
    },
    error::{AppError, AppResult},
    repo::{self},
};

const MAX_ATTACHMENTS: usize = 10;
const MAX_ATTACHMENT_BYTES: u64 = 50 * 1024 * 1024;

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTicket {
    pub category_id: Uuid,
    /// Defaults to the category's priority.
    #[schema(value_type = Option<String>, example = "normal")]
    pub priority: Option<Priority>,
    pub title: String,
    pub description: String,
    /// Where the problem is; locates the grid when `grid_unit_id` is absent.
    pub location: Option<Location>,
    pub grid_unit_id: Option<Uuid>,
    pub address: Option<String>,
    /// The resident to call back (personal data: masked for roles that do not need it).
    pub resident: Option<Resident>,
    /// grid_app (default), hotline, web or open311.
    #[schema(value_type = Option<String>, example = "grid_app")]
    pub channel: Option<Channel>,
    /// Photos or documents: `{"upload_id"}` of a file sent to `POST /api/v1/uploads` before,
    /// or (older clients) a file's metadata only.
    #[serde(default)]
    pub attachments: Vec<FilingAttachment>,
}

/// An attachment of a filing: an upload, or the metadata-only form kept for older clients.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(untagged)]
pub enum FilingAttachment {
    Upload(UploadRef),
    Metadata(Attachment),
}

/// An upload to attach.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadRef {
    /// The id `POST /api/v1/uploads` answered.
    pub upload_id: Uuid,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Location {
    pub lat: f64,
    pub lon: f64,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resident {
    pub name: Option<String>,
    pub phone: Option<String>,
}

/// A photo's or document's metadata; the file itself is uploaded elsewhere.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    pub file_name: String,
    pub content_type: String,
    pub size: u64,
    /// Hex SHA-256 of the file.
    pub sha256: String,
}

// ---- filing ---------------------------------------------------------------------------------

/// What a channel adds to a filing beyond the ticket body, written in the filing's own
/// transaction (so a refused filing writes none of it).
#[derive(Debug, Default, Clone)]
pub struct ChannelExtras {
    /// Photos kept elsewhere (Open311 `media_url`): attachments that point outside.
    pub media_urls: Vec<String>,
    /// The channel's handle for the filing (an Open311 batch token), resolved later.
    pub token: Option<String>,
}

pub async fn file(
    ctx: &AppContext,
    caller: &Caller,
    input: NewTicket,
    idempotency_key: Option<String>,
) -> AppResult<Filed> {
    file_with(ctx, caller, input, idempotency_key, ChannelExtras::default()).await
}

/// [`file`], plus what a channel keeps with the ticket.
pub async fn file_with(
    ctx: &AppContext,
    caller: &Caller,
    input: NewTicket,
    idempotency_key: Option<String>,
    extras: ChannelExtras,
) -> AppResult<Filed> {
    require(caller, Permission::FileTicket)?;
    ctx.limits.check_filing(&ctx.db, caller.user_id, ctx.clock.now()).await?;
    let checked = check_new_ticket(&input, idempotency_key.as_deref())?;
    let request_hash =
        hex::encode(Sha256::digest(serde_json::to_vec(&input).map_err(|e| AppError::Internal(e.to_string()))?));

    match file_in_transaction(ctx, caller, &input, checked, idempotency_key.as_deref(), &request_hash, &extras).await {
        // Another request with the same key committed first (PostgreSQL lets both start):
        // answer with its ticket, exactly as a later retry would get.
        Err(FileError::KeyTaken) => match idempotency_key.as_deref() {
            Some(key) => replay(ctx, &ctx.db, caller, key, &request_hash)
                .await?
                .ok_or_else(|| AppError::Internal("idempotency key vanished".into())),
            None => Err(AppError::Internal("idempotency conflict without a key".into())),
        },
        Err(FileError::App(err)) => Err(err),
        Ok(filed) => Ok(filed),
    }
}

enum FileError {
    KeyTaken,
    App(AppError),
}

impl<E: Into<AppError>> From<E> for FileError {
    fn from(err: E) -> Self {
        Self::App(err.into())
    }
}

struct CheckedTicket {
    title: String,
    description: String,
    address: Option<String>,
    resident_name: Option<String>,
    resident_phone: Option<String>,
    point: Option<Point>,
    attachments: Vec<Attachment>,
    uploads: Vec<crate::service::attachments::ToAttach>,
}

/// Characters that display like a path separator.
fn is_slash_like(c: char) -> bool {
    matches!(c, '/' | '\\' | '\u{FF0F}' | '\u{FF3C}' | '\u{2215}' | '\u{2044}' | '\u{29F5}' | '\u{29F8}' | '\u{29F9}')
}

fn check_new_ticket(input: &NewTicket, idempotency_key: Option<&str>) -> AppResult<CheckedTicket> {
    let mut errors = FieldErrors::new();
    let title = errors.text("title", &input.title, 100);
    let description = long_text(&mut errors, "description", &input.description, 2000);
    let address = input.address.as_deref().map(|a| errors.text("address", a, 200));
    let resident_name =
        input.resident.as_ref().and_then(|r| r.name.as_deref()).map(|n| errors.text("resident.name", n, 50));
    let resident_phone = input.resident.as_ref().and_then(|r| r.phone.as_deref()).map(|p| {
        let phone = p.trim().to_owned();
        let digits = phone.chars().filter(char::is_ascii_digit).count();
        let plausible =
            phone.chars().all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | ' ')) && (5..=20).contains(&digits);
        if !plausible {
            errors.add(
                "resident.phone",
                Message::said("应为 5–20 位数字的电话号码", "must be a phone number of 5–20 digits"),
            );
        }
        phone
    });
    let point = match input.location {
        Some(Location { lat, lon }) => match Point::parse(lat, lon) {
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
        },
        None => None,
    };
    if input.location.is_none() && input.grid_unit_id.is_none() {
        errors.add("location", location_or_grid());
    }
    if input.attachments.len() > MAX_ATTACHMENTS {
        errors.add(
            "attachments",
            Message::said(format!("最多 {MAX_ATTACHMENTS} 个附件"), format!("at most {MAX_ATTACHMENTS} attachments")),
        );
    }
    let mut attachments = Vec::with_capacity(input.attachments.len());
    let mut uploads = Vec::new();
    for (i, attachment) in input.attachments.iter().enumerate() {
        let attachment = match attachment {
            FilingAttachment::Upload(UploadRef { upload_id }) => {
                let field = format!("attachments[{i}].upload_id");
                if uploads.iter().any(|u: &crate::service::attachments::ToAttach| u.upload_id == *upload_id) {
                    errors.add(&field, Message::said("同一文件附加了两次", "the same upload is attached twice"));
                }
                uploads.push(crate::service::attachments::ToAttach {
                    field,
                    upload_id: *upload_id,
                    kind: entities::upload::AttachmentKind::Filing,
                });
                continue;
            }
            FilingAttachment::Metadata(attachment) => attachment,
        };
        let field = format!("attachments[{i}].file_name");
        let name = errors.text(&field, &attachment.file_name, 200);
        // A plain name that shows what it is: never a path a client could be tricked into
        // writing elsewhere (slashes and their look-alikes), never text that displays as
        // something else (`photo\u{202E}gpj.exe` shows as photoexe.jpg) or shows nothing.
        let deceptive = attachment
            .file_name
            .chars()
            .any(|c| crate::domain::validate::is_invisible_or_directional(c) || is_slash_like(c));
        if deceptive || name == "." || name == ".." {
            errors.add(
                &field,
                Message::said(
                    "应为文件名，不能含“/”“\\”、“..”、形似斜杠或不可见的字符",
                    "must be a plain file name: no '/', '\\', '..', look-alike slashes or invisible characters",
                ),
            );
        }
        let content_type = errors.text(&format!("attachments[{i}].content_type"), &attachment.content_type, 100);
        attachments.push(Attachment { file_name: name, content_type, ..attachment.clone() });
        if attachment.size > MAX_ATTACHMENT_BYTES {
            errors.add(&format!("attachments[{i}].size"), Message::said("不能超过 50 MiB", "must be at most 50 MiB"));
        }
        if attachment.sha256.len() != 64 || !attachment.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
            errors.add(
                &format!("attachments[{i}].sha256"),
                Message::said("应为 64 位十六进制数字", "must be 64 hex digits"),
            );
        }
    }
    if input.channel == Some(Channel::Sensor) {
        errors.add(
            "channel",
            Message::said(
                "“sensor”渠道仅供感知设施告警自动立案使用",
                "the sensor channel is for tickets filed by sensor alarms, not through the API",
            ),
        );
    }
    if let Some(key) = idempotency_key
        && (key.is_empty() || key.len() > 128 || !key.chars().all(|c| c.is_ascii_graphic()))
    {
        errors.add(
            "Idempotency-Key",
            Message::said("应为 1–128 个可见 ASCII 字符", "must be 1–128 visible ASCII characters"),
        );
    }
    errors.into_result()?;
    Ok(CheckedTicket { title, description, address, resident_name, resident_phone, point, attachments, uploads })
}

async fn file_in_transaction(
    ctx: &AppContext,
    caller: &Caller,
    input: &NewTicket,
    checked: CheckedTicket,
    idempotency_key: Option<&str>,
    request_hash: &str,
    extras: &ChannelExtras,
) -> Result<Filed, FileError> {
    let txn = begin_write(&ctx.db).await?;
    if let Some(key) = idempotency_key
        && let Some(filed) = replay(ctx, &txn, caller, key, request_hash).await?
    {
        return Ok(filed);
    }
    let category: category::Model =
        referenced::<category::Entity>(&txn, "category_id", input.category_id, "category").await?;
    if !category.active {
        return Err(AppError::invalid("category_id", Message::said("该类别已停用", "this category is retired")).into());
    }
    let viewer = Viewer::of(&txn, caller).await?;
    let tolerance = ctx.settings.tickets.location_tolerance_m;
    let unit = match (input.grid_unit_id, checked.point) {
        (Some(unit_id), point) => {
            let unit = referenced::<grid_unit::Entity>(&txn, "grid_unit_id", unit_id, "grid unit").await?;
            if let Some(point) = point {
                check_point_in(&txn, &unit, point, tolerance).await?;
            }
            unit
        }
        (None, Some(point)) => locate_for(&txn, &viewer, point, tolerance).await?,
        (None, None) => return Err(AppError::invalid("location", location_or_grid()).into()),
    };
    if !viewer.in_home_subtree(&unit.path) {
        // The caller may file (the role check passed): the place is wrong, not the caller.
        let name = unit.name.clone();
        return Err(if input.grid_unit_id.is_some() {
            AppError::invalid(
                "grid_unit_id",
                Message::said(
                    format!("网格“{name}”不在您的辖区内；请选择您辖区内的网格"),
                    format!("the grid “{name}” is outside your jurisdiction; choose a grid of your own"),
                ),
            )
        } else {
            AppError::invalid(
                "location",
                Message::said(
                    format!("该位置属于“{name}”，不在您的辖区内；如在辖区边界附近，请同时提交 grid_unit_id 选择您的网格"),
                    format!(
                        "the point lies in “{name}”, outside your jurisdiction; near its border, also send grid_unit_id to choose your grid"
                    ),
                ),
            )
        }
        .into());
    }

    let now = ctx.clock.now();
    let id = Uuid::now_v7();
    if let Some(key) = idempotency_key {
        let claimed = idempotency_key::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(caller.user_id),
            key: Set(key.to_owned()),
            request_hash: Set(request_hash.to_owned()),
            ticket_id: Set(id),
            created_at: Set(now),
        }
        .insert(&txn)
        .await;
        match claimed {
            Ok(_) => {}
            Err(err) if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                return Err(FileError::KeyTaken);
            }
            Err(err) => return Err(err.into()),
        }
    }
    let filing = Filing {
        id,
        category: &category,
        unit: &unit,
        priority: input.priority.unwrap_or(category.default_priority),
        title: checked.title,
        description: checked.description,
        point: checked.point,
        address: checked.address,
        resident_name: checked.resident_name,
        resident_phone: checked.resident_phone,
        channel: input.channel.unwrap_or(Channel::GridApp),
        attachments: checked.attachments,
        filed_by: caller.user_id,
    };
    let ticket = record_filing(ctx, &txn, filing, now).await?;
    repo::open311::keep_channel_extras(&txn, id, &ticket.channel, &extras.media_urls, extras.token.as_deref(), now)
        .await?;
    crate::service::attachments::attach_in(&txn, caller, id, None, &checked.uploads, now).await?;
    let view = view_in(ctx, &txn, &viewer, ticket).await?;
    txn.commit().await?;
    Ok(Filed { view, replayed: false })
}

/// What a filing writes, once its filer's checks passed.
struct Filing<'a> {
    id: Uuid,
    category: &'a category::Model,
    unit: &'a grid_unit::Model,
    priority: Priority,
    title: String,
    description: String,
    point: Option<Point>,
    address: Option<String>,
    resident_name: Option<String>,
    resident_phone: Option<String>,
    channel: Channel,
    attachments: Vec<Attachment>,
    filed_by: Uuid,
}

/// The one filing flow for every channel: number, ticket row, `filed` event, and the
/// auto-dispatch the category asks for (routing and SLA clocks as for any ticket).
async fn record_filing(
    ctx: &AppContext,
    txn: &DatabaseTransaction,
    filing: Filing<'_>,
    now: chrono::DateTime<chrono::Utc>,
) -> AppResult<ticket::Model> {
    let Filing { id, category, unit, .. } = filing;
    let year = now.with_timezone(&ctx.calendar().offset()).year();
    let serial = repo::tickets::next_number(txn, year).await?;
    let number = format!("{}-{year}-{serial:06}", ctx.settings.tickets.number_prefix);
    let attachments = serde_json::to_value(&filing.attachments).map_err(|e| AppError::Internal(e.to_string()))?;
    let created = ticket::ActiveModel {
        id: Set(id),
        number: Set(number.clone()),
        category_id: Set(category.id),
        priority: Set(filing.priority),
        title: Set(filing.title),
        description: Set(filing.description),
        unit_id: Set(unit.id),
        lat: Set(filing.point.map(|p| p.lat)),
        lon: Set(filing.point.map(|p| p.lon)),
        address: Set(filing.address),
        resident_name: Set(filing.resident_name),
        resident_phone: Set(filing.resident_phone),
        channel: Set(filing.channel.as_str().to_owned()),
        attachments: Set(attachments),
        filed_by: Set(filing.filed_by),
        status: Set(TicketStatus::Filed.to_string()),
        version: Set(1),
        return_count: Set(0),
        needs_arbitration: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
        first_dispatched_at: Set(None),
        first_contact_at: Set(None),
        resolved_at: Set(None),
        rating_due_at: Set(None),
        closed_at: Set(None),
        township_id: Set(ancestor_at(txn, unit, entities::UnitLevel::Township).await?),
        county_id: Set(ancestor_at(txn, unit, entities::UnitLevel::County).await?),
        resolve_due_at: Set(None),
        resolve_working_seconds: Set(None),
    }
    .insert(txn)
    .await?;
    let payload = json!({"number": number, "category_id": category.id, "unit_id": unit.id, "priority": created.priority, "channel": created.channel});
    repo::tickets::record_event(txn, id, None, event::FILED, Some(filing.filed_by), now, payload).await?;

    let mut ticket = created;
    if category.auto_dispatch {
        let routing = crate::service::routing::resolve_for(txn, category.id, unit).await?;
        if let Some(primary) = routing.primary_department_id {
            let plan = DispatchPlan {
                primary,
                co_handlers: routing.co_handler_department_ids,
                rule_id: routing.rule_id,
                auto: true,
            };
            ticket = send_dispatches(ctx, txn, ticket, &plan, None, now).await?;
        }
    }
    Ok(ticket)
}

/// A ticket the system files on its own behalf (a sensor's alarm), inside the caller's
/// transaction: no person, so no role, jurisdiction or idempotency key — the caller decided
/// the unit and de-duplicates. Everything after that is the same flow as the API's.
pub(crate) struct SystemFiling<'a> {
    pub category: &'a category::Model,
    pub unit: &'a grid_unit::Model,
    pub title: String,
    pub description: String,
    pub point: Option<Point>,
    pub address: Option<String>,
    pub channel: Channel,
    /// The system actor's user row.
    pub filed_by: Uuid,
}

pub(crate) async fn file_for_system(
    ctx: &AppContext,
    txn: &DatabaseTransaction,
    filing: SystemFiling<'_>,
    now: chrono::DateTime<chrono::Utc>,
) -> AppResult<ticket::Model> {
    let title: String = filing.title.trim().chars().take(100).collect();
    let description: String = filing.description.trim().chars().take(2000).collect();
    let filing = Filing {
        id: Uuid::now_v7(),
        category: filing.category,
        unit: filing.unit,
        priority: filing.category.default_priority,
        title,
        description,
        point: filing.point,
        address: filing.address,
        resident_name: None,
        resident_phone: None,
        channel: filing.channel,
        attachments: Vec::new(),
        filed_by: filing.filed_by,
    };
    record_filing(ctx, txn, filing, now).await
}

/// The ticket an earlier request with this key filed, if any; a different body is a 422.
async fn replay(
    ctx: &AppContext,
    db: &impl ConnectionTrait,
    caller: &Caller,
    key: &str,
    request_hash: &str,
) -> AppResult<Option<Filed>> {
    let Some(earlier) = idempotency_key::Entity::find()
        .filter(idempotency_key::Column::UserId.eq(caller.user_id))
        .filter(idempotency_key::Column::Key.eq(key))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let ticket = crate::service::found::<ticket::Entity>(db, earlier.ticket_id, "ticket").await?;
    let viewer = Viewer::of(db, caller).await?;
    let view = view_in(ctx, db, &viewer, ticket).await?;
    // The same visibility as a read, and before the body is compared: a filer who moved away
    // learns nothing from replaying, not even whether a guessed body matches.
    if !view.in_scope {
        return Err(super::locked::ticket_not_found());
    }
    if earlier.request_hash != request_hash && earlier.request_hash != super::personal_data::ERASED_FINGERPRINT {
        return Err(AppError::invalid(
            "Idempotency-Key",
            Message::said(
                "该幂等键已用于另一个请求，请换一个新键",
                "this key was already used for a different request; use a new key",
            ),
        ));
    }
    Ok(Some(Filed { view, replayed: true }))
}

fn location_or_grid() -> Message {
    Message::said(
        "请提供定位（location）或选择网格（grid_unit_id）",
        "give the location or choose the grid (grid_unit_id)",
    )
}

/// The deepest unit whose boundary holds the point. When that unit lies outside the caller's
/// jurisdiction but the caller's own unit is within `tolerance_m` of the point, the caller's
/// unit: a grid worker on the street bounding their grid files in their grid.
async fn locate_for(
    db: &impl ConnectionTrait,
    viewer: &Viewer<'_>,
    point: Point,
    tolerance_m: f64,
) -> AppResult<grid_unit::Model> {
    let located = repo::grid_units::locate_candidates(db, point)
        .await?
        .into_iter()
        .find(|unit| boundary_of(unit).is_some_and(|b| b.contains(point)));
    if let Some(unit) = &located
        && viewer.in_home_subtree(&unit.path)
    {
        return Ok(unit.clone());
    }
    if let Some(home) = viewer.caller.unit_id {
        let home = grid_unit::Entity::find_by_id(home).one(db).await?;
        if let Some(home) = home
            && boundary_of(&home).is_some_and(|b| b.distance_m(point) <= tolerance_m)
        {
            return Ok(home);
        }
    }
    located.ok_or_else(|| {
        AppError::invalid(
            "location",
            Message::said(
                "该位置不在任何网格内；请选择网格（grid_unit_id）后提交，无定位时只提交 grid_unit_id 即可",
                "the point lies outside every grid; choose the grid (grid_unit_id) — without GPS, send grid_unit_id alone",
            ),
        )
    })
}

fn boundary_of(unit: &grid_unit::Model) -> Option<Boundary> {
    unit.boundary.as_ref().and_then(|b| Boundary::parse(b).ok())
}

/// Both a point and a grid were given: the grid (or, when it has no boundary, its nearest
/// ancestor with one) must hold the point, give or take `tolerance_m`.
async fn check_point_in(
    db: &impl ConnectionTrait,
    unit: &grid_unit::Model,
    point: Point,
    tolerance_m: f64,
) -> AppResult<()> {
    let bounded = if unit.boundary.is_some() {
        Some(unit.clone())
    } else {
        grid_unit::Entity::find()
            .filter(grid_unit::Column::Id.is_in(repo::grid_units::ancestry(&unit.path)))
            .filter(grid_unit::Column::Boundary.is_not_null())
            .order_by_desc(grid_unit::Column::Depth)
            .one(db)
            .await?
    };
    // Nowhere to check against: the grid is taken at its word.
    let Some((bounded, boundary)) = bounded.and_then(|u| boundary_of(&u).map(|b| (u, b))) else {
        return Ok(());
    };
    let distance = boundary.distance_m(point);
    if distance <= tolerance_m {
        return Ok(());
    }
    let (name, metres, allowed) = (bounded.name, distance.round() as i64, tolerance_m.round() as i64);
    let mut errors = FieldErrors::new();
    errors.add(
        "location",
        Message::said(
            format!("该位置距“{name}”约 {metres} 米，超出允许的 {allowed} 米；请核对定位，或改选该位置所在的网格"),
            format!(
                "the point lies about {metres} m outside “{name}”, more than the {allowed} m allowed; check the location or choose the grid it lies in"
            ),
        ),
    );
    errors.add(
        "grid_unit_id",
        Message::said(
            format!("所选网格“{name}”不包含该位置"),
            format!("the chosen grid “{name}” does not hold the location"),
        ),
    );
    Err(errors.into())
}

/// The unit's ancestor (or itself) at `level`, if any.
async fn ancestor_at(
    db: &impl ConnectionTrait,
    unit: &grid_unit::Model,
    level: entities::UnitLevel,
) -> AppResult<Option<Uuid>> {
    Ok(grid_unit::Entity::find()
        .filter(grid_unit::Column::Id.is_in(repo::grid_units::ancestry(&unit.path)))
        .filter(grid_unit::Column::Level.eq(level))
        .one(db)
        .await?
        .map(|u| u.id))
}
