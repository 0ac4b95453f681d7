//! Community sensors (issue 18): the device registry, and alarms published to the real
//! Mosquitto broker on 127.0.0.1:1883 becoming tickets. Every test uses a topic prefix and
//! client ids of its own, so parallel tests (and other people's) never see its messages.

use std::{sync::Arc, time::Duration};

use gridwhistle::{
    clock::ManualClock,
    config::{Settings, SettingsSources},
    context::AppContext,
    service::sensor_alarms::{SENSOR_ACTOR_ID, report_silent_devices},
    startup::Application,
    workers::sensors,
};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::helpers::{Backend, TestApp, each_backend, fresh_database, spawn_app_with, test_env};

/// A test's own corner of the broker.
struct Broker {
    prefix: String,
}

impl Broker {
    fn new() -> Self {
        Self { prefix: format!("gw-test-{}", Uuid::now_v7().simple()) }
    }

    fn env(&self, client_id: &str) -> Vec<(String, String)> {
        vec![
            ("GRIDWHISTLE_MQTT__ENABLED".into(), "true".into()),
            ("GRIDWHISTLE_MQTT__TOPIC_PREFIX".into(), self.prefix.clone()),
            ("GRIDWHISTLE_MQTT__CLIENT_ID".into(), client_id.into()),
            // Sessions of finished tests must not linger on the shared broker for days.
            ("GRIDWHISTLE_MQTT__SESSION_EXPIRY".into(), "5m".into()),
        ]
    }

    fn alarm_topic(&self, device: &str) -> String {
        format!("{}/sensors/{device}/alarm", self.prefix)
    }

    fn heartbeat_topic(&self, device: &str) -> String {
        format!("{}/sensors/{device}/heartbeat", self.prefix)
    }

    /// Publishes at QoS 1 and returns once the broker acknowledged every message.
    async fn publish(&self, messages: &[(String, String)]) {
        let mut options = MqttOptions::new(format!("gw-test-pub-{}", Uuid::now_v7().simple()), "127.0.0.1", 1883);
        options.set_keep_alive(Duration::from_secs(30));
        let (client, mut eventloop) = AsyncClient::new(options, messages.len() + 8);
        for (topic, payload) in messages {
            client.publish(topic.clone(), QoS::AtLeastOnce, false, payload.clone().into_bytes()).await.expect("queued");
        }
        let mut acknowledged = 0;
        while acknowledged < messages.len() {
            match tokio::time::timeout(Duration::from_secs(60), eventloop.poll()).await {
                Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acknowledged += 1,
                Ok(Ok(_)) => {}
                Ok(Err(err)) => panic!("publishing to the broker on 127.0.0.1:1883 failed: {err}"),
                Err(_) => panic!("the broker did not acknowledge {} messages", messages.len() - acknowledged),
            }
        }
        client.disconnect().await.ok();
        let _ = tokio::time::timeout(Duration::from_secs(5), eventloop.poll()).await;
    }

    async fn alarm(&self, device: &str, payload: Value) {
        self.publish(&[(self.alarm_topic(device), payload.to_string())]).await;
    }
}

/// The ingestion worker of one replica, stopped on drop of the token.
struct Ingestion {
    token: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Ingestion {
    /// Starts it and waits until its subscriptions are in place.
    async fn start(ctx: &AppContext) -> Self {
        let token = CancellationToken::new();
        let subscribed = Arc::new(Notify::new());
        let task = tokio::spawn(sensors::run_notifying(ctx.clone(), token.clone(), Some(subscribed.clone())));
        tokio::time::timeout(Duration::from_secs(60), subscribed.notified())
            .await
            .expect("subscribed to the broker on 127.0.0.1:1883");
        Self { token, task }
    }

    async fn stop(self) {
        self.token.cancel();
        self.task.await.expect("worker ends cleanly");
    }
}

/// Polls `probe` until it gives a value: the worker runs beside the test, so its effects
/// arrive in their own time. A generous deadline only turns a hang into a failure.
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn spawn_with_broker(backend: Backend, broker: &Broker, client_id: &str) -> TestApp {
    let env = broker.env(client_id);
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    spawn_app_with(backend, &pairs).await
}

/// The sensor tickets the admin sees.
async fn sensor_tickets(app: &TestApp, admin: &str) -> Vec<Value> {
    let body = app.get("/api/v1/tickets?limit=200&view=full", admin).await.expect(200);
    body["items"].as_array().expect("items").iter().filter(|t| t["channel"] == "sensor").cloned().collect()
}

async fn events_of(app: &TestApp, ticket: &str, admin: &str) -> Vec<Value> {
    let body = app.get(&format!("/api/v1/tickets/{ticket}/events?limit=200"), admin).await.expect(200);
    body["items"].as_array().expect("items").clone()
}

fn count_kind(events: &[Value], kind: &str) -> usize {
    events.iter().filter(|e| e["kind"] == kind).count()
}

async fn device_by_id(app: &TestApp, device_id: &str, admin: &str) -> Value {
    let body = app.get(&format!("/api/v1/devices?device_id={device_id}"), admin).await.expect(200);
    body["items"][0].clone()
}

fn metric(text: &str, outcome: &str) -> u64 {
    let needle = format!("gridwhistle_sensor_messages_total{{outcome=\"{outcome}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&needle)).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

async fn metrics(app: &TestApp) -> String {
    app.client.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text")
}

#[tokio::test]
async fn admins_register_devices_and_everyone_reads_their_jurisdictions() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let admin = &demo.admin;
        let grid = app.id_by_code("grid-units", "140902001002-G02", admin).await;
        let category = app.category("safety_hazard", admin).await;

        let body = json!({"device_id": "SMOKE-900", "name": "建设社区5号楼烟感", "unit_id": grid,
            "location": {"lat": 38.42, "lon": 112.73}, "category_id": category, "kinds": ["smoke"], "heartbeat_timeout": "30m"});
        let created = app.post("/api/v1/devices", admin, body.clone()).await.expect(201);
        assert_eq!(created["device_id"], "SMOKE-900");
        assert_eq!(created["kinds"], json!(["smoke"]));
        assert_eq!(created["heartbeat_timeout"], "30m");
        assert_eq!(created["active"], true);
        assert_eq!(created["location"], json!({"lat": 38.42, "lon": 112.73}));
        let id = created["id"].as_str().expect("id").to_owned();

        // The id is unique; bad input names its fields and changes nothing.
        app.post("/api/v1/devices", admin, body.clone()).await.problem(409);
        let bad = json!({"device_id": "a/b", "name": " ", "unit_id": grid, "category_id": category,
            "kinds": ["Smoke", "device_offline"], "heartbeat_timeout": "5s", "location": {"lat": 91, "lon": 0}});
        let problem = app.post("/api/v1/devices", admin, bad).await.problem(422);
        for field in ["device_id", "name", "kinds[0]", "kinds[1]", "heartbeat_timeout", "location"] {
            assert!(problem["errors"][field].is_string(), "{field}: {problem}");
        }
        let missing_unit = json!({"device_id": "X-1", "name": "x", "unit_id": Uuid::now_v7(), "category_id": category, "kinds": ["smoke"]});
        app.post("/api/v1/devices", admin, missing_unit).await.problem(422);
        // A device belongs to a grid, not to the city or a community: nothing would be routed.
        let city = app.id_by_code("grid-units", "140900", admin).await;
        let in_the_city = json!({"device_id": "X-2", "name": "x", "unit_id": city, "category_id": category, "kinds": ["smoke"]});
        let problem = app.post("/api/v1/devices", admin, in_the_city).await.problem(422);
        assert!(problem["errors"]["unit_id"].is_string(), "{problem}");
        app.patch(&format!("/api/v1/devices/{id}"), admin, json!({"unit_id": city})).await.problem(422);
        let listed = app.get("/api/v1/devices?limit=200", admin).await.expect(200);
        assert_eq!(listed["items"].as_array().map(Vec::len), Some(5), "four demo devices and the new one");

        // Only admins manage.
        app.post("/api/v1/devices", &demo.dispatcher, body.clone()).await.problem(403);
        app.patch(&format!("/api/v1/devices/{id}"), &demo.supervisor, json!({"name": "x"})).await.problem(403);

        // Jurisdiction: the 新建路街道 dispatcher sees its streets' devices, not 长征街's; a
        // department has no unit jurisdiction.
        let seen = app.get("/api/v1/devices?limit=200", &demo.dispatcher).await.expect(200);
        let mut ids: Vec<&str> = seen["items"].as_array().expect("items").iter().filter_map(|d| d["device_id"].as_str()).collect();
        ids.sort();
        assert_eq!(ids, ["ELEVATOR-001", "MANHOLE-001", "SMOKE-001", "SMOKE-900"]);
        let water = device_by_id(&app, "WATER-001", admin).await;
        let water_id = water["id"].as_str().expect("id");
        app.get(&format!("/api/v1/devices/{water_id}"), &demo.dispatcher).await.problem(404);
        app.get(&format!("/api/v1/devices/{water_id}"), &demo.supervisor).await.expect(200);
        let none = app.get("/api/v1/devices", &demo.dept).await.expect(200);
        assert_eq!(none["items"], json!([]));

        // PATCH changes only what is sent; null switches the heartbeat check off.
        let changed = app
            .patch(&format!("/api/v1/devices/{id}"), admin, json!({"name": "5号楼烟感", "heartbeat_timeout": null, "kinds": ["smoke", "co"]}))
            .await
            .expect(200);
        assert_eq!(changed["name"], "5号楼烟感");
        assert_eq!(changed["heartbeat_timeout"], Value::Null);
        assert_eq!(changed["kinds"], json!(["smoke", "co"]));
        assert_eq!(changed["device_id"], "SMOKE-900");

        // DELETE disables; the registration stays readable.
        app.delete(&format!("/api/v1/devices/{id}"), admin).await.expect(204);
        let disabled = app.get(&format!("/api/v1/devices/{id}"), admin).await.expect(200);
        assert_eq!(disabled["active"], false);

        // The sensor channel is the gateway's: the API refuses it.
        let mut ticket = crate::helpers::ticket_body(&category);
        ticket["channel"] = json!("sensor");
        let refused = app.post("/api/v1/tickets", &demo.grid, ticket).await.problem(422);
        assert!(refused["errors"]["channel"].is_string(), "{refused}");
    })
    .await;
}

#[tokio::test]
async fn an_alarm_files_one_dispatched_ticket_and_repeats_only_add_events() {
    for backend in crate::helpers::backends() {
        let broker = Broker::new();
        let app = spawn_with_broker(backend, &broker, &format!("{}-a", broker.prefix)).await;
        let demo = app.demo().await;
        let admin = &demo.admin;
        let ingestion = Ingestion::start(&app.ctx).await;

        // The example: no message id, no time.
        broker.alarm("SMOKE-001", json!({"kind": "smoke", "state": "alarm"})).await;
        let ticket =
            eventually("the sensor ticket", || async { sensor_tickets(&app, admin).await.into_iter().next() }).await;
        let ticket_id = ticket["id"].as_str().expect("id").to_owned();
        let ticket = app.ticket(&ticket_id, admin).await;
        let grid = app.id_by_code("grid-units", "140902001001-G01", admin).await;
        assert_eq!(ticket["grid_unit_id"], grid.as_str(), "filed in the device's grid: {ticket}");
        assert_eq!(ticket["status"], "dispatched", "安全隐患 is auto-dispatched");
        assert_eq!(ticket["priority"], "urgent");
        assert_eq!(ticket["filed_by"], SENSOR_ACTOR_ID.to_string());
        assert_eq!(ticket["location"], json!({"lat": 38.41, "lon": 112.705}));
        assert!(ticket["title"].as_str().is_some_and(|t| t.contains("和平街12号3号楼烟感")), "{ticket}");
        let yjj = app.id_by_code("departments", "XF-YJJ", admin).await;
        assert_eq!(ticket["dispatches"][0]["department_id"], yjj.as_str(), "routed like any 安全隐患 ticket");
        // The dispatcher of the street sees it like any other ticket.
        app.ticket(&ticket_id, &demo.dispatcher).await;

        // 99 more alarms (100 in all), each with its own id: still one ticket, 100 alarm events.
        let repeats: Vec<(String, String)> = (1..100)
            .map(|i| {
                let payload = json!({"kind": "smoke", "state": "alarm", "value": i, "message_id": format!("m-{i}")});
                (broker.alarm_topic("SMOKE-001"), payload.to_string())
            })
            .collect();
        broker.publish(&repeats).await;
        let events = eventually("100 sensor_alarm events", || async {
            let events = events_of(&app, &ticket_id, admin).await;
            (count_kind(&events, "sensor_alarm") >= 100).then_some(events)
        })
        .await;
        assert_eq!(count_kind(&events, "sensor_alarm"), 100);
        let last = events.iter().rev().find(|e| e["kind"] == "sensor_alarm").expect("an alarm event");
        assert_eq!(last["payload"]["count"], 100, "the counter: {last}");
        assert_eq!(sensor_tickets(&app, admin).await.len(), 1, "one ticket for 100 alarms");

        // A redelivered message (same message_id, or same `at`) changes nothing; the clear
        // after it is recorded, which shows the duplicate was handled before it.
        let at = "2026-11-29T10:00:00Z";
        broker
            .publish(&[
                (
                    broker.alarm_topic("SMOKE-001"),
                    json!({"kind": "smoke", "state": "alarm", "message_id": "m-7"}).to_string(),
                ),
                (broker.alarm_topic("SMOKE-001"), json!({"kind": "smoke", "state": "alarm", "at": at}).to_string()),
                (broker.alarm_topic("SMOKE-001"), json!({"kind": "smoke", "state": "alarm", "at": at}).to_string()),
                (
                    broker.alarm_topic("SMOKE-001"),
                    json!({"kind": "smoke", "state": "clear", "message_id": "c-1"}).to_string(),
                ),
            ])
            .await;
        let events = eventually("the clear", || async {
            let events = events_of(&app, &ticket_id, admin).await;
            (count_kind(&events, "sensor_clear") == 1).then_some(events)
        })
        .await;
        assert_eq!(count_kind(&events, "sensor_alarm"), 101, "m-7 again is no alarm; the same `at` counts once");
        assert_eq!(app.ticket(&ticket_id, admin).await["status"], "dispatched", "a clear does not resolve");

        // Once the ticket is no longer open, the next alarm files anew.
        let cancelled = app
            .post(
                &format!("/api/v1/tickets/{ticket_id}/cancel"),
                &demo.dispatcher,
                json!({"reason": "误报，已现场核实"}),
            )
            .await;
        cancelled.expect(200);
        broker.alarm("SMOKE-001", json!({"kind": "smoke", "state": "alarm", "message_id": "after-cancel"})).await;
        eventually("a second ticket", || async { (sensor_tickets(&app, admin).await.len() == 2).then_some(()) }).await;

        // The SLA report grouped by channel shows how sensor alarms are handled.
        let today =
            app.clock.now_for_tests().with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).expect("+8")).date_naive();
        let report = app
            .get(&format!("/api/v1/reports/sla?from={today}&to={today}&group_by=channel"), &demo.supervisor)
            .await
            .expect(200);
        let rows = report["rows"].as_array().expect("rows");
        let sensor = rows.iter().find(|r| r["group_name"] == "sensor").expect("a sensor row");
        // Two tickets, each to the primary (应急管理局) and the co-handler (住建局).
        assert_eq!(sensor["dispatched"], 4, "{report}");
        let grid_app = rows.iter().find(|r| r["group_name"] == "grid_app").expect("idle channels listed too");
        assert_eq!(grid_app["dispatched"], 0);
        app.get(&format!("/api/v1/reports/sla?from={today}&to={today}&group_by=weather"), &demo.supervisor)
            .await
            .problem(422);
        ingestion.stop().await;

        // Receipts are kept while a redelivery could still come (the session's expiry plus a
        // day, at least a week), then housekeeping forgets them.
        use sea_orm::{EntityTrait, PaginatorTrait};
        let receipts = || entities::sensor_alarm_receipt::Entity::find().count(&app.ctx.db);
        assert_eq!(receipts().await.expect("count"), 102, "m-1…m-99, one `at`, c-1, after-cancel");
        app.clock.advance(chrono::Duration::days(6));
        gridwhistle::service::housekeeping::run(&app.ctx).await.expect("housekeeping");
        assert_eq!(receipts().await.expect("count"), 102, "not yet");
        app.clock.advance(chrono::Duration::days(2));
        gridwhistle::service::housekeeping::run(&app.ctx).await.expect("housekeeping");
        assert_eq!(receipts().await.expect("count"), 0);
    }
}

#[tokio::test]
async fn alarms_published_while_the_server_is_stopped_are_filed_when_it_starts() {
    for backend in crate::helpers::backends() {
        let broker = Broker::new();
        let client_id = format!("{}-restart", broker.prefix);
        let app = spawn_with_broker(backend, &broker, &client_id).await;
        let demo = app.demo().await;
        // The first start creates the persistent session and its subscriptions.
        Ingestion::start(&app.ctx).await.stop().await;

        broker
            .alarm("MANHOLE-001", json!({"kind": "manhole_tilt", "state": "alarm", "message_id": "while-down"}))
            .await;
        assert!(sensor_tickets(&app, &demo.admin).await.is_empty(), "nobody is listening yet");

        let ingestion = Ingestion::start(&app.ctx).await;
        let ticket = eventually("the alarm queued by the broker", || async {
            sensor_tickets(&app, &demo.admin).await.into_iter().next()
        })
        .await;
        let cgj = app.id_by_code("departments", "XF-CGJ", &demo.admin).await;
        let ticket = app.ticket(ticket["id"].as_str().expect("id"), &demo.admin).await;
        assert_eq!(ticket["dispatches"][0]["department_id"], cgj.as_str());
        ingestion.stop().await;
    }
}

#[tokio::test]
async fn two_servers_on_one_database_handle_each_alarm_once() {
    for backend in crate::helpers::backends() {
        let broker = Broker::new();
        let (url, _guard) = fresh_database(backend).await;
        let mut replicas = Vec::new();
        for name in ["one", "two"] {
            let mut env = test_env(&url);
            env.extend(broker.env(&format!("{}-{name}", broker.prefix)));
            let settings = Settings::load(SettingsSources { local_file: None, env }).expect("settings");
            let application = Application::build_with_clock(settings, ManualClock::new()).await.expect("starts");
            replicas.push(application);
        }
        let contexts: Vec<AppContext> = replicas.iter().map(|r| r.context().clone()).collect();
        let address = format!("http://127.0.0.1:{}", replicas[0].port());
        for replica in replicas {
            tokio::spawn(replica.run_until_stopped());
        }
        gridwhistle::service::demo::seed_reference(&contexts[0]).await.expect("demo data");
        let ingestions = [Ingestion::start(&contexts[0]).await, Ingestion::start(&contexts[1]).await];

        // 30 alarms, each sent twice (a publisher retrying): one ticket, 30 alarm events.
        let messages: Vec<(String, String)> = (0..30)
            .flat_map(|i| {
                let payload =
                    json!({"kind": "water_level", "state": "alarm", "value": 0.3, "message_id": format!("w-{i}")});
                [
                    (broker.alarm_topic("WATER-001"), payload.to_string()),
                    (broker.alarm_topic("WATER-001"), payload.to_string()),
                ]
            })
            .collect();
        broker.publish(&messages).await;

        let client = reqwest::Client::new();
        let token = {
            let body = json!({"username": "demo-admin", "password": crate::helpers::DEMO_PASSWORD});
            let reply: Value = client
                .post(format!("{address}/api/v1/auth/token"))
                .json(&body)
                .send()
                .await
                .expect("login")
                .json()
                .await
                .expect("json");
            reply["access_token"].as_str().expect("token").to_owned()
        };
        let get = |path: String| {
            let (client, token, address) = (client.clone(), token.clone(), address.clone());
            async move {
                let reply = client.get(format!("{address}{path}")).bearer_auth(token).send().await.expect("get");
                assert_eq!(reply.status().as_u16(), 200);
                reply.json::<Value>().await.expect("json")
            }
        };
        let (ticket, events) = eventually("30 alarm events", || async {
            let tickets = get("/api/v1/tickets?limit=200&view=full".into()).await;
            let ticket = tickets["items"].as_array()?.iter().find(|t| t["channel"] == "sensor")?.clone();
            let events = get(format!("/api/v1/tickets/{}/events?limit=200", ticket["id"].as_str()?)).await;
            let events = events["items"].as_array()?.clone();
            (count_kind(&events, "sensor_alarm") >= 30).then_some((ticket, events))
        })
        .await;
        let tickets = get("/api/v1/tickets?limit=200&view=full".into()).await;
        let sensor_tickets =
            tickets["items"].as_array().expect("items").iter().filter(|t| t["channel"] == "sensor").count();
        assert_eq!(sensor_tickets, 1, "one ticket between two replicas");
        assert_eq!(count_kind(&events, "sensor_alarm"), 30, "each alarm once: {}", ticket["id"]);
        assert_eq!(count_kind(&events, "filed"), 1);
        for ingestion in ingestions {
            ingestion.stop().await;
        }
    }
}

#[tokio::test]
async fn a_silent_device_files_one_offline_ticket_until_it_is_heard_again() {
    for backend in crate::helpers::backends() {
        let broker = Broker::new();
        let app = spawn_with_broker(backend, &broker, &format!("{}-hb", broker.prefix)).await;
        let demo = app.demo().await;
        let admin = &demo.admin;
        let ingestion = Ingestion::start(&app.ctx).await;

        // WATER-001 must be heard from every hour.
        app.clock.advance(chrono::Duration::minutes(59));
        assert_eq!(report_silent_devices(&app.ctx, 100).await.expect("sweep"), 0, "not silent long enough");
        app.clock.advance(chrono::Duration::minutes(2));
        assert_eq!(report_silent_devices(&app.ctx, 100).await.expect("sweep"), 1);
        assert_eq!(report_silent_devices(&app.ctx, 100).await.expect("sweep"), 0, "once per silence");
        let tickets = sensor_tickets(&app, admin).await;
        assert_eq!(tickets.len(), 1);
        let offline = tickets[0]["id"].as_str().expect("id").to_owned();
        assert!(tickets[0]["title"].as_str().is_some_and(|t| t.contains("设备离线")), "{}", tickets[0]);
        let device = device_by_id(&app, "WATER-001", admin).await;
        assert_eq!(device["offline_ticket_id"], offline.as_str());

        // Heard again: the silence ends, noted on the ticket, which a person still resolves.
        broker.publish(&[(broker.heartbeat_topic("WATER-001"), "{}".into())]).await;
        eventually("the heartbeat", || async {
            let device = device_by_id(&app, "WATER-001", admin).await;
            device["offline_ticket_id"].is_null().then_some(())
        })
        .await;
        assert_eq!(count_kind(&events_of(&app, &offline, admin).await, "sensor_online"), 1);
        assert_eq!(report_silent_devices(&app.ctx, 100).await.expect("sweep"), 0);

        // A new silence is a new ticket.
        app.clock.advance(chrono::Duration::minutes(61));
        assert_eq!(report_silent_devices(&app.ctx, 100).await.expect("sweep"), 1);
        assert_eq!(sensor_tickets(&app, admin).await.len(), 2);

        // A disabled device's silence is nobody's business.
        let id = device_by_id(&app, "SMOKE-001", admin).await["id"].as_str().expect("id").to_owned();
        app.patch(&format!("/api/v1/devices/{id}"), admin, json!({"heartbeat_timeout": "1h", "active": false}))
            .await
            .expect(200);
        app.clock.advance(chrono::Duration::hours(2));
        let filed = report_silent_devices(&app.ctx, 100).await.expect("sweep");
        assert_eq!(filed, 0, "WATER-001 is already reported; SMOKE-001 is disabled");
        ingestion.stop().await;
    }
}

#[tokio::test]
async fn malformed_unknown_and_disabled_messages_are_counted_never_filed() {
    for backend in crate::helpers::backends() {
        let broker = Broker::new();
        let app = spawn_with_broker(backend, &broker, &format!("{}-bad", broker.prefix)).await;
        let demo = app.demo().await;
        let admin = &demo.admin;
        let elevator = device_by_id(&app, "ELEVATOR-001", admin).await["id"].as_str().expect("id").to_owned();
        app.delete(&format!("/api/v1/devices/{elevator}"), admin).await.expect(204);
        let ingestion = Ingestion::start(&app.ctx).await;
        let before = metrics(&app).await;

        // Larger than any alarm (published with Mosquitto's own client, which has no size limit
        // of its own): the broker must drop it for us, or the connection fails on it again and
        // again and the good message below is never filed.
        let big = tempfile::NamedTempFile::new().expect("temp file");
        let payload = json!({"kind": "smoke", "state": "alarm", "message_id": "M".repeat(100_000)}).to_string();
        std::fs::write(big.path(), payload).expect("payload written");
        let published = std::process::Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-V", "mqttv5", "-q", "1", "-t", &broker.alarm_topic("SMOKE-001"), "-f"])
            .arg(big.path())
            .status()
            .expect("mosquitto_pub runs (Debian package mosquitto-clients)");
        assert!(published.success(), "the oversized message was published");
        broker
            .publish(&[
                (broker.alarm_topic("SMOKE-001"), "not json".into()),
                (broker.alarm_topic("SMOKE-001"), json!({"kind": "smoke", "state": "burning"}).to_string()),
                (broker.alarm_topic("GHOST-404"), json!({"kind": "smoke", "state": "alarm"}).to_string()),
                (broker.alarm_topic("ELEVATOR-001"), json!({"kind": "elevator", "state": "alarm"}).to_string()),
                (broker.alarm_topic("SMOKE-001"), json!({"kind": "water_level", "state": "alarm"}).to_string()),
                // The one good message, last: once it is filed, the others were handled.
                (broker.alarm_topic("MANHOLE-001"), json!({"kind": "manhole_tilt", "state": "alarm"}).to_string()),
            ])
            .await;
        let tickets = eventually("the good alarm's ticket", || async {
            let tickets = sensor_tickets(&app, admin).await;
            (!tickets.is_empty()).then_some(tickets)
        })
        .await;
        assert_eq!(tickets.len(), 1, "only the good message filed: {tickets:?}");
        assert!(tickets[0]["title"].as_str().is_some_and(|t| t.contains("井盖")), "{}", tickets[0]);

        let after = metrics(&app).await;
        for (outcome, delta) in [("malformed", 2), ("unknown_device", 1), ("disabled_device", 1), ("unknown_kind", 1)] {
            assert_eq!(metric(&after, outcome) - metric(&before, outcome), delta, "{outcome}:\n{after}");
        }
        ingestion.stop().await;
    }
}

#[tokio::test]
async fn an_alarm_dated_in_the_future_is_filed_at_server_time_keeping_what_the_device_said() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let now = app.clock.now_for_tests();
        let topic = "gridwhistle/sensors/SMOKE-001/alarm";
        let at = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let handle = |payload: Value| {
            let ctx = app.ctx.clone();
            async move {
                gridwhistle::service::sensor_alarms::handle(&ctx, topic, payload.to_string().as_bytes())
                    .await
                    .expect("handled")
            }
        };

        // A device whose clock runs a year ahead: the smoke is real, the date is not.
        let ahead = now + chrono::Duration::days(365);
        handle(json!({"kind": "smoke", "state": "alarm", "at": at(ahead)})).await;
        let ticket = sensor_tickets(&app, &demo.admin).await.into_iter().next().expect("the alarm is filed");
        let ticket_id = ticket["id"].as_str().expect("id").to_owned();
        // A clock a minute fast is within tolerance and kept.
        let slightly = now + chrono::Duration::seconds(60);
        handle(json!({"kind": "smoke", "state": "alarm", "at": at(slightly)})).await;

        let events = events_of(&app, &ticket_id, &demo.admin).await;
        let alarms: Vec<&Value> = events.iter().filter(|e| e["kind"] == "sensor_alarm").collect();
        assert_eq!(alarms.len(), 2, "{events:?}");
        let parse = |v: &Value| v.as_str().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()).expect("a time");
        assert_eq!(parse(&alarms[0]["payload"]["at"]), now, "clamped to server time: {}", alarms[0]);
        assert_eq!(parse(&alarms[0]["payload"]["device_at"]), ahead, "what the device said: {}", alarms[0]);
        assert_eq!(parse(&alarms[1]["payload"]["at"]), slightly, "{}", alarms[1]);
        assert_eq!(alarms[1]["payload"].get("device_at"), None, "{}", alarms[1]);

        // The redelivery of the future-dated message is still recognised as the same one.
        let outcome = handle(json!({"kind": "smoke", "state": "alarm", "at": at(ahead)})).await;
        assert_eq!(outcome, gridwhistle::service::sensor_alarms::Outcome::Duplicate);
    })
    .await;
}
