//! SLA clocks, the sweeper, escalation to supervision orders, extensions, policies and the
//! calendar API. Time is a manual clock: nothing sleeps.

use chrono::Duration;
use gridwhistle::{
    context::AppContext,
    workers::sweeper::{self, SweepReport},
};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use crate::helpers::{TestApp, cst, each_backend};

fn id(value: &Value) -> String {
    value["id"].as_str().expect("id").to_owned()
}

fn clock<'a>(ticket: &'a Value, name: &str) -> &'a Value {
    ticket["sla"]
        .as_array()
        .expect("sla")
        .iter()
        .find(|c| c["clock"] == name)
        .unwrap_or_else(|| panic!("{name} clock in {ticket}"))
}

async fn sweep(ctx: &AppContext) -> SweepReport {
    sweeper::run_once(ctx).await.expect("sweep runs")
}

async fn events_of_kind(app: &TestApp, ticket_id: &str, kind: &str) -> Vec<Value> {
    let token = app.demo_token("demo-admin").await;
    let events = app.get(&format!("/api/v1/tickets/{ticket_id}/events?limit=200"), &token).await.expect(200);
    events["items"].as_array().expect("items").iter().filter(|e| e["kind"] == kind).cloned().collect()
}

#[tokio::test]
async fn clocks_start_with_their_deadlines() {
    each_backend(|app| async move {
        app.clock.set(cst("2026-12-01 09:00")); // a Tuesday
        let demo = app.demo().await;
        // Normal priority: acknowledge 2 working hours, first contact 24 h, resolve 7 working days.
        let normal = app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;
        assert_eq!(clock(&normal, "acknowledge")["due_at"], "2026-12-01T03:00:00Z");
        assert_eq!(clock(&normal, "acknowledge")["dispatch_id"], normal["dispatches"][0]["id"]);
        assert_eq!(clock(&normal, "first_contact")["due_at"], "2026-12-02T01:00:00Z");
        assert_eq!(clock(&normal, "resolve")["due_at"], "2026-12-10T01:00:00Z", "Tue + 7 working days = next Thu");
        assert_eq!(normal["sla_state"], "on_track");
        assert_eq!(normal["dispatches"][0]["sla"]["clock"], "acknowledge");
        // Urgent: 30 minutes, 2 h and 24 h of calendar time.
        let urgent = app.file(&demo.grid, &app.category("safety_hazard", &demo.admin).await).await;
        assert_eq!(urgent["priority"], "urgent");
        assert_eq!(clock(&urgent, "acknowledge")["due_at"], "2026-12-01T01:30:00Z");
        assert_eq!(clock(&urgent, "first_contact")["due_at"], "2026-12-01T03:00:00Z");
        assert_eq!(clock(&urgent, "resolve")["due_at"], "2026-12-02T01:00:00Z");

        // Reporting in stops the acknowledge clock; the others keep running.
        let dispatch_id = app.dispatch_of(&normal, "XF-CGJ", &demo.admin).await;
        app.clock.advance(Duration::minutes(20));
        let acked =
            app.post(&format!("/api/v1/dispatches/{dispatch_id}/acknowledge"), &demo.dept, json!({})).await.expect(200);
        let ack = clock(&acked["ticket"], "acknowledge");
        assert_eq!(ack["state"], "met");
        assert!(ack["stopped_at"].is_string());
        assert_eq!(clock(&acked["ticket"], "resolve")["state"], "on_track");
        // The same arithmetic is open to clients.
        let asked = app
            .get("/api/v1/calendar/deadline?start=2026-12-01T01:00:00Z&duration=7d%20working", &demo.grid)
            .await
            .expect(200);
        assert_eq!(asked["deadline"], "2026-12-10T01:00:00Z");
        assert_eq!(asked["estimated"], false);
    })
    .await;
}

#[tokio::test]
async fn sweeper_fires_warning_and_breach_once_each() {
    each_backend(|app| async move {
        app.clock.set(cst("2026-12-01 09:00"));
        let demo = app.demo().await;
        let ticket = app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;
        let ticket_id = id(&ticket);
        assert_eq!(sweep(&app.ctx).await, SweepReport::default(), "nothing due yet");

        // 80 % of two working hours is 96 minutes: the warning fires at 10:36.
        app.clock.set(cst("2026-12-01 10:35"));
        assert_eq!(sweep(&app.ctx).await.warnings, 0);
        app.clock.set(cst("2026-12-01 10:37"));
        assert_eq!(sweep(&app.ctx).await, SweepReport { warnings: 1, ..Default::default() });
        assert_eq!(sweep(&app.ctx).await, SweepReport::default(), "once");
        let warnings = events_of_kind(&app, &ticket_id, "sla_warning").await;
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0]["payload"]["clock"], "acknowledge");
        assert_eq!(warnings[0]["actor_id"], Value::Null);

        app.clock.set(cst("2026-12-01 11:01"));
        assert_eq!(sweep(&app.ctx).await, SweepReport { breaches: 1, ..Default::default() });
        assert_eq!(sweep(&app.ctx).await, SweepReport::default());
        let breaches = events_of_kind(&app, &ticket_id, "sla_breached").await;
        assert_eq!(breaches.len(), 1);
        assert_eq!(breaches[0]["payload"]["clock"], "acknowledge");
        // The default chain: an acknowledge breach tells the department head and the township dispatcher.
        let escalated = events_of_kind(&app, &ticket_id, "escalated").await;
        assert_eq!(escalated.len(), 1);
        assert_eq!(escalated[0]["payload"]["trigger"], "acknowledge_breach");
        let admin = app.demo_token("demo-admin").await;
        let outbox = app.get("/api/v1/notifications?limit=200", &admin).await.expect(200);
        let recipients: Vec<&str> =
            outbox["items"].as_array().expect("items").iter().filter_map(|n| n["recipient"].as_str()).collect();
        assert!(recipients.contains(&"head.cgj.xinfu@gridwhistle.example"), "{recipients:?}");
        assert!(recipients.contains(&"demo-dispatcher@gridwhistle.example"), "{recipients:?}");

        let overdue = app.get("/api/v1/tickets?overdue=true&view=full", &admin).await.expect(200);
        assert_eq!(overdue["items"][0]["id"], ticket_id.as_str());
        assert_eq!(overdue["items"][0]["sla_state"], "breached");
        let summary = app.get("/api/v1/tickets?overdue=true", &admin).await.expect(200);
        assert_eq!(summary["items"][0]["next_deadline"]["state"], "breached", "{summary}");
        let on_time = app.get("/api/v1/tickets?overdue=false", &admin).await.expect(200);
        assert_eq!(on_time["items"].as_array().map(Vec::len), Some(0));
        let metrics = app.client.get(app.url("/metrics")).send().await.expect("sent").text().await.expect("text");
        assert!(metrics.contains("gridwhistle_sla_events_total"), "{metrics}");
    })
    .await;
}

#[tokio::test]
async fn a_restart_catches_up_everything_once_up_to_supervision_orders() {
    each_backend(|app| async move {
        app.clock.set(cst("2026-12-01 09:00"));
        let demo = app.demo().await;
        let ticket = app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;
        let ticket_id = id(&ticket);

        // The server was down for three weeks: every milestone of every clock fell due.
        app.clock.set(cst("2026-12-22 09:00"));
        let report = sweep(&app.ctx).await;
        assert_eq!(report, SweepReport { warnings: 3, breaches: 3, followups: 1, auto_closed: 0 });
        assert_eq!(sweep(&app.ctx).await, SweepReport::default(), "nothing fires twice");
        for kind in ["sla_warning", "sla_breached"] {
            let events = events_of_kind(&app, &ticket_id, kind).await;
            let mut clocks: Vec<&str> = events.iter().filter_map(|e| e["payload"]["clock"].as_str()).collect();
            clocks.sort();
            assert_eq!(clocks, ["acknowledge", "first_contact", "resolve"], "{kind}");
        }

        // The chain: resolve breach → 督办; breach + 2 working days → 挂牌督办 for the city.
        let supervisor = app.demo_token("demo-supervisor").await;
        let orders = app.get("/api/v1/supervision-orders", &supervisor).await.expect(200);
        let items = orders["items"].as_array().expect("items");
        let mut levels: Vec<&str> = items.iter().filter_map(|o| o["level"].as_str()).collect();
        levels.sort();
        assert_eq!(levels, ["listed", "supervise"]);
        assert!(
            items
                .iter()
                .all(|o| o["ticket_id"] == ticket_id.as_str() && o["status"] == "open" && o["issued_by"].is_null())
        );
        let listed = app.get("/api/v1/supervision-orders?level=listed", &supervisor).await.expect(200);
        assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
        let ordered = events_of_kind(&app, &ticket_id, "supervision_ordered").await;
        assert_eq!(ordered.len(), 2);
        assert!(ordered.iter().all(|e| e["payload"]["clock"] == "resolve"), "each names its clock");
        let admin = app.demo_token("demo-admin").await;
        let outbox = app.get("/api/v1/notifications?limit=200", &admin).await.expect(200);
        assert!(
            outbox["items"]
                .as_array()
                .expect("items")
                .iter()
                .any(|n| n["recipient"] == "demo-supervisor@gridwhistle.example")
        );

        // The responsible department answers; nobody else can.
        let order_id = items[0]["id"].as_str().expect("id");
        let dept = app.demo_token("demo-dept").await;
        let other = app.user_in(&admin, "mzj-clerk", "department_staff", "XF-MZJ").await;
        app.post(&format!("/api/v1/supervision-orders/{order_id}/reply"), &other, json!({"reply": "x"}))
            .await
            .problem(404);
        let replied = app
            .post(
                &format!("/api/v1/supervision-orders/{order_id}/reply"),
                &dept,
                json!({"reply": "已安排专人，今日办结"}),
            )
            .await
            .expect(200);
        assert_eq!(replied["status"], "replied");
        app.post(&format!("/api/v1/supervision-orders/{order_id}/reply"), &dept, json!({"reply": "again"}))
            .await
            .problem(409);
        assert_eq!(events_of_kind(&app, &ticket_id, "supervision_replied").await.len(), 1);

        // A supervisor may also order supervision by hand, with a deadline; others may not.
        let by_hand = json!({"instruction": "请于周五前办结并回复", "due_at": "2026-12-25T10:00:00Z"});
        let dispatcher = app.demo_token("demo-dispatcher").await;
        app.post(&format!("/api/v1/tickets/{ticket_id}/supervise"), &dispatcher, by_hand.clone()).await.problem(403);
        let order = app.post(&format!("/api/v1/tickets/{ticket_id}/supervise"), &supervisor, by_hand).await.expect(201);
        assert_eq!(order["level"], "supervise");
        assert!(order["issued_by"].is_string());
        let past = json!({"instruction": "x", "due_at": "2020-01-01T00:00:00Z"});
        app.post(&format!("/api/v1/tickets/{ticket_id}/supervise"), &supervisor, past).await.problem(422);
    })
    .await;
}

#[tokio::test]
async fn extensions_move_the_resolve_clock_and_returns_never_do() {
    each_backend(|app| async move {
        app.clock.set(cst("2026-12-01 09:00"));
        let demo = app.demo().await;
        let ticket = app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;
        let ticket_id = id(&ticket);
        let resolve_due = clock(&ticket, "resolve")["due_at"].clone();
        let dispatch_id = app.dispatch_of(&ticket, "XF-CGJ", &demo.admin).await;

        // A return and a re-dispatch leave the resolve clock where it was.
        app.post(&format!("/api/v1/dispatches/{dispatch_id}/return"), &demo.dept, json!({"reason": "不属于"}))
            .await
            .expect(200);
        let cgj = app.id_by_code("departments", "XF-CGJ", &demo.admin).await;
        let again = app
            .post(
                &format!("/api/v1/tickets/{ticket_id}/dispatch"),
                &demo.dispatcher,
                json!({"primary_department_id": cgj}),
            )
            .await
            .expect(200);
        assert_eq!(clock(&again, "resolve")["due_at"], resolve_due);
        let dispatch_id = app.dispatch_of(&again, "XF-CGJ", &demo.admin).await;
        let ask = |duration: &str| json!({"reason": "需协调产权单位", "duration": duration});
        let path = format!("/api/v1/dispatches/{dispatch_id}/extension-requests");
        app.post(&path, &demo.dept, ask("2d working")).await.problem(409); // not reported in yet
        app.post(&format!("/api/v1/dispatches/{dispatch_id}/acknowledge"), &demo.dept, json!({})).await.expect(200);
        app.post(&path, &demo.dept, ask("5d working")).await.problem(422); // over 3 working days

        let mut due = resolve_due.as_str().expect("due").to_owned();
        for round in 0..3 {
            let request = app.post(&path, &demo.dept, ask("1d working")).await.expect(201);
            app.post(&path, &demo.dept, ask("1d working")).await.problem(409); // one at a time
            let decision = format!("/api/v1/extension-requests/{}/approve", request["id"].as_str().expect("id"));
            app.post(&decision, &demo.dept, json!({})).await.problem(403);
            app.post(&decision, &demo.dispatcher, json!({"note": "同意"})).await.expect(200);
            let now = app.ticket(&ticket_id, &demo.dispatcher).await;
            let moved = clock(&now, "resolve")["due_at"].as_str().expect("due").to_owned();
            assert!(moved > due, "round {round}: {moved} after {due}");
            due = moved;
        }
        assert_eq!(due, "2026-12-15T01:00:00Z", "three working days later: Thu 10 → Tue 15 Dec");
        app.post(&path, &demo.dept, ask("1d working")).await.problem(409); // the fourth
        let report = app
            .get("/api/v1/reports/sla?from=2026-12-01&to=2026-12-01&group_by=department", &demo.supervisor)
            .await
            .expect(200);
        let cgj = app.id_by_code("departments", "XF-CGJ", &demo.admin).await;
        let row = report["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .find(|r| r["group_id"] == cgj.as_str())
            .cloned()
            .expect("row");
        assert_eq!(row["extensions"], 3, "extensions show in reports");
        let decided = events_of_kind(&app, &ticket_id, "extension_decided").await;
        assert_eq!(decided.len(), 3);
        assert_eq!(events_of_kind(&app, &ticket_id, "extension_requested").await.len(), 3);
    })
    .await;
}

#[tokio::test]
async fn policies_apply_to_new_clocks_only() {
    each_backend(|app| async move {
        app.clock.set(cst("2026-12-01 09:00"));
        let demo = app.demo().await;
        let environment = app.category("environment", &demo.admin).await;
        let before = app.file(&demo.grid, &environment).await;
        let path = format!("/api/v1/sla-policies/{environment}");
        let current = app.get(&path, &demo.admin).await.expect(200);
        assert_eq!(current["normal"]["acknowledge"], "2h working");
        assert_eq!(current["customised"], false);
        let policy = json!({
            "normal": {"acknowledge": "1h working", "first_contact": "12h", "resolve": "5d working", "rectify": "10d working", "rating_window": "2d"},
            "urgent": {"acknowledge": "15m", "first_contact": "1h", "resolve": "12h", "rectify": "2d", "rating_window": "2d"}
        });
        app.put_json(&path, &demo.dispatcher, policy.clone()).await.problem(403);
        let mut bad = policy.clone();
        bad["urgent"]["resolve"] = json!("soon");
        let refused = app.put_json(&path, &demo.admin, bad).await.problem(422);
        assert!(refused["errors"]["urgent.resolve"].is_string());
        let saved = app.put_json(&path, &demo.admin, policy).await.expect(200);
        assert_eq!(saved["customised"], true);
        assert_eq!(saved["normal"]["acknowledge"], "1h working");

        let after = app.file(&demo.grid, &environment).await;
        assert_eq!(clock(&after, "acknowledge")["due_at"], "2026-12-01T02:00:00Z");
        let unchanged = app.ticket(&id(&before), &demo.admin).await;
        assert_eq!(clock(&unchanged, "acknowledge")["due_at"], "2026-12-01T03:00:00Z", "running clocks keep their deadline");
        let all = app.get("/api/v1/sla-policies", &demo.supervisor).await.expect(200);
        assert_eq!(all["items"].as_array().map(Vec::len), Some(15));
        assert_eq!(all["next_cursor"], Value::Null);
        let rules = app.get("/api/v1/escalation-rules", &demo.supervisor).await.expect(200);
        assert_eq!(rules["items"].as_array().map(Vec::len), Some(8), "the default chain");
    })
    .await;
}

#[tokio::test]
async fn a_year_without_a_schedule_is_estimated_until_one_is_added() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let asked = app.get("/api/v1/calendar/deadline?start=2027-09-30T01:00:00Z&duration=3d%20working", &demo.grid).await.expect(200);
        assert_eq!(asked["estimated"], true);
        assert_eq!(asked["deadline"], "2027-10-05T01:00:00Z", "weekdays only: Fri 1, Mon 4, Tue 5");
        let national_day = json!({"year": 2027, "papers": [], "days": (1..=7).map(|d| json!({"name": "国庆节", "date": format!("2027-10-0{d}"), "isOffDay": true})).collect::<Vec<_>>()});
        app.post("/api/v1/calendar", &demo.dispatcher, national_day.clone()).await.problem(403);
        app.post("/api/v1/calendar", &demo.admin, json!({"year": 2027, "days": [{"date": "2026-01-01", "isOffDay": true}]})).await.problem(422);
        let years = app.post("/api/v1/calendar", &demo.admin, national_day).await.expect(200);
        assert_eq!(years["years"], json!([2025, 2026, 2027]));
        let now_known = app.get("/api/v1/calendar/deadline?start=2027-09-30T01:00:00Z&duration=3d%20working", &demo.grid).await.expect(200);
        assert_eq!(now_known["estimated"], false);
        assert_eq!(now_known["deadline"], "2027-10-12T01:00:00Z", "Oct 1–7 off: Fri 8, Mon 11, Tue 12");
        app.get("/api/v1/calendar/deadline?start=2027-09-30T01:00:00Z&duration=soon", &demo.grid).await.problem(422);
    })
    .await;
}

/// Two sweepers (two pools, as two replicas would have) race over a thousand due clocks:
/// every warning and every breach fires exactly once.
#[tokio::test]
async fn two_sweepers_fire_each_clock_once() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let other = app.category("other", &demo.admin).await;
        let ticket = app.file(&demo.grid, &other).await;
        let ticket_id: uuid::Uuid = id(&ticket).parse().expect("uuid");
        let now = app.clock.now_for_tests();
        let clocks = (0..1000).map(|i| entities::sla_clock::ActiveModel {
            id: sea_orm::Set(uuid::Uuid::now_v7()),
            ticket_id: sea_orm::Set(ticket_id),
            dispatch_id: sea_orm::Set(None),
            clock: sea_orm::Set("first_contact".into()),
            duration: sea_orm::Set("24h".into()),
            started_at: sea_orm::Set(now - Duration::hours(25)),
            warn_at: sea_orm::Set(now - Duration::hours(6) - Duration::seconds(i)),
            due_at: sea_orm::Set(now - Duration::hours(1)),
            followup_at: sea_orm::Set(None),
            next_check_at: sea_orm::Set(Some(now - Duration::hours(6) - Duration::seconds(i))),
            warned_at: sea_orm::Set(None),
            breached_at: sea_orm::Set(None),
            followed_up_at: sea_orm::Set(None),
            stopped_at: sea_orm::Set(None),
            stop_reason: sea_orm::Set(None),
            estimated: sea_orm::Set(false),
            last_error: sea_orm::Set(None),
            failures: sea_orm::Set(0),
        });
        entities::sla_clock::Entity::insert_many(clocks).exec(&app.ctx.db).await.expect("clocks inserted");

        let second_pool = gridwhistle::db::connect(&app.ctx.settings).await.expect("second pool");
        let replica = AppContext::new(second_pool, app.clock.clone(), (*app.ctx.settings).clone()).expect("replica");
        // Both replicas tick together. On a heavily loaded machine one tick may give up on a busy
        // database (as in production, the next tick carries on); what must hold is that every
        // clock fires exactly once over the ticks, never twice.
        let (mut warnings, mut breaches, mut failed_ticks) = (0, 0, 0);
        for _ in 0..5 {
            let (a, b) = tokio::join!(sweeper::run_once(&app.ctx), sweeper::run_once(&replica));
            for tick in [a, b] {
                match tick {
                    Ok(report) => (warnings, breaches) = (warnings + report.warnings, breaches + report.breaches),
                    Err(error) => {
                        failed_ticks += 1;
                        eprintln!("a sweeper tick gave up and is retried: {error}");
                    }
                }
            }
            if failed_ticks == 0 || (warnings, breaches) == (1000, 1000) {
                break;
            }
        }
        if failed_ticks == 0 {
            assert_eq!((warnings, breaches), (1000, 1000), "the two ticks' reports");
        }
        let count = |kind: &'static str| {
            let db = app.ctx.db.clone();
            async move {
                entities::ticket_event::Entity::find()
                    .filter(entities::ticket_event::Column::TicketId.eq(ticket_id))
                    .filter(entities::ticket_event::Column::Kind.eq(kind))
                    .count(&db)
                    .await
                    .expect("count")
            }
        };
        assert_eq!(count("sla_warning").await, 1000);
        assert_eq!(count("sla_breached").await, 1000);
        assert_eq!(sweep(&app.ctx).await, SweepReport::default());
    })
    .await;
}

/// The value of a counter in the Prometheus text, 0 when it has not been touched yet.
async fn counter(app: &TestApp, name: &str) -> f64 {
    let text = app.client.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    text.lines().filter(|l| l.starts_with(name)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}

/// A clock whose processing fails (here: the database refuses its breach event) is put aside
/// with its error and retried later; the other clocks of the batch fire as if nothing happened.
#[tokio::test]
async fn one_failing_clock_does_not_stop_the_others() {
    each_backend(|app| async move {
        app.clock.set(cst("2026-12-01 09:00"));
        let demo = app.demo().await;
        let category = app.category("environment", &demo.admin).await;
        let broken = app.file(&demo.grid, &category).await; // its clocks come first in the batch
        app.clock.set(cst("2026-12-01 09:01"));
        let healthy = app.file(&demo.grid, &category).await;
        let number = broken["number"].as_str().expect("number");
        let refuse = match app.ctx.db.get_database_backend() {
            sea_orm::DbBackend::Postgres => vec![
                format!(
                    "CREATE FUNCTION refuse_breach() RETURNS trigger AS $$ BEGIN \
                     IF NEW.kind = 'sla_breached' AND NEW.ticket_id = (SELECT id FROM tickets WHERE number = '{number}') \
                     THEN RAISE EXCEPTION 'simulated failure'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
                ),
                "CREATE TRIGGER refuse_breach BEFORE INSERT ON ticket_events FOR EACH ROW EXECUTE FUNCTION refuse_breach()"
                    .to_owned(),
            ],
            _ => vec![format!(
                "CREATE TRIGGER refuse_breach BEFORE INSERT ON ticket_events \
                 WHEN NEW.kind = 'sla_breached' AND NEW.ticket_id = (SELECT id FROM tickets WHERE number = '{number}') \
                 BEGIN SELECT RAISE(ABORT, 'simulated failure'); END"
            )],
        };
        for statement in &refuse {
            app.ctx.db.execute_unprepared(statement).await.expect("trigger installed");
        }
        let failures_before = counter(&app, "gridwhistle_sweeper_clock_failures_total").await;

        // Both acknowledge clocks are past warning and deadline: the broken one fails halfway.
        app.clock.set(cst("2026-12-01 11:05"));
        let report = sweep(&app.ctx).await;
        assert_eq!(report, SweepReport { warnings: 1, breaches: 1, ..Default::default() }, "the healthy ticket's");
        assert_eq!(events_of_kind(&app, &id(&healthy), "sla_breached").await.len(), 1);
        assert!(events_of_kind(&app, &id(&broken), "sla_warning").await.is_empty(), "all or nothing per clock");
        assert!(events_of_kind(&app, &id(&broken), "sla_breached").await.is_empty());
        assert!(counter(&app, "gridwhistle_sweeper_clock_failures_total").await >= failures_before + 1.0);
        // Not retried on every tick...
        assert_eq!(sweep(&app.ctx).await, SweepReport::default(), "put aside for a while");

        // ...but again once the cause is gone and its retry time has come, and then once only.
        app.ctx.db.execute_unprepared("DROP TRIGGER refuse_breach ON ticket_events").await.ok();
        app.ctx.db.execute_unprepared("DROP TRIGGER IF EXISTS refuse_breach").await.ok();
        app.clock.set(cst("2026-12-01 11:30"));
        assert_eq!(sweep(&app.ctx).await, SweepReport { warnings: 1, breaches: 1, ..Default::default() });
        assert_eq!(events_of_kind(&app, &id(&broken), "sla_warning").await.len(), 1);
        assert_eq!(events_of_kind(&app, &id(&broken), "sla_breached").await.len(), 1);
        assert_eq!(sweep(&app.ctx).await, SweepReport::default());
    })
    .await;
}
