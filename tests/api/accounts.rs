//! Accounts and sessions: lock-out by name, password policy, who may read which users, and
//! how long a session lives.

use chrono::Duration;
use serde_json::{Value, json};

use crate::helpers::{DEMO_PASSWORD, Reply, each_backend};

fn retry_after(reply: &Reply) -> u64 {
    reply.headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).expect("Retry-After")
}

/// What a client sees of five failures and the attempt after them: statuses, problem bodies
/// and the wait.
async fn lock_out(app: &crate::helpers::TestApp, username: &str) -> (Vec<Value>, Value, u64) {
    let mut failures = Vec::new();
    for _ in 0..5 {
        failures.push(app.login(username, "wrong password").await.problem(401));
    }
    let locked = app.login(username, "wrong password").await;
    let wait = retry_after(&locked);
    (failures, locked.problem(429), wait)
}

#[tokio::test]
async fn unknown_names_lock_out_exactly_like_real_accounts() {
    each_backend(|app| async move {
        app.seed_demo().await;
        let admin = app.demo_token("demo-admin").await;

        let real = lock_out(&app, "demo-dept").await;
        let unknown = lock_out(&app, "nobody-here").await;
        assert_eq!(real.0, unknown.0, "the failures read the same");
        assert_eq!(real.1, unknown.1, "the lock reads the same");
        assert!((14 * 60..=15 * 60).contains(&unknown.2), "Retry-After {}", unknown.2);
        assert!(unknown.2.abs_diff(real.2) <= 1, "same wait: {} vs {}", real.2, unknown.2);

        // The right password does not open a locked name; the lock is on the name as typed
        // in any case, and other names are unaffected.
        app.login("demo-dept", DEMO_PASSWORD).await.problem(429);
        app.login(" Demo-Dept ", DEMO_PASSWORD).await.problem(429);
        app.login(" NOBODY-here", "wrong password").await.problem(429);
        app.login("demo-grid", DEMO_PASSWORD).await.expect(200);
        app.login("nobody-else", "wrong password").await.problem(401);

        // Attempts against locked names are audited, real or not.
        let audit = app.get("/api/v1/audit?action=login_locked&limit=200", &admin).await.expect(200);
        let names: Vec<&str> =
            audit["items"].as_array().expect("items").iter().filter_map(|a| a["detail"]["username"].as_str()).collect();
        assert_eq!(names.iter().filter(|n| **n == "demo-dept").count(), 3, "{audit}");
        assert_eq!(names.iter().filter(|n| **n == "nobody-here").count(), 2, "{audit}");

        // After the wait both names answer as before: the real account logs in.
        app.clock.advance(Duration::minutes(16));
        app.login("demo-dept", DEMO_PASSWORD).await.expect(200);
        app.login("nobody-here", "wrong password").await.problem(401);
        // The lock ran out, so the count starts afresh: one more wrong password is not a lock.
        app.login("nobody-here", "wrong password").await.problem(401);

        // Names sprayed at the login are not kept for ever.
        use sea_orm::{EntityTrait, PaginatorTrait};
        let kept = || async { entities::login_failure::Entity::find().count(&app.ctx.db).await.expect("count") };
        assert_eq!(kept().await, 2, "nobody-here and nobody-else; demo-dept's success cleared its count");
        gridwhistle::service::housekeeping::run(&app.ctx).await.expect("runs");
        assert_eq!(kept().await, 2, "a fresh failure stays");
        app.clock.advance(Duration::days(8));
        gridwhistle::service::housekeeping::run(&app.ctx).await.expect("runs");
        assert_eq!(kept().await, 0);
    })
    .await;
}

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
            ("          ", "空格"),
            ("1234567890", "连续"),
            ("0987654321", "连续"),
            ("zzzzzzzzzzzz", "重复"),
            ("password12", "常见"),
            ("QWERTYUIOP", "键盘"),
            (DEMO_PASSWORD, "演示"),
            ("a long\u{0}enough phrase", "控制字符"),
            ("a long\nenough phrase", "控制字符"),
        ] {
            let refused = app.post("/api/v1/users", &admin, new_user(password)).await.problem(422);
            let message = refused["errors"]["password"].as_str().unwrap_or_default();
            assert!(message.contains(reason), "{password:?}: {refused}");
        }
        let created = app.post("/api/v1/users", &admin, new_user("a long enough phrase")).await.expect(201);

        // The same rules guard a password change, and the demo password stays with the demo accounts.
        let id = created["id"].as_str().expect("id");
        let refused = app.patch(&format!("/api/v1/users/{id}"), &admin, json!({"password": DEMO_PASSWORD})).await;
        assert!(refused.problem(422)["errors"]["password"].as_str().is_some_and(|m| m.contains("演示")));
        app.login("li.si", DEMO_PASSWORD).await.problem(401);
        app.login("li.si", "a long enough phrase").await.expect(200);
        app.login("demo-grid", DEMO_PASSWORD).await.expect(200);
    })
    .await;
}

#[tokio::test]
async fn refreshing_does_not_outlive_the_session_cap() {
    each_backend(|app| async move {
        app.seed_demo().await;
        let mut token = app.demo_token("demo-grid").await;
        // Refresh every 11 hours: the session lives 7 days from the login, not for ever.
        let mut lived = Duration::zero();
        while lived + Duration::hours(11) < Duration::days(7) {
            app.clock.advance(Duration::hours(11));
            lived += Duration::hours(11);
            let fresh = app.request(reqwest::Method::POST, "/api/v1/auth/refresh", Some(&token), None).await;
            let fresh = fresh.expect(200);
            let left = (Duration::days(7) - lived).num_seconds();
            assert_eq!(fresh["expires_in"].as_i64(), Some(left.min(12 * 3600)), "at {lived}");
            token = fresh["access_token"].as_str().expect("token").to_owned();
        }
        // The last token ends with the session, and cannot be refreshed past it.
        app.clock.advance(Duration::days(7) - lived - Duration::seconds(1));
        app.get("/api/v1/me", &token).await.expect(200);
        app.clock.advance(Duration::seconds(1));
        app.get("/api/v1/me", &token).await.problem(401);
        app.request(reqwest::Method::POST, "/api/v1/auth/refresh", Some(&token), None).await.problem(401);
        // Logging in again starts a new session.
        let token = app.demo_token("demo-grid").await;
        app.request(reqwest::Method::POST, "/api/v1/auth/refresh", Some(&token), None).await.expect(200);
    })
    .await;
}

#[tokio::test]
async fn the_session_cap_is_configurable() {
    for backend in crate::helpers::backends() {
        let app = crate::helpers::spawn_app_with(backend, &[("GRIDWHISTLE_AUTH__SESSION_MAX_AGE", "20h")]).await;
        app.seed_demo().await;
        let token = app.demo_token("demo-admin").await;
        app.clock.advance(Duration::hours(10));
        let fresh = app.request(reqwest::Method::POST, "/api/v1/auth/refresh", Some(&token), None).await.expect(200);
        assert_eq!(fresh["expires_in"], 10 * 3600, "ten hours of the twenty are left");
        let token = fresh["access_token"].as_str().expect("token").to_owned();
        app.clock.advance(Duration::hours(10));
        app.request(reqwest::Method::POST, "/api/v1/auth/refresh", Some(&token), None).await.problem(401);
    }
}

/// The user names in a user list, sorted.
async fn usernames(app: &crate::helpers::TestApp, path: &str, token: &str) -> Vec<String> {
    let listed = app.get(path, token).await.expect(200);
    let mut names: Vec<String> = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|u| u["username"].as_str().expect("username").to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn supervisors_read_only_the_users_of_their_subtree() {
    each_backend(|app| async move {
        app.seed_demo().await;
        let admin = app.demo_token("demo-admin").await;
        // 原平市: a county supervisor, a street dispatcher, a grid worker and the county's
        // department staff; the demo users all live in 忻府区 or city-wide.
        let county = app.user_in(&admin, "yp.supervisor", "supervisor", "140981").await;
        app.user_in(&admin, "yp.dispatcher", "dispatcher", "140981001000").await;
        app.user_in(&admin, "yp.grid", "grid_worker", "140981001001-G01").await;
        app.user_in(&admin, "yp.clerk", "department_staff", "YP-CGJ").await;
        let city = app.demo_token("demo-supervisor").await;

        let all = usernames(&app, "/api/v1/users?limit=200", &admin).await;
        assert_eq!(all.len(), 9, "{all:?}");
        assert_eq!(
            usernames(&app, "/api/v1/users?limit=200", &county).await,
            ["yp.clerk", "yp.dispatcher", "yp.grid", "yp.supervisor"]
        );
        assert_eq!(usernames(&app, "/api/v1/users?role=department_staff", &county).await, ["yp.clerk"]);
        let city_wide = usernames(&app, "/api/v1/users?limit=200", &city).await;
        assert_eq!(city_wide, all.iter().filter(|n| *n != "demo-admin").cloned().collect::<Vec<_>>());

        // One user at a time: out of the subtree is not found, not forbidden.
        let id_of = |name: &'static str| {
            let (app, admin) = (&app, &admin);
            async move {
                let found = app.get(&format!("/api/v1/users?username={name}"), admin).await.expect(200);
                found["items"][0]["id"].as_str().expect("id").to_owned()
            }
        };
        for outside in ["demo-grid", "demo-dept", "demo-dispatcher", "demo-supervisor", "demo-admin"] {
            let id = id_of(outside).await;
            app.get(&format!("/api/v1/users/{id}"), &county).await.problem(404);
        }
        let clerk = app.get(&format!("/api/v1/users/{}", id_of("yp.clerk").await), &county).await.expect(200);
        assert_eq!(clerk["username"], "yp.clerk");
        app.get(&format!("/api/v1/users/{}", id_of("demo-dept").await), &city).await.expect(200);
        app.get(&format!("/api/v1/users/{}", id_of("demo-admin").await), &city).await.problem(404);
        app.get(&format!("/api/v1/users/{}", id_of("demo-admin").await), &admin).await.expect(200);
    })
    .await;
}
