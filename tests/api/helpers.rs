//! The test harness: the real application on a random port, against a fresh database —
//! a temporary SQLite file always, and a new PostgreSQL database too when
//! TEST_DATABASE_URL is set (created per test, dropped afterwards).

use std::{collections::HashMap, future::Future, sync::Arc};

use gridwhistle::{
    clock::ManualClock,
    config::{Settings, SettingsSources},
    context::AppContext,
    domain::access::Caller,
    service,
    startup::Application,
};
use reqwest::{Method, StatusCode};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use uuid::Uuid;

pub const DEMO_PASSWORD: &str = "gridwhistle-demo";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub ctx: AppContext,
    _database: DatabaseGuard,
    /// The test's own object store folder (`storage.url`), unless the test chose another.
    pub blobs: tempfile::TempDir,
}

/// The backends to run on: SQLite always, PostgreSQL when TEST_DATABASE_URL is set.
pub fn backends() -> Vec<Backend> {
    let mut backends = vec![Backend::Sqlite];
    if std::env::var("TEST_DATABASE_URL").is_ok() {
        backends.push(Backend::Postgres);
    }
    backends
}

/// Runs `test` once on SQLite and, when TEST_DATABASE_URL is set, once more on PostgreSQL.
pub async fn each_backend<F, Fut>(test: F)
where
    F: Fn(TestApp) -> Fut,
    Fut: Future<Output = ()>,
{
    // Printed output shows with a failure: it tells which backend failed.
    println!("-- on SQLite");
    guarded(test(spawn_app(Backend::Sqlite).await)).await;
    if std::env::var("TEST_DATABASE_URL").is_ok() {
        println!("-- on PostgreSQL");
        guarded(test(spawn_app(Backend::Postgres).await)).await;
    }
}

/// A test that waits for something that never comes fails after this long instead of
/// holding the whole suite (and CI) until its own time limit. A guard, not a measurement.
const TEST_GUARD: std::time::Duration = std::time::Duration::from_secs(600);

async fn guarded(test: impl Future<Output = ()>) {
    tokio::time::timeout(TEST_GUARD, test).await.expect("the test is stuck: it ran past its guard");
}

/// The variables a test server is configured with, database URL included.
pub fn test_env(database_url: &str) -> HashMap<String, String> {
    HashMap::from([
        ("GRIDWHISTLE_DATABASE_URL".into(), database_url.into()),
        ("GRIDWHISTLE_HTTP__PORT".into(), "0".into()),
        ("GRIDWHISTLE_HTTP__WORKERS".into(), "1".into()),
        ("GRIDWHISTLE_DATABASE__MAX_CONNECTIONS".into(), "4".into()),
        ("GRIDWHISTLE_HTTP__BODY_LIMIT".into(), "65536".into()),
        // Tests log in and file far faster than people; the limits have tests of their own.
        ("GRIDWHISTLE_SECURITY__LOGIN_PER_MINUTE_PER_IP".into(), "100000".into()),
        ("GRIDWHISTLE_SECURITY__FILING_PER_MINUTE_PER_TOKEN".into(), "100000".into()),
        // Never the working directory's data/blobs; spawn_app gives each test a folder of its own.
        (
            "GRIDWHISTLE_STORAGE__URL".into(),
            format!("file://{}", std::env::temp_dir().join("gridwhistle-test-blobs").display()),
        ),
    ])
}

pub async fn fresh_database(backend: Backend) -> (String, DatabaseGuard) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}/gridwhistle.db?mode=rwc", dir.path().display());
            (url, DatabaseGuard::Sqlite(dir))
        }
        Backend::Postgres => {
            let admin_url = std::env::var("TEST_DATABASE_URL").expect("TEST_DATABASE_URL");
            let name = format!("gw_test_{}", Uuid::now_v7().simple());
            let admin = Database::connect(&admin_url).await.expect("connect to TEST_DATABASE_URL");
            admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create test database");
            admin.close().await.ok();
            let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(base, _)| base).to_owned();
            (format!("{base}/{name}"), DatabaseGuard::Postgres { admin_url, name })
        }
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[]).await
}

/// A test app with some settings changed, e.g. `("GRIDWHISTLE_SECURITY__LOCKOUT_AFTER", "3")`.
pub async fn spawn_app_with(backend: Backend, overrides: &[(&str, &str)]) -> TestApp {
    let (url, guard) = fresh_database(backend).await;
    let mut env = test_env(&url);
    let blobs = tempfile::tempdir().expect("temp dir for blobs");
    env.insert("GRIDWHISTLE_STORAGE__URL".into(), format!("file://{}", blobs.path().display()));
    env.extend(overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let settings = Settings::load(SettingsSources { local_file: None, env }).expect("test settings");
    // TEST_LOG=<filter> shows the server's logs while debugging a test (with --nocapture).
    if let Ok(level) = std::env::var("TEST_LOG") {
        let format = gridwhistle::config::LogFormat::Pretty;
        gridwhistle::telemetry::init(&gridwhistle::config::LogSettings { format, level });
    }
    let clock = ManualClock::new();
    let app = Application::build_with_clock(settings, clock.clone()).await.expect("application starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    let ctx = app.context().clone();
    tokio::spawn(app.run_until_stopped());
    // An idle keep-alive connection is dropped by the client well before the server's own 5 s
    // keep-alive ends: otherwise, on a loaded machine, a request can be sent on a connection the
    // server is closing at that moment (the usual keep-alive race every HTTP client faces).
    let client =
        reqwest::Client::builder().pool_idle_timeout(std::time::Duration::from_secs(2)).build().expect("http client");
    TestApp { address, client, clock, ctx, _database: guard, blobs }
}

pub enum DatabaseGuard {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl Drop for DatabaseGuard {
    fn drop(&mut self) {
        if let DatabaseGuard::Postgres { admin_url, name } = self {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs inside the test's runtime; do the async cleanup on a thread of its own.
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

/// A response with its status and JSON body (Null when the body is empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.body);
        self.body
    }

    /// Asserts a problem-details error and returns its body.
    #[track_caller]
    pub fn problem(self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.body);
        let content_type = self.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert_eq!(content_type, "application/problem+json", "problem content type");
        assert_eq!(self.body["status"], status, "problem status field: {}", self.body);
        for field in ["type", "title", "detail"] {
            assert!(self.body[field].is_string(), "problem lacks `{field}`: {}", self.body);
        }
        self.body
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn request(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body read");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply { status, headers, body }
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.request(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.request(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.request(Method::PATCH, path, Some(token), Some(body)).await
    }

    pub async fn put_json(&self, path: &str, token: &str, body: Value) -> Reply {
        self.request(Method::PUT, path, Some(token), Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.request(Method::DELETE, path, Some(token), None).await
    }

    pub async fn login(&self, username: &str, password: &str) -> Reply {
        self.request(
            Method::POST,
            "/api/v1/auth/token",
            None,
            Some(json!({"username": username, "password": password})),
        )
        .await
    }

    /// Logs in and returns the bearer token.
    pub async fn token(&self, username: &str, password: &str) -> String {
        let body = self.login(username, password).await.expect(200);
        body["access_token"].as_str().expect("access_token").to_owned()
    }

    /// Loads the 忻州市 demo reference data and users (what `seed-demo` loads, less its tickets).
    pub async fn seed_demo(&self) {
        service::demo::seed_reference(&self.ctx).await.expect("demo data loads");
    }

    /// The demo data set plus a token for the demo user of `role`.
    pub async fn demo_token(&self, username: &str) -> String {
        self.token(username, DEMO_PASSWORD).await
    }

    /// An admin created directly through the service (the bootstrap step an operator does
    /// with `gridwhistle user create`), and their token.
    pub async fn admin_token(&self) -> String {
        let system = Caller {
            user_id: Uuid::nil(),
            username: "test".into(),
            role: entities::Role::Admin,
            unit_id: None,
            department_id: None,
            home_path: None,
            ip: None,
        };
        let input = service::users::NewUser {
            username: "root-admin".into(),
            display_name: "测试管理员".into(),
            role: entities::Role::Admin,
            unit_id: None,
            department_id: None,
            password: "root-admin-password".into(),
            email: None,
            active: true,
        };
        service::users::create(&self.ctx, &system, input).await.expect("admin created");
        self.token("root-admin", "root-admin-password").await
    }

    /// The id of the row with `code` in a list endpoint.
    pub async fn id_by_code(&self, collection: &str, code: &str, token: &str) -> String {
        let body = self.get(&format!("/api/v1/{collection}?code={code}"), token).await.expect(200);
        body["items"][0]["id"].as_str().unwrap_or_else(|| panic!("{collection} {code} exists")).to_owned()
    }
}

/// Ticket fixtures: the demo data set's ids by code, a few extra users, and a ticket body.
pub struct Demo {
    pub admin: String,
    pub grid: String,
    pub dispatcher: String,
    pub dept: String,
    pub supervisor: String,
}

impl TestApp {
    /// Seeds the demo data and logs every demo user in.
    pub async fn demo(&self) -> Demo {
        self.seed_demo().await;
        Demo {
            admin: self.demo_token("demo-admin").await,
            grid: self.demo_token("demo-grid").await,
            dispatcher: self.demo_token("demo-dispatcher").await,
            dept: self.demo_token("demo-dept").await,
            supervisor: self.demo_token("demo-supervisor").await,
        }
    }

    /// A new user (through the admin API) and their token. `home` is a unit code for unit
    /// roles and a department code for department staff.
    pub async fn user_in(&self, admin: &str, username: &str, role: &str, home: &str) -> String {
        let body = if role == "department_staff" {
            let department = self.id_by_code("departments", home, admin).await;
            json!({"username": username, "display_name": username, "role": role, "department_id": department, "password": "a long test password"})
        } else {
            let unit = self.id_by_code("grid-units", home, admin).await;
            json!({"username": username, "display_name": username, "role": role, "unit_id": unit, "password": "a long test password"})
        };
        self.post("/api/v1/users", admin, body).await.expect(201);
        self.token(username, "a long test password").await
    }

    pub async fn category(&self, code: &str, token: &str) -> String {
        self.id_by_code("categories", code, token).await
    }

    /// Files a ticket of `category` at a point in 和平社区第一网格 and returns it.
    pub async fn file(&self, token: &str, category_id: &str) -> Value {
        self.post("/api/v1/tickets", token, ticket_body(category_id)).await.expect(201)
    }

    /// The first dispatch of `ticket` to the department with `code`.
    pub async fn dispatch_of(&self, ticket: &Value, code: &str, admin: &str) -> String {
        let department = self.id_by_code("departments", code, admin).await;
        let found = ticket["dispatches"]
            .as_array()
            .expect("dispatches")
            .iter()
            .rev()
            .find(|d| d["department_id"] == department.as_str())
            .unwrap_or_else(|| panic!("a dispatch to {code} in {ticket}"));
        found["id"].as_str().expect("id").to_owned()
    }

    pub async fn ticket(&self, id: &str, token: &str) -> Value {
        self.get(&format!("/api/v1/tickets/{id}"), token).await.expect(200)
    }

    /// The kinds of a ticket's timeline, in order.
    pub async fn timeline(&self, id: &str, token: &str) -> Vec<String> {
        let events = self.get(&format!("/api/v1/tickets/{id}/events?limit=200"), token).await.expect(200);
        events["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|e| e["kind"].as_str().expect("kind").to_owned())
            .collect()
    }
}

pub const RESIDENT_PHONE: &str = "13812345678";

/// A ticket in 和平社区第一网格 (located from its coordinates), with a resident to call back.
pub fn ticket_body(category_id: &str) -> Value {
    json!({
        "category_id": category_id,
        "title": "楼道堆放杂物",
        "description": "3号楼2单元楼道堆满杂物，存在消防隐患。",
        "location": {"lat": 38.41, "lon": 112.705},
        "address": "和平街12号3号楼",
        "resident": {"name": "张三丰", "phone": RESIDENT_PHONE},
        "channel": "grid_app",
        "attachments": [{"file_name": "photo.jpg", "content_type": "image/jpeg", "size": 204800, "sha256": "a".repeat(64)}]
    })
}

/// `png` with its header rewritten to declare `width`×`height` (what a decompression bomb
/// does): IHDR's width and height start at byte 16, and its CRC (bytes 29..33) covers 12..29.
pub fn with_declared_size(mut png: Vec<u8>, width: u32, height: u32) -> Vec<u8> {
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32fast::hash(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

/// A wall-clock time in China Standard Time (UTC+8), `YYYY-MM-DD HH:MM`, as the instant it is.
pub fn cst(text: &str) -> chrono::DateTime<chrono::Utc> {
    let local = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").expect("a local time");
    (local - chrono::Duration::hours(8)).and_utc()
}
