//! Duplicate reports (重复诉求): the possible duplicates of a ticket, and merging one (并单).

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::{
    dto::{List, Ticket},
    extract::{IfMatch, PathId, Permitted, may},
    problem::Problem,
    tickets::with_etag,
};
use crate::{
    context::AppContext,
    domain::access::Caller,
    error::AppResult,
    service::{
        duplicates::{self, DuplicateCandidate},
        tickets::{self, MergeRequest},
    },
};

/// A freshly filed ticket with the open tickets that may report the same problem.
#[derive(Debug, Serialize, ToSchema)]
pub struct FiledTicket {
    #[serde(flatten)]
    pub ticket: Ticket,
    /// Open tickets of the same category within `governance.duplicate_radius_m`, filed within
    /// `governance.duplicate_window_days`, that you may see; nearest first (at most 20).
    pub possible_duplicates: Vec<DuplicateCandidate>,
}

/// Possible duplicates of a ticket (重复诉求).
///
/// Open tickets (filed, dispatched, in progress or resolved) of the same category within `governance.duplicate_radius_m`
/// (100 m) of it, filed within `governance.duplicate_window_days` (7) of it, before or after; nearest first, at most 20;
/// only those your jurisdiction lets you see. Empty for a ticket without a location. `next_cursor` is always null.
#[utoipa::path(get, path = "/api/v1/tickets/{id}/possible-duplicates", operation_id = "listPossibleDuplicates", tag = "tickets",
    params(("id" = uuid::Uuid, Path, description = "the id")),
    responses((status = 200, body = List<DuplicateCandidate>), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn possible_duplicates(
    ctx: web::Data<AppContext>,
    PathId(id): PathId,
    caller: Caller,
) -> AppResult<web::Json<List<DuplicateCandidate>>> {
    Ok(web::Json(List { items: duplicates::of_ticket(&ctx, &caller, id).await?, next_cursor: None }))
}

/// Merge a duplicate into another ticket (并单).
///
/// The ticket in the path is the duplicate: it ends as `merged` — its open dispatches, SLA clocks and supervision
/// orders end as on closing — and its timeline records the merge (`merged`); the ticket named by `into` carries on
/// and its timeline lists the duplicate (`duplicate_merged`). The duplicate's filer may follow the survivor from then
/// on. Refused: merging into itself (422), into a ticket outside your jurisdiction (422 on `into`) or one that has
/// ended (409), a duplicate that has ended or is resolved (409), tickets of different categories unless
/// `across_categories` is `true` (422). Dispatchers only. The answer is the duplicate.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/merge", operation_id = "mergeTicket", tag = "tickets", request_body = MergeRequest,
    params(("id" = uuid::Uuid, Path, description = "the duplicate's id"), ("If-Match" = Option<String>, Header, description = "the duplicate's ETag last read")),
    responses((status = 200, body = Ticket), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn merge(
    ctx: web::Data<AppContext>,
    PathId(id): PathId,
    IfMatch(version): IfMatch,
    Permitted(caller, body, _): Permitted<may::DispatchTicket, MergeRequest>,
) -> AppResult<HttpResponse> {
    Ok(with_etag(actix_web::http::StatusCode::OK, tickets::merge(&ctx, &caller, id, version, body).await?))
}
