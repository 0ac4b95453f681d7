//! Tickets (诉求工单): filing, reading, the dispatcher's actions (派单, 吹哨, 取消), the
//! resident's rating (好差评) and auto-close. Every change locks the ticket row, checks the
//! state machine, bumps `version` and writes its timeline events in one transaction.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Utc};
use entities::{Priority, category, department, dispatch, grid_unit, idempotency_key, rating, ticket};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect, Set, SqlErr,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{referenced, require};
use crate::{
    context::AppContext,
    db::begin_write,
    domain::{
        access::{
            Caller, DepartmentDispatch, Permission, TicketFacts, TicketScope, may_see_contact, may_see_ticket,
            ticket_scope,
        },
        escalation::Trigger,
        geo::Point,
        sla::ClockKind,
        ticket::{
            Channel, DispatchAction, DispatchRole, DispatchStatus, TicketAction, TicketStatus, dispatch_transition,
            event, is_bad_rating, ticket_transition,
        },
        validate::FieldErrors,
    },
    error::{AppError, AppResult},
    repo::{
        self,
        page::{Order, Page, PageRequest},
        tickets::Scope,
    },
};

const MAX_ATTACHMENTS: usize = 10;
const MAX_ATTACHMENT_BYTES: u64 = 50 * 1024 * 1024;
const MAX_DEPARTMENTS: usize = 10;

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

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DispatchRequest {
    /// Absent (with no co-handlers): route by the routing rules.
    pub primary_department_id: Option<Uuid>,
    #[serde(default)]
    pub co_handler_department_ids: Vec<Uuid>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WhistleRequest {
    pub department_ids: Vec<Uuid>,
    pub reason: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RatingRequest {
    /// 5 非常满意 · 4 满意 · 3 基本满意 · 2 不满意 · 1 非常不满意
    pub score: u8,
    pub comment: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    pub reason: String,
}

#[derive(Debug, Default, Clone)]
pub struct TicketFilter {
    pub status: Option<TicketStatus>,
    pub category: Option<Uuid>,
    pub unit: Option<Uuid>,
    pub department: Option<Uuid>,
    pub priority: Option<Priority>,
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
    pub needs_arbitration: Option<bool>,
    /// Only tickets with a running clock past its deadline.
    pub overdue: Option<bool>,
}

/// A ticket as one caller may see it.
#[derive(Debug, Clone)]
pub struct TicketView {
    pub ticket: ticket::Model,
    pub dispatches: Vec<dispatch::Model>,
    pub rating: Option<rating::Model>,
    /// Resident name and phone unmasked.
    pub show_contact: bool,
    /// The ticket lies in the viewer's jurisdiction (decided with the same facts as
    /// `show_contact`, so a single read needs no second look-up).
    pub in_scope: bool,
    /// Every SLA clock of the ticket and its dispatches, oldest first.
    pub sla: Vec<super::sla::ClockStatus>,
}

pub struct Filed {
    pub view: TicketView,
    /// True when an `Idempotency-Key` retry returned the ticket filed before.
    pub replayed: bool,
}

/// The caller with their home unit's path, looked up once per request.
pub struct Viewer<'a> {
    pub caller: &'a Caller,
    home_path: Option<String>,
}

impl<'a> Viewer<'a> {
    pub async fn of(db: &impl ConnectionTrait, caller: &'a Caller) -> AppResult<Self> {
        let home_path = match caller.unit_id {
            Some(unit) => grid_unit::Entity::find_by_id(unit).one(db).await?.map(|u| u.path),
            None => None,
        };
        Ok(Self { caller, home_path })
    }

    pub fn scope(&self) -> Scope {
        match (ticket_scope(self.caller), &self.home_path) {
            (TicketScope::Everything, _) => Scope::Everything,
            (TicketScope::UnitSubtree(_), Some(path)) => Scope::UnitPath(path.clone()),
            (TicketScope::GridWorker { user_id, .. }, Some(path)) => {
                Scope::FiledByOrUnitPath { user_id, path: path.clone() }
            }
            (TicketScope::Department(department), _) => Scope::Department(department),
            _ => Scope::Nothing,
        }
    }

    pub fn in_home_subtree(&self, unit_path: &str) -> bool {
        self.home_path.as_deref().is_some_and(|home| unit_path.starts_with(home))
    }

    pub fn facts(&self, ticket: &ticket::Model, unit_path: &str, dispatches: &[dispatch::Model]) -> TicketFacts {
        let department_dispatch = self.caller.department_id.and_then(|department| {
            let mine: Vec<&dispatch::Model> = dispatches.iter().filter(|d| d.department_id == department).collect();
            if mine.is_empty() {
                None
            } else if mine.iter().any(|d| d.acknowledged_at.is_some()) {
                Some(DepartmentDispatch::Acknowledged)
            } else {
                Some(DepartmentDispatch::NotYetAcknowledged)
            }
        });
        TicketFacts { in_home_subtree: self.in_home_subtree(unit_path), filed_by: ticket.filed_by, department_dispatch }
    }
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
    for (i, attachment) in input.attachments.iter().enumerate() {
        errors.text(&format!("attachments[{i}].file_name"), &attachment.file_name, 200);
        errors.text(&format!("attachments[{i}].content_type"), &attachment.content_type, 100);
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
    Ok(CheckedTicket { title, description, address, resident_name, resident_phone, point })
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
    let attachments = serde_json::to_value(&input.attachments).map_err(|e| AppError::Internal(e.to_string()))?;
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
        let routing = super::routing::resolve_for(&txn, category.id, &unit).await?;
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
    if earlier.request_hash != request_hash {
        return Err(AppError::invalid(
            "Idempotency-Key",
            "this key was already used for a different request; use a new key",
        ));
    }
    let ticket = super::found::<ticket::Entity>(db, earlier.ticket_id, "ticket").await?;
    let viewer = Viewer::of(db, caller).await?;
    Ok(Some(Filed { view: view_in(ctx, db, &viewer, ticket).await?, replayed: true }))
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

// ---- reading --------------------------------------------------------------------------------

pub async fn get(ctx: &AppContext, caller: &Caller, id: Uuid) -> AppResult<TicketView> {
    require(caller, Permission::ReadTickets)?;
    let viewer = Viewer::of(&ctx.db, caller).await?;
    let ticket = ticket::Entity::find_by_id(id).one(&ctx.db).await?.ok_or_else(|| AppError::not_found("ticket"))?;
    let view = view_in(ctx, &ctx.db, &viewer, ticket).await?;
    // Out-of-jurisdiction tickets answer exactly like missing ones.
    if view.in_scope { Ok(view) } else { Err(AppError::not_found("ticket")) }
}

pub async fn list(
    ctx: &AppContext,
    caller: &Caller,
    filter: TicketFilter,
    request: PageRequest,
) -> AppResult<Page<TicketView>> {
    require(caller, Permission::ReadTickets)?;
    let viewer = Viewer::of(&ctx.db, caller).await?;
    let mut select = ticket::Entity::find().filter(repo::tickets::scope_condition(&viewer.scope()));
    if let Some(status) = filter.status {
        select = select.filter(ticket::Column::Status.eq(status.to_string()));
    }
    if let Some(category) = filter.category {
        select = select.filter(ticket::Column::CategoryId.eq(category));
    }
    if let Some(unit) = filter.unit {
        let root: grid_unit::Model = referenced::<grid_unit::Entity>(&ctx.db, "unit", unit, "grid unit").await?;
        select = select.filter(repo::tickets::in_unit_subtree(&root.path));
    }
    if let Some(department) = filter.department {
        select = select.filter(repo::tickets::scope_condition(&Scope::Department(department)));
    }
    if let Some(priority) = filter.priority {
        select = select.filter(ticket::Column::Priority.eq(priority));
    }
    if let Some(from) = filter.created_from {
        select = select.filter(ticket::Column::CreatedAt.gte(from));
    }
    if let Some(to) = filter.created_to {
        select = select.filter(ticket::Column::CreatedAt.lt(to));
    }
    if let Some(overdue) = filter.overdue {
        let late = sea_orm::sea_query::Query::select()
            .column(entities::sla_clock::Column::TicketId)
            .from(entities::sla_clock::Entity)
            .and_where(entities::sla_clock::Column::StoppedAt.is_null())
            .and_where(entities::sla_clock::Column::DueAt.lte(ctx.clock.now()))
            .to_owned();
        select = if overdue {
            select.filter(ticket::Column::Id.in_subquery(late))
        } else {
            select.filter(ticket::Column::Id.not_in_subquery(late))
        };
    }
    if let Some(flag) = filter.needs_arbitration {
        select = select.filter(ticket::Column::NeedsArbitration.eq(flag));
    }
    let page =
        repo::page::fetch_ordered(&ctx.db, select, ticket::Column::Id, |t| t.id, request, Order::NewestFirst).await?;
    let items = views_in(ctx, &ctx.db, &viewer, page.items).await?;
    Ok(Page { items, next_cursor: page.next_cursor })
}

pub async fn events(
    ctx: &AppContext,
    caller: &Caller,
    id: Uuid,
    request: PageRequest,
) -> AppResult<Page<entities::ticket_event::Model>> {
    use entities::ticket_event;
    get(ctx, caller, id).await?;
    let select = ticket_event::Entity::find().filter(ticket_event::Column::TicketId.eq(id));
    Ok(repo::page::fetch(&ctx.db, select, ticket_event::Column::Id, |e| e.id, request).await?)
}

pub(crate) async fn view_in(
    ctx: &AppContext,
    db: &impl ConnectionTrait,
    viewer: &Viewer<'_>,
    ticket: ticket::Model,
) -> AppResult<TicketView> {
    Ok(views_in(ctx, db, viewer, vec![ticket]).await?.remove(0))
}

/// Views of several tickets with three queries, whatever their number.
async fn views_in(
    ctx: &AppContext,
    db: &impl ConnectionTrait,
    viewer: &Viewer<'_>,
    tickets: Vec<ticket::Model>,
) -> AppResult<Vec<TicketView>> {
    let ids: Vec<Uuid> = tickets.iter().map(|t| t.id).collect();
    let unit_ids: Vec<Uuid> = tickets.iter().map(|t| t.unit_id).collect();
    let mut dispatches: HashMap<Uuid, Vec<dispatch::Model>> = HashMap::new();
    for d in repo::tickets::dispatches_of(db, &ids).await? {
        dispatches.entry(d.ticket_id).or_default().push(d);
    }
    let mut ratings = repo::tickets::latest_ratings(db, &ids).await?;
    let mut clocks = super::sla::clocks_of(db, &ids).await?;
    let now = ctx.clock.now();
    let paths = repo::tickets::unit_paths(db, &unit_ids).await?;
    Ok(tickets
        .into_iter()
        .map(|ticket| {
            let dispatches = dispatches.remove(&ticket.id).unwrap_or_default();
            let path = paths.get(&ticket.unit_id).map(String::as_str).unwrap_or_default();
            let facts = viewer.facts(&ticket, path, &dispatches);
            let (show_contact, in_scope) =
                (may_see_contact(viewer.caller, &facts), may_see_ticket(viewer.caller, &facts));
            let sla =
                clocks.remove(&ticket.id).unwrap_or_default().iter().map(|c| super::sla::status(ctx, c, now)).collect();
            TicketView { rating: ratings.remove(&ticket.id), ticket, dispatches, show_contact, in_scope, sla }
        })
        .collect())
}

// ---- the dispatcher's actions ----------------------------------------------------------------

/// A locked ticket in the caller's jurisdiction, with its dispatches, ready to change.
pub(crate) struct Locked {
    pub txn: DatabaseTransaction,
    pub ticket: ticket::Model,
    pub dispatches: Vec<dispatch::Model>,
    pub now: DateTime<Utc>,
}

/// Opens the change: lock, jurisdiction (404), `If-Match` (412).
pub(crate) async fn lock_in_scope(
    ctx: &AppContext,
    viewer: &Viewer<'_>,
    id: Uuid,
    if_match: Option<i32>,
) -> AppResult<Locked> {
    let txn = begin_write(&ctx.db).await?;
    let ticket = repo::tickets::lock(&txn, id).await?.ok_or_else(|| AppError::not_found("ticket"))?;
    let dispatches = repo::tickets::dispatches_of(&txn, &[id]).await?;
    let paths = repo::tickets::unit_paths(&txn, &[ticket.unit_id]).await?;
    let path = paths.get(&ticket.unit_id).map(String::as_str).unwrap_or_default();
    if !may_see_ticket(viewer.caller, &viewer.facts(&ticket, path, &dispatches)) {
        return Err(AppError::not_found("ticket"));
    }
    if let Some(expected) = if_match
        && expected != ticket.version
    {
        return Err(AppError::PreconditionFailed(format!(
            "the ticket changed (version {} now, {expected} in If-Match); reload it and try again",
            ticket.version
        )));
    }
    Ok(Locked { txn, ticket, dispatches, now: ctx.clock.now() })
}

pub(crate) fn next_status(ticket: &ticket::Model, action: TicketAction) -> AppResult<TicketStatus> {
    let from = TicketStatus::parse(&ticket.status)
        .ok_or_else(|| AppError::Internal(format!("unknown ticket status {}", ticket.status)))?;
    ticket_transition(from, action)
        .ok_or_else(|| AppError::Conflict(format!("ticket {} is {from}; it cannot {action} now", ticket.number)))
}

pub(crate) fn next_dispatch_status(dispatch: &dispatch::Model, action: DispatchAction) -> AppResult<DispatchStatus> {
    let from = DispatchStatus::parse(&dispatch.status)
        .ok_or_else(|| AppError::Internal(format!("unknown dispatch status {}", dispatch.status)))?;
    dispatch_transition(from, action)
        .ok_or_else(|| AppError::Conflict(format!("the dispatch is {from}; cannot {action} it")))
}

/// Writes the changed ticket with the next version; the row lock makes the check certain.
pub(crate) async fn save(
    txn: &DatabaseTransaction,
    mut row: ticket::ActiveModel,
    current: &ticket::Model,
    now: DateTime<Utc>,
) -> AppResult<ticket::Model> {
    row.version = Set(current.version + 1);
    row.updated_at = Set(now);
    ticket::Entity::update(row).validate()?.filter(ticket::Column::Version.eq(current.version)).exec(txn).await.map_err(
        |err| match err {
            sea_orm::DbErr::RecordNotUpdated => {
                AppError::Conflict("the ticket changed at the same moment; retry".into())
            }
            other => other.into(),
        },
    )
}

struct DispatchPlan {
    primary: Uuid,
    co_handlers: Vec<Uuid>,
    rule_id: Option<Uuid>,
    auto: bool,
}

/// Creates the dispatches of a plan and moves the ticket to `dispatched`.
async fn send_dispatches(
    ctx: &AppContext,
    txn: &DatabaseTransaction,
    ticket: ticket::Model,
    plan: &DispatchPlan,
    actor: Option<Uuid>,
    now: DateTime<Utc>,
) -> AppResult<ticket::Model> {
    let status = next_status(&ticket, TicketAction::Dispatch)?;
    let mut created = Vec::new();
    for (department, role) in std::iter::once((plan.primary, DispatchRole::Primary))
        .chain(plan.co_handlers.iter().map(|d| (*d, DispatchRole::CoHandler)))
    {
        created.push(new_dispatch(ctx, txn, &ticket, department, role, actor, now).await?);
    }
    // The ticket's own clocks start with its first dispatch and never restart: a return or
    // a re-dispatch buys no time.
    let mut resolve_due_at = None;
    if ticket.first_dispatched_at.is_none() {
        super::sla::start(ctx, txn, &ticket, None, ClockKind::FirstContact, now).await?;
        resolve_due_at = Some(super::sla::start(ctx, txn, &ticket, None, ClockKind::Resolve, now).await?.due_at);
    }
    let payload = json!({
        "primary_department_id": plan.primary,
        "co_handler_department_ids": plan.co_handlers,
        "rule_id": plan.rule_id,
        "auto": plan.auto,
        "dispatch_ids": created,
    });
    repo::tickets::record_event(txn, ticket.id, None, event::DISPATCHED, actor, now, payload).await?;
    let mut row = ticket.clone().into_active_model();
    row.status = Set(status.to_string());
    if ticket.first_dispatched_at.is_none() {
        row.first_dispatched_at = Set(Some(now));
        row.resolve_due_at = Set(resolve_due_at);
    }
    save(txn, row, &ticket, now).await
}

/// A new dispatch with its acknowledge clock, and a mail to the department.
async fn new_dispatch(
    ctx: &AppContext,
    txn: &DatabaseTransaction,
    ticket: &ticket::Model,
    department_id: Uuid,
    role: DispatchRole,
    actor: Option<Uuid>,
    now: DateTime<Utc>,
) -> AppResult<Uuid> {
    let id = Uuid::now_v7();
    dispatch::ActiveModel {
        id: Set(id),
        ticket_id: Set(ticket.id),
        department_id: Set(department_id),
        role: Set(role.as_str().to_owned()),
        status: Set(DispatchStatus::Pending.to_string()),
        dispatched_by: Set(actor),
        created_at: Set(now),
        acknowledged_at: Set(None),
        returned_at: Set(None),
        return_reason: Set(None),
        return_refused: Set(false),
        resolved_at: Set(None),
        reply: Set(None),
        updated_at: Set(now),
        ack_due_at: Set(None),
        ack_working_seconds: Set(None),
    }
    .insert(txn)
    .await?;
    let clock = super::sla::start(ctx, txn, ticket, Some(id), ClockKind::Acknowledge, now).await?;
    dispatch::Entity::update_many()
        .col_expr(dispatch::Column::AckDueAt, sea_orm::sea_query::Expr::val(clock.due_at))
        .filter(dispatch::Column::Id.eq(id))
        .exec(txn)
        .await?;
    if let Some(department) = department::Entity::find_by_id(department_id).one(txn).await? {
        let headline = match role {
            DispatchRole::Primary => "新派单，请及时签收报到".to_owned(),
            DispatchRole::CoHandler => "吹哨：请协同办理并签收报到".to_owned(),
        };
        let mail =
            super::notify::Mail { kind: "dispatched", ticket, headline, deadline: Some(clock.due_at), note: None };
        super::notify::enqueue(ctx, txn, &mail, &[department.email], now).await?;
    }
    Ok(id)
}

/// Every department named must exist and be active; none twice.
async fn check_departments(db: &impl ConnectionTrait, field: &str, ids: &[Uuid]) -> AppResult<()> {
    if ids.len() > MAX_DEPARTMENTS {
        return Err(AppError::invalid(field, format!("at most {MAX_DEPARTMENTS} departments")));
    }
    for (i, id) in ids.iter().enumerate() {
        if ids[..i].contains(id) {
            return Err(AppError::invalid(field, format!("department {id} is named twice")));
        }
        let department: department::Model = referenced::<department::Entity>(db, field, *id, "department").await?;
        if !department.active {
            return Err(AppError::invalid(field, format!("department {} is not active", department.name)));
        }
    }
    Ok(())
}

/// 派单: by the routing rules (`{}`), or to the departments the dispatcher names.
pub async fn dispatch(
    ctx: &AppContext,
    caller: &Caller,
    id: Uuid,
    if_match: Option<i32>,
    request: DispatchRequest,
) -> AppResult<TicketView> {
    require(caller, Permission::DispatchTicket)?;
    let viewer = Viewer::of(&ctx.db, caller).await?;
    let Locked { txn, ticket, now, .. } = lock_in_scope(ctx, &viewer, id, if_match).await?;
    next_status(&ticket, TicketAction::Dispatch)?;
    let plan = match request.primary_department_id {
        Some(primary) => {
            check_departments(&txn, "primary_department_id", &[primary]).await?;
            check_departments(&txn, "co_handler_department_ids", &request.co_handler_department_ids).await?;
            if request.co_handler_department_ids.contains(&primary) {
                return Err(AppError::invalid(
                    "co_handler_department_ids",
                    "the primary department cannot also co-handle",
                ));
            }
            DispatchPlan { primary, co_handlers: request.co_handler_department_ids, rule_id: None, auto: false }
        }
        None if !request.co_handler_department_ids.is_empty() => {
            return Err(AppError::invalid(
                "primary_department_id",
                "name the primary department when naming co-handlers",
            ));
        }
        None => {
            let unit = super::found::<grid_unit::Entity>(&txn, ticket.unit_id, "grid unit").await?;
            let routing = super::routing::resolve_for(&txn, ticket.category_id, &unit).await?;
            let primary = routing.primary_department_id.ok_or_else(|| {
                AppError::invalid("primary_department_id", "no routing rule covers this ticket; name the departments")
            })?;
            DispatchPlan {
                primary,
                co_handlers: routing.co_handler_department_ids,
                rule_id: routing.rule_id,
                auto: false,
            }
        }
    };
    let ticket = send_dispatches(ctx, &txn, ticket, &plan, Some(caller.user_id), now).await?;
    let view = view_in(ctx, &txn, &viewer, ticket).await?;
    txn.commit().await?;
    Ok(view)
}

/// 吹哨: summon more departments onto a live ticket; each must report in.
pub async fn whistle(
    ctx: &AppContext,
    caller: &Caller,
    id: Uuid,
    if_match: Option<i32>,
    request: WhistleRequest,
) -> AppResult<TicketView> {
    require(caller, Permission::DispatchTicket)?;
    let mut errors = FieldErrors::new();
    let reason = long_text(&mut errors, "reason", &request.reason, 500);
    if request.department_ids.is_empty() {
        errors.add("department_ids", "name at least one department");
    }
    errors.into_result()?;
    let viewer = Viewer::of(&ctx.db, caller).await?;
    let Locked { txn, ticket, dispatches, now } = lock_in_scope(ctx, &viewer, id, if_match).await?;
    next_status(&ticket, TicketAction::Whistle)?;
    check_departments(&txn, "department_ids", &request.department_ids).await?;
    for department in &request.department_ids {
        let already = dispatches.iter().any(|d| d.department_id == *department && dispatch_is_open(d));
        if already {
            return Err(AppError::Conflict(format!(
                "department {department} already holds an open dispatch on this ticket"
            )));
        }
    }
    let mut created = Vec::new();
    for department in &request.department_ids {
        created.push(
            new_dispatch(ctx, &txn, &ticket, *department, DispatchRole::CoHandler, Some(caller.user_id), now).await?,
        );
    }
    let payload = json!({"department_ids": request.department_ids, "reason": reason, "dispatch_ids": created});
    repo::tickets::record_event(&txn, id, None, event::WHISTLED, Some(caller.user_id), now, payload).await?;
    let ticket = save(&txn, ticket.clone().into_active_model(), &ticket, now).await?;
    let view = view_in(ctx, &txn, &viewer, ticket).await?;
    txn.commit().await?;
    Ok(view)
}

pub(crate) fn dispatch_is_open(d: &dispatch::Model) -> bool {
    DispatchStatus::parse(&d.status).is_some_and(DispatchStatus::is_open)
}

/// Duplicate or withdrawn: the ticket ends, its open dispatches with it.
pub async fn cancel(
    ctx: &AppContext,
    caller: &Caller,
    id: Uuid,
    if_match: Option<i32>,
    request: ReasonRequest,
) -> AppResult<TicketView> {
    require(caller, Permission::DispatchTicket)?;
    let mut errors = FieldErrors::new();
    let reason = long_text(&mut errors, "reason", &request.reason, 500);
    errors.into_result()?;
    let viewer = Viewer::of(&ctx.db, caller).await?;
    let Locked { txn, ticket, dispatches, now } = lock_in_scope(ctx, &viewer, id, if_match).await?;
    let status = next_status(&ticket, TicketAction::Cancel)?;
    for open in dispatches.iter().filter(|d| dispatch_is_open(d)) {
        let mut row = open.clone().into_active_model();
        row.status = Set(next_dispatch_status(open, DispatchAction::Cancel)?.to_string());
        row.updated_at = Set(now);
        row.update(&txn).await?;
    }
    super::sla::stop(&txn, id, &ClockKind::ALL, None, now).await?;
    repo::tickets::record_event(&txn, id, None, event::CANCELLED, Some(caller.user_id), now, json!({"reason": reason}))
        .await?;
    let mut row = ticket.clone().into_active_model();
    row.status = Set(status.to_string());
    row.closed_at = Set(Some(now));
    let ticket = save(&txn, row, &ticket, now).await?;
    let view = view_in(ctx, &txn, &viewer, ticket).await?;
    txn.commit().await?;
    Ok(view)
}

// ---- closure ---------------------------------------------------------------------------------

/// 好差评 on the resident's behalf: ≥ 3 closes the ticket, ≤ 2 reopens it for rectification
/// by the same departments.
pub async fn rate(
    ctx: &AppContext,
    caller: &Caller,
    id: Uuid,
    if_match: Option<i32>,
    request: RatingRequest,
) -> AppResult<TicketView> {
    require(caller, Permission::RateTicket)?;
    let mut errors = FieldErrors::new();
    if !(1..=5).contains(&request.score) {
        errors.add("score", "must be 1 (非常不满意) to 5 (非常满意)");
    }
    let comment = request.comment.as_deref().map(|c| long_text(&mut errors, "comment", c, 500));
    errors.into_result()?;
    let viewer = Viewer::of(&ctx.db, caller).await?;
    let Locked { txn, ticket, dispatches, now } = lock_in_scope(ctx, &viewer, id, if_match).await?;
    if !crate::domain::access::may_rate(caller, ticket.filed_by) {
        return Err(AppError::Forbidden("a grid worker rates only the tickets they filed".into()));
    }
    let bad = is_bad_rating(request.score);
    let status = next_status(&ticket, if bad { TicketAction::Reopen } else { TicketAction::RateSatisfied })?;
    rating::ActiveModel {
        id: Set(Uuid::now_v7()),
        ticket_id: Set(id),
        score: Set(i16::from(request.score)),
        comment: Set(comment.clone()),
        rated_by: Set(caller.user_id),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let actor = Some(caller.user_id);
    repo::tickets::record_event(
        &txn,
        id,
        None,
        event::RATED,
        actor,
        now,
        json!({"score": request.score, "comment": comment}),
    )
    .await?;
    let mut row = ticket.clone().into_active_model();
    row.status = Set(status.to_string());
    row.rating_due_at = Set(None);
    if bad {
        // Rectification (整改): the primary departments' resolved work is open again.
        let mut reopened = Vec::new();
        for resolved in dispatches
            .iter()
            .filter(|d| d.role == DispatchRole::Primary.as_str() && d.status == DispatchStatus::Resolved.to_string())
        {
            let mut dispatch_row = resolved.clone().into_active_model();
            dispatch_row.status = Set(next_dispatch_status(resolved, DispatchAction::Reopen)?.to_string());
            dispatch_row.resolved_at = Set(None);
            dispatch_row.updated_at = Set(now);
            dispatch_row.update(&txn).await?;
            reopened.push(resolved.id);
        }
        let payload =
            json!({"score": request.score, "note": "差评整改：请原承办部门重新办理", "dispatch_ids": reopened});
        repo::tickets::record_event(&txn, id, None, event::REOPENED, actor, now, payload).await?;
        row.resolved_at = Set(None);
        super::sla::start(ctx, &txn, &ticket, None, ClockKind::Rectify, now).await?;
        let cause = super::escalation::Cause {
            trigger: Trigger::BadRating,
            ticket: &ticket,
            clock_id: None,
            dispatch: None,
            deadline: None,
        };
        super::escalation::fire(ctx, &txn, &cause, now).await?;
    } else {
        repo::tickets::record_event(&txn, id, None, event::CLOSED, actor, now, json!({"score": request.score})).await?;
        row.closed_at = Set(Some(now));
        super::sla::stop(&txn, id, &ClockKind::ALL, None, now).await?;
    }
    let ticket = save(&txn, row, &ticket, now).await?;
    let view = view_in(ctx, &txn, &viewer, ticket).await?;
    txn.commit().await?;
    Ok(view)
}

/// Closes resolved tickets whose rating window has passed without a rating; returns how many.
/// Due tickets come from an index on (status, rating_due_at), a bounded batch at a time.
pub async fn auto_close_due(ctx: &AppContext, limit: u64) -> AppResult<usize> {
    let now = ctx.clock.now();
    let due: Vec<Uuid> = ticket::Entity::find()
        .select_only()
        .column(ticket::Column::Id)
        .filter(ticket::Column::Status.eq(TicketStatus::Resolved.to_string()))
        .filter(ticket::Column::RatingDueAt.lte(now))
        .order_by_asc(ticket::Column::RatingDueAt)
        .limit(limit)
        .into_tuple()
        .all(&ctx.db)
        .await?;
    let mut closed = 0;
    for id in due {
        let txn = begin_write(&ctx.db).await?;
        let Some(ticket) = repo::tickets::lock(&txn, id).await? else {
            continue;
        };
        // Rated or changed since the query: not ours to close any more.
        let still_due =
            ticket.status == TicketStatus::Resolved.to_string() && ticket.rating_due_at.is_some_and(|due| due <= now);
        if !still_due {
            continue;
        }
        let status = next_status(&ticket, TicketAction::AutoClose)?;
        let payload = json!({"clock": "rating_window", "due_at": ticket.rating_due_at});
        repo::tickets::record_event(&txn, id, None, event::AUTO_CLOSED, None, now, payload).await?;
        super::sla::stop(&txn, id, &ClockKind::ALL, None, now).await?;
        let mut row = ticket.clone().into_active_model();
        row.status = Set(status.to_string());
        row.closed_at = Set(Some(now));
        row.rating_due_at = Set(None);
        save(&txn, row, &ticket, now).await?;
        txn.commit().await?;
        closed += 1;
    }
    Ok(closed)
}

/// Free text of at most `max` characters; line breaks allowed, other control characters not.
pub(crate) fn long_text(errors: &mut FieldErrors, field: &str, value: &str, max: usize) -> String {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        errors.add(field, "must not be empty");
    } else if trimmed.chars().count() > max {
        errors.add(field, format!("must be at most {max} characters"));
    } else if trimmed.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
        errors.add(field, "must not contain control characters");
    }
    trimmed.to_owned()
}

// ---- residents' personal data -------------------------------------------------------------

/// The resident's name and phone, unmasked, for the people who must call back; every reveal
/// is audited with its reason.
pub async fn contact(
    ctx: &AppContext,
    caller: &Caller,
    id: Uuid,
    reason: Option<String>,
) -> AppResult<(Option<String>, Option<String>)> {
    require(caller, Permission::ReadTickets)?;
    let mut errors = FieldErrors::new();
    let reason = reason.as_deref().map(|r| long_text(&mut errors, "reason", r, 200));
    errors.into_result()?;
    let view = get(ctx, caller, id).await?;
    if !view.show_contact {
        return Err(AppError::Forbidden("your role may not see this resident's contact details".into()));
    }
    let txn = begin_write(&ctx.db).await?;
    let entry = super::audit::Entry::by(
        caller,
        "contact_revealed",
        "ticket",
        id,
        json!({"number": view.ticket.number, "reason": reason}),
    )
    .in_unit(Some(view.ticket.unit_id));
    super::audit::record(&txn, entry, ctx.clock.now()).await?;
    txn.commit().await?;
    Ok((view.ticket.resident_name, view.ticket.resident_phone))
}

/// Blanks the resident's name and phone at their request; the ticket and its history stay.
pub async fn erase_personal_data(
    ctx: &AppContext,
    caller: &Caller,
    id: Uuid,
    request: ReasonRequest,
) -> AppResult<TicketView> {
    require(caller, Permission::ErasePersonalData)?;
    let mut errors = FieldErrors::new();
    let reason = long_text(&mut errors, "reason", &request.reason, 500);
    errors.into_result()?;
    let viewer = Viewer::of(&ctx.db, caller).await?;
    let Locked { txn, ticket, now, .. } = lock_in_scope(ctx, &viewer, id, None).await?;
    let mut row = ticket.clone().into_active_model();
    row.resident_name = Set(None);
    row.resident_phone = Set(None);
    repo::tickets::record_event(
        &txn,
        id,
        None,
        event::PERSONAL_DATA_ERASED,
        Some(caller.user_id),
        now,
        json!({"reason": reason}),
    )
    .await?;
    let entry = super::audit::Entry::by(
        caller,
        "personal_data_erased",
        "ticket",
        id,
        json!({"number": ticket.number, "reason": reason}),
    )
    .in_unit(Some(ticket.unit_id));
    super::audit::record(&txn, entry, now).await?;
    let ticket = save(&txn, row, &ticket, now).await?;
    let view = view_in(ctx, &txn, &viewer, ticket).await?;
    txn.commit().await?;
    Ok(view)
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
