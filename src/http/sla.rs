//! SLA policies, the business calendar, supervision orders, extension requests, escalation
//! rules, the outbox and metrics.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    dto::{EscalationRule, ExtensionRequest, List, Notification, SupervisionOrder, page_request},
    extract::{PathId, Permitted, PermittedQuery, Query, may},
    grid_units::created,
    problem::Problem,
};
use crate::{
    context::AppContext,
    domain::access::Caller,
    error::AppResult,
    metrics,
    repo::page::PageRequest,
    service::{
        calendar, extensions, operations,
        sla::{self, EffectivePolicy, PolicyBody},
        supervision::{self, OrderFilter, ReplyRequest, SuperviseRequest},
    },
};

/// [`page_request`] of a signed `limit`: -1 is as far outside 1–200 as 0 is, and is told
/// the range rather than "must be an integer".
fn page(limit: Option<i64>, cursor: Option<&str>) -> AppResult<PageRequest> {
    page_request(limit.map(|n| u64::try_from(n).unwrap_or(0)), cursor)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

/// The effective SLA policy of every category.
///
/// Durations per clock and priority, with the defaults filled in.
#[utoipa::path(get, path = "/api/v1/sla-policies", operation_id = "listSlaPolicies", tag = "sla", params(PageQuery),
    responses((status = 200, body = List<EffectivePolicy>, description = "the effective policy of every category")), security(("bearer" = [])))]
pub async fn policies(
    ctx: web::Data<AppContext>,
    PermittedQuery(caller, q, _): PermittedQuery<may::ReadRouting, PageQuery>,
) -> AppResult<web::Json<List<EffectivePolicy>>> {
    let page = page(q.limit, q.cursor.as_deref())?;
    Ok(web::Json(List::from_page(sla::policies(&ctx, &caller, page).await?, |p| p)))
}

/// The effective SLA policy of one category.
///
/// The path id is the category id.
#[utoipa::path(get, path = "/api/v1/sla-policies/{id}", operation_id = "getSlaPolicy", tag = "sla", params(("id" = uuid::Uuid, Path, description = "category id")),
    responses((status = 200, body = EffectivePolicy), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn policy(
    ctx: web::Data<AppContext>,
    caller: Caller,
    PathId(category): PathId,
) -> AppResult<web::Json<EffectivePolicy>> {
    Ok(web::Json(sla::policy(&ctx, &caller, category).await?))
}

/// Set the SLA policy of one category.
///
/// The path id is the category id. Affects clocks started from now on; running clocks keep their deadlines.
#[utoipa::path(put, path = "/api/v1/sla-policies/{id}", operation_id = "replaceSlaPolicy", tag = "sla", params(("id" = uuid::Uuid, Path, description = "category id")), request_body = PolicyBody,
    responses((status = 200, body = EffectivePolicy), (status = 404, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn put_policy(
    ctx: web::Data<AppContext>,
    PathId(category): PathId,
    Permitted(caller, body, _): Permitted<may::ManageReferenceData, PolicyBody>,
) -> AppResult<web::Json<EffectivePolicy>> {
    Ok(web::Json(sla::put_policy(&ctx, &caller, category, body).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeadlineQuery {
    /// RFC 3339 (`2026-11-27T09:00:00+08:00`), or a local time without offset
    /// (`2026-11-27T09:00:00`), read in the city's time zone.
    start: String,
    /// "30m", "2h working", "7d working"
    duration: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadlineAnswer {
    pub deadline: DateTime<Utc>,
    /// The answer crossed a year with no holiday schedule loaded: weekdays only.
    pub estimated: bool,
}

/// Compute a deadline with the business calendar.
///
/// The arithmetic the SLA clocks use (working hours, holidays, 调休 make-up days), for clients that show due dates.
/// `estimated` is true when the answer crosses a year with no holiday schedule loaded.
#[utoipa::path(get, path = "/api/v1/calendar/deadline", operation_id = "computeDeadline", tag = "sla", params(DeadlineQuery),
    responses((status = 200, body = DeadlineAnswer), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn deadline(
    ctx: web::Data<AppContext>,
    _caller: Caller,
    Query(q): Query<DeadlineQuery>,
) -> AppResult<web::Json<DeadlineAnswer>> {
    let found = calendar::deadline(&ctx, &q.start, &q.duration)?;
    Ok(web::Json(DeadlineAnswer { deadline: found.at, estimated: found.estimated }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CalendarYears {
    /// Years with a holiday schedule loaded; others count weekdays only.
    pub years: Vec<i32>,
}

/// The years with a holiday schedule loaded.
///
/// Other years count weekdays only.
#[utoipa::path(get, path = "/api/v1/calendar", operation_id = "listCalendarYears", tag = "sla", responses((status = 200, body = CalendarYears)), security(("bearer" = [])))]
pub async fn years(ctx: web::Data<AppContext>, _caller: Caller) -> AppResult<web::Json<CalendarYears>> {
    Ok(web::Json(CalendarYears { years: calendar::loaded_years(&ctx) }))
}

/// Load (or replace) a year's holiday schedule.
///
/// In the holiday-cn format: `{"year": 2027, "days": [{"name": "元旦", "date": "2027-01-01", "isOffDay": true}, …]}`.
#[utoipa::path(post, path = "/api/v1/calendar", operation_id = "loadCalendarYear", tag = "sla", request_body = Object,
    responses((status = 200, body = CalendarYears), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn add_year(
    ctx: web::Data<AppContext>,
    Permitted(caller, body, _): Permitted<may::ManageReferenceData, serde_json::Value>,
) -> AppResult<web::Json<CalendarYears>> {
    Ok(web::Json(CalendarYears { years: calendar::add_year(&ctx, &caller, body).await? }))
}

/// 督办: issue a supervision order on a ticket.
///
/// The ticket must not be closed or cancelled (409 otherwise) and must lie in your subtree. `due_at` must
/// lie in the future. The responsible department is notified.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/supervise", operation_id = "superviseTicket", params(("id" = uuid::Uuid, Path, description = "the id")), tag = "supervision", request_body = SuperviseRequest,
    responses((status = 201, body = SupervisionOrder), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn supervise(
    ctx: web::Data<AppContext>,
    PathId(id): PathId,
    Permitted(caller, body, _): Permitted<may::Supervise, SuperviseRequest>,
) -> AppResult<HttpResponse> {
    let order = supervision::supervise(&ctx, &caller, id, body).await?;
    Ok(created(format!("/api/v1/supervision-orders/{}", order.id), SupervisionOrder::from(order)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrderQuery {
    /// supervise or listed
    level: Option<String>,
    /// open or replied
    status: Option<String>,
    department: Option<uuid::Uuid>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// Supervision orders, filtered by level, status or department.
///
/// Department staff see their own department's orders; others the orders on tickets in their jurisdiction.
#[utoipa::path(get, path = "/api/v1/supervision-orders", operation_id = "listSupervisionOrders", tag = "supervision", params(OrderQuery),
    responses((status = 200, body = List<SupervisionOrder>)), security(("bearer" = [])))]
pub async fn orders(
    ctx: web::Data<AppContext>,
    caller: Caller,
    Query(q): Query<OrderQuery>,
) -> AppResult<web::Json<List<SupervisionOrder>>> {
    let page = page(q.limit, q.cursor.as_deref())?;
    let filter = OrderFilter { level: q.level, status: q.status, department: q.department };
    Ok(web::Json(List::from_page(supervision::list(&ctx, &caller, filter, page).await?, SupervisionOrder::from)))
}

/// Answer a supervision order.
///
/// For the department the order names; the order must be `open` (409 once answered).
#[utoipa::path(post, path = "/api/v1/supervision-orders/{id}/reply", operation_id = "replyToSupervisionOrder", params(("id" = uuid::Uuid, Path, description = "the id")), tag = "supervision", request_body = ReplyRequest,
    responses((status = 200, body = SupervisionOrder), (status = 404, body = Problem), (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn reply(
    ctx: web::Data<AppContext>,
    PathId(id): PathId,
    Permitted(caller, body, _): Permitted<may::HandleDispatch, ReplyRequest>,
) -> AppResult<web::Json<SupervisionOrder>> {
    Ok(web::Json(supervision::reply(&ctx, &caller, id, body).await?.into()))
}

/// Ask for more time to resolve a dispatch.
///
/// The dispatch must be `acknowledged` and its resolve clock still running (409 otherwise); the duration is capped
/// by `extensions.max_duration` (422). The dispatcher approves or rejects it.
#[utoipa::path(post, path = "/api/v1/dispatches/{id}/extension-requests", operation_id = "requestExtension", params(("id" = uuid::Uuid, Path, description = "the id")), tag = "dispatches", request_body = extensions::ExtensionBody,
    responses((status = 201, body = ExtensionRequest), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn request_extension(
    ctx: web::Data<AppContext>,
    PathId(id): PathId,
    Permitted(caller, body, _): Permitted<may::HandleDispatch, extensions::ExtensionBody>,
) -> AppResult<HttpResponse> {
    let request = extensions::request(&ctx, &caller, id, body).await?;
    Ok(created(format!("/api/v1/extension-requests/{}", request.id), ExtensionRequest::from(request)))
}

/// Approve an extension request: the resolve clock moves.
///
/// The request must be `pending` (409 otherwise).
#[utoipa::path(post, path = "/api/v1/extension-requests/{id}/approve", operation_id = "approveExtension", params(("id" = uuid::Uuid, Path, description = "the id")), tag = "dispatches", request_body = extensions::DecisionBody,
    responses((status = 200, body = ExtensionRequest, description = "the resolve clock moves"), (status = 404, body = Problem), (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn approve_extension(
    ctx: web::Data<AppContext>,
    PathId(id): PathId,
    Permitted(caller, body, _): Permitted<may::DispatchTicket, extensions::DecisionBody>,
) -> AppResult<web::Json<ExtensionRequest>> {
    Ok(web::Json(extensions::decide(&ctx, &caller, id, true, body).await?.into()))
}

/// Reject an extension request.
///
/// The request must be `pending` (409 otherwise); the clock keeps its deadline.
#[utoipa::path(post, path = "/api/v1/extension-requests/{id}/reject", operation_id = "rejectExtension", params(("id" = uuid::Uuid, Path, description = "the id")), tag = "dispatches", request_body = extensions::DecisionBody,
    responses((status = 200, body = ExtensionRequest), (status = 404, body = Problem), (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn reject_extension(
    ctx: web::Data<AppContext>,
    PathId(id): PathId,
    Permitted(caller, body, _): Permitted<may::DispatchTicket, extensions::DecisionBody>,
) -> AppResult<web::Json<ExtensionRequest>> {
    Ok(web::Json(extensions::decide(&ctx, &caller, id, false, body).await?.into()))
}

/// The escalation rules.
///
/// What happens at each warning and breach: who is notified, which supervision order is issued.
#[utoipa::path(get, path = "/api/v1/escalation-rules", operation_id = "listEscalationRules", tag = "operations", params(PageQuery), responses((status = 200, body = List<EscalationRule>)), security(("bearer" = [])))]
pub async fn rules(
    ctx: web::Data<AppContext>,
    PermittedQuery(caller, q, _): PermittedQuery<may::ReadRouting, PageQuery>,
) -> AppResult<web::Json<List<EscalationRule>>> {
    let page = page(q.limit, q.cursor.as_deref())?;
    Ok(web::Json(List::from_page(operations::rules(&ctx, &caller, page).await?, EscalationRule::from)))
}

/// Add an escalation rule.
///
/// Takes effect at the next sweep.
#[utoipa::path(post, path = "/api/v1/escalation-rules", operation_id = "createEscalationRule", tag = "operations", request_body = operations::RuleBody,
    responses((status = 201, body = EscalationRule), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn create_rule(
    ctx: web::Data<AppContext>,
    Permitted(caller, body, _): Permitted<may::Operate, operations::RuleBody>,
) -> AppResult<HttpResponse> {
    let rule = operations::create_rule(&ctx, &caller, body).await?;
    Ok(created(format!("/api/v1/escalation-rules/{}", rule.id), EscalationRule::from(rule)))
}

/// Replace an escalation rule.
///
/// Takes effect at the next sweep.
#[utoipa::path(put, path = "/api/v1/escalation-rules/{id}", operation_id = "replaceEscalationRule", params(("id" = uuid::Uuid, Path, description = "the id")), tag = "operations", request_body = operations::RuleBody,
    responses((status = 200, body = EscalationRule), (status = 404, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn replace_rule(
    ctx: web::Data<AppContext>,
    PathId(id): PathId,
    Permitted(caller, body, _): Permitted<may::Operate, operations::RuleBody>,
) -> AppResult<web::Json<EscalationRule>> {
    Ok(web::Json(operations::replace_rule(&ctx, &caller, id, body).await?.into()))
}

/// Delete an escalation rule.
///
/// Escalations already fired stay on the timelines.
#[utoipa::path(delete, path = "/api/v1/escalation-rules/{id}", operation_id = "deleteEscalationRule", params(("id" = uuid::Uuid, Path, description = "the id")), tag = "operations",
    responses((status = 204), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn delete_rule(ctx: web::Data<AppContext>, caller: Caller, PathId(id): PathId) -> AppResult<HttpResponse> {
    operations::delete_rule(&ctx, &caller, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NotificationQuery {
    /// pending, sent or dead
    status: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// The mail outbox, oldest first.
///
/// Every notification with its delivery status (pending, sent, failed): for an operator checking that mail goes
/// out.
#[utoipa::path(get, path = "/api/v1/notifications", operation_id = "listNotifications", tag = "operations", params(NotificationQuery),
    responses((status = 200, body = List<Notification>, description = "the outbox, oldest first")), security(("bearer" = [])))]
pub async fn notifications(
    ctx: web::Data<AppContext>,
    PermittedQuery(caller, q, _): PermittedQuery<may::Operate, NotificationQuery>,
) -> AppResult<web::Json<List<Notification>>> {
    let page = page(q.limit, q.cursor.as_deref())?;
    Ok(web::Json(List::from_page(operations::notifications(&ctx, &caller, q.status, page).await?, Notification::from)))
}

/// Prometheus metrics.
///
/// Text exposition format for a Prometheus scraper. No token needed; keep it off the public network.
#[utoipa::path(get, path = "/metrics", operation_id = "getMetrics", tag = "operations", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn prometheus(ctx: web::Data<AppContext>) -> HttpResponse {
    let text = metrics::render() + &ctx.statements.render();
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(text)
}
