//! `/api/v1/api-keys`: the keys Open311 clients file with (admin only).

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{
    dto::{List, page_request},
    extract::{PathId, Permitted, PermittedQuery, may},
    grid_units::created,
    problem::Problem,
};
use crate::{
    context::AppContext,
    domain::access::Caller,
    error::AppResult,
    service::api_keys::{self, NewApiKey},
};

/// A key as listed: never the key itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// Set once revoked: the key is refused from then on.
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<entities::api_key::Model> for ApiKey {
    fn from(row: entities::api_key::Model) -> Self {
        Self {
            id: row.id,
            name: row.name,
            created_at: row.created_at,
            revoked_at: row.revoked_at,
            last_used_at: row.last_used_at,
        }
    }
}

/// A key just created, with the key itself — shown this once; only its hash is kept.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedApiKey {
    pub id: Uuid,
    pub name: String,
    /// Send it as `api_key` with Open311 POSTs. It cannot be shown again.
    pub key: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ApiKeyQuery {
    limit: Option<u64>,
    cursor: Option<String>,
}

/// Create an API key for an Open311 client.
///
/// The answer carries the key itself, this once; only its SHA-256 is stored. Open311 POSTs
/// (`/open311/v2/requests.json`) send it as `api_key`. Audited.
#[utoipa::path(post, path = "/api/v1/api-keys", operation_id = "createApiKey", tag = "open311", request_body = NewApiKey,
    responses((status = 201, body = IssuedApiKey), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    ctx: web::Data<AppContext>,
    Permitted(caller, input, _): Permitted<may::ManageUsers, NewApiKey>,
) -> AppResult<HttpResponse> {
    let issued = api_keys::create(&ctx, &caller, input).await?;
    let row = issued.row;
    let body = IssuedApiKey { id: row.id, name: row.name, key: issued.key, created_at: row.created_at };
    Ok(created(format!("/api/v1/api-keys/{}", row.id), body))
}

/// API keys, newest first.
///
/// Never the keys themselves: they are shown once, when created.
#[utoipa::path(get, path = "/api/v1/api-keys", operation_id = "listApiKeys", tag = "open311", params(ApiKeyQuery),
    responses((status = 200, body = List<ApiKey>), (status = 403, body = Problem)), security(("bearer" = [])))]
pub async fn list(
    ctx: web::Data<AppContext>,
    PermittedQuery(caller, q, _): PermittedQuery<may::ManageUsers, ApiKeyQuery>,
) -> AppResult<web::Json<List<ApiKey>>> {
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let found = api_keys::list(&ctx, &caller, page).await?;
    Ok(web::Json(List::from_page(found, ApiKey::from)))
}

/// Revoke an API key.
///
/// From now on the key is refused (403). Keys are kept for the record; revoking twice changes nothing. Audited.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", operation_id = "revokeApiKey", params(("id" = uuid::Uuid, Path, description = "the id")), tag = "open311",
    responses((status = 200, body = ApiKey, description = "the revoked key"), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn revoke(ctx: web::Data<AppContext>, caller: Caller, PathId(id): PathId) -> AppResult<web::Json<ApiKey>> {
    Ok(web::Json(api_keys::revoke(&ctx, &caller, id).await?.into()))
}
