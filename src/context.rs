//! What every use case needs: the database, the clock and the settings.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::{clock::Clock, config::Settings};

#[derive(Debug, Clone)]
pub struct AppContext {
    pub db: DatabaseConnection,
    pub clock: Arc<dyn Clock>,
    pub settings: Arc<Settings>,
}
