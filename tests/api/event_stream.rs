//! The live event stream (SSE): a department sees its new dispatch as it happens and never
//! another department's; a reconnect with `Last-Event-ID` replays exactly what was missed;
//! stream tokens for EventSource; heartbeats; and on PostgreSQL, an event written through one
//! replica reaches a stream held on another, and a drain ends open streams.

use gridwhistle::{
    config::{Settings, SettingsSources},
    startup::Application,
};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, each_backend, spawn_app_with, test_env};

/// How long a test waits for a message before it fails (a guard, not a measurement).
const GUARD: std::time::Duration = std::time::Duration::from_secs(20);

/// A Server-Sent Events client over a real HTTP response.
pub struct Sse {
    response: reqwest::Response,
    buffer: String,
}

#[derive(Debug, Clone)]
pub struct Message {
    pub id: String,
    pub data: Value,
}

impl Sse {
    /// Opens `/api/v1/events/stream{query}` and waits until the server has subscribed.
    pub async fn open(address: &str, bearer: Option<&str>, query: &str, last_event_id: Option<&str>) -> Self {
        let mut request = reqwest::Client::new().get(format!("{address}/api/v1/events/stream{query}"));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.expect("stream opens");
        assert_eq!(response.status(), 200, "stream status");
        let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(content_type.starts_with("text/event-stream"), "{content_type}");
        let mut sse = Self { response, buffer: String::new() };
        let first = sse.next_frame().await.expect("a first frame");
        assert!(first.starts_with(": connected"), "{first}");
        sse
    }

    /// The next frame (up to a blank line), or `None` when the server ended the stream.
    pub async fn next_frame(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame = self.buffer[..end].to_owned();
                self.buffer.drain(..end + 2);
                return Some(frame);
            }
            let chunk = tokio::time::timeout(GUARD, self.response.chunk())
                .await
                .expect("the stream stays silent too long")
                .expect("the stream reads");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk?));
        }
    }

    /// The next event message, skipping comments (heartbeats, which would otherwise keep a
    /// test waiting for ever for a message that never comes).
    pub async fn next_message(&mut self) -> Option<Message> {
        tokio::time::timeout(GUARD, self.next_message_unguarded()).await.expect("no event message comes")
    }

    async fn next_message_unguarded(&mut self) -> Option<Message> {
        loop {
            let frame = self.next_frame().await?;
            let (mut id, mut data) = (None, None);
            for line in frame.lines() {
                if let Some(value) = line.strip_prefix("id: ") {
                    id = Some(value.to_owned());
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(value).expect("JSON data"));
                }
            }
            if let (Some(id), Some(data)) = (id, data) {
                return Some(Message { id, data });
            }
        }
    }

    /// Messages up to and including the first of `kind` on `ticket`.
    pub async fn until(&mut self, kind: &str, ticket: &str) -> Vec<Message> {
        let mut seen = Vec::new();
        loop {
            let message = self.next_message().await.expect("the stream goes on");
            let done = message.data["kind"] == kind && message.data["ticket_id"] == ticket;
            seen.push(message);
            if done {
                return seen;
            }
        }
    }
}

fn id(value: &Value) -> String {
    value["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn a_department_sees_its_new_dispatch_live_and_never_another_departments() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let justice = app.user_in(&demo.admin, "sfj-clerk", "department_staff", "XF-SFJ").await;
        let mut city_management = Sse::open(&app.address, Some(&demo.dept), "", None).await;
        let mut justice_stream = Sse::open(&app.address, Some(&justice), "", None).await;

        // 市容环境 goes to 城管局 at once.
        let environment = app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;
        let env_id = id(&environment);
        let seen = city_management.until("dispatched", &env_id).await;
        assert!(seen.iter().all(|m| m.data["ticket_id"] == env_id.as_str()), "{seen:?}");
        let dispatched = seen.last().expect("dispatched");
        assert_eq!(dispatched.id, dispatched.data["id"].as_str().expect("id"), "id: is the event id");
        assert_eq!(
            dispatched.data["payload"]["primary_department_id"], environment["dispatches"][0]["department_id"],
            "{dispatched:?}"
        );

        // A dispute goes to the street's mediation centre and 司法局. Streams are in commit
        // order, so once 司法局 has its dispatch, it has seen everything before it — and
        // nothing of the environment ticket may be among it.
        let dispute = app.file(&demo.grid, &app.category("dispute", &demo.admin).await).await;
        let dispute_id = id(&dispute);
        app.post(&format!("/api/v1/tickets/{dispute_id}/dispatch"), &demo.dispatcher, json!({})).await.expect(200);
        let seen = justice_stream.until("dispatched", &dispute_id).await;
        assert!(
            seen.iter().all(|m| m.data["ticket_id"] == dispute_id.as_str()),
            "司法局 saw another department's ticket: {seen:?}"
        );

        // And 城管局 sees nothing of the dispute before its next own dispatch.
        let second = app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;
        let seen = city_management.until("dispatched", &id(&second)).await;
        assert!(seen.iter().all(|m| m.data["ticket_id"] == id(&second).as_str()), "{seen:?}");

        // The same events as the department reads on the timeline, redacted alike.
        let timeline = app.get(&format!("/api/v1/tickets/{env_id}/events"), &demo.dept).await.expect(200);
        assert_eq!(timeline["items"][1]["id"], dispatched.data["id"]);
    })
    .await;
}

#[tokio::test]
async fn a_reconnect_with_last_event_id_replays_exactly_the_missed_events() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let ticket = app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;
        let ticket_id = id(&ticket);
        let dispatch = ticket["dispatches"][0]["id"].as_str().expect("dispatch").to_owned();

        let mut stream = Sse::open(&app.address, Some(&demo.dispatcher), "", None).await;
        app.post(&format!("/api/v1/dispatches/{dispatch}/acknowledge"), &demo.dept, json!({})).await.expect(200);
        let seen = stream.until("acknowledged", &ticket_id).await;
        let last = seen.last().expect("a message").id.clone();
        drop(stream);

        // Missed while disconnected.
        app.post(
            &format!("/api/v1/dispatches/{dispatch}/progress"),
            &demo.dept,
            json!({"note": "已到现场", "contacted_resident": true}),
        )
        .await
        .expect(200);
        app.post(&format!("/api/v1/dispatches/{dispatch}/resolve"), &demo.dept, json!({"reply": "杂物已清理"}))
            .await
            .expect(200);
        let timeline =
            app.get(&format!("/api/v1/tickets/{ticket_id}/events?limit=200"), &demo.dispatcher).await.expect(200);
        let ids: Vec<String> = timeline["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|e| e["id"].as_str().expect("id").to_owned())
            .collect();
        let position = ids.iter().position(|i| *i == last).expect("the last received event is on the timeline");
        let missed = &ids[position + 1..];
        assert!(missed.len() >= 2, "progress and resolution: {missed:?}");

        let mut stream = Sse::open(&app.address, Some(&demo.dispatcher), "", Some(&last)).await;
        let mut replayed = Vec::new();
        for _ in missed {
            replayed.push(stream.next_message().await.expect("a replayed event").id);
        }
        assert_eq!(replayed, missed, "exactly the missed events, in order");
        // Then live, with nothing sent twice.
        let next = app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;
        let message = stream.next_message().await.expect("live again");
        assert_eq!(message.data["ticket_id"], next["id"], "{message:?}");
        assert_eq!(message.data["kind"], "filed");

        // Filters narrow the stream; a new EventSource passes the last id as a parameter; a
        // malformed Last-Event-ID is refused.
        let query = format!("?kind=resolved&ticket_id={ticket_id}&last_event_id={}", ids[0]);
        let mut filtered = Sse::open(&app.address, Some(&demo.dispatcher), &query, None).await;
        let only = filtered.next_message().await.expect("the resolution");
        assert_eq!(only.data["kind"], "resolved");
        let response = reqwest::Client::new()
            .get(app.url("/api/v1/events/stream"))
            .bearer_auth(&demo.dispatcher)
            .header("Last-Event-ID", "yesterday")
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 422);
        app.get("/api/v1/events/stream?kind=exploded", &demo.dispatcher).await.problem(422);
    })
    .await;
}

#[tokio::test]
async fn browsers_open_the_stream_with_a_short_lived_single_purpose_token() {
    for backend in crate::helpers::backends() {
        let app = spawn_app_with(backend, &[("GRIDWHISTLE_EVENT_STREAM__HEARTBEAT", "1s")]).await;
        let demo = app.demo().await;
        app.request(reqwest::Method::GET, "/api/v1/events/stream", None, None).await.problem(401);
        let issued = app.post("/api/v1/events/stream-token", &demo.dept, json!({})).await.expect(200);
        let token = issued["stream_token"].as_str().expect("stream_token").to_owned();
        assert_eq!(issued["expires_in"], 60);

        let mut stream = Sse::open(&app.address, None, &format!("?stream_token={token}"), None).await;
        // Idle: a heartbeat comment keeps proxies from closing it.
        let frame = stream.next_frame().await.expect("a heartbeat");
        assert!(frame.starts_with(": heartbeat"), "{frame}");
        let ticket = app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;
        stream.until("dispatched", &id(&ticket)).await;

        // It opens the stream and nothing else.
        app.get("/api/v1/me", &token).await.problem(401);
        app.get("/api/v1/events/stream", &token).await.problem(401);
        app.get("/api/v1/events/stream?stream_token=gws_forged", "").await.problem(401);
        // It expires…
        app.clock.advance(chrono::Duration::seconds(61));
        app.request(reqwest::Method::GET, &format!("/api/v1/events/stream?stream_token={token}"), None, None)
            .await
            .problem(401);
        // …and ends with the session it came from.
        let dept = app.demo_token("demo-dept").await;
        let issued = app.post("/api/v1/events/stream-token", &dept, json!({})).await.expect(200);
        let token = issued["stream_token"].as_str().expect("stream_token").to_owned();
        app.post("/api/v1/auth/logout", &dept, json!({})).await;
        app.request(reqwest::Method::GET, &format!("/api/v1/events/stream?stream_token={token}"), None, None)
            .await
            .problem(401);
        // A stream already open ends with its session too, within a heartbeat.
        let dept = app.demo_token("demo-dept").await;
        let issued = app.post("/api/v1/events/stream-token", &dept, json!({})).await.expect(200);
        let token = issued["stream_token"].as_str().expect("stream_token").to_owned();
        let mut open = Sse::open(&app.address, None, &format!("?stream_token={token}"), None).await;
        app.post("/api/v1/auth/logout", &dept, json!({})).await;
        let mut last = String::new();
        while let Some(frame) = open.next_frame().await {
            last = frame;
        }
        assert!(last.contains("session ended"), "the stream says why it ends: {last}");
    }
}

/// A second server on the database of `app`, and the handle that drains it.
async fn second_replica(app: &TestApp) -> (String, gridwhistle::startup::Drain) {
    let env = test_env(&app.ctx.settings.database_url);
    let settings = Settings::load(SettingsSources { local_file: None, env }).expect("settings");
    let replica = Application::build_with_clock(settings, app.clock.clone()).await.expect("second replica starts");
    let address = format!("http://127.0.0.1:{}", replica.port());
    let drain = replica.drain();
    tokio::spawn(replica.run_until_stopped());
    (address, drain)
}

#[tokio::test]
async fn an_event_written_through_one_replica_reaches_a_stream_on_another_and_a_drain_ends_it() {
    if std::env::var("TEST_DATABASE_URL").is_err() {
        println!("skipped: needs TEST_DATABASE_URL (two replicas share one PostgreSQL)");
        return;
    }
    let a = spawn_app_with(Backend::Postgres, &[]).await;
    let demo = a.demo().await;
    let (b, drain) = second_replica(&a).await;
    let mut on_b = Sse::open(&b, Some(&demo.dept), "", None).await;

    let ticket = a.file(&demo.grid, &a.category("environment", &demo.admin).await).await;
    let seen = on_b.until("dispatched", &id(&ticket)).await;
    assert_eq!(seen.first().expect("filed").data["kind"], "filed");

    // A drain ends open streams at once instead of waiting out the grace period for them.
    tokio::spawn(drain.start());
    assert!(on_b.next_message().await.is_none(), "the stream ends when the drain starts");
}

#[tokio::test]
async fn a_lost_listen_connection_ends_streams_so_they_replay_and_then_live_events_flow_again() {
    if std::env::var("TEST_DATABASE_URL").is_err() {
        println!("skipped: needs TEST_DATABASE_URL (LISTEN/NOTIFY is PostgreSQL's)");
        return;
    }
    use sea_orm::ConnectionTrait;
    let app = spawn_app_with(Backend::Postgres, &[]).await;
    let demo = app.demo().await;
    let mut stream = Sse::open(&app.address, Some(&demo.dispatcher), "", None).await;

    // What a PostgreSQL restart or a network cut does to the listener's connection.
    app.ctx
        .db
        .execute_unprepared(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN%'",
        )
        .await
        .expect("terminate the listener");
    let ended = tokio::time::timeout(GUARD, async {
        let mut last = String::new();
        while let Some(frame) = stream.next_frame().await {
            last = frame;
        }
        last
    })
    .await
    .expect("the stream ends once the listener is lost");
    assert!(ended.contains("Last-Event-ID"), "the stream ends telling the client to replay: {ended}");

    // The listener is back: a new stream sees a new ticket live.
    let mut stream = Sse::open(&app.address, Some(&demo.dispatcher), "", None).await;
    let ticket = app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;
    let seen = stream.until("filed", &id(&ticket)).await;
    assert_eq!(seen.last().expect("filed").data["ticket_id"], id(&ticket).as_str());
}

/// Opens the stream and gives back its status and `Retry-After` without reading the body
/// (a 200 here is an endless stream; dropping it closes the connection).
async fn try_open(app: &TestApp, bearer: &str) -> (u16, Option<String>, Value) {
    let response =
        app.client.get(app.url("/api/v1/events/stream")).bearer_auth(bearer).send().await.expect("request sent");
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    if status == 200 {
        return (status, retry_after, Value::Null);
    }
    let body = response.json().await.unwrap_or(Value::Null);
    (status, retry_after, body)
}

#[tokio::test]
async fn a_session_holds_a_few_streams_the_next_is_429_until_one_ends() {
    for backend in crate::helpers::backends() {
        // A short heartbeat: a stream whose client left is noticed by its writes.
        let app = spawn_app_with(backend, &[("GRIDWHISTLE_EVENT_STREAM__HEARTBEAT", "3s")]).await;
        let demo = app.demo().await;
        app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;

        // Five tabs, each replaying from the beginning: more streams than the test pool has
        // connections (4), and the API still answers — a replay holds no connection.
        let nil = uuid::Uuid::nil().to_string();
        let mut open = Vec::new();
        for _ in 0..5 {
            let mut stream = Sse::open(&app.address, Some(&demo.dispatcher), "", Some(&nil)).await;
            assert_eq!(stream.next_message().await.expect("the replay").data["kind"], "filed");
            open.push(stream);
        }
        app.get("/api/v1/me", &demo.dispatcher).await.expect(200);

        // The sixth of the same session is refused, saying when to retry.
        let (status, retry_after, problem) = try_open(&app, &demo.dispatcher).await;
        assert_eq!(status, 429, "{problem}");
        let retry_after = retry_after.and_then(|s| s.parse::<u64>().ok()).expect("Retry-After in seconds");
        assert!(retry_after >= 1, "Retry-After: {retry_after}");
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains('5')), "says the limit: {problem}");
        // Another session (another phone of the same user) is not affected.
        let other = app.demo_token("demo-dispatcher").await;
        Sse::open(&app.address, Some(&other), "", None).await;

        // A tab that closes frees its place within the Retry-After the 429 gave: a client that
        // does as it was told gets its stream. (The server notices only by writing to the
        // stream; the wait is the one the server advertised, bounded.)
        drop(open.pop());
        tokio::time::sleep(std::time::Duration::from_secs(retry_after)).await;
        let (status, _, problem) = try_open(&app, &demo.dispatcher).await;
        assert_eq!(status, 200, "the closed stream still held its place after Retry-After: {retry_after}: {problem}");
    }
}

/// The frames up to the stream's end, and the last of them (which says why it ended).
async fn last_frame(stream: &mut Sse) -> String {
    let mut last = String::new();
    while let Some(frame) = stream.next_frame().await {
        last = frame;
    }
    last
}

/// Reads up to the next heartbeat: past it the stream has checked its session again.
async fn past_a_heartbeat(stream: &mut Sse) {
    loop {
        match stream.next_frame().await {
            Some(frame) if frame.starts_with(": heartbeat") => return,
            Some(frame) if frame.contains("session ended") => panic!("the stream ended: {frame}"),
            Some(_) => {}
            None => panic!("the stream ended before its next heartbeat"),
        }
    }
}

/// A refresh continues the session (the same login): its open streams go on, a stream token
/// taken before it still opens a stream until its own expiry, and the session's streams count
/// against one cap whichever of its tokens opened them. A logout (with the fresh token) still
/// ends them all; another login of the same user — even one at the same instant — is a session
/// of its own and goes on.
#[tokio::test]
async fn a_refresh_continues_the_sessions_streams_and_a_logout_still_ends_them() {
    for backend in crate::helpers::backends() {
        let app = spawn_app_with(backend, &[("GRIDWHISTLE_EVENT_STREAM__HEARTBEAT", "1s")]).await;
        let demo = app.demo().await;
        let environment = app.category("environment", &demo.admin).await;
        // Two phones of one user, logged in at the same instant (the test clock stands still).
        let before = app.demo_token("demo-dispatcher").await;
        let other_phone = app.demo_token("demo-dispatcher").await;
        let mut opened_before = Sse::open(&app.address, Some(&before), "", None).await;
        let issued = app.post("/api/v1/events/stream-token", &before, json!({})).await.expect(200);
        let stream_token = issued["stream_token"].as_str().expect("stream_token").to_owned();

        let refreshed =
            app.request(reqwest::Method::POST, "/api/v1/auth/refresh", Some(&before), None).await.expect(200);
        let after = refreshed["access_token"].as_str().expect("access_token").to_owned();
        app.get("/api/v1/me", &before).await.problem(401);

        // Past a heartbeat (where a stream checks its session) it goes on and sees new events.
        past_a_heartbeat(&mut opened_before).await;
        let ticket = app.file(&demo.grid, &environment).await;
        opened_before.until("filed", &id(&ticket)).await;
        // The stream token taken before the refresh still opens a stream.
        let mut by_stream_token = Sse::open(&app.address, None, &format!("?stream_token={stream_token}"), None).await;

        // One cap for the session: two open, three more under the fresh token, then 429.
        let mut more = Vec::new();
        for _ in 0..3 {
            more.push(Sse::open(&app.address, Some(&after), "", None).await);
        }
        let (status, _, problem) = try_open(&app, &after).await;
        assert_eq!(status, 429, "a refresh gave the session fresh places: {problem}");
        let mut other = Sse::open(&app.address, Some(&other_phone), "", None).await;

        // A logout ends the session: every stream of it, however opened, and its stream tokens.
        app.post("/api/v1/auth/logout", &after, json!({})).await.expect(204);
        for stream in [&mut opened_before, &mut by_stream_token].into_iter().chain(more.iter_mut()) {
            let last = last_frame(stream).await;
            assert!(last.contains("session ended"), "the stream says why it ends: {last}");
        }
        app.request(reqwest::Method::GET, &format!("/api/v1/events/stream?stream_token={stream_token}"), None, None)
            .await
            .problem(401);
        // The other phone's session goes on.
        past_a_heartbeat(&mut other).await;
        let ticket = app.file(&demo.grid, &environment).await;
        other.until("filed", &id(&ticket)).await;
    }
}

/// A `Last-Event-ID` that is not an event id is refused naming what the client sent — the
/// header, even when it is not text at all (it used to be ignored: no replay, no error), or
/// the `last_event_id` parameter a new EventSource passes — in Chinese, and English on request.
#[tokio::test]
async fn a_malformed_last_event_id_is_422_naming_the_header_or_parameter_sent() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let not_text = reqwest::header::HeaderValue::from_bytes(b"\xff\xfe").expect("obs-text may be sent");
        let response = app
            .client
            .get(app.url("/api/v1/events/stream"))
            .bearer_auth(&demo.dispatcher)
            .header("Last-Event-ID", not_text)
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 422);
        let problem: Value = response.json().await.expect("a problem document");
        assert_eq!(problem["errors"]["Last-Event-ID"], "应为此前收到的事件编号", "{problem}");

        let problem = app.get("/api/v1/events/stream?last_event_id=zz", &demo.dispatcher).await.problem(422);
        assert_eq!(problem["errors"]["last_event_id"], "应为此前收到的事件编号", "{problem}");
        assert!(problem["errors"].get("Last-Event-ID").is_none(), "blames a header never sent: {problem}");
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("last_event_id")), "{problem}");
        let english: Value = app
            .client
            .get(app.url("/api/v1/events/stream?last_event_id=zz"))
            .bearer_auth(&demo.dispatcher)
            .header("accept-language", "en")
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("a problem document");
        assert_eq!(english["errors"]["last_event_id"], "must be the id of an event received before", "{english}");

        // Refused openings hold no place: the session still opens its five streams.
        let mut open = Vec::new();
        for _ in 0..5 {
            open.push(Sse::open(&app.address, Some(&demo.dispatcher), "", None).await);
        }
    })
    .await;
}

/// Kinds added after the first list (merges, attachments, sensors) are delivered on the stream,
/// so the stream's filter and webhook subscriptions must accept them too.
#[tokio::test]
async fn every_kind_the_timeline_records_can_be_followed_and_subscribed_to() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let later_kinds = [
            "merged",
            "duplicate_merged",
            "attachments_added",
            "attachments_erased",
            "sensor_alarm",
            "sensor_clear",
            "sensor_online",
        ];
        // Two sessions: one holds at most `event_stream.max_streams_per_session` (5) streams.
        for (n, kind) in later_kinds.iter().enumerate() {
            let session = if n < 4 { &demo.admin } else { &demo.supervisor };
            Sse::open(&app.address, Some(session), &format!("?kind={kind}"), None).await;
        }
        let subscribed = app
            .post(
                "/api/v1/webhooks",
                &demo.admin,
                json!({"url": "https://receiver.example.org/hook", "event_kinds": later_kinds}),
            )
            .await
            .expect(201);
        assert!(subscribed["id"].is_string(), "{subscribed}");
    })
    .await;
}
