//! Concurrency: the SLA sweeper beside ticket writes on PostgreSQL, lock contention answered
//! as 503 with Retry-After instead of 500, and start-up work several replicas run at once.

use std::{collections::HashMap, sync::Arc};

use actix_web::ResponseError;
use chrono::{DateTime, Duration, Utc};
use entities::{escalation_rule, sla_clock, ticket_event};
use gridwhistle::{error::AppError, service::escalation, workers::sweeper};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, TransactionTrait};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Backend, TestApp, cst, each_backend, spawn_app_with};

fn postgres_available() -> bool {
    let set = std::env::var("TEST_DATABASE_URL").is_ok();
    if !set {
        println!("skipped: this test needs PostgreSQL; set TEST_DATABASE_URL to run it");
    }
    set
}

/// A real deadlock between two transactions is a busy server to the client: 503 with
/// Retry-After, the same request expected to succeed — not an opaque 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadlock_answers_503_with_retry_after() {
    if !postgres_available() {
        return;
    }
    let app = spawn_app_with(Backend::Postgres, &[]).await;
    app.demo().await;
    let db = &app.ctx.db;
    let (first, second) = (db.begin().await.expect("begin"), db.begin().await.expect("begin"));
    let touch = |code: &str| format!("UPDATE categories SET name = name WHERE code = '{code}'");
    first.execute_unprepared(&touch("environment")).await.expect("first locks one row");
    second.execute_unprepared(&touch("dispute")).await.expect("second locks another");
    // Each now waits for the other's row: PostgreSQL picks one of them to fail.
    let (cross_a, cross_b) = (touch("dispute"), touch("environment"));
    let (a, b) = tokio::join!(first.execute_unprepared(&cross_a), second.execute_unprepared(&cross_b));
    let err = match (a, b) {
        (Err(err), Ok(_)) | (Ok(_), Err(err)) => err,
        other => panic!("expected exactly one deadlock victim, got {other:?}"),
    };
    assert!(err.to_string().contains("deadlock"), "{err}");
    let response = AppError::from(err).error_response();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
}

/// Eight clients act on the same tickets while the sweeper fires their overdue clocks.
/// Ticket writes lock the ticket and then stop clocks; the sweeper holds clocks and then
/// writes rows whose foreign keys point at the ticket. No request may fail for it, and every
/// due clock fires exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sweeper_and_eight_clients_on_the_same_tickets() {
    if !postgres_available() {
        return;
    }
    let app = Arc::new(
        spawn_app_with(
            Backend::Postgres,
            &[("GRIDWHISTLE_DATABASE__MAX_CONNECTIONS", "24"), ("GRIDWHISTLE_HTTP__WORKERS", "2")],
        )
        .await,
    );
    app.clock.set(cst("2026-12-01 09:00")); // a Tuesday
    let demo = app.demo().await;
    let category = app.category("environment", &demo.admin).await;
    let mut summoned = Vec::new();
    for code in ["XF-GAJ", "XF-MZJ", "XF-ZJJ"] {
        summoned.push(app.id_by_code("departments", code, &demo.admin).await);
    }
    let mut answers: Vec<(String, u16)> = Vec::new();
    for _round in 0..4 {
        let (grid, dept, dispatcher) = (
            app.demo_token("demo-grid").await,
            app.demo_token("demo-dept").await,
            app.demo_token("demo-dispatcher").await,
        );
        // Tickets, each with a pending dispatch to 城管局 and three running clocks.
        let mut work = Vec::new();
        for _ in 0..8 {
            let ticket = app.file(&grid, &category).await;
            let dispatch = ticket["dispatches"][0]["id"].as_str().expect("dispatch").to_owned();
            work.push((ticket["id"].as_str().expect("id").to_owned(), dispatch));
        }
        // The acknowledge clocks are past warning and deadline; the sweeper and the clients race.
        app.clock.advance(Duration::hours(3));
        let start = Arc::new(tokio::sync::Barrier::new(9));
        let mut tasks = tokio::task::JoinSet::new();
        {
            let (ctx, start) = (app.ctx.clone(), start.clone());
            tasks.spawn(async move {
                start.wait().await;
                let mut answers = Vec::new();
                for _ in 0..6 {
                    let outcome = sweeper::run_once(&ctx).await;
                    answers.push((format!("sweep {outcome:?}"), if outcome.is_ok() { 200 } else { 500 }));
                }
                answers
            });
        }
        for client in 0..8 {
            let (app, start, work, summoned) = (app.clone(), start.clone(), work.clone(), summoned.clone());
            let (dept, dispatcher) = (dept.clone(), dispatcher.clone());
            tasks.spawn(async move {
                start.wait().await;
                let mut answers = Vec::new();
                // Each client starts at a different ticket, so every ticket sees several at once.
                for step in 0..work.len() {
                    let (ticket, dispatch) = &work[(step + client) % work.len()];
                    let (path, token, body) = match client % 4 {
                        0 => (format!("/api/v1/dispatches/{dispatch}/acknowledge"), &dept, json!({})),
                        1 => (
                            format!("/api/v1/dispatches/{dispatch}/progress"),
                            &dept,
                            json!({"note": "已电话联系居民", "contacted_resident": true}),
                        ),
                        2 => (
                            format!("/api/v1/tickets/{ticket}/whistle"),
                            &dispatcher,
                            json!({"department_ids": [summoned[client % summoned.len()]], "reason": "联合处置"}),
                        ),
                        _ => (format!("/api/v1/dispatches/{dispatch}/acknowledge"), &dept, json!({})),
                    };
                    let reply = app.post(&path, token, body).await;
                    answers.push((format!("{path}: {}", reply.body), reply.status.as_u16()));
                }
                answers
            });
        }
        while let Some(done) = tasks.join_next().await {
            answers.extend(done.expect("task finished"));
        }
    }
    let failed: Vec<&(String, u16)> = answers.iter().filter(|(_, status)| *status >= 500).collect();
    assert!(failed.is_empty(), "{} of {} failed: {failed:#?}", failed.len(), answers.len());

    // Afterwards: every clock still running and due has fired, each milestone exactly once.
    sweeper::run_once(&app.ctx).await.expect("final sweep");
    let now = app.clock.now_for_tests();
    let clocks = sla_clock::Entity::find().all(&app.ctx.db).await.expect("clocks");
    let events = ticket_event::Entity::find()
        .filter(ticket_event::Column::Kind.is_in(["sla_warning", "sla_breached"]))
        .all(&app.ctx.db)
        .await
        .expect("events");
    let mut fired: HashMap<(Uuid, String, String, Value, String), usize> = HashMap::new();
    for event in &events {
        let key = |field: &str| event.payload[field].clone();
        let due_at: DateTime<Utc> = serde_json::from_value(key("due_at")).expect("due_at");
        let clock = key("clock").as_str().expect("clock").to_owned();
        *fired
            .entry((event.ticket_id, event.kind.clone(), clock, key("dispatch_id"), due_at.to_rfc3339()))
            .or_default() += 1;
    }
    let mut expected = 0;
    for clock in &clocks {
        if clock.stopped_at.is_none() && clock.due_at <= now {
            assert!(clock.breached_at.is_some(), "a due clock that never fired: {clock:?}");
        }
        let dispatch = clock.dispatch_id.map_or(Value::Null, |id| json!(id));
        for (kind, at) in [("sla_warning", clock.warned_at), ("sla_breached", clock.breached_at)] {
            let key =
                (clock.ticket_id, kind.to_owned(), clock.clock.clone(), dispatch.clone(), clock.due_at.to_rfc3339());
            let count = fired.get(&key).copied().unwrap_or(0);
            assert_eq!(count, usize::from(at.is_some()), "{kind} of {clock:?}");
            expected += count;
        }
    }
    assert_eq!(expected, events.len(), "every warning and breach event belongs to a clock that recorded it");
    assert!(expected > 0, "the sweeper fired something");
}

/// Replicas starting together on an empty database both install the default escalation
/// chain; the table ends up with one copy.
#[tokio::test]
async fn default_escalation_rules_install_once_when_replicas_start_together() {
    each_backend(|app: TestApp| async move {
        let db = &app.ctx.db;
        let configured = app.ctx.settings.escalation.rules.len() as u64;
        assert_eq!(escalation_rule::Entity::find().count(db).await.expect("count"), configured, "installed at start");
        escalation_rule::Entity::delete_many().exec(db).await.expect("emptied");

        let (a, b) =
            tokio::join!(escalation::install_default_rules(&app.ctx), escalation::install_default_rules(&app.ctx));
        a.expect("first replica");
        b.expect("second replica");
        assert_eq!(escalation_rule::Entity::find().count(db).await.expect("count"), configured, "one set");

        // Later starts leave the (edited) table alone.
        escalation::install_default_rules(&app.ctx).await.expect("restart");
        assert_eq!(escalation_rule::Entity::find().count(db).await.expect("count"), configured);
        let admin = app.admin_token().await;
        let listed = app.get("/api/v1/escalation-rules?limit=200", &admin).await.expect(200);
        assert_eq!(listed["items"].as_array().map(Vec::len), Some(configured as usize));
    })
    .await;
}

/// Two replicas started together on an empty PostgreSQL database both migrate it: one waits
/// for the other instead of failing on a half-created type.
#[tokio::test]
async fn replicas_migrating_an_empty_database_at_once_both_succeed() {
    if !postgres_available() {
        return;
    }
    let (url, _guard) = crate::helpers::fresh_database(Backend::Postgres).await;
    let a = sea_orm::Database::connect(url.as_str()).await.expect("first replica connects");
    let b = sea_orm::Database::connect(url.as_str()).await.expect("second replica connects");
    let (first, second) = tokio::join!(gridwhistle::db::migrate(&a), gridwhistle::db::migrate(&b));
    first.expect("first replica migrates");
    second.expect("second replica migrates");
    a.close().await.ok();
    b.close().await.ok();
}

/// Behind a load balancer each replica checks the same counters: three logins a minute from
/// one address are three across two replicas, not three each.
#[tokio::test]
async fn rate_limits_hold_across_replicas() {
    if !postgres_available() {
        return;
    }
    let app = spawn_app_with(Backend::Postgres, &[("GRIDWHISTLE_SECURITY__LOGIN_PER_MINUTE_PER_IP", "3")]).await;
    app.clock.set(cst("2026-12-01 09:00") + Duration::seconds(10));
    let pool = gridwhistle::db::connect(&app.ctx.settings).await.expect("second pool");
    let replica =
        gridwhistle::context::AppContext::new(pool, app.clock.clone(), (*app.ctx.settings).clone()).expect("replica");
    let ip = Some("192.0.2.7".parse().expect("ip"));
    let mut answers = Vec::new();
    for ctx in [&app.ctx, &replica, &app.ctx, &replica] {
        let refused =
            gridwhistle::service::auth::login(ctx, "nobody", "wrong password", ip).await.expect_err("refused");
        answers.push(matches!(refused, AppError::Limited { .. }));
    }
    assert_eq!(answers, [false, false, false, true], "the fourth login in the minute is one too many");
    // The next minute starts afresh.
    app.clock.set(cst("2026-12-01 09:01") + Duration::seconds(1));
    let next = gridwhistle::service::auth::login(&replica, "nobody", "wrong password", ip).await.expect_err("refused");
    assert!(!matches!(next, AppError::Limited { .. }), "{next:?}");
}
