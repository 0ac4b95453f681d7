//! What an operator relies on: configuration layering, migrations, the CLI, health probes,
//! request ids and the OpenAPI document.

use std::{collections::HashMap, io::Write, process::Command};

use gridwhistle::config::{LogFormat, Settings, SettingsSources};
use migration::{Migrator, MigratorTrait};
use reqwest::Method;
use sea_orm::Database;
use serde_json::Value;

use crate::helpers::{backends, each_backend, fresh_database, test_env};

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn load(pairs: &[(&str, &str)]) -> Result<Settings, String> {
    Settings::load(SettingsSources { local_file: None, env: env(pairs) }).map_err(|e| e.to_string())
}

#[test]
fn configuration_layers_and_names_bad_keys() {
    let defaults = load(&[]).expect("defaults load");
    assert_eq!(defaults.http.host, "127.0.0.1");
    assert_eq!(defaults.http.port, 8080);
    assert!(defaults.database_url.starts_with("sqlite://data/"));
    assert_eq!(defaults.auth.token_ttl.as_secs(), 12 * 3600);

    let overridden = load(&[
        ("GRIDWHISTLE_HTTP__PORT", "9123"),
        ("GRIDWHISTLE_HTTP__HOST", "0.0.0.0"),
        ("GRIDWHISTLE_LOG__FORMAT", "json"),
        ("GRIDWHISTLE_AUTH__TOKEN_TTL", "30m"),
    ])
    .expect("env overrides load");
    assert_eq!(overridden.http.port, 9123);
    assert_eq!(overridden.http.host, "0.0.0.0");
    assert_eq!(overridden.log.format, LogFormat::Json);
    assert_eq!(overridden.auth.token_ttl.as_secs(), 1800);

    let conventional = load(&[("DATABASE_URL", "postgres://a@h/db1")]).expect("DATABASE_URL honoured");
    assert_eq!(conventional.database_url, "postgres://a@h/db1");
    let specific = load(&[("DATABASE_URL", "postgres://a@h/db1"), ("GRIDWHISTLE_DATABASE_URL", "postgres://a@h/db2")])
        .expect("both set");
    assert_eq!(specific.database_url, "postgres://a@h/db2", "the GRIDWHISTLE_ variable wins");

    for (key, value, named) in [
        ("GRIDWHISTLE_HTTP__PORT", "eighty", "http.port"),
        ("GRIDWHISTLE_HTTP__PORT", "70000", "http.port"),
        ("GRIDWHISTLE_DATABASE_URL", "mysql://x", "database_url"),
        ("GRIDWHISTLE_AUTH__TOKEN_TTL", "12 hours", "token_ttl"),
        ("GRIDWHISTLE_LOG__FORMAT", "xml", "log.format"),
        ("GRIDWHISTLE_DEMO__PASSWORD", "short", "demo.password"),
    ] {
        let message = load(&[(key, value)]).expect_err("a bad value fails start-up");
        assert!(message.contains(named), "{key}={value}: `{message}` should name {named}");
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("local.toml");
    let mut file = std::fs::File::create(&path).expect("create");
    writeln!(file, "[http]\nport = 7000\n[log]\nformat = \"json\"").expect("write");
    let local = Settings::load(SettingsSources {
        local_file: Some(path.clone()),
        env: env(&[("GRIDWHISTLE_HTTP__PORT", "7001")]),
    })
    .expect("local file loads");
    assert_eq!(local.log.format, LogFormat::Json, "the local file overrides the defaults");
    assert_eq!(local.http.port, 7001, "the environment overrides the local file");
    let missing =
        Settings::load(SettingsSources { local_file: Some(dir.path().join("nope.toml")), env: HashMap::new() });
    assert!(missing.is_err(), "a named local file must exist");
}

#[tokio::test]
async fn migrations_apply_from_empty_revert_and_reapply() {
    for backend in backends() {
        let (url, _guard) = fresh_database(backend).await;
        let db = Database::connect(&url).await.expect("connect");
        let all = Migrator::migrations().len();
        assert_eq!(Migrator::get_pending_migrations(&db).await.expect("status").len(), all);
        Migrator::up(&db, None).await.expect("up from empty");
        assert!(Migrator::get_pending_migrations(&db).await.expect("status").is_empty());
        Migrator::up(&db, None).await.expect("up again is a no-op");
        Migrator::down(&db, None).await.expect("down to empty");
        assert_eq!(Migrator::get_pending_migrations(&db).await.expect("status").len(), all);
        Migrator::up(&db, None).await.expect("up once more");
        db.close().await.ok();
    }
}

#[tokio::test]
async fn cli_seeds_idempotently_and_manages_users() {
    for backend in backends() {
        let (url, _guard) = fresh_database(backend).await;
        let cli = |args: &[&str], stdin: Option<&str>| {
            let mut command = Command::new(env!("CARGO_BIN_EXE_gridwhistle"));
            command.args(args).envs(test_env(&url)).env("GRIDWHISTLE_LOG__LEVEL", "warn");
            command
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            let mut child = command.spawn().expect("binary runs");
            if let Some(input) = stdin {
                child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
            }
            let output = child.wait_with_output().expect("binary finishes");
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            (output.status.success(), stdout, stderr)
        };

        let (ok, _, stderr) = cli(&["migrate"], None);
        assert!(ok, "migrate: {stderr}");
        let db = Database::connect(&url).await.expect("connect");
        assert_eq!(count_users(&db).await, 0, "migrate alone creates no users (no known passwords)");

        let (ok, first, stderr) = cli(&["seed-demo"], None);
        assert!(ok, "seed-demo: {stderr}");
        assert!(first.contains("119 rows created, 0 already present"), "{first}");
        assert!(first.contains("demo-supervisor") && first.contains("gridwhistle-demo"), "prints the logins: {first}");
        let statuses: std::collections::BTreeSet<String> =
            entities::ticket::Entity::find().all(&db).await.expect("tickets").into_iter().map(|t| t.status).collect();
        let every: std::collections::BTreeSet<String> =
            ["filed", "dispatched", "in_progress", "resolved", "closed", "cancelled", "merged"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        assert_eq!(statuses, every, "demo tickets in every state");
        let before = snapshot(&db).await;

        let (ok, second, _) = cli(&["seed-demo"], None);
        assert!(ok);
        assert!(second.contains("0 rows created, 119 already present"), "{second}");
        assert_eq!(snapshot(&db).await, before, "a second seed changes nothing");

        let (ok, out, stderr) = cli(
            &[
                "user",
                "create",
                "--username",
                "ops.li",
                "--role",
                "supervisor",
                "--display-name",
                "李督办",
                "--unit",
                "140902",
            ],
            Some("ops-password-2026\n"),
        );
        assert!(ok, "user create: {stderr}");
        assert!(out.contains("created user ops.li"));
        let (ok, _, stderr) = cli(
            &["user", "create", "--username", "bad", "--role", "grid_worker", "--display-name", "x"],
            Some("long enough pw\n"),
        );
        assert!(!ok, "a grid worker without a grid is refused");
        assert!(stderr.contains("unit_id"), "{stderr}");
        let (ok, _, _) = cli(&["user", "passwd", "ops.li"], Some("ops-password-2027\n"));
        assert!(ok);
        let (ok, _, _) = cli(&["user", "disable", "ops.li"], None);
        assert!(ok);
        let row = entities::user::Entity::find()
            .filter(entities::user::Column::Username.eq("ops.li"))
            .one(&db)
            .await
            .expect("query")
            .expect("user exists");
        assert!(!row.active);
        assert!(gridwhistle::domain::password::verify("ops-password-2027", &row.password_hash));
        db.close().await.ok();
    }
}

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};

async fn count_users(db: &sea_orm::DatabaseConnection) -> u64 {
    entities::user::Entity::find().count(db).await.expect("count")
}

/// Every reference row's identity and content, to compare two states of the database.
async fn snapshot(db: &sea_orm::DatabaseConnection) -> Vec<String> {
    let mut rows = Vec::new();
    for unit in
        entities::grid_unit::Entity::find().order_by_asc(entities::grid_unit::Column::Id).all(db).await.expect("units")
    {
        rows.push(format!("unit {} {} {} {:?}", unit.id, unit.code, unit.path, unit.boundary));
    }
    for d in entities::department::Entity::find()
        .order_by_asc(entities::department::Column::Id)
        .all(db)
        .await
        .expect("departments")
    {
        rows.push(format!("department {} {} {}", d.id, d.code, d.email));
    }
    for c in entities::category::Entity::find()
        .order_by_asc(entities::category::Column::Id)
        .all(db)
        .await
        .expect("categories")
    {
        rows.push(format!("category {} {}", c.id, c.code));
    }
    for r in entities::routing_rule::Entity::find()
        .order_by_asc(entities::routing_rule::Column::Id)
        .all(db)
        .await
        .expect("rules")
    {
        rows.push(format!("rule {} {}", r.id, r.scope_key));
    }
    for u in entities::user::Entity::find().order_by_asc(entities::user::Column::Id).all(db).await.expect("users") {
        rows.push(format!("user {} {} {}", u.id, u.username, u.password_hash));
    }
    let tickets = entities::ticket::Entity::find().order_by_asc(entities::ticket::Column::Id).all(db).await;
    for t in tickets.expect("tickets") {
        rows.push(format!("ticket {} {} {} v{}", t.id, t.number, t.status, t.version));
    }
    let events = entities::ticket_event::Entity::find().count(db).await.expect("events");
    rows.push(format!("{events} events"));
    rows
}

#[tokio::test]
async fn probes_request_ids_and_openapi() {
    each_backend(|app| async move {
        let health = app.request(Method::GET, "/healthz", None, None).await;
        assert_eq!(health.status.as_u16(), 200);
        let generated =
            health.headers.get("x-request-id").and_then(|v| v.to_str().ok()).expect("request id").to_owned();
        assert!(uuid::Uuid::parse_str(&generated).is_ok());
        let ready = app.request(Method::GET, "/readyz", None, None).await.expect(200);
        assert_eq!(ready["database"], "ok");

        let echoed =
            app.client.get(app.url("/healthz")).header("x-request-id", "trace-abc-123").send().await.expect("sent");
        assert_eq!(echoed.headers().get("x-request-id").and_then(|v| v.to_str().ok()), Some("trace-abc-123"));
        let forged = app.client.get(app.url("/healthz")).header("x-request-id", "a b\tc").send().await.expect("sent");
        assert_ne!(forged.headers().get("x-request-id").and_then(|v| v.to_str().ok()), Some("a b\tc"));

        // The document lists every route the server answers, with its methods.
        let doc = app.request(Method::GET, "/openapi.json", None, None).await.expect(200);
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")));
        let expected: &[(&str, &[&str])] = &[
            ("/healthz", &["get"]),
            ("/readyz", &["get"]),
            ("/openapi.json", &["get"]),
            ("/api/v1/auth/token", &["post"]),
            ("/api/v1/auth/logout", &["post"]),
            ("/api/v1/me", &["get"]),
            ("/api/v1/grid-units", &["get", "post"]),
            ("/api/v1/grid-units/locate", &["get"]),
            ("/api/v1/grid-units/{id}", &["get", "patch", "delete"]),
            ("/api/v1/grid-units/{id}/children", &["get"]),
            ("/api/v1/departments", &["get", "post"]),
            ("/api/v1/departments/{id}", &["get", "patch", "delete"]),
            ("/api/v1/categories", &["get", "post"]),
            ("/api/v1/categories/{id}", &["get", "patch", "delete"]),
            ("/api/v1/devices", &["get", "post"]),
            ("/api/v1/devices/{id}", &["get", "patch", "delete"]),
            ("/api/v1/routing-rules", &["get", "post"]),
            ("/api/v1/routing-rules/{id}", &["get", "patch", "delete"]),
            ("/api/v1/routing/resolve", &["get"]),
            ("/api/v1/users", &["get", "post"]),
            ("/api/v1/users/{id}", &["get", "patch", "delete"]),
            ("/api/v1/tickets", &["get", "post"]),
            ("/api/v1/tickets/{id}", &["get"]),
            ("/api/v1/tickets/{id}/events", &["get"]),
            ("/api/v1/tickets/{id}/dispatch", &["post"]),
            ("/api/v1/tickets/{id}/whistle", &["post"]),
            ("/api/v1/tickets/{id}/rating", &["post"]),
            ("/api/v1/tickets/{id}/cancel", &["post"]),
            ("/api/v1/dispatches", &["get"]),
            ("/api/v1/dispatches/{id}", &["get"]),
            ("/api/v1/dispatches/{id}/acknowledge", &["post"]),
            ("/api/v1/dispatches/{id}/return", &["post"]),
            ("/api/v1/dispatches/{id}/reject-return", &["post"]),
            ("/api/v1/dispatches/{id}/progress", &["post"]),
            ("/api/v1/dispatches/{id}/resolve", &["post"]),
            ("/api/v1/dispatches/{id}/extension-requests", &["post"]),
            ("/api/v1/extension-requests/{id}/approve", &["post"]),
            ("/api/v1/extension-requests/{id}/reject", &["post"]),
            ("/api/v1/tickets/{id}/supervise", &["post"]),
            ("/api/v1/supervision-orders", &["get"]),
            ("/api/v1/supervision-orders/{id}/reply", &["post"]),
            ("/api/v1/sla-policies", &["get"]),
            ("/api/v1/sla-policies/{id}", &["get", "put"]),
            ("/api/v1/calendar", &["get", "post"]),
            ("/api/v1/calendar/deadline", &["get"]),
            ("/api/v1/escalation-rules", &["get", "post"]),
            ("/api/v1/escalation-rules/{id}", &["put", "delete"]),
            ("/api/v1/notifications", &["get"]),
            ("/api/v1/notifications/{id}/retry", &["post"]),
            ("/api/v1/notifications/retry-dead", &["post"]),
            ("/metrics", &["get"]),
            ("/api/v1/auth/refresh", &["post"]),
            ("/api/v1/audit", &["get"]),
            ("/api/v1/tickets/{id}/contact", &["get"]),
            ("/api/v1/tickets/{id}/erase-personal-data", &["post"]),
            ("/api/v1/reports/sla", &["get"]),
            ("/api/v1/reports/trend", &["get"]),
            ("/api/v1/reports/overdue", &["get"]),
            ("/api/v1/api-keys", &["get", "post"]),
            ("/api/v1/api-keys/{id}", &["delete"]),
            ("/api/v1/reports/coverage", &["get"]),
            ("/api/v1/reports/hotspots", &["get"]),
            ("/api/v1/topics", &["get", "post"]),
            ("/api/v1/topics/{id}", &["get"]),
            ("/api/v1/topics/{id}/tickets", &["get"]),
            ("/api/v1/tickets/{id}/possible-duplicates", &["get"]),
            ("/api/v1/tickets/{id}/merge", &["post"]),
            ("/api/v1/uploads", &["post"]),
            ("/api/v1/attachments/{id}", &["get"]),
            ("/api/v1/attachments/{id}/thumbnail", &["get"]),
            ("/api/v1/dispatches/{id}/attachments", &["post"]),
            ("/api/v1/webhooks", &["get", "post"]),
            ("/api/v1/webhooks/{id}", &["get", "patch", "delete"]),
            ("/api/v1/webhooks/{id}/rotate-secret", &["post"]),
            ("/api/v1/webhooks/{id}/deliveries", &["get"]),
            ("/api/v1/webhook-deliveries/{id}/redeliver", &["post"]),
            ("/api/v1/events/stream", &["get"]),
            ("/api/v1/events/stream-token", &["post"]),
        ];
        let paths = doc["paths"].as_object().expect("paths");
        assert_eq!(paths.len(), expected.len(), "documented paths: {:?}", paths.keys().collect::<Vec<_>>());
        for (path, methods) in expected {
            for method in *methods {
                let operation = paths.get(*path).and_then(|p| p.get(*method));
                assert!(operation.is_some(), "{method} {path} is documented");
                if path.contains("{id}") {
                    let params = operation.and_then(|o| o["parameters"].as_array()).cloned().unwrap_or_default();
                    assert!(
                        params.iter().any(|p| p["name"] == "id" && p["in"] == "path"),
                        "{method} {path} documents its id"
                    );
                }
                // And the server really routes it: anonymous calls get 401 (or 200 for the
                // open probes), never the router's 404/405.
                let concrete = path.replace("{id}", "00000000-0000-7000-8000-000000000000");
                let reply = app.request(method.to_uppercase().parse().expect("method"), &concrete, None, None).await;
                assert!(![404, 405].contains(&reply.status.as_u16()), "{method} {path}: {}", reply.status);
            }
        }
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
        let problem = &doc["components"]["schemas"]["Problem"];
        assert_ne!(problem, &Value::Null, "Problem schema documented");
    })
    .await;
}

/// `serve` (with its sweeper and mailer running) stops cleanly on SIGTERM and exits 0.
#[tokio::test]
async fn serve_stops_gracefully_on_sigterm() {
    let (url, _guard) = fresh_database(crate::helpers::Backend::Sqlite).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut env = test_env(&url);
    env.insert("GRIDWHISTLE_HTTP__PORT".into(), port.to_string());
    env.insert("GRIDWHISTLE_LOG__LEVEL".into(), "warn".into());
    let mut child = Command::new(env!("CARGO_BIN_EXE_gridwhistle"))
        .arg("serve")
        .envs(env)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("server starts");
    let client = reqwest::Client::new();
    let health = format!("http://127.0.0.1:{port}/readyz");
    let mut ready = false;
    for _ in 0..150 {
        if client.get(&health).send().await.is_ok_and(|r| r.status().is_success()) {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready, "the server answers /readyz");
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
    assert!(killed.success());
    let mut status = None;
    for _ in 0..300 {
        if let Some(exit) = child.try_wait().expect("wait") {
            status = Some(exit);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let status = status.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("the server did not stop within 30 s of SIGTERM")
    });
    assert!(status.success(), "exit status {status:?}");
}
