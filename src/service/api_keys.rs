//! API keys of the city's client systems (resident apps, the 12345 hotline platform) that
//! file through Open311. Admins create, list and revoke them; each change is audited. Only a
//! SHA-256 of a key is stored, the key itself is shown once. Each key files through a service
//! account of its own — a disabled `grid_worker` account at the Open311 jurisdiction's root
//! unit: it may file anywhere in the jurisdiction, can never log in, and makes the key the
//! filer on the timeline and the key the filing rate limit counts.

use std::net::IpAddr;

use entities::{Role, api_key, user};
use rand::RngCore;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, Set};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    audit::{self, Entry},
    found, require,
};
use crate::{
    context::AppContext,
    db::begin_write,
    domain::{
        access::{Caller, Permission},
        validate::FieldErrors,
    },
    error::{AppError, AppResult, Refusal},
    repo::{
        self,
        page::{self, Order, Page, PageRequest},
    },
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    /// Who the key is for, e.g. "12345 热线平台".
    pub name: String,
}

/// A key just created: the row, and the key itself — shown this once.
pub struct IssuedKey {
    pub row: api_key::Model,
    pub key: String,
}

pub async fn create(ctx: &AppContext, caller: &Caller, input: NewApiKey) -> AppResult<IssuedKey> {
    require(caller, Permission::ManageUsers)?;
    let mut errors = FieldErrors::new();
    let name = errors.text("name", &input.name, 100);
    errors.into_result()?;

    let txn = begin_write(&ctx.db).await?;
    let code = &ctx.settings.open311.jurisdiction_id;
    let root = super::grid_units::by_code(&txn, code).await?.ok_or_else(|| {
        AppError::refused(
            Refusal::Conflict,
            format!("Open311 辖区 {code}（open311.jurisdiction_id）不在网格树中，请先建立该单元"),
            format!(
                "the Open311 jurisdiction {code} (open311.jurisdiction_id) is no unit of the tree; create it first"
            ),
        )
    })?;
    let now = ctx.clock.now();
    let id = Uuid::now_v7();
    let account = user::ActiveModel {
        id: Set(Uuid::now_v7()),
        username: Set(format!("open311-{}", id.simple())),
        display_name: Set(format!("Open311：{name}")),
        role: Set(Role::GridWorker),
        unit_id: Set(Some(root.id)),
        department_id: Set(None),
        // No password verifies against an empty hash, and the account is disabled.
        password_hash: Set(String::new()),
        email: Set(None),
        failed_logins: Set(0),
        locked_until: Set(None),
        active: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let key = new_key();
    let row = api_key::ActiveModel {
        id: Set(id),
        name: Set(name.clone()),
        key_hash: Set(key_hash(&key)),
        user_id: Set(account.id),
        created_by: Set(Some(caller.user_id).filter(|id| !id.is_nil())),
        created_at: Set(now),
        revoked_at: Set(None),
        last_used_at: Set(None),
    }
    .insert(&txn)
    .await?;
    let detail = json!({"name": name, "service_account": account.username});
    audit::record(&txn, Entry::by(caller, "api_key_created", "api_key", id, detail).in_unit(Some(root.id)), now)
        .await?;
    txn.commit().await?;
    Ok(IssuedKey { row, key })
}

/// Every key, newest first; never the key itself.
pub async fn list(ctx: &AppContext, caller: &Caller, request: PageRequest) -> AppResult<Page<api_key::Model>> {
    require(caller, Permission::ManageUsers)?;
    let select = api_key::Entity::find();
    Ok(page::fetch_ordered(&ctx.db, select, api_key::Column::Id, |k| k.id, request, Order::NewestFirst).await?)
}

/// Revokes a key: its next POST is refused (403). Revoking again changes nothing.
pub async fn revoke(ctx: &AppContext, caller: &Caller, id: Uuid) -> AppResult<api_key::Model> {
    require(caller, Permission::ManageUsers)?;
    let txn = begin_write(&ctx.db).await?;
    let row: api_key::Model = found::<api_key::Entity>(&txn, id, "api key").await?;
    if row.revoked_at.is_some() {
        return Ok(row);
    }
    let now = ctx.clock.now();
    let mut change = row.into_active_model();
    change.revoked_at = Set(Some(now));
    let row = change.update(&txn).await?;
    audit::record(&txn, Entry::by(caller, "api_key_revoked", "api_key", id, json!({"name": row.name})), now).await?;
    txn.commit().await?;
    Ok(row)
}

/// A presented key that was accepted: the service account it files as.
pub struct KeyHolder {
    pub key_id: Uuid,
    pub caller: Caller,
}

/// The service account a presented key files as: 403 when the key is missing, unknown or
/// revoked; 429 past `security.open311_per_minute_per_ip`, counted before the look-up.
/// Writes nothing: [`mark_used`] records the use once the request succeeded.
pub async fn authenticate(ctx: &AppContext, key: Option<&str>, ip: Option<IpAddr>) -> AppResult<KeyHolder> {
    let now = ctx.clock.now();
    ctx.limits.check_open311(&ctx.db, ip, now).await?;
    let Some(key) = key.map(str::trim).filter(|k| !k.is_empty()) else {
        return Err(AppError::refused(
            Refusal::Forbidden,
            "缺少 api_key：提交诉求需要管理员发放的 API 密钥",
            "api_key is required to file a request; an admin issues keys",
        ));
    };
    let refused =
        || AppError::refused(Refusal::Forbidden, "api_key 无效或已吊销", "the api_key is unknown or has been revoked");
    let Some(row) = repo::open311::live_key(&ctx.db, &key_hash(key)).await? else {
        tracing::warn!(ip = ?ip, "an Open311 request presented an unknown or revoked api_key");
        return Err(refused());
    };
    let account = user::Entity::find_by_id(row.user_id).one(&ctx.db).await?.ok_or_else(refused)?;
    let caller = super::auth::caller_of(&account);
    Ok(KeyHolder { key_id: row.id, caller: Caller { ip: ip.map(|ip| ip.to_string()), ..caller } })
}

/// Records when a key last filed (shown in the key list).
pub async fn mark_used(ctx: &AppContext, key_id: Uuid) -> AppResult<()> {
    api_key::Entity::update_many()
        .col_expr(api_key::Column::LastUsedAt, sea_orm::sea_query::Expr::val(ctx.clock.now()))
        .filter(api_key::Column::Id.eq(key_id))
        .exec(&ctx.db)
        .await?;
    Ok(())
}

/// 32 random bytes, hex, with a prefix that says what it is.
fn new_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("gwk_{}", hex::encode(bytes))
}

fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}
