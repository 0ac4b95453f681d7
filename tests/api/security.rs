//! Accounts, abuse resistance, residents' personal data and the audit log.

use std::{
    io::Write,
    sync::{Arc, Mutex, OnceLock},
};

use chrono::Duration;
use reqwest::Method;
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{Value, json};

use crate::helpers::{DEMO_PASSWORD, RESIDENT_PHONE, TestApp, backends, each_backend, spawn_app_with, ticket_body};

fn retry_after(reply: &crate::helpers::Reply) -> u64 {
    reply.headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).expect("Retry-After")
}

#[tokio::test]
async fn five_failed_logins_lock_the_account_for_a_while() {
    each_backend(|app| async move {
        app.seed_demo().await;
        for _ in 0..4 {
            app.login("demo-dept", "wrong password").await.problem(401);
        }
        // A success before the fifth failure resets the count.
        app.login("demo-dept", DEMO_PASSWORD).await.expect(200);
        for _ in 0..5 {
            app.login("demo-dept", "wrong password").await.problem(401);
        }
        let locked = app.login("demo-dept", DEMO_PASSWORD).await;
        let wait = retry_after(&locked);
        assert!((14 * 60..=15 * 60).contains(&wait), "Retry-After {wait}");
        locked.problem(429);
        app.login("demo-grid", DEMO_PASSWORD).await.expect(200); // other accounts are unaffected
        app.clock.advance(Duration::minutes(16));
        app.login("demo-dept", DEMO_PASSWORD).await.expect(200);
    })
    .await;
}

#[tokio::test]
async fn login_and_filing_are_rate_limited() {
    for backend in backends() {
        let app = spawn_app_with(
            backend,
            &[
                ("GRIDWHISTLE_SECURITY__LOGIN_PER_MINUTE_PER_IP", "6"),
                ("GRIDWHISTLE_SECURITY__FILING_PER_MINUTE_PER_TOKEN", "2"),
            ],
        )
        .await;
        app.seed_demo().await;
        let grid = app.token("demo-grid", DEMO_PASSWORD).await;
        let admin = app.token("demo-admin", DEMO_PASSWORD).await;
        for _ in 0..4 {
            app.login("nobody", "x").await.problem(401);
        }
        let limited = app.login("demo-dispatcher", DEMO_PASSWORD).await;
        assert!(retry_after(&limited) >= 1);
        limited.problem(429);

        let body = ticket_body(&app.category("property", &admin).await);
        app.post("/api/v1/tickets", &grid, body.clone()).await.expect(201);
        app.post("/api/v1/tickets", &grid, body.clone()).await.expect(201);
        let third = app.post("/api/v1/tickets", &grid, body).await;
        assert!(retry_after(&third) >= 1);
        third.problem(429);
    }
}

#[tokio::test]
async fn refresh_swaps_the_token() {
    each_backend(|app| async move {
        app.seed_demo().await;
        let old = app.demo_token("demo-grid").await;
        let fresh = app.request(Method::POST, "/api/v1/auth/refresh", Some(&old), None).await.expect(200);
        let new = fresh["access_token"].as_str().expect("token");
        assert_ne!(new, old);
        app.get("/api/v1/me", new).await.expect(200);
        app.get("/api/v1/me", &old).await.problem(401);
    })
    .await;
}

#[tokio::test]
async fn contact_reveals_are_audited_and_erasure_blanks_the_resident() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let ticket = app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;
        let id = ticket["id"].as_str().expect("id").to_owned();
        let path = format!("/api/v1/tickets/{id}/contact?reason=回访");
        let revealed = app.get(&path, &demo.grid).await.expect(200);
        assert_eq!(revealed, json!({"name": "张三丰", "phone": RESIDENT_PHONE, "address": "和平街12号3号楼"}));
        app.get(&path, &demo.supervisor).await.problem(403);
        app.get(&path, &demo.dept).await.problem(403); // not reported in yet
        let elsewhere = app.user_in(&demo.admin, "grid2", "grid_worker", "140902002001-G01").await;
        app.get(&path, &elsewhere).await.problem(404);

        let audit = app.get("/api/v1/audit?action=contact_revealed", &demo.admin).await.expect(200);
        let rows = audit["items"].as_array().expect("items");
        assert_eq!(rows.len(), 1, "only the successful reveal");
        let me = app.get("/api/v1/me", &demo.grid).await.expect(200);
        assert_eq!(rows[0]["actor_id"], me["id"]);
        assert_eq!(rows[0]["target_id"], id.as_str());
        assert_eq!(rows[0]["detail"]["reason"], "回访");
        assert_eq!(rows[0]["ip"], "127.0.0.1");
        // The city supervisor sees the city's records; a supervisor elsewhere does not.
        let seen = app.get("/api/v1/audit?action=contact_revealed", &demo.supervisor).await.expect(200);
        assert_eq!(seen["items"].as_array().map(Vec::len), Some(1));
        let other_county = app.user_in(&demo.admin, "yp-supervisor", "supervisor", "140981").await;
        let unseen = app.get("/api/v1/audit?action=contact_revealed", &other_county).await.expect(200);
        assert_eq!(unseen["items"].as_array().map(Vec::len), Some(0));
        app.get("/api/v1/audit", &demo.dispatcher).await.problem(403);

        let erase = format!("/api/v1/tickets/{id}/erase-personal-data");
        app.post(&erase, &demo.dispatcher, json!({"reason": "居民申请删除个人信息"})).await.problem(403);
        let erased = app.post(&erase, &demo.admin, json!({"reason": "居民申请删除个人信息"})).await.expect(200);
        assert_eq!(erased["resident"], Value::Null);
        assert_eq!(erased["number"], ticket["number"], "the ticket stays");
        assert_eq!(app.get(&path, &demo.grid).await.expect(200), json!({"name": null, "phone": null, "address": null}));
        assert_eq!(app.timeline(&id, &demo.admin).await.last().map(String::as_str), Some("personal_data_erased"));
        let erasures = app.get("/api/v1/audit?action=personal_data_erased", &demo.admin).await.expect(200);
        assert_eq!(erasures["items"].as_array().map(Vec::len), Some(1));
    })
    .await;
}

#[tokio::test]
async fn logins_and_user_changes_are_audited() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        app.login("demo-grid", "wrong password").await.problem(401);
        app.login("no-such-user", "wrong password").await.problem(401);
        let logins = app.get("/api/v1/audit?action=login", &demo.admin).await.expect(200);
        assert!(logins["items"].as_array().map_or(0, Vec::len) >= 5, "the five demo logins");
        let failed = app.get("/api/v1/audit?action=login_failed", &demo.admin).await.expect(200);
        let failed = failed["items"].as_array().expect("items");
        assert_eq!(failed.len(), 2);
        assert!(failed.iter().all(|r| !r.to_string().contains("wrong password")), "passwords never logged");

        let user = app.get("/api/v1/users?username=demo-grid", &demo.admin).await.expect(200);
        let user_id = user["items"][0]["id"].as_str().expect("id").to_owned();
        app.patch(
            &format!("/api/v1/users/{user_id}"),
            &demo.admin,
            json!({"role": "dispatcher", "unit_id": app.id_by_code("grid-units", "140902001000", &demo.admin).await}),
        )
        .await
        .expect(200);
        let changes = app.get("/api/v1/audit?action=user_changed", &demo.admin).await.expect(200);
        let newest = &changes["items"][0];
        assert_eq!(newest["target_id"], user_id.as_str());
        assert_eq!(newest["detail"]["role"], "dispatcher");
        assert_eq!(newest["detail"]["fields"], json!(["role", "unit_id"]));
    })
    .await;
}

/// Log lines of the whole test binary, captured at trace level for this crate and the database layers.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        use tracing_subscriber::{EnvFilter, fmt, prelude::*};
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = SharedBuffer(buffer.clone());
        let layer = fmt::layer().json().with_current_span(true).with_writer(move || writer.clone());
        // The database layers at trace too: statement logging is off, and this proves it.
        let filter = EnvFilter::new(
            "debug,gridwhistle=trace,sqlx=trace,sea_orm=trace,hyper=info,reqwest=info,h2=info,rustls=info",
        );
        let _ = tracing_subscriber::registry().with(filter).with(layer).try_init();
        buffer
    })
    .clone()
}

#[derive(Clone)]
struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A full flow with a resident's phone, and errors on the way: the phone is nowhere in the logs.
#[tokio::test]
async fn personal_data_never_reaches_the_logs() {
    let logs = captured_logs();
    each_backend(|app| async move {
        let demo = app.demo().await;
        let environment = app.category("environment", &demo.admin).await;
        let ticket = app.file(&demo.grid, &environment).await;
        let id = ticket["id"].as_str().expect("id").to_owned();
        // A refused filing with the phone in it, and a reveal.
        let mut bad = ticket_body(&environment);
        bad["title"] = json!("");
        app.post("/api/v1/tickets", &demo.grid, bad).await.problem(422);
        app.get(&format!("/api/v1/tickets/{id}/contact?reason=回访"), &demo.grid).await.expect(200);
        let dispatch = app.dispatch_of(&ticket, "XF-CGJ", &demo.admin).await;
        app.post(&format!("/api/v1/dispatches/{dispatch}/acknowledge"), &demo.dept, json!({})).await.expect(200);
        app.post(&format!("/api/v1/dispatches/{dispatch}/resolve"), &demo.dept, json!({"reply": "已处理"}))
            .await
            .expect(200);
        app.post(&format!("/api/v1/tickets/{id}/rating"), &demo.grid, json!({"score": 1})).await.expect(200);
        app.clock.advance(Duration::days(30));
        gridwhistle::workers::sweeper::run_once(&app.ctx).await.expect("sweep");
    })
    .await;
    let text = String::from_utf8_lossy(&logs.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    assert!(text.contains("handled"), "logs were captured");
    assert!(!text.contains(RESIDENT_PHONE), "a resident's phone reached the logs");
    assert!(!text.contains("张三丰"), "a resident's name reached the logs");
}

/// Malformed bodies of every kind at every write endpoint: always a 4xx, never a change.
#[tokio::test]
async fn malformed_bodies_are_refused_and_change_nothing() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let ticket = app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;
        let ticket_id = ticket["id"].as_str().expect("id").to_owned();
        let dispatch = app.dispatch_of(&ticket, "XF-CGJ", &demo.admin).await;
        let unit = app.id_by_code("grid-units", "140902", &demo.admin).await;
        let writes: Vec<(Method, String, &str)> = vec![
            (Method::POST, "/api/v1/tickets".into(), &demo.grid),
            (Method::POST, format!("/api/v1/tickets/{ticket_id}/dispatch"), &demo.dispatcher),
            (Method::POST, format!("/api/v1/tickets/{ticket_id}/whistle"), &demo.dispatcher),
            (Method::POST, format!("/api/v1/tickets/{ticket_id}/rating"), &demo.grid),
            (Method::POST, format!("/api/v1/tickets/{ticket_id}/cancel"), &demo.dispatcher),
            (Method::POST, format!("/api/v1/tickets/{ticket_id}/supervise"), &demo.supervisor),
            (Method::POST, format!("/api/v1/dispatches/{dispatch}/return"), &demo.dept),
            (Method::POST, format!("/api/v1/dispatches/{dispatch}/progress"), &demo.dept),
            (Method::POST, format!("/api/v1/dispatches/{dispatch}/resolve"), &demo.dept),
            (Method::POST, format!("/api/v1/dispatches/{dispatch}/extension-requests"), &demo.dept),
            (Method::POST, "/api/v1/grid-units".into(), &demo.admin),
            (Method::PATCH, format!("/api/v1/grid-units/{unit}"), &demo.admin),
            (Method::POST, "/api/v1/departments".into(), &demo.admin),
            (Method::POST, "/api/v1/categories".into(), &demo.admin),
            (Method::POST, "/api/v1/routing-rules".into(), &demo.admin),
            (Method::POST, "/api/v1/users".into(), &demo.admin),
            (Method::POST, "/api/v1/escalation-rules".into(), &demo.admin),
            (Method::POST, "/api/v1/calendar".into(), &demo.admin),
            (Method::POST, "/api/v1/auth/token".into(), ""),
        ];
        let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        let mut rng: u64 = 0x2545_F491_4F6C_DD1D;
        let mut random_bytes = || {
            (0..256)
                .map(|_| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng as u8
                })
                .collect::<Vec<u8>>()
        };
        let payloads: Vec<Vec<u8>> = vec![
            random_bytes(),
            random_bytes(),
            b"{".to_vec(),
            b"null".to_vec(),
            b"[]".to_vec(),
            b"42".to_vec(),
            deep.into_bytes(),
            vec![0xff, 0xfe, 0x7b, 0x7d],
            json!({"title": "x".repeat(60_000)}).to_string().into_bytes(),
            json!({"category_id": "'; DROP TABLE tickets; --", "name": "<script>alert(1)</script>", "score": "5"})
                .to_string()
                .into_bytes(),
            json!({"reason": 5, "note": [], "reply": {}, "department_ids": "all", "code": null})
                .to_string()
                .into_bytes(),
            json!({"username": "admin' OR '1'='1", "password": {"$ne": null}}).to_string().into_bytes(),
        ];
        let before = snapshot(&app).await;
        for (method, path, token) in &writes {
            for payload in &payloads {
                let mut request = app
                    .client
                    .request(method.clone(), app.url(path))
                    .header("content-type", "application/json")
                    .body(payload.clone());
                if !token.is_empty() {
                    request = request.bearer_auth(token);
                }
                let status = request.send().await.expect("sent").status().as_u16();
                assert!(
                    (400..500).contains(&status),
                    "{method} {path} with {:?}: {status}",
                    String::from_utf8_lossy(&payload[..payload.len().min(40)])
                );
            }
        }
        assert_eq!(snapshot(&app).await, before, "nothing changed");
    })
    .await;
}

async fn snapshot(app: &TestApp) -> Vec<u64> {
    let db = &app.ctx.db;
    vec![
        entities::ticket::Entity::find().count(db).await.expect("count"),
        entities::ticket_event::Entity::find().count(db).await.expect("count"),
        entities::dispatch::Entity::find().count(db).await.expect("count"),
        entities::grid_unit::Entity::find().count(db).await.expect("count"),
        entities::department::Entity::find().count(db).await.expect("count"),
        entities::category::Entity::find().count(db).await.expect("count"),
        entities::routing_rule::Entity::find().count(db).await.expect("count"),
        entities::user::Entity::find().count(db).await.expect("count"),
        entities::escalation_rule::Entity::find().count(db).await.expect("count"),
        entities::supervision_order::Entity::find().count(db).await.expect("count"),
        entities::extension_request::Entity::find().count(db).await.expect("count"),
        entities::calendar_year::Entity::find().count(db).await.expect("count"),
    ]
}
