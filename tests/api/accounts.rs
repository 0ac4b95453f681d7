//! Accounts and sessions: lock-out by name, password policy, who may read which users, and
//! how long a session lives.

use serde_json::json;

use crate::helpers::{DEMO_PASSWORD, each_backend};

#[tokio::test]
async fn weak_passwords_are_refused_with_a_reason() {
    each_backend(|app| async move {
        app.seed_demo().await;
        let admin = app.demo_token("demo-admin").await;
        let grid = app.id_by_code("grid-units", "140902001002-G01", &admin).await;
        let new_user = |password: &str| {
            json!({"username": "li.si", "display_name": "李四", "role": "grid_worker", "unit_id": grid, "password": password})
        };
        for (password, reason) in [
            ("          ", "spaces"),
            ("1234567890", "consecutive"),
            ("0987654321", "consecutive"),
            ("zzzzzzzzzzzz", "repeated"),
            ("password12", "common"),
            ("QWERTYUIOP", "common"),
            (DEMO_PASSWORD, "demo"),
            ("a long\u{0}enough phrase", "control"),
            ("a long\nenough phrase", "control"),
        ] {
            let refused = app.post("/api/v1/users", &admin, new_user(password)).await.problem(422);
            let message = refused["errors"]["password"].as_str().unwrap_or_default();
            assert!(message.contains(reason), "{password:?}: {refused}");
        }
        let created = app.post("/api/v1/users", &admin, new_user("a long enough phrase")).await.expect(201);

        // The same rules guard a password change, and the demo password stays with the demo accounts.
        let id = created["id"].as_str().expect("id");
        let refused = app.patch(&format!("/api/v1/users/{id}"), &admin, json!({"password": DEMO_PASSWORD})).await;
        assert!(refused.problem(422)["errors"]["password"].as_str().is_some_and(|m| m.contains("demo")));
        app.login("li.si", DEMO_PASSWORD).await.problem(401);
        app.login("li.si", "a long enough phrase").await.expect(200);
        app.login("demo-grid", DEMO_PASSWORD).await.expect(200);
    })
    .await;
}
