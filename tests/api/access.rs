//! Role permissions on the admin API: 401 without a token, 403 for a role without the right.

use reqwest::Method;
use serde_json::json;

use crate::helpers::each_backend;

const ROLES: [&str; 5] = ["demo-grid", "demo-dispatcher", "demo-dept", "demo-supervisor", "demo-admin"];

#[tokio::test]
async fn permission_matrix_of_the_admin_api() {
    each_backend(|app| async move {
        app.seed_demo().await;
        let admin = app.demo_token("demo-admin").await;
        let unit = app.id_by_code("grid-units", "140902", &admin).await;
        let department = app.id_by_code("departments", "XF-CGJ", &admin).await;
        let category = app.id_by_code("categories", "other", &admin).await;
        let rules = app.get("/api/v1/routing-rules?limit=1", &admin).await.expect(200);
        let rule = rules["items"][0]["id"].as_str().expect("a rule").to_owned();
        let users = app.get("/api/v1/users?username=demo-grid", &admin).await.expect(200);
        let user = users["items"][0]["id"].as_str().expect("a user").to_owned();

        // (method, path, body, roles allowed). Writes use bodies that fail validation after the
        // permission check, so an allowed role gets 422 and nothing changes.
        let reads = |path: String, allowed: &'static [&'static str]| (Method::GET, path, None, allowed);
        let all: &[&str] = &ROLES;
        let routing_readers: &[&str] = &["demo-dispatcher", "demo-supervisor", "demo-admin"];
        let user_readers: &[&str] = &["demo-supervisor", "demo-admin"];
        let admin_only: &[&str] = &["demo-admin"];
        let bad = Some(json!({"code": "has space"}));
        let cases = vec![
            reads("/api/v1/grid-units".into(), all),
            reads(format!("/api/v1/grid-units/{unit}"), all),
            reads(format!("/api/v1/grid-units/{unit}/children"), all),
            reads("/api/v1/grid-units/locate?lat=38.41&lon=112.705".into(), all),
            reads("/api/v1/departments".into(), all),
            reads(format!("/api/v1/departments/{department}"), all),
            reads("/api/v1/categories".into(), all),
            reads(format!("/api/v1/categories/{category}"), all),
            reads("/api/v1/routing-rules".into(), routing_readers),
            reads(format!("/api/v1/routing-rules/{rule}"), routing_readers),
            reads("/api/v1/routing/resolve?category=other&unit=140902".into(), routing_readers),
            reads("/api/v1/users".into(), user_readers),
            reads(format!("/api/v1/users/{user}"), user_readers),
            (Method::POST, "/api/v1/grid-units".into(), Some(json!({"code": "", "name": "x", "level": "grid"})), admin_only),
            (Method::PATCH, format!("/api/v1/grid-units/{unit}"), bad.clone(), admin_only),
            (Method::POST, "/api/v1/departments".into(), Some(json!({"code": "", "name": "x", "unit_id": unit, "email": "x"})), admin_only),
            (Method::PATCH, format!("/api/v1/departments/{department}"), bad.clone(), admin_only),
            (Method::POST, "/api/v1/categories".into(), Some(json!({"code": "", "name": "x"})), admin_only),
            (Method::PATCH, format!("/api/v1/categories/{category}"), bad.clone(), admin_only),
            (Method::POST, "/api/v1/routing-rules".into(), Some(json!({"unit_id": unit, "primary_department_id": department, "co_handler_department_ids": [department]})), admin_only),
            (Method::PATCH, format!("/api/v1/routing-rules/{rule}"), Some(json!({"primary_department_id": department, "co_handler_department_ids": [department]})), admin_only),
            (Method::POST, "/api/v1/users".into(), Some(json!({"username": "", "display_name": "x", "role": "admin", "password": "short"})), admin_only),
            (Method::PATCH, format!("/api/v1/users/{user}"), Some(json!({"password": "short"})), admin_only),
        ];

        let mut tokens = Vec::new();
        for role in ROLES {
            tokens.push((role, app.demo_token(role).await));
        }
        for (method, path, body, allowed) in &cases {
            let anonymous = app.request(method.clone(), path, None, body.clone()).await;
            assert_eq!(anonymous.status.as_u16(), 401, "{method} {path} without a token");
            for (role, token) in &tokens {
                let reply = app.request(method.clone(), path, Some(token), body.clone()).await;
                let expected = match (allowed.contains(role), *method == Method::GET) {
                    (false, _) => 403,
                    (true, true) => 200,
                    (true, false) => 422,
                };
                assert_eq!(reply.status.as_u16(), expected, "{method} {path} as {role}: {}", reply.body);
            }
        }

        // Deletes: only the admin gets past the permission check (404 for an unknown id).
        let missing = "00000000-0000-7000-8000-000000000000";
        for collection in ["grid-units", "departments", "categories", "routing-rules", "users"] {
            let path = format!("/api/v1/{collection}/{missing}");
            for (role, token) in &tokens {
                let expected = if *role == "demo-admin" { 404 } else { 403 };
                assert_eq!(app.delete(&path, token).await.status.as_u16(), expected, "DELETE {path} as {role}");
            }
        }
        // Nothing the refused requests sent was written.
        let units = app.get("/api/v1/grid-units?limit=200", &admin).await.expect(200);
        assert_eq!(units["items"].as_array().map(Vec::len), Some(29));
    })
    .await;
}

/// (method, path, body, roles let through, the status they get).
type Case<'a> = (Method, String, Option<serde_json::Value>, &'a [&'a str], u16);

/// The SLA, supervision, report and operations endpoints against every role. Bodies that are
/// refused after the permission check make an allowed role's answer a 4xx that changes nothing.
#[tokio::test]
async fn permission_matrix_of_sla_reports_and_operations() {
    each_backend(|app| async move {
        app.seed_demo().await;
        let mut tokens = Vec::new();
        for role in ROLES {
            tokens.push((role, app.demo_token(role).await));
        }
        let admin = &tokens[4].1;
        let grid = &tokens[0].1;
        let category = app.id_by_code("categories", "environment", admin).await;
        let ticket = app.post("/api/v1/tickets", grid, crate::helpers::ticket_body(&category)).await.expect(201);
        let ticket_id = ticket["id"].as_str().expect("id").to_owned();
        let dispatch = ticket["dispatches"][0]["id"].as_str().expect("dispatch").to_owned();
        let missing = "00000000-0000-7000-8000-000000000000";

        let everyone: &[&str] = &ROLES;
        let routing_readers: &[&str] = &["demo-dispatcher", "demo-supervisor", "demo-admin"];
        let auditors: &[&str] = &["demo-supervisor", "demo-admin"];
        let admin_only: &[&str] = &["demo-admin"];
        let supervisor_only: &[&str] = &["demo-supervisor"];
        let dispatcher_only: &[&str] = &["demo-dispatcher"];
        let department_only: &[&str] = &["demo-dept"];
        let contact_readers: &[&str] = &["demo-grid", "demo-dispatcher"];
        let bad_durations = json!({"acknowledge": "soon", "first_contact": "1h", "resolve": "1d", "rectify": "1d", "rating_window": "1d"});
        // (method, path, body, roles let through, the status they get)
        let cases: Vec<Case> = vec![
            (Method::GET, "/api/v1/sla-policies".into(), None, routing_readers, 200),
            (Method::GET, format!("/api/v1/sla-policies/{category}"), None, routing_readers, 200),
            (Method::PUT, format!("/api/v1/sla-policies/{category}"), Some(json!({"normal": bad_durations, "urgent": bad_durations})), admin_only, 422),
            (Method::GET, "/api/v1/calendar".into(), None, everyone, 200),
            (Method::GET, "/api/v1/calendar/deadline?start=2026-12-01T01:00:00Z&duration=2h%20working".into(), None, everyone, 200),
            (Method::POST, "/api/v1/calendar".into(), Some(json!({"year": 1})), admin_only, 422),
            (Method::POST, format!("/api/v1/tickets/{ticket_id}/supervise"), Some(json!({"instruction": "x", "due_at": "2020-01-01T00:00:00Z"})), supervisor_only, 422),
            (Method::GET, "/api/v1/supervision-orders".into(), None, everyone, 200),
            (Method::POST, format!("/api/v1/supervision-orders/{missing}/reply"), Some(json!({"reply": "x"})), department_only, 404),
            (Method::POST, format!("/api/v1/dispatches/{dispatch}/extension-requests"), Some(json!({"reason": "x", "duration": "soon"})), department_only, 422),
            (Method::POST, format!("/api/v1/extension-requests/{missing}/approve"), Some(json!({})), dispatcher_only, 404),
            (Method::POST, format!("/api/v1/extension-requests/{missing}/reject"), Some(json!({})), dispatcher_only, 404),
            (Method::GET, "/api/v1/escalation-rules".into(), None, routing_readers, 200),
            (Method::POST, "/api/v1/escalation-rules".into(), Some(json!({"trigger": "lunch", "notify": []})), admin_only, 422),
            (Method::PUT, format!("/api/v1/escalation-rules/{missing}"), Some(json!({"trigger": "lunch", "notify": []})), admin_only, 422),
            (Method::DELETE, format!("/api/v1/escalation-rules/{missing}"), None, admin_only, 404),
            (Method::GET, "/api/v1/notifications".into(), None, admin_only, 200),
            (Method::GET, "/api/v1/audit".into(), None, auditors, 200),
            (Method::GET, "/api/v1/reports/sla?from=2026-11-01&to=2026-11-30&group_by=department".into(), None, routing_readers, 200),
            (Method::GET, "/api/v1/reports/overdue".into(), None, routing_readers, 200),
            (Method::GET, "/api/v1/reports/trend?from=2026-11-01&to=2026-11-30&interval=week".into(), None, routing_readers, 200),
            (Method::GET, format!("/api/v1/tickets/{ticket_id}/contact?reason=回访"), None, contact_readers, 200),
            (Method::POST, format!("/api/v1/tickets/{ticket_id}/erase-personal-data"), Some(json!({"reason": ""})), admin_only, 422),
        ];
        for (method, path, body, allowed, status) in &cases {
            let anonymous = app.request(method.clone(), path, None, body.clone()).await;
            assert_eq!(anonymous.status.as_u16(), 401, "{method} {path} without a token");
            for (role, token) in &tokens {
                let reply = app.request(method.clone(), path, Some(token), body.clone()).await;
                let expected = if allowed.contains(role) { *status } else { 403 };
                assert_eq!(reply.status.as_u16(), expected, "{method} {path} as {role}: {}", reply.body);
            }
        }
        let still = app.get(&format!("/api/v1/tickets/{ticket_id}"), admin).await.expect(200);
        assert!(still["resident"]["phone"].is_string(), "nothing was erased");
    })
    .await;
}
