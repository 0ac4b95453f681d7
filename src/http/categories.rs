use actix_web::{HttpResponse, web};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{
    dto::{Category, List, page_request},
    extract::{PathId, Permitted, Query, may},
    grid_units::created,
    problem::Problem,
};
use crate::{
    context::AppContext,
    domain::access::Caller,
    error::AppResult,
    service::categories::{self, CategoryChanges, CategoryFilter, NewCategory},
};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CategoryQuery {
    code: Option<String>,
    active: Option<bool>,
    limit: Option<u64>,
    cursor: Option<String>,
}

/// Request categories, filtered by code or active flag.
///
/// The taxonomy a ticket is filed under, with its default priority.
#[utoipa::path(get, path = "/api/v1/categories", operation_id = "listCategories", tag = "categories", params(CategoryQuery),
    responses((status = 200, body = List<Category>), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn list(
    ctx: web::Data<AppContext>,
    caller: Caller,
    Query(q): Query<CategoryQuery>,
) -> AppResult<web::Json<List<Category>>> {
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let filter = CategoryFilter { code: q.code, active: q.active };
    let found = categories::list(&ctx, &caller, filter, page).await?;
    Ok(web::Json(List::from_page(found, Category::from)))
}

/// Create a category.
///
/// The code is unique (409).
#[utoipa::path(post, path = "/api/v1/categories", operation_id = "createCategory", tag = "categories", request_body = NewCategory,
    responses((status = 201, body = Category), (status = 409, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn create(
    ctx: web::Data<AppContext>,
    Permitted(caller, input, _): Permitted<may::ManageReferenceData, NewCategory>,
) -> AppResult<HttpResponse> {
    let category = categories::create(&ctx, &caller, input).await?;
    Ok(created(format!("/api/v1/categories/{}", category.id), Category::from(category)))
}

/// One category.
///
/// Reference data.
#[utoipa::path(get, path = "/api/v1/categories/{id}", operation_id = "getCategory", params(("id" = uuid::Uuid, Path, description = "the id")), tag = "categories",
    responses((status = 200, body = Category), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get(ctx: web::Data<AppContext>, caller: Caller, PathId(id): PathId) -> AppResult<web::Json<Category>> {
    Ok(web::Json(categories::get(&ctx, &caller, id).await?.into()))
}

/// Change a category.
///
/// Send only the fields to change; `active: false` stops new filings under it.
#[utoipa::path(patch, path = "/api/v1/categories/{id}", operation_id = "updateCategory", params(("id" = uuid::Uuid, Path, description = "the id")), tag = "categories", request_body = CategoryChanges,
    responses((status = 200, body = Category), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn update(
    ctx: web::Data<AppContext>,
    PathId(id): PathId,
    Permitted(caller, changes, _): Permitted<may::ManageReferenceData, CategoryChanges>,
) -> AppResult<web::Json<Category>> {
    Ok(web::Json(categories::update(&ctx, &caller, id, changes).await?.into()))
}

/// Delete a category.
///
/// Only when nothing refers to it (409 otherwise: set `active` to false instead).
#[utoipa::path(delete, path = "/api/v1/categories/{id}", operation_id = "deleteCategory", params(("id" = uuid::Uuid, Path, description = "the id")), tag = "categories",
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem, description = "still referenced; set active=false instead")), security(("bearer" = [])))]
pub async fn delete(ctx: web::Data<AppContext>, caller: Caller, PathId(id): PathId) -> AppResult<HttpResponse> {
    categories::delete(&ctx, &caller, id).await?;
    Ok(HttpResponse::NoContent().finish())
}
