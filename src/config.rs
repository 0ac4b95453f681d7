//! Settings: loaded and validated once at start-up, then passed in — never read globally.

use std::{collections::HashMap, path::PathBuf, time::Duration};

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

use crate::domain::duration::parse_duration;

const DEFAULTS: &str = include_str!("../config/default.toml");
const LOCAL_FILE: &str = "config/local.toml";

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub database_url: String,
    pub database: DatabaseSettings,
    pub http: HttpSettings,
    pub auth: AuthSettings,
    pub demo: DemoSettings,
    pub log: LogSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub max_connections: u32,
    #[serde(deserialize_with = "de_duration")]
    pub acquire_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpSettings {
    pub host: String,
    pub port: u16,
    pub workers: usize,
    pub body_limit: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    #[serde(deserialize_with = "de_duration")]
    pub token_ttl: Duration,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DemoSettings {
    pub password: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

/// Where settings come from. `from_process` reads the real environment; tests pass their own map.
#[derive(Debug, Default, Clone)]
pub struct SettingsSources {
    /// A local file layered over the defaults; it must exist when named.
    pub local_file: Option<PathBuf>,
    pub env: HashMap<String, String>,
}

impl SettingsSources {
    /// The named file, else GRIDWHISTLE_CONFIG, else `config/local.toml` when present.
    pub fn from_process(local_file: Option<PathBuf>) -> Self {
        let env: HashMap<String, String> = std::env::vars().collect();
        let local_file = local_file
            .or_else(|| env.get("GRIDWHISTLE_CONFIG").map(PathBuf::from))
            .or_else(|| Some(PathBuf::from(LOCAL_FILE)).filter(|p| p.exists()));
        Self { local_file, env }
    }
}

impl Settings {
    pub fn load(sources: SettingsSources) -> Result<Self, SettingsError> {
        let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        if let Some(path) = &sources.local_file {
            builder = builder.add_source(File::from(path.as_path()).format(FileFormat::Toml).required(true));
        }
        let conventional: HashMap<String, String> = sources
            .env
            .get("DATABASE_URL")
            .map(|url| HashMap::from([("DATABASE_URL".to_owned(), url.clone())]))
            .unwrap_or_default();
        builder = builder
            .add_source(Environment::default().source(Some(conventional)))
            .add_source(
                Environment::with_prefix("GRIDWHISTLE")
                    .prefix_separator("_")
                    .separator("__")
                    .source(Some(sources.env.clone())),
            );
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        let url = self.database_url.as_str();
        if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(SettingsError::Invalid {
                key: "database_url",
                message: "must start with sqlite:, postgres:// or postgresql://".into(),
            });
        }
        if self.database.max_connections == 0 {
            return Err(SettingsError::Invalid {
                key: "database.max_connections",
                message: "must be at least 1".into(),
            });
        }
        if self.http.body_limit < 1024 {
            return Err(SettingsError::Invalid {
                key: "http.body_limit",
                message: "must be at least 1024 bytes".into(),
            });
        }
        if self.auth.token_ttl < Duration::from_secs(60) {
            return Err(SettingsError::Invalid {
                key: "auth.token_ttl",
                message: "must be at least one minute".into(),
            });
        }
        if let Some(problem) = crate::domain::password::policy_violation("demo-admin", &self.demo.password) {
            return Err(SettingsError::Invalid {
                key: "demo.password",
                message: problem,
            });
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level).map_err(|e| SettingsError::Invalid {
            key: "log.level",
            message: e.to_string(),
        })?;
        Ok(())
    }
}

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}
