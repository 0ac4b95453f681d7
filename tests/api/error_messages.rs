//! Errors a grid worker on a phone can act on: said in Chinese (English on request), naming
//! the field, never the parser's words; blank form inputs are absent; a point is checked
//! against the grid it is filed in; a caller who may not act learns nothing about the body.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, each_backend, ticket_body};

/// A request with an `Accept-Language` header, answered as (status, content-language, body).
async fn said_in(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
    accept_language: Option<&str>,
) -> (u16, String, Value) {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(language) = accept_language {
        request = request.header("accept-language", language);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("sent");
    let status = response.status().as_u16();
    let language =
        response.headers().get("content-language").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    (status, language, response.json().await.unwrap_or(Value::Null))
}

fn has_chinese(text: &str) -> bool {
    text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
}

/// No trace of serde or the database driver in what a client is shown.
fn assert_no_parser_words(problem: &Value) {
    let text = problem.to_string();
    for word in ["invalid type", "expected f64", "line 1", "column", "serde", "sqlx", "missing field", "unknown field"]
    {
        assert!(!text.contains(word), "`{word}` shown to the client: {text}");
    }
}

#[tokio::test]
async fn problems_are_said_in_chinese_by_default_and_in_english_on_request() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let environment = app.category("environment", &demo.admin).await;
        let mut body = ticket_body(&environment);
        body["location"]["lat"] = json!("38.41");
        body["title"] = json!(5);

        let (status, language, zh) =
            said_in(&app, Method::POST, "/api/v1/tickets", &demo.grid, Some(body.clone()), None).await;
        assert_eq!(status, 422, "{zh}");
        assert_eq!(language, "zh");
        assert_eq!(zh["errors"]["location.lat"], "应为数字", "{zh}");
        let detail = zh["detail"].as_str().expect("detail");
        assert!(detail.contains("location.lat") && detail.contains("应为数字"), "{detail}");
        assert_no_parser_words(&zh);

        let (status, language, en) =
            said_in(&app, Method::POST, "/api/v1/tickets", &demo.grid, Some(body.clone()), Some("en-GB,en;q=0.9"))
                .await;
        assert_eq!((status, language.as_str()), (422, "en"));
        assert_eq!(en["errors"]["location.lat"], "must be a number", "{en}");
        assert_eq!(en["type"], zh["type"], "the machine-readable parts do not change with the language");
        assert_eq!(en["title"], zh["title"]);
        assert_no_parser_words(&en);

        // The best of the two languages by q-value; Chinese when neither is named.
        for (header, expected) in [
            ("zh-CN,zh;q=0.9,en;q=0.8", "zh"),
            ("en;q=0.5, zh;q=0.9", "zh"),
            ("zh;q=0.3, en", "en"),
            ("fr, de;q=0.5", "zh"),
        ] {
            let (_, language, _) =
                said_in(&app, Method::POST, "/api/v1/tickets", &demo.grid, Some(body.clone()), Some(header)).await;
            assert_eq!(language, expected, "Accept-Language: {header}");
        }

        // A missing field is named by its full path; a blank title is "must not be empty",
        // together with the form's other problems.
        let mut missing = ticket_body(&environment);
        missing["location"] = json!({"lat": 38.41});
        let (_, _, problem) = said_in(&app, Method::POST, "/api/v1/tickets", &demo.grid, Some(missing), None).await;
        assert_eq!(problem["errors"]["location.lon"], "必填", "{problem}");
        let mut blank = ticket_body(&environment);
        blank["title"] = json!("  ");
        blank["resident"]["phone"] = json!("call me");
        let (_, _, problem) = said_in(&app, Method::POST, "/api/v1/tickets", &demo.grid, Some(blank), None).await;
        assert_eq!(problem["errors"]["title"], "不能为空", "{problem}");
        assert!(problem["errors"]["resident.phone"].as_str().is_some_and(has_chinese), "{problem}");

        // Not only validation: a refusal, a missing ticket, an illegal transition.
        let missing_ticket = "/api/v1/tickets/0190a000-0000-7000-8000-000000000000";
        let (status, _, zh) = said_in(&app, Method::GET, missing_ticket, &demo.grid, None, None).await;
        assert_eq!(status, 404);
        assert_eq!(zh["detail"], "未找到该工单");
        let (_, _, en) = said_in(&app, Method::GET, missing_ticket, &demo.grid, None, Some("en")).await;
        assert_eq!(en["detail"], "ticket not found");

        let (status, _, zh) =
            said_in(&app, Method::POST, "/api/v1/tickets", &demo.dept, Some(ticket_body(&environment)), None).await;
        assert_eq!(status, 403);
        assert!(zh["detail"].as_str().is_some_and(has_chinese), "{zh}");

        let filed = app.file(&demo.grid, &environment).await;
        let rate = format!("/api/v1/tickets/{}/rating", filed["id"].as_str().expect("id"));
        let (status, _, zh) = said_in(&app, Method::POST, &rate, &demo.grid, Some(json!({"score": 5})), None).await;
        assert_eq!(status, 409);
        let detail = zh["detail"].as_str().expect("detail");
        assert!(has_chinese(detail) && detail.contains("评价"), "{detail}");

        // Not JSON at all: a 400 in words, without the parser's.
        let response = app
            .client
            .post(app.url("/api/v1/tickets"))
            .bearer_auth(&demo.grid)
            .header("content-type", "application/json")
            .body("{\"title\": ")
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status().as_u16(), 400);
        let problem: Value = response.json().await.expect("problem");
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("JSON") && has_chinese(d)), "{problem}");
        assert!(!problem.to_string().contains("EOF"), "{problem}");
    })
    .await;
}

#[tokio::test]
async fn blank_optional_texts_count_as_absent() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let environment = app.category("environment", &demo.admin).await;

        // A phone form sends its untouched inputs as empty strings.
        let mut body = ticket_body(&environment);
        body["address"] = json!("");
        body["resident"] = json!({"name": " ", "phone": ""});
        body["priority"] = json!("");
        let filed = app.post("/api/v1/tickets", &demo.grid, body).await.expect(201);
        assert_eq!(filed["address"], Value::Null, "{filed}");

        // The rating's comment left empty.
        let ticket_id = filed["id"].as_str().expect("id").to_owned();
        let dispatch_id = app.dispatch_of(&filed, "XF-CGJ", &demo.admin).await;
        for (action, body) in [("acknowledge", json!({})), ("resolve", json!({"reply": "已清理"}))] {
            app.post(&format!("/api/v1/dispatches/{dispatch_id}/{action}"), &demo.dept, body).await.expect(200);
        }
        let rated = app
            .post(&format!("/api/v1/tickets/{ticket_id}/rating"), &demo.grid, json!({"score": 5, "comment": ""}))
            .await
            .expect(200);
        assert_eq!(rated["status"], "closed");

        // Query strings too: `?status=` is no filter.
        app.get("/api/v1/tickets?status=&limit=10", &demo.grid).await.expect(200);
    })
    .await;
}

#[tokio::test]
async fn a_point_is_checked_against_the_grid_it_is_filed_in() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let environment = app.category("environment", &demo.admin).await;
        // 和平社区第一网格: lon 112.700–112.7125, lat 38.400–38.430; its worker is demo-grid.
        let own_grid = app.id_by_code("grid-units", "140902001001-G01", &demo.admin).await;
        let filing = |location: Option<(f64, f64)>, grid: Option<&str>| {
            let mut body = ticket_body(&environment);
            body["location"] = location.map_or(Value::Null, |(lat, lon)| json!({"lat": lat, "lon": lon}));
            if let Some(grid) = grid {
                body["grid_unit_id"] = json!(grid);
            }
            body
        };

        // Beijing for a grid in Xinzhou: refused, naming both fields.
        let beijing = app.post("/api/v1/tickets", &demo.grid, filing(Some((39.9, 116.4)), Some(&own_grid))).await;
        let problem = beijing.problem(422);
        assert!(problem["errors"]["location"].as_str().is_some_and(has_chinese), "{problem}");
        assert!(problem["errors"]["grid_unit_id"].is_string(), "{problem}");
        // About 870 m west of the grid: still too far.
        app.post("/api/v1/tickets", &demo.grid, filing(Some((38.41, 112.69)), Some(&own_grid))).await.problem(422);
        // About 90 m west of it, GPS straying: filed in the chosen grid.
        let near = app.post("/api/v1/tickets", &demo.grid, filing(Some((38.41, 112.699)), Some(&own_grid))).await;
        assert_eq!(near.expect(201)["grid_unit_id"], own_grid.as_str());

        // Without GPS: the grid alone.
        let no_gps = app.post("/api/v1/tickets", &demo.grid, filing(None, Some(&own_grid))).await.expect(201);
        assert_eq!(no_gps["grid_unit_id"], own_grid.as_str());

        // Outside every grid, no grid given: 422 on location, saying to choose the grid.
        let nowhere = app.post("/api/v1/tickets", &demo.grid, filing(Some((30.0, 120.0)), None)).await.problem(422);
        let message = nowhere["errors"]["location"].as_str().unwrap_or_default();
        assert!(message.contains("grid_unit_id") && has_chinese(message), "{nowhere}");
        assert!(nowhere["errors"].get("grid_unit_id").is_none(), "{nowhere}");

        // In another worker's grid: 422 explaining, not 403 (the grid worker may file).
        let elsewhere = app.post("/api/v1/tickets", &demo.grid, filing(Some((38.41, 112.72)), None)).await.problem(422);
        assert!(elsewhere["errors"]["location"].as_str().is_some_and(|m| m.contains("辖区")), "{elsewhere}");
        // Some 40 m over the street into the next grid: filed in the worker's own grid.
        let over_the_street =
            app.post("/api/v1/tickets", &demo.grid, filing(Some((38.41, 112.713)), None)).await.expect(201);
        assert_eq!(over_the_street["grid_unit_id"], own_grid.as_str());

        // A role that may not file at all is still a 403.
        app.post("/api/v1/tickets", &demo.dept, filing(Some((38.41, 112.705)), None)).await.problem(403);
    })
    .await;
}

#[tokio::test]
async fn a_caller_without_the_permission_gets_403_whatever_the_body() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let raw = |token: String, path: &'static str, body: &'static str| {
            let app = &app;
            async move {
                app.client
                    .post(app.url(path))
                    .bearer_auth(token)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .expect("sent")
                    .status()
                    .as_u16()
            }
        };
        let wrong_shape = r#"{"code": 5, "colour": "red"}"#;
        let not_json = r#"{"code": "#;
        for path in ["/api/v1/categories", "/api/v1/departments", "/api/v1/users", "/api/v1/routing-rules"] {
            assert_eq!(raw(demo.grid.clone(), path, wrong_shape).await, 403, "{path}");
            assert_eq!(raw(demo.grid.clone(), path, not_json).await, 403, "{path}");
            assert_eq!(raw(demo.admin.clone(), path, wrong_shape).await, 422, "{path}");
            assert_eq!(raw(demo.admin.clone(), path, not_json).await, 400, "{path}");
        }
        // Department staff may not file; a dispatcher may not resolve a dispatch.
        assert_eq!(raw(demo.dept.clone(), "/api/v1/tickets", wrong_shape).await, 403);
        assert_eq!(raw(demo.grid.clone(), "/api/v1/tickets", wrong_shape).await, 422);
        let (status, _, problem) = said_in(
            &app,
            Method::PATCH,
            "/api/v1/categories/0190a000-0000-7000-8000-000000000000",
            &demo.grid,
            Some(json!({"name": 5})),
            None,
        )
        .await;
        assert_eq!(status, 403, "{problem}");
    })
    .await;
}

/// The same GET in Chinese (the default) and in English: the status and both problems.
async fn in_both_languages(app: &TestApp, path: &str, token: &str) -> (u16, Value, Value) {
    let (status, _, zh) = said_in(app, Method::GET, path, token, None, None).await;
    let (en_status, _, en) = said_in(app, Method::GET, path, token, None, Some("en")).await;
    assert_eq!(status, en_status, "{path}");
    (status, zh, en)
}

/// A 422 on `field`, said as `zh` by default and as `en` in English; the detail names the field.
async fn refuses_field(app: &TestApp, path: &str, token: &str, field: &str, zh: &str, en: &str) {
    let (status, zh_problem, en_problem) = in_both_languages(app, path, token).await;
    assert_eq!(status, 422, "{path}: {zh_problem}");
    assert_eq!(zh_problem["errors"][field], zh, "{path}: {zh_problem}");
    assert_eq!(en_problem["errors"][field], en, "{path}: {en_problem}");
    let detail = zh_problem["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(field) && detail.contains(zh), "{path}: {detail}");
    assert!(!has_chinese(&en_problem.to_string()), "{path}: {en_problem}");
    assert_no_parser_words(&zh_problem);
}

#[tokio::test]
async fn a_query_parameter_given_twice_is_named() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let (zh, en) = ("查询参数重复，只能给出一次", "is given more than once in the query; give it once");
        refuses_field(&app, "/api/v1/tickets?status=filed&status=closed", &demo.grid, "status", zh, en).await;
        let twice = "/api/v1/reports/hotspots?from=2026-11-01&to=2026-11-30&limit=5&limit=6";
        refuses_field(&app, twice, &demo.supervisor, "limit", zh, en).await;
        // A filter given once still works.
        app.get("/api/v1/tickets?status=filed", &demo.grid).await.expect(200);
    })
    .await;
}

#[tokio::test]
async fn report_requests_are_refused_in_chinese_and_in_english() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let sla = |query: &str| format!("/api/v1/reports/sla?group_by=department&{query}");
        let reversed = "from=2026-11-30&to=2026-11-01";
        for (path, field, zh, en) in [
            (
                sla("from=1900-01-01&to=2026-11-30"),
                "from",
                "应在今天前后 100 年之内",
                "must be within 100 years of today",
            ),
            (sla(reversed), "to", "不能早于 from", "must not be before from"),
            (
                sla("from=2025-01-01&to=2026-11-30"),
                "to",
                "报表最多覆盖一年（366 天）",
                "a report covers at most a year (366 days)",
            ),
            (
                "/api/v1/reports/sla?from=2026-11-01&to=2026-11-30&group_by=planet".into(),
                "group_by",
                "应为以下之一：department、township、county、grid、category、channel",
                "must be one of department, township, county, grid, category, channel",
            ),
            (
                sla("from=2026-11-01&to=2026-11-30&format=xml"),
                "format",
                "应为以下之一：json、csv",
                "must be one of json, csv",
            ),
            (sla("from=2026-11-01&to=2026-11-30&lang=fr"), "lang", "应为以下之一：zh、en", "must be one of zh, en"),
            (
                "/api/v1/reports/trend?from=2026-11-01&to=2026-11-30&interval=hour".into(),
                "interval",
                "应为以下之一：day、week、month",
                "must be one of day, week, month",
            ),
            (
                "/api/v1/reports/coverage?from=2026-11-01&to=2026-11-30&min_rated=0".into(),
                "min_rated",
                "应为 1 到 10000",
                "must be between 1 and 10000",
            ),
            (
                "/api/v1/reports/trend?from=2026-11-30&to=2026-11-01&interval=day".into(),
                "to",
                "不能早于 from",
                "must not be before from",
            ),
            (
                "/api/v1/reports/trend?from=2026-01-01&to=2026-11-30&interval=day".into(),
                "interval",
                "最多 120 个时间点，请选更长的间隔",
                "must give at most 120 points; choose a longer interval",
            ),
            ("/api/v1/reports/overdue?limit=0".into(), "limit", "应为 1 到 500", "must be between 1 and 500"),
            (
                "/api/v1/reports/hotspots?from=2026-11-01&to=2026-11-30&limit=0".into(),
                "limit",
                "应为 1 到 200",
                "must be between 1 and 200",
            ),
            (
                "/api/v1/reports/hotspots?from=2026-11-01&to=2026-11-30&group_by=street".into(),
                "group_by",
                "应为以下之一：grid、community、township",
                "must be one of grid, community, township",
            ),
            (format!("/api/v1/reports/hotspots?{reversed}"), "to", "不能早于 from", "must not be before from"),
            (format!("/api/v1/reports/coverage?{reversed}"), "to", "不能早于 from", "must not be before from"),
            (
                "/api/v1/reports/coverage?from=2026-11-01&to=2026-11-30&lang=fr".into(),
                "lang",
                "应为以下之一：zh、en",
                "must be one of zh, en",
            ),
        ] {
            refuses_field(&app, &path, &demo.supervisor, field, zh, en).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_negative_number_is_told_the_allowed_range_not_to_be_an_integer() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let hotspots = "/api/v1/reports/hotspots?from=2026-11-01&to=2026-11-30&limit=-1";
        refuses_field(&app, hotspots, &demo.supervisor, "limit", "应为 1 到 200", "must be between 1 and 200").await;
        let overdue = "/api/v1/reports/overdue?limit=-5";
        refuses_field(&app, overdue, &demo.supervisor, "limit", "应为 1 到 500", "must be between 1 and 500").await;
        let policies = "/api/v1/sla-policies?limit=-1";
        refuses_field(&app, policies, &demo.admin, "limit", "应为 1 到 200", "must be between 1 and 200").await;
        // Where the handler's range is not known to the parser: at least not "must be an integer".
        refuses_field(&app, "/api/v1/tickets?limit=-1", &demo.grid, "limit", "不能为负数", "must not be negative")
            .await;
        // Not a number at all is still that.
        refuses_field(&app, "/api/v1/tickets?limit=ten", &demo.grid, "limit", "应为整数", "must be a whole number")
            .await;
    })
    .await;
}

/// A 429 says in both languages which limit was hit and that Retry-After tells when to
/// retry; a limit on work in progress is not "too frequent".
#[tokio::test]
async fn too_many_requests_say_which_limit_and_when_to_retry() {
    each_backend(|app| async move {
        let demo = app.demo().await;

        // Five open event streams of one session: the sixth is refused.
        let mut open = Vec::new();
        for _ in 0..5 {
            let stream = app
                .client
                .get(app.url("/api/v1/events/stream"))
                .bearer_auth(&demo.dispatcher)
                .send()
                .await
                .expect("sent");
            assert_eq!(stream.status().as_u16(), 200);
            open.push(stream);
        }
        let (status, zh, en) = in_both_languages(&app, "/api/v1/events/stream", &demo.dispatcher).await;
        assert_eq!(status, 429, "{zh}");
        let (zh, en) = (zh["detail"].as_str().unwrap_or_default(), en["detail"].as_str().unwrap_or_default());
        assert!(has_chinese(zh) && zh.contains('5') && zh.contains("Retry-After"), "{zh}");
        assert!(!zh.contains("频繁"), "open streams are work in progress, not requests too frequent: {zh}");
        assert!(zh.contains("事件流") && en.contains("event streams"), "names the limit hit: {zh} / {en}");
        assert!(!has_chinese(en) && en.contains('5') && en.contains("Retry-After"), "{en}");
        drop(open);

        // An account locked after failed logins.
        for _ in 0..5 {
            app.login("demo-dept", "wrong password").await.problem(401);
        }
        let locked = |language: Option<&'static str>| {
            let app = &app;
            async move {
                let mut request = app
                    .client
                    .post(app.url("/api/v1/auth/token"))
                    .json(&json!({"username": "demo-dept", "password": crate::helpers::DEMO_PASSWORD}));
                if let Some(language) = language {
                    request = request.header("accept-language", language);
                }
                let response = request.send().await.expect("sent");
                assert_eq!(response.status().as_u16(), 429);
                let problem: Value = response.json().await.expect("problem");
                problem["detail"].as_str().unwrap_or_default().to_owned()
            }
        };
        let (zh, en) = (locked(None).await, locked(Some("en")).await);
        assert!(has_chinese(zh.as_str()) && zh.contains("Retry-After") && zh.contains("15 分钟"), "{zh}");
        assert!(zh.contains("锁定") && en.contains("locked"), "names the limit hit: {zh} / {en}");
        assert!(!has_chinese(en.as_str()) && en.contains("Retry-After") && en.contains("15 minutes"), "{en}");
    })
    .await;
}
