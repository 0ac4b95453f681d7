//! Logging in and out, and turning a bearer token back into its user.

use entities::{api_token, user};
use rand::RngCore;
use sea_orm::{ActiveModelTrait, Set};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    context::AppContext,
    db::begin_write,
    domain::{access::Caller, password},
    error::{AppError, AppResult},
    repo,
};

#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: u64,
}

const WRONG_CREDENTIALS: &str = "wrong user name or password";

pub async fn login(ctx: &AppContext, username: &str, password_text: &str) -> AppResult<IssuedToken> {
    let found = super::users::by_username(&ctx.db, username.trim()).await?;
    // Verify against a decoy when the user is unknown, so timing does not reveal accounts.
    let stored_hash = found.as_ref().map_or(password::decoy_hash(), |u| u.password_hash.as_str());
    let password_ok = password::verify(password_text, stored_hash);
    let user = match found {
        Some(user) if password_ok && user.active => user,
        _ => return Err(AppError::Unauthenticated(WRONG_CREDENTIALS.into())),
    };

    let token = new_token();
    let now = ctx.clock.now();
    let ttl = ctx.settings.auth.token_ttl;
    let expires_at = now + chrono::Duration::from_std(ttl).map_err(|e| AppError::Internal(e.to_string()))?;
    let txn = begin_write(&ctx.db).await?;
    api_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user.id),
        token_hash: Set(token_hash(&token)),
        created_at: Set(now),
        expires_at: Set(expires_at),
        revoked_at: Set(None),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    tracing::info!(user_id = %user.id, "login");
    Ok(IssuedToken { access_token: token, expires_in: ttl.as_secs() })
}

pub async fn logout(ctx: &AppContext, token: &str) -> AppResult<()> {
    let txn = begin_write(&ctx.db).await?;
    repo::tokens::revoke(&txn, &token_hash(token), ctx.clock.now()).await?;
    txn.commit().await?;
    Ok(())
}

/// The caller behind a token, or 401 for an unknown, expired or revoked one.
pub async fn authenticate(ctx: &AppContext, token: &str) -> AppResult<Caller> {
    let user = repo::tokens::live_user(&ctx.db, &token_hash(token), ctx.clock.now())
        .await?
        .ok_or_else(|| AppError::Unauthenticated("the token is unknown, expired or revoked; log in again".into()))?;
    Ok(caller_of(&user))
}

pub fn caller_of(user: &user::Model) -> Caller {
    Caller {
        user_id: user.id,
        username: user.username.clone(),
        role: user.role,
        unit_id: user.unit_id,
        department_id: user.department_id,
    }
}

/// 32 random bytes, hex: unguessable, and only its hash is stored.
fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("gw_{}", hex::encode(bytes))
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
