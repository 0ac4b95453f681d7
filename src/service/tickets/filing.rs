//! Filing (接诉): checks, locating the grid, the idempotency key, auto-dispatch.

use super::*;
use chrono::Datelike;
use entities::{Priority, category, grid_unit, idempotency_key, ticket};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set, SqlErr};
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
        geo::Point,
        ticket::{Channel, TicketStatus, event},
        validate::FieldErrors,
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
    #[serde(default)]
    pub attachments: Vec<Attachment>,
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

pub async fn file(
    ctx: &AppContext,
    caller: &Caller,
    input: NewTicket,
    idempotency_key: Option<String>,
) -> AppResult<Filed> {
    require(caller, Permission::FileTicket)?;
    ctx.limits.check_filing(caller.user_id)?;
    let checked = check_new_ticket(&input, idempotency_key.as_deref())?;
    let request_hash =
        hex::encode(Sha256::digest(serde_json::to_vec(&input).map_err(|e| AppError::Internal(e.to_string()))?));

    match file_in_transaction(ctx, caller, &input, checked, idempotency_key.as_deref(), &request_hash).await {
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
}

/// Zero-width, formatting and direction-changing characters, line and paragraph separators.
fn is_invisible_or_directional(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{00AD}')
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
            errors.add("resident.phone", "must be a phone number of 5–20 digits");
        }
        phone
    });
    let point = match input.location {
        Some(Location { lat, lon }) => match Point::parse(lat, lon) {
            Ok(point) => Some(point),
            Err(message) => {
                errors.add("location", message);
                None
            }
        },
        None => None,
    };
    if input.location.is_none() && input.grid_unit_id.is_none() {
        errors.add("location", "give the location or the grid_unit_id");
    }
    if input.attachments.len() > MAX_ATTACHMENTS {
        errors.add("attachments", format!("at most {MAX_ATTACHMENTS} attachments"));
    }
    let mut attachments = Vec::with_capacity(input.attachments.len());
    for (i, attachment) in input.attachments.iter().enumerate() {
        let field = format!("attachments[{i}].file_name");
        let name = errors.text(&field, &attachment.file_name, 200);
        // A plain name that shows what it is: never a path a client could be tricked into
        // writing elsewhere (slashes and their look-alikes), never text that displays as
        // something else (`photo\u{202E}gpj.exe` shows as photoexe.jpg) or shows nothing.
        let deceptive = attachment.file_name.chars().any(|c| is_invisible_or_directional(c) || is_slash_like(c));
        if deceptive || name == "." || name == ".." {
            errors.add(
                &field,
                "must be a plain file name: no '/', '\\', '..', look-alike slashes or invisible characters",
            );
        }
        let content_type = errors.text(&format!("attachments[{i}].content_type"), &attachment.content_type, 100);
        attachments.push(Attachment { file_name: name, content_type, ..attachment.clone() });
        if attachment.size > MAX_ATTACHMENT_BYTES {
            errors.add(&format!("attachments[{i}].size"), "must be at most 50 MiB");
        }
        if attachment.sha256.len() != 64 || !attachment.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
            errors.add(&format!("attachments[{i}].sha256"), "must be 64 hex digits");
        }
    }
    if let Some(key) = idempotency_key
        && (key.is_empty() || key.len() > 128 || !key.chars().all(|c| c.is_ascii_graphic()))
    {
        errors.add("Idempotency-Key", "must be 1–128 visible ASCII characters");
    }
    errors.into_result()?;
    Ok(CheckedTicket { title, description, address, resident_name, resident_phone, point, attachments })
}

async fn file_in_transaction(
    ctx: &AppContext,
    caller: &Caller,
    input: &NewTicket,
    checked: CheckedTicket,
    idempotency_key: Option<&str>,
    request_hash: &str,
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
        return Err(AppError::invalid("category_id", "this category is retired").into());
    }
    let unit = match (input.grid_unit_id, checked.point) {
        (Some(unit_id), _) => referenced::<grid_unit::Entity>(&txn, "grid_unit_id", unit_id, "grid unit").await?,
        (None, Some(point)) => locate(&txn, point).await?,
        (None, None) => return Err(AppError::invalid("location", "give the location or the grid_unit_id").into()),
    };
    let viewer = Viewer::of(&txn, caller).await?;
    if !viewer.in_home_subtree(&unit.path) {
        return Err(AppError::Forbidden("you may file tickets only inside your own jurisdiction".into()).into());
    }

    let now = ctx.clock.now();
    let year = now.with_timezone(&ctx.calendar().offset()).year();
    let serial = repo::tickets::next_number(&txn, year).await?;
    let number = format!("{}-{year}-{serial:06}", ctx.settings.tickets.number_prefix);
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
    let attachments = serde_json::to_value(&checked.attachments).map_err(|e| AppError::Internal(e.to_string()))?;
    let created = ticket::ActiveModel {
        id: Set(id),
        number: Set(number.clone()),
        category_id: Set(category.id),
        priority: Set(input.priority.unwrap_or(category.default_priority)),
        title: Set(checked.title),
        description: Set(checked.description),
        unit_id: Set(unit.id),
        lat: Set(checked.point.map(|p| p.lat)),
        lon: Set(checked.point.map(|p| p.lon)),
        address: Set(checked.address),
        resident_name: Set(checked.resident_name),
        resident_phone: Set(checked.resident_phone),
        channel: Set(input.channel.unwrap_or(Channel::GridApp).as_str().to_owned()),
        attachments: Set(attachments),
        filed_by: Set(caller.user_id),
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
        township_id: Set(ancestor_at(&txn, &unit, entities::UnitLevel::Township).await?),
        county_id: Set(ancestor_at(&txn, &unit, entities::UnitLevel::County).await?),
        resolve_due_at: Set(None),
        resolve_working_seconds: Set(None),
    }
    .insert(&txn)
    .await?;
    let payload = json!({"number": number, "category_id": category.id, "unit_id": unit.id, "priority": created.priority, "channel": created.channel});
    repo::tickets::record_event(&txn, id, None, event::FILED, Some(caller.user_id), now, payload).await?;

    let mut ticket = created;
    if category.auto_dispatch {
        let routing = crate::service::routing::resolve_for(&txn, category.id, &unit).await?;
        if let Some(primary) = routing.primary_department_id {
            let plan = DispatchPlan {
                primary,
                co_handlers: routing.co_handler_department_ids,
                rule_id: routing.rule_id,
                auto: true,
            };
            ticket = send_dispatches(ctx, &txn, ticket, &plan, None, now).await?;
        }
    }
    let view = view_in(ctx, &txn, &viewer, ticket).await?;
    txn.commit().await?;
    Ok(Filed { view, replayed: false })
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
        return Err(AppError::not_found("ticket"));
    }
    if earlier.request_hash != request_hash && earlier.request_hash != super::personal_data::ERASED_FINGERPRINT {
        return Err(AppError::invalid(
            "Idempotency-Key",
            "this key was already used for a different request; use a new key",
        ));
    }
    Ok(Some(Filed { view, replayed: true }))
}

async fn locate(db: &impl ConnectionTrait, point: Point) -> AppResult<grid_unit::Model> {
    repo::grid_units::locate_candidates(db, point)
        .await?
        .into_iter()
        .find(|unit| {
            unit.boundary
                .as_ref()
                .and_then(|b| crate::domain::geo::Boundary::parse(b).ok())
                .is_some_and(|b| b.contains(point))
        })
        .ok_or_else(|| AppError::invalid("location", "the point lies outside every grid; give grid_unit_id"))
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
