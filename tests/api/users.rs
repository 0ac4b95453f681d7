//! User administration: homes by role, password changes and disabling end sessions.

use serde_json::json;

use crate::helpers::each_backend;

#[tokio::test]
async fn user_lifecycle() {
    each_backend(|app| async move {
        app.seed_demo().await;
        let admin = app.demo_token("demo-admin").await;
        let grid = app.id_by_code("grid-units", "140902001002-G01", &admin).await;
        let street = app.id_by_code("grid-units", "140902001000", &admin).await;
        let department = app.id_by_code("departments", "XF-MZJ", &admin).await;

        // Each role has a home of the right kind.
        let misplaced = app
            .post("/api/v1/users", &admin, json!({"username": "wang.wu", "display_name": "王五", "role": "grid_worker", "unit_id": street, "password": "a good long password"}))
            .await
            .problem(422);
        assert!(misplaced["errors"]["unit_id"].as_str().is_some_and(|m| m.contains("grid")), "{misplaced}");
        app.post("/api/v1/users", &admin, json!({"username": "clerk", "display_name": "办事员", "role": "department_staff", "password": "a good long password"}))
            .await
            .problem(422);
        let weak = app
            .post("/api/v1/users", &admin, json!({"username": "wang.wu", "display_name": "王五", "role": "grid_worker", "unit_id": grid, "password": "wang.wu"}))
            .await
            .problem(422);
        assert!(weak["errors"]["password"].is_string());

        let created = app
            .post("/api/v1/users", &admin, json!({"username": "wang.wu", "display_name": "王五", "role": "grid_worker", "unit_id": grid, "password": "a good long password"}))
            .await
            .expect(201);
        assert_eq!(created["role"], "grid_worker");
        assert!(created.get("password").is_none() && created.get("password_hash").is_none());
        let id = created["id"].as_str().expect("id").to_owned();
        app.post("/api/v1/users", &admin, json!({"username": "wang.wu", "display_name": "重名", "role": "admin", "password": "another long password"}))
            .await
            .problem(409);

        // Changing the role moves the home too, checked together.
        app.patch(&format!("/api/v1/users/{id}"), &admin, json!({"role": "department_staff"})).await.problem(422);
        let moved = app
            .patch(&format!("/api/v1/users/{id}"), &admin, json!({"role": "department_staff", "unit_id": null, "department_id": department}))
            .await
            .expect(200);
        assert_eq!(moved["department_id"], department.as_str());

        let session = app.token("wang.wu", "a good long password").await;
        app.get("/api/v1/me", &session).await.expect(200);
        app.patch(&format!("/api/v1/users/{id}"), &admin, json!({"password": "a brand new password"})).await.expect(200);
        app.get("/api/v1/me", &session).await.problem(401);
        app.login("wang.wu", "a good long password").await.problem(401);
        let session = app.token("wang.wu", "a brand new password").await;

        let disabled = app.delete(&format!("/api/v1/users/{id}"), &admin).await.expect(200);
        assert_eq!(disabled["active"], false);
        app.get("/api/v1/me", &session).await.problem(401);
        app.login("wang.wu", "a brand new password").await.problem(401);
        let listed = app.get("/api/v1/users?active=false", &admin).await.expect(200);
        assert_eq!(listed["items"][0]["username"], "wang.wu");

        // Supervisors may look, not touch.
        let supervisor = app.demo_token("demo-supervisor").await;
        app.get(&format!("/api/v1/users/{id}"), &supervisor).await.expect(200);
        app.patch(&format!("/api/v1/users/{id}"), &supervisor, json!({"active": true})).await.problem(403);
    })
    .await;
}
