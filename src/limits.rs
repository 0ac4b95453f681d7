//! Rate limits (governor's GCRA, in memory per process): logins per client address and
//! filings per user. Lock-out of accounts lives in the database (`users.locked_until`).

use std::{net::IpAddr, num::NonZeroU32, sync::Arc};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};
use uuid::Uuid;

use crate::{config::SecuritySettings, error::AppError};

#[derive(Clone)]
pub struct Limits {
    login: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    filing: Arc<DefaultKeyedRateLimiter<Uuid>>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Limits")
    }
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
}

impl Limits {
    pub fn new(settings: &SecuritySettings) -> Self {
        Self {
            login: Arc::new(RateLimiter::keyed(per_minute(settings.login_per_minute_per_ip))),
            filing: Arc::new(RateLimiter::keyed(per_minute(settings.filing_per_minute_per_token))),
        }
    }

    pub fn check_login(&self, ip: Option<IpAddr>) -> Result<(), AppError> {
        match ip {
            Some(ip) => check(&self.login, &ip, "too many logins from this address; wait and retry"),
            None => Ok(()),
        }
    }

    pub fn check_filing(&self, user: Uuid) -> Result<(), AppError> {
        check(&self.filing, &user, "too many tickets filed in a minute; wait and retry")
    }
}

fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
    message: &str,
) -> Result<(), AppError> {
    limiter.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
        AppError::TooManyRequests { message: message.to_owned(), retry_after_secs: wait.as_secs().max(1) }
    })
}
