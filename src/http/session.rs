//! Log in, log out, and who am I.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    dto::User,
    extract::{Json, bearer_token, client_ip},
    problem::Problem,
};
use crate::{context::AppContext, domain::access::Caller, error::AppResult, service};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the token expires: `auth.token_ttl`, but never past the end of the
    /// session (`auth.session_max_age` after its login).
    pub expires_in: u64,
}

#[utoipa::path(post, path = "/api/v1/auth/token", tag = "auth", request_body = Credentials,
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem),
        (status = 429, body = Problem, description = "this user name is locked after repeated failures (whether or not an account has it), or too many logins from this address; see Retry-After")))]
pub async fn token(
    ctx: web::Data<AppContext>,
    req: HttpRequest,
    Json(credentials): Json<Credentials>,
) -> AppResult<web::Json<TokenResponse>> {
    let ip = client_ip(&req, ctx.settings.security.trust_forwarded_for);
    let issued = service::auth::login(&ctx, &credentials.username, &credentials.password, ip).await?;
    Ok(web::Json(TokenResponse {
        access_token: issued.access_token,
        token_type: "Bearer",
        expires_in: issued.expires_in,
    }))
}

/// A fresh token for the session; the presented one stops working. The session keeps its
/// login time: once it is `auth.session_max_age` old (7 days by default) the answer is 401
/// and the user logs in again.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth",
    responses((status = 200, body = TokenResponse),
        (status = 401, body = Problem, description = "the token is unknown, expired or revoked, or the session reached its maximum age")),
    security(("bearer" = [])))]
pub async fn refresh(
    ctx: web::Data<AppContext>,
    caller: Caller,
    req: HttpRequest,
) -> AppResult<web::Json<TokenResponse>> {
    let token = bearer_token(&req).unwrap_or_default();
    let issued = service::auth::refresh(&ctx, &caller, &token).await?;
    Ok(web::Json(TokenResponse {
        access_token: issued.access_token,
        token_type: "Bearer",
        expires_in: issued.expires_in,
    }))
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    responses((status = 204, description = "the token is revoked"), (status = 401, body = Problem)), security(("bearer" = [])))]
pub async fn logout(ctx: web::Data<AppContext>, _caller: Caller, req: HttpRequest) -> AppResult<HttpResponse> {
    if let Some(token) = bearer_token(&req) {
        service::auth::logout(&ctx, &token).await?;
    }
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/api/v1/me", tag = "auth",
    responses((status = 200, body = User), (status = 401, body = Problem)), security(("bearer" = [])))]
pub async fn me(ctx: web::Data<AppContext>, caller: Caller) -> AppResult<web::Json<User>> {
    let user = super::super::service::found::<entities::user::Entity>(&ctx.db, caller.user_id, "user").await?;
    Ok(web::Json(user.into()))
}
