//! Who may do what to which ticket: every ticket endpoint against every role, inside and
//! outside the caller's jurisdiction. Wrong role: 403. Other jurisdiction: 404, exactly like
//! an id that does not exist.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, each_backend, ticket_body};

struct Cast {
    /// (name, token, in jurisdiction of the ticket)
    people: Vec<(&'static str, String)>,
}

impl Cast {
    fn token(&self, name: &str) -> &str {
        &self.people.iter().find(|(n, _)| *n == name).expect("cast member").1
    }
}

async fn expect_each(
    app: &TestApp,
    cast: &Cast,
    method: Method,
    path: &str,
    body: Option<Value>,
    expected: &[(&str, u16)],
) {
    for (name, status) in expected {
        let reply = app.request(method.clone(), path, Some(cast.token(name)), body.clone()).await;
        assert_eq!(reply.status.as_u16(), *status, "{method} {path} as {name}: {}", reply.body);
    }
}

#[tokio::test]
async fn ticket_permission_matrix() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let admin = demo.admin.clone();
        let cast = Cast {
            people: vec![
                ("grid", demo.grid.clone()),
                ("colleague", app.user_in(&admin, "colleague", "grid_worker", "140902001001-G01").await),
                ("grid-elsewhere", app.user_in(&admin, "grid2", "grid_worker", "140902002001-G01").await),
                ("dispatcher", demo.dispatcher.clone()),
                ("dispatcher-elsewhere", app.user_in(&admin, "dispatcher2", "dispatcher", "140902002000").await),
                ("dept", demo.dept.clone()),
                ("dept-elsewhere", app.user_in(&admin, "mzj-clerk", "department_staff", "XF-MZJ").await),
                ("supervisor", demo.supervisor.clone()),
                ("supervisor-elsewhere", app.user_in(&admin, "supervisor2", "supervisor", "140981").await),
                ("admin", admin.clone()),
            ],
        };
        let environment = app.category("environment", &admin).await;
        let cgj = app.id_by_code("departments", "XF-CGJ", &admin).await;

        // Filing: grid workers in their own grid and dispatchers in their township.
        let body = ticket_body(&environment);
        expect_each(
            &app,
            &cast,
            Method::POST,
            "/api/v1/tickets",
            Some(body.clone()),
            &[
                ("dept", 403),
                ("supervisor", 403),
                ("admin", 403),
                // May file, but not there: 422 on location (issue #10, item 5).
                ("grid-elsewhere", 422),
                ("dispatcher-elsewhere", 422),
                ("dispatcher", 201),
            ],
        )
        .await;
        let ticket = app.file(cast.token("grid"), &environment).await;
        let ticket_id = ticket["id"].as_str().expect("id").to_owned();
        let dispatch_id = app.dispatch_of(&ticket, "XF-CGJ", &admin).await;
        let t = |suffix: &str| format!("/api/v1/tickets/{ticket_id}{suffix}");
        let d = |suffix: &str| format!("/api/v1/dispatches/{dispatch_id}{suffix}");

        let readers = [
            ("grid", 200),
            ("colleague", 200),
            ("dispatcher", 200),
            ("dept", 200),
            ("supervisor", 200),
            ("admin", 200),
        ];
        let outsiders = [
            ("grid-elsewhere", 404),
            ("dispatcher-elsewhere", 404),
            ("dept-elsewhere", 404),
            ("supervisor-elsewhere", 404),
        ];
        for path in [t(""), t("/events"), d("")] {
            expect_each(&app, &cast, Method::GET, &path, None, &readers).await;
            expect_each(&app, &cast, Method::GET, &path, None, &outsiders).await;
        }
        // Lists show only what is in jurisdiction (two tickets: the dispatcher filed one above).
        for (name, count) in [
            ("grid-elsewhere", 0),
            ("dispatcher-elsewhere", 0),
            ("dept-elsewhere", 0),
            ("supervisor-elsewhere", 0),
            ("dept", 2),
            ("supervisor", 2),
        ] {
            let list = app.get("/api/v1/tickets", cast.token(name)).await.expect(200);
            assert_eq!(list["items"].as_array().map(Vec::len), Some(count), "tickets seen by {name}");
        }
        let mine = app.get("/api/v1/dispatches", cast.token("dept-elsewhere")).await.expect(200);
        assert_eq!(mine["items"].as_array().map(Vec::len), Some(0));

        let non_dispatchers =
            [("grid", 403), ("dept", 403), ("supervisor", 403), ("admin", 403), ("dispatcher-elsewhere", 404)];
        // The ticket is dispatched already: the dispatcher in charge gets past the permission
        // check to the state check.
        expect_each(&app, &cast, Method::POST, &t("/dispatch"), Some(json!({})), &non_dispatchers).await;
        expect_each(&app, &cast, Method::POST, &t("/dispatch"), Some(json!({})), &[("dispatcher", 409)]).await;
        let whistle = Some(json!({"department_ids": [cgj], "reason": "联合处置"}));
        expect_each(&app, &cast, Method::POST, &t("/whistle"), whistle.clone(), &non_dispatchers).await;
        expect_each(&app, &cast, Method::POST, &t("/whistle"), whistle, &[("dispatcher", 409)]).await;
        let cancel = Some(json!({"reason": "重复"}));
        expect_each(&app, &cast, Method::POST, &t("/cancel"), cancel.clone(), &non_dispatchers).await;
        let stale = app
            .client
            .post(app.url(&t("/cancel")))
            .bearer_auth(cast.token("dispatcher"))
            .header("if-match", "\"0\"")
            .json(&json!({"reason": "重复"}))
            .send()
            .await
            .expect("sent");
        assert_eq!(stale.status().as_u16(), 412, "the dispatcher in charge reaches the version check");

        // The department's own actions.
        let non_handlers =
            [("grid", 403), ("dispatcher", 403), ("supervisor", 403), ("admin", 403), ("dept-elsewhere", 404)];
        expect_each(&app, &cast, Method::POST, &d("/acknowledge"), Some(json!({})), &non_handlers).await;
        expect_each(&app, &cast, Method::POST, &d("/acknowledge"), Some(json!({})), &[("dept", 200)]).await;
        let reason = Some(json!({"reason": "不属于本部门"}));
        expect_each(&app, &cast, Method::POST, &d("/return"), reason.clone(), &non_handlers).await;
        expect_each(&app, &cast, Method::POST, &d("/return"), reason.clone(), &[("dept", 409)]).await;
        let note = Some(json!({"note": "已联系居民"}));
        expect_each(&app, &cast, Method::POST, &d("/progress"), note.clone(), &non_handlers).await;
        expect_each(&app, &cast, Method::POST, &d("/progress"), note, &[("dept", 200)]).await;
        let refuse = [
            ("grid", 403),
            ("dept", 403),
            ("supervisor", 403),
            ("admin", 403),
            ("dispatcher-elsewhere", 404),
            ("dispatcher", 409),
        ];
        expect_each(&app, &cast, Method::POST, &d("/reject-return"), reason, &refuse).await;
        let reply = Some(json!({"reply": "已处理"}));
        expect_each(&app, &cast, Method::POST, &d("/resolve"), reply.clone(), &non_handlers).await;
        expect_each(&app, &cast, Method::POST, &d("/resolve"), reply, &[("dept", 200)]).await;

        // Rating: the filing grid worker or the dispatcher; a colleague in the same grid may
        // see the ticket but not rate it.
        let score = Some(json!({"score": 5}));
        expect_each(
            &app,
            &cast,
            Method::POST,
            &t("/rating"),
            score.clone(),
            &[
                ("colleague", 403),
                ("dept", 403),
                ("supervisor", 403),
                ("admin", 403),
                ("grid-elsewhere", 404),
                ("dispatcher-elsewhere", 404),
            ],
        )
        .await;
        expect_each(&app, &cast, Method::POST, &t("/rating"), score, &[("grid", 200)]).await;
        assert_eq!(app.ticket(&ticket_id, &admin).await["status"], "closed");

        // Ids that do not exist answer like ids out of jurisdiction.
        let missing = "00000000-0000-7000-8000-000000000000";
        let absent = app.get(&format!("/api/v1/tickets/{missing}"), cast.token("dispatcher")).await.problem(404);
        let hidden = app.get(&t(""), cast.token("dispatcher-elsewhere")).await.problem(404);
        assert_eq!(absent["detail"], hidden["detail"]);
    })
    .await;
}
