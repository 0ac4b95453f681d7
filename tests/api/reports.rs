//! SLA reports on a small data set whose every figure was worked out by hand (see the
//! comments), on both databases; CSV; scoping.

use gridwhistle::workers::sweeper;
use serde_json::{Value, json};

use crate::helpers::{TestApp, cst, each_backend};

/// Logs in as `username` (demo password or the test password) at the current clock time.
async fn as_user(app: &TestApp, username: &str) -> String {
    let demo = app.login(username, crate::helpers::DEMO_PASSWORD).await;
    if demo.status.as_u16() == 200 {
        return demo.body["access_token"].as_str().expect("token").to_owned();
    }
    app.token(username, "a long test password").await
}

async fn post(app: &TestApp, who: &str, path: &str, body: Value) -> Value {
    let token = as_user(app, who).await;
    app.post(path, &token, body).await.expect(200)
}

/// The data set, on 1–2 December 2026 (Tue–Wed), Beijing time:
/// T1 市容环境 (normal → 城管局) filed 1 Dec 09:00, reported in 09:30, resolved 10:00, rated 5.
/// T2 安全隐患 (urgent → 应急局 + 住建局 co-handling) filed 09:00; 应急局 reports in 10:00 (late:
///    due 09:30), resolves 11:00, rated 2 (差评) at 11:30, resolves again 15:00, rated 4 at 15:30.
///    住建局 never reports in. Resolve deadline 2 Dec 09:00 (24 h).
/// T3 治安 (urgent → 公安分局) filed 09:00; nobody acts. Resolve deadline 2 Dec 09:00.
/// T4 其他 filed 09:00, dispatched to 城管局 09:10, returned 09:20, cancelled 09:30.
/// T5 市容环境 filed 30 Nov 23:30 (outside the period), reported in 1 Dec 09:00.
/// The sweeper runs at 2 Dec 12:00. T6 市容环境 filed 2 Dec 23:50 (inside, just).
/// The report is read at 3 Dec 00:00.
async fn build(app: &TestApp) -> serde_json::Map<String, Value> {
    app.clock.set(cst("2026-11-30 23:00"));
    app.seed_demo().await;
    let admin = as_user(app, "demo-admin").await;
    for (name, department) in [("yjj", "XF-YJJ"), ("gaj", "XF-GAJ")] {
        app.user_in(&admin, name, "department_staff", department).await;
    }
    let mut ids = serde_json::Map::new();
    for code in ["environment", "safety_hazard", "public_security", "other"] {
        ids.insert(code.into(), json!(app.category(code, &admin).await));
    }
    for code in ["XF-CGJ", "XF-YJJ", "XF-ZJJ", "XF-GAJ", "XF-MZJ"] {
        ids.insert(code.into(), json!(app.id_by_code("departments", code, &admin).await));
    }
    let file = |category: &'static str| {
        let ids = ids.clone();
        async move {
            let token = as_user(app, "demo-grid").await;
            app.file(&token, ids[category].as_str().expect("id")).await
        }
    };
    let dispatch_of = |ticket: &Value, code: &str| {
        let department = ids[code].as_str().expect("id").to_owned();
        ticket["dispatches"]
            .as_array()
            .expect("dispatches")
            .iter()
            .find(|d| d["department_id"] == department.as_str())
            .expect("dispatch")["id"]
            .as_str()
            .expect("id")
            .to_owned()
    };

    app.clock.set(cst("2026-11-30 23:30"));
    let t5 = file("environment").await;
    app.clock.set(cst("2026-12-01 09:00"));
    let t1 = file("environment").await;
    let t2 = file("safety_hazard").await;
    let t3 = file("public_security").await;
    let t4 = file("other").await;
    post(app, "demo-dept", &format!("/api/v1/dispatches/{}/acknowledge", dispatch_of(&t5, "XF-CGJ")), json!({})).await;

    app.clock.set(cst("2026-12-01 09:10"));
    let t4_id = t4["id"].as_str().expect("id");
    let t4 = post(
        app,
        "demo-dispatcher",
        &format!("/api/v1/tickets/{t4_id}/dispatch"),
        json!({"primary_department_id": ids["XF-CGJ"]}),
    )
    .await;
    app.clock.set(cst("2026-12-01 09:20"));
    post(
        app,
        "demo-dept",
        &format!("/api/v1/dispatches/{}/return", dispatch_of(&t4, "XF-CGJ")),
        json!({"reason": "不属于"}),
    )
    .await;
    app.clock.set(cst("2026-12-01 09:30"));
    post(app, "demo-dispatcher", &format!("/api/v1/tickets/{t4_id}/cancel"), json!({"reason": "重复"})).await;
    let t1_dispatch = dispatch_of(&t1, "XF-CGJ");
    post(app, "demo-dept", &format!("/api/v1/dispatches/{t1_dispatch}/acknowledge"), json!({})).await;
    app.clock.set(cst("2026-12-01 10:00"));
    post(app, "demo-dept", &format!("/api/v1/dispatches/{t1_dispatch}/resolve"), json!({"reply": "已清理"})).await;
    let t2_dispatch = dispatch_of(&t2, "XF-YJJ");
    post(app, "yjj", &format!("/api/v1/dispatches/{t2_dispatch}/acknowledge"), json!({})).await;
    app.clock.set(cst("2026-12-01 10:10"));
    post(app, "demo-grid", &format!("/api/v1/tickets/{}/rating", t1["id"].as_str().expect("id")), json!({"score": 5}))
        .await;
    app.clock.set(cst("2026-12-01 11:00"));
    post(app, "yjj", &format!("/api/v1/dispatches/{t2_dispatch}/resolve"), json!({"reply": "已处置"})).await;
    app.clock.set(cst("2026-12-01 11:30"));
    let t2_id = t2["id"].as_str().expect("id");
    post(app, "demo-grid", &format!("/api/v1/tickets/{t2_id}/rating"), json!({"score": 2})).await;
    app.clock.set(cst("2026-12-01 15:00"));
    post(app, "yjj", &format!("/api/v1/dispatches/{t2_dispatch}/resolve"), json!({"reply": "已整改"})).await;
    app.clock.set(cst("2026-12-01 15:30"));
    post(app, "demo-grid", &format!("/api/v1/tickets/{t2_id}/rating"), json!({"score": 4})).await;

    app.clock.set(cst("2026-12-02 12:00"));
    sweeper::run_once(&app.ctx).await.expect("sweep");
    app.clock.set(cst("2026-12-02 23:50"));
    file("environment").await;
    app.clock.set(cst("2026-12-03 00:00"));
    ids.insert("t3".into(), t3["id"].clone());
    ids
}

fn row<'a>(report: &'a Value, group: &str) -> &'a Value {
    report["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["group_id"] == group)
        .unwrap_or_else(|| panic!("row {group}"))
}

fn close(value: &Value, expected: f64) -> bool {
    value.as_f64().is_some_and(|v| (v - expected).abs() < 1e-9)
}

#[tokio::test]
async fn department_report_matches_the_hand_count() {
    each_backend(|app| async move {
        let ids = build(&app).await;
        let supervisor = as_user(&app, "demo-supervisor").await;
        let report = app
            .get("/api/v1/reports/sla?from=2026-12-01&to=2026-12-02&group_by=department", &supervisor)
            .await
            .expect(200);
        assert_eq!(report["from"], "2026-12-01");
        assert_eq!(report["group_by"], "department");

        // 城管局: dispatched T1, T4, T6 (T5's dispatch was sent on 30 Nov). T1 reported in on
        // time; T4 was returned. No resolve deadline of its tickets falls in the period. T1's
        // rating 5. One breach: T5's first-contact clock (due 1 Dec 23:30, fired 2 Dec 12:00);
        // T5 is still overdue. Score: (0.2·⅓ + 0.4·1) / 0.6.
        let cgj = row(&report, ids["XF-CGJ"].as_str().expect("id"));
        let expect =
            |row: &Value, key: &str, value: Value| assert_eq!(row[key], value, "{key} of {}", row["group_name"]);
        for (key, value) in [
            ("dispatched", json!(3)),
            ("acknowledged", json!(1)),
            ("acknowledged_on_time", json!(1)),
            ("returns", json!(1)),
            ("due", json!(0)),
            ("resolved", json!(0)),
            ("resolution_rate", Value::Null),
            ("rated", json!(1)),
            ("satisfied", json!(1)),
            ("bad_ratings", json!(0)),
            ("satisfaction_rate", json!(1.0)),
            ("breaches", json!(1)),
            ("supervision_orders", json!(0)),
            ("overdue", json!(1)),
            ("ack_hours_p50", json!(0.5)),
            ("ack_hours_p90", json!(0.5)),
            ("resolve_hours_p50", json!(1.0)),
            ("resolve_hours_p90", json!(1.0)),
        ] {
            expect(cgj, key, value);
        }
        assert!(close(&cgj["response_rate"], 1.0 / 3.0));
        assert!(close(&cgj["score"], (0.2 / 3.0 + 0.4) / 0.6));

        // 应急局: T2 sent, reported in an hour after dispatch (late). T2 due 2 Dec 09:00 and
        // resolved (again) at 15:00 on 1 Dec: on time. Ratings 2 and 4. Working hours to
        // resolve: 09:00–12:00 and 14:30–15:00 = 3.5. Score: 0.2·0 + 0.4·1 + 0.4·½ = 0.6.
        let yjj = row(&report, ids["XF-YJJ"].as_str().expect("id"));
        for (key, value) in [
            ("dispatched", json!(1)),
            ("acknowledged", json!(1)),
            ("acknowledged_on_time", json!(0)),
            ("response_rate", json!(0.0)),
            ("due", json!(1)),
            ("resolved", json!(1)),
            ("resolved_on_time", json!(1)),
            ("resolution_rate", json!(1.0)),
            ("rated", json!(2)),
            ("satisfied", json!(1)),
            ("bad_ratings", json!(1)),
            ("satisfaction_rate", json!(0.5)),
            ("breaches", json!(0)),
            ("overdue", json!(0)),
            ("ack_hours_p50", json!(1.0)),
            ("resolve_hours_p50", json!(3.5)),
        ] {
            expect(yjj, key, value);
        }
        assert!(close(&yjj["score"], 0.6));

        // 住建局: summoned on T2, never reported in; T2 closed before the sweep, so no breach.
        let zjj = row(&report, ids["XF-ZJJ"].as_str().expect("id"));
        for (key, value) in [
            ("dispatched", json!(1)),
            ("acknowledged", json!(0)),
            ("response_rate", json!(0.0)),
            ("breaches", json!(0)),
            ("score", json!(0.0)),
        ] {
            expect(zjj, key, value);
        }

        // 公安分局: T3 untouched — its acknowledge, first-contact and resolve clocks all breached
        // by 2 Dec 12:00; the resolve breach opened a 督办 order; T3 is overdue.
        let gaj = row(&report, ids["XF-GAJ"].as_str().expect("id"));
        for (key, value) in [
            ("dispatched", json!(1)),
            ("acknowledged", json!(0)),
            ("response_rate", json!(0.0)),
            ("due", json!(1)),
            ("resolved", json!(0)),
            ("resolution_rate", json!(0.0)),
            ("rated", json!(0)),
            ("satisfaction_rate", Value::Null),
            ("breaches", json!(3)),
            ("supervision_orders", json!(1)),
            ("overdue", json!(1)),
            ("score", json!(0.0)),
        ] {
            expect(gaj, key, value);
        }

        // 民政局 had nothing to do: a row of zeros, every rate null (never NaN).
        let idle = row(&report, ids["XF-MZJ"].as_str().expect("id"));
        for key in ["dispatched", "due", "rated", "breaches", "overdue"] {
            expect(idle, key, json!(0));
        }
        for key in ["response_rate", "resolution_rate", "satisfaction_rate", "score", "ack_hours_p50"] {
            expect(idle, key, Value::Null);
        }

        // Totals: 6 dispatches, 2 reported in, 1 on time; 2 due, 1 resolved; 3 ratings, 2
        // satisfied; 4 breaches; 1 order; 2 tickets overdue (T3, T5). Percentiles over all:
        // to report in 0.5 h and 1 h → p50 0.5, p90 1; to resolve 1 h and 3.5 h → p50 1, p90 3.5.
        let total = &report["total"];
        for (key, value) in [
            ("dispatched", json!(6)),
            ("acknowledged", json!(2)),
            ("acknowledged_on_time", json!(1)),
            ("returns", json!(1)),
            ("due", json!(2)),
            ("resolved", json!(1)),
            ("resolved_on_time", json!(1)),
            ("resolution_rate", json!(0.5)),
            ("rated", json!(3)),
            ("satisfied", json!(2)),
            ("bad_ratings", json!(1)),
            ("breaches", json!(4)),
            ("supervision_orders", json!(1)),
            ("overdue", json!(2)),
            ("ack_hours_p50", json!(0.5)),
            ("ack_hours_p90", json!(1.0)),
            ("resolve_hours_p50", json!(1.0)),
            ("resolve_hours_p90", json!(3.5)),
        ] {
            expect(total, key, value);
        }
        assert!(close(&total["response_rate"], 1.0 / 6.0));
        assert!(close(&total["satisfaction_rate"], 2.0 / 3.0));
        assert!(close(&total["score"], 0.2 / 6.0 + 0.4 * 0.5 + 0.4 * 2.0 / 3.0));

        // The period is in Beijing time: 1 December alone leaves out T6 (2 Dec 23:50) but
        // keeps T1–T4; 2 December alone holds only T6 among dispatches.
        let first_day = app
            .get("/api/v1/reports/sla?from=2026-12-01&to=2026-12-01&group_by=department", &supervisor)
            .await
            .expect(200);
        assert_eq!(first_day["total"]["dispatched"], 5);
        let second_day = app
            .get("/api/v1/reports/sla?from=2026-12-02&to=2026-12-02&group_by=department", &supervisor)
            .await
            .expect(200);
        assert_eq!(second_day["total"]["dispatched"], 1);
        assert_eq!(second_day["total"]["breaches"], 4, "breaches count when they fired");
    })
    .await;
}

#[tokio::test]
async fn other_groupings_csv_and_scope() {
    each_backend(|app| async move {
        let ids = build(&app).await;
        let supervisor = as_user(&app, "demo-supervisor").await;
        let by_category = app
            .get("/api/v1/reports/sla?from=2026-12-01&to=2026-12-02&group_by=category", &supervisor)
            .await
            .expect(200);
        let environment = row(&by_category, ids["environment"].as_str().expect("id"));
        assert_eq!(environment["dispatched"], 2, "T1 and T6");
        assert_eq!(environment["rated"], 1);
        let security = row(&by_category, ids["public_security"].as_str().expect("id"));
        assert_eq!(security["breaches"], 3);
        let street = app.id_by_code("grid-units", "140902001000", &supervisor).await;
        let by_township = app
            .get("/api/v1/reports/sla?from=2026-12-01&to=2026-12-02&group_by=township", &supervisor)
            .await
            .expect(200);
        assert_eq!(row(&by_township, &street)["dispatched"], 6, "every ticket is in 新建路街道");
        let by_county =
            app.get("/api/v1/reports/sla?from=2026-12-01&to=2026-12-02&group_by=county", &supervisor).await.expect(200);
        let county = app.id_by_code("grid-units", "140902", &supervisor).await;
        assert_eq!(row(&by_county, &county)["breaches"], 4);
        let only = app
            .get(
                &format!(
                    "/api/v1/reports/sla?from=2026-12-01&to=2026-12-02&group_by=grid&category={}",
                    ids["public_security"].as_str().expect("id")
                ),
                &supervisor,
            )
            .await
            .expect(200);
        assert_eq!(only["total"]["dispatched"], 1);

        // CSV: BOM, Chinese or English headers, one line per group plus the total.
        let csv = app
            .client
            .get(app.url("/api/v1/reports/sla?from=2026-12-01&to=2026-12-02&group_by=department&format=csv"))
            .bearer_auth(&supervisor)
            .send()
            .await
            .expect("sent");
        assert!(csv.headers()["content-type"].to_str().expect("ct").starts_with("text/csv"));
        let text = csv.text().await.expect("text");
        assert!(text.starts_with('\u{feff}'), "BOM for Excel");
        let lines: Vec<&str> = text.trim_start_matches('\u{feff}').lines().collect();
        assert!(lines[0].starts_with("分组编号,分组,派单数,签收数,按时签收数,响应率"), "{}", lines[0]);
        assert_eq!(lines.len(), 1 + 11 + 1, "header + 11 departments + total");
        assert!(lines.last().is_some_and(|l| l.contains("合计") && l.contains(",6,")), "{:?}", lines.last());
        // Rates to at most 4 decimals, hours and scores to at most 2: no float noise.
        let header: Vec<&str> = lines[0].split(',').collect();
        for line in &lines[1..] {
            for (name, cell) in header.iter().zip(line.split(',')) {
                let decimals = cell.split_once('.').map_or(0, |(_, d)| d.len());
                let most = if name.ends_with('率') { 4 } else { 2 };
                assert!(decimals <= most, "{name} = {cell} in {line}");
            }
        }
        assert!(lines.last().is_some_and(|l| l.contains(",0.1667,")), "⅙ as 0.1667: {:?}", lines.last());
        let english = app
            .client
            .get(app.url("/api/v1/reports/sla?from=2026-12-01&to=2026-12-02&group_by=department&lang=en"))
            .header("accept", "text/csv")
            .bearer_auth(&supervisor)
            .send()
            .await
            .expect("sent")
            .text()
            .await
            .expect("text");
        assert!(
            english
                .trim_start_matches('\u{feff}')
                .starts_with("group_id,group_name,dispatched,acknowledged,acknowledged_on_time,response_rate")
        );

        // Scope: a supervisor of another county sees none of it; grid workers get no reports.
        let admin = as_user(&app, "demo-admin").await;
        let elsewhere = app.user_in(&admin, "yp-supervisor", "supervisor", "140981").await;
        let theirs = app
            .get("/api/v1/reports/sla?from=2026-12-01&to=2026-12-02&group_by=department", &elsewhere)
            .await
            .expect(200);
        assert_eq!(theirs["total"]["dispatched"], 0);
        assert_eq!(theirs["total"]["breaches"], 0);
        let grid = as_user(&app, "demo-grid").await;
        app.get("/api/v1/reports/sla?from=2026-12-01&to=2026-12-02&group_by=department", &grid).await.problem(403);
        app.get("/api/v1/reports/sla?from=2026-12-02&to=2026-12-01&group_by=department", &supervisor)
            .await
            .problem(422);
        app.get("/api/v1/reports/sla?from=2026-12-01&to=2026-12-02&group_by=planet", &supervisor).await.problem(422);

        // The overdue list, latest first: T3's acknowledge and first contact, T5's first
        // contact (due 1 Dec 23:30), T3's resolve (due 2 Dec 09:00).
        let overdue = app.get("/api/v1/reports/overdue", &supervisor).await.expect(200);
        let items = overdue["items"].as_array().expect("items");
        let t3 = ids["t3"].as_str().expect("id");
        let clocks: Vec<(&str, &str)> =
            items.iter().map(|i| (i["clock"].as_str().unwrap_or(""), i["state"].as_str().unwrap_or(""))).collect();
        assert_eq!(
            clocks,
            [
                ("acknowledge", "breached"),
                ("first_contact", "breached"),
                ("first_contact", "breached"),
                ("resolve", "breached")
            ]
        );
        for i in [0, 1, 3] {
            assert_eq!(items[i]["ticket_id"], t3);
            assert_eq!(items[i]["department_name"], "忻州市公安局忻府分局");
        }
        assert_eq!(items[2]["department_name"], "忻府区城市管理局");
        assert_eq!(
            items[0]["late_seconds"],
            86_400 + 14 * 3600 + 30 * 60,
            "T3 acknowledge: due 1 Dec 09:30, read 3 Dec 00:00"
        );
        assert_eq!(items[0]["supervisors"], json!(["忻州市 督办员 陈刚"]), "no county supervisor: the city's");
        let theirs = app.get("/api/v1/reports/overdue", &elsewhere).await.expect(200);
        assert_eq!(theirs["items"].as_array().map(Vec::len), Some(0));
        // As CSV: Chinese labels, Beijing time to the second.
        let csv = app
            .client
            .get(app.url("/api/v1/reports/overdue?format=csv"))
            .bearer_auth(&supervisor)
            .send()
            .await
            .expect("sent")
            .text()
            .await
            .expect("text");
        let lines: Vec<&str> = csv.trim_start_matches('\u{feff}').lines().collect();
        assert_eq!(lines[0], "工单编号,时限,截止时间(北京时间),状态,超时秒数,责任部门,督办人");
        assert!(lines[1].contains(",签收报到,2026-12-01 09:30:00,已超时,"), "{}", lines[1]);

        // The trend: the same definitions per day.
        let trend =
            app.get("/api/v1/reports/trend?from=2026-12-01&to=2026-12-02&interval=day", &supervisor).await.expect(200);
        let points = trend["points"].as_array().expect("points");
        assert_eq!(points.len(), 2);
        assert_eq!(points[0]["dispatched"], 5);
        assert_eq!(points[1]["dispatched"], 1);
    })
    .await;
}

/// A refused 退单 is still a return: the dispatch goes back to pending, but it was returned.
#[tokio::test]
async fn refused_returns_still_count_as_returns() {
    each_backend(|app| async move {
        app.clock.set(cst("2026-12-01 09:00"));
        app.seed_demo().await;
        let admin = as_user(&app, "demo-admin").await;
        let grid = as_user(&app, "demo-grid").await;
        let ticket = app.file(&grid, &app.category("environment", &admin).await).await;
        let dispatch = app.dispatch_of(&ticket, "XF-CGJ", &admin).await;
        app.clock.set(cst("2026-12-01 09:10"));
        post(&app, "demo-dept", &format!("/api/v1/dispatches/{dispatch}/return"), json!({"reason": "不属于"})).await;
        app.clock.set(cst("2026-12-01 09:20"));
        post(
            &app,
            "demo-dispatcher",
            &format!("/api/v1/dispatches/{dispatch}/reject-return"),
            json!({"reason": "属于"}),
        )
        .await;
        let supervisor = as_user(&app, "demo-supervisor").await;
        let report = app
            .get("/api/v1/reports/sla?from=2026-12-01&to=2026-12-01&group_by=department", &supervisor)
            .await
            .expect(200);
        let cgj = app.id_by_code("departments", "XF-CGJ", &admin).await;
        assert_eq!(row(&report, &cgj)["returns"], 1, "the refused return counts");
        assert_eq!(report["total"]["returns"], 1);
    })
    .await;
}

/// Names a user can choose go into CSV cells neutralised (OWASP: a leading `'`), so Excel
/// shows them as text instead of running them; numbers stay numbers.
#[tokio::test]
async fn csv_cells_cannot_carry_formulas() {
    each_backend(|app| async move {
        app.clock.set(cst("2026-12-01 09:00"));
        app.seed_demo().await;
        let admin = as_user(&app, "demo-admin").await;
        let county = app.id_by_code("grid-units", "140902", &admin).await;
        let formula = r#"=HYPERLINK("http://x.example","click")"#;
        for (code, name) in [("XF-EVIL1", formula), ("XF-EVIL2", "@SUM(1+1)"), ("XF-EVIL3", "-2+3"), ("XF-EVIL4", "+1")]
        {
            let body =
                json!({"code": code, "name": name, "unit_id": county, "email": "evil@x.example", "active": true});
            app.post("/api/v1/departments", &admin, body).await.expect(201);
        }
        let supervisor = as_user(&app, "demo-supervisor").await;
        let csv = app
            .client
            .get(app.url("/api/v1/reports/sla?from=2026-12-01&to=2026-12-01&group_by=department&format=csv&lang=en"))
            .bearer_auth(&supervisor)
            .send()
            .await
            .expect("sent")
            .text()
            .await
            .expect("text");
        assert!(csv.contains(r#","'=HYPERLINK(""http://x.example"",""click"")","#), "{csv}");
        assert!(csv.contains(",'@SUM(1+1),"), "{csv}");
        assert!(csv.contains(",'-2+3,"), "{csv}");
        assert!(csv.contains(",'+1,"), "{csv}");
        for line in csv.trim_start_matches('\u{feff}').lines().skip(1) {
            for cell in line.split(',') {
                assert!(!cell.starts_with(['=', '+', '-', '@', '\t', '\r']), "a live cell {cell:?} in {line}");
                assert!(!cell.starts_with("\"=") && !cell.starts_with("\"@"), "a live quoted cell {cell:?} in {line}");
            }
        }
    })
    .await;
}
