//! Time a client sends is bounded: durations (at most 366 days, whatever the kind) and dates
//! or instants (within 100 years of today) answer 422 naming the field, at once, and the
//! server keeps serving — no request can pin a worker, hold the SQLite writer or panic.

use std::time::Duration as StdDuration;

use serde_json::json;

use crate::helpers::{Reply, TestApp, cst, each_backend};

async fn deadline(app: &TestApp, token: &str, query: &str) -> Reply {
    app.get(&format!("/api/v1/calendar/deadline?{query}"), token).await
}

/// The request, failing the test when the server takes more than a few seconds to answer
/// (before the bounds, these requests never answered at all).
async fn quickly(request: impl std::future::Future<Output = Reply>) -> Reply {
    tokio::time::timeout(StdDuration::from_secs(10), request).await.expect("the server answers within seconds")
}

#[track_caller]
fn names_field(problem: &serde_json::Value, field: &str) {
    assert!(problem["errors"][field].is_string(), "422 should name `{field}`: {problem}");
}

#[tokio::test]
async fn deadline_arithmetic_refuses_absurd_durations_and_dates() {
    each_backend(|app| async move {
        app.clock.set(cst("2026-11-30 09:00"));
        app.seed_demo().await;
        let token = app.demo_token("demo-grid").await;

        for duration in ["9999999999h%20working", "99999999999d", "99999999999d%20working", "367d", "8785h%20working"] {
            let problem = quickly(deadline(&app, &token, &format!("start=2026-11-30T00:00:00Z&duration={duration}")))
                .await
                .problem(422);
            names_field(&problem, "duration");
        }
        for start in ["2300-01-01T00:00:00Z", "1900-01-01T00:00:00Z", "%2B262142-12-31T00:00:00Z"] {
            let problem = quickly(deadline(&app, &token, &format!("start={start}&duration=2h%20working"))).await;
            names_field(&problem.problem(422), "start");
        }
        // The longest durations allowed still answer, and the server keeps serving.
        for duration in ["366d", "8784h%20working", "366d%20working"] {
            quickly(deadline(&app, &token, &format!("start=2026-11-30T00:00:00Z&duration={duration}")))
                .await
                .expect(200);
        }
        let answer =
            quickly(deadline(&app, &token, "start=2026-11-30T01:00:00Z&duration=2h%20working")).await.expect(200);
        assert_eq!(answer["deadline"], "2026-11-30T03:00:00Z", "Mon 09:00 + 2 working hours = 11:00 Beijing");
    })
    .await;
}

#[tokio::test]
async fn report_periods_far_from_today_answer_422() {
    each_backend(|app| async move {
        app.clock.set(cst("2026-11-30 09:00"));
        app.seed_demo().await;
        let supervisor = app.demo_token("demo-supervisor").await;
        for (from, to, field) in [
            ("%2B262142-12-31", "%2B262142-12-31", "from"),
            ("2026-11-01", "%2B262142-12-31", "to"),
            ("1900-01-01", "1900-01-31", "from"),
            ("2200-01-01", "2200-01-31", "from"),
        ] {
            let sla = format!("/api/v1/reports/sla?from={from}&to={to}&group_by=department");
            names_field(&quickly(app.get(&sla, &supervisor)).await.problem(422), field);
            for interval in ["day", "month"] {
                let trend = format!("/api/v1/reports/trend?from={from}&to={to}&interval={interval}");
                names_field(&quickly(app.get(&trend, &supervisor)).await.problem(422), field);
            }
        }
        // The server is still there.
        quickly(app.get("/api/v1/reports/sla?from=2026-11-01&to=2026-11-30&group_by=department", &supervisor))
            .await
            .expect(200);
        quickly(app.get("/api/v1/reports/trend?from=2026-11-01&to=2026-11-30&interval=week", &supervisor))
            .await
            .expect(200);
    })
    .await;
}

#[tokio::test]
async fn an_absurd_extension_is_refused_before_any_transaction() {
    each_backend(|app| async move {
        app.clock.set(cst("2026-12-01 09:00"));
        let demo = app.demo().await;
        let ticket: serde_json::Value = app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;
        let dispatch = app.dispatch_of(&ticket, "XF-CGJ", &demo.admin).await;
        app.post(&format!("/api/v1/dispatches/{dispatch}/acknowledge"), &demo.dept, json!({})).await.expect(200);
        let path = format!("/api/v1/dispatches/{dispatch}/extension-requests");
        for duration in ["9999999999h working", "99999999999d", "400d working"] {
            let problem =
                quickly(app.post(&path, &demo.dept, json!({"reason": "x", "duration": duration}))).await.problem(422);
            names_field(&problem, "duration");
        }
        // Over the cap (3 working days) but parseable: still 422, still at once.
        let problem =
            quickly(app.post(&path, &demo.dept, json!({"reason": "x", "duration": "300d"}))).await.problem(422);
        names_field(&problem, "duration");
        // Writes go on (on SQLite a stuck writer would answer `database is locked`).
        quickly(app.post(&path, &demo.dept, json!({"reason": "需协调产权单位", "duration": "1d working"})))
            .await
            .expect(201);
        let another = app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;
        assert_eq!(another["status"], "dispatched");
    })
    .await;
}

/// A policy of 24 working hours stays 24 working hours once stored (it used to be stored as
/// "1d working", one working *day*): from Tue 3 Mar 2026 09:00 it is due Fri 6 Mar 12:00.
#[tokio::test]
async fn working_hours_keep_their_meaning_once_stored() {
    each_backend(|app| async move {
        app.clock.set(cst("2026-03-03 09:00"));
        let demo = app.demo().await;
        let environment = app.category("environment", &demo.admin).await;
        let texts = json!({"acknowledge": "2h working", "first_contact": "24h", "resolve": "24h working", "rectify": "15d working", "rating_window": "3d"});
        let policy = json!({"normal": texts, "urgent": texts});
        let saved = app.put_json(&format!("/api/v1/sla-policies/{environment}"), &demo.admin, policy).await.expect(200);
        assert_eq!(saved["normal"]["resolve"], "24h working");
        let read = app.get(&format!("/api/v1/sla-policies/{environment}"), &demo.admin).await.expect(200);
        assert_eq!(read["normal"]["resolve"], "24h working");
        let ticket = app.file(&demo.grid, &environment).await;
        let resolve = ticket["sla"]
            .as_array()
            .expect("sla")
            .iter()
            .find(|c| c["clock"] == "resolve")
            .unwrap_or_else(|| panic!("a resolve clock in {ticket}"))
            .clone();
        assert_eq!(resolve["due_at"], "2026-03-06T04:00:00Z", "Fri 6 Mar 12:00 Beijing");
    })
    .await;
}
