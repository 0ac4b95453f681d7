//! Signed webhooks (Standard Webhooks), received by a real HTTP receiver in the test and
//! verified with the specification's own reference library (`standardwebhooks`): ordering,
//! retries after 500s, redelivery, scope filters, the SSRF default, disabling after the
//! retention period, and no personal data in any payload.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use chrono::Duration;
use gridwhistle::workers::webhooks::{self, DeliveryReport};
use serde_json::{Value, json};

use crate::helpers::{RESIDENT_PHONE, TestApp, backends, spawn_app_with};

/// Tests receive on 127.0.0.1, which the default refuses.
pub const PRIVATE_OK: (&str, &str) = ("GRIDWHISTLE_WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true");

#[derive(Debug, Clone)]
pub struct Received {
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }
}

#[derive(Default)]
struct Inbox {
    received: Mutex<Vec<Received>>,
    /// Status codes to answer, in order; 204 once they run out.
    answers: Mutex<VecDeque<u16>>,
}

/// A real HTTP server on a free port that records what it receives.
pub struct Receiver {
    pub port: u16,
    inbox: Arc<Inbox>,
}

impl Receiver {
    pub async fn start(answers: &[u16]) -> Self {
        let inbox = Arc::new(Inbox { answers: Mutex::new(answers.iter().copied().collect()), ..Default::default() });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let shared = web::Data::from(inbox.clone());
        let server = HttpServer::new(move || App::new().app_data(shared.clone()).default_service(web::to(receive)))
            .workers(1)
            .disable_signals()
            .listen(listener)
            .expect("listen")
            .run();
        tokio::spawn(server);
        Self { port, inbox }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks/gridwhistle", self.port)
    }

    pub fn received(&self) -> Vec<Received> {
        self.inbox.received.lock().expect("inbox").clone()
    }
}

async fn receive(req: HttpRequest, body: web::Bytes, inbox: web::Data<Inbox>) -> HttpResponse {
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in req.headers() {
        if let (Ok(name), Ok(value)) = (
            reqwest::header::HeaderName::from_bytes(name.as_str().as_bytes()),
            reqwest::header::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.insert(name, value);
        }
    }
    inbox.received.lock().expect("inbox").push(Received { headers, body: String::from_utf8_lossy(&body).into() });
    let status = inbox.answers.lock().expect("answers").pop_front().unwrap_or(204);
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status")).body("receiver says hello")
}

/// Runs the delivery worker until it has nothing due.
pub async fn deliver_all(app: &TestApp) -> DeliveryReport {
    let sender = webhooks::sender(&app.ctx).expect("sender");
    let mut total = DeliveryReport::default();
    for _ in 0..50 {
        let report = webhooks::run_once(&app.ctx, &sender).await.expect("delivery tick");
        if report == DeliveryReport::default() {
            return total;
        }
        total.delivered += report.delivered;
        total.retried += report.retried;
        total.failed += report.failed;
    }
    panic!("deliveries never ran out");
}

async fn subscribe(app: &TestApp, admin: &str, body: Value) -> (String, String) {
    let answer = app.client.post(app.url("/api/v1/webhooks")).bearer_auth(admin).json(&body).send().await;
    let answer = answer.expect("the server answers");
    assert_eq!(answer.status(), 201);
    let raw = answer.text().await.expect("body");
    // Strict JSON parsers refuse an object that names a key twice.
    assert_eq!(raw.matches("\"id\":").count(), 1, "one id: {raw}");
    let created: Value = serde_json::from_str(&raw).expect("JSON");
    (created["id"].as_str().expect("id").to_owned(), created["secret"].as_str().expect("secret").to_owned())
}

async fn deliveries(app: &TestApp, admin: &str, subscription: &str) -> Vec<Value> {
    let list = app.get(&format!("/api/v1/webhooks/{subscription}/deliveries?limit=200"), admin).await.expect(200);
    list["items"].as_array().expect("items").clone()
}

/// Verifies a request as a receiver would, with the specification's reference library.
fn verify(secret: &str, received: &Received) {
    let verifier = standardwebhooks::Webhook::new(secret).expect("a Standard Webhooks secret");
    verifier.verify(received.body.as_bytes(), &received.headers).unwrap_or_else(|e| {
        panic!("signature does not verify: {e:?}; headers {:?}", received.headers);
    });
}

/// Personal data never leaves in a webhook: not the resident's name, phone or address.
fn assert_no_personal_data(received: &[Received]) {
    for r in received {
        for secret in ["张三丰", RESIDENT_PHONE, "和平街12号", "3号楼"] {
            assert!(!r.body.contains(secret), "a payload carries personal data ({secret}): {}", r.body);
        }
    }
}

async fn on_each_backend<F, Fut>(overrides: &[(&str, &str)], test: F)
where
    F: Fn(TestApp) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for backend in backends() {
        println!("-- on {backend:?}");
        test(spawn_app_with(backend, overrides).await).await;
    }
}

#[tokio::test]
async fn a_receiver_gets_every_event_signed_in_order_without_personal_data() {
    on_each_backend(&[PRIVATE_OK], |app| async move {
        let receiver = Receiver::start(&[]).await;
        let demo = app.demo().await;
        let (id, secret) =
            subscribe(&app, &demo.admin, json!({"url": receiver.url(), "description": "12345 热线平台"})).await;
        assert!(secret.starts_with("whsec_"), "{secret}");
        // The secret is shown once: reads never carry it.
        let read = app.get(&format!("/api/v1/webhooks/{id}"), &demo.admin).await.expect(200);
        assert!(read.get("secret").is_none(), "{read}");
        assert!(!read.to_string().contains(&secret[6..]), "{read}");
        // Only admins manage subscriptions.
        app.post("/api/v1/webhooks", &demo.dispatcher, json!({"url": receiver.url()})).await.problem(403);

        let ticket = app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;
        let ticket_id = ticket["id"].as_str().expect("id");
        let dispatch = ticket["dispatches"][0]["id"].as_str().expect("dispatch").to_owned();
        app.post(&format!("/api/v1/dispatches/{dispatch}/acknowledge"), &demo.dept, json!({})).await.expect(200);
        let report = deliver_all(&app).await;
        let timeline = app.timeline(ticket_id, &demo.admin).await;
        assert_eq!(report.delivered, timeline.len(), "one delivery per event: {timeline:?}");

        let received = receiver.received();
        let types: Vec<String> = received.iter().map(|r| r.json()["type"].as_str().expect("type").to_owned()).collect();
        let expected: Vec<String> = timeline.iter().map(|k| format!("ticket.{k}")).collect();
        assert_eq!(types, expected, "per-subscription order is event order");
        for r in &received {
            verify(&secret, r);
            let body = r.json();
            assert_eq!(body["data"]["ticket"]["id"], ticket_id);
            assert_eq!(body["data"]["ticket"]["number"], ticket["number"]);
            assert!(body["timestamp"].is_string(), "{body}");
            assert_eq!(r.header("content-type"), "application/json");
        }
        let dispatched =
            received.iter().map(Received::json).find(|b| b["type"] == "ticket.dispatched").expect("dispatched");
        assert_eq!(dispatched["data"]["dispatches"][0]["department_id"], ticket["dispatches"][0]["department_id"]);
        assert!(dispatched["data"]["ticket"]["resolve_due_at"].is_string(), "deadlines travel: {dispatched}");
        assert_no_personal_data(&received);

        // Each request's webhook-id is its delivery's id, listed with the attempt.
        let listed = deliveries(&app, &demo.admin, &id).await;
        assert_eq!(listed.len(), received.len());
        for delivery in &listed {
            assert_eq!(delivery["status"], "delivered", "{delivery}");
            assert_eq!(delivery["attempts"][0]["status_code"], 204, "{delivery}");
            let webhook_id = delivery["id"].as_str().expect("id");
            assert!(received.iter().any(|r| r.header("webhook-id") == webhook_id), "{webhook_id}");
        }

        // A forged or stale signature fails the same verification.
        let mut forged = received[0].clone();
        forged.body = forged.body.replace("ticket.", "ticket.x");
        assert!(
            standardwebhooks::Webhook::new(&secret)
                .expect("secret")
                .verify(forged.body.as_bytes(), &forged.headers)
                .is_err()
        );

        // After a rotation, deliveries are signed with the new secret only.
        let rotated =
            app.post(&format!("/api/v1/webhooks/{id}/rotate-secret"), &demo.admin, json!({})).await.expect(200);
        let new_secret = rotated["secret"].as_str().expect("secret").to_owned();
        assert_ne!(new_secret, secret);
        app.post(
            &format!("/api/v1/dispatches/{dispatch}/progress"),
            &demo.dept,
            json!({"note": "已联系居民", "contacted_resident": true}),
        )
        .await
        .expect(200);
        deliver_all(&app).await;
        let last = receiver.received().pop().expect("a delivery");
        verify(&new_secret, &last);
        assert!(
            standardwebhooks::Webhook::new(&secret)
                .expect("secret")
                .verify(last.body.as_bytes(), &last.headers)
                .is_err()
        );
        assert_no_personal_data(&receiver.received());
    })
    .await;
}

#[tokio::test]
async fn a_failing_receiver_is_retried_with_backoff_and_deliveries_can_be_sent_again() {
    on_each_backend(&[PRIVATE_OK], |app| async move {
        let receiver = Receiver::start(&[500, 503]).await;
        let demo = app.demo().await;
        let (id, secret) =
            subscribe(&app, &demo.admin, json!({"url": receiver.url(), "event_kinds": ["filed", "dispatched"]})).await;
        app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;
        let sender = webhooks::sender(&app.ctx).expect("sender");

        let first = webhooks::run_once(&app.ctx, &sender).await.expect("tick");
        assert_eq!(first, DeliveryReport { retried: 1, ..Default::default() });
        // Backing off: nothing is due, and the later event waits behind the first.
        assert_eq!(webhooks::run_once(&app.ctx, &sender).await.expect("tick"), DeliveryReport::default());
        assert_eq!(receiver.received().len(), 1);
        let listed = deliveries(&app, &demo.admin, &id).await;
        let failed = listed.iter().find(|d| d["attempt_count"] == 1).expect("the tried delivery");
        assert_eq!(failed["status"], "pending");
        assert_eq!(failed["last_status_code"], 500);
        assert!(failed["attempts"][0]["error"].as_str().expect("error").contains("HTTP 500"), "{failed}");
        assert!(failed["attempts"][0]["latency_ms"].is_i64(), "{failed}");

        app.clock.advance(Duration::seconds(31));
        assert_eq!(
            webhooks::run_once(&app.ctx, &sender).await.expect("tick"),
            DeliveryReport { retried: 1, ..Default::default() },
            "the 503 is retried too"
        );
        app.clock.advance(Duration::seconds(61));
        let report = deliver_all(&app).await;
        assert_eq!(report.delivered, 2, "the filing, then the dispatch");
        let received = receiver.received();
        assert_eq!(received.len(), 4);
        let ids: Vec<&str> = received.iter().map(|r| r.header("webhook-id")).collect();
        assert_eq!(ids[0], ids[1], "a retry keeps its webhook-id, so receivers can drop copies");
        assert_eq!(ids[1], ids[2]);
        assert_ne!(ids[2], ids[3]);
        for r in &received {
            verify(&secret, r);
        }
        assert_eq!(received[0].body, received[2].body, "a retry sends the same message");

        // Redelivery: the same message, the same webhook-id, due at once.
        let delivery = ids[0].to_owned();
        let again = app
            .post(&format!("/api/v1/webhook-deliveries/{delivery}/redeliver"), &demo.admin, json!({}))
            .await
            .expect(200);
        assert_eq!(again["status"], "pending");
        assert_eq!(deliver_all(&app).await.delivered, 1);
        let last = receiver.received().pop().expect("redelivered");
        assert_eq!(last.header("webhook-id"), delivery);
        verify(&secret, &last);
        app.post(&format!("/api/v1/webhook-deliveries/{}/redeliver", uuid::Uuid::now_v7()), &demo.admin, json!({}))
            .await
            .problem(404);
    })
    .await;
}

#[tokio::test]
async fn subscriptions_scoped_to_a_department_or_unit_receive_only_their_tickets() {
    on_each_backend(&[PRIVATE_OK], |app| async move {
        let demo = app.demo().await;
        let (city_management, justice, elsewhere, only_dispatched) = (
            Receiver::start(&[]).await,
            Receiver::start(&[]).await,
            Receiver::start(&[]).await,
            Receiver::start(&[]).await,
        );
        let cgj = app.id_by_code("departments", "XF-CGJ", &demo.admin).await;
        let sfj = app.id_by_code("departments", "XF-SFJ", &demo.admin).await;
        let yuanping = app.id_by_code("grid-units", "140981", &demo.admin).await;
        subscribe(&app, &demo.admin, json!({"url": city_management.url(), "department_id": cgj})).await;
        subscribe(&app, &demo.admin, json!({"url": justice.url(), "department_id": sfj})).await;
        subscribe(&app, &demo.admin, json!({"url": elsewhere.url(), "unit_id": yuanping})).await;
        subscribe(&app, &demo.admin, json!({"url": only_dispatched.url(), "event_kinds": ["dispatched"]})).await;
        // Unknown kinds and scopes are refused with the field named.
        let refused = app
            .post("/api/v1/webhooks", &demo.admin, json!({"url": only_dispatched.url(), "event_kinds": ["exploded"]}))
            .await
            .problem(422);
        assert!(refused["errors"]["event_kinds"].is_string(), "{refused}");
        let refused = app
            .post(
                "/api/v1/webhooks",
                &demo.admin,
                json!({"url": "ftp://example.org/x", "unit_id": uuid::Uuid::now_v7()}),
            )
            .await
            .problem(422);
        assert!(refused["errors"]["url"].is_string(), "{refused}");

        // 市容环境 in 忻府区 goes to 城管局.
        let ticket = app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;
        deliver_all(&app).await;
        let got: Vec<Value> = city_management.received().iter().map(Received::json).collect();
        assert!(got.iter().any(|b| b["type"] == "ticket.dispatched"), "{got:?}");
        assert!(got.iter().all(|b| b["data"]["ticket"]["id"] == ticket["id"]));
        assert!(justice.received().is_empty(), "司法局 has no dispatch on it");
        assert!(elsewhere.received().is_empty(), "原平市 is another county");
        let dispatched_only: Vec<Value> = only_dispatched.received().iter().map(Received::json).collect();
        assert_eq!(dispatched_only.len(), 1);
        assert_eq!(dispatched_only[0]["type"], "ticket.dispatched");
        // Before its dispatch, a ticket is no department's: 城管局 gets no `filed`.
        assert!(!got.iter().any(|b| b["type"] == "ticket.filed"), "{got:?}");
    })
    .await;
}

#[tokio::test]
async fn by_default_no_delivery_reaches_a_loopback_or_private_address() {
    crate::helpers::each_backend(|app| async move {
        let receiver = Receiver::start(&[]).await;
        let demo = app.demo().await;
        for literal in [
            format!("http://127.0.0.1:{}/", receiver.port),
            "http://169.254.169.254/latest/meta-data".to_owned(),
            "http://[::1]:8080/".to_owned(),
            "http://[::ffff:10.0.0.1]/".to_owned(),
            "http://192.168.1.10/hook".to_owned(),
        ] {
            let refused = app.post("/api/v1/webhooks", &demo.admin, json!({"url": literal})).await.problem(422);
            assert!(refused["errors"]["url"].is_string(), "{literal}: {refused}");
        }
        // A name is checked on the address actually connected to: localhost resolves inward.
        let (id, _) =
            subscribe(&app, &demo.admin, json!({"url": format!("http://localhost:{}/", receiver.port)})).await;
        app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;
        let sender = webhooks::sender(&app.ctx).expect("sender");
        assert_eq!(webhooks::run_once(&app.ctx, &sender).await.expect("tick").retried, 1);
        assert!(receiver.received().is_empty(), "nothing reached the loopback receiver");
        let listed = deliveries(&app, &demo.admin, &id).await;
        let error = listed.iter().find_map(|d| d["last_error"].as_str()).expect("an error").to_owned();
        assert!(error.contains("internal addresses"), "{error}");
    })
    .await;
}

#[tokio::test]
async fn a_subscription_failing_for_the_whole_retention_is_disabled_and_audited() {
    on_each_backend(&[PRIVATE_OK], |app| async move {
        let receiver = Receiver::start(&[500; 64]).await;
        let demo = app.demo().await;
        let (id, _) = subscribe(&app, &demo.admin, json!({"url": receiver.url(), "event_kinds": ["filed"]})).await;
        app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;
        let sender = webhooks::sender(&app.ctx).expect("sender");
        assert_eq!(webhooks::run_once(&app.ctx, &sender).await.expect("tick").retried, 1);
        let failing = app.get(&format!("/api/v1/webhooks/{id}"), &demo.admin).await.expect(200);
        assert!(failing["failing_since"].is_string(), "{failing}");
        assert_eq!(failing["active"], true);

        app.clock.advance(Duration::days(3) + Duration::minutes(1));
        assert_eq!(webhooks::run_once(&app.ctx, &sender).await.expect("tick").failed, 1);
        // Three days on, the morning's tokens have expired.
        let demo = crate::helpers::Demo {
            admin: app.demo_token("demo-admin").await,
            grid: app.demo_token("demo-grid").await,
            ..demo
        };
        let disabled = app.get(&format!("/api/v1/webhooks/{id}"), &demo.admin).await.expect(200);
        assert_eq!(disabled["active"], false, "{disabled}");
        assert!(disabled["disabled_reason"].as_str().is_some_and(|r| r.contains("failed")), "{disabled}");
        let audit = app.get("/api/v1/audit?action=webhook_disabled&limit=200", &demo.admin).await.expect(200);
        assert_eq!(audit["items"][0]["target_id"], id.as_str(), "{audit}");
        assert_eq!(deliveries(&app, &demo.admin, &id).await[0]["status"], "failed");

        // A disabled subscription gets nothing and cannot be redelivered to until re-enabled.
        app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;
        let before = receiver.received().len();
        deliver_all(&app).await;
        assert_eq!(receiver.received().len(), before);
        let delivery =
            deliveries(&app, &demo.admin, &id).await.last().expect("a delivery")["id"].as_str().expect("id").to_owned();
        app.post(&format!("/api/v1/webhook-deliveries/{delivery}/redeliver"), &demo.admin, json!({}))
            .await
            .problem(409);
        let enabled =
            app.patch(&format!("/api/v1/webhooks/{id}"), &demo.admin, json!({"active": true})).await.expect(200);
        assert_eq!(enabled["failing_since"], Value::Null);
        app.delete(&format!("/api/v1/webhooks/{id}"), &demo.admin).await.expect(204);
        app.get(&format!("/api/v1/webhooks/{id}"), &demo.admin).await.problem(404);
    })
    .await;
}

/// Two servers on one PostgreSQL run their delivery workers side by side: every event is
/// delivered once, and the subscription's deliveries still arrive in event order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_deliver_each_event_once_and_in_order() {
    if std::env::var("TEST_DATABASE_URL").is_err() {
        println!("skipped: needs TEST_DATABASE_URL (two replicas share one PostgreSQL)");
        return;
    }
    let a = spawn_app_with(crate::helpers::Backend::Postgres, &[PRIVATE_OK]).await;
    let mut env = crate::helpers::test_env(&a.ctx.settings.database_url);
    env.insert(PRIVATE_OK.0.into(), PRIVATE_OK.1.into());
    let settings = gridwhistle::config::Settings::load(gridwhistle::config::SettingsSources { local_file: None, env })
        .expect("settings");
    let b = gridwhistle::startup::Application::build_with_clock(settings, a.clock.clone()).await.expect("replica b");
    let b_ctx = b.context().clone();
    tokio::spawn(b.run_until_stopped());

    let receiver = Receiver::start(&[]).await;
    let demo = a.demo().await;
    let (id, secret) = subscribe(&a, &demo.admin, json!({"url": receiver.url()})).await;
    let category = a.category("environment", &demo.admin).await;
    let mut tickets = Vec::new();
    for _ in 0..4 {
        tickets.push(a.file(&demo.grid, &category).await["id"].as_str().expect("id").to_owned());
    }
    let (sender_a, sender_b) = (webhooks::sender(&a.ctx).expect("sender"), webhooks::sender(&b_ctx).expect("sender"));
    for _ in 0..100 {
        let (on_a, on_b) = tokio::join!(webhooks::run_once(&a.ctx, &sender_a), webhooks::run_once(&b_ctx, &sender_b));
        if on_a.expect("a delivers") == DeliveryReport::default()
            && on_b.expect("b delivers") == DeliveryReport::default()
        {
            break;
        }
    }
    let received = receiver.received();
    let mut expected = Vec::new();
    for ticket in &tickets {
        for kind in a.timeline(ticket, &demo.admin).await {
            expected.push(format!("{ticket}/ticket.{kind}"));
        }
    }
    let got: Vec<String> = received
        .iter()
        .map(|r| {
            let body = r.json();
            format!("{}/{}", body["data"]["ticket"]["id"].as_str().expect("id"), body["type"].as_str().expect("type"))
        })
        .collect();
    assert_eq!(got, expected, "each event once, in event order");
    let mut ids: Vec<&str> = received.iter().map(|r| r.header("webhook-id")).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), received.len(), "no delivery went out twice");
    for r in &received {
        verify(&secret, r);
    }
    assert!(deliveries(&a, &demo.admin, &id).await.iter().all(|d| d["status"] == "delivered"));
}

#[tokio::test]
async fn housekeeping_forgets_finished_deliveries_after_their_keeping_time_and_never_pending_ones() {
    on_each_backend(&[PRIVATE_OK], |app| async move {
        let receiver = Receiver::start(&[]).await;
        let demo = app.demo().await;
        let (id, _) = subscribe(&app, &demo.admin, json!({"url": receiver.url(), "event_kinds": ["filed"]})).await;
        app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;
        assert_eq!(deliver_all(&app).await.delivered, 1);
        assert_eq!(deliveries(&app, &demo.admin, &id).await.len(), 1);

        // A month on (tokens have long expired: log in again), with a new delivery not sent yet.
        app.clock.advance(Duration::days(31));
        let (admin, grid) = (app.demo_token("demo-admin").await, app.demo_token("demo-grid").await);
        app.file(&grid, &app.category("environment", &admin).await).await;
        let housekeeping = || gridwhistle::service::housekeeping::run(&app.ctx);
        housekeeping().await.expect("housekeeping runs");
        let left = deliveries(&app, &admin, &id).await;
        assert_eq!(left.len(), 1, "the month-old delivered row is gone, the new one stays: {left:?}");
        assert_eq!(left[0]["status"], "pending");

        // Pending rows stay however old they get: they are the receiver's undelivered events.
        app.clock.advance(Duration::days(40));
        housekeeping().await.expect("housekeeping runs");
        let admin = app.demo_token("demo-admin").await;
        assert_eq!(deliveries(&app, &admin, &id).await.len(), 1, "a pending delivery is never forgotten");
    })
    .await;
}
