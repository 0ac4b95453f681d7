//! The 接诉即办 flow end to end: filing, routing, 吹哨, 报到, 退单, 办结, 好差评, the timeline.

use serde_json::{Value, json};

use crate::helpers::{RESIDENT_PHONE, each_backend, ticket_body};

fn id(value: &Value) -> String {
    value["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn happy_path_from_phone_to_closed_ticket() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        // 市容环境 routes automatically to 忻府区城市管理局 (demo-dept's department).
        let environment = app.category("environment", &demo.admin).await;
        let filed = app.post("/api/v1/tickets", &demo.grid, ticket_body(&environment)).await;
        let etag = filed.headers.get("etag").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        assert!(etag.starts_with("\"2-"), "filed, then auto-dispatched: version 2 in {etag}");
        let ticket = filed.expect(201);
        let ticket_id = id(&ticket);
        assert!(
            ticket["number"].as_str().is_some_and(|n| n.starts_with("XZ-2026-") || n.starts_with("XZ-20")),
            "{ticket}"
        );
        assert_eq!(ticket["status"], "dispatched");
        assert_eq!(
            ticket["grid_unit_id"],
            app.id_by_code("grid-units", "140902001001-G01", &demo.admin).await.as_str()
        );
        assert_eq!(ticket["priority"], "normal", "the category's default");
        assert_eq!(ticket["resident"]["phone"], "138****5678", "masked, even for the filer");
        assert_eq!(ticket["contact_revealable"], true, "the filer may reveal it through /contact");
        assert_eq!(ticket["dispatches"].as_array().map(Vec::len), Some(1));
        assert_eq!(ticket["dispatches"][0]["role"], "primary");
        assert_eq!(ticket["dispatches"][0]["status"], "pending");

        // The department finds it among its pending dispatches and reports in.
        let pending = app.get("/api/v1/dispatches?status=pending", &demo.dept).await.expect(200);
        let dispatch_id = pending["items"][0]["id"].as_str().expect("a pending dispatch").to_owned();
        let before_ack = app.ticket(&ticket_id, &demo.dept).await;
        assert_eq!(before_ack["resident"]["phone"], "138****5678", "masked until the department reports in");
        let acked =
            app.post(&format!("/api/v1/dispatches/{dispatch_id}/acknowledge"), &demo.dept, json!({})).await.expect(200);
        assert_eq!(acked["dispatch"]["status"], "acknowledged");
        assert_eq!(acked["ticket"]["status"], "in_progress");
        assert_eq!(acked["ticket"]["contact_revealable"], true, "reported in: the department may call back");

        let progress = app
            .post(
                &format!("/api/v1/dispatches/{dispatch_id}/progress"),
                &demo.dept,
                json!({"note": "已电话联系居民，明日上午清理", "contacted_resident": true}),
            )
            .await
            .expect(200);
        assert!(progress["ticket"]["first_contact_at"].is_string());
        let resolved = app
            .post(
                &format!("/api/v1/dispatches/{dispatch_id}/resolve"),
                &demo.dept,
                json!({"reply": "杂物已清理完毕，并张贴消防提示。"}),
            )
            .await
            .expect(200);
        assert_eq!(resolved["ticket"]["status"], "resolved");
        assert!(resolved["ticket"]["rating_due_at"].is_string());

        let closed = app
            .post(
                &format!("/api/v1/tickets/{ticket_id}/rating"),
                &demo.grid,
                json!({"score": 5, "comment": "非常满意"}),
            )
            .await
            .expect(200);
        assert_eq!(closed["status"], "closed");
        assert_eq!(closed["rating"]["score"], 5);
        assert!(closed["closed_at"].is_string());

        // The timeline, event by event, with who did it.
        let events = app.get(&format!("/api/v1/tickets/{ticket_id}/events"), &demo.supervisor).await.expect(200);
        let items = events["items"].as_array().expect("items");
        let kinds: Vec<&str> = items.iter().map(|e| e["kind"].as_str().expect("kind")).collect();
        assert_eq!(
            kinds,
            [
                "filed",
                "dispatched",
                "acknowledged",
                "work_started",
                "progress",
                "dispatch_resolved",
                "resolved",
                "rated",
                "closed"
            ]
        );
        let me = |token: &str| {
            let app = &app;
            let token = token.to_owned();
            async move { app.get("/api/v1/me", &token).await.expect(200)["id"].clone() }
        };
        let grid_worker = me(&demo.grid).await;
        let clerk = me(&demo.dept).await;
        assert_eq!(items[0]["actor_id"], grid_worker);
        assert_eq!(items[1]["actor_id"], Value::Null, "auto-dispatch is the system's doing");
        assert_eq!(items[1]["payload"]["auto"], true);
        assert_eq!(items[2]["actor_id"], clerk);
        assert_eq!(items[2]["dispatch_id"], dispatch_id.as_str());
        assert_eq!(items[5]["payload"]["reply"], "杂物已清理完毕，并张贴消防提示。");
        assert_eq!(items[7]["payload"]["score"], 5);
        assert_eq!(items[8]["actor_id"], grid_worker);
        for event in items {
            assert!(!event.to_string().contains(RESIDENT_PHONE), "no personal data in the timeline: {event}");
        }
    })
    .await;
}

#[tokio::test]
async fn whistle_summons_three_departments_that_each_report_in() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let dispute = app.category("dispute", &demo.admin).await;
        let ticket = app.file(&demo.grid, &dispute).await;
        let ticket_id = id(&ticket);
        assert_eq!(ticket["status"], "filed", "矛盾纠纷 waits for the dispatcher");

        let dispatched =
            app.post(&format!("/api/v1/tickets/{ticket_id}/dispatch"), &demo.dispatcher, json!({})).await.expect(200);
        assert_eq!(dispatched["status"], "dispatched");
        assert_eq!(dispatched["dispatches"].as_array().map(Vec::len), Some(2), "street mediation centre + 司法局");

        let codes = ["XF-GAJ", "XF-MZJ", "XF-ZJJ"];
        let mut departments = Vec::new();
        for code in codes {
            departments.push(app.id_by_code("departments", code, &demo.admin).await);
        }
        let whistled = app
            .post(
                &format!("/api/v1/tickets/{ticket_id}/whistle"),
                &demo.dispatcher,
                json!({"department_ids": departments, "reason": "涉及治安、民政、住建，吹哨联合处置"}),
            )
            .await
            .expect(200);
        let dispatches = whistled["dispatches"].as_array().expect("dispatches");
        assert_eq!(dispatches.len(), 5);
        let summoned: Vec<&Value> =
            dispatches.iter().filter(|d| departments.iter().any(|x| d["department_id"] == x.as_str())).collect();
        assert_eq!(summoned.len(), 3);
        assert!(summoned.iter().all(|d| d["role"] == "co_handler" && d["status"] == "pending"));

        // Summoning one that already holds an open dispatch is a conflict; an unknown one a 422.
        app.post(
            &format!("/api/v1/tickets/{ticket_id}/whistle"),
            &demo.dispatcher,
            json!({"department_ids": [departments[0]], "reason": "再次"}),
        )
        .await
        .problem(409);
        app.post(
            &format!("/api/v1/tickets/{ticket_id}/whistle"),
            &demo.dispatcher,
            json!({"department_ids": ["00000000-0000-7000-8000-000000000000"], "reason": "x"}),
        )
        .await
        .problem(422);

        // Each summoned department reports in with its own dispatch.
        for (i, code) in codes.iter().enumerate() {
            let clerk = app.user_in(&demo.admin, &format!("clerk{i}"), "department_staff", code).await;
            let mine = app.get("/api/v1/dispatches?status=pending", &clerk).await.expect(200);
            let items = mine["items"].as_array().expect("items");
            assert_eq!(items.len(), 1, "{code} sees only its own dispatch");
            let dispatch_id = items[0]["id"].as_str().expect("id");
            let acked =
                app.post(&format!("/api/v1/dispatches/{dispatch_id}/acknowledge"), &clerk, json!({})).await.expect(200);
            assert_eq!(acked["dispatch"]["department_id"], departments[i].as_str());
        }
        let timeline = app.timeline(&ticket_id, &demo.dispatcher).await;
        assert_eq!(timeline.iter().filter(|k| *k == "whistled").count(), 1);
        assert_eq!(timeline.iter().filter(|k| *k == "acknowledged").count(), 3);
        assert_eq!(
            app.ticket(&ticket_id, &demo.dispatcher).await["status"],
            "dispatched",
            "the primary has not reported in yet"
        );
    })
    .await;
}

#[tokio::test]
async fn third_return_flags_arbitration_and_a_refused_return_sticks() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let other = app.category("other", &demo.admin).await;
        let cgj = app.id_by_code("departments", "XF-CGJ", &demo.admin).await;
        let ticket = app.file(&demo.grid, &other).await;
        let ticket_id = id(&ticket);
        // No rule covers 其他: routing by rule fails with a clear 422.
        let unrouted =
            app.post(&format!("/api/v1/tickets/{ticket_id}/dispatch"), &demo.dispatcher, json!({})).await.problem(422);
        assert!(unrouted["errors"]["primary_department_id"].is_string());

        for round in 1..=3 {
            let dispatched = app
                .post(
                    &format!("/api/v1/tickets/{ticket_id}/dispatch"),
                    &demo.dispatcher,
                    json!({"primary_department_id": cgj}),
                )
                .await
                .expect(200);
            let dispatch_id = app.dispatch_of(&dispatched, "XF-CGJ", &demo.admin).await;
            let returned = app
                .post(
                    &format!("/api/v1/dispatches/{dispatch_id}/return"),
                    &demo.dept,
                    json!({"reason": format!("第{round}次：不属于城管职责")}),
                )
                .await
                .expect(200);
            assert_eq!(returned["dispatch"]["status"], "returned");
            assert_eq!(returned["ticket"]["status"], "filed", "back with the dispatcher");
            assert_eq!(returned["ticket"]["return_count"], round);
            assert_eq!(returned["ticket"]["needs_arbitration"], round >= 3);
        }
        let events =
            app.get(&format!("/api/v1/tickets/{ticket_id}/events?limit=200"), &demo.supervisor).await.expect(200);
        let items = events["items"].as_array().expect("items");
        let returns: Vec<&Value> = items.iter().filter(|e| e["kind"] == "returned").collect();
        assert_eq!(returns.len(), 3);
        assert!(
            returns.iter().all(|e| e["payload"]["department_id"] == cgj.as_str()),
            "the timeline says who returned it"
        );
        assert_eq!(returns[2]["payload"]["reason"], "第3次：不属于城管职责");
        assert_eq!(items.iter().filter(|e| e["kind"] == "arbitration_requested").count(), 1);
        let flagged = app.get("/api/v1/tickets?needs_arbitration=true", &demo.supervisor).await.expect(200);
        assert_eq!(flagged["items"][0]["id"], ticket_id.as_str());

        // The dispatcher refuses the last return: the department must handle it and cannot
        // return it again (首办负责).
        let last = returns[2]["dispatch_id"].as_str().expect("dispatch id").to_owned();
        let refused = app
            .post(
                &format!("/api/v1/dispatches/{last}/reject-return"),
                &demo.dispatcher,
                json!({"reason": "占道经营属城管职责，请办理"}),
            )
            .await
            .expect(200);
        assert_eq!(refused["dispatch"]["status"], "pending");
        assert_eq!(refused["dispatch"]["return_refused"], true);
        assert_eq!(refused["ticket"]["status"], "dispatched");
        let again = app
            .post(&format!("/api/v1/dispatches/{last}/return"), &demo.dept, json!({"reason": "仍不属于"}))
            .await
            .problem(409);
        assert!(again["detail"].as_str().is_some_and(|d| d.contains("首办负责")), "{again}");
        app.post(&format!("/api/v1/dispatches/{last}/acknowledge"), &demo.dept, json!({})).await.expect(200);
    })
    .await;
}

#[tokio::test]
async fn returns_close_one_working_day_after_dispatch() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let environment = app.category("environment", &demo.admin).await;
        let ticket = app.file(&demo.grid, &environment).await;
        let dispatch_id = app.dispatch_of(&ticket, "XF-CGJ", &demo.admin).await;
        // Seven calendar days is more than one working day whatever the weekday or holiday.
        app.clock.advance(chrono::Duration::days(7));
        let dept = app.demo_token("demo-dept").await; // the old session has expired meanwhile
        let late = app
            .post(&format!("/api/v1/dispatches/{dispatch_id}/return"), &dept, json!({"reason": "不属于"}))
            .await
            .problem(409);
        assert!(late["detail"].as_str().is_some_and(|d| d.contains("首办负责")), "{late}");
        assert_eq!(app.ticket(&id(&ticket), &dept).await["return_count"], 0);
    })
    .await;
}

#[tokio::test]
async fn bad_rating_reopens_for_rectification_then_closes() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let environment = app.category("environment", &demo.admin).await;
        let ticket = app.file(&demo.grid, &environment).await;
        let ticket_id = id(&ticket);
        let dispatch_id = app.dispatch_of(&ticket, "XF-CGJ", &demo.admin).await;
        let act = |action: &'static str, body: Value| {
            let (app, token, dispatch_id) = (&app, demo.dept.clone(), dispatch_id.clone());
            async move {
                app.post(&format!("/api/v1/dispatches/{dispatch_id}/{action}"), &token, body)
                    .await
                    .expect(200)
            }
        };
        act("acknowledge", json!({})).await;
        act("resolve", json!({"reply": "已清理"})).await;

        let reopened = app
            .post(
                &format!("/api/v1/tickets/{ticket_id}/rating"),
                &demo.grid,
                json!({"score": 2, "comment": "没有清理干净"}),
            )
            .await
            .expect(200);
        assert_eq!(reopened["status"], "in_progress");
        assert_eq!(reopened["resolved_at"], Value::Null);
        assert_eq!(
            reopened["dispatches"][0]["status"], "acknowledged",
            "the same department rectifies"
        );
        assert_eq!(reopened["rating"]["score"], 2);

        act("progress", json!({"note": "再次上门清理"})).await;
        let resolved = act("resolve", json!({"reply": "已彻底清理并加装监控"})).await;
        assert_eq!(resolved["ticket"]["status"], "resolved");
        let closed = app
            .post(
                &format!("/api/v1/tickets/{ticket_id}/rating"),
                &demo.grid,
                json!({"score": 4}),
            )
            .await
            .expect(200);
        assert_eq!(closed["status"], "closed");
        assert_eq!(closed["rating"]["score"], 4, "the latest rating");

        let timeline = app.timeline(&ticket_id, &demo.grid).await;
        let tail: Vec<&str> = timeline.iter().skip(4).map(String::as_str).collect();
        assert_eq!(
            tail,
            [
                "dispatch_resolved",
                "resolved",
                "rated",
                "reopened",
                "escalated",
                "progress",
                "dispatch_resolved",
                "resolved",
                "rated",
                "closed"
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn unrated_resolved_tickets_close_themselves() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let environment = app.category("environment", &demo.admin).await;
        let ticket = app.file(&demo.grid, &environment).await;
        let ticket_id = id(&ticket);
        let dispatch_id = app.dispatch_of(&ticket, "XF-CGJ", &demo.admin).await;
        app.post(&format!("/api/v1/dispatches/{dispatch_id}/acknowledge"), &demo.dept, json!({})).await.expect(200);
        app.post(&format!("/api/v1/dispatches/{dispatch_id}/resolve"), &demo.dept, json!({"reply": "已处理"}))
            .await
            .expect(200);

        app.clock.advance(chrono::Duration::days(3) - chrono::Duration::minutes(1));
        assert_eq!(gridwhistle::service::tickets::auto_close_due(&app.ctx, 100).await.expect("runs"), 0, "not yet");
        app.clock.advance(chrono::Duration::minutes(2));
        assert_eq!(gridwhistle::service::tickets::auto_close_due(&app.ctx, 100).await.expect("runs"), 1);
        assert_eq!(gridwhistle::service::tickets::auto_close_due(&app.ctx, 100).await.expect("runs"), 0, "once");
        let grid = app.demo_token("demo-grid").await;
        let closed = app.ticket(&ticket_id, &grid).await;
        assert_eq!(closed["status"], "closed");
        assert_eq!(closed["rating"], Value::Null);
        assert_eq!(app.timeline(&ticket_id, &grid).await.last().map(String::as_str), Some("auto_closed"));
    })
    .await;
}
