//! The rules around the flow: idempotent filing, concurrency, illegal transitions,
//! optimistic locking, bad input, masking and listing.

use std::collections::HashSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, each_backend, ticket_body};

fn id(value: &Value) -> String {
    value["id"].as_str().expect("id").to_owned()
}

async fn file_with_key(app: &TestApp, token: &str, key: &str, body: &Value) -> crate::helpers::Reply {
    let response = app
        .client
        .post(app.url("/api/v1/tickets"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .expect("sent");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    crate::helpers::Reply { status, headers, body }
}

async fn ticket_count(app: &TestApp, token: &str) -> usize {
    let list = app.get("/api/v1/tickets?limit=200", token).await.expect(200);
    list["items"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn filing_is_idempotent_per_key() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let body = ticket_body(&app.category("property", &demo.admin).await);
        let first = file_with_key(&app, &demo.grid, "phone-7f3a-0001", &body).await;
        assert_eq!(first.status.as_u16(), 201);
        let retry = file_with_key(&app, &demo.grid, "phone-7f3a-0001", &body).await;
        assert_eq!(retry.status.as_u16(), 200, "a retry is answered with the original");
        assert_eq!(retry.headers.get("idempotent-replayed").and_then(|v| v.to_str().ok()), Some("true"));
        assert_eq!(retry.body["id"], first.body["id"]);
        assert_eq!(retry.body["number"], first.body["number"]);

        let mut changed = body.clone();
        changed["title"] = json!("另一件事");
        let misuse = file_with_key(&app, &demo.grid, "phone-7f3a-0001", &changed).await.problem(422);
        assert!(misuse["errors"]["Idempotency-Key"].is_string());
        assert_eq!(ticket_count(&app, &demo.grid).await, 1);

        // Twenty phones-worth of retries at the same instant: still one ticket.
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let request = app
                .client
                .post(app.url("/api/v1/tickets"))
                .bearer_auth(&demo.grid)
                .header("idempotency-key", "storm-1")
                .json(&body);
            tasks.push(tokio::spawn(async move {
                let response = request.send().await.expect("sent");
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.expect("json"))
            }));
        }
        let mut ids = HashSet::new();
        let mut created = 0;
        for task in tasks {
            let (status, body) = task.await.expect("task");
            assert!(status == 200 || status == 201, "{status}: {body}");
            created += usize::from(status == 201);
            ids.insert(body["id"].as_str().expect("id").to_owned());
        }
        assert_eq!(ids.len(), 1, "every answer names the same ticket");
        assert_eq!(created, 1, "exactly one request created it");
        assert_eq!(ticket_count(&app, &demo.grid).await, 2);

        // Numbers stay unique and consecutive.
        let list = app.get("/api/v1/tickets", &demo.grid).await.expect(200);
        let numbers: HashSet<&str> =
            list["items"].as_array().expect("items").iter().filter_map(|t| t["number"].as_str()).collect();
        assert_eq!(numbers.len(), 2);
    })
    .await;
}

#[tokio::test]
async fn concurrent_filing_gets_distinct_numbers() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let body = ticket_body(&app.category("property", &demo.admin).await);
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let request = app.client.post(app.url("/api/v1/tickets")).bearer_auth(&demo.grid).json(&body);
            tasks.push(tokio::spawn(async move {
                request.send().await.expect("sent").json::<Value>().await.expect("json")
            }));
        }
        let mut numbers = HashSet::new();
        for task in tasks {
            let ticket = task.await.expect("task");
            numbers.insert(ticket["number"].as_str().expect("number").to_owned());
        }
        assert_eq!(numbers.len(), 10);
    })
    .await;
}

#[tokio::test]
async fn concurrent_department_actions() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let environment = app.category("environment", &demo.admin).await;
        let ticket = app.file(&demo.grid, &environment).await;
        let ticket_id = id(&ticket);
        let primary = app.dispatch_of(&ticket, "XF-CGJ", &demo.admin).await;

        // Two departments summoned by 吹哨 report in at the same moment: both succeed.
        let departments = [
            app.id_by_code("departments", "XF-ZJJ", &demo.admin).await,
            app.id_by_code("departments", "XF-YJJ", &demo.admin).await,
        ];
        let whistled = app
            .post(
                &format!("/api/v1/tickets/{ticket_id}/whistle"),
                &demo.dispatcher,
                json!({"department_ids": departments, "reason": "联合处置"}),
            )
            .await
            .expect(200);
        let zjj = app.user_in(&demo.admin, "zjj-clerk", "department_staff", "XF-ZJJ").await;
        let yjj = app.user_in(&demo.admin, "yjj-clerk", "department_staff", "XF-YJJ").await;
        let zjj_dispatch = app.dispatch_of(&whistled, "XF-ZJJ", &demo.admin).await;
        let yjj_dispatch = app.dispatch_of(&whistled, "XF-YJJ", &demo.admin).await;
        let (path_a, path_b) = (
            format!("/api/v1/dispatches/{zjj_dispatch}/acknowledge"),
            format!("/api/v1/dispatches/{yjj_dispatch}/acknowledge"),
        );
        let a = app.request(Method::POST, &path_a, Some(&zjj), Some(json!({})));
        let b = app.request(Method::POST, &path_b, Some(&yjj), Some(json!({})));

        let (a, b) = tokio::join!(a, b);
        assert_eq!((a.status.as_u16(), b.status.as_u16()), (200, 200));

        // Two resolves of one dispatch: exactly one wins, the other is told why.
        app.post(&format!("/api/v1/dispatches/{primary}/acknowledge"), &demo.dept, json!({})).await.expect(200);
        let path = format!("/api/v1/dispatches/{primary}/resolve");
        let first = app.request(Method::POST, &path, Some(&demo.dept), Some(json!({"reply": "甲"})));
        let second = app.request(Method::POST, &path, Some(&demo.dept), Some(json!({"reply": "乙"})));
        let (first, second) = tokio::join!(first, second);
        let mut statuses = [first.status.as_u16(), second.status.as_u16()];
        statuses.sort();
        assert_eq!(statuses, [200, 409]);
        let timeline = app.timeline(&ticket_id, &demo.dispatcher).await;
        assert_eq!(timeline.iter().filter(|k| *k == "dispatch_resolved").count(), 1);
        assert_eq!(timeline.iter().filter(|k| *k == "resolved").count(), 1);
    })
    .await;
}

#[tokio::test]
async fn illegal_transitions_are_409_naming_state_and_action() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let dispute = app.category("dispute", &demo.admin).await;
        let cgj = app.id_by_code("departments", "XF-CGJ", &demo.admin).await;
        let ticket = app.file(&demo.grid, &dispute).await;
        let ticket_id = id(&ticket);
        let path = |action: &str| format!("/api/v1/tickets/{ticket_id}/{action}");

        // Filed: nothing to whistle onto, nothing to rate.
        let whistle = app
            .post(&path("whistle"), &demo.dispatcher, json!({"department_ids": [cgj], "reason": "x"}))
            .await
            .problem(409);
        assert!(whistle["detail"].as_str().is_some_and(|d| d.contains("filed") && d.contains("whistle")), "{whistle}");
        let rate = app.post(&path("rating"), &demo.grid, json!({"score": 5})).await.problem(409);
        assert!(rate["detail"].as_str().is_some_and(|d| d.contains("filed") && d.contains("rate")), "{rate}");

        let dispatched =
            app.post(&path("dispatch"), &demo.dispatcher, json!({"primary_department_id": cgj})).await.expect(200);
        let dispatch_id = app.dispatch_of(&dispatched, "XF-CGJ", &demo.admin).await;
        let dpath = |action: &str| format!("/api/v1/dispatches/{dispatch_id}/{action}");
        // Dispatched: no second dispatch; a pending dispatch cannot be resolved or progressed,
        // and a return that never happened cannot be refused.
        app.post(&path("dispatch"), &demo.dispatcher, json!({})).await.problem(409);
        let early = app.post(&dpath("resolve"), &demo.dept, json!({"reply": "x"})).await.problem(409);
        assert!(early["detail"].as_str().is_some_and(|d| d.contains("pending") && d.contains("resolve")), "{early}");
        app.post(&dpath("progress"), &demo.dept, json!({"note": "x"})).await.problem(409);
        app.post(&dpath("reject-return"), &demo.dispatcher, json!({"reason": "x"})).await.problem(409);

        app.post(&dpath("acknowledge"), &demo.dept, json!({})).await.expect(200);
        app.post(&dpath("acknowledge"), &demo.dept, json!({})).await.problem(409);
        app.post(&dpath("return"), &demo.dept, json!({"reason": "x"})).await.problem(409);
        app.post(&dpath("resolve"), &demo.dept, json!({"reply": "好了"})).await.expect(200);
        app.post(&dpath("resolve"), &demo.dept, json!({"reply": "好了"})).await.problem(409);
        app.post(&path("cancel"), &demo.dispatcher, json!({"reason": "x"})).await.problem(409);

        app.post(&path("rating"), &demo.grid, json!({"score": 3})).await.expect(200);
        // Closed is final.
        app.post(&path("rating"), &demo.grid, json!({"score": 5})).await.problem(409);
        app.post(&path("cancel"), &demo.dispatcher, json!({"reason": "x"})).await.problem(409);
        app.post(&path("whistle"), &demo.dispatcher, json!({"department_ids": [cgj], "reason": "x"}))
            .await
            .problem(409);

        // Cancelled is final too, and it ends open dispatches.
        let another = app.file(&demo.grid, &dispute).await;
        let another_id = id(&another);
        app.post(
            &format!("/api/v1/tickets/{another_id}/dispatch"),
            &demo.dispatcher,
            json!({"primary_department_id": cgj}),
        )
        .await
        .expect(200);
        let cancelled = app
            .post(&format!("/api/v1/tickets/{another_id}/cancel"), &demo.dispatcher, json!({"reason": "重复工单"}))
            .await
            .expect(200);
        assert_eq!(cancelled["status"], "cancelled");
        assert_eq!(cancelled["dispatches"][0]["status"], "cancelled");
        let gone = app.dispatch_of(&cancelled, "XF-CGJ", &demo.admin).await;
        app.post(&format!("/api/v1/dispatches/{gone}/acknowledge"), &demo.dept, json!({})).await.problem(409);
        app.post(&format!("/api/v1/tickets/{another_id}/dispatch"), &demo.dispatcher, json!({})).await.problem(409);
    })
    .await;
}

#[tokio::test]
async fn stale_if_match_is_412_and_changes_nothing() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let dispute = app.category("dispute", &demo.admin).await;
        let ticket = app.file(&demo.grid, &dispute).await;
        let ticket_id = id(&ticket);
        let read = app.get(&format!("/api/v1/tickets/{ticket_id}"), &demo.dispatcher).await;
        let etag = read.headers.get("etag").and_then(|v| v.to_str().ok()).expect("etag").to_owned();
        assert!(etag.starts_with("\"1-"), "version 1, then the clock states: {etag}");

        let send = |if_match: &str, body: Value| {
            let request = app
                .client
                .post(app.url(&format!("/api/v1/tickets/{ticket_id}/dispatch")))
                .bearer_auth(&demo.dispatcher)
                .header("if-match", if_match)
                .json(&body);
            async move { request.send().await.expect("sent") }
        };
        let stale = send("\"0\"", json!({})).await;
        assert_eq!(stale.status().as_u16(), 412);
        let problem: Value = stale.json().await.expect("problem");
        assert_eq!(problem["type"], "urn:gridwhistle:problem:precondition-failed");
        let unchanged = app.get(&format!("/api/v1/tickets/{ticket_id}"), &demo.dispatcher).await.expect(200);
        assert_eq!(unchanged["status"], "filed");
        assert_eq!(unchanged["version"], 1);
        assert_eq!(app.timeline(&ticket_id, &demo.dispatcher).await, ["filed"]);

        let garbled = send("yesterday", json!({})).await;
        assert_eq!(garbled.status().as_u16(), 400);
        let fresh = send(&etag, json!({})).await;
        assert_eq!(fresh.status().as_u16(), 200);
        let fresh_tag = fresh.headers().get("etag").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(fresh_tag.starts_with("\"2-"), "{fresh_tag}");
        // The version the client held is now stale for the next write.
        let cancel = app
            .client
            .post(app.url(&format!("/api/v1/tickets/{ticket_id}/cancel")))
            .bearer_auth(&demo.dispatcher)
            .header("if-match", etag.as_str())
            .json(&json!({"reason": "重复"}))
            .send()
            .await
            .expect("sent");
        assert_eq!(cancel.status().as_u16(), 412);
        assert_eq!(app.ticket(&ticket_id, &demo.dispatcher).await["status"], "dispatched");
    })
    .await;
}

#[tokio::test]
async fn bad_input_is_refused_and_writes_nothing() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let category = app.category("property", &demo.admin).await;
        let with = |change: &dyn Fn(&mut Value)| {
            let mut body = ticket_body(&category);
            change(&mut body);
            body
        };
        let cases: Vec<(Value, &str)> = vec![
            (with(&|b| drop(b.as_object_mut().map(|o| o.remove("title")))), "title"),
            (with(&|b| b["title"] = json!("")), "title"),
            (with(&|b| b["description"] = json!("长".repeat(2001))), "description"),
            (with(&|b| b["location"] = json!({"lat": 200.0, "lon": 112.7})), "location"),
            (with(&|b| b["location"] = json!({"lat": "north", "lon": 112.7})), "location.lat"),
            (with(&|b| b["location"] = json!({"lat": 30.0, "lon": 120.0})), "location"),
            (with(&|b| drop(b.as_object_mut().map(|o| o.remove("location")))), "location"),
            (with(&|b| b["category_id"] = json!("00000000-0000-7000-8000-000000000000")), "category_id"),
            (with(&|b| b["category_id"] = json!("not-a-uuid")), "category_id"),
            (with(&|b| b["priority"] = json!("asap")), "priority"),
            (with(&|b| b["channel"] = json!("carrier-pigeon")), "channel"),
            (with(&|b| b["resident"]["phone"] = json!("call me maybe")), "resident.phone"),
            (with(&|b| b["resident"]["name"] = json!("名".repeat(51))), "resident.name"),
            (with(&|b| b["attachments"][0]["sha256"] = json!("xyz")), "attachments[0].sha256"),
            (with(&|b| b["attachments"] = json!(vec![b["attachments"][0].clone(); 11])), "attachments"),
            (with(&|b| b["grid_unit_id"] = json!("00000000-0000-7000-8000-000000000000")), "grid_unit_id"),
            (with(&|b| b["extra"] = json!(1)), "extra"),
            (with(&|b| b["title"] = json!("a\u{0007}b")), "title"),
        ];
        for (body, field) in cases {
            let reply = app.post("/api/v1/tickets", &demo.grid, body).await.problem(422);
            assert!(reply["errors"][field].is_string(), "{field}: {reply}");
        }
        // Outside one's own grid: the grid worker may file, the place is wrong — 422 on location.
        let elsewhere = with(&|b| b["location"] = json!({"lat": 38.41, "lon": 112.77}));
        assert!(
            app.post("/api/v1/tickets", &demo.grid, elsewhere).await.problem(422)["errors"]["location"].is_string()
        );
        assert_eq!(ticket_count(&app, &demo.admin).await, 0, "nothing was written");

        let first = app.file(&demo.grid, &category).await;
        assert!(
            first["number"].as_str().is_some_and(|n| n.ends_with("-000001")),
            "refused requests used no number: {first}"
        );
    })
    .await;
}

#[tokio::test]
async fn resident_contact_is_masked_for_roles_that_do_not_call_back() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let ticket = app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;
        let ticket_id = id(&ticket);
        // Every read is masked; who may reveal the contact through /contact differs.
        let seen_by = |token: String| {
            let app = &app;
            let path = format!("/api/v1/tickets/{ticket_id}");
            async move {
                let ticket = app.get(&path, &token).await.expect(200);
                (ticket["resident"].clone(), ticket["contact_revealable"].as_bool().expect("revealable"))
            }
        };
        let masked = json!({"name": "张**", "phone": "138****5678"});
        assert_eq!(seen_by(demo.grid.clone()).await, (masked.clone(), true), "the filing grid worker");
        assert_eq!(seen_by(demo.dispatcher.clone()).await, (masked.clone(), true), "the dispatcher in charge");
        assert_eq!(seen_by(demo.supervisor.clone()).await, (masked.clone(), false));
        assert_eq!(seen_by(demo.admin.clone()).await, (masked.clone(), false));
        assert_eq!(seen_by(demo.dept.clone()).await, (masked.clone(), false), "not before reporting in");
        let dispatch_id = app.dispatch_of(&ticket, "XF-CGJ", &demo.admin).await;
        app.post(&format!("/api/v1/dispatches/{dispatch_id}/acknowledge"), &demo.dept, json!({})).await.expect(200);
        assert_eq!(seen_by(demo.dept.clone()).await, (masked.clone(), true), "after reporting in");
        // A colleague grid worker in the same grid sees the ticket but may not reveal the contact.
        let colleague = app.user_in(&demo.admin, "colleague", "grid_worker", "140902001001-G01").await;
        assert_eq!(seen_by(colleague).await, (masked.clone(), false));
        let listed = app.get("/api/v1/tickets?view=full", &demo.supervisor).await.expect(200);
        assert_eq!(listed["items"][0]["resident"], masked, "lists mask too");
        assert_eq!(listed["items"][0]["contact_masked"], true);
    })
    .await;
}

#[tokio::test]
async fn listing_filters_newest_first_with_stable_cursors() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let environment = app.category("environment", &demo.admin).await;
        let dispute = app.category("dispute", &demo.admin).await;
        let mut filed = Vec::new();
        for i in 0..5 {
            let category = if i % 2 == 0 { &environment } else { &dispute };
            filed.push(id(&app.file(&demo.grid, category).await));
        }
        let all = app.get("/api/v1/tickets", &demo.dispatcher).await.expect(200);
        let ids: Vec<&str> = all["items"].as_array().expect("items").iter().filter_map(|t| t["id"].as_str()).collect();
        let newest_first: Vec<&str> = filed.iter().rev().map(String::as_str).collect();
        assert_eq!(ids, newest_first);

        let page1 = app.get("/api/v1/tickets?limit=2", &demo.dispatcher).await.expect(200);
        let cursor = page1["next_cursor"].as_str().expect("more pages").to_owned();
        // A ticket filed between two page loads does not shift the next page.
        app.file(&demo.grid, &environment).await;
        let page2 = app.get(&format!("/api/v1/tickets?limit=2&cursor={cursor}"), &demo.dispatcher).await.expect(200);
        assert_eq!(page2["items"][0]["id"], filed[2].as_str());

        let dispatched = app.get("/api/v1/tickets?status=dispatched", &demo.dispatcher).await.expect(200);
        assert_eq!(dispatched["items"].as_array().map(Vec::len), Some(4), "environment is auto-dispatched");
        let by_category = app.get(&format!("/api/v1/tickets?category={dispute}"), &demo.dispatcher).await.expect(200);
        assert_eq!(by_category["items"].as_array().map(Vec::len), Some(2));
        let cgj = app.id_by_code("departments", "XF-CGJ", &demo.admin).await;
        let by_department = app.get(&format!("/api/v1/tickets?department={cgj}"), &demo.dispatcher).await.expect(200);
        assert_eq!(by_department["items"].as_array().map(Vec::len), Some(4));
        let other_street = app.id_by_code("grid-units", "140902002000", &demo.admin).await;
        let elsewhere = app.get(&format!("/api/v1/tickets?unit={other_street}"), &demo.supervisor).await.expect(200);
        assert_eq!(elsewhere["items"].as_array().map(Vec::len), Some(0));
        app.get("/api/v1/tickets?status=reopened", &demo.dispatcher).await.problem(422);
        let future = app.get("/api/v1/tickets?created_from=2999-01-01T00:00:00Z", &demo.dispatcher).await.expect(200);
        assert_eq!(future["items"].as_array().map(Vec::len), Some(0));
    })
    .await;
}
