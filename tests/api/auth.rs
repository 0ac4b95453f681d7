use chrono::Duration;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{DEMO_PASSWORD, each_backend};

#[tokio::test]
async fn every_demo_user_logs_in_and_sees_themselves() {
    each_backend(|app| async move {
        app.seed_demo().await;
        for (username, role) in [
            ("demo-grid", "grid_worker"),
            ("demo-dispatcher", "dispatcher"),
            ("demo-dept", "department_staff"),
            ("demo-supervisor", "supervisor"),
            ("demo-admin", "admin"),
        ] {
            let body = app.login(username, DEMO_PASSWORD).await.expect(200);
            assert_eq!(body["token_type"], "Bearer");
            assert_eq!(body["expires_in"], 12 * 3600, "default token lifetime");
            let token = body["access_token"].as_str().expect("token");
            let me = app.get("/api/v1/me", token).await.expect(200);
            assert_eq!(me["username"], username);
            assert_eq!(me["role"], role);
            assert!(me.get("password_hash").is_none(), "never expose the hash");
        }
    })
    .await;
}

#[tokio::test]
async fn wrong_credentials_get_the_same_401() {
    each_backend(|app| async move {
        app.seed_demo().await;
        let wrong_password = app.login("demo-admin", "not-the-password").await.problem(401);
        let unknown_user = app.login("nobody-here", DEMO_PASSWORD).await.problem(401);
        assert_eq!(wrong_password["detail"], unknown_user["detail"], "do not reveal which accounts exist");
    })
    .await;
}

#[tokio::test]
async fn tokens_expire_and_logout_revokes() {
    each_backend(|app| async move {
        app.seed_demo().await;
        let token = app.demo_token("demo-dispatcher").await;
        app.get("/api/v1/me", &token).await.expect(200);

        app.clock.advance(Duration::hours(11));
        app.get("/api/v1/me", &token).await.expect(200);
        app.clock.advance(Duration::hours(1) + Duration::seconds(1));
        app.get("/api/v1/me", &token).await.problem(401);

        let token = app.demo_token("demo-dispatcher").await;
        let other_session = app.demo_token("demo-dispatcher").await;
        app.request(Method::POST, "/api/v1/auth/logout", Some(&token), None).await.expect(204);
        app.get("/api/v1/me", &token).await.problem(401);
        app.get("/api/v1/me", &other_session).await.expect(200);
    })
    .await;
}

#[tokio::test]
async fn api_requires_a_bearer_token() {
    each_backend(|app| async move {
        let reply = app.request(Method::GET, "/api/v1/grid-units", None, None).await;
        assert_eq!(reply.headers.get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer"));
        reply.problem(401);
        app.get("/api/v1/me", "gw_not-a-real-token").await.problem(401);
        let basic = app.client.get(app.url("/api/v1/me")).basic_auth("demo-admin", Some(DEMO_PASSWORD)).send().await;
        assert_eq!(basic.expect("sent").status().as_u16(), 401);
        // Logging in itself needs no token, and malformed credentials are a 422, not a 500.
        app.request(Method::POST, "/api/v1/auth/token", None, Some(json!({"username": "x"}))).await.problem(422);
    })
    .await;
}

#[tokio::test]
async fn housekeeping_removes_week_old_tokens_and_keys() {
    use sea_orm::{EntityTrait, PaginatorTrait};
    each_backend(|app| async move {
        app.seed_demo().await;
        let grid = app.demo_token("demo-grid").await;
        let admin = app.demo_token("demo-admin").await;
        let category = app.category("property", &admin).await;
        let filed = app
            .client
            .post(app.url("/api/v1/tickets"))
            .bearer_auth(&grid)
            .header("idempotency-key", "phone-1")
            .json(&crate::helpers::ticket_body(&category))
            .send()
            .await
            .expect("sent");
        assert_eq!(filed.status().as_u16(), 201);
        let db = &app.ctx.db;
        let tokens = entities::api_token::Entity::find().count(db).await.expect("count");
        assert_eq!(gridwhistle::service::housekeeping::run(&app.ctx).await.expect("runs"), 0, "nothing is old yet");

        app.clock.advance(Duration::days(8));
        let fresh = app.demo_token("demo-admin").await;
        let removed = gridwhistle::service::housekeeping::run(&app.ctx).await.expect("runs");
        assert_eq!(removed, tokens + 1, "every old token and the old key");
        assert_eq!(entities::api_token::Entity::find().count(db).await.expect("count"), 1);
        assert_eq!(entities::idempotency_key::Entity::find().count(db).await.expect("count"), 0);
        app.get("/api/v1/me", &fresh).await.expect(200);
        let tickets = app.get("/api/v1/tickets", &fresh).await.expect(200);
        assert_eq!(tickets["items"].as_array().map(Vec::len), Some(1), "the ticket stays");
    })
    .await;
}
