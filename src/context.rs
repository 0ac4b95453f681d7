//! What every use case needs: the database, the clock, the settings and the business calendar.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::{clock::Clock, config::Settings, domain::calendar::BusinessCalendar};

#[derive(Debug, Clone)]
pub struct AppContext {
    pub db: DatabaseConnection,
    pub clock: Arc<dyn Clock>,
    pub settings: Arc<Settings>,
    pub calendar: Arc<BusinessCalendar>,
}

impl AppContext {
    pub fn new(
        db: DatabaseConnection,
        clock: Arc<dyn Clock>,
        settings: Settings,
    ) -> Result<Self, crate::config::SettingsError> {
        let calendar = Arc::new(settings.business_calendar()?);
        Ok(Self {
            db,
            clock,
            settings: Arc::new(settings),
            calendar,
        })
    }
}
