//! Logging in and out, and turning a bearer token back into its user.

use std::net::IpAddr;

use chrono::{DateTime, SubsecRound, Utc};
use entities::{api_token, login_failure, user};
use rand::RngCore;
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    context::AppContext,
    db::begin_write,
    domain::{access::Caller, password},
    error::{AppError, AppResult, Limit, Refusal},
    repo::{self, tokens::Session},
    service::audit::{self, Entry},
};

#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: u64,
}

const WRONG_CREDENTIALS: &str = "wrong user name or password";

fn token_refused() -> AppError {
    AppError::refused(
        Refusal::Unauthenticated,
        "登录令牌无效、已过期或已注销，请重新登录",
        "the token is unknown, expired or revoked; log in again",
    )
}

/// Checks the credentials and issues a token. Failures are counted per user name — whether
/// or not an account has it — so a name nobody has locks out like a real one and the
/// answers do not tell which accounts exist. A locked name answers 429 even with the right
/// password; the failure that reaches `security.lockout_after` locks it.
pub async fn login(
    ctx: &AppContext,
    username: &str,
    password_text: &str,
    ip: Option<IpAddr>,
) -> AppResult<IssuedToken> {
    ctx.limits.check_login(&ctx.db, ip, ctx.clock.now()).await?;
    let now = ctx.clock.now();
    let ip_text = ip.map(|ip| ip.to_string());
    let name = repo::login_failures::normalise(username);
    let found = super::users::by_username(&ctx.db, &name).await?;
    let attempt = |action| Entry {
        actor_id: None,
        action,
        target_type: "user",
        target_id: found.as_ref().map(|u| u.id.to_string()),
        ip: ip_text.clone(),
        detail: json!({"username": name}),
        unit_id: found.as_ref().and_then(|u| u.unit_id),
    };

    let locked =
        |failures: Option<login_failure::Model>| failures.and_then(|f| f.locked_until).filter(|until| *until > now);
    let refuse_locked = |locked_until: DateTime<Utc>| {
        let failures = ctx.settings.security.lockout_after;
        AppError::too_many_requests(Limit::AccountLocked { failures }, (locked_until - now).num_seconds().max(1) as u64)
    };
    if let Some(locked_until) = locked(repo::login_failures::find(&ctx.db, &name).await?) {
        let txn = begin_write(&ctx.db).await?;
        audit::record(&txn, attempt("login_locked"), now).await?;
        txn.commit().await?;
        return Err(refuse_locked(locked_until));
    }
    // Verify against a decoy when the user is unknown, so timing does not reveal accounts.
    // The decoy is made on the first login of any name, so that cost reveals nothing either.
    let decoy = password::decoy_hash();
    let stored_hash = found.as_ref().map_or(decoy, |u| u.password_hash.as_str());
    let password_ok = password::verify(password_text, stored_hash);
    let txn = begin_write(&ctx.db).await?;
    let user = match found.clone() {
        Some(user) if password_ok && user.active => user,
        _ => {
            let failures = repo::login_failures::count_failure(&txn, &name, now).await?;
            if failures >= ctx.settings.security.lockout_after {
                let lock = chrono::Duration::from_std(ctx.settings.security.lockout_for).unwrap_or_default();
                repo::login_failures::lock(&txn, &name, now + lock).await?;
            }
            audit::record(&txn, attempt("login_failed"), now).await?;
            txn.commit().await?;
            return Err(AppError::refused(Refusal::Unauthenticated, "用户名或密码不正确", WRONG_CREDENTIALS));
        }
    };

    // Attempts running in parallel may have locked the name since the look above.
    if let Some(locked_until) = locked(repo::login_failures::find(&txn, &name).await?) {
        audit::record(&txn, attempt("login_locked"), now).await?;
        txn.commit().await?;
        return Err(refuse_locked(locked_until));
    }
    repo::login_failures::clear(&txn, &name).await?;
    let session_started_at = new_session_start(&txn, user.id, now).await?;
    let issued = issue(ctx, &txn, user.id, session_started_at, now).await?;
    let entry = Entry {
        actor_id: Some(user.id),
        action: "login",
        target_type: "user",
        target_id: Some(user.id.to_string()),
        ip: ip_text,
        detail: json!({}),
        unit_id: user.unit_id,
    };
    audit::record(&txn, entry, now).await?;
    txn.commit().await?;
    tracing::info!(user_id = %user.id, "login");
    Ok(issued)
}

/// A fresh token for the caller's session; the presented one is revoked. The session keeps
/// its login time: the fresh token expires with the session at the latest, and once the
/// session is `auth.session_max_age` old there is nothing left to refresh (401).
pub async fn refresh(ctx: &AppContext, caller: &Caller, token: &str) -> AppResult<IssuedToken> {
    let now = ctx.clock.now();
    let hash = token_hash(token);
    let txn = begin_write(&ctx.db).await?;
    let presented = repo::tokens::live_token(&txn, &hash, now).await?.filter(|t| t.user_id == caller.user_id);
    let Some(presented) = presented else {
        return Err(token_refused());
    };
    let session_started_at = presented.session_started_at.unwrap_or(presented.created_at);
    if now >= session_end(ctx, session_started_at)? {
        return Err(AppError::refused(
            Refusal::Unauthenticated,
            "登录已超过最长有效期，请重新登录",
            "the session has reached its maximum age; log in again",
        ));
    }
    if repo::tokens::revoke(&txn, &hash, now).await? == 0 {
        return Err(token_refused());
    }
    let issued = issue(ctx, &txn, caller.user_id, session_started_at, now).await?;
    txn.commit().await?;
    ctx.tokens.forget_token(&hash);
    Ok(issued)
}

/// A new token of the session that began at `session_started_at`, valid for `auth.token_ttl`
/// but not past the session's end.
async fn issue(
    ctx: &AppContext,
    txn: &impl ConnectionTrait,
    user_id: Uuid,
    session_started_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> AppResult<IssuedToken> {
    let ttl = chrono::Duration::from_std(ctx.settings.auth.token_ttl).map_err(|e| AppError::Internal(e.to_string()))?;
    let expires_at = (now + ttl).min(session_end(ctx, session_started_at)?);
    let token = new_token();
    api_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        token_hash: Set(token_hash(&token)),
        created_at: Set(now),
        expires_at: Set(expires_at),
        revoked_at: Set(None),
        session_started_at: Set(Some(session_started_at)),
    }
    .insert(txn)
    .await?;
    // To the nearest second: the stored login time has lost the clock's sub-microseconds.
    let expires_in = u64::try_from(((expires_at - now).num_milliseconds() + 500) / 1000).unwrap_or(0);
    Ok(IssuedToken { access_token: token, expires_in })
}

/// The login time of a new session of `user_id`: `now`, unless another session of the user
/// began at that very instant (two phones, or a clock tests hold still); then the next free
/// microsecond, so the login time names one session ([`Session`]). Taken inside the login's
/// write transaction: on SQLite logins are serialised; on PostgreSQL two logins of one user
/// would have to start in the same microsecond to share a session.
async fn new_session_start(txn: &impl ConnectionTrait, user_id: Uuid, now: DateTime<Utc>) -> AppResult<DateTime<Utc>> {
    // Whole microseconds: what PostgreSQL stores, so the value read back compares equal.
    let mut started_at = now.trunc_subsecs(6);
    let taken = repo::tokens::session_starts_from(txn, user_id, started_at).await?;
    while taken.contains(&started_at) {
        started_at += chrono::Duration::microseconds(1);
    }
    Ok(started_at)
}

fn session_end(ctx: &AppContext, session_started_at: DateTime<Utc>) -> AppResult<DateTime<Utc>> {
    let max_age =
        chrono::Duration::from_std(ctx.settings.auth.session_max_age).map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(session_started_at + max_age)
}

pub async fn logout(ctx: &AppContext, token: &str) -> AppResult<()> {
    let hash = token_hash(token);
    let txn = begin_write(&ctx.db).await?;
    repo::tokens::revoke(&txn, &hash, ctx.clock.now()).await?;
    txn.commit().await?;
    ctx.tokens.forget_token(&hash);
    Ok(())
}

/// Whether the session is still live: refreshed or not, but not logged out, revoked or
/// expired. Asks the database: long-lived connections (event streams) use it to end with
/// their session.
pub async fn session_is_live(ctx: &AppContext, session: &Session) -> AppResult<bool> {
    Ok(repo::tokens::session_is_live(&ctx.db, session, ctx.clock.now()).await?)
}

/// The caller behind a token and the session it belongs to, or 401 as [`authenticate`].
pub async fn authenticate_session(ctx: &AppContext, token: &str) -> AppResult<(Caller, Session)> {
    let caller = authenticate(ctx, token).await?;
    let session = repo::tokens::session_of(&ctx.db, &token_hash(token)).await?.ok_or_else(token_refused)?;
    Ok((caller, session))
}

/// The caller behind a token, or 401 for an unknown, expired or revoked one: one query (token,
/// user and home unit together), or none while the token is in this process's cache (see
/// [`super::token_cache`] for how long a revocation elsewhere may take to reach it).
pub async fn authenticate(ctx: &AppContext, token: &str) -> AppResult<Caller> {
    let hash = token_hash(token);
    let now = ctx.clock.now();
    if let Some(caller) = ctx.tokens.get(&hash, now) {
        return Ok(caller);
    }
    let found = repo::tokens::live_caller(&ctx.db, &hash, now).await?.ok_or_else(token_refused)?;
    let expires_at = found.expires_at;
    let caller = caller_of_live(found);
    ctx.tokens.put(&hash, &caller, now, expires_at);
    Ok(caller)
}

/// The caller behind a live token, as read in one statement.
pub fn caller_of_live(found: repo::tokens::LiveCaller) -> Caller {
    Caller {
        user_id: found.user_id,
        username: found.username,
        role: found.role,
        unit_id: found.unit_id,
        department_id: found.department_id,
        home_path: found.home_path,
        ip: None,
    }
}

pub fn caller_of(user: &user::Model) -> Caller {
    Caller {
        user_id: user.id,
        username: user.username.clone(),
        role: user.role,
        unit_id: user.unit_id,
        department_id: user.department_id,
        home_path: None,
        ip: None,
    }
}

/// 32 random bytes, hex: unguessable, and only its hash is stored.
fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("gw_{}", hex::encode(bytes))
}

pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
