//! What every use case needs: the database, the clock, the settings and the business calendar.

use std::sync::{Arc, RwLock};

use sea_orm::DatabaseConnection;

use crate::{clock::Clock, config::Settings, domain::calendar::BusinessCalendar};

#[derive(Debug, Clone)]
pub struct AppContext {
    pub db: DatabaseConnection,
    pub clock: Arc<dyn Clock>,
    pub settings: Arc<Settings>,
    pub limits: crate::limits::Limits,
    /// Swapped whole when an admin adds a year's schedule; readers keep the one they took.
    calendar: Arc<RwLock<Arc<BusinessCalendar>>>,
}

impl AppContext {
    pub fn new(
        db: DatabaseConnection,
        clock: Arc<dyn Clock>,
        settings: Settings,
    ) -> Result<Self, crate::config::SettingsError> {
        let calendar = Arc::new(RwLock::new(Arc::new(settings.business_calendar()?)));
        let limits = crate::limits::Limits::new(&settings.security);
        Ok(Self { db, clock, settings: Arc::new(settings), limits, calendar })
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
