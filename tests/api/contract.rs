//! Small contract points a client team relies on (issue 10): defaults that match the
//! README, local times without an offset, conditional reads.

use serde_json::Value;

use crate::helpers::each_backend;

#[tokio::test]
async fn the_trend_defaults_to_the_last_thirty_days() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let trend = app.get("/api/v1/reports/trend?interval=day", &demo.supervisor).await.expect(200);
        let points = trend["points"].as_array().expect("points");
        assert_eq!(points.len(), 30, "{trend}");
        let today = app.clock.now_for_tests().with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8"));
        assert_eq!(points[29]["to"], today.date_naive().to_string());
    })
    .await;
}

#[tokio::test]
async fn a_deadline_start_without_offset_is_the_citys_local_time() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let ask = |start: &str| {
            let app = &app;
            let token = demo.dispatcher.clone();
            let path = format!("/api/v1/calendar/deadline?start={start}&duration=2h%20working");
            async move { app.get(&path, &token).await.expect(200)["deadline"].clone() }
        };
        // Friday 27 Nov 2026, 09:00 in 忻州: two working hours later is 11:00 local.
        let expected = Value::from("2026-11-27T03:00:00Z");
        assert_eq!(ask("2026-11-27T09:00:00%2B08:00").await, expected);
        assert_eq!(ask("2026-11-27T09:00:00").await, expected, "no offset: local time");
        assert_eq!(ask("2026-11-27T09:00:00+08:00").await, expected, "an unencoded + arrives as a space");
        let problem = app
            .get("/api/v1/calendar/deadline?start=next%20friday&duration=2h%20working", &demo.dispatcher)
            .await
            .problem(422);
        assert!(problem["errors"]["start"].is_string(), "{problem}");
    })
    .await;
}

#[tokio::test]
async fn a_current_copy_is_not_sent_again_and_its_tag_still_guards_writes() {
    each_backend(|app| async move {
        app.clock.set("2026-12-01T01:00:00Z".parse().expect("instant"));
        let demo = app.demo().await;
        let ticket = app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;
        let path = app.url(&format!("/api/v1/tickets/{}", ticket["id"].as_str().expect("id")));
        let read = |tag: Option<String>| {
            let app = &app;
            let (path, token) = (path.clone(), demo.dispatcher.clone());
            async move {
                let mut request = app.client.get(path).bearer_auth(token);
                if let Some(tag) = tag {
                    request = request.header("If-None-Match", tag);
                }
                let reply = request.send().await.expect("sent");
                let tag = reply.headers().get("etag").map(|v| v.to_str().expect("ascii").to_owned());
                (reply.status().as_u16(), tag, reply.text().await.expect("body"))
            }
        };
        let (status, tag, _) = read(None).await;
        assert_eq!(status, 200);
        let tag = tag.expect("an ETag");
        let (status, again, body) = read(Some(tag.clone())).await;
        assert_eq!((status, body.as_str()), (304, ""), "unchanged: no body");
        assert_eq!(again.as_deref(), Some(tag.as_str()));
        assert_eq!(read(Some(format!("W/{tag}"))).await.0, 304, "a weak form matches too");

        // Time alone moves a clock from on_track to warning: the copy is stale, the tag too.
        app.clock.advance(chrono::Duration::minutes(100));
        let dispatcher = app.demo_token("demo-dispatcher").await;
        let (status, newer, _) = {
            let reply = app
                .client
                .get(path.clone())
                .bearer_auth(&dispatcher)
                .header("If-None-Match", tag.clone())
                .send()
                .await
                .expect("sent");
            let newer = reply.headers().get("etag").map(|v| v.to_str().expect("ascii").to_owned());
            (reply.status().as_u16(), newer, ())
        };
        assert_eq!(status, 200, "the acknowledge clock is in its warning now");
        let newer = newer.expect("an ETag");
        assert_ne!(newer, tag);

        // The tag of a read is what If-Match takes on the next write.
        let ticket_id = ticket["id"].as_str().expect("id");
        let cancel = app
            .client
            .post(app.url(&format!("/api/v1/tickets/{ticket_id}/cancel")))
            .bearer_auth(&dispatcher)
            .header("If-Match", newer)
            .json(&serde_json::json!({"reason": "重复工单"}))
            .send()
            .await
            .expect("sent");
        assert_eq!(cancel.status().as_u16(), 200);
    })
    .await;
}

#[tokio::test]
async fn operator_and_list_messages_speak_chinese_without_parser_wording() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let bad_year =
            serde_json::json!({"year": 2027, "days": [{"name": "元旦", "date": "2027-13-01", "isOffDay": true}]});
        let problem = app.post("/api/v1/calendar", &demo.admin, bad_year).await.problem(422);
        let text = problem.to_string();
        assert!(!text.contains("line") && !text.contains("column"), "parser wording: {text}");
        assert!(text.contains("days[0].date"), "names where: {text}");
        let limit = app.get("/api/v1/tickets?limit=0", &demo.dispatcher).await.problem(422);
        assert_eq!(limit["errors"]["limit"], "应为 1 到 200");
        let duration = app
            .get("/api/v1/calendar/deadline?start=2026-11-27T09:00:00&duration=7x", &demo.dispatcher)
            .await
            .problem(422);
        assert!(duration["errors"]["duration"].as_str().is_some_and(|m| m.starts_with("应为时长")), "{duration}");
    })
    .await;
}

#[tokio::test]
async fn a_caller_without_the_permission_gets_403_whatever_the_query_string() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        for path in [
            "/api/v1/reports/sla",
            "/api/v1/reports/trend",
            "/api/v1/reports/overdue?zzz=1",
            "/api/v1/audit?bogus=1",
            "/api/v1/escalation-rules?x=1",
            "/api/v1/users?limit=abc",
            "/api/v1/notifications?status=bogus",
        ] {
            for token in [&demo.grid, &demo.dept] {
                let reply = app.get(path, token).await;
                assert_eq!(reply.status.as_u16(), 403, "{path}: {}", reply.body);
            }
        }
        // Those allowed still get the query checked.
        app.get("/api/v1/reports/sla", &demo.supervisor).await.problem(422);
        app.get("/api/v1/audit?bogus=1", &demo.admin).await.problem(422);
    })
    .await;
}

#[tokio::test]
async fn a_rating_out_of_range_is_told_the_range_whatever_the_number() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let ticket = app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;
        let path = format!("/api/v1/tickets/{}/rating", ticket["id"].as_str().expect("id"));
        for score in [-1, 0, 6, 300] {
            let problem = app.post(&path, &demo.grid, serde_json::json!({"score": score})).await.problem(422);
            assert_eq!(problem["errors"]["score"], "应为 1（非常不满意）到 5（非常满意）", "{score}: {problem}");
        }
    })
    .await;
}
