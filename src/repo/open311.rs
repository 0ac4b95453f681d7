//! The rows Open311 keeps beside tickets: API keys, photos that point outside (`media_url`),
//! batch tokens.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entities::{api_key, open311_token, ticket_media_url};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, Set};
use uuid::Uuid;

/// Writes what a channel keeps with a newly filed ticket, in the filing's transaction.
pub async fn keep_channel_extras(
    db: &impl ConnectionTrait,
    ticket_id: Uuid,
    source: &str,
    media_urls: &[String],
    token: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    for url in media_urls {
        ticket_media_url::ActiveModel {
            id: Set(Uuid::now_v7()),
            ticket_id: Set(ticket_id),
            url: Set(url.clone()),
            source: Set(source.to_owned()),
            created_at: Set(now),
        }
        .insert(db)
        .await?;
    }
    if let Some(token) = token {
        open311_token::ActiveModel { token: Set(token.to_owned()), ticket_id: Set(ticket_id), created_at: Set(now) }
            .insert(db)
            .await?;
    }
    Ok(())
}

/// The first photo address of each ticket. Photos uploaded through our own API (the
/// photo-evidence issue) are to be added here, so Open311 shows them as `media_url` too.
pub async fn media_urls_of(db: &impl ConnectionTrait, ticket_ids: &[Uuid]) -> Result<HashMap<Uuid, String>, DbErr> {
    let mut first = HashMap::new();
    for media in ticket_media_url::Entity::find()
        .filter(ticket_media_url::Column::TicketId.is_in(ticket_ids.iter().copied()))
        .order_by_desc(ticket_media_url::Column::Id)
        .all(db)
        .await?
    {
        // Newest first, so the oldest (the one filed) stays.
        first.insert(media.ticket_id, media.url);
    }
    Ok(first)
}

pub async fn token(db: &impl ConnectionTrait, token: &str) -> Result<Option<open311_token::Model>, DbErr> {
    open311_token::Entity::find_by_id(token.to_owned()).one(db).await
}

/// The key with this hash, unless revoked.
pub async fn live_key(db: &impl ConnectionTrait, key_hash: &str) -> Result<Option<api_key::Model>, DbErr> {
    api_key::Entity::find()
        .filter(api_key::Column::KeyHash.eq(key_hash))
        .filter(api_key::Column::RevokedAt.is_null())
        .one(db)
        .await
}
