//! Issue 17 on both databases: the worked examples of docs/reports.md for survey coverage and
//! recurring problems (hotspots, 每月一题), possible duplicates at filing and later, and the
//! rules of merging (并单).

use chrono::Duration;
use gridwhistle::workers::sweeper;
use serde_json::{Value, json};

use crate::helpers::{TestApp, cst, each_backend};

/// 和平社区第一网格, where the demo grid worker walks.
const P: (f64, f64) = (38.41, 112.705);
/// 和平社区第二网格 and 建设社区第一网格: the dispatcher's township, outside the grid worker's grid.
const HEPING_G02: (f64, f64) = (38.42, 112.718);
const JIANSHE_G01: (f64, f64) = (38.405, 112.740);
/// One ten-thousandth of a degree of latitude: 11.12 m.
const NORTH_11M: f64 = 0.0001;

/// Logs in as `username` (demo password or the test password) at the current clock time.
async fn token(app: &TestApp, username: &str) -> String {
    let demo = app.login(username, crate::helpers::DEMO_PASSWORD).await;
    if demo.status.as_u16() == 200 {
        return demo.body["access_token"].as_str().expect("token").to_owned();
    }
    app.token(username, "a long test password").await
}

async fn post(app: &TestApp, who: &str, path: &str, body: Value) -> Value {
    let token = token(app, who).await;
    app.post(path, &token, body).await.expect(200)
}

async fn get(app: &TestApp, who: &str, path: &str) -> Value {
    let token = token(app, who).await;
    app.get(path, &token).await.expect(200)
}

/// Files a ticket of category `code` at `(lat, lon)` as `who`; the answer (201).
async fn file_at(app: &TestApp, who: &str, code: &str, (lat, lon): (f64, f64)) -> Value {
    let token = token(app, who).await;
    let category = app.category(code, &token).await;
    let mut body = crate::helpers::ticket_body(&category);
    body["location"] = json!({"lat": lat, "lon": lon});
    app.post("/api/v1/tickets", &token, body).await.expect(201)
}

fn id(ticket: &Value) -> String {
    ticket["id"].as_str().expect("id").to_owned()
}

fn first_dispatch(ticket: &Value) -> String {
    ticket["dispatches"][0]["id"].as_str().unwrap_or_else(|| panic!("a dispatch in {ticket}")).to_owned()
}

/// 城管局 reports in and resolves the ticket's (auto-routed) dispatch.
async fn acknowledge(app: &TestApp, ticket: &Value) {
    post(app, "demo-dept", &format!("/api/v1/dispatches/{}/acknowledge", first_dispatch(ticket)), json!({})).await;
}

async fn resolve(app: &TestApp, ticket: &Value) {
    let path = format!("/api/v1/dispatches/{}/resolve", first_dispatch(ticket));
    post(app, "demo-dept", &path, json!({"reply": "已处理"})).await;
}

async fn rate(app: &TestApp, who: &str, ticket: &Value, score: i64) -> Value {
    post(app, who, &format!("/api/v1/tickets/{}/rating", id(ticket)), json!({"score": score})).await
}

fn close(value: &Value, expected: f64) -> bool {
    value.as_f64().is_some_and(|v| (v - expected).abs() < 1e-4)
}

fn by_name<'a>(report: &'a Value, key: &str, name: &str) -> &'a Value {
    report["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r[key] == name)
        .unwrap_or_else(|| panic!("row {name} in {report}"))
}

// ---- coverage -------------------------------------------------------------------------------

/// The worked example of docs/reports.md, "Survey coverage".
async fn coverage_data(app: &TestApp) {
    app.clock.set(cst("2026-11-30 22:00"));
    app.seed_demo().await;
    // T0: closed and rated 5 on 30 November, the day before the period.
    let t0 = file_at(app, "demo-grid", "environment", P).await;
    acknowledge(app, &t0).await;
    app.clock.set(cst("2026-11-30 22:20"));
    resolve(app, &t0).await;
    app.clock.set(cst("2026-11-30 23:00"));
    assert_eq!(rate(app, "demo-grid", &t0, 5).await["status"], "closed");

    app.clock.set(cst("2026-12-01 09:00"));
    let t1 = file_at(app, "demo-grid", "environment", P).await;
    let t2 = file_at(app, "demo-grid", "environment", (P.0 + 0.003, P.1)).await;
    let t4 = file_at(app, "demo-dispatcher", "environment", JIANSHE_G01).await;
    let t5 = file_at(app, "demo-dispatcher", "environment", (JIANSHE_G01.0 + NORTH_11M, JIANSHE_G01.1)).await;
    app.clock.set(cst("2026-12-01 09:30"));
    for t in [&t1, &t2, &t4] {
        acknowledge(app, t).await;
    }
    app.clock.set(cst("2026-12-01 10:00"));
    for t in [&t1, &t2, &t4] {
        resolve(app, t).await;
    }
    app.clock.set(cst("2026-12-01 10:30"));
    assert_eq!(rate(app, "demo-grid", &t1, 5).await["status"], "closed");
    assert_eq!(rate(app, "demo-grid", &t2, 2).await["status"], "in_progress");
    assert_eq!(rate(app, "demo-dispatcher", &t4, 1).await["status"], "in_progress");
    app.clock.set(cst("2026-12-01 11:00"));
    resolve(app, &t2).await;
    app.clock.set(cst("2026-12-01 11:30"));
    assert_eq!(rate(app, "demo-grid", &t2, 4).await["status"], "closed");
    app.clock.set(cst("2026-12-01 12:00"));
    let merged = post(
        app,
        "demo-dispatcher",
        &format!("/api/v1/tickets/{}/merge", id(&t5)),
        json!({"into": id(&t4), "reason": "同一处"}),
    )
    .await;
    assert_eq!(merged["status"], "merged");
    app.clock.set(cst("2026-12-02 09:00"));
}

#[tokio::test]
async fn coverage_worked_example() {
    each_backend(|app| async move {
        coverage_data(&app).await;
        let report = get(&app, "demo-supervisor", "/api/v1/reports/coverage?from=2026-12-01&to=2026-12-31").await;
        assert_eq!(report["min_rated"], 1);
        assert_eq!(report["communities"], 4, "{report}");
        assert_eq!(report["covered"], 2);
        assert!(close(&report["coverage_rate"], 0.5));

        let heping = by_name(&report, "community_name", "和平社区");
        assert_eq!(heping["township_name"], "新建路街道");
        assert_eq!((heping["closed"].as_i64(), heping["rated"].as_i64(), heping["satisfied"].as_i64()), (Some(2), Some(2), Some(2)));
        assert!(close(&heping["satisfaction_rate"], 1.0));
        assert_eq!([&heping["rated_5"], &heping["rated_4"], &heping["rated_3"], &heping["rated_2"], &heping["rated_1"]], [1, 1, 0, 0, 0]);
        assert_eq!(heping["covered"], true);
        assert_eq!(heping["merged"], 0);

        let jianshe = by_name(&report, "community_name", "建设社区");
        assert_eq!((jianshe["closed"].as_i64(), jianshe["rated"].as_i64(), jianshe["satisfied"].as_i64()), (Some(0), Some(1), Some(0)));
        assert!(close(&jianshe["satisfaction_rate"], 0.0));
        assert_eq!(jianshe["rated_1"], 1);
        assert_eq!(jianshe["merged"], 1);
        assert_eq!(jianshe["covered"], true);

        for idle in ["长征社区", "北关社区"] {
            let row = by_name(&report, "community_name", idle);
            assert_eq!((row["closed"].as_i64(), row["rated"].as_i64()), (Some(0), Some(0)), "{idle}");
            assert_eq!(row["satisfaction_rate"], Value::Null, "{idle}");
            assert_eq!(row["covered"], false, "{idle}");
        }
        let uncovered: Vec<&str> =
            report["uncovered"].as_array().expect("uncovered").iter().map(|u| u["name"].as_str().expect("name")).collect();
        assert_eq!(uncovered.len(), 2);
        assert!(uncovered.contains(&"长征社区") && uncovered.contains(&"北关社区"), "{uncovered:?}");

        let total = &report["total"];
        assert_eq!((total["closed"].as_i64(), total["rated"].as_i64(), total["satisfied"].as_i64()), (Some(2), Some(3), Some(2)));
        assert!(close(&total["satisfaction_rate"], 2.0 / 3.0));
        assert_eq!(total["merged"], 1);

        // The threshold: with two rated tickets needed, only 和平社区 is covered.
        let strict =
            get(&app, "demo-supervisor", "/api/v1/reports/coverage?from=2026-12-01&to=2026-12-31&min_rated=2").await;
        assert_eq!((strict["covered"].as_i64(), strict["uncovered"].as_array().map(Vec::len)), (Some(1), Some(3)));
        assert!(close(&strict["coverage_rate"], 0.25));
        assert_eq!(by_name(&strict, "community_name", "建设社区")["covered"], false);

        // The day before: T0 only.
        let before = get(&app, "demo-supervisor", "/api/v1/reports/coverage?from=2026-11-30&to=2026-11-30").await;
        let heping = by_name(&before, "community_name", "和平社区");
        assert_eq!((heping["closed"].as_i64(), heping["rated"].as_i64(), heping["rated_5"].as_i64()), (Some(1), Some(1), Some(1)));
        assert_eq!(before["covered"], 1);

        // The dispatcher of 新建路街道 sees its two communities, both covered.
        let street = get(&app, "demo-dispatcher", "/api/v1/reports/coverage?from=2026-12-01&to=2026-12-31").await;
        assert_eq!((street["communities"].as_i64(), street["covered"].as_i64()), (Some(2), Some(2)));
        assert!(close(&street["coverage_rate"], 1.0));

        // Narrowed to one community by unit_id.
        let admin = token(&app, "demo-admin").await;
        let jianshe_id = app.id_by_code("grid-units", "140902001002", &admin).await;
        let one = get(&app, "demo-supervisor", &format!("/api/v1/reports/coverage?from=2026-12-01&to=2026-12-31&unit_id={jianshe_id}")).await;
        assert_eq!((one["communities"].as_i64(), one["total"]["rated"].as_i64()), (Some(1), Some(1)));

        // CSV like the other reports.
        let supervisor = token(&app, "demo-supervisor").await;
        let csv = app
            .client
            .get(app.url("/api/v1/reports/coverage?from=2026-12-01&to=2026-12-31&format=csv"))
            .bearer_auth(&supervisor)
            .send()
            .await
            .expect("csv");
        assert_eq!(csv.status().as_u16(), 200);
        assert!(csv.headers()["content-type"].to_str().expect("type").starts_with("text/csv"));
        let text = csv.text().await.expect("text");
        let mut lines = text.trim_start_matches('\u{feff}').lines();
        assert_eq!(
            lines.next(),
            Some("社区编号,村（社区）,街道（乡镇）,办结关闭数,评价数,满意数,满意率,非常满意,满意,基本满意,不满意,非常不满意,并单数,是否覆盖")
        );
        let heping_line = text.lines().find(|l| l.contains(",和平社区,")).expect("和平社区 line");
        assert!(heping_line.ends_with(",和平社区,新建路街道,2,2,2,1,1,1,0,0,0,0,是"), "{heping_line}");
        assert!(text.lines().any(|l| l == ",合计,,2,3,2,0.6667,1,1,0,0,1,1,"), "{text}");

        // Who may not, and what is refused.
        let grid = token(&app, "demo-grid").await;
        app.get("/api/v1/reports/coverage?from=2026-12-01&to=2026-12-31", &grid).await.problem(403);
        let problem = app.get("/api/v1/reports/coverage?from=2026-12-31&to=2026-12-01", &supervisor).await.problem(422);
        assert!(problem["errors"].to_string().contains("to"), "{problem}");
        app.get("/api/v1/reports/coverage?from=2026-12-01&to=2026-12-31&min_rated=0", &supervisor).await.problem(422);
    })
    .await;
}

// ---- hotspots and topics --------------------------------------------------------------------

/// The worked example of docs/reports.md, "Recurring problems".
async fn hotspot_data(app: &TestApp) -> Value {
    app.clock.set(cst("2026-10-29 08:00"));
    app.seed_demo().await;
    app.clock.set(cst("2026-10-30 10:00"));
    file_at(app, "demo-grid", "environment", P).await; // before both periods
    app.clock.set(cst("2026-10-31 10:00"));
    file_at(app, "demo-grid", "environment", P).await; // P1: previous period, first day
    app.clock.set(cst("2026-11-15 10:00"));
    file_at(app, "demo-dispatcher", "property", JIANSHE_G01).await; // Q1
    app.clock.set(cst("2026-11-30 23:00"));
    file_at(app, "demo-grid", "environment", P).await; // P2: previous period, last day

    app.clock.set(cst("2026-12-01 09:00"));
    let a1 = file_at(app, "demo-grid", "environment", P).await;
    app.clock.set(cst("2026-12-01 09:30"));
    acknowledge(app, &a1).await;
    app.clock.set(cst("2026-12-01 11:00"));
    resolve(app, &a1).await;
    app.clock.set(cst("2026-12-01 11:30"));
    rate(app, "demo-grid", &a1, 5).await;
    app.clock.set(cst("2026-12-05 10:00"));
    file_at(app, "demo-dispatcher", "property", JIANSHE_G01).await; // B1
    app.clock.set(cst("2026-12-10 10:00"));
    let a2 = file_at(app, "demo-grid", "environment", (P.0 + 1.8 * NORTH_11M, P.1)).await; // 20 m from A1
    app.clock.set(cst("2026-12-15 10:00"));
    let a4 = file_at(app, "demo-grid", "environment", (P.0 + 0.9 * NORTH_11M, P.1)).await;
    let path = format!("/api/v1/tickets/{}/merge", id(&a4));
    post(app, "demo-dispatcher", &path, json!({"into": id(&a2), "reason": "重复上报"})).await;
    app.clock.set(cst("2026-12-31 23:00"));
    file_at(app, "demo-grid", "environment", (P.0 + 27.0 * NORTH_11M, P.1)).await; // A3: 300 m away
    app.clock.set(cst("2027-01-01 00:30"));
    file_at(app, "demo-grid", "environment", P).await; // after the period
    app.clock.set(cst("2027-01-02 09:00"));
    a2
}

#[tokio::test]
async fn hotspots_worked_example_and_the_months_topic() {
    each_backend(|app| async move {
        hotspot_data(&app).await;
        let report = get(&app, "demo-supervisor", "/api/v1/reports/hotspots?from=2026-12-01&to=2026-12-31").await;
        assert_eq!(
            (report["previous_from"].as_str(), report["previous_to"].as_str()),
            (Some("2026-10-31"), Some("2026-11-30"))
        );
        assert_eq!(report["group_by"], "community");
        assert!(close(&report["radius_m"], 50.0));
        let rows = report["rows"].as_array().expect("rows");
        assert_eq!(rows.len(), 2, "{report}");
        let top = &rows[0];
        assert_eq!((top["category_name"].as_str(), top["place_name"].as_str()), (Some("市容环境"), Some("和平社区")));
        assert_eq!(
            (top["count"].as_i64(), top["previous_count"].as_i64(), top["change"].as_i64()),
            (Some(3), Some(2), Some(1))
        );
        assert!(close(&top["change_rate"], 0.5));
        assert_eq!(top["repeated"], 2);
        assert!(close(&top["repeat_share"], 2.0 / 3.0));
        assert!(close(&top["resolve_hours_p50"], 2.0), "{top}");
        assert_eq!((top["rated"].as_i64(), top["satisfied"].as_i64()), (Some(1), Some(1)));
        assert!(close(&top["satisfaction_rate"], 1.0));
        assert_eq!(top["merged"], 1);
        assert_eq!(top["topic_id"], Value::Null);
        let second = &rows[1];
        assert_eq!((second["category_name"].as_str(), second["place_name"].as_str()), (Some("物业"), Some("建设社区")));
        assert_eq!(
            (second["count"].as_i64(), second["previous_count"].as_i64(), second["change"].as_i64()),
            (Some(1), Some(1), Some(0))
        );
        assert!(close(&second["change_rate"], 0.0));
        assert_eq!(second["repeated"], 0);
        assert_eq!(
            (second["resolve_hours_p50"].clone(), second["satisfaction_rate"].clone()),
            (Value::Null, Value::Null)
        );

        // November alone (30 days; the period before is 1–31 October): P1 and P2 now, nothing before but 30/31 Oct.
        let november = get(&app, "demo-supervisor", "/api/v1/reports/hotspots?from=2026-11-01&to=2026-11-30").await;
        let env = by_name(&november, "category_name", "市容环境");
        assert_eq!((env["count"].as_i64(), env["previous_count"].as_i64()), (Some(1), Some(2)), "{november}");

        // By grid, and the limit.
        let by_grid = get(
            &app,
            "demo-supervisor",
            "/api/v1/reports/hotspots?from=2026-12-01&to=2026-12-31&group_by=grid&limit=1",
        )
        .await;
        let rows = by_grid["rows"].as_array().expect("rows");
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0]["place_name"].as_str(), rows[0]["count"].as_i64()), (Some("和平社区第一网格"), Some(3)));

        // 每月一题: the supervisor picks 市容环境 at 和平社区 for December.
        let supervisor = token(&app, "demo-supervisor").await;
        let environment = app.category("environment", &supervisor).await;
        let heping = top["place_id"].as_str().expect("place").to_owned();
        let body =
            json!({"title": "和平社区垃圾清运", "category_id": environment, "unit_id": heping, "period": "2026-12"});
        let topic = app.post("/api/v1/topics", &supervisor, body.clone()).await.expect(201);
        assert_eq!(
            (topic["tickets"].as_i64(), topic["closed"].as_i64(), topic["rated"].as_i64()),
            (Some(3), Some(1), Some(1))
        );
        assert!(close(&topic["satisfaction_rate"], 1.0));
        assert_eq!(topic["merged"], 1);
        assert_eq!(topic["unit_name"], "和平社区");
        app.post("/api/v1/topics", &supervisor, body.clone()).await.problem(409);
        let mut bad = body.clone();
        bad["period"] = json!("2026-13");
        let problem = app.post("/api/v1/topics", &supervisor, bad).await.problem(422);
        assert!(problem["errors"].to_string().contains("period"), "{problem}");
        let dispatcher = token(&app, "demo-dispatcher").await;
        app.post("/api/v1/topics", &dispatcher, body).await.problem(403);

        let marked = get(&app, "demo-supervisor", "/api/v1/reports/hotspots?from=2026-12-01&to=2026-12-31").await;
        assert_eq!(marked["rows"][0]["topic_id"], topic["id"]);
        let listed = get(&app, "demo-dispatcher", "/api/v1/topics?period=2026-12").await;
        assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
        let topic_id = topic["id"].as_str().expect("id");
        let tickets = get(&app, "demo-supervisor", &format!("/api/v1/topics/{topic_id}/tickets")).await;
        assert_eq!(tickets["items"].as_array().map(Vec::len), Some(3), "{tickets}");
        assert!(tickets["items"].as_array().expect("items").iter().all(|t| t["status"] != "merged"));
        assert_eq!(get(&app, "demo-supervisor", &format!("/api/v1/topics/{topic_id}")).await["tickets"], 3);

        // CSV, and a group the report does not know.
        let csv = app
            .client
            .get(app.url("/api/v1/reports/hotspots?from=2026-12-01&to=2026-12-31&format=csv&lang=en"))
            .bearer_auth(&supervisor)
            .send()
            .await
            .expect("csv")
            .text()
            .await
            .expect("text");
        let second_line = csv.lines().nth(1).expect("a row");
        assert!(second_line.starts_with("市容环境,和平社区,3,2,1,0.5,2,0.6667,2,1,1,1,1,"), "{second_line}");
        let problem = app
            .get("/api/v1/reports/hotspots?from=2026-12-01&to=2026-12-31&group_by=county", &supervisor)
            .await
            .problem(422);
        assert!(problem["errors"].to_string().contains("group_by"), "{problem}");
        let grid = token(&app, "demo-grid").await;
        app.get("/api/v1/reports/hotspots?from=2026-12-01&to=2026-12-31", &grid).await.problem(403);
    })
    .await;
}

// ---- possible duplicates --------------------------------------------------------------------

fn numbers(list: &Value) -> Vec<String> {
    list.as_array().expect("list").iter().map(|c| c["number"].as_str().expect("number").to_owned()).collect()
}

#[tokio::test]
async fn possible_duplicates_inside_and_outside_radius_window_and_jurisdiction() {
    each_backend(|app| async move {
        app.clock.set(cst("2026-12-01 08:00"));
        app.seed_demo().await;
        app.clock.set(cst("2026-12-01 09:00"));
        let d1 = file_at(&app, "demo-grid", "environment", P).await;
        assert_eq!(d1["possible_duplicates"], json!([]));
        // 55.6 m north: D1 is offered, with its distance.
        let d2 = file_at(&app, "demo-grid", "environment", (P.0 + 5.0 * NORTH_11M, P.1)).await;
        assert_eq!(numbers(&d2["possible_duplicates"]), [d1["number"].as_str().expect("number")]);
        let candidate = &d2["possible_duplicates"][0];
        assert!((candidate["distance_m"].as_f64().expect("distance") - 55.6).abs() < 0.15, "{candidate}");
        assert_eq!(candidate["status"], "dispatched");
        // 166.8 m from D1 and 111.2 m from D2: outside the radius of both.
        let far = file_at(&app, "demo-grid", "environment", (P.0 + 15.0 * NORTH_11M, P.1)).await;
        assert_eq!(far["possible_duplicates"], json!([]));
        // Same place, another category: not a duplicate.
        let other = file_at(&app, "demo-grid", "property", P).await;
        assert_eq!(other["possible_duplicates"], json!([]));

        // Across a grid border: 52 m apart, but the second is in 和平社区第二网格.
        let west = file_at(&app, "demo-grid", "environment", (38.4200, 112.7124)).await;
        let east = file_at(&app, "demo-dispatcher", "environment", (38.4200, 112.7130)).await;
        assert_eq!(numbers(&east["possible_duplicates"]), [west["number"].as_str().expect("number")]);
        let grid_sees = get(&app, "demo-grid", &format!("/api/v1/tickets/{}/possible-duplicates", id(&west))).await;
        assert_eq!(grid_sees["items"], json!([]), "the grid worker does not see the other grid's ticket");
        let dispatcher_sees =
            get(&app, "demo-dispatcher", &format!("/api/v1/tickets/{}/possible-duplicates", id(&west))).await;
        assert_eq!(numbers(&dispatcher_sees["items"]), [east["number"].as_str().expect("number")]);

        // Eight days later at the same spot: outside the seven-day window.
        app.clock.set(cst("2026-12-09 09:30"));
        let late = file_at(&app, "demo-grid", "environment", P).await;
        assert_eq!(late["possible_duplicates"], json!([]));
        let of_d1 = get(&app, "demo-grid", &format!("/api/v1/tickets/{}/possible-duplicates", id(&d1))).await;
        assert_eq!(numbers(&of_d1["items"]), [d2["number"].as_str().expect("number")], "D2, not the later one");

        // A cancelled ticket is no candidate.
        post(&app, "demo-dispatcher", &format!("/api/v1/tickets/{}/cancel", id(&d2)), json!({"reason": "撤回"})).await;
        let of_d1 = get(&app, "demo-grid", &format!("/api/v1/tickets/{}/possible-duplicates", id(&d1))).await;
        assert_eq!(of_d1["items"], json!([]));

        // A ticket out of sight answers 404, like the ticket itself.
        let dept = token(&app, "demo-dept").await;
        let property_id = id(&other);
        app.get(&format!("/api/v1/tickets/{property_id}/possible-duplicates"), &dept).await.problem(404);
    })
    .await;
}

// ---- merging --------------------------------------------------------------------------------

#[tokio::test]
async fn merge_rules() {
    each_backend(|app| async move {
        app.clock.set(cst("2026-12-01 08:00"));
        app.seed_demo().await;
        app.clock.set(cst("2026-12-01 09:00"));
        let m1 = file_at(&app, "demo-grid", "environment", P).await;
        let m2 = file_at(&app, "demo-grid", "environment", (P.0 + NORTH_11M, P.1)).await;
        let m3 = file_at(&app, "demo-grid", "property", P).await;
        let m4 = file_at(&app, "demo-dispatcher", "environment", HEPING_G02).await;
        let m6 = file_at(&app, "demo-dispatcher", "environment", (HEPING_G02.0 + NORTH_11M, HEPING_G02.1)).await;
        let merge = |dup: &Value| format!("/api/v1/tickets/{}/merge", id(dup));
        let (dispatcher, grid, dept, supervisor) = (
            token(&app, "demo-dispatcher").await,
            token(&app, "demo-grid").await,
            token(&app, "demo-dept").await,
            token(&app, "demo-supervisor").await,
        );
        let into = |t: &Value| json!({"into": id(t), "reason": "同一问题重复上报"});

        // Permissions: only the dispatcher merges.
        for who in [&grid, &dept, &supervisor] {
            app.post(&merge(&m2), who, into(&m1)).await.problem(403);
        }
        // Not into itself; not into nothing; a reason is needed.
        let problem = app.post(&merge(&m2), &dispatcher, into(&m2)).await.problem(422);
        assert!(problem["errors"].to_string().contains("into"), "{problem}");
        let nowhere = json!({"into": uuid::Uuid::now_v7(), "reason": "重复"});
        let problem = app.post(&merge(&m2), &dispatcher, nowhere).await.problem(422);
        assert!(problem["errors"].to_string().contains("into"), "{problem}");
        app.post(&merge(&m2), &dispatcher, json!({"into": id(&m1), "reason": "  "})).await.problem(422);
        // Across categories only when said so.
        let problem = app.post(&merge(&m3), &dispatcher, into(&m4)).await.problem(422);
        assert!(problem["errors"].to_string().contains("across_categories"), "{problem}");
        assert_eq!(app.ticket(&id(&m3), &dispatcher).await["status"], "filed", "a refused merge changes nothing");

        // The grid worker cannot see M4 (another grid) until a ticket they filed lives on in it.
        app.get(&format!("/api/v1/tickets/{}", id(&m4)), &grid).await.problem(404);
        let body = json!({"into": id(&m4), "reason": "同一处，类别报错", "across_categories": true});
        let merged = app.post(&merge(&m3), &dispatcher, body).await.expect(200);
        assert_eq!(merged["status"], "merged");
        let seen = app.ticket(&id(&m4), &grid).await;
        assert_eq!(seen["number"], m4["number"]);
        let listed = app.get("/api/v1/tickets?limit=200", &grid).await.expect(200);
        assert!(listed["items"].as_array().expect("items").iter().any(|t| t["id"] == m4["id"]), "followed in the list");
        let m3_events = app.get(&format!("/api/v1/tickets/{}/events", id(&m3)), &dispatcher).await.expect(200);
        let merge_event =
            m3_events["items"].as_array().expect("items").iter().find(|e| e["kind"] == "merged").expect("merged");
        assert_eq!(merge_event["payload"]["into_number"], m4["number"]);
        assert_eq!(merge_event["payload"]["across_categories"], true);
        // Open311 clients see the duplicate closed, and where it lives on.
        let number = m3["number"].as_str().expect("number");
        let public =
            app.request(reqwest::Method::GET, &format!("/open311/v2/requests/{number}.json"), None, None).await;
        let public = public.expect(200);
        assert_eq!(public[0]["status"], "closed", "{public}");
        let notes = public[0]["status_notes"].as_str().unwrap_or_default();
        assert!(notes.contains(m4["number"].as_str().expect("number")), "status_notes names the survivor: {public}");

        // Not into a closed ticket.
        app.clock.set(cst("2026-12-01 09:30"));
        acknowledge(&app, &m1).await;
        resolve(&app, &m1).await;
        rate(&app, "demo-grid", &m1, 5).await;
        let dispatcher = token(&app, "demo-dispatcher").await;
        app.post(&merge(&m2), &dispatcher, into(&m1)).await.problem(409);

        // M2 into M4: merged, its work and clocks end, both timelines say so.
        let merged = app.post(&merge(&m2), &dispatcher, into(&m4)).await.expect(200);
        assert_eq!(merged["status"], "merged");
        assert!(
            merged["dispatches"].as_array().expect("dispatches").iter().all(|d| d["status"] == "cancelled"),
            "{merged}"
        );
        let clocks = merged["sla"].as_array().expect("clocks");
        assert!(
            !clocks.is_empty() && clocks.iter().all(|c| !c["stopped_at"].is_null() && c["state"] == "cancelled"),
            "{clocks:?}"
        );
        assert_eq!(app.timeline(&id(&m2), &dispatcher).await.last().map(String::as_str), Some("merged"));
        let survivor = app.timeline(&id(&m4), &dispatcher).await;
        assert_eq!(survivor.iter().filter(|k| *k == "duplicate_merged").count(), 2, "{survivor:?}");
        // Ended: not again, and nothing into it.
        app.post(&merge(&m2), &dispatcher, into(&m6)).await.problem(409);
        app.post(&merge(&m6), &dispatcher, into(&m2)).await.problem(409);

        // A week on, the sweeper fires M6's clocks, never M2's.
        app.clock.set(cst("2026-12-08 09:00"));
        sweeper::run_once(&app.ctx).await.expect("sweep");
        let dispatcher = token(&app, "demo-dispatcher").await;
        assert!(app.timeline(&id(&m6), &dispatcher).await.iter().any(|k| k == "sla_breached"));
        assert!(!app.timeline(&id(&m2), &dispatcher).await.iter().any(|k| k.starts_with("sla_")));

        // Reports count the merged ticket once: not due in the SLA report, not in the hotspots.
        let report =
            get(&app, "demo-supervisor", "/api/v1/reports/sla?from=2026-12-01&to=2026-12-31&group_by=category").await;
        let environment = app.category("environment", &dispatcher).await;
        let row = report["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .find(|r| r["group_id"] == environment.as_str())
            .expect("row");
        assert_eq!(row["due"], 3, "M1, M4 and M6; not the merged M2: {row}");
        let hot = get(&app, "demo-supervisor", "/api/v1/reports/hotspots?from=2026-12-01&to=2026-12-31").await;
        let env = by_name(&hot, "category_name", "市容环境");
        assert_eq!((env["count"].as_i64(), env["merged"].as_i64()), (Some(3), Some(1)), "{hot}");
    })
    .await;
}

// ---- the SLA report and merged tickets ------------------------------------------------------

/// The worked example of docs/reports.md, "Merged tickets in the SLA report": S2 is a duplicate
/// of S1 that 城管局 had reported in on, resolved and been given a 差评 for before the
/// dispatcher merged it. Every report counts the request once, in S1, and shows the merge.
#[tokio::test]
async fn the_sla_report_counts_a_merged_ticket_once_and_shows_the_merges() {
    each_backend(|app| async move {
        app.clock.set(cst("2026-12-01 08:00"));
        app.seed_demo().await;
        app.clock.set(cst("2026-12-01 09:00"));
        let s1 = file_at(&app, "demo-grid", "environment", P).await;
        let s2 = file_at(&app, "demo-grid", "environment", (P.0 + NORTH_11M, P.1)).await;
        app.clock.set(cst("2026-12-01 09:30"));
        acknowledge(&app, &s1).await;
        acknowledge(&app, &s2).await;
        app.clock.set(cst("2026-12-01 10:00"));
        resolve(&app, &s2).await;
        app.clock.set(cst("2026-12-01 10:30"));
        assert_eq!(rate(&app, "demo-grid", &s2, 2).await["status"], "in_progress");
        app.clock.set(cst("2026-12-01 11:00"));
        let path = format!("/api/v1/tickets/{}/merge", id(&s2));
        post(&app, "demo-dispatcher", &path, json!({"into": id(&s1), "reason": "同一处垃圾桶"})).await;
        app.clock.set(cst("2026-12-01 11:30"));
        resolve(&app, &s1).await;
        app.clock.set(cst("2026-12-01 12:00"));
        assert_eq!(rate(&app, "demo-grid", &s1, 5).await["status"], "closed");
        app.clock.set(cst("2026-12-02 09:00"));

        let admin = token(&app, "demo-admin").await;
        let city_management = app.id_by_code("departments", "XF-CGJ", &admin).await;
        let report =
            get(&app, "demo-supervisor", "/api/v1/reports/sla?from=2026-12-01&to=2026-12-31&group_by=department").await;
        let row = report["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .find(|r| r["group_id"] == city_management.as_str())
            .unwrap_or_else(|| panic!("城管局 in {report}"));
        for figures in [row, &report["total"]] {
            for (key, expected) in [
                ("dispatched", 1),
                ("acknowledged", 1),
                ("acknowledged_on_time", 1),
                ("due", 1),
                ("resolved", 1),
                ("resolved_on_time", 1),
                ("rated", 1),
                ("satisfied", 1),
                ("bad_ratings", 0),
                ("returns", 0),
                ("breaches", 0),
                ("merged", 1),
            ] {
                assert_eq!(figures[key], expected, "{key} in {figures}");
            }
            for (key, expected) in
                [("response_rate", 1.0), ("satisfaction_rate", 1.0), ("ack_hours_p50", 0.5), ("resolve_hours_p50", 2.5)]
            {
                assert!(close(&figures[key], expected), "{key} = {expected} in {figures}");
            }
        }
        let others: i64 =
            report["rows"].as_array().expect("rows").iter().map(|r| r["merged"].as_i64().expect("merged")).sum();
        assert_eq!(others, 1, "the merge counts in one row: {report}");

        // By category and by grid: in the survivor's.
        let by_category =
            get(&app, "demo-supervisor", "/api/v1/reports/sla?from=2026-12-01&to=2026-12-31&group_by=category").await;
        let environment = app.category("environment", &admin).await;
        let row = by_category["rows"].as_array().expect("rows").iter().find(|r| r["group_id"] == environment.as_str());
        assert_eq!(row.map(|r| (r["merged"].clone(), r["dispatched"].clone())), Some((json!(1), json!(1))));

        // The trend: 1 December holds the merge, 2 December nothing.
        let trend =
            get(&app, "demo-supervisor", "/api/v1/reports/trend?from=2026-12-01&to=2026-12-02&interval=day").await;
        let points = trend["points"].as_array().expect("points");
        let figures = |p: &Value| [&p["dispatched"], &p["rated"], &p["bad_ratings"], &p["merged"]].map(|v| v.as_i64());
        assert_eq!(figures(&points[0]), [Some(1), Some(1), Some(0), Some(1)], "{trend}");
        assert_eq!(figures(&points[1]), [Some(0), Some(0), Some(0), Some(0)], "{trend}");

        // CSV: the column after 延期数, in Chinese and English.
        let supervisor = token(&app, "demo-supervisor").await;
        for (lang, header) in [("zh", "延期数,并单数,"), ("en", "extensions,merged,")] {
            let text = app
                .client
                .get(app.url(&format!(
                    "/api/v1/reports/sla?from=2026-12-01&to=2026-12-31&group_by=department&format=csv&lang={lang}"
                )))
                .bearer_auth(&supervisor)
                .send()
                .await
                .expect("csv")
                .text()
                .await
                .expect("text");
            let lines: Vec<&str> = text.trim_start_matches('\u{feff}').lines().collect();
            assert!(lines[0].contains(header), "{}", lines[0]);
            let column = lines[0].split(',').position(|h| h == "并单数" || h == "merged").expect("column");
            let total = lines.last().expect("total").split(',').nth(column);
            assert_eq!(total, Some("1"), "{text}");
        }

        // Survey coverage and hotspots: S1 once, S2 as the merge.
        let coverage = get(&app, "demo-supervisor", "/api/v1/reports/coverage?from=2026-12-01&to=2026-12-31").await;
        let heping = by_name(&coverage, "community_name", "和平社区");
        assert_eq!([&heping["closed"], &heping["rated"], &heping["rated_2"], &heping["merged"]], [1, 1, 0, 1]);
        let hotspots = get(&app, "demo-supervisor", "/api/v1/reports/hotspots?from=2026-12-01&to=2026-12-31").await;
        let env = by_name(&hotspots, "category_name", "市容环境");
        assert_eq!([&env["count"], &env["rated"], &env["merged"]], [1, 1, 1], "{hotspots}");
    })
    .await;
}

// ---- the unit a report is narrowed to -------------------------------------------------------

/// Every report narrowed to a unit (`unit` or `unit_id`): 404 when there is no such unit, 403
/// when it lies outside the caller's jurisdiction (another township, another county, or a unit
/// above the caller's home), never an empty report.
#[tokio::test]
async fn reports_refuse_an_unknown_unit_and_one_outside_the_jurisdiction() {
    each_backend(|app| async move {
        app.clock.set(cst("2026-12-01 08:00"));
        app.seed_demo().await;
        app.clock.set(cst("2026-12-01 09:00"));
        file_at(&app, "demo-grid", "environment", P).await;
        let admin = token(&app, "demo-admin").await;
        let unit = |code: &'static str| {
            let (app, admin) = (&app, &admin);
            async move { app.id_by_code("grid-units", code, admin).await }
        };
        let (heping, xinjian, changzheng, xinfu, city) = (
            unit("140902001001").await,
            unit("140902001000").await,
            unit("140902002000").await,
            unit("140902").await,
            unit("140900").await,
        );
        let reports = |unit: &str| {
            let period = "from=2026-12-01&to=2026-12-31";
            [
                format!("/api/v1/reports/sla?{period}&group_by=department&unit={unit}"),
                format!("/api/v1/reports/sla?{period}&group_by=grid&unit_id={unit}"),
                format!("/api/v1/reports/trend?{period}&interval=week&unit={unit}"),
                format!("/api/v1/reports/trend?{period}&interval=month&unit_id={unit}"),
                format!("/api/v1/reports/coverage?{period}&unit_id={unit}"),
                format!("/api/v1/reports/hotspots?{period}&unit_id={unit}"),
            ]
        };
        let dispatcher = token(&app, "demo-dispatcher").await; // 新建路街道
        let supervisor = token(&app, "demo-supervisor").await; // 忻州市
        let yuanping = app.user_in(&admin, "yp-supervisor", "supervisor", "140981").await;

        let unknown = uuid::Uuid::now_v7().to_string();
        for path in reports(&unknown) {
            for who in [&dispatcher, &admin] {
                let problem = app.get(&path, who).await.problem(404);
                assert!(problem["detail"].as_str().unwrap_or_default().contains(&unknown), "{path}: {problem}");
            }
        }
        for (who, name, outside) in [
            (&dispatcher, "新建路街道's dispatcher", &changzheng),
            (&dispatcher, "新建路街道's dispatcher", &xinfu),
            (&yuanping, "原平市's supervisor", &heping),
            (&yuanping, "原平市's supervisor", &city),
        ] {
            for path in reports(outside) {
                let problem = app.get(&path, who).await.problem(403);
                assert!(problem["detail"].as_str().unwrap_or_default().contains("辖区"), "{name}, {path}: {problem}");
            }
        }
        for (who, inside) in
            [(&dispatcher, &heping), (&dispatcher, &xinjian), (&supervisor, &changzheng), (&admin, &xinfu)]
        {
            for path in reports(inside) {
                app.get(&path, who).await.expect(200);
            }
        }
        let mine = get(
            &app,
            "demo-dispatcher",
            &format!("/api/v1/reports/sla?from=2026-12-01&to=2026-12-31&group_by=grid&unit_id={heping}"),
        )
        .await;
        assert_eq!(mine["total"]["dispatched"], 1, "{mine}");
    })
    .await;
}

// ---- the demo data set ----------------------------------------------------------------------

/// `seed-demo` makes every new report show something on the first run, and twice is once.
#[tokio::test]
async fn the_demo_shows_each_report() {
    each_backend(|app| async move {
        gridwhistle::service::demo::seed(&app.ctx).await.expect("demo");
        gridwhistle::service::demo::seed(&app.ctx).await.expect("demo again");
        let today = app
            .clock
            .now_for_tests()
            .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8"))
            .date_naive();
        let range = format!("from={}&to={today}", today - Duration::days(30));

        let coverage = get(&app, "demo-supervisor", &format!("/api/v1/reports/coverage?{range}")).await;
        let covered = coverage["covered"].as_i64().expect("covered");
        assert!(covered >= 1 && covered < coverage["communities"].as_i64().expect("communities"), "{coverage}");
        assert!(coverage["total"]["merged"].as_i64() >= Some(1), "{coverage}");

        let hotspots = get(&app, "demo-supervisor", &format!("/api/v1/reports/hotspots?{range}&group_by=grid")).await;
        let top = &hotspots["rows"][0];
        assert!(top["count"].as_i64() >= Some(3) && top["repeated"].as_i64() >= Some(2), "{hotspots}");
        assert!(hotspots["rows"].as_array().expect("rows").iter().any(|r| r["merged"].as_i64() >= Some(1)));

        let sla = get(&app, "demo-supervisor", &format!("/api/v1/reports/sla?{range}&group_by=department")).await;
        assert_eq!(sla["total"]["merged"], 1, "the demo's merged pair: {}", sla["total"]);

        let month = format!("{}", today.format("%Y-%m"));
        let topics = get(&app, "demo-supervisor", &format!("/api/v1/topics?period={month}")).await;
        assert_eq!(topics["items"].as_array().map(Vec::len), Some(1), "{topics}");
        assert!(topics["items"][0]["tickets"].as_i64() >= Some(1));

        let mine = get(&app, "demo-grid", "/api/v1/tickets?status=merged").await;
        assert_eq!(mine["items"].as_array().map(Vec::len), Some(1), "one merged pair");
        let latest = get(&app, "demo-grid", "/api/v1/tickets?limit=1").await;
        let duplicates =
            get(&app, "demo-grid", &format!("/api/v1/tickets/{}/possible-duplicates", id(&latest["items"][0]))).await;
        assert!(
            !duplicates["items"].as_array().expect("items").is_empty(),
            "the unmerged near-duplicate has candidates"
        );
    })
    .await;
}

/// Two dispatchers' merges of the same pair in opposite directions at once: one wins, the other
/// is told the ticket has ended; never a deadlock, never both merged.
#[tokio::test]
async fn opposite_merges_at_once_leave_one_survivor() {
    each_backend(|app| async move {
        app.clock.set(cst("2026-12-01 08:00"));
        app.seed_demo().await;
        app.clock.set(cst("2026-12-01 09:00"));
        let a = file_at(&app, "demo-grid", "environment", P).await;
        let b = file_at(&app, "demo-grid", "environment", (P.0 + NORTH_11M, P.1)).await;
        let dispatcher = token(&app, "demo-dispatcher").await;
        let (a_id, b_id) = (id(&a), id(&b));
        let (path_a, path_b) = (format!("/api/v1/tickets/{a_id}/merge"), format!("/api/v1/tickets/{b_id}/merge"));
        let (one, other) = tokio::join!(
            app.post(&path_a, &dispatcher, json!({"into": b_id, "reason": "重复"})),
            app.post(&path_b, &dispatcher, json!({"into": a_id, "reason": "重复"})),
        );
        let mut codes = [one.status.as_u16(), other.status.as_u16()];
        codes.sort_unstable();
        assert_eq!(codes, [200, 409], "{:?} / {:?}", one.body, other.body);
        let statuses = [
            app.ticket(&a_id, &dispatcher).await["status"].clone(),
            app.ticket(&b_id, &dispatcher).await["status"].clone(),
        ];
        assert_eq!(statuses.iter().filter(|s| **s == "merged").count(), 1, "{statuses:?}");
    })
    .await;
}
