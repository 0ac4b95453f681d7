//! Open311 GeoReport v2 (open311.org): the city's services (our categories), filing a request
//! through the same filing service as `/api/v1/tickets` (channel `open311`, so routing,
//! auto-dispatch, SLA clocks, events and outbox are the same), and the public view of every
//! ticket of the jurisdiction — without the resident's name, phone or e-mail, masked or not.

use std::{collections::HashMap, net::IpAddr};

use chrono::{DateTime, Duration, FixedOffset, Utc};
use entities::{UnitLevel, category, department, grid_unit, ticket, ticket_event, ticket_merge};
use rand::RngCore;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;
use uuid::Uuid;

use super::tickets::{self, ChannelExtras, Location, NewTicket, Resident};
use crate::{
    context::AppContext,
    domain::{
        geo::{Boundary, Point},
        ticket::{Channel, TicketStatus, event, holds_responsibility},
        validate::FieldErrors,
    },
    error::{AppError, AppResult, Refusal},
    repo::{self, tickets::Scope},
};

/// At most this many requests answer one search (GeoReport's usual cap).
pub const MAX_RESULTS: u64 = 1000;
/// The search window when the client names none.
pub const DEFAULT_WINDOW_DAYS: i64 = 90;

/// The two statuses GeoReport knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open311Status {
    Open,
    Closed,
}

impl Open311Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "open" => Some(Self::Open),
            "closed" => Some(Self::Closed),
            _ => None,
        }
    }
}

/// The one place our lifecycle maps to GeoReport's: a ticket that has ended is `closed`;
/// everything else is `open` — `resolved` too, while the resident may still rate it and a
/// 差评 reopens it. A status added later (a `merged` duplicate, say) must be placed here: the
/// match has no catch-all, so the compiler asks.
pub fn open311_status(status: TicketStatus) -> Open311Status {
    match status {
        TicketStatus::Closed | TicketStatus::Cancelled | TicketStatus::Merged => Open311Status::Closed,
        TicketStatus::Filed | TicketStatus::Dispatched | TicketStatus::InProgress | TicketStatus::Resolved => {
            Open311Status::Open
        }
    }
}

/// The stored statuses that read as `closed`.
fn closed_statuses() -> Vec<String> {
    TicketStatus::ALL
        .into_iter()
        .filter(|s| open311_status(*s) == Open311Status::Closed)
        .map(|s| s.to_string())
        .collect()
}

fn not_found(zh: String, en: String) -> AppError {
    AppError::refused(Refusal::NotFound, zh, en)
}

fn bad_request(zh: impl Into<String>, en: impl Into<String>) -> AppError {
    AppError::refused(Refusal::BadRequest, zh.into(), en.into())
}

/// The unit Open311 serves (`open311.jurisdiction_id`). A `jurisdiction_id` naming another is
/// 404; absent, this one is meant.
pub async fn jurisdiction(ctx: &AppContext, requested: Option<&str>) -> AppResult<grid_unit::Model> {
    let code = ctx.settings.open311.jurisdiction_id.as_str();
    if let Some(requested) = requested.map(str::trim).filter(|r| !r.is_empty())
        && requested != code
    {
        return Err(not_found(
            format!("未知的 jurisdiction_id“{requested}”；本服务的辖区为 {code}"),
            format!("unknown jurisdiction_id `{requested}`; this endpoint serves {code}"),
        ));
    }
    super::grid_units::by_code(&ctx.db, code).await?.ok_or_else(|| {
        not_found(format!("辖区 {code} 尚未建立"), format!("the jurisdiction {code} has not been set up"))
    })
}

// ---- services -------------------------------------------------------------------------------

/// A service: one of our categories.
#[derive(Debug, Clone, Serialize)]
pub struct Service {
    pub service_code: String,
    pub service_name: String,
    pub description: String,
    /// Whether `services/{code}` defines extra attributes; no category defines any yet.
    pub metadata: bool,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub keywords: String,
    pub group: String,
}

fn service_of(category: &category::Model) -> Service {
    Service {
        service_code: category.code.clone(),
        service_name: category.name.clone(),
        description: category.name.clone(),
        metadata: false,
        kind: "realtime",
        keywords: String::new(),
        group: String::new(),
    }
}

pub async fn services(ctx: &AppContext) -> AppResult<Vec<Service>> {
    let rows = category::Entity::find()
        .filter(category::Column::Active.eq(true))
        .order_by_asc(category::Column::Code)
        .all(&ctx.db)
        .await?;
    Ok(rows.iter().map(service_of).collect())
}

/// `services/{code}`: the attributes a service asks for (none: categories define no extra
/// attributes yet).
#[derive(Debug, Clone, Serialize)]
pub struct ServiceDefinition {
    pub service_code: String,
    pub attributes: Vec<ServiceAttribute>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceAttribute {
    pub variable: bool,
    pub code: String,
    pub datatype: String,
    pub required: bool,
    pub datatype_description: String,
    pub order: u32,
    pub description: String,
}

async fn active_category(ctx: &AppContext, code: &str) -> AppResult<Option<category::Model>> {
    Ok(category::Entity::find()
        .filter(category::Column::Code.eq(code.trim()))
        .filter(category::Column::Active.eq(true))
        .one(&ctx.db)
        .await?)
}

pub async fn service_definition(ctx: &AppContext, code: &str) -> AppResult<ServiceDefinition> {
    let category = active_category(ctx, code).await?.ok_or_else(|| {
        not_found(format!("没有代码为“{code}”的服务"), format!("no service with service_code `{code}`"))
    })?;
    Ok(ServiceDefinition { service_code: category.code, attributes: Vec::new() })
}

// ---- filing ---------------------------------------------------------------------------------

/// A POST requests form, as sent.
#[derive(Debug, Default, Clone)]
pub struct NewRequest {
    pub jurisdiction_id: Option<String>,
    pub api_key: Option<String>,
    pub service_code: Option<String>,
    pub lat: Option<String>,
    pub long: Option<String>,
    pub address_string: Option<String>,
    pub description: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub media_url: Option<String>,
    pub account_id: Option<String>,
    /// `attribute[code]` values. No category defines attributes yet, so they are not kept.
    pub attributes: Vec<(String, String)>,
}

/// What a POST answers: the id, or in batch mode a token.
#[derive(Debug, Clone, Serialize)]
pub struct Created {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    pub service_notice: String,
    pub account_id: Option<String>,
}

const MAX_MEDIA_URL: usize = 2000;

pub async fn create(ctx: &AppContext, input: NewRequest, ip: Option<IpAddr>) -> AppResult<Created> {
    let root = jurisdiction(ctx, input.jurisdiction_id.as_deref()).await?;
    let holder = super::api_keys::authenticate(ctx, input.api_key.as_deref(), ip).await?;

    let code = input.service_code.as_deref().map(str::trim).filter(|c| !c.is_empty()).ok_or_else(|| {
        bad_request(
            "缺少 service_code：请从 services 列表中选择服务",
            "service_code is required: pick one from services",
        )
    })?;
    let category = active_category(ctx, code).await?.ok_or_else(|| {
        bad_request(
            format!("未知的 service_code“{code}”：请从 services 列表中选择服务"),
            format!("unknown service_code `{code}`: pick one from services"),
        )
    })?;
    let point = point_of(&input)?;
    let grid = grid_at(ctx, &root, point).await?;
    let media_urls = match input.media_url.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
        Some(url) => vec![checked_media_url(url)?],
        None => Vec::new(),
    };

    let description = input
        .description
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map_or_else(|| category.name.clone(), str::to_owned);
    let first_line = description.lines().next().unwrap_or_default().trim();
    let title = match first_line.chars().count() {
        0 => category.name.clone(),
        n if n > 30 => format!("{}…", first_line.chars().take(30).collect::<String>()),
        _ => first_line.to_owned(),
    };
    let name = resident_name(input.first_name.as_deref(), input.last_name.as_deref());
    let phone = input.phone.as_deref().map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned);
    let resident = (name.is_some() || phone.is_some()).then_some(Resident { name, phone });
    let ticket = NewTicket {
        category_id: category.id,
        priority: None,
        title,
        description,
        location: Some(Location { lat: point.lat, lon: point.lon }),
        grid_unit_id: Some(grid.id),
        address: input.address_string.as_deref().map(str::trim).filter(|a| !a.is_empty()).map(str::to_owned),
        resident,
        channel: Some(Channel::Open311),
        attachments: Vec::new(),
    };
    let batch = ctx.settings.open311.batch;
    let token = batch.then(new_token);
    let extras = ChannelExtras { media_urls, token: token.clone() };
    let filed = tickets::file_with(ctx, &holder.caller, ticket, None, extras).await.map_err(in_open311_words)?;
    // The ticket is filed: a failure to note the key's use must not make the client retry.
    if let Err(err) = super::api_keys::mark_used(ctx, holder.key_id).await {
        tracing::warn!(error = %err.chain(), "could not record the API key's last use");
    }
    let number = filed.view.ticket.number.clone();
    Ok(Created {
        service_request_id: (!batch).then(|| number.clone()),
        token,
        service_notice: format!("已受理，工单编号 {number}，将按接诉即办时限办理"),
        account_id: input.account_id.map(|a| a.trim().to_owned()).filter(|a| !a.is_empty()),
    })
}

fn point_of(input: &NewRequest) -> AppResult<Point> {
    let given = |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
    let (lat, long) = match (given(&input.lat), given(&input.long)) {
        (Some(lat), Some(long)) => (lat, long),
        (None, None) if given(&input.address_string).is_some() => {
            return Err(bad_request(
                "请提供 lat 和 long：本服务离线运行，没有地理编码，无法仅凭 address_string 定位",
                "lat and long are required: this service has no geocoder, so address_string alone cannot be located",
            ));
        }
        _ => {
            return Err(bad_request("lat 和 long 均为必填", "lat and long are both required"));
        }
    };
    let (Ok(lat), Ok(lon)) = (lat.parse::<f64>(), long.parse::<f64>()) else {
        return Err(bad_request("lat 和 long 应为十进制度数", "lat and long must be decimal degrees"));
    };
    Point::parse(lat, lon).map_err(|_| {
        bad_request(
            "lat 应在 -90 到 90 之间，long 应在 -180 到 180 之间",
            "lat must be between -90 and 90, long between -180 and 180",
        )
    })
}

/// The grid of the jurisdiction whose boundary holds the point; 400 outside every grid.
async fn grid_at(ctx: &AppContext, root: &grid_unit::Model, point: Point) -> AppResult<grid_unit::Model> {
    repo::grid_units::locate_candidates(&ctx.db, point)
        .await?
        .into_iter()
        .filter(|unit| unit.level == UnitLevel::Grid && unit.path.starts_with(&root.path))
        .find(|unit| unit.boundary.as_ref().and_then(|b| Boundary::parse(b).ok()).is_some_and(|b| b.contains(point)))
        .ok_or_else(|| {
            bad_request(
                format!("该位置（lat {}, long {}）不在{}的任何网格内", point.lat, point.lon, root.name),
                format!("the point (lat {}, long {}) lies outside every grid of {}", point.lat, point.lon, root.name),
            )
        })
}

fn checked_media_url(url: &str) -> AppResult<String> {
    let lower = url.to_ascii_lowercase();
    let scheme_ok = lower.starts_with("http://") || lower.starts_with("https://");
    let plain = !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if !scheme_ok || !plain || url.chars().count() > MAX_MEDIA_URL || url.len() <= "https://".len() {
        return Err(bad_request(
            format!("media_url 应为 http(s) 网址，最长 {MAX_MEDIA_URL} 个字符"),
            format!("media_url must be an http(s) URL of at most {MAX_MEDIA_URL} characters"),
        ));
    }
    Ok(url.to_owned())
}

/// GeoReport splits the name; Chinese names are written family name first.
fn resident_name(first: Option<&str>, last: Option<&str>) -> Option<String> {
    let first = first.map(str::trim).filter(|s| !s.is_empty());
    let last = last.map(str::trim).filter(|s| !s.is_empty());
    match (first, last) {
        (None, None) => None,
        (Some(one), None) | (None, Some(one)) => Some(one.to_owned()),
        (Some(first), Some(last)) if first.is_ascii() && last.is_ascii() => Some(format!("{first} {last}")),
        (Some(first), Some(last)) => Some(format!("{last}{first}")),
    }
}

/// Our field names in a refusal, said as the Open311 form names them; a refusal of the form
/// is a 400 in GeoReport.
fn in_open311_words(err: AppError) -> AppError {
    let AppError::Validation(fields) = err else { return err };
    let mut renamed = FieldErrors::new();
    for (field, message) in fields.0 {
        let name = match field.as_str() {
            "title" | "description" => "description",
            "address" => "address_string",
            "resident.name" => "first_name/last_name",
            "resident.phone" => "phone",
            "location" | "grid_unit_id" => "lat/long",
            other => other,
        };
        renamed.add(name, message);
    }
    AppError::Validation(renamed)
}

fn new_token() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

// ---- reading --------------------------------------------------------------------------------

/// A request as GeoReport shows it: no personal data.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceRequest {
    pub service_request_id: String,
    pub status: &'static str,
    pub status_notes: Option<String>,
    pub service_name: String,
    pub service_code: String,
    pub description: String,
    pub agency_responsible: Option<String>,
    pub service_notice: Option<String>,
    pub requested_datetime: String,
    pub updated_datetime: String,
    pub expected_datetime: Option<String>,
    pub address: Option<String>,
    pub address_id: Option<String>,
    pub lat: Option<f64>,
    pub long: Option<f64>,
    pub media_url: Option<String>,
}

#[derive(Debug, Default, Clone)]
pub struct RequestFilter {
    /// Ticket numbers; when given, the other filters are ignored (as GeoReport says).
    pub ids: Vec<String>,
    pub service_codes: Vec<String>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub status: Option<Open311Status>,
}

/// Every ticket of the jurisdiction that matches, whatever channel it came in on; newest first,
/// at most [`MAX_RESULTS`].
pub async fn search(
    ctx: &AppContext,
    root: &grid_unit::Model,
    filter: RequestFilter,
) -> AppResult<Vec<ServiceRequest>> {
    let mut select = ticket::Entity::find()
        .filter(repo::tickets::scope_condition(&Scope::UnitPath(root.path.clone())))
        .order_by_desc(ticket::Column::CreatedAt)
        .order_by_desc(ticket::Column::Id)
        .limit(MAX_RESULTS);
    if filter.ids.is_empty() {
        let (start, end) = window(ctx.clock.now(), filter.start, filter.end);
        select = select.filter(ticket::Column::CreatedAt.gte(start)).filter(ticket::Column::CreatedAt.lte(end));
        if !filter.service_codes.is_empty() {
            let categories: Vec<Uuid> = category::Entity::find()
                .filter(category::Column::Code.is_in(filter.service_codes.iter().cloned()))
                .all(&ctx.db)
                .await?
                .into_iter()
                .map(|c| c.id)
                .collect();
            select = select.filter(ticket::Column::CategoryId.is_in(categories));
        }
        match filter.status {
            Some(Open311Status::Closed) => select = select.filter(ticket::Column::Status.is_in(closed_statuses())),
            Some(Open311Status::Open) => select = select.filter(ticket::Column::Status.is_not_in(closed_statuses())),
            None => {}
        }
    } else {
        select = select.filter(ticket::Column::Number.is_in(filter.ids.iter().cloned()));
    }
    let rows = select.all(&ctx.db).await?;
    public_views(ctx, rows).await
}

/// The search window: the client's bounds; without an end, up to now; without a start, the
/// [`DEFAULT_WINDOW_DAYS`] days before the end.
fn window(
    now: DateTime<Utc>,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let span = Duration::days(DEFAULT_WINDOW_DAYS);
    match (start, end) {
        (Some(start), Some(end)) => (start, end),
        (Some(start), None) => (start, now),
        (None, Some(end)) => (end - span, end),
        (None, None) => (now - span, now),
    }
}

/// One request by its number; 404 when it does not exist or lies outside the jurisdiction.
pub async fn one(ctx: &AppContext, root: &grid_unit::Model, number: &str) -> AppResult<ServiceRequest> {
    let filter = RequestFilter { ids: vec![number.trim().to_owned()], ..Default::default() };
    search(ctx, root, filter)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| not_found(format!("没有编号为“{number}”的诉求"), format!("no service request `{number}`")))
}

/// `tokens/{token}`: the request a batch-mode POST filed.
pub async fn resolve_token(ctx: &AppContext, root: &grid_unit::Model, token: &str) -> AppResult<(String, String)> {
    let missing = || not_found(format!("没有令牌“{token}”"), format!("no token `{token}`"));
    let row = repo::open311::token(&ctx.db, token.trim()).await?.ok_or_else(missing)?;
    let ticket = ticket::Entity::find_by_id(row.ticket_id)
        .filter(repo::tickets::scope_condition(&Scope::UnitPath(root.path.clone())))
        .one(&ctx.db)
        .await?
        .ok_or_else(missing)?;
    Ok((row.token, ticket.number))
}

async fn public_views(ctx: &AppContext, rows: Vec<ticket::Model>) -> AppResult<Vec<ServiceRequest>> {
    let ids: Vec<Uuid> = rows.iter().map(|t| t.id).collect();
    let category_ids: Vec<Uuid> = rows.iter().map(|t| t.category_id).collect();
    let categories: HashMap<Uuid, category::Model> = category::Entity::find()
        .filter(category::Column::Id.is_in(category_ids))
        .all(&ctx.db)
        .await?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    // The responsible department (首办负责), by the one definition in domain::ticket.
    let mut responsible: HashMap<Uuid, Uuid> = HashMap::new();
    for dispatch in repo::tickets::dispatches_of(&ctx.db, &ids).await? {
        if holds_responsibility(&dispatch.role, &dispatch.status) {
            responsible.insert(dispatch.ticket_id, dispatch.department_id);
        }
    }
    let departments: HashMap<Uuid, String> = department::Entity::find()
        .filter(department::Column::Id.is_in(responsible.values().copied()))
        .all(&ctx.db)
        .await?
        .into_iter()
        .map(|d| (d.id, d.name))
        .collect();
    let notes = public_notes(ctx, &ids).await?;
    // One media_url per request (GeoReport v2): the address given at filing, else the
    // thumbnail of the first photo uploaded through our API when open311.publish_media is on.
    let mut media = super::open311_media::thumbnail_urls_of(ctx, &ids).await?;
    media.extend(repo::open311::media_urls_of(&ctx.db, &ids).await?);
    let offset = ctx.calendar().offset();
    Ok(rows
        .into_iter()
        .map(|t| {
            let category = categories.get(&t.category_id);
            let status = TicketStatus::parse(&t.status).map_or(Open311Status::Open, open311_status);
            ServiceRequest {
                service_request_id: t.number.clone(),
                status: status.as_str(),
                status_notes: notes.get(&t.id).cloned(),
                service_name: category.map(|c| c.name.clone()).unwrap_or_default(),
                service_code: category.map(|c| c.code.clone()).unwrap_or_default(),
                description: t.description.clone(),
                agency_responsible: responsible.get(&t.id).and_then(|d| departments.get(d)).cloned(),
                service_notice: None,
                requested_datetime: w3c(t.created_at, offset),
                updated_datetime: w3c(t.updated_at, offset),
                expected_datetime: t.resolve_due_at.map(|at| w3c(at, offset)),
                address: t.address.clone(),
                address_id: None,
                lat: t.lat,
                long: t.lon,
                media_url: media.get(&t.id).cloned(),
            }
        })
        .collect())
}

/// The latest public note of each ticket: the reply its resolution gave the resident (办结答复).
/// Progress notes, return reasons and cancellation reasons are the city's own working notes.
async fn public_notes(ctx: &AppContext, ids: &[Uuid]) -> AppResult<HashMap<Uuid, String>> {
    let mut notes = HashMap::new();
    for resolved in ticket_event::Entity::find()
        .filter(Condition::all().add(ticket_event::Column::TicketId.is_in(ids.iter().copied())))
        .filter(ticket_event::Column::Kind.eq(event::RESOLVED))
        .order_by_asc(ticket_event::Column::Id)
        .all(&ctx.db)
        .await?
    {
        if let Some(reply) = resolved.payload.get("reply").and_then(|r| r.as_str()).filter(|r| !r.is_empty()) {
            notes.insert(resolved.ticket_id, reply.to_owned());
        }
    }
    // A merged duplicate (并单) is followed in the ticket it was merged into: name that one.
    let merges = ticket_merge::Entity::find()
        .filter(ticket_merge::Column::DuplicateId.is_in(ids.iter().copied()))
        .all(&ctx.db)
        .await?;
    let survivors: HashMap<Uuid, String> = ticket::Entity::find()
        .filter(ticket::Column::Id.is_in(merges.iter().map(|m| m.survivor_id)))
        .all(&ctx.db)
        .await?
        .into_iter()
        .map(|t| (t.id, t.number))
        .collect();
    for merge in merges {
        if let Some(number) = survivors.get(&merge.survivor_id) {
            notes.insert(merge.duplicate_id, format!("已并入 {number} 办理（merged into {number}）"));
        }
    }
    Ok(notes)
}

/// W3C datetime in the city's offset, to the second: `2026-11-27T09:00:00+08:00`.
pub fn w3c(at: DateTime<Utc>, offset: FixedOffset) -> String {
    at.with_timezone(&offset).format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ended_tickets_are_closed_and_the_rest_open() {
        for status in TicketStatus::ALL {
            let expected = if matches!(status, TicketStatus::Closed | TicketStatus::Cancelled | TicketStatus::Merged) {
                Open311Status::Closed
            } else {
                Open311Status::Open
            };
            assert_eq!(open311_status(status), expected, "{status}");
        }
        assert_eq!(closed_statuses(), vec!["closed".to_owned(), "cancelled".to_owned(), "merged".to_owned()]);
    }

    #[test]
    fn names_join_in_their_own_order() {
        assert_eq!(resident_name(Some("三丰"), Some("张")).as_deref(), Some("张三丰"));
        assert_eq!(resident_name(Some("Jane"), Some("Doe")).as_deref(), Some("Jane Doe"));
        assert_eq!(resident_name(None, Some("张")).as_deref(), Some("张"));
        assert_eq!(resident_name(Some(" "), None), None);
    }

    #[test]
    fn times_carry_the_city_offset() {
        let offset = FixedOffset::east_opt(8 * 3600).expect("offset");
        let at = DateTime::parse_from_rfc3339("2026-11-27T01:00:00Z").expect("time").with_timezone(&Utc);
        assert_eq!(w3c(at, offset), "2026-11-27T09:00:00+08:00");
    }

    #[test]
    fn media_urls_are_web_addresses() {
        assert!(checked_media_url("https://img.example/a.jpg").is_ok());
        for bad in ["ftp://x/a.jpg", "javascript:alert(1)", "https://a b", "https://"] {
            assert!(checked_media_url(bad).is_err(), "{bad}");
        }
    }
}
