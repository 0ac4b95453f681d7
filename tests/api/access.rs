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
        let bad = Some(json!({"code": ""}));
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
