//! What the experiments share: the real server as a child process (so kill -9 and SIGTERM are
//! real), databases (a SQLite file, a fresh database on TEST_DATABASE_URL, or a private
//! PostgreSQL instance the suite starts on its own port), an SMTP sink, a filing client that
//! keeps every request's Idempotency-Key, and the checks of what the database holds afterwards.

use std::{
    collections::{BTreeMap, HashMap},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use entities::{notification, sla_clock, ticket, ticket_event};
use sea_orm::{ColumnTrait, ConnectionTrait, Database, DatabaseConnection, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

pub const DEMO_PASSWORD: &str = "gridwhistle-demo";
/// Nothing listens here: servers of experiments that are not about mail point their mailer at it.
pub const NO_SMTP_PORT: u16 = 56099;

/// Quick variants run in `cargo test`; long ones with `--ignored`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Quick,
    Long,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// The backends an experiment that works on both runs on: SQLite always, PostgreSQL when
/// TEST_DATABASE_URL is set (it says so when it is not).
pub fn backends(experiment: &str) -> Vec<Backend> {
    if std::env::var("TEST_DATABASE_URL").is_ok() {
        vec![Backend::Sqlite, Backend::Postgres]
    } else {
        println!("[{experiment}] PostgreSQL part skipped: TEST_DATABASE_URL is not set");
        vec![Backend::Sqlite]
    }
}

/// A database for one experiment, removed afterwards.
pub enum TestDatabase {
    Sqlite { url: String, _dir: tempfile::TempDir },
    Postgres { url: String, admin_url: String, name: String },
}

impl TestDatabase {
    pub async fn create(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}/gridwhistle.db?mode=rwc", dir.path().display());
                TestDatabase::Sqlite { url, _dir: dir }
            }
            Backend::Postgres => {
                let admin_url = std::env::var("TEST_DATABASE_URL").expect("TEST_DATABASE_URL");
                Self::create_on_postgres(&admin_url).await
            }
        }
    }

    /// A new database on the PostgreSQL server that `admin_url` reaches.
    pub async fn create_on_postgres(admin_url: &str) -> Self {
        let name = format!("gw_fault_{}", Uuid::now_v7().simple());
        let admin = Database::connect(admin_url).await.expect("connect to the PostgreSQL server");
        admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create database");
        admin.close().await.ok();
        let base = admin_url.rsplit_once('/').map_or(admin_url, |(base, _)| base);
        TestDatabase::Postgres { url: format!("{base}/{name}"), admin_url: admin_url.to_owned(), name }
    }

    pub fn url(&self) -> &str {
        match self {
            TestDatabase::Sqlite { url, .. } | TestDatabase::Postgres { url, .. } => url,
        }
    }

    pub async fn connect(&self) -> DatabaseConnection {
        Database::connect(self.url()).await.expect("the experiment reads the database")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let TestDatabase::Postgres { admin_url, name, .. } = self {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                runtime.block_on(async {
                    if let Ok(admin) = Database::connect(&admin_url).await {
                        let _ = admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                        let _ = admin.close().await;
                    }
                });
            })
            .join();
        }
    }
}

/// A PostgreSQL instance of the suite's own, in a temporary data directory on its own port —
/// never the machine's shared server — so it can be restarted and stopped at will.
pub struct PrivatePostgres {
    pub port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
}

impl PrivatePostgres {
    /// `None` (with the reason printed) when TEST_DATABASE_URL is not set, the PostgreSQL
    /// binaries are missing or the instance does not start.
    pub fn start(experiment: &str, port: u16) -> Option<Self> {
        let skip = |why: &str| {
            println!("[{experiment}] skipped: {why}");
            None
        };
        if std::env::var("TEST_DATABASE_URL").is_err() {
            return skip("TEST_DATABASE_URL is not set");
        }
        let Some(bin) = postgres_bin() else {
            return skip("no PostgreSQL binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin");
        };
        let dir = tempfile::tempdir().expect("temp dir");
        // initdb refuses to run as root: the data directory belongs to the postgres user.
        let as_root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        if as_root {
            let owned = Command::new("chown").args(["postgres:postgres"]).arg(dir.path()).status();
            if !owned.is_ok_and(|s| s.success()) {
                return skip("cannot give the data directory to the postgres user");
            }
        }
        let instance = PrivatePostgres { port, bin, dir };
        let initdb = instance
            .command("initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-instructions", "-D"])
            .arg(instance.data())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output();
        match initdb {
            Ok(out) if out.status.success() => {}
            Ok(out) => return skip(&format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr))),
            Err(err) => return skip(&format!("initdb did not run: {err}")),
        }
        if !instance.pg_ctl(&["start", "-w"]) {
            return skip(&format!("the private PostgreSQL on port {port} did not start (port taken?)"));
        }
        Some(instance)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, program: &str) -> Command {
        let as_root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        let program = self.bin.join(program);
        if as_root {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    /// Runs `pg_ctl <args>` on this instance (its port and socket directory); true on success.
    pub fn pg_ctl(&self, args: &[&str]) -> bool {
        let options = format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.dir.path().display());
        self.command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-o", &options, "-l"])
            .arg(self.dir.path().join("log"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.pg_ctl(&["stop", "-m", "immediate"]);
    }
}

fn postgres_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
        .collect();
    found.sort();
    found.pop()
}

/// The real server binary as a child process on a fixed port (a restart comes back on the same
/// one, as behind a load balancer). Killed if an experiment fails with it running.
pub struct Server {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
}

pub struct ServerConfig<'a> {
    pub database_url: &'a str,
    pub port: u16,
    /// `serve --demo`: load the demo data set into an empty database.
    pub demo: bool,
    pub smtp_port: u16,
    pub log_dir: &'a Path,
    pub extra: &'a [(&'a str, &'a str)],
}

impl<'a> ServerConfig<'a> {
    /// A server that loads the demo data and sends no mail, with `extra` settings.
    pub fn demo_without_mail(
        database_url: &'a str,
        port: u16,
        log_dir: &'a Path,
        extra: &'a [(&'a str, &'a str)],
    ) -> Self {
        Self { database_url, port, demo: true, smtp_port: NO_SMTP_PORT, log_dir, extra }
    }
}

impl Server {
    pub fn start(config: &ServerConfig) -> Self {
        let port = config.port.to_string();
        let smtp_port = config.smtp_port.to_string();
        let mut env: HashMap<&str, &str> = HashMap::from([
            ("GRIDWHISTLE_DATABASE_URL", config.database_url),
            ("GRIDWHISTLE_HTTP__PORT", port.as_str()),
            ("GRIDWHISTLE_HTTP__WORKERS", "2"),
            ("GRIDWHISTLE_DATABASE__MAX_CONNECTIONS", "8"),
            ("GRIDWHISTLE_SMTP__PORT", smtp_port.as_str()),
            ("GRIDWHISTLE_SMTP__POLL_INTERVAL", "1s"),
            // The experiments file far faster than people; the limits have tests of their own.
            ("GRIDWHISTLE_SECURITY__LOGIN_PER_MINUTE_PER_IP", "100000"),
            ("GRIDWHISTLE_SECURITY__FILING_PER_MINUTE_PER_TOKEN", "100000"),
            ("GRIDWHISTLE_HTTP__DRAIN_DELAY", "1s"),
            ("GRIDWHISTLE_HTTP__SHUTDOWN_GRACE", "15s"),
            ("GRIDWHISTLE_LOG__LEVEL", "warn"),
        ]);
        env.extend(config.extra.iter().copied());
        let log_path = config.log_dir.join(format!("server-{}-{}.log", config.port, Uuid::now_v7().simple()));
        let log = std::fs::File::create(&log_path).expect("server log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_gridwhistle"));
        command.arg("serve");
        if config.demo {
            command.arg("--demo");
        }
        let child = command
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("RUST_LOG")
            .env_remove("DATABASE_URL")
            .envs(env)
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("the server starts");
        Server { child, port: config.port, log: log_path }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `/readyz` answers 200; how long that took, or a failure naming the log.
    pub async fn ready(&mut self, within: Duration) -> Duration {
        let started = Instant::now();
        let client = reqwest::Client::new();
        while started.elapsed() < within {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the server exited ({status}) before it was ready; log: {}", self.tail());
            }
            let probe = client.get(format!("{}/readyz", self.base())).timeout(Duration::from_secs(2)).send().await;
            if probe.is_ok_and(|r| r.status().is_success()) {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server was not ready within {within:?}; log: {}", self.tail())
    }

    /// kill -9: no drain, no cleanup, whatever was in flight.
    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    pub fn sigterm(&self) {
        let sent = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status().expect("kill runs");
        assert!(sent.success(), "SIGTERM sent");
    }

    /// The exit status, if the process exits within `within`.
    pub async fn exited(&mut self, within: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < within {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// The end of the server's log, for a failure message.
    pub fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// The log lines at ERROR level (the log is not coloured: standard output is a file).
    pub fn errors(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().filter(|l| l.contains(" ERROR ")).map(str::to_owned).collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until something accepts connections on `port`.
pub fn wait_listening(port: u16) {
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on port {port}");
}

/// A set-up request's JSON answer. A loaded machine may see a 503 (pool busy): set-up retries
/// it for a while, as any client would; anything else but a 2xx fails the experiment.
async fn setup_request(request: impl Fn() -> reqwest::RequestBuilder, what: &str) -> Value {
    let mut last = String::new();
    for _ in 0..40 {
        match request().send().await {
            Ok(response) if response.status().is_success() => return response.json().await.expect("a JSON body"),
            Ok(response) if response.status().as_u16() == 503 => {
                last = format!("503 {}", response.text().await.unwrap_or_default())
            }
            Ok(response) => panic!("{what}: {} {}", response.status(), response.text().await.unwrap_or_default()),
            Err(err) => last = chain(&err),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("{what}: no answer but {last}")
}

/// A demo user's token from the server at `base`.
pub async fn token(base: &str, username: &str) -> String {
    let client = reqwest::Client::new();
    let body = setup_request(
        || {
            client
                .post(format!("{base}/api/v1/auth/token"))
                .json(&json!({"username": username, "password": DEMO_PASSWORD}))
        },
        &format!("login of {username}"),
    )
    .await;
    body["access_token"].as_str().expect("access_token").to_owned()
}

/// The id of the demo category `code`.
pub async fn category(base: &str, token: &str, code: &str) -> String {
    let client = reqwest::Client::new();
    let body = setup_request(
        || client.get(format!("{base}/api/v1/categories?code={code}")).bearer_auth(token),
        &format!("category {code}"),
    )
    .await;
    body["items"][0]["id"].as_str().unwrap_or_else(|| panic!("category {code} in {body}")).to_owned()
}

/// What became of one request, as its client saw it.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// An HTTP answer (any status) with the ticket id when it was a 2xx filing.
    Answered { status: u16, ticket: Option<String> },
    /// No connection: nothing was sent (the server is down or no longer accepts).
    Refused,
    /// Sent, and no answer came (the connection broke, or the client's timeout passed); the
    /// client's error, shown by a failing assertion.
    Unanswered(#[allow(dead_code, reason = "read through Debug in assertion messages")] String),
}

impl Outcome {
    pub fn acknowledged(&self) -> bool {
        matches!(self, Outcome::Answered { status: 200..=299, .. })
    }
}

/// Files tickets the experiment can recognise afterwards: the description carries the run's
/// marker and the request's number, and every request has the Idempotency-Key `<run>-<n>`.
#[derive(Clone)]
pub struct Filer {
    pub client: reqwest::Client,
    pub token: String,
    pub category: String,
    pub run: String,
}

impl Filer {
    pub async fn new(base: &str) -> Self {
        let token = token(base, "demo-grid").await;
        let category = category(base, &token, "environment").await;
        let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client");
        Filer { client, token, category, run: format!("fault-{}", Uuid::now_v7().simple()) }
    }

    pub fn key(&self, n: usize) -> String {
        format!("{}-{n}", self.run)
    }

    pub fn marker(&self, n: usize) -> String {
        format!("[{}#{n}]", self.run)
    }

    pub async fn file(&self, base: &str, n: usize) -> Outcome {
        let body = json!({
            "category_id": self.category,
            "title": "楼道堆放杂物",
            "description": format!("3号楼2单元楼道堆满杂物，存在消防隐患。{}", self.marker(n)),
            "location": {"lat": 38.41, "lon": 112.705},
            "address": "和平街12号3号楼",
            "resident": {"name": "张三丰", "phone": "13812345678"},
            "channel": "grid_app",
        });
        let sent = self
            .client
            .post(format!("{base}/api/v1/tickets"))
            .bearer_auth(&self.token)
            .header("Idempotency-Key", self.key(n))
            .json(&body)
            .send()
            .await;
        match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let ticket = if (200..300).contains(&status) {
                    response.json::<Value>().await.ok().and_then(|b| b["id"].as_str().map(str::to_owned))
                } else {
                    None
                };
                Outcome::Answered { status, ticket }
            }
            Err(err) => classify(err),
        }
    }

    /// A read of the ticket list (an idempotent request beside the filings).
    pub async fn read(&self, base: &str) -> Outcome {
        match self.client.get(format!("{base}/api/v1/tickets?limit=5")).bearer_auth(&self.token).send().await {
            Ok(response) => Outcome::Answered { status: response.status().as_u16(), ticket: None },
            Err(err) => classify(err),
        }
    }
}

impl Filer {
    /// Files request `n` until it is acknowledged; a 503 (busy) or refused connection is
    /// retried with the same key, anything else fails the experiment.
    pub async fn file_acknowledged(&self, base: &str, n: usize) {
        for _ in 0..40 {
            match self.file(base, n).await {
                outcome if outcome.acknowledged() => return,
                Outcome::Answered { status: 503, .. } | Outcome::Refused => {
                    tokio::time::sleep(Duration::from_millis(500)).await
                }
                other => panic!("filing {n}: {other:?}"),
            }
        }
        panic!("filing {n} not acknowledged after 40 tries")
    }
}

pub fn classify(err: reqwest::Error) -> Outcome {
    if err.is_connect() { Outcome::Refused } else { Outcome::Unanswered(crate::support::chain(&err)) }
}

pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Every filing request of a run, by number: each attempt's outcome in order.
#[derive(Clone, Default)]
pub struct Ledger(Arc<Mutex<BTreeMap<usize, Vec<Outcome>>>>);

impl Ledger {
    pub fn record(&self, n: usize, outcome: Outcome) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).entry(n).or_default().push(outcome);
    }

    pub fn snapshot(&self) -> BTreeMap<usize, Vec<Outcome>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The numbers whose last attempt was not acknowledged: to retry with the same key.
    pub fn unacknowledged(&self) -> Vec<usize> {
        self.snapshot()
            .into_iter()
            .filter(|(_, outcomes)| !outcomes.last().is_some_and(Outcome::acknowledged))
            .map(|(n, _)| n)
            .collect()
    }

    /// The ticket id each acknowledged request was answered with (the last acknowledgement).
    pub fn acknowledged(&self) -> BTreeMap<usize, String> {
        self.snapshot()
            .into_iter()
            .filter_map(|(n, outcomes)| {
                outcomes.iter().rev().find_map(|o| match o {
                    Outcome::Answered { status: 200..=299, ticket } => Some((n, ticket.clone().unwrap_or_default())),
                    _ => None,
                })
            })
            .collect()
    }

    pub fn count(&self, which: impl Fn(&Outcome) -> bool) -> usize {
        self.snapshot().values().flatten().filter(|o| which(o)).count()
    }
}

/// Retries every unacknowledged request with its key until each is acknowledged (or `within`
/// passes); a 503 or a refused connection is retried, other answers are final.
pub async fn retry_unacknowledged(filer: &Filer, base: &str, ledger: &Ledger, within: Duration) -> usize {
    let started = Instant::now();
    let pending = ledger.unacknowledged();
    let retried = pending.len();
    for n in pending {
        loop {
            let outcome = filer.file(base, n).await;
            let again = matches!(outcome, Outcome::Refused | Outcome::Answered { status: 503, .. });
            ledger.record(n, outcome);
            if !again || started.elapsed() > within {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    retried
}

/// Lost and duplicated filings, read from the database against the client's ledger.
#[derive(Debug, Default)]
pub struct Durability {
    pub acknowledged: usize,
    /// Acknowledged, yet no ticket with its id and marker in the database.
    pub lost: usize,
    /// Tickets beyond the first for one request (one marker, one Idempotency-Key).
    pub duplicated: usize,
    /// Tickets of this run that no request of the ledger asked for.
    pub unexplained: usize,
}

pub async fn durability(db: &DatabaseConnection, filer: &Filer, ledger: &Ledger) -> Durability {
    let tickets = ticket::Entity::find()
        .filter(ticket::Column::Description.contains(format!("[{}#", filer.run)))
        .all(db)
        .await
        .expect("tickets read");
    let mut by_request: BTreeMap<usize, Vec<Uuid>> = BTreeMap::new();
    let mut unexplained = 0;
    for t in &tickets {
        let n = t.description.rsplit_once('#').and_then(|(_, rest)| rest.trim_end_matches(']').parse::<usize>().ok());
        match n {
            Some(n) => by_request.entry(n).or_default().push(t.id),
            None => unexplained += 1,
        }
    }
    let attempted = ledger.snapshot();
    unexplained += by_request.keys().filter(|n| !attempted.contains_key(n)).count();
    let acknowledged = ledger.acknowledged();
    let lost = acknowledged
        .iter()
        .filter(|(n, id)| !by_request.get(n).is_some_and(|ids| ids.iter().any(|t| t.to_string() == **id)))
        .count();
    let duplicated = by_request.values().map(|ids| ids.len().saturating_sub(1)).sum();
    Durability { acknowledged: acknowledged.len(), lost, duplicated, unexplained }
}

/// Each clock's milestones as recorded on the timeline: how many times each fired.
#[derive(Debug, Default)]
pub struct Clocks {
    pub clocks: usize,
    pub warnings: usize,
    pub breaches: usize,
    /// Milestones recorded more than once (a warning or breach of one clock fired twice).
    pub fired_twice: usize,
    /// Clocks marked warned/breached without the event on the timeline, or the reverse.
    pub mismatched: usize,
}

pub async fn clocks(db: &DatabaseConnection) -> Clocks {
    let clocks = sla_clock::Entity::find().all(db).await.expect("clocks read");
    let events = ticket_event::Entity::find()
        .filter(ticket_event::Column::Kind.is_in(["sla_warning", "sla_breached"]))
        .all(db)
        .await
        .expect("events read");
    // A clock is (ticket, dispatch, kind); each of its milestones is one event.
    let mut fired: HashMap<(Uuid, Option<Uuid>, String, String), usize> = HashMap::new();
    for e in &events {
        let clock = e.payload["clock"].as_str().unwrap_or_default().to_owned();
        *fired.entry((e.ticket_id, e.dispatch_id, clock, e.kind.clone())).or_default() += 1;
    }
    let mut report = Clocks { clocks: clocks.len(), ..Default::default() };
    report.fired_twice = fired.values().map(|n| n.saturating_sub(1)).sum();
    for c in &clocks {
        for (kind, marked) in [("sla_warning", c.warned_at.is_some()), ("sla_breached", c.breached_at.is_some())] {
            let n = fired.get(&(c.ticket_id, c.dispatch_id, c.clock.clone(), kind.to_owned())).copied().unwrap_or(0);
            if marked != (n > 0) {
                report.mismatched += 1;
            }
            if marked && kind == "sla_warning" {
                report.warnings += 1;
            }
            if marked && kind == "sla_breached" {
                report.breaches += 1;
            }
        }
    }
    report
}

/// The outbox by status.
pub async fn outbox(db: &DatabaseConnection) -> BTreeMap<String, Vec<notification::Model>> {
    let mut by_status: BTreeMap<String, Vec<notification::Model>> = BTreeMap::new();
    for row in notification::Entity::find().all(db).await.expect("outbox read") {
        by_status.entry(sea_orm::ActiveEnum::to_value(&row.status)).or_default().push(row);
    }
    by_status
}

pub fn count(outbox: &BTreeMap<String, Vec<notification::Model>>, status: &str) -> usize {
    outbox.get(status).map_or(0, Vec::len)
}

/// Outbox rows that say the same thing to the same recipient about the same ticket: the trace
/// of an event that fired twice.
pub fn same_mail_twice(outbox: &BTreeMap<String, Vec<notification::Model>>) -> usize {
    let mut seen: HashMap<(Option<Uuid>, &str, &str, &str, &str), usize> = HashMap::new();
    for row in outbox.values().flatten() {
        *seen.entry((row.ticket_id, &row.kind, &row.recipient, &row.subject, &row.body)).or_default() += 1;
    }
    seen.values().map(|n| n.saturating_sub(1)).sum()
}

pub fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

/// An SMTP server on loopback (mailin-embedded speaks the server side of a real SMTP
/// conversation) that keeps what it receives. It runs until the test process ends, so each
/// experiment takes a port of its own; "down" is simply before it starts.
pub struct Sink {
    store: Arc<Mutex<Vec<String>>>,
}

#[derive(Clone, Default)]
struct SinkHandler {
    store: Arc<Mutex<Vec<String>>>,
    data: Vec<u8>,
}

impl mailin_embedded::Handler for SinkHandler {
    fn data_start(&mut self, _: &str, _: &str, _: bool, _: &[String]) -> mailin_embedded::Response {
        self.data.clear();
        mailin_embedded::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> mailin_embedded::Response {
        let mail = String::from_utf8_lossy(&std::mem::take(&mut self.data)).into_owned();
        self.store.lock().unwrap_or_else(|p| p.into_inner()).push(mail);
        mailin_embedded::response::OK
    }
}

impl Sink {
    pub fn start(port: u16) -> Self {
        let store = Arc::new(Mutex::new(Vec::new()));
        let mut server = mailin_embedded::Server::new(SinkHandler { store: store.clone(), data: Vec::new() });
        server.with_name("sink.test").with_num_threads(4).with_addr(("127.0.0.1", port)).expect("address");
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        wait_listening(port);
        Sink { store }
    }

    /// How many times each outbox row arrived, by the row id in its Message-ID
    /// (`<{row id}@{host}>`).
    pub fn by_row(&self) -> BTreeMap<Uuid, usize> {
        let mut counts = BTreeMap::new();
        for mail in self.store.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let headers = mail.split("\r\n\r\n").next().unwrap_or_default();
            let id = headers.split("\r\n").find_map(|line| {
                let (name, value) = line.split_once(':')?;
                let value = value.trim().trim_start_matches('<');
                name.eq_ignore_ascii_case("message-id").then(|| value.split('@').next()?.parse::<Uuid>().ok())?
            });
            *counts.entry(id.unwrap_or_default()).or_default() += 1;
        }
        counts
    }
}

/// Mail delivery compared with the outbox: of the rows in `ours`, those never received (lost);
/// of everything received, rows received more than once (duplicated) and mails that match no
/// row of `outbox` (unknown).
#[derive(Debug, Default)]
pub struct Delivery {
    pub rows: usize,
    pub received: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub unknown: usize,
}

pub fn delivery(
    outbox: &BTreeMap<String, Vec<notification::Model>>,
    ours: &[&notification::Model],
    sink: &Sink,
) -> Delivery {
    let received = sink.by_row();
    let ids: std::collections::HashSet<Uuid> = outbox.values().flatten().map(|r| r.id).collect();
    Delivery {
        rows: ours.len(),
        received: received.values().sum(),
        lost: ours.iter().filter(|r| !received.contains_key(&r.id)).count(),
        duplicated: received.values().map(|n| n.saturating_sub(1)).sum(),
        unknown: received.keys().filter(|id| !ids.contains(id)).count(),
    }
}

/// The outbox rows about the tickets of `filer`'s run (the demo data's own history is older
/// than `smtp.retention`, so its mails are dead at the first tick: not this experiment's).
pub async fn rows_of_run<'a>(
    db: &DatabaseConnection,
    outbox: &'a BTreeMap<String, Vec<notification::Model>>,
    filer: &Filer,
) -> Vec<&'a notification::Model> {
    let tickets: std::collections::HashSet<Uuid> = ticket::Entity::find()
        .filter(ticket::Column::Description.contains(format!("[{}#", filer.run)))
        .all(db)
        .await
        .expect("tickets read")
        .into_iter()
        .map(|t| t.id)
        .collect();
    outbox.values().flatten().filter(|r| r.ticket_id.is_some_and(|t| tickets.contains(&t))).collect()
}
