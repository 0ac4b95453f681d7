use actix_web::{HttpResponse, http::header, web};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{
    dto::{List, Ticket, TicketEvent, page_request},
    extract::{IdempotencyKey, IfMatch, PathId, Permitted, PermittedQuery, Query, may},
    problem::Problem,
};
use crate::{
    context::AppContext,
    domain::{access::Caller, ticket::TicketStatus},
    error::{AppError, AppResult},
    service::tickets::{
        self, DispatchRequest, NewTicket, RatingRequest, ReasonRequest, TicketFilter, TicketView, WhistleRequest,
    },
};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TicketQuery {
    /// filed, dispatched, in_progress, resolved, closed, cancelled or merged
    status: Option<String>,
    category: Option<uuid::Uuid>,
    /// Tickets in this unit's subtree.
    unit: Option<uuid::Uuid>,
    /// Tickets with a dispatch to this department.
    department: Option<uuid::Uuid>,
    #[param(value_type = Option<String>)]
    priority: Option<entities::Priority>,
    created_from: Option<DateTime<Utc>>,
    /// Exclusive.
    created_to: Option<DateTime<Utc>>,
    needs_arbitration: Option<bool>,
    /// Only tickets with a running SLA clock past its deadline.
    overdue: Option<bool>,
    /// `summary` (default): number, title, category, unit, status, priority, the next deadline and its
    /// state, created/updated. `full`: every ticket as `getTicket` returns it.
    #[param(inline)]
    view: Option<super::ticket_lists::ListView>,
    limit: Option<u64>,
    cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    limit: Option<u64>,
    cursor: Option<String>,
}

/// A ticket with its ETag, for `If-Match` on the next write and `If-None-Match` on the next read.
pub fn with_etag(status: actix_web::http::StatusCode, view: TicketView) -> HttpResponse {
    HttpResponse::build(status).insert_header((header::ETAG, etag(&view))).json(Ticket::from(view))
}

/// `"<version>-<clock states>"`: the version moves with every write to the ticket; the clock
/// states (on_track → warning → breached) move with time alone, and a cached copy showing an
/// old state would mislead, so they are part of the tag too. `If-Match` reads the version.
/// `remaining_seconds` is not: a client counts down from `due_at`.
pub fn etag(view: &TicketView) -> String {
    use sha2::{Digest, Sha256};
    let mut states = Sha256::new();
    for clock in &view.sla {
        states.update(format!("{}/{:?}/{};", clock.clock, clock.dispatch_id, clock.state));
    }
    let digest = hex::encode(&states.finalize()[..4]);
    format!("\"{}-{digest}\"", view.ticket.version)
}

/// File a ticket (接诉).
///
/// Grid workers file from the street, dispatchers from the hotline or the window. The grid unit comes from
/// `grid_unit_id` or is located from `location`; when both are given the grid must hold the point (within `tickets.location_tolerance_m`). A grid worker files only inside their own grid, a dispatcher inside their township: a place outside it is 422 on `location` / `grid_unit_id`.
/// The answer is 201 with `Location` and the `ETag`.
///
/// Send an `Idempotency-Key` (any unique string per ticket, e.g. a UUID made on the phone) so a retry on a flaky
/// connection never files twice: the same key and body answers 200 with the ticket (as it is now) and
/// `Idempotent-Replayed: true`. Filings per user are rate-limited (429 with `Retry-After`).
#[utoipa::path(post, path = "/api/v1/tickets", operation_id = "fileTicket", tag = "tickets", request_body = NewTicket,
    params(("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body returns the ticket it filed, as it is now (200)")),
    responses((status = 201, body = super::duplicates::FiledTicket, description = "filed, with `possible_duplicates`"), (status = 200, body = super::duplicates::FiledTicket, description = "an Idempotency-Key replay: the ticket filed before"),
        (status = 403, body = Problem, description = "your role may not file, or the place is outside your own jurisdiction"), (status = 422, body = Problem),
        (status = 429, body = Problem, description = "too many filings from this user in a minute; see Retry-After")), security(("bearer" = [])))]
pub async fn file(
    ctx: web::Data<AppContext>,
    IdempotencyKey(key): IdempotencyKey,
    Permitted(caller, input, _): Permitted<may::FileTicket, NewTicket>,
) -> AppResult<HttpResponse> {
    let filed = tickets::file(&ctx, &caller, input, key).await?;
    let location = format!("/api/v1/tickets/{}", filed.view.ticket.id);
    let status = if filed.replayed { actix_web::http::StatusCode::OK } else { actix_web::http::StatusCode::CREATED };
    // 重复诉求: the filing stands; the filer sees what may already report the same problem.
    let possible_duplicates = crate::service::duplicates::for_ticket(&ctx, &caller, &filed.view.ticket).await?;
    let mut response = HttpResponse::build(status)
        .insert_header((header::ETAG, etag(&filed.view)))
        .json(super::duplicates::FiledTicket { ticket: Ticket::from(filed.view), possible_duplicates });
    if let Ok(value) = header::HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    if filed.replayed {
        response
            .headers_mut()
            .insert(header::HeaderName::from_static("idempotent-replayed"), header::HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Tickets in your jurisdiction, newest first.
///
/// What each role sees: a grid worker their grid and the tickets they filed; a dispatcher or supervisor their
/// unit's subtree; department staff the tickets dispatched to their department; an admin everything. Residents'
/// names and phones are masked here; see `revealTicketContact`.
///
/// Each item is a `TicketSummary` by default, or the full `Ticket` with `view=full`. The answer carries an
/// `ETag`; send it back as `If-None-Match` and an unchanged page answers 304 with no body.
#[utoipa::path(get, path = "/api/v1/tickets", operation_id = "listTickets", tag = "tickets",
    params(TicketQuery, ("If-None-Match" = Option<String>, Header, description = "the ETag of a copy of this page the client has: 304 when it is still current")),
    responses((status = 200, body = super::ticket_lists::TicketPage, description = "newest first, in the caller's jurisdiction: `items` are `TicketSummary` objects, or `Ticket` objects with `view=full`",
            headers(("ETag" = String, description = "for If-None-Match on the next read of this page"))),
        (status = 304, description = "the client's copy of the page is current"), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn list(
    ctx: web::Data<AppContext>,
    caller: Caller,
    req: actix_web::HttpRequest,
    Query(q): Query<TicketQuery>,
) -> AppResult<HttpResponse> {
    use super::ticket_lists::{ListView, TicketPage, full_etag, respond, summary_etag};
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let status = q
        .status
        .map(|s| {
            TicketStatus::parse(&s).ok_or_else(|| {
                AppError::invalid(
                    "status",
                    crate::domain::validate::Message::OneOf(
                        TicketStatus::ALL.iter().map(ToString::to_string).collect(),
                    ),
                )
            })
        })
        .transpose()?;
    let filter = TicketFilter {
        status,
        category: q.category,
        unit: q.unit,
        department: q.department,
        priority: q.priority,
        created_from: q.created_from,
        created_to: q.created_to,
        needs_arbitration: q.needs_arbitration,
        overdue: q.overdue,
    };
    Ok(match q.view.unwrap_or_default() {
        ListView::Summary => {
            let found = tickets::list_summaries(&ctx, &caller, filter, page).await?;
            let etag = summary_etag(&found);
            respond(&req, etag, &TicketPage::Summary(List::from_page(found, Into::into)))
        }
        ListView::Full => {
            let found = tickets::list(&ctx, &caller, filter, page).await?;
            let etag = full_etag(&found);
            respond(&req, etag, &TicketPage::Full(List::from_page(found, Ticket::from)))
        }
    })
}

/// One ticket, with its dispatches, rating and SLA clocks.
///
/// The `ETag` is the ticket's version: send it as `If-Match` on the next write. A ticket outside your jurisdiction
/// is 404, as one that does not exist. Resident contact is masked.
#[utoipa::path(get, path = "/api/v1/tickets/{id}", operation_id = "getTicket", params(("id" = uuid::Uuid, Path, description = "the id"), ("If-None-Match" = Option<String>, Header, description = "the ETag of a copy the client has: 304 when it is still current")), tag = "tickets",
    responses((status = 200, body = Ticket, headers(("ETag" = String, description = "for If-Match on a write and If-None-Match on a read"))), (status = 304, description = "the client's copy is current"), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get(
    ctx: web::Data<AppContext>,
    caller: Caller,
    req: actix_web::HttpRequest,
    PathId(id): PathId,
) -> AppResult<HttpResponse> {
    let view = tickets::get(&ctx, &caller, id).await?;
    // A phone that has this version already gets 304 and no body: less to pay for on a weak
    // connection. Weak and strong forms of the tag compare equal here.
    let current = etag(&view);
    let unchanged =
        req.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|tags| {
            tags.split(',').any(|t| t.trim().trim_start_matches("W/") == current || t.trim() == "*")
        });
    if unchanged {
        return Ok(HttpResponse::NotModified().insert_header((header::ETAG, current)).finish());
    }
    Ok(with_etag(actix_web::http::StatusCode::OK, view))
}

/// The ticket's timeline, oldest first.
///
/// Every transition, note, rating, escalation and supervision order: who, what, when. Same visibility as
/// `getTicket`.
#[utoipa::path(get, path = "/api/v1/tickets/{id}/events", operation_id = "listTicketEvents", tag = "tickets", params(("id" = uuid::Uuid, Path, description = "the id"), EventQuery),
    responses((status = 200, body = List<TicketEvent>, description = "the timeline, oldest first"), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn events(
    ctx: web::Data<AppContext>,
    caller: Caller,
    PathId(id): PathId,
    Query(q): Query<EventQuery>,
) -> AppResult<web::Json<List<TicketEvent>>> {
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let found = tickets::events(&ctx, &caller, id, page).await?;
    Ok(web::Json(List::from_page(found, TicketEvent::from)))
}

/// Dispatch a filed ticket (派单).
///
/// The ticket must be `filed` (new, or back after a 退单), else 409. `{}` routes it by the routing rules; or name
/// `primary_department_id` and optional `co_handler_department_ids`. The dispatcher must hold the ticket's
/// township. Send `If-Match` to avoid overwriting a concurrent change (412).
#[utoipa::path(post, path = "/api/v1/tickets/{id}/dispatch", operation_id = "dispatchTicket", tag = "tickets", request_body = DispatchRequest,
    params(("id" = uuid::Uuid, Path, description = "the id"), ("If-Match" = Option<String>, Header, description = "the ETag last read")),
    responses((status = 200, body = Ticket), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn dispatch(
    ctx: web::Data<AppContext>,
    PathId(id): PathId,
    IfMatch(version): IfMatch,
    Permitted(caller, body, _): Permitted<may::DispatchTicket, DispatchRequest>,
) -> AppResult<HttpResponse> {
    Ok(with_etag(actix_web::http::StatusCode::OK, tickets::dispatch(&ctx, &caller, id, version, body).await?))
}

/// 吹哨: summon more departments to a live ticket.
///
/// The ticket must be `dispatched` or `in_progress` (409 otherwise); each named department gets a co-handler
/// dispatch, and a department already holding an open dispatch is a 409.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/whistle", operation_id = "whistleTicket", tag = "tickets", request_body = WhistleRequest,
    params(("id" = uuid::Uuid, Path, description = "the id"), ("If-Match" = Option<String>, Header, description = "the ETag last read")),
    responses((status = 200, body = Ticket), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn whistle(
    ctx: web::Data<AppContext>,
    PathId(id): PathId,
    IfMatch(version): IfMatch,
    Permitted(caller, body, _): Permitted<may::DispatchTicket, WhistleRequest>,
) -> AppResult<HttpResponse> {
    Ok(with_etag(actix_web::http::StatusCode::OK, tickets::whistle(&ctx, &caller, id, version, body).await?))
}

/// Record the resident's rating (好差评, 回访).
///
/// The ticket must be `resolved` (409 otherwise). Score 3–5 closes it; 1–2 (差评) reopens it for rectification. A
/// grid worker rates only tickets they filed (403). An empty `comment` is as good as none.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/rating", operation_id = "rateTicket", tag = "tickets", request_body = RatingRequest,
    params(("id" = uuid::Uuid, Path, description = "the id"), ("If-Match" = Option<String>, Header, description = "the ETag last read")),
    responses((status = 200, body = Ticket, description = "closed (score ≥ 3) or reopened (差评)"), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn rate(
    ctx: web::Data<AppContext>,
    PathId(id): PathId,
    IfMatch(version): IfMatch,
    Permitted(caller, body, _): Permitted<may::RateTicket, RatingRequest>,
) -> AppResult<HttpResponse> {
    Ok(with_etag(actix_web::http::StatusCode::OK, tickets::rate(&ctx, &caller, id, version, body).await?))
}

/// Cancel a ticket (duplicate or withdrawn).
///
/// Only while `filed`, `dispatched` or `in_progress` (409 otherwise); open dispatches are cancelled with it and the
/// `reason` goes on the timeline.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/cancel", operation_id = "cancelTicket", tag = "tickets", request_body = ReasonRequest,
    params(("id" = uuid::Uuid, Path, description = "the id"), ("If-Match" = Option<String>, Header, description = "the ETag last read")),
    responses((status = 200, body = Ticket), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn cancel(
    ctx: web::Data<AppContext>,
    PathId(id): PathId,
    IfMatch(version): IfMatch,
    Permitted(caller, body, _): Permitted<may::DispatchTicket, ReasonRequest>,
) -> AppResult<HttpResponse> {
    Ok(with_etag(actix_web::http::StatusCode::OK, tickets::cancel(&ctx, &caller, id, version, body).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ContactQuery {
    /// Why the contact is needed (required; recorded in the audit log), e.g. 回访.
    reason: Option<String>,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Contact {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
}

/// Reveal the resident's contact details (audited).
///
/// The resident's name, phone and address unmasked — the only read that shows them, for the people who must call
/// back: the grid worker who filed it, the dispatcher in charge, a department that has acknowledged its dispatch
/// (403 for anyone else, supervisors and admins included). `reason` is required (422 without) and every reveal is
/// written to the audit log.
#[utoipa::path(get, path = "/api/v1/tickets/{id}/contact", operation_id = "revealTicketContact", tag = "tickets", params(("id" = uuid::Uuid, Path, description = "the id"), ContactQuery),
    responses((status = 200, body = Contact), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn contact(
    ctx: web::Data<AppContext>,
    caller: Caller,
    PathId(id): PathId,
    Query(q): Query<ContactQuery>,
) -> AppResult<web::Json<Contact>> {
    let contact = tickets::contact(&ctx, &caller, id, q.reason).await?;
    Ok(web::Json(Contact { name: contact.name, phone: contact.phone, address: contact.address }))
}

/// Erase the resident's personal data on their request.
///
/// Blanks the resident's name and phone; the ticket and its timeline stay. Recorded in the audit log with the
/// `reason`.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/erase-personal-data", operation_id = "erasePersonalData", params(("id" = uuid::Uuid, Path, description = "the id")), tag = "tickets", request_body = tickets::ErasureRequest,
    responses((status = 200, body = Ticket), (status = 403, body = Problem), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn erase(
    ctx: web::Data<AppContext>,
    PathId(id): PathId,
    Permitted(caller, body, _): Permitted<may::ErasePersonalData, tickets::ErasureRequest>,
) -> AppResult<HttpResponse> {
    Ok(with_etag(actix_web::http::StatusCode::OK, tickets::erase_personal_data(&ctx, &caller, id, body).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// login, login_failed, contact_revealed, user_changed, personal_data_erased, …
    action: Option<String>,
    actor: Option<uuid::Uuid>,
    limit: Option<u64>,
    cursor: Option<String>,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AuditRecord {
    pub id: uuid::Uuid,
    pub at: DateTime<Utc>,
    pub actor_id: Option<uuid::Uuid>,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub ip: Option<String>,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// The audit log, newest first.
///
/// Logins, failed logins, contact reveals, user changes, erasures. Admins see everything, supervisors the records
/// of their subtree.
#[utoipa::path(get, path = "/api/v1/audit", operation_id = "listAuditRecords", tag = "operations", params(AuditQuery),
    responses((status = 200, body = List<AuditRecord>), (status = 403, body = Problem)), security(("bearer" = [])))]
pub async fn audit(
    ctx: web::Data<AppContext>,
    PermittedQuery(caller, q, _): PermittedQuery<may::ReadAudit, AuditQuery>,
) -> AppResult<web::Json<List<AuditRecord>>> {
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let filter = crate::service::audit::AuditFilter { action: q.action, actor: q.actor };
    let found = crate::service::audit::list(&ctx, &caller, filter, page).await?;
    Ok(web::Json(List::from_page(found, |a| AuditRecord {
        id: a.id,
        at: a.at,
        actor_id: a.actor_id,
        action: a.action,
        target_type: a.target_type,
        target_id: a.target_id,
        ip: a.ip,
        detail: a.detail,
    })))
}
