//! What every use case needs: the database, the clock, the settings and the business calendar.

use std::{
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::SystemTime,
};

use sea_orm::DatabaseConnection;

use crate::{clock::Clock, config::Settings, domain::calendar::BusinessCalendar};

#[derive(Debug, Clone)]
pub struct AppContext {
    pub db: DatabaseConnection,
    pub clock: Arc<dyn Clock>,
    pub settings: Arc<Settings>,
    pub limits: crate::limits::Limits,
    /// Where uploaded files live (`storage.url`).
    pub storage: crate::storage::Storage,
    /// Whether the database is known to be unreachable, and whether the server is draining.
    pub health: Health,
    /// Committed timeline events, for the live event streams.
    pub events: crate::service::event_stream::EventBus,
    /// Swapped whole when an admin adds a year's schedule; readers keep the one they took.
    calendar: Arc<RwLock<Arc<BusinessCalendar>>>,
    /// The statements this application sent to its database (`/metrics`).
    pub statements: crate::statements::StatementCounter,
    /// Tokens verified in the last `auth.token_cache_ttl`.
    pub tokens: crate::service::token_cache::TokenCache,
}

impl AppContext {
    pub fn new(
        db: DatabaseConnection,
        clock: Arc<dyn Clock>,
        settings: Settings,
    ) -> Result<Self, crate::config::SettingsError> {
        let calendar = Arc::new(RwLock::new(Arc::new(settings.business_calendar()?)));
        let limits = crate::limits::Limits::new(&settings.security);
        let events = crate::service::event_stream::EventBus::new(settings.event_stream.buffer);
        let storage = crate::storage::Storage::open(&settings.storage)
            .map_err(|message| crate::config::SettingsError::Invalid { key: "storage.url", message })?;
        let statements = crate::statements::StatementCounter::default();
        let mut db = db;
        statements.attach(&mut db);
        let tokens = crate::service::token_cache::TokenCache::new(settings.auth.token_cache_ttl);
        Ok(Self {
            db,
            clock,
            settings: Arc::new(settings),
            limits,
            storage,
            health: Health::default(),
            events,
            calendar,
            statements,
            tokens,
        })
    }

    /// The same context on another clock (the demo seed replays three weeks of work).
    pub fn with_clock(&self, clock: Arc<dyn Clock>) -> Self {
        Self { clock, ..self.clone() }
    }

    pub fn calendar(&self) -> Arc<BusinessCalendar> {
        self.calendar.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    pub fn replace_calendar(&self, calendar: BusinessCalendar) {
        *self.calendar.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(calendar);
    }
}

/// What the process knows about its own health, shared by every worker thread.
#[derive(Debug, Clone, Default)]
pub struct Health {
    database_down_since: Arc<Mutex<Option<SystemTime>>>,
    probing: Arc<AtomicBool>,
    draining: Arc<AtomicBool>,
    /// The outbox as the mailer last counted it (each tick), for `/readyz` to show without
    /// counting again on every probe.
    outbox: Arc<Mutex<Option<crate::service::notifications::OutboxHealth>>>,
}

impl Health {
    pub fn record_outbox(&self, outbox: crate::service::notifications::OutboxHealth) {
        *self.outbox.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(outbox);
    }

    /// `None` until the mailer's first tick.
    pub fn last_outbox(&self) -> Option<crate::service::notifications::OutboxHealth> {
        *self.outbox.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Since when the database has been unreachable, if it is.
    pub fn database_down_since(&self) -> Option<SystemTime> {
        *self.database_down_since.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a connection-level failure; true when this is the start of an outage.
    pub fn mark_database_down(&self) -> bool {
        let mut since = self.database_down_since.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let started = since.is_none();
        since.get_or_insert_with(SystemTime::now);
        started
    }

    /// The database answered again; true when it had been down.
    pub fn mark_database_up(&self) -> bool {
        self.database_down_since.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take().is_some()
    }

    /// Claims the one probe that runs during an outage; false when one already runs.
    pub fn claim_probe(&self) -> bool {
        !self.probing.swap(true, Ordering::AcqRel)
    }

    pub fn release_probe(&self) {
        self.probing.store(false, Ordering::Release);
    }

    /// From SIGTERM on: readiness answers 503 and every response closes its connection.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}
