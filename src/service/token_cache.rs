//! Verified bearer tokens, remembered in this process for `auth.token_cache_ttl` (a few
//! seconds) so a busy client's requests do not each look their token up again.
//!
//! The revocation bound: a token revoked through *this* process (logout, refresh, password
//! change, disabling or changing the user) is forgotten at once; a token revoked through
//! another replica, or in the database by hand, keeps working here for at most
//! `auth.token_cache_ttl`. A cached token never outlives its own expiry. `0s` turns the cache
//! off. Only the token's SHA-256 is kept, never the token.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::access::Caller;

/// More distinct live tokens than this within one TTL and the cache starts afresh: a bound on
/// memory whatever the traffic.
const CAPACITY: usize = 50_000;

#[derive(Debug, Clone)]
struct Entry {
    caller: Caller,
    until: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct TokenCache {
    ttl: chrono::Duration,
    entries: Arc<Mutex<HashMap<String, Entry>>>,
}

impl TokenCache {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl: chrono::Duration::from_std(ttl).unwrap_or_default(), entries: Arc::default() }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The caller behind a token hash verified less than the TTL ago, if its token is still live.
    pub fn get(&self, token_hash: &str, now: DateTime<Utc>) -> Option<Caller> {
        if self.ttl.is_zero() {
            return None;
        }
        let mut entries = self.entries();
        match entries.get(token_hash) {
            Some(entry) if now < entry.until => Some(entry.caller.clone()),
            Some(_) => {
                entries.remove(token_hash);
                None
            }
            None => None,
        }
    }

    /// Remembers a token just verified against the database, until the TTL or its expiry.
    pub fn put(&self, token_hash: &str, caller: &Caller, now: DateTime<Utc>, token_expires_at: DateTime<Utc>) {
        if self.ttl.is_zero() {
            return;
        }
        let until = (now + self.ttl).min(token_expires_at);
        let mut entries = self.entries();
        if entries.len() >= CAPACITY {
            entries.retain(|_, entry| now < entry.until);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(token_hash.to_owned(), Entry { caller: caller.clone(), until });
    }

    /// Forgets one token (logout, refresh).
    pub fn forget_token(&self, token_hash: &str) {
        self.entries().remove(token_hash);
    }

    /// Forgets every token of a user (password change, disabled, role or home changed).
    pub fn forget_user(&self, user_id: Uuid) {
        self.entries().retain(|_, entry| entry.caller.user_id != user_id);
    }
}

#[cfg(test)]
mod tests {
    use entities::Role;

    use super::*;

    fn caller(user_id: Uuid) -> Caller {
        Caller {
            user_id,
            username: "u".into(),
            role: Role::Admin,
            unit_id: None,
            department_id: None,
            home_path: None,
            ip: None,
        }
    }

    #[test]
    fn entries_live_for_the_ttl_and_never_past_the_token() {
        let cache = TokenCache::new(Duration::from_secs(5));
        let now = Utc::now();
        let user = Uuid::now_v7();
        cache.put("a", &caller(user), now, now + chrono::Duration::hours(1));
        cache.put("b", &caller(user), now, now + chrono::Duration::seconds(2));
        assert!(cache.get("a", now + chrono::Duration::seconds(4)).is_some());
        assert!(cache.get("a", now + chrono::Duration::seconds(5)).is_none(), "the TTL bounds revocation");
        assert!(cache.get("b", now + chrono::Duration::seconds(2)).is_none(), "an expired token is not served");
    }

    #[test]
    fn forgetting_takes_effect_at_once_and_zero_disables() {
        let cache = TokenCache::new(Duration::from_secs(5));
        let now = Utc::now();
        let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let later = now + chrono::Duration::hours(1);
        cache.put("a1", &caller(alice), now, later);
        cache.put("a2", &caller(alice), now, later);
        cache.put("b1", &caller(bob), now, later);
        cache.forget_token("b1");
        assert!(cache.get("b1", now).is_none());
        cache.forget_user(alice);
        assert!(cache.get("a1", now).is_none() && cache.get("a2", now).is_none());
        let off = TokenCache::new(Duration::ZERO);
        off.put("a", &caller(alice), now, later);
        assert!(off.get("a", now).is_none());
    }
}
