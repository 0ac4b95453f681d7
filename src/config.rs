//! Settings: loaded and validated once at start-up, then passed in — never read globally.

use std::{collections::HashMap, path::PathBuf, time::Duration};

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

use crate::domain::{
    calendar::{BusinessCalendar, SlaDuration, YearSchedule},
    duration::parse_duration,
};

const DEFAULTS: &str = include_str!("../config/default.toml");
const LOCAL_FILE: &str = "config/local.toml";

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub database_url: String,
    pub database: DatabaseSettings,
    pub http: HttpSettings,
    pub auth: AuthSettings,
    pub calendar: CalendarSettings,
    pub tickets: TicketSettings,
    pub sla: SlaSettings,
    pub extensions: ExtensionSettings,
    pub escalation: EscalationSettings,
    pub smtp: SmtpSettings,
    pub security: SecuritySettings,
    pub reports: ReportSettings,
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
    /// How long a session lives from its login, however often its token is refreshed.
    #[serde(deserialize_with = "de_duration")]
    pub session_max_age: Duration,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CalendarSettings {
    pub utc_offset: String,
    pub working_hours: Vec<String>,
    pub holidays_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TicketSettings {
    pub number_prefix: String,
    #[serde(deserialize_with = "de_sla_duration")]
    pub return_window: SlaDuration,
    pub arbitration_after_returns: i32,
    /// How far (metres) a filed point may lie outside the grid it is filed in: GPS on a phone
    /// strays, and a grid worker on the street that bounds their grid is still at work.
    #[serde(default = "default_location_tolerance_m")]
    pub location_tolerance_m: f64,
}

fn default_location_tolerance_m() -> f64 {
    200.0
}

#[derive(Debug, Clone, Deserialize)]
pub struct SlaSettings {
    #[serde(deserialize_with = "de_duration")]
    pub sweep_interval: Duration,
    pub sweep_batch: u64,
    pub warn_at: f64,
    #[serde(deserialize_with = "de_sla_duration")]
    pub followup_after: SlaDuration,
    pub normal: SlaDurationSettings,
    pub urgent: SlaDurationSettings,
}

/// One priority's durations, as written in config and in the API.
#[derive(Debug, Clone, Deserialize)]
pub struct SlaDurationSettings {
    #[serde(deserialize_with = "de_sla_duration")]
    pub acknowledge: SlaDuration,
    #[serde(deserialize_with = "de_sla_duration")]
    pub first_contact: SlaDuration,
    #[serde(deserialize_with = "de_sla_duration")]
    pub resolve: SlaDuration,
    #[serde(deserialize_with = "de_sla_duration")]
    pub rectify: SlaDuration,
    #[serde(deserialize_with = "de_sla_duration")]
    pub rating_window: SlaDuration,
}

impl SlaDurationSettings {
    pub fn durations(&self) -> crate::domain::sla::SlaDurations {
        crate::domain::sla::SlaDurations {
            acknowledge: self.acknowledge,
            first_contact: self.first_contact,
            resolve: self.resolve,
            rectify: self.rectify,
            rating_window: self.rating_window,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ExtensionSettings {
    pub max_per_dispatch: u64,
    #[serde(deserialize_with = "de_sla_duration")]
    pub max_duration: SlaDuration,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EscalationSettings {
    #[serde(deserialize_with = "de_sla_duration")]
    pub supervision_due: SlaDuration,
    pub rules: Vec<EscalationRuleSettings>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EscalationRuleSettings {
    pub trigger: String,
    pub notify: Vec<String>,
    pub supervision: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub from: String,
    pub username: String,
    pub password: String,
    #[serde(deserialize_with = "de_duration")]
    pub poll_interval: Duration,
    pub max_attempts: i32,
    pub public_url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    None,
    Starttls,
    Tls,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SecuritySettings {
    pub lockout_after: i32,
    #[serde(deserialize_with = "de_duration")]
    pub lockout_for: Duration,
    pub login_per_minute_per_ip: u32,
    pub filing_per_minute_per_token: u32,
    pub trust_forwarded_for: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ReportSettings {
    pub weight_response: f64,
    pub weight_resolution: f64,
    pub weight_satisfaction: f64,
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
        builder = builder.add_source(Environment::default().source(Some(conventional))).add_source(
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
        if !(Duration::from_secs(60)..=Duration::from_secs(366 * 86_400)).contains(&self.auth.session_max_age) {
            return Err(SettingsError::Invalid {
                key: "auth.session_max_age",
                message: "must be between one minute and 366 days".into(),
            });
        }
        if let Some(problem) = crate::domain::password::policy_violation(
            "demo-admin",
            &self.demo.password,
            crate::domain::password::Forbidden::default(),
        ) {
            return Err(SettingsError::Invalid { key: "demo.password", message: problem });
        }
        let prefix_ok = (1..=8).contains(&self.tickets.number_prefix.len())
            && self.tickets.number_prefix.chars().all(|c| c.is_ascii_uppercase());
        if !prefix_ok {
            return Err(SettingsError::Invalid {
                key: "tickets.number_prefix",
                message: "must be 1–8 upper-case letters".into(),
            });
        }
        if !(0.0..=10_000.0).contains(&self.tickets.location_tolerance_m) {
            return Err(SettingsError::Invalid {
                key: "tickets.location_tolerance_m",
                message: "must be between 0 and 10000 (metres)".into(),
            });
        }
        if self.tickets.arbitration_after_returns < 1 {
            return Err(SettingsError::Invalid {
                key: "tickets.arbitration_after_returns",
                message: "must be at least 1".into(),
            });
        }
        if !(0.0..1.0).contains(&self.sla.warn_at) || self.sla.warn_at <= 0.0 {
            return Err(SettingsError::Invalid {
                key: "sla.warn_at",
                message: "must be a fraction between 0 and 1".into(),
            });
        }
        if self.security.login_per_minute_per_ip == 0 || self.security.filing_per_minute_per_token == 0 {
            return Err(SettingsError::Invalid {
                key: "security",
                message: "rate limits must be at least 1 per minute".into(),
            });
        }
        if self.security.lockout_after < 1 {
            return Err(SettingsError::Invalid { key: "security.lockout_after", message: "must be at least 1".into() });
        }
        let weights = [self.reports.weight_response, self.reports.weight_resolution, self.reports.weight_satisfaction];
        if weights.iter().any(|w| !w.is_finite() || *w < 0.0) || weights.iter().sum::<f64>() <= 0.0 {
            return Err(SettingsError::Invalid {
                key: "reports",
                message: "weights must be non-negative and not all zero".into(),
            });
        }
        if self.sla.sweep_batch == 0 {
            return Err(SettingsError::Invalid { key: "sla.sweep_batch", message: "must be at least 1".into() });
        }
        if self.smtp.from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(SettingsError::Invalid {
                key: "smtp.from",
                message: "must be a mailbox like Name <a@b.example>".into(),
            });
        }
        for rule in &self.escalation.rules {
            crate::domain::escalation::Rule::parse(&rule.trigger, &rule.notify, rule.supervision.as_deref())
                .map_err(|message| SettingsError::Invalid { key: "escalation.rules", message })?;
        }
        self.business_calendar()?;
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| SettingsError::Invalid { key: "log.level", message: e.to_string() })?;
        Ok(())
    }
}

fn de_sla_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SlaDuration, D::Error> {
    let text = String::deserialize(d)?;
    SlaDuration::parse(&text).map_err(serde::de::Error::custom)
}

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

const BUILT_IN_SCHEDULES: [&str; 2] =
    [include_str!("../config/holidays/2025.json"), include_str!("../config/holidays/2026.json")];

impl Settings {
    /// The business calendar: working hours and offset from `[calendar]`, the built-in holiday
    /// schedules, then every `*.json` in `calendar.holidays_dir` (a missing folder is fine).
    pub fn business_calendar(&self) -> Result<BusinessCalendar, SettingsError> {
        let invalid = |key: &'static str| move |message: String| SettingsError::Invalid { key, message };
        let offset: chrono::FixedOffset = self
            .calendar
            .utc_offset
            .parse()
            .map_err(|_| invalid("calendar.utc_offset")("must look like +08:00".into()))?;
        let spans = self
            .calendar
            .working_hours
            .iter()
            .map(|span| parse_span(span))
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid("calendar.working_hours"))?;
        let mut calendar = BusinessCalendar::new(offset, spans).map_err(invalid("calendar.working_hours"))?;
        for json in BUILT_IN_SCHEDULES {
            calendar.load(&YearSchedule::parse(json).map_err(invalid("calendar.holidays_dir"))?);
        }
        if let Ok(entries) = std::fs::read_dir(&self.calendar.holidays_dir) {
            let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            for path in paths.iter().filter(|p| p.extension().is_some_and(|e| e == "json")) {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| invalid("calendar.holidays_dir")(format!("{}: {e}", path.display())))?;
                let schedule = YearSchedule::parse(&text)
                    .map_err(|e| invalid("calendar.holidays_dir")(format!("{}: {e}", path.display())))?;
                calendar.load(&schedule);
            }
        }
        Ok(calendar)
    }
}

/// `"08:30-12:00"` → (08:30, 12:00).
fn parse_span(text: &str) -> Result<(chrono::NaiveTime, chrono::NaiveTime), String> {
    let (from, to) = text.split_once('-').ok_or_else(|| format!("`{text}` is not like 08:30-12:00"))?;
    let time = |t: &str| {
        chrono::NaiveTime::parse_from_str(t.trim(), "%H:%M").map_err(|_| format!("`{text}` is not like 08:30-12:00"))
    };
    Ok((time(from)?, time(to)?))
}
