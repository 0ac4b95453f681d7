//! Every error class answers with problem details and changes nothing.

use reqwest::Method;
use serde_json::json;

use crate::helpers::each_backend;

#[tokio::test]
async fn each_error_class_is_a_problem_document() {
    each_backend(|app| async move {
        app.seed_demo().await;
        let admin = app.demo_token("demo-admin").await;
        let county = app.id_by_code("grid-units", "140902", &admin).await;

        // 400: not JSON at all.
        let malformed = app
            .client
            .post(app.url("/api/v1/categories"))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body("{\"code\": \"x\",")
            .send()
            .await
            .expect("sent");
        assert_eq!(malformed.status().as_u16(), 400);
        let body: serde_json::Value = malformed.json().await.expect("problem body");
        assert_eq!(body["type"], "urn:gridwhistle:problem:bad-request");

        // 415: JSON sent as something else.
        let plain = app
            .client
            .post(app.url("/api/v1/categories"))
            .bearer_auth(&admin)
            .header("content-type", "text/plain")
            .body("{\"code\": \"x\", \"name\": \"y\"}")
            .send()
            .await
            .expect("sent");
        assert_eq!(plain.status().as_u16(), 415);

        // 422: missing field, wrong type, unknown field, unknown enum value — each named.
        let missing = app.post("/api/v1/categories", &admin, json!({"code": "x"})).await.problem(422);
        assert!(missing["errors"]["name"].is_string(), "{missing}");
        let wrong_type = app.post("/api/v1/categories", &admin, json!({"code": "x", "name": 5})).await.problem(422);
        assert!(wrong_type["errors"]["name"].is_string(), "{wrong_type}");
        let unknown = app.post("/api/v1/categories", &admin, json!({"code": "x", "name": "y", "colour": "red"})).await.problem(422);
        assert!(unknown["errors"]["colour"].is_string(), "{unknown}");
        let bad_enum = app
            .post("/api/v1/categories", &admin, json!({"code": "x", "name": "y", "default_priority": "asap"}))
            .await
            .problem(422);
        assert!(bad_enum["errors"]["default_priority"].is_string(), "{bad_enum}");
        let several = app
            .post("/api/v1/departments", &admin, json!({"code": "has space", "name": "", "unit_id": county, "email": "nope"}))
            .await
            .problem(422);
        let fields: Vec<&str> = several["errors"].as_object().expect("errors").keys().map(String::as_str).collect();
        assert_eq!(fields, ["code", "email", "name"], "all problems at once");
        let oversized = app.post("/api/v1/categories", &admin, json!({"code": "x", "name": "长".repeat(101)})).await.problem(422);
        assert!(oversized["errors"]["name"].is_string());
        let dangling = app
            .post("/api/v1/departments", &admin, json!({"code": "D1", "name": "x", "unit_id": "00000000-0000-7000-8000-000000000000", "email": "d@gridwhistle.example"}))
            .await
            .problem(422);
        assert!(dangling["errors"]["unit_id"].is_string());

        // 404: unknown id, a path segment that is no id, a route that does not exist.
        app.get("/api/v1/categories/00000000-0000-7000-8000-000000000000", &admin).await.problem(404);
        app.get("/api/v1/categories/not-an-id", &admin).await.problem(404);
        app.get("/api/v1/no-such-thing", &admin).await.problem(404);

        // 405: the resource exists, the method does not.
        app.request(Method::PUT, "/api/v1/categories", Some(&admin), Some(json!({}))).await.problem(405);

        // 409: duplicate code.
        let duplicate = app.post("/api/v1/categories", &admin, json!({"code": "other", "name": "其他2"})).await.problem(409);
        assert!(duplicate["detail"].as_str().is_some_and(|d| d.contains("other")));

        // 413: a body over the limit (64 KiB in tests).
        let huge = json!({"code": "big", "name": "x".repeat(70_000)});
        app.post("/api/v1/categories", &admin, huge).await.problem(413);

        // None of the above wrote anything.
        let categories = app.get("/api/v1/categories?limit=200", &admin).await.expect(200);
        assert_eq!(categories["items"].as_array().map(Vec::len), Some(15));
        let departments = app.get("/api/v1/departments?limit=200", &admin).await.expect(200);
        assert_eq!(departments["items"].as_array().map(Vec::len), Some(11));
    })
    .await;
}
