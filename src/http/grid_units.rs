use actix_web::{HttpResponse, http::header, web};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{
    dto::{GridUnit, List, page_request},
    extract::{PathId, Permitted, Query, may},
    problem::Problem,
};
use crate::{
    context::AppContext,
    domain::access::Caller,
    error::AppResult,
    service::grid_units::{self, GridUnitChanges, GridUnitFilter, NewGridUnit},
};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GridUnitQuery {
    /// city, county, township, community or grid
    #[param(value_type = Option<String>)]
    level: Option<entities::UnitLevel>,
    /// Direct children of this unit.
    parent: Option<uuid::Uuid>,
    code: Option<String>,
    /// The subtree of this unit, the unit included.
    under: Option<uuid::Uuid>,
    limit: Option<u64>,
    cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    limit: Option<u64>,
    cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LocateQuery {
    lat: f64,
    lon: f64,
}

/// Grid units, filtered by level, parent, code or subtree.
///
/// The unit tree city › county › township › community › grid, with boundaries (GeoJSON).
#[utoipa::path(get, path = "/api/v1/grid-units", operation_id = "listGridUnits", tag = "grid units", params(GridUnitQuery),
    responses((status = 200, body = List<GridUnit>), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn list(
    ctx: web::Data<AppContext>,
    caller: Caller,
    Query(q): Query<GridUnitQuery>,
) -> AppResult<web::Json<List<GridUnit>>> {
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let filter = GridUnitFilter { level: q.level, parent: q.parent, code: q.code, under: q.under };
    let found = grid_units::list(&ctx, &caller, filter, page).await?;
    Ok(web::Json(List::from_page(found, GridUnit::from)))
}

/// Create a grid unit.
///
/// Its level must sit one below its parent's (422 otherwise); the code is unique (409). A boundary is a GeoJSON Polygon or
/// MultiPolygon.
#[utoipa::path(post, path = "/api/v1/grid-units", operation_id = "createGridUnit", tag = "grid units", request_body = NewGridUnit,
    responses((status = 201, body = GridUnit), (status = 409, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn create(
    ctx: web::Data<AppContext>,
    Permitted(caller, input, _): Permitted<may::ManageReferenceData, NewGridUnit>,
) -> AppResult<HttpResponse> {
    let unit = grid_units::create(&ctx, &caller, input).await?;
    Ok(created(format!("/api/v1/grid-units/{}", unit.id), GridUnit::from(unit)))
}

/// One grid unit.
///
/// With its boundary, if any.
#[utoipa::path(get, path = "/api/v1/grid-units/{id}", operation_id = "getGridUnit", params(("id" = uuid::Uuid, Path, description = "the id")), tag = "grid units",
    responses((status = 200, body = GridUnit), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get(ctx: web::Data<AppContext>, caller: Caller, PathId(id): PathId) -> AppResult<web::Json<GridUnit>> {
    Ok(web::Json(grid_units::get(&ctx, &caller, id).await?.into()))
}

/// Change a grid unit.
///
/// Send only the fields to change. Tickets keep the unit they were filed in.
#[utoipa::path(patch, path = "/api/v1/grid-units/{id}", operation_id = "updateGridUnit", params(("id" = uuid::Uuid, Path, description = "the id")), tag = "grid units", request_body = GridUnitChanges,
    responses((status = 200, body = GridUnit), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn update(
    ctx: web::Data<AppContext>,
    PathId(id): PathId,
    Permitted(caller, changes, _): Permitted<may::ManageReferenceData, GridUnitChanges>,
) -> AppResult<web::Json<GridUnit>> {
    Ok(web::Json(grid_units::update(&ctx, &caller, id, changes).await?.into()))
}

/// Delete a grid unit.
///
/// Only a unit with no children and nothing referring to it (409 otherwise).
#[utoipa::path(delete, path = "/api/v1/grid-units/{id}", operation_id = "deleteGridUnit", params(("id" = uuid::Uuid, Path, description = "the id")), tag = "grid units",
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem, description = "still has children or is referenced")), security(("bearer" = [])))]
pub async fn delete(ctx: web::Data<AppContext>, caller: Caller, PathId(id): PathId) -> AppResult<HttpResponse> {
    grid_units::delete(&ctx, &caller, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The direct children of a grid unit.
///
/// For walking the tree one level at a time.
#[utoipa::path(get, path = "/api/v1/grid-units/{id}/children", operation_id = "listGridUnitChildren", tag = "grid units", params(("id" = uuid::Uuid, Path, description = "the id"), PageQuery),
    responses((status = 200, body = List<GridUnit>), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn children(
    ctx: web::Data<AppContext>,
    caller: Caller,
    PathId(id): PathId,
    Query(q): Query<PageQuery>,
) -> AppResult<web::Json<List<GridUnit>>> {
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let found = grid_units::children(&ctx, &caller, id, page).await?;
    Ok(web::Json(List::from_page(found, GridUnit::from)))
}

/// The grid unit holding a point.
///
/// The deepest unit whose boundary contains (`lat`, `lon`); 404 when the point is outside every boundary. A phone
/// without GPS lets the user pick the grid from `listGridUnits` instead.
#[utoipa::path(get, path = "/api/v1/grid-units/locate", operation_id = "locateGridUnit", tag = "grid units", params(LocateQuery),
    responses((status = 200, body = GridUnit, description = "the deepest unit whose boundary holds the point"),
        (status = 404, body = Problem, description = "outside every grid"), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn locate(
    ctx: web::Data<AppContext>,
    caller: Caller,
    Query(q): Query<LocateQuery>,
) -> AppResult<web::Json<GridUnit>> {
    Ok(web::Json(grid_units::locate(&ctx, &caller, q.lat, q.lon).await?.into()))
}

pub fn created<T: serde::Serialize>(location: String, body: T) -> HttpResponse {
    HttpResponse::Created().insert_header((header::LOCATION, location)).json(body)
}
