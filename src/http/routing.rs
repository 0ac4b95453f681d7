use actix_web::{HttpResponse, web};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{
    dto::{List, RoutingResolution, RoutingRule, page_request},
    extract::{PathId, Permitted, PermittedQuery, may},
    grid_units::created,
    problem::Problem,
};
use crate::{
    context::AppContext,
    domain::access::Caller,
    error::AppResult,
    service::routing::{self, NewRoutingRule, RoutingRuleChanges, RoutingRuleFilter},
};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RoutingRuleQuery {
    category: Option<uuid::Uuid>,
    unit: Option<uuid::Uuid>,
    /// Rules whose primary department is this one.
    department: Option<uuid::Uuid>,
    limit: Option<u64>,
    cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ResolveQuery {
    /// Category id or code.
    category: String,
    /// Grid unit id or code.
    unit: String,
}

/// Routing rules, filtered by category, unit or department.
///
/// Each rule sends (category, unit subtree) to a primary department and optional co-handlers.
#[utoipa::path(get, path = "/api/v1/routing-rules", operation_id = "listRoutingRules", tag = "routing", params(RoutingRuleQuery),
    responses((status = 200, body = List<RoutingRule>), (status = 403, body = Problem)), security(("bearer" = [])))]
pub async fn list(
    ctx: web::Data<AppContext>,
    PermittedQuery(caller, q, _): PermittedQuery<may::ReadRouting, RoutingRuleQuery>,
) -> AppResult<web::Json<List<RoutingRule>>> {
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let filter = RoutingRuleFilter { category: q.category, unit: q.unit, department: q.department };
    let found = routing::list(&ctx, &caller, filter, page).await?;
    Ok(web::Json(List::from_page(found, RoutingRule::from)))
}

/// Create a routing rule.
///
/// One rule per (category, unit) pair (409 for a second). The most specific rule wins: deepest unit, then exact
/// category.
#[utoipa::path(post, path = "/api/v1/routing-rules", operation_id = "createRoutingRule", tag = "routing", request_body = NewRoutingRule,
    responses((status = 201, body = RoutingRule), (status = 409, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn create(
    ctx: web::Data<AppContext>,
    Permitted(caller, input, _): Permitted<may::ManageReferenceData, NewRoutingRule>,
) -> AppResult<HttpResponse> {
    let rule = routing::create(&ctx, &caller, input).await?;
    Ok(created(format!("/api/v1/routing-rules/{}", rule.rule.id), RoutingRule::from(rule)))
}

/// One routing rule.
///
/// With its departments.
#[utoipa::path(get, path = "/api/v1/routing-rules/{id}", operation_id = "getRoutingRule", params(("id" = uuid::Uuid, Path, description = "the id")), tag = "routing",
    responses((status = 200, body = RoutingRule), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get(ctx: web::Data<AppContext>, caller: Caller, PathId(id): PathId) -> AppResult<web::Json<RoutingRule>> {
    Ok(web::Json(routing::get(&ctx, &caller, id).await?.into()))
}

/// Change a routing rule.
///
/// Affects dispatches made from now on.
#[utoipa::path(patch, path = "/api/v1/routing-rules/{id}", operation_id = "updateRoutingRule", params(("id" = uuid::Uuid, Path, description = "the id")), tag = "routing", request_body = RoutingRuleChanges,
    responses((status = 200, body = RoutingRule), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn update(
    ctx: web::Data<AppContext>,
    PathId(id): PathId,
    Permitted(caller, changes, _): Permitted<may::ManageReferenceData, RoutingRuleChanges>,
) -> AppResult<web::Json<RoutingRule>> {
    Ok(web::Json(routing::update(&ctx, &caller, id, changes).await?.into()))
}

/// Delete a routing rule.
///
/// Tickets already dispatched keep their departments.
#[utoipa::path(delete, path = "/api/v1/routing-rules/{id}", operation_id = "deleteRoutingRule", params(("id" = uuid::Uuid, Path, description = "the id")), tag = "routing",
    responses((status = 204), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn delete(ctx: web::Data<AppContext>, caller: Caller, PathId(id): PathId) -> AppResult<HttpResponse> {
    routing::delete(&ctx, &caller, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Preview where a ticket would be routed.
///
/// For a category and unit (ids or codes): the rule that would apply and its departments, or none (the ticket then
/// stays with the township dispatcher).
#[utoipa::path(get, path = "/api/v1/routing/resolve", operation_id = "resolveRouting", tag = "routing", params(ResolveQuery),
    responses((status = 200, body = RoutingResolution), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn resolve(
    ctx: web::Data<AppContext>,
    PermittedQuery(caller, q, _): PermittedQuery<may::ReadRouting, ResolveQuery>,
) -> AppResult<web::Json<RoutingResolution>> {
    Ok(web::Json(routing::resolve(&ctx, &caller, &q.category, &q.unit).await?.into()))
}
