//! Photos uploaded through our API on Open311 (`open311.publish_media`): a request's
//! `media_url` may name the thumbnail of its filing's first picture at an unguessable public
//! address, `{public_url}/open311/v2/media/{token}.jpg`. The token (32 random bytes, URL-safe
//! base64) is given to an upload the first time it is published; erasing the upload (the
//! resident's photos removed) ends the address. Only filing pictures are ever published, and
//! only their thumbnail (≤ 320 px, re-encoded without metadata at upload).

use std::collections::HashMap;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use entities::upload::{self, AttachmentKind};
use rand::RngCore;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, sea_query::Expr};
use uuid::Uuid;

use crate::{
    context::AppContext,
    error::{AppError, AppResult, Refusal},
};

/// Random bytes in a token: as many as a session secret, so addresses cannot be guessed.
const TOKEN_BYTES: usize = 32;

/// The published thumbnail's bytes, where the store keeps them.
#[derive(Debug, Clone)]
pub struct PublicThumbnail {
    pub upload_id: Uuid,
    pub sha256: String,
    pub size: u64,
}

fn new_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token as `new_token` makes them: anything else cannot name an upload and is not looked up.
fn well_formed(token: &str) -> bool {
    token.len() == 43 && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The public address of a token's thumbnail.
fn url_of(ctx: &AppContext, token: &str) -> String {
    format!("{}/open311/v2/media/{token}.jpg", ctx.settings.smtp.public_url.trim_end_matches('/'))
}

/// For each ticket with a picture uploaded at filing, the public address of the first one's
/// thumbnail; empty while `open311.publish_media` is off. Gives a token to a picture published
/// for the first time (a conditional update, so two readers at once agree on one token).
pub async fn thumbnail_urls_of(ctx: &AppContext, ticket_ids: &[Uuid]) -> AppResult<HashMap<Uuid, String>> {
    if !ctx.settings.open311.publish_media || ticket_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut first: HashMap<Uuid, upload::Model> = HashMap::new();
    for row in upload::Entity::find()
        .filter(upload::Column::TicketId.is_in(ticket_ids.iter().copied()))
        .filter(upload::Column::Kind.eq(AttachmentKind::Filing))
        .filter(upload::Column::ThumbnailSha256.is_not_null())
        .order_by_asc(upload::Column::CreatedAt)
        .order_by_asc(upload::Column::Id)
        .all(&ctx.db)
        .await?
    {
        if let Some(ticket_id) = row.ticket_id {
            first.entry(ticket_id).or_insert(row);
        }
    }
    let mut urls = HashMap::with_capacity(first.len());
    for (ticket_id, row) in first {
        let token = match row.public_token {
            Some(token) => token,
            None => publish(ctx, row.id).await?,
        };
        urls.insert(ticket_id, url_of(ctx, &token));
    }
    Ok(urls)
}

/// Gives the upload a token unless it has one already, and answers the one it has.
async fn publish(ctx: &AppContext, upload_id: Uuid) -> AppResult<String> {
    upload::Entity::update_many()
        .col_expr(upload::Column::PublicToken, Expr::value(new_token()))
        .filter(upload::Column::Id.eq(upload_id))
        .filter(upload::Column::PublicToken.is_null())
        .exec(&ctx.db)
        .await?;
    upload::Entity::find_by_id(upload_id)
        .one(&ctx.db)
        .await?
        .and_then(|row| row.public_token)
        .ok_or_else(|| AppError::internal(format!("upload {upload_id} has no public token after publishing")))
}

fn not_found() -> AppError {
    AppError::refused(Refusal::NotFound, "未找到该图片", "media not found")
}

/// The thumbnail a token names: 404 while `open311.publish_media` is off, for an unknown token,
/// and once the upload is erased (its row, token included, is gone).
pub async fn thumbnail_by_token(ctx: &AppContext, token: &str) -> AppResult<PublicThumbnail> {
    if !ctx.settings.open311.publish_media || !well_formed(token) {
        return Err(not_found());
    }
    let row = upload::Entity::find()
        .filter(upload::Column::PublicToken.eq(token))
        .filter(upload::Column::Kind.eq(AttachmentKind::Filing))
        .filter(upload::Column::TicketId.is_not_null())
        .one(&ctx.db)
        .await?
        .ok_or_else(not_found)?;
    match (row.thumbnail_sha256, row.thumbnail_size) {
        (Some(sha256), Some(size)) => {
            Ok(PublicThumbnail { upload_id: row.id, sha256, size: u64::try_from(size).unwrap_or_default() })
        }
        _ => Err(not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_43_url_safe_characters_and_differ() {
        let (a, b) = (new_token(), new_token());
        assert!(well_formed(&a), "{a}");
        assert_ne!(a, b);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).map(|v| v.len()).ok(), Some(TOKEN_BYTES));
        assert!(!well_formed("short"));
        assert!(!well_formed(&format!("{}=", &a[..42])));
        assert!(!well_formed(&format!("{}/", &a[..42])));
    }
}
