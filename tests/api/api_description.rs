//! The API description a client team generates its client from: `/openapi.json` declares what
//! the server really sends, and the browsable reference at `/docs/` works with no network.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, backends, each_backend, spawn_app_with};

const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// Every operation of the document: (method, path, operation object).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(op) = item.get(*method) {
                found.push((method.to_string(), path.clone(), op.clone()));
            }
        }
    }
    found
}

async fn document(app: &TestApp) -> Value {
    app.request(Method::GET, "/openapi.json", None, None).await.expect(200)
}

/// The media types the document declares for `status` of one operation, or a failure naming
/// what is missing.
#[track_caller]
fn declared(doc: &Value, method: &str, path: &str, status: u16) -> Vec<String> {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is not in the document");
    let response = &op["responses"][status.to_string()];
    assert!(response.is_object(), "{} ({method} {path}) does not declare {status}", op["operationId"]);
    response["content"].as_object().map(|c| c.keys().cloned().collect()).unwrap_or_default()
}

/// A response a client received: it is a problem document, and the document declared exactly
/// that status with `application/problem+json` for the operation.
#[track_caller]
fn sent_as_declared(doc: &Value, method: &str, path: &str, response: (u16, String)) {
    let (status, content_type) = response;
    assert_eq!(content_type, "application/problem+json", "{method} {path} answered {status}");
    let declared = declared(doc, method, path, status);
    assert_eq!(declared, ["application/problem+json"], "{method} {path} {status} is declared as {declared:?}");
}

async fn send(request: reqwest::RequestBuilder) -> (u16, String) {
    let response = request.send().await.expect("sent");
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    (response.status().as_u16(), content_type)
}

#[tokio::test]
async fn operation_ids_are_unique_and_say_what_they_do() {
    let app = crate::helpers::spawn_app(Backend::Sqlite).await;
    let doc = document(&app).await;
    let mut seen = BTreeMap::<String, String>::new();
    for (method, path, op) in operations(&doc) {
        let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
        assert!(
            id.chars().next().is_some_and(|c| c.is_ascii_lowercase()) && id.chars().all(|c| c.is_ascii_alphanumeric()),
            "{id} ({method} {path}) is not lowerCamelCase"
        );
        if let Some(other) = seen.insert(id.to_owned(), format!("{method} {path}")) {
            panic!("operationId {id} used by {other} and {method} {path}");
        }
    }
    for (id, at) in [
        ("listDepartments", "get /api/v1/departments"),
        ("acknowledgeDispatch", "post /api/v1/dispatches/{id}/acknowledge"),
        ("fileTicket", "post /api/v1/tickets"),
        ("getTicket", "get /api/v1/tickets/{id}"),
        ("resolveDispatch", "post /api/v1/dispatches/{id}/resolve"),
        ("resolveRouting", "get /api/v1/routing/resolve"),
        ("logIn", "post /api/v1/auth/token"),
    ] {
        assert_eq!(seen.get(id).map(String::as_str), Some(at), "{id}");
    }
}

/// Writes the served document to `<target>/openapi.json`, where `.ci/run` hands it to
/// `openapi-spec-validator` (the PyPI tool that validates OpenAPI 3.1).
#[tokio::test]
async fn served_document_is_written_for_the_validator() {
    let app = crate::helpers::spawn_app(Backend::Sqlite).await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    std::fs::create_dir_all(&target).expect("target dir");
    let text = serde_json::to_string_pretty(&doc).expect("json");
    std::fs::write(target.join("openapi.json"), text).expect("openapi.json written");
}

#[tokio::test]
async fn every_operation_has_a_summary_a_description_and_a_known_tag() {
    let app = crate::helpers::spawn_app(Backend::Sqlite).await;
    let doc = document(&app).await;
    let tags: BTreeSet<&str> = doc["tags"]
        .as_array()
        .expect("top-level tags")
        .iter()
        .map(|t| {
            assert!(t["description"].as_str().is_some_and(|d| !d.is_empty()), "tag {t} has no description");
            t["name"].as_str().expect("tag name")
        })
        .collect();
    for (method, path, op) in operations(&doc) {
        let id = &op["operationId"];
        let summary = op["summary"].as_str().unwrap_or_default();
        assert!(!summary.is_empty() && !summary.contains('\n'), "{id} ({method} {path}) needs a one-line summary");
        let description = op["description"].as_str().unwrap_or_default();
        assert!(!description.trim().is_empty(), "{id} ({method} {path}) has no description");
        let op_tags = op["tags"].as_array().expect("tags");
        assert_eq!(op_tags.len(), 1, "{id}: one area");
        assert!(tags.contains(op_tags[0].as_str().unwrap_or_default()), "{id}: tag {} is not declared", op_tags[0]);
        if op.get("security").is_some() {
            assert!(description.contains("**Roles:**"), "{id} does not say who may call it: {description}");
            declared(&doc, &method, &path, 401);
        }
        for (status, response) in op["responses"].as_object().expect("responses") {
            if status.starts_with('4') || status.starts_with('5') {
                let content: Vec<&String> =
                    response["content"].as_object().map(|c| c.keys().collect()).unwrap_or_default();
                assert_eq!(content, ["application/problem+json"], "{id} {status}");
            }
        }
    }
    // The roles come from the permission table the server enforces.
    let file = &doc["paths"]["/api/v1/tickets"]["post"];
    let roles = file["description"].as_str().unwrap_or_default();
    assert!(roles.contains("`grid_worker`") && roles.contains("`dispatcher`"), "{roles}");
    assert!(!roles.contains("`supervisor`"), "{roles}");
    declared(&doc, "post", "/api/v1/tickets", 403);
    let list = &doc["paths"]["/api/v1/departments"]["get"];
    assert!(list["description"].as_str().unwrap_or_default().contains("any signed-in user"), "{list}");
}

/// Each error class a client can meet, provoked for real: the answer is problem+json and the
/// document declared that very status and media type for the operation.
#[tokio::test]
async fn errors_are_declared_as_they_are_sent() {
    each_backend(|app| async move {
        let doc = document(&app).await;
        let demo = app.demo().await;
        let c = &app.client;
        let url = |p: &str| app.url(p);
        let category = app.category("property", &demo.admin).await;

        // 401: no token, on a read and on a write.
        sent_as_declared(&doc, "get", "/api/v1/me", send(c.get(url("/api/v1/me"))).await);
        sent_as_declared(&doc, "get", "/api/v1/departments", send(c.get(url("/api/v1/departments"))).await);
        sent_as_declared(&doc, "post", "/api/v1/tickets", send(c.post(url("/api/v1/tickets")).json(&json!({}))).await);

        // 403: a role without the permission.
        let sla = "/api/v1/reports/sla?from=2026-12-01&to=2026-12-02&group_by=department";
        sent_as_declared(&doc, "get", "/api/v1/reports/sla", send(c.get(url(sla)).bearer_auth(&demo.dept)).await);
        let county = app.id_by_code("grid-units", "140902", &demo.admin).await;
        let department = json!({"code": "X1", "name": "某局", "unit_id": county});
        sent_as_declared(
            &doc,
            "post",
            "/api/v1/departments",
            send(c.post(url("/api/v1/departments")).bearer_auth(&demo.grid).json(&department)).await,
        );

        // 404: an id that names nothing.
        let nothing = format!("/api/v1/tickets/{}", uuid::Uuid::now_v7());
        sent_as_declared(&doc, "get", "/api/v1/tickets/{id}", send(c.get(url(&nothing)).bearer_auth(&demo.grid)).await);

        // 400, 413, 415, 422 on a body.
        let tickets = url("/api/v1/tickets");
        let malformed = c.post(&tickets).bearer_auth(&demo.grid).header("content-type", "application/json").body("{");
        sent_as_declared(&doc, "post", "/api/v1/tickets", send(malformed).await);
        let huge = json!({"title": "x".repeat(70_000)});
        sent_as_declared(
            &doc,
            "post",
            "/api/v1/tickets",
            send(c.post(&tickets).bearer_auth(&demo.grid).json(&huge)).await,
        );
        let plain = c.post(&tickets).bearer_auth(&demo.grid).header("content-type", "text/plain").body("{}");
        sent_as_declared(&doc, "post", "/api/v1/tickets", send(plain).await);
        sent_as_declared(
            &doc,
            "post",
            "/api/v1/tickets",
            send(c.post(&tickets).bearer_auth(&demo.grid).json(&json!({}))).await,
        );
        // …and on a query string.
        let bad_query = url("/api/v1/tickets?colour=red");
        sent_as_declared(&doc, "get", "/api/v1/tickets", send(c.get(bad_query).bearer_auth(&demo.grid)).await);

        // 412 then 409 on a ticket write.
        let ticket = app.file(&demo.grid, &category).await;
        let cancel = format!("/api/v1/tickets/{}/cancel", ticket["id"].as_str().expect("id"));
        let reason = json!({"reason": "重复工单"});
        let stale = c.post(url(&cancel)).bearer_auth(&demo.dispatcher).header("if-match", "\"99\"").json(&reason);
        sent_as_declared(&doc, "post", "/api/v1/tickets/{id}/cancel", send(stale).await);
        app.post(&cancel, &demo.dispatcher, reason.clone()).await.expect(200);
        let again = c.post(url(&cancel)).bearer_auth(&demo.dispatcher).json(&reason);
        sent_as_declared(&doc, "post", "/api/v1/tickets/{id}/cancel", send(again).await);
    })
    .await;
}

/// 429 where it occurs: logins per address and filings per user.
#[tokio::test]
async fn rate_limits_are_declared_where_they_apply() {
    for backend in backends() {
        let app = spawn_app_with(
            backend,
            &[
                ("GRIDWHISTLE_SECURITY__LOGIN_PER_MINUTE_PER_IP", "6"),
                ("GRIDWHISTLE_SECURITY__FILING_PER_MINUTE_PER_TOKEN", "1"),
            ],
        )
        .await;
        let doc = document(&app).await;
        let demo = app.demo().await;
        let category = app.category("property", &demo.admin).await;
        let body = crate::helpers::ticket_body(&category);
        app.post("/api/v1/tickets", &demo.grid, body.clone()).await.expect(201);
        let filed_again = send(app.client.post(app.url("/api/v1/tickets")).bearer_auth(&demo.grid).json(&body)).await;
        assert_eq!(filed_again.0, 429);
        sent_as_declared(&doc, "post", "/api/v1/tickets", filed_again);
        let login = json!({"username": "demo-grid", "password": "wrong"});
        let mut refused = (0, String::new());
        for _ in 0..8 {
            refused = send(app.client.post(app.url("/api/v1/auth/token")).json(&login)).await;
            if refused.0 == 429 {
                break;
            }
        }
        assert_eq!(refused.0, 429, "more than 6 logins from this address within the minute");
        sent_as_declared(&doc, "post", "/api/v1/auth/token", refused);
    }
}

#[tokio::test]
async fn csv_reports_are_declared_as_csv() {
    each_backend(|app| async move {
        let doc = document(&app).await;
        let demo = app.demo().await;
        for (path, query) in [
            ("/api/v1/reports/sla", "from=2026-12-01&to=2026-12-02&group_by=department&format=csv"),
            ("/api/v1/reports/trend", "from=2026-12-01&to=2026-12-02&interval=day&format=csv"),
            ("/api/v1/reports/overdue", "format=csv"),
        ] {
            let reply = app.client.get(app.url(&format!("{path}?{query}"))).bearer_auth(&demo.supervisor);
            let (status, content_type) = send(reply).await;
            assert_eq!(status, 200, "{path}");
            assert!(content_type.starts_with("text/csv"), "{path}: {content_type}");
            let declared = declared(&doc, "get", path, 200);
            assert_eq!(declared, ["application/json", "text/csv"], "{path}");
        }
    })
    .await;
}

/// The reference page at `/docs/`: HTML, no token needed, pointing at this server's
/// `/openapi.json`, and every script and stylesheet it loads served by the binary itself.
#[tokio::test]
async fn reference_page_is_served_offline() {
    let app = crate::helpers::spawn_app(Backend::Sqlite).await;
    let bare = app.client.get(app.url("/docs")).send().await.expect("sent");
    assert_eq!(bare.status().as_u16(), 200, "/docs leads to the page");
    let page = app.client.get(app.url("/docs/")).send().await.expect("sent");
    assert_eq!(page.status().as_u16(), 200);
    let content_type = page.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let html = page.text().await.expect("html");

    let mut assets = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for piece in html.split(attribute).skip(1) {
            let link = piece.split('"').next().unwrap_or_default();
            assert!(!link.contains("://") && !link.starts_with("//"), "the page loads {link} from elsewhere");
            assets.push(link.to_owned());
        }
    }
    assert!(assets.iter().any(|a| a.ends_with(".js")), "{html}");
    let mut initializer = String::new();
    for asset in &assets {
        let asset_url = if asset.starts_with('/') { app.url(asset) } else { app.url(&format!("/docs/{asset}")) };
        let response = app.client.get(asset_url).send().await.expect("sent");
        assert_eq!(response.status().as_u16(), 200, "{asset}");
        let text = response.text().await.unwrap_or_default();
        if asset.contains("initializer") {
            initializer = text;
        }
    }
    assert!(initializer.contains("\"/openapi.json\""), "the page reads this server's document: {initializer}");
    assert!(!initializer.contains("validator.swagger.io"), "no call to the online validator");
}
