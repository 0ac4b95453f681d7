use actix_web::{HttpResponse, http::header, web};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{
    dto::{Dispatch, DispatchOutcome, List, page_request},
    extract::{PathId, Permitted, Query, may},
    problem::Problem,
};
use crate::{
    context::AppContext,
    domain::{access::Caller, ticket::DispatchStatus},
    error::{AppError, AppResult},
    service::dispatches::{self, DispatchFilter, ProgressRequest, ResolveRequest, ReturnRequest},
};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DispatchQuery {
    /// pending, acknowledged, returned, resolved or cancelled
    status: Option<String>,
    ticket: Option<uuid::Uuid>,
    department: Option<uuid::Uuid>,
    limit: Option<u64>,
    cursor: Option<String>,
}

fn outcome(result: dispatches::DispatchOutcome) -> HttpResponse {
    let etag = super::tickets::etag(&result.ticket);
    HttpResponse::Ok().insert_header((header::ETAG, etag)).json(DispatchOutcome::from(result))
}

/// Dispatches, filtered by status, ticket or department.
///
/// Department staff see their own department's only; others see the dispatches of tickets in their jurisdiction. A
/// department's work queue is `?status=pending`.
#[utoipa::path(get, path = "/api/v1/dispatches", operation_id = "listDispatches", tag = "dispatches", params(DispatchQuery),
    responses((status = 200, body = List<Dispatch>, description = "department staff see their own department's only")), security(("bearer" = [])))]
pub async fn list(
    ctx: web::Data<AppContext>,
    caller: Caller,
    Query(q): Query<DispatchQuery>,
) -> AppResult<web::Json<List<Dispatch>>> {
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let status = q
        .status
        .map(|s| {
            DispatchStatus::parse(&s).ok_or_else(|| {
                AppError::invalid(
                    "status",
                    crate::domain::validate::Message::OneOf(
                        DispatchStatus::ALL.iter().map(ToString::to_string).collect(),
                    ),
                )
            })
        })
        .transpose()?;
    let filter = DispatchFilter { status, ticket: q.ticket, department: q.department };
    let found = dispatches::list(&ctx, &caller, filter, page).await?;
    Ok(web::Json(List::from_page(found, Dispatch::from)))
}

/// One dispatch.
///
/// Outside your view it is 404.
#[utoipa::path(get, path = "/api/v1/dispatches/{id}", operation_id = "getDispatch", params(("id" = uuid::Uuid, Path, description = "the id")), tag = "dispatches",
    responses((status = 200, body = Dispatch), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get(ctx: web::Data<AppContext>, caller: Caller, PathId(id): PathId) -> AppResult<web::Json<Dispatch>> {
    Ok(web::Json(dispatches::get(&ctx, &caller, id).await?.into()))
}

/// 签收/报到: acknowledge a dispatch.
///
/// The dispatch must be `pending` and your department's (409 otherwise); this stops its acknowledge clock. The
/// body, if any, is ignored (`{}` is customary).
#[utoipa::path(post, path = "/api/v1/dispatches/{id}/acknowledge", operation_id = "acknowledgeDispatch", params(("id" = uuid::Uuid, Path, description = "the id")), tag = "dispatches",
    responses((status = 200, body = DispatchOutcome, description = "签收/报到"), (status = 404, body = Problem), (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn acknowledge(ctx: web::Data<AppContext>, caller: Caller, PathId(id): PathId) -> AppResult<HttpResponse> {
    Ok(outcome(dispatches::acknowledge(&ctx, &caller, id).await?))
}

/// 退单: return a wrongly routed dispatch.
///
/// Only while `pending`, within `tickets.return_window` of the dispatch, and unless the dispatcher already refused
/// a return of it (409 in each case). The `reason` is required; the ticket goes back to the dispatcher.
#[utoipa::path(post, path = "/api/v1/dispatches/{id}/return", operation_id = "returnDispatch", params(("id" = uuid::Uuid, Path, description = "the id")), tag = "dispatches", request_body = ReturnRequest,
    responses((status = 200, body = DispatchOutcome, description = "退单: back to the dispatcher"), (status = 404, body = Problem), (status = 409, body = Problem, description = "not pending, window closed, or return already refused"), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn return_dispatch(
    ctx: web::Data<AppContext>,
    PathId(id): PathId,
    Permitted(caller, body, _): Permitted<may::HandleDispatch, ReturnRequest>,
) -> AppResult<HttpResponse> {
    Ok(outcome(dispatches::return_dispatch(&ctx, &caller, id, body).await?))
}

/// Refuse a 退单: the department must handle it.
///
/// The dispatch must be `returned` (409 otherwise); it becomes `pending` again and cannot be returned a second time
/// (首办负责).
#[utoipa::path(post, path = "/api/v1/dispatches/{id}/reject-return", operation_id = "rejectDispatchReturn", params(("id" = uuid::Uuid, Path, description = "the id")), tag = "dispatches", request_body = ReturnRequest,
    responses((status = 200, body = DispatchOutcome, description = "the dispatcher refuses the 退单; the department must handle it"), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn reject_return(
    ctx: web::Data<AppContext>,
    PathId(id): PathId,
    Permitted(caller, body, _): Permitted<may::DispatchTicket, ReturnRequest>,
) -> AppResult<HttpResponse> {
    Ok(outcome(dispatches::reject_return(&ctx, &caller, id, body).await?))
}

/// Post progress on a dispatch.
///
/// The dispatch must be `acknowledged` (409 otherwise). `contacted_resident: true` stops the first-contact clock.
#[utoipa::path(post, path = "/api/v1/dispatches/{id}/progress", operation_id = "postDispatchProgress", params(("id" = uuid::Uuid, Path, description = "the id")), tag = "dispatches", request_body = ProgressRequest,
    responses((status = 200, body = DispatchOutcome), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn progress(
    ctx: web::Data<AppContext>,
    PathId(id): PathId,
    Permitted(caller, body, _): Permitted<may::HandleDispatch, ProgressRequest>,
) -> AppResult<HttpResponse> {
    Ok(outcome(dispatches::progress(&ctx, &caller, id, body).await?))
}

/// 办结: resolve a dispatch with a reply.
///
/// The dispatch must be `acknowledged` (409 otherwise). When the primary dispatch is resolved the ticket becomes
/// `resolved` and awaits the resident's rating.
#[utoipa::path(post, path = "/api/v1/dispatches/{id}/resolve", operation_id = "resolveDispatch", params(("id" = uuid::Uuid, Path, description = "the id")), tag = "dispatches", request_body = ResolveRequest,
    responses((status = 200, body = DispatchOutcome, description = "办结"), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn resolve(
    ctx: web::Data<AppContext>,
    PathId(id): PathId,
    Permitted(caller, body, _): Permitted<may::HandleDispatch, ResolveRequest>,
) -> AppResult<HttpResponse> {
    Ok(outcome(dispatches::resolve(&ctx, &caller, id, body).await?))
}
