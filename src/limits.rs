//! Rate limits: logins per client address and filings per user. On PostgreSQL — where several
//! replicas may serve behind a load balancer — the counters live in the database
//! (`rate_limit_counters`, one UPSERT per check, fixed one-minute windows), so N replicas
//! still allow the configured rate, not N times it. On SQLite (one process) they are
//! governor's GCRA in memory. Lock-out of user names lives in `login_failures`.

use std::{net::IpAddr, num::NonZeroU32, sync::Arc};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use uuid::Uuid;

use crate::{
    config::SecuritySettings,
    error::{AppError, Limit},
};

#[derive(Clone)]
pub struct Limits {
    login: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    filing: Arc<DefaultKeyedRateLimiter<Uuid>>,
    login_per_minute: u32,
    filing_per_minute: u32,
    open311: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    open311_per_minute: u32,
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
            login_per_minute: settings.login_per_minute_per_ip.max(1),
            filing_per_minute: settings.filing_per_minute_per_token.max(1),
            open311: Arc::new(RateLimiter::keyed(per_minute(settings.open311_per_minute_per_ip))),
            open311_per_minute: settings.open311_per_minute_per_ip.max(1),
        }
    }

    pub async fn check_login(
        &self,
        db: &DatabaseConnection,
        ip: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let limit = Limit::LoginsFromAddress { per_minute: self.login_per_minute };
        let Some(ip) = ip else { return Ok(()) };
        if db.get_database_backend() == DbBackend::Postgres {
            shared(db, "login", &ip.to_string(), self.login_per_minute, now, limit).await
        } else {
            check(&self.login, &ip, limit)
        }
    }

    pub async fn check_filing(&self, db: &DatabaseConnection, user: Uuid, now: DateTime<Utc>) -> Result<(), AppError> {
        let limit = Limit::FilingsPerUser { per_minute: self.filing_per_minute };
        if db.get_database_backend() == DbBackend::Postgres {
            shared(db, "filing", &user.to_string(), self.filing_per_minute, now, limit).await
        } else {
            check(&self.filing, &user, limit)
        }
    }
}

impl Limits {
    /// Open311 POSTs, each presenting an API key, per client address: counted before the key
    /// is looked up, so keys cannot be guessed faster than this.
    pub async fn check_open311(
        &self,
        db: &DatabaseConnection,
        ip: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let limit = Limit::Open311FromAddress { per_minute: self.open311_per_minute };
        let Some(ip) = ip else { return Ok(()) };
        if db.get_database_backend() == DbBackend::Postgres {
            shared(db, "open311", &ip.to_string(), self.open311_per_minute, now, limit).await
        } else {
            check(&self.open311, &ip, limit)
        }
    }
}

/// One hit on a counter every replica sees: the minute's row is created or bumped in one
/// statement, so concurrent replicas never lose a hit. A fixed window lets a burst at a
/// minute's end and the next one's start through (at most twice the rate for a moment).
async fn shared(
    db: &DatabaseConnection,
    scope: &str,
    key: &str,
    limit: u32,
    now: DateTime<Utc>,
    refused: Limit,
) -> Result<(), AppError> {
    let minute = TimeDelta::minutes(1);
    let window = now.duration_trunc(minute).unwrap_or(now);
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO rate_limit_counters (scope, key, window_start, hits) VALUES ($1, $2, $3, 1) \
             ON CONFLICT (scope, key, window_start) DO UPDATE SET hits = rate_limit_counters.hits + 1 \
             RETURNING hits",
            [scope.into(), key.into(), window.into()],
        ))
        .await?;
    let hits: i32 = row.map(|r| r.try_get("", "hits")).transpose()?.unwrap_or(0);
    if hits > i32::try_from(limit).unwrap_or(i32::MAX) {
        let wait = (window + minute - now).num_seconds().max(1);
        return Err(AppError::too_many_requests(refused, wait as u64));
    }
    Ok(())
}

/// Minutes that ended an hour ago will never be counted again.
pub async fn forget_old_windows(db: &DatabaseConnection, now: DateTime<Utc>) -> Result<u64, sea_orm::DbErr> {
    let cutoff = now - TimeDelta::hours(1);
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => "DELETE FROM rate_limit_counters WHERE window_start < $1",
        _ => "DELETE FROM rate_limit_counters WHERE window_start < ?",
    };
    Ok(db.execute_raw(Statement::from_sql_and_values(backend, sql, [cutoff.into()])).await?.rows_affected())
}

fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
    refused: Limit,
) -> Result<(), AppError> {
    limiter.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
        AppError::too_many_requests(refused, wait.as_secs())
    })
}
