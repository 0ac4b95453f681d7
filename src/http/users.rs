use actix_web::{HttpResponse, web};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{
    dto::{List, User, page_request},
    extract::{PathId, Permitted, PermittedQuery, may},
    grid_units::created,
    problem::Problem,
};
use crate::{
    context::AppContext,
    domain::access::Caller,
    error::AppResult,
    service::users::{self, NewUser, UserChanges, UserFilter},
};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    #[param(value_type = Option<String>)]
    role: Option<entities::Role>,
    unit: Option<uuid::Uuid>,
    department: Option<uuid::Uuid>,
    active: Option<bool>,
    username: Option<String>,
    limit: Option<u64>,
    cursor: Option<String>,
}

/// Users in your jurisdiction.
///
/// Admins see everyone; supervisors the users whose home unit or department lies in their unit's subtree.
#[utoipa::path(get, path = "/api/v1/users", operation_id = "listUsers", tag = "users", params(UserQuery),
    responses((status = 200, body = List<User>), (status = 403, body = Problem)), security(("bearer" = [])))]
pub async fn list(
    ctx: web::Data<AppContext>,
    PermittedQuery(caller, q, _): PermittedQuery<may::ReadUsers, UserQuery>,
) -> AppResult<web::Json<List<User>>> {
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let filter =
        UserFilter { role: q.role, unit: q.unit, department: q.department, active: q.active, username: q.username };
    let found = users::list(&ctx, &caller, filter, page).await?;
    Ok(web::Json(List::from_page(found, User::from)))
}

/// Create a user.
///
/// Unit roles (`grid_worker`, `dispatcher`, `supervisor`) need `unit_id`; `department_staff` needs `department_id`.
/// User names are unique (409); the password must meet the policy (422 says why).
#[utoipa::path(post, path = "/api/v1/users", operation_id = "createUser", tag = "users", request_body = NewUser,
    responses((status = 201, body = User), (status = 409, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn create(
    ctx: web::Data<AppContext>,
    Permitted(caller, input, _): Permitted<may::ManageUsers, NewUser>,
) -> AppResult<HttpResponse> {
    let user = users::create(&ctx, &caller, input).await?;
    Ok(created(format!("/api/v1/users/{}", user.id), User::from(user)))
}

/// One user.
///
/// A user outside your jurisdiction is 404, as one that does not exist.
#[utoipa::path(get, path = "/api/v1/users/{id}", operation_id = "getUser", params(("id" = uuid::Uuid, Path, description = "the id")), tag = "users",
    responses((status = 200, body = User), (status = 403, body = Problem), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get(ctx: web::Data<AppContext>, caller: Caller, PathId(id): PathId) -> AppResult<web::Json<User>> {
    Ok(web::Json(users::get(&ctx, &caller, id).await?.into()))
}

/// Change a user (role, home, password, active).
///
/// Send only the fields to change. Disabling a user or changing the password ends their sessions.
#[utoipa::path(patch, path = "/api/v1/users/{id}", operation_id = "updateUser", params(("id" = uuid::Uuid, Path, description = "the id")), tag = "users", request_body = UserChanges,
    responses((status = 200, body = User), (status = 404, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn update(
    ctx: web::Data<AppContext>,
    PathId(id): PathId,
    Permitted(caller, changes, _): Permitted<may::ManageUsers, UserChanges>,
) -> AppResult<web::Json<User>> {
    Ok(web::Json(users::update(&ctx, &caller, id, changes).await?.into()))
}

/// Disable a user.
///
/// Users are kept for the record: this disables the account, ends its sessions and answers the disabled user.
#[utoipa::path(delete, path = "/api/v1/users/{id}", operation_id = "disableUser", params(("id" = uuid::Uuid, Path, description = "the id")), tag = "users",
    responses((status = 200, body = User, description = "the disabled user"), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn delete(ctx: web::Data<AppContext>, caller: Caller, PathId(id): PathId) -> AppResult<web::Json<User>> {
    Ok(web::Json(users::disable(&ctx, &caller, id).await?.into()))
}
