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

/// Log in: exchange a user name and password for a bearer token.
///
/// Send the token as `Authorization: Bearer <token>` on every other call. The token lives `auth.token_ttl`; renew
/// it with `refreshToken` before it expires. Five failed attempts lock the *name* (whether or not an account has
/// it) for 15 minutes, and each client address may try only a few logins a minute: both answer 429 with
/// `Retry-After`. No token needed.
#[utoipa::path(post, path = "/api/v1/auth/token", operation_id = "logIn", tag = "auth", request_body = Credentials,
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem, description = "wrong user name or password, or the account is disabled (answered alike)"),
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

/// Swap the current token for a fresh one.
///
/// A fresh token for the same session; the presented one stops working. The session keeps its login time: once it
/// is `auth.session_max_age` old (7 days by default) the answer is 401 and the user logs in again.
#[utoipa::path(post, path = "/api/v1/auth/refresh", operation_id = "refreshToken", tag = "auth",
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

/// Log out: revoke the presented token.
///
/// The token stops working at once; other sessions of the same user stay.
#[utoipa::path(post, path = "/api/v1/auth/logout", operation_id = "logOut", tag = "auth",
    responses((status = 204, description = "the token is revoked"), (status = 401, body = Problem)), security(("bearer" = [])))]
pub async fn logout(ctx: web::Data<AppContext>, _caller: Caller, req: HttpRequest) -> AppResult<HttpResponse> {
    if let Some(token) = bearer_token(&req) {
        service::auth::logout(&ctx, &token).await?;
    }
    Ok(HttpResponse::NoContent().finish())
}

/// The signed-in user.
///
/// Who the token belongs to: role, home unit or department. A client shows or hides actions from the role.
#[utoipa::path(get, path = "/api/v1/me", operation_id = "getMe", tag = "auth",
    responses((status = 200, body = User), (status = 401, body = Problem)), security(("bearer" = [])))]
pub async fn me(ctx: web::Data<AppContext>, caller: Caller) -> AppResult<web::Json<User>> {
    let user = super::super::service::found::<entities::user::Entity>(&ctx.db, caller.user_id, "user").await?;
    Ok(web::Json(user.into()))
}
