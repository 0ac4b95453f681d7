use actix_web::{HttpResponse, web};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{
    dto::{Department, List, page_request},
    extract::{PathId, Permitted, Query, may},
    grid_units::created,
    problem::Problem,
};
use crate::{
    context::AppContext,
    domain::access::Caller,
    error::AppResult,
    service::departments::{self, DepartmentChanges, DepartmentFilter, NewDepartment},
};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DepartmentQuery {
    unit: Option<uuid::Uuid>,
    code: Option<String>,
    active: Option<bool>,
    limit: Option<u64>,
    cursor: Option<String>,
}

/// Departments, filtered by unit, code or active flag.
///
/// Reference data for dispatching and filters.
#[utoipa::path(get, path = "/api/v1/departments", operation_id = "listDepartments", tag = "departments", params(DepartmentQuery),
    responses((status = 200, body = List<Department>), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn list(
    ctx: web::Data<AppContext>,
    caller: Caller,
    Query(q): Query<DepartmentQuery>,
) -> AppResult<web::Json<List<Department>>> {
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let filter = DepartmentFilter { unit: q.unit, code: q.code, active: q.active };
    let found = departments::list(&ctx, &caller, filter, page).await?;
    Ok(web::Json(List::from_page(found, Department::from)))
}

/// Create a department.
///
/// The code is unique (409); the notification e-mail receives its dispatches' mails.
#[utoipa::path(post, path = "/api/v1/departments", operation_id = "createDepartment", tag = "departments", request_body = NewDepartment,
    responses((status = 201, body = Department), (status = 409, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn create(
    ctx: web::Data<AppContext>,
    Permitted(caller, input, _): Permitted<may::ManageReferenceData, NewDepartment>,
) -> AppResult<HttpResponse> {
    let department = departments::create(&ctx, &caller, input).await?;
    Ok(created(format!("/api/v1/departments/{}", department.id), Department::from(department)))
}

/// One department.
///
/// Reference data.
#[utoipa::path(get, path = "/api/v1/departments/{id}", operation_id = "getDepartment", params(("id" = uuid::Uuid, Path, description = "the id")), tag = "departments",
    responses((status = 200, body = Department), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get(ctx: web::Data<AppContext>, caller: Caller, PathId(id): PathId) -> AppResult<web::Json<Department>> {
    Ok(web::Json(departments::get(&ctx, &caller, id).await?.into()))
}

/// Change a department.
///
/// Send only the fields to change; `active: false` retires it from routing without deleting it.
#[utoipa::path(patch, path = "/api/v1/departments/{id}", operation_id = "updateDepartment", params(("id" = uuid::Uuid, Path, description = "the id")), tag = "departments", request_body = DepartmentChanges,
    responses((status = 200, body = Department), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn update(
    ctx: web::Data<AppContext>,
    PathId(id): PathId,
    Permitted(caller, changes, _): Permitted<may::ManageReferenceData, DepartmentChanges>,
) -> AppResult<web::Json<Department>> {
    Ok(web::Json(departments::update(&ctx, &caller, id, changes).await?.into()))
}

/// Delete a department.
///
/// Only when nothing refers to it (409 otherwise: set `active` to false instead).
#[utoipa::path(delete, path = "/api/v1/departments/{id}", operation_id = "deleteDepartment", params(("id" = uuid::Uuid, Path, description = "the id")), tag = "departments",
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem, description = "still referenced; set active=false instead")), security(("bearer" = [])))]
pub async fn delete(ctx: web::Data<AppContext>, caller: Caller, PathId(id): PathId) -> AppResult<HttpResponse> {
    departments::delete(&ctx, &caller, id).await?;
    Ok(HttpResponse::NoContent().finish())
}
