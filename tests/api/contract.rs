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
