//! Settings: loaded and validated once at start-up, then passed in — never read globally.

use std::{collections::HashMap, path::PathBuf, time::Duration};

use config::{Config, Environment, File, FileFormat, Source, Value, ValueKind};
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
    /// Issue 17: survey coverage, recurring problems, duplicate reports.
    #[serde(default)]
    pub governance: GovernanceSettings,
    pub demo: DemoSettings,
    pub log: LogSettings,
    pub open311: Open311Settings,
    pub webhooks: WebhookSettings,
    pub event_stream: EventStreamSettings,
    pub storage: StorageSettings,
    pub uploads: UploadSettings,
    pub mqtt: MqttSettings,
}

/// Outgoing signed webhooks (Standard Webhooks).
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookSettings {
    /// Deliver to loopback, link-local, private, unspecified and multicast addresses too.
    /// Off by default (SSRF); tests receiving on 127.0.0.1 turn it on.
    pub allow_private_targets: bool,
    /// How long a delivery is retried before it is marked failed; a subscription failing
    /// continuously for this long is disabled.
    #[serde(deserialize_with = "de_duration")]
    pub retention: Duration,
    #[serde(deserialize_with = "de_duration")]
    pub poll_interval: Duration,
    /// Deliveries in flight at once (each to a different subscription).
    pub concurrency: usize,
    /// The most of a receiver's answer that is read (and kept, in the attempt's error).
    pub max_response_bytes: usize,
    /// Finished (delivered or failed) deliveries are deleted this long after they were queued.
    #[serde(deserialize_with = "de_duration")]
    pub keep_deliveries: Duration,
}

/// The live event stream (Server-Sent Events).
#[derive(Debug, Clone, Deserialize)]
pub struct EventStreamSettings {
    /// A comment line this often keeps proxies from closing an idle stream.
    #[serde(deserialize_with = "de_duration")]
    pub heartbeat: Duration,
    /// How far back `Last-Event-ID` replays.
    #[serde(deserialize_with = "de_duration")]
    pub replay_window: Duration,
    /// Events a stream may fall behind by before it is closed (the client reconnects with
    /// `Last-Event-ID` and replays what it missed).
    pub buffer: usize,
    /// Lifetime of a token from `POST /api/v1/events/stream-token`.
    #[serde(deserialize_with = "de_duration")]
    pub stream_token_ttl: Duration,
    /// SQLite only: how often new rows of the events table are picked up (milliseconds).
    pub sqlite_poll_ms: u64,
    /// Streams one session (one login's token) may hold open at once on a replica; the next
    /// one is 429 until one ends.
    pub max_streams_per_session: usize,
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
    /// How long after SIGTERM the server keeps accepting (readiness already 503).
    #[serde(deserialize_with = "de_duration")]
    pub drain_delay: Duration,
    /// The whole drain, signal to exit.
    #[serde(deserialize_with = "de_duration")]
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    #[serde(deserialize_with = "de_duration")]
    pub token_ttl: Duration,
    /// How long a session lives from its login, however often its token is refreshed.
    #[serde(deserialize_with = "de_duration")]
    pub session_max_age: Duration,
    /// How long this process trusts a token it verified before looking it up again; also the
    /// longest a token revoked through another replica keeps working here. `0s`: no cache.
    #[serde(deserialize_with = "de_duration", default = "default_token_cache_ttl")]
    pub token_cache_ttl: Duration,
}

fn default_token_cache_ttl() -> Duration {
    Duration::from_secs(5)
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
#[serde(deny_unknown_fields)]
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
    /// No longer used: mail is retried until `retention` has passed. Still accepted so
    /// existing configuration files load.
    #[serde(default)]
    pub max_attempts: i32,
    /// How long a mail is retried (with backoff capped at an hour) before it is marked dead.
    #[serde(deserialize_with = "de_duration")]
    pub retention: Duration,
    /// Where the service is reached from outside: links in mails are
    /// `{public_url}/api/v1/tickets/{id}`, and its host names the mails' `Message-ID`s.
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
    /// Open311 POSTs (each presents an API key) per minute from one client address.
    pub open311_per_minute_per_ip: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ReportSettings {
    pub weight_response: f64,
    pub weight_resolution: f64,
    pub weight_satisfaction: f64,
}

/// Open311 GeoReport v2 at `/open311/v2`.
#[derive(Debug, Clone, Deserialize)]
pub struct Open311Settings {
    /// The unit code clients send as `jurisdiction_id`: the tree Open311 serves.
    pub jurisdiction_id: String,
    /// POST requests answers a `token` (resolved through `tokens/{token}`) instead of the id.
    pub batch: bool,
    /// A request's `media_url` may show the thumbnail of its first photo uploaded through our
    /// API (at an unguessable `/open311/v2/media/{token}.jpg`). Off: our photos stay private.
    #[serde(default)]
    pub publish_media: bool,
}

/// Thresholds of the coverage and hotspot reports and of the duplicate search.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct GovernanceSettings {
    /// A community is covered by the satisfaction survey with at least this many rated tickets
    /// in the period.
    pub coverage_min_rated: i64,
    /// Two tickets of a hotspot this close (metres) count as repeated at the same place.
    pub hotspot_radius_m: f64,
    /// Open tickets of the same category this close (metres) are possible duplicates …
    pub duplicate_radius_m: f64,
    /// … when filed within this many days of each other.
    pub duplicate_window_days: i64,
}

impl Default for GovernanceSettings {
    fn default() -> Self {
        Self { coverage_min_rated: 1, hotspot_radius_m: 50.0, duplicate_radius_m: 100.0, duplicate_window_days: 7 }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct DemoSettings {
    pub password: String,
}

/// Where uploaded files live: `file://PATH` or `s3://bucket/prefix` (see config/default.toml).
#[derive(Clone, Deserialize)]
pub struct StorageSettings {
    pub url: String,
    pub s3_endpoint: String,
    pub s3_region: String,
    pub s3_access_key_id: String,
    pub s3_secret_access_key: String,
    pub s3_allow_http: bool,
}

/// The secret stays out of `{:?}` (start-up errors and logs print settings).
impl std::fmt::Debug for StorageSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageSettings")
            .field("url", &self.url)
            .field("s3_endpoint", &self.s3_endpoint)
            .field("s3_region", &self.s3_region)
            .field("s3_access_key_id", &self.s3_access_key_id)
            .field("s3_secret_access_key", &"***")
            .field("s3_allow_http", &self.s3_allow_http)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct UploadSettings {
    /// Largest accepted file, in bytes (larger → 413).
    pub max_bytes: u64,
    /// Largest image, in pixels (width × height); larger → 422.
    pub max_pixels: u64,
    /// Most memory making one image safe may take, in bytes: its decoded pixels (16-bit samples
    /// count twice) plus the one full-size copy that turning or re-encoding it makes; more → 422.
    pub max_decode_bytes: u64,
    /// An upload attached to nothing is deleted by housekeeping after this long.
    #[serde(deserialize_with = "de_duration")]
    pub unattached_ttl: Duration,
    /// Uploads one user may have in progress at once on a replica; the next one is 429.
    pub max_concurrent_per_user: usize,
    /// Longest an image waits for its turn at the decoder before the upload is answered 503
    /// with Retry-After (nothing stored): a queue that long means the replica is saturated.
    #[serde(deserialize_with = "de_duration")]
    pub decode_wait: Duration,
}

/// Community sensors over MQTT (issue 18).
#[derive(Debug, Clone, Deserialize)]
pub struct MqttSettings {
    pub enabled: bool,
    pub url: String,
    pub username: String,
    pub password: String,
    pub topic_prefix: String,
    /// Empty: `gridwhistle-{hostname}`.
    pub client_id: String,
    pub shared_group: String,
    #[serde(deserialize_with = "de_duration")]
    pub session_expiry: Duration,
    #[serde(deserialize_with = "de_duration")]
    pub keep_alive: Duration,
    /// An alarm whose `at` is further ahead of the server's clock than this is recorded at the
    /// server's time (the device's own time is kept beside it).
    #[serde(deserialize_with = "de_duration")]
    pub max_clock_ahead: Duration,
}

impl MqttSettings {
    /// The client id this replica connects with: the configured one, else one per host.
    pub fn effective_client_id(&self) -> String {
        if !self.client_id.trim().is_empty() {
            return self.client_id.trim().to_owned();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        format!("gridwhistle-{host}")
    }

    fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |key: &'static str, message: &str| SettingsError::Invalid { key, message: message.into() };
        if !(self.url.starts_with("mqtt://") || self.url.starts_with("mqtts://")) {
            return Err(invalid("mqtt.url", "must start with mqtt:// or mqtts://"));
        }
        let topic_word =
            |t: &str| !t.is_empty() && !t.starts_with('/') && !t.ends_with('/') && !t.contains(['+', '#', '$', '\0']);
        if !topic_word(&self.topic_prefix) {
            return Err(invalid("mqtt.topic_prefix", "must be a topic path without wildcards, e.g. gridwhistle"));
        }
        if !topic_word(&self.shared_group) || self.shared_group.contains('/') {
            return Err(invalid("mqtt.shared_group", "must be one topic level without wildcards"));
        }
        if self.keep_alive < Duration::from_secs(5) {
            return Err(invalid("mqtt.keep_alive", "must be at least 5s"));
        }
        if self.session_expiry.as_secs() > u64::from(u32::MAX) {
            return Err(invalid("mqtt.session_expiry", "is too long for MQTT (at most about 136 years)"));
        }
        Ok(())
    }
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
    /// Typos must not silently fall back to a default (a server on the wrong port).
    #[error("{}", describe_unknown(.0))]
    UnknownKeys(Vec<UnknownKey>),
}

/// A key no setting reads, where it was found, and the nearest real one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKey {
    /// `GRIDWHISTLE_HTTP_PORT`, or a dotted path such as `htttp.port`.
    pub name: String,
    /// "the environment" or the file's path.
    pub source: String,
    pub suggestion: Option<String>,
}

fn describe_unknown(keys: &[UnknownKey]) -> String {
    let mut text = String::from("unknown configuration keys (every key is listed in config/default.toml):");
    for key in keys {
        let name = if key.source == ENVIRONMENT { key.name.clone() } else { format!("`{}`", key.name) };
        text.push_str(&format!("\n  {name} in {}", key.source));
        if let Some(suggestion) = &key.suggestion {
            let suggestion = if key.source == ENVIRONMENT { suggestion.clone() } else { format!("`{suggestion}`") };
            text.push_str(&format!(": did you mean {suggestion}?"));
        }
    }
    text
}

const ENVIRONMENT: &str = "the environment";
const ENV_PREFIX: &str = "GRIDWHISTLE_";
/// Read by the CLI itself (the local file's path), not a setting.
const ENV_CONFIG_FILE: &str = "GRIDWHISTLE_CONFIG";

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
        check_keys(&sources)?;
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
        if self.http.shutdown_grace < Duration::from_secs(1) || self.http.drain_delay >= self.http.shutdown_grace {
            return Err(SettingsError::Invalid {
                key: "http.shutdown_grace",
                message: "must be at least 1s and longer than http.drain_delay".into(),
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
        if self.auth.token_cache_ttl > Duration::from_secs(60) {
            return Err(SettingsError::Invalid {
                key: "auth.token_cache_ttl",
                message: "must be at most one minute (it bounds how long a revoked token still works)".into(),
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
            let message = problem.text(crate::domain::validate::Lang::En);
            return Err(SettingsError::Invalid { key: "demo.password", message });
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
        let g = &self.governance;
        if !(1..=10_000).contains(&g.coverage_min_rated) {
            return Err(SettingsError::Invalid {
                key: "governance.coverage_min_rated",
                message: "must be between 1 and 10000".into(),
            });
        }
        for (key, radius) in [
            ("governance.hotspot_radius_m", g.hotspot_radius_m),
            ("governance.duplicate_radius_m", g.duplicate_radius_m),
        ] {
            if !(radius.is_finite() && radius > 0.0 && radius <= 10_000.0) {
                return Err(SettingsError::Invalid {
                    key,
                    message: "must be more than 0 and at most 10000 (metres)".into(),
                });
            }
        }
        if !(1..=366).contains(&g.duplicate_window_days) {
            return Err(SettingsError::Invalid {
                key: "governance.duplicate_window_days",
                message: "must be between 1 and 366".into(),
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
        if self.webhooks.concurrency == 0 || self.event_stream.buffer == 0 || self.event_stream.sqlite_poll_ms == 0 {
            return Err(SettingsError::Invalid {
                key: "webhooks.concurrency",
                message: "webhooks.concurrency, event_stream.buffer and event_stream.sqlite_poll_ms must be at least 1"
                    .into(),
            });
        }
        if self.event_stream.max_streams_per_session == 0 || self.uploads.max_concurrent_per_user == 0 {
            return Err(SettingsError::Invalid {
                key: "event_stream.max_streams_per_session",
                message: "event_stream.max_streams_per_session and uploads.max_concurrent_per_user must be at least 1"
                    .into(),
            });
        }
        if self.event_stream.heartbeat < Duration::from_secs(1) {
            return Err(SettingsError::Invalid {
                key: "event_stream.heartbeat",
                message: "must be at least 1s".into(),
            });
        }
        if !(1024..=1024 * 1024 * 1024).contains(&self.uploads.max_bytes) {
            return Err(SettingsError::Invalid {
                key: "uploads.max_bytes",
                message: "must be between 1024 bytes and 1 GiB".into(),
            });
        }
        if self.uploads.decode_wait < Duration::from_secs(1) {
            return Err(SettingsError::Invalid { key: "uploads.decode_wait", message: "must be at least 1s".into() });
        }
        if self.uploads.max_pixels < 320 * 320 || self.uploads.max_decode_bytes < 1024 * 1024 {
            return Err(SettingsError::Invalid {
                key: "uploads",
                message: "max_pixels must be at least 102400 and max_decode_bytes at least 1 MiB".into(),
            });
        }
        crate::storage::Location::parse(&self.storage.url)
            .map_err(|message| SettingsError::Invalid { key: "storage.url", message })?;
        self.mqtt.validate()?;
        self.business_calendar()?;
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| SettingsError::Invalid { key: "log.level", message: e.to_string() })?;
        Ok(())
    }
}

/// Every key and table of config/default.toml, which lists every setting with its default:
/// dotted path → whether it is a table.
fn known_keys() -> Result<std::collections::BTreeMap<String, bool>, SettingsError> {
    fn walk(table: &config::Map<String, Value>, prefix: &str, out: &mut std::collections::BTreeMap<String, bool>) {
        for (key, value) in table {
            let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
            if let ValueKind::Table(inner) = &value.kind {
                walk(inner, &path, out);
                out.insert(path, true);
            } else {
                out.insert(path, false);
            }
        }
    }
    let mut known = std::collections::BTreeMap::new();
    walk(&File::from_str(DEFAULTS, FileFormat::Toml).collect()?, "", &mut known);
    Ok(known)
}

/// Refuses keys no setting reads, in the local file and among the `GRIDWHISTLE_*` variables.
fn check_keys(sources: &SettingsSources) -> Result<(), SettingsError> {
    let known = known_keys()?;
    let mut unknown = Vec::new();
    if let Some(path) = &sources.local_file {
        let tree = File::from(path.as_path()).format(FileFormat::Toml).required(true).collect()?;
        let source = path.display().to_string();
        unknown_in_file(&tree, "", &known, &source, &mut unknown);
    }
    let leaves: Vec<String> = known.iter().filter(|(_, table)| !**table).map(|(key, _)| env_name(key)).collect();
    let mut names: Vec<&String> = sources.env.keys().collect();
    names.sort();
    for name in names {
        let upper = name.to_ascii_uppercase();
        if !upper.starts_with(ENV_PREFIX) || upper == ENV_CONFIG_FILE || leaves.contains(&upper) {
            continue;
        }
        unknown.push(UnknownKey {
            name: name.clone(),
            source: ENVIRONMENT.into(),
            suggestion: nearest(&upper, leaves.iter().map(String::as_str)),
        });
    }
    if unknown.is_empty() { Ok(()) } else { Err(SettingsError::UnknownKeys(unknown)) }
}

fn unknown_in_file(
    table: &config::Map<String, Value>,
    prefix: &str,
    known: &std::collections::BTreeMap<String, bool>,
    source: &str,
    out: &mut Vec<UnknownKey>,
) {
    let mut keys: Vec<&String> = table.keys().collect();
    keys.sort();
    for key in keys {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match (known.get(&path), table.get(key).map(|v| &v.kind)) {
            (Some(true), Some(ValueKind::Table(inner))) => unknown_in_file(inner, &path, known, source, out),
            // A leaf, or a table given a scalar (deserialisation names that one).
            (Some(_), _) => {}
            (None, _) => out.push(UnknownKey {
                suggestion: nearest(&path, known.keys().map(String::as_str)),
                name: path,
                source: source.to_owned(),
            }),
        }
    }
}

/// `http.port` → `GRIDWHISTLE_HTTP__PORT`.
fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.replace('.', "__").to_ascii_uppercase())
}

/// The candidate closest to `word`, if it is close enough to be what was meant.
fn nearest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    let budget = (word.chars().count() / 4).max(2);
    candidates
        .map(|candidate| (edit_distance(word, candidate), candidate))
        .filter(|(distance, _)| *distance <= budget)
        .min()
        .map(|(_, candidate)| candidate.to_owned())
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_key_suggestions() {
        assert_eq!(edit_distance("htttp", "http"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        let keys = ["GRIDWHISTLE_HTTP__PORT", "GRIDWHISTLE_HTTP__HOST", "GRIDWHISTLE_SMTP__PORT"];
        assert_eq!(nearest("GRIDWHISTLE_HTTP_PORT", keys.into_iter()).as_deref(), Some("GRIDWHISTLE_HTTP__PORT"));
        assert_eq!(nearest("GRIDWHISTLE_WHATEVER_ELSE", keys.into_iter()), None);
        assert_eq!(env_name("sla.normal.acknowledge"), "GRIDWHISTLE_SLA__NORMAL__ACKNOWLEDGE");
    }

    #[test]
    fn every_setting_is_a_known_key() {
        let known = known_keys().expect("defaults parse");
        for key in ["database_url", "http.port", "sla.normal.rating_window", "escalation.rules", "log.format"] {
            assert_eq!(known.get(key), Some(&false), "{key}");
        }
        assert_eq!(known.get("sla.urgent"), Some(&true));
    }

    #[test]
    fn mqtt_is_off_by_default_and_checked() {
        let load = |pairs: &[(&str, &str)]| {
            let env = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            Settings::load(SettingsSources { local_file: None, env })
        };
        let defaults = load(&[]).expect("defaults");
        assert!(!defaults.mqtt.enabled);
        assert_eq!(defaults.mqtt.topic_prefix, "gridwhistle");
        assert!(defaults.mqtt.effective_client_id().starts_with("gridwhistle-"));
        let fixed = load(&[("GRIDWHISTLE_MQTT__CLIENT_ID", "replica-a")]).expect("client id");
        assert_eq!(fixed.mqtt.effective_client_id(), "replica-a");
        for (key, value, named) in [
            ("GRIDWHISTLE_MQTT__URL", "http://broker", "mqtt.url"),
            ("GRIDWHISTLE_MQTT__TOPIC_PREFIX", "a/#", "mqtt.topic_prefix"),
            ("GRIDWHISTLE_MQTT__SHARED_GROUP", "a/b", "mqtt.shared_group"),
            ("GRIDWHISTLE_MQTT__KEEP_ALIVE", "1s", "mqtt.keep_alive"),
        ] {
            let refused = load(&[(key, value)]);
            assert!(refused.is_err_and(|err| err.to_string().contains(named)), "{key}={value}");
        }
    }

    #[test]
    fn the_drain_fits_in_its_grace_period() {
        let load = |pairs: &[(&str, &str)]| {
            let env = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            Settings::load(SettingsSources { local_file: None, env })
        };
        let defaults = load(&[]).expect("defaults");
        assert_eq!(defaults.http.shutdown_grace, Duration::from_secs(30));
        assert_eq!(defaults.http.drain_delay, Duration::from_secs(5));
        let too_short = load(&[("GRIDWHISTLE_HTTP__DRAIN_DELAY", "30s"), ("GRIDWHISTLE_HTTP__SHUTDOWN_GRACE", "20s")]);
        assert!(too_short.is_err_and(|err| err.to_string().contains("http.shutdown_grace")));
    }
}
