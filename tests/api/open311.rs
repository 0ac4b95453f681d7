//! Open311 GeoReport v2 at /open311/v2: services, filing with an API key, the public view of
//! requests in JSON and XML, Open311 error arrays, and the admin's API keys.

use chrono::Duration;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, backends, each_backend, spawn_app_with};

const ROOT: &str = "/open311/v2";
const RESIDENT_NAME: &str = "张三丰";
const RESIDENT_PHONE: &str = "13912345678";
const RESIDENT_EMAIL: &str = "zhang.sanfeng@example.cn";

/// A raw answer: status, media type and text, so XML and JSON are checked alike.
#[derive(Debug)]
struct Got {
    status: u16,
    content_type: String,
    text: String,
    retry_after: Option<String>,
}

impl Got {
    #[track_caller]
    fn json(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.text);
        assert!(self.content_type.starts_with("application/json"), "{}", self.content_type);
        serde_json::from_str(&self.text).expect("JSON body")
    }

    #[track_caller]
    fn xml(&self, status: u16) -> &str {
        assert_eq!(self.status, status, "{}", self.text);
        assert!(
            self.content_type.starts_with("text/xml") || self.content_type.starts_with("application/xml"),
            "{}",
            self.content_type
        );
        assert!(self.text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"), "{}", self.text);
        &self.text
    }

    /// An Open311 error array in JSON: `[{"code", "description"}]` with the status as code.
    #[track_caller]
    fn json_error(&self, status: u16) -> String {
        let body = self.json(status);
        assert_eq!(body[0]["code"], status, "{body}");
        body[0]["description"].as_str().expect("description").to_owned()
    }

    /// The same in XML.
    #[track_caller]
    fn xml_error(&self, status: u16) -> String {
        let text = self.xml(status);
        let prefix = format!("<errors><error><code>{status}</code><description>");
        let rest = text.split_once(&prefix).unwrap_or_else(|| panic!("an Open311 error: {text}")).1;
        assert!(rest.ends_with("</description></error></errors>"), "{text}");
        rest.trim_end_matches("</description></error></errors>").to_owned()
    }
}

async fn got(response: reqwest::Response) -> Got {
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let content_type = header("content-type").unwrap_or_default();
    let retry_after = header("retry-after");
    let status = response.status().as_u16();
    Got { status, content_type, retry_after, text: response.text().await.expect("body") }
}

async fn get(app: &TestApp, path: &str) -> Got {
    got(app.client.get(app.url(&format!("{ROOT}{path}"))).send().await.expect("sent")).await
}

async fn post_form(app: &TestApp, path: &str, form: &[(&str, &str)]) -> Got {
    got(app.client.post(app.url(&format!("{ROOT}{path}"))).form(form).send().await.expect("sent")).await
}

async fn new_key(app: &TestApp, admin: &str, name: &str) -> String {
    let issued = app.post("/api/v1/api-keys", admin, json!({"name": name})).await.expect(201);
    issued["key"].as_str().expect("key").to_owned()
}

/// A request in 和平社区第一网格 (市容环境: auto-dispatched to 忻府区城市管理局).
fn filing(key: &str) -> Vec<(&str, &str)> {
    vec![
        ("api_key", key),
        ("jurisdiction_id", "140900"),
        ("service_code", "environment"),
        ("lat", "38.41"),
        ("long", "112.705"),
        ("address_string", "和平街12号3号楼"),
        ("description", "3号楼门前垃圾堆积，已有异味。"),
        ("first_name", "三丰"),
        ("last_name", "张"),
        ("phone", RESIDENT_PHONE),
        ("email", RESIDENT_EMAIL),
        ("device_id", "device-1"),
        ("account_id", "wx-0001"),
        ("media_url", "https://img.example/photos/1.jpg"),
    ]
}

/// A field of the filing form replaced (`Some`) or left out (`None`).
type Change<'a> = (&'a str, Option<&'a str>);

/// The filing form with some fields replaced (`Some`) or left out (`None`).
fn changed<'a>(key: &'a str, changes: &[(&str, Option<&str>)]) -> Vec<(&'a str, String)> {
    filing(key)
        .into_iter()
        .filter_map(|(name, value)| match changes.iter().find(|(changed, _)| *changed == name) {
            Some((_, Some(new))) => Some((name, (*new).to_owned())),
            Some((_, None)) => None,
            None => Some((name, value.to_owned())),
        })
        .collect()
}

async fn ticket_count(app: &TestApp, admin: &str) -> usize {
    let tickets = app.get("/api/v1/tickets?limit=200", admin).await.expect(200);
    tickets["items"].as_array().map_or(0, Vec::len)
}

/// The ticket behind a service_request_id, as the city's own API shows it.
async fn ticket_by_number(app: &TestApp, number: &str, admin: &str) -> Value {
    let tickets = app.get("/api/v1/tickets?limit=200&view=full", admin).await.expect(200);
    tickets["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|t| t["number"] == number)
        .unwrap_or_else(|| panic!("ticket {number}"))
        .clone()
}

#[tokio::test]
async fn services_and_discovery_in_both_formats() {
    each_backend(|app| async move {
        app.demo().await;
        let services = get(&app, "/services.json?jurisdiction_id=140900").await.json(200);
        let environment = services
            .as_array()
            .expect("a list")
            .iter()
            .find(|s| s["service_code"] == "environment")
            .expect("市容环境 is a service")
            .clone();
        assert_eq!(environment["service_name"], "市容环境");
        assert_eq!(environment["type"], "realtime");
        assert_eq!(environment["metadata"], false);
        assert_eq!(services.as_array().map(Vec::len), Some(15), "every demo category: {services}");
        // Without jurisdiction_id the one jurisdiction is meant.
        assert_eq!(get(&app, "/services.json").await.json(200), services);

        let xml = get(&app, "/services.xml?jurisdiction_id=140900").await;
        let text = xml.xml(200);
        assert!(text.contains("<service><"), "{text}");
        assert!(text.contains("<service_code>environment</service_code>"), "{text}");
        assert!(text.contains("<service_name>市容环境</service_name>"), "Chinese as characters: {text}");
        assert_eq!(text.matches("<service>").count(), 15);

        let definition = get(&app, "/services/environment.json?jurisdiction_id=140900").await.json(200);
        assert_eq!(definition, json!({"service_code": "environment", "attributes": []}));
        let definition = get(&app, "/services/environment.xml").await;
        assert!(definition.xml(200).contains("<service_definition><attributes></attributes><service_code>environment</service_code></service_definition>"), "{}", definition.text);

        let discovery = get(&app, "/discovery.json").await.json(200);
        let endpoint = &discovery["endpoints"][0];
        assert_eq!(endpoint["specification"], "http://wiki.open311.org/GeoReport_v2");
        assert!(endpoint["url"].as_str().is_some_and(|u| u.ends_with("/open311/v2")), "{discovery}");
        let discovery = get(&app, "/discovery.xml").await;
        assert!(discovery.xml(200).contains("<format>text/xml</format>"), "{}", discovery.text);

        // Unknown service, jurisdiction or path: 404 as an Open311 error, in the asked format.
        assert!(get(&app, "/services/nothing.json").await.json_error(404).contains("nothing"));
        assert!(get(&app, "/services/nothing.xml").await.xml_error(404).contains("nothing"));
        assert!(get(&app, "/services.json?jurisdiction_id=110000").await.json_error(404).contains("110000"));
        assert!(get(&app, "/requests.xml?jurisdiction_id=110000").await.xml_error(404).contains("110000"));
        get(&app, "/services.html").await.json_error(404);
        get(&app, "/nowhere.xml").await.xml_error(404);
    })
    .await;
}

#[tokio::test]
async fn api_keys_are_the_admins_shown_once_hashed_audited_and_revocable() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        for token in [&demo.dispatcher, &demo.supervisor, &demo.grid] {
            app.post("/api/v1/api-keys", token, json!({"name": "x"})).await.problem(403);
            app.get("/api/v1/api-keys", token).await.problem(403);
        }
        app.post("/api/v1/api-keys", &demo.admin, json!({"name": " "})).await.problem(422);
        let issued = app.post("/api/v1/api-keys", &demo.admin, json!({"name": "12345 热线平台"})).await.expect(201);
        let key = issued["key"].as_str().expect("key").to_owned();
        assert!(key.starts_with("gwk_") && key.len() > 40, "{key}");
        assert_eq!(issued["name"], "12345 热线平台");
        let id = issued["id"].as_str().expect("id").to_owned();

        let listed = app.get("/api/v1/api-keys", &demo.admin).await.expect(200);
        assert_eq!(listed["items"][0]["id"], id.as_str());
        assert_eq!(listed["items"][0]["revoked_at"], Value::Null);
        assert!(listed["items"][0].get("key").is_none(), "{listed}");
        assert!(!listed.to_string().contains(&key), "the key is shown once");

        // Only a hash is stored.
        use sea_orm::EntityTrait;
        let rows = entities::api_key::Entity::find().all(&app.ctx.db).await.expect("keys");
        assert_eq!(rows.len(), 1);
        assert_ne!(rows[0].key_hash, key);
        assert_eq!(rows[0].key_hash.len(), 64);

        // The key files.
        let form = filing(&key);
        let filed = post_form(&app, "/requests.json", &form).await.json(201);
        assert!(filed[0]["service_request_id"].is_string(), "{filed}");
        let used = app.get("/api/v1/api-keys", &demo.admin).await.expect(200);
        assert!(used["items"][0]["last_used_at"].is_string(), "{used}");

        let revoked = app.delete(&format!("/api/v1/api-keys/{id}"), &demo.admin).await.expect(200);
        assert!(revoked["revoked_at"].is_string(), "{revoked}");
        app.delete(&format!("/api/v1/api-keys/{id}"), &demo.dispatcher).await.problem(403);
        app.delete(&format!("/api/v1/api-keys/{}", uuid::Uuid::now_v7()), &demo.admin).await.problem(404);
        let before = ticket_count(&app, &demo.admin).await;
        assert!(post_form(&app, "/requests.json", &form).await.json_error(403).contains("api_key"));
        assert_eq!(ticket_count(&app, &demo.admin).await, before, "a refused POST writes nothing");

        let audit = app.get("/api/v1/audit?action=api_key_created", &demo.admin).await.expect(200);
        assert_eq!(audit["items"][0]["target_id"], id.as_str(), "{audit}");
        let audit = app.get("/api/v1/audit?action=api_key_revoked", &demo.admin).await.expect(200);
        assert_eq!(audit["items"].as_array().map(Vec::len), Some(1), "revoking twice is one change: {audit}");
    })
    .await;
}

/// Filed through Open311, handled through the city's API, followed through Open311 to closed;
/// and no public answer on the way shows the resident's name, phone or e-mail.
#[tokio::test]
async fn a_request_filed_through_open311_is_followed_to_closed() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let key = new_key(&app, &demo.admin, "市民 App").await;
        let mut public = Vec::new();

        let filed = post_form(&app, "/requests.json", &filing(&key)).await;
        let created = filed.json(201);
        public.push(filed.text.clone());
        let number = created[0]["service_request_id"].as_str().expect("service_request_id").to_owned();
        assert!(number.starts_with("XZ-"), "the ticket's human number: {created}");
        assert_eq!(created[0]["account_id"], "wx-0001");
        assert!(created[0]["service_notice"].as_str().is_some_and(|n| n.contains(&number)), "{created}");

        // A real ticket: channel open311, located into its grid, auto-dispatched, clocks running.
        let ticket = ticket_by_number(&app, &number, &demo.admin).await;
        assert_eq!(ticket["channel"], "open311");
        assert_eq!(ticket["status"], "dispatched", "市容环境 dispatches automatically");
        assert_eq!(
            ticket["grid_unit_id"],
            app.id_by_code("grid-units", "140902001001-G01", &demo.admin).await.as_str()
        );
        let ticket_id = ticket["id"].as_str().expect("id").to_owned();
        let timeline = app.timeline(&ticket_id, &demo.admin).await;
        assert_eq!(&timeline[..2], ["filed", "dispatched"], "{timeline:?}");
        let contact =
            app.get(&format!("/api/v1/tickets/{ticket_id}/contact?reason=回访"), &demo.dispatcher).await.expect(200);
        assert_eq!(contact["name"], RESIDENT_NAME, "the resident is kept for the call-back: {contact}");
        assert_eq!(contact["phone"], RESIDENT_PHONE);

        let read = get(&app, &format!("/requests/{number}.json?jurisdiction_id=140900")).await;
        public.push(read.text.clone());
        let request = read.json(200)[0].clone();
        assert_eq!(request["status"], "open");
        assert_eq!(request["service_code"], "environment");
        assert_eq!(request["service_name"], "市容环境");
        assert_eq!(request["description"], "3号楼门前垃圾堆积，已有异味。");
        assert_eq!(request["agency_responsible"], "忻府区城市管理局");
        assert_eq!(request["address"], "和平街12号3号楼");
        assert_eq!(request["lat"], 38.41);
        assert_eq!(request["long"], 112.705);
        assert_eq!(request["media_url"], "https://img.example/photos/1.jpg");
        assert_eq!(request["status_notes"], Value::Null);
        for field in ["requested_datetime", "updated_datetime", "expected_datetime"] {
            let at = request[field].as_str().unwrap_or_else(|| panic!("{field}: {request}"));
            assert!(at.ends_with("+08:00") && chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{field}: {at}");
        }
        let xml = get(&app, &format!("/requests/{number}.xml")).await;
        let text = xml.xml(200).to_owned();
        public.push(text.clone());
        assert!(text.contains(&format!("<service_request_id>{number}</service_request_id>")), "{text}");
        assert!(text.contains("<agency_responsible>忻府区城市管理局</agency_responsible>"), "{text}");
        assert!(text.contains("<status>open</status>"), "{text}");

        // The department reports in and resolves; resolved is still open (the rating is due).
        let dispatch = app.dispatch_of(&ticket, "XF-CGJ", &demo.admin).await;
        app.post(&format!("/api/v1/dispatches/{dispatch}/acknowledge"), &demo.dept, json!({})).await.expect(200);
        let reply = "垃圾已清运，并增设垃圾桶两个。";
        app.post(&format!("/api/v1/dispatches/{dispatch}/resolve"), &demo.dept, json!({"reply": reply}))
            .await
            .expect(200);
        let resolved = get(&app, &format!("/requests/{number}.json")).await;
        public.push(resolved.text.clone());
        let resolved = resolved.json(200)[0].clone();
        assert_eq!(resolved["status"], "open", "resolved waits for the rating: {resolved}");
        assert_eq!(resolved["status_notes"], reply);

        // The dispatcher records the resident's 满意: closed.
        app.post(&format!("/api/v1/tickets/{ticket_id}/rating"), &demo.dispatcher, json!({"score": 5}))
            .await
            .expect(200);
        let closed = get(&app, &format!("/requests/{number}.json")).await;
        public.push(closed.text.clone());
        assert_eq!(closed.json(200)[0]["status"], "closed");
        let closed_xml = get(&app, &format!("/requests/{number}.xml")).await;
        public.push(closed_xml.text.clone());
        assert!(closed_xml.xml(200).contains("<status>closed</status>"));
        for path in ["/requests.json", "/requests.xml", "/requests.json?status=closed", "/services.json"] {
            public.push(get(&app, path).await.text);
        }
        let listed: Value = serde_json::from_str(&public[public.len() - 4]).expect("json");
        assert!(listed.as_array().expect("list").iter().any(|r| r["service_request_id"] == number.as_str()));

        // No public answer names the resident, masked or not.
        for text in &public {
            for secret in [RESIDENT_NAME, "三丰", RESIDENT_PHONE, "139****5678", RESIDENT_EMAIL, "wx-0001"] {
                if secret == "wx-0001" && text == &filed.text {
                    continue; // the client's own account_id, echoed to it as GeoReport says
                }
                assert!(!text.contains(secret), "{secret} in a public answer: {text}");
            }
        }
    })
    .await;
}

#[tokio::test]
async fn refusals_are_open311_errors_in_both_formats_and_write_nothing() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let key = new_key(&app, &demo.admin, "市民 App").await;
        let cases: Vec<(u16, Vec<Change>, &str)> = vec![
            (403, vec![("api_key", None)], "api_key"),
            (403, vec![("api_key", Some("gwk_not-a-key"))], "api_key"),
            (400, vec![("service_code", None)], "service_code"),
            (400, vec![("service_code", Some("flying_saucers"))], "flying_saucers"),
            (400, vec![("lat", None), ("long", None)], "地理编码"),
            (400, vec![("long", None)], "long"),
            (400, vec![("lat", Some("not a number"))], "lat"),
            (400, vec![("lat", Some("30.0"))], "网格"),
            (400, vec![("media_url", Some("file:///etc/passwd"))], "media_url"),
            (400, vec![("phone", Some("call me"))], "phone"),
            (404, vec![("jurisdiction_id", Some("110000"))], "110000"),
        ];
        for (status, changes, says) in cases {
            let form = changed(&key, &changes);
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let description = post_form(&app, "/requests.json", &form).await.json_error(status);
            assert!(description.contains(says), "{status} should mention {says}: {description}");
            let description = post_form(&app, "/requests.xml", &form).await.xml_error(status);
            assert!(description.contains(says), "{status} (xml) should mention {says}: {description}");
        }
        // In English on request.
        let english = app
            .client
            .post(app.url(&format!("{ROOT}/requests.json")))
            .header("accept-language", "en")
            .form(&changed(&key, &[("lat", None), ("long", None)]))
            .send()
            .await
            .expect("sent");
        assert!(got(english).await.json_error(400).contains("geocoder"));
        // Not a form.
        let json_body =
            app.client.post(app.url(&format!("{ROOT}/requests.json"))).json(&json!({"api_key": key})).send().await;
        assert!(got(json_body.expect("sent")).await.json_error(400).contains("x-www-form-urlencoded"));
        assert_eq!(ticket_count(&app, &demo.admin).await, 0, "no refused POST filed anything");
        let keys = app.get("/api/v1/api-keys", &demo.admin).await.expect(200);
        assert_eq!(keys["items"][0]["last_used_at"], Value::Null, "nor marked the key used: {keys}");

        for format in ["json", "xml"] {
            let missing = get(&app, &format!("/requests/XZ-1999-000001.{format}")).await;
            let token = get(&app, &format!("/tokens/no-such-token.{format}")).await;
            let bad_status = get(&app, &format!("/requests.{format}?status=pending")).await;
            let bad_date = get(&app, &format!("/requests.{format}?start_date=yesterday")).await;
            if format == "json" {
                missing.json_error(404);
                token.json_error(404);
                assert!(bad_status.json_error(400).contains("closed"));
                assert!(bad_date.json_error(400).contains("start_date"));
            } else {
                missing.xml_error(404);
                token.xml_error(404);
                assert!(bad_status.xml_error(400).contains("closed"));
                assert!(bad_date.xml_error(400).contains("start_date"));
            }
        }
    })
    .await;
}

#[tokio::test]
async fn search_lists_every_channel_with_filters_and_the_status_mapping() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let key = new_key(&app, &demo.admin, "市民 App").await;
        let open311 = post_form(&app, "/requests.json", &filing(&key)).await.json(201)[0]["service_request_id"]
            .as_str()
            .expect("id")
            .to_owned();
        // Filed by a grid worker on the city's own API: listed too.
        let property = app.category("property", &demo.admin).await;
        let own = app.file(&demo.grid, &property).await;
        let own_number = own["number"].as_str().expect("number").to_owned();
        let cancelled = app.file(&demo.grid, &property).await;
        let cancelled_number = cancelled["number"].as_str().expect("number").to_owned();
        let cancel = format!("/api/v1/tickets/{}/cancel", cancelled["id"].as_str().expect("id"));
        app.post(&cancel, &demo.dispatcher, json!({"reason": "重复工单"})).await.expect(200);

        let ids = |body: Value| -> Vec<String> {
            let mut ids: Vec<String> = body
                .as_array()
                .expect("list")
                .iter()
                .map(|r| r["service_request_id"].as_str().expect("id").to_owned())
                .collect();
            ids.sort();
            ids
        };
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v
        };
        let all = sorted(vec![open311.clone(), own_number.clone(), cancelled_number.clone()]);
        assert_eq!(ids(get(&app, "/requests.json").await.json(200)), all);
        assert_eq!(
            ids(get(&app, "/requests.json?service_code=property").await.json(200)),
            sorted(vec![own_number.clone(), cancelled_number.clone()])
        );
        assert_eq!(ids(get(&app, "/requests.json?service_code=environment,property").await.json(200)), all);
        assert_eq!(ids(get(&app, "/requests.json?status=closed").await.json(200)), vec![cancelled_number.clone()]);
        assert_eq!(
            ids(get(&app, "/requests.json?status=open").await.json(200)),
            sorted(vec![open311.clone(), own_number.clone()])
        );
        let two = format!("/requests.json?service_request_id={open311},{cancelled_number}");
        assert_eq!(ids(get(&app, &two).await.json(200)), sorted(vec![open311.clone(), cancelled_number.clone()]));
        let cancelled_view = get(&app, &format!("/requests/{cancelled_number}.json")).await.json(200);
        assert_eq!(cancelled_view[0]["status"], "closed", "cancelled reads as closed");
        assert_eq!(cancelled_view[0]["agency_responsible"], Value::Null, "never dispatched");
        let xml = get(&app, "/requests.xml?status=closed").await;
        assert_eq!(xml.xml(200).matches("<request>").count(), 1, "{}", xml.text);

        // Dates: W3C datetimes bound requested_datetime.
        let now = app.clock.now_for_tests();
        let w3c = |at: chrono::DateTime<chrono::Utc>| {
            at.with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).expect("offset"))
                .format("%Y-%m-%dT%H:%M:%S%:z")
                .to_string()
        };
        let encode = |text: String| text.replace('+', "%2B");
        let later = encode(w3c(now + Duration::hours(1)));
        let earlier = encode(w3c(now - Duration::hours(1)));
        assert_eq!(ids(get(&app, &format!("/requests.json?start_date={later}")).await.json(200)), Vec::<String>::new());
        assert_eq!(ids(get(&app, &format!("/requests.json?end_date={earlier}")).await.json(200)), Vec::<String>::new());
        let window = format!("/requests.json?start_date={earlier}&end_date={later}");
        assert_eq!(ids(get(&app, &window).await.json(200)), all);
        let utc = format!("/requests.json?start_date={}", (now - Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ"));
        assert_eq!(ids(get(&app, &utc).await.json(200)), all, "Z times too");
        // A start long ago without an end: from then until now.
        let long_ago =
            format!("/requests.json?start_date={}", (now - Duration::days(200)).format("%Y-%m-%dT%H:%M:%SZ"));
        assert_eq!(ids(get(&app, &long_ago).await.json(200)), all);

        // The default window is the last 90 days.
        app.clock.advance(Duration::days(91));
        assert_eq!(ids(get(&app, "/requests.json").await.json(200)), Vec::<String>::new());
        assert_eq!(ids(get(&app, &window).await.json(200)), all, "an explicit window still finds them");
        assert_eq!(ids(get(&app, &format!("/requests/{open311}.json")).await.json(200)), vec![open311.clone()]);
    })
    .await;
}

#[tokio::test]
async fn batch_mode_answers_a_token_that_resolves_to_the_request() {
    for backend in backends() {
        let app = spawn_app_with(backend, &[("GRIDWHISTLE_OPEN311__BATCH", "true")]).await;
        let demo = app.demo().await;
        let key = new_key(&app, &demo.admin, "12345 热线平台").await;
        let created = post_form(&app, "/requests.json", &filing(&key)).await.json(201);
        assert!(created[0].get("service_request_id").is_none(), "{created}");
        let token = created[0]["token"].as_str().expect("token").to_owned();
        let resolved = get(&app, &format!("/tokens/{token}.json?jurisdiction_id=140900")).await.json(200);
        assert_eq!(resolved[0]["token"], token.as_str());
        let number = resolved[0]["service_request_id"].as_str().expect("service_request_id").to_owned();
        ticket_by_number(&app, &number, &demo.admin).await;
        let xml = get(&app, &format!("/tokens/{token}.xml")).await;
        assert!(
            xml.xml(200).contains(&format!("<service_request_id>{number}</service_request_id><token>{token}</token>")),
            "{}",
            xml.text
        );
        let created_xml = post_form(&app, "/requests.xml", &filing(&key)).await;
        assert!(created_xml.xml(201).contains("<token>"), "{}", created_xml.text);
    }
}

#[tokio::test]
async fn posts_are_rate_limited_per_address() {
    for backend in backends() {
        let app = spawn_app_with(backend, &[("GRIDWHISTLE_SECURITY__OPEN311_PER_MINUTE_PER_IP", "2")]).await;
        let demo = app.demo().await;
        let key = new_key(&app, &demo.admin, "市民 App").await;
        post_form(&app, "/requests.json", &filing(&key)).await.json(201);
        post_form(&app, "/requests.json", &filing("gwk_guess")).await.json_error(403);
        let limited = post_form(&app, "/requests.json", &filing(&key)).await;
        limited.json_error(429);
        assert!(limited.retry_after.is_some(), "{limited:?}");
        assert_eq!(ticket_count(&app, &demo.admin).await, 1);
    }
}

/// `georeport` (PyPI), a maintained GeoReport v2 client, reads what we serve, in JSON and XML.
/// It cannot file (it says so), so the request is filed here with a plain form POST.
#[tokio::test]
async fn a_real_georeport_client_reads_services_and_requests() {
    let available = std::process::Command::new("python3")
        .args(["-c", "import georeport, xmltodict"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        println!("skipped: python3 with the `georeport` package is not installed (pip install georeport)");
        return;
    }
    each_backend(|app| async move {
        let demo = app.demo().await;
        let key = new_key(&app, &demo.admin, "市民 App").await;
        let created = post_form(&app, "/requests.json", &filing(&key)).await.json(201);
        let number = created[0]["service_request_id"].as_str().expect("id").to_owned();
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/open311_client.py");
        let root = app.url(ROOT);
        let output = tokio::task::spawn_blocking(move || {
            std::process::Command::new("python3").arg(script).args([root.as_str(), "140900", number.as_str()]).output()
        })
        .await
        .expect("joined")
        .expect("python3 runs");
        let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "the georeport client failed:\n{said}");
        assert!(said.contains("xml:") && said.trim_end().ends_with("ok"), "{said}");
    })
    .await;
}

#[tokio::test]
async fn a_wrong_method_is_refused_and_not_routed_elsewhere() {
    let app = crate::helpers::spawn_app(Backend::Sqlite).await;
    let response = app.client.delete(app.url(&format!("{ROOT}/requests.json"))).send().await.expect("sent");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(got(response).await.json_error(405).contains("DELETE"));
    let response = app.client.put(app.url(&format!("{ROOT}/services.xml"))).send().await.expect("sent");
    assert!(got(response).await.xml_error(405).contains("PUT"));
}

// ---- photos uploaded through /api/v1 as media_url (open311.publish_media) -----------------

/// A phone photo larger than a thumbnail (800×600) carrying EXIF: GPS and a camera serial.
fn large_phone_jpeg() -> Vec<u8> {
    use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
    let picture =
        DynamicImage::ImageRgb8(RgbImage::from_fn(800, 600, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, 90])));
    let mut plain = std::io::Cursor::new(Vec::new());
    picture.write_to(&mut plain, ImageFormat::Jpeg).expect("encodes");
    let plain = plain.into_inner();
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend(crate::photos::exif_block());
    let mut out = plain[..2].to_vec(); // SOI
    out.extend([0xFF, 0xE1]);
    out.extend(u16::try_from(payload.len() + 2).expect("fits").to_be_bytes());
    out.extend(payload);
    out.extend(&plain[2..]);
    assert!(exif::Reader::new().read_from_container(&mut std::io::Cursor::new(&out)).is_ok(), "the input has EXIF");
    out
}

/// A ticket filed through /api/v1 by the grid worker with `photo` attached; its number.
async fn filed_with_photo(app: &TestApp, grid: &str, admin: &str, photo: &str) -> (String, String) {
    let environment = app.category("environment", admin).await;
    let mut body = crate::helpers::ticket_body(&environment);
    body["attachments"] = json!([{"upload_id": photo}]);
    let ticket = app.post("/api/v1/tickets", grid, body).await.expect(201);
    (ticket["id"].as_str().expect("id").to_owned(), ticket["number"].as_str().expect("number").to_owned())
}

/// An answer to an unauthenticated GET of an absolute address on the app.
struct Fetched {
    status: u16,
    headers: reqwest::header::HeaderMap,
    bytes: Vec<u8>,
}

async fn fetch_public(app: &TestApp, path: &str, if_none_match: Option<&str>) -> Fetched {
    let mut request = app.client.get(app.url(path));
    if let Some(tag) = if_none_match {
        request = request.header("if-none-match", tag);
    }
    let response = request.send().await.expect("sent");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    Fetched { status, headers, bytes: response.bytes().await.expect("body").to_vec() }
}

#[tokio::test]
async fn uploaded_photos_stay_off_the_public_side_by_default() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let photo = app.uploaded(&demo.grid, "image/jpeg", large_phone_jpeg()).await;
        let (_, number) = filed_with_photo(&app, &demo.grid, &demo.admin, &photo).await;
        // The city's own API has the photo …
        let private = app
            .client
            .get(app.url(&format!("/api/v1/attachments/{photo}/thumbnail")))
            .bearer_auth(&demo.admin)
            .send()
            .await
            .expect("sent");
        assert_eq!(private.status().as_u16(), 200);
        // … Open311 does not, in either format, nor in the list.
        let one = get(&app, &format!("/requests/{number}.json?jurisdiction_id=140900")).await.json(200);
        assert!(one[0]["media_url"].is_null(), "{one}");
        let xml = get(&app, &format!("/requests/{number}.xml")).await;
        assert!(!xml.xml(200).contains("/open311/v2/media/"), "{}", xml.text);
        let list = get(&app, "/requests.json").await.json(200);
        assert!(!list.to_string().contains("/open311/v2/media/"), "{list}");
        // No upload was given a public address, and the route answers nothing.
        use sea_orm::EntityTrait;
        let uploads = entities::upload::Entity::find().all(&app.ctx.db).await.expect("reads");
        assert!(!uploads.is_empty() && uploads.iter().all(|u| u.public_token.is_none()), "{uploads:?}");
        let made_up = format!("/open311/v2/media/{}.jpg", "A".repeat(43));
        assert_eq!(fetch_public(&app, &made_up, None).await.status, 404);
    })
    .await;
}

#[tokio::test]
async fn published_photos_are_a_public_thumbnail_until_erased() {
    for backend in backends() {
        let app = spawn_app_with(backend, &[("GRIDWHISTLE_OPEN311__PUBLISH_MEDIA", "true")]).await;
        let demo = app.demo().await;
        let photo = app.uploaded(&demo.grid, "image/jpeg", large_phone_jpeg()).await;
        let (ticket_id, number) = filed_with_photo(&app, &demo.grid, &demo.admin, &photo).await;

        let one = get(&app, &format!("/requests/{number}.json?jurisdiction_id=140900")).await.json(200);
        let media_url = one[0]["media_url"].as_str().unwrap_or_else(|| panic!("media_url in {one}")).to_owned();
        let public_url = app.ctx.settings.smtp.public_url.trim_end_matches('/').to_owned();
        let path = media_url
            .strip_prefix(&public_url)
            .unwrap_or_else(|| panic!("{media_url} is under {public_url}"))
            .to_owned();
        let token = path
            .strip_prefix("/open311/v2/media/")
            .and_then(|rest| rest.strip_suffix(".jpg"))
            .unwrap_or_else(|| panic!("{path}"));
        assert_eq!(token.len(), 43, "32 random bytes, URL-safe base64: {token}");
        assert!(!media_url.contains(&photo), "the address does not give away the upload id");
        // The same address every time, in the list and in XML too.
        let list = get(&app, "/requests.json").await.json(200);
        let listed = list.as_array().expect("list").iter().find(|r| r["service_request_id"] == number.as_str());
        assert_eq!(listed.map(|r| r["media_url"].clone()), Some(json!(media_url)), "{list}");
        let xml = get(&app, &format!("/requests/{number}.xml")).await;
        assert!(xml.xml(200).contains(&format!("<media_url>{media_url}</media_url>")), "{}", xml.text);

        // Anyone may read it, without a token: a small JPEG without the phone's metadata.
        let served = fetch_public(&app, &path, None).await;
        assert_eq!(served.status, 200);
        let header = |name: &str| served.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert_eq!(header("content-type"), "image/jpeg");
        assert_eq!(header("cache-control"), "public, max-age=86400");
        assert_eq!(header("x-content-type-options"), "nosniff");
        let etag = header("etag").to_owned();
        assert!(etag.starts_with('"') && etag.len() > 2, "{etag}");
        let thumbnail = image::load_from_memory_with_format(&served.bytes, image::ImageFormat::Jpeg).expect("a JPEG");
        assert!(thumbnail.width().max(thumbnail.height()) <= 320, "{}×{}", thumbnail.width(), thumbnail.height());
        // Turned upright by its EXIF orientation (6), so 240×320.
        assert_eq!((thumbnail.width(), thumbnail.height()), (240, 320));
        assert!(
            exif::Reader::new().read_from_container(&mut std::io::Cursor::new(&served.bytes)).is_err(),
            "no EXIF in the public thumbnail"
        );
        assert_eq!(fetch_public(&app, &path, Some(&etag)).await.status, 304);
        // Only that address: a neighbouring token is nothing.
        let mut other = token.to_owned();
        other.replace_range(0..1, if token.starts_with('A') { "B" } else { "A" });
        assert_eq!(fetch_public(&app, &format!("/open311/v2/media/{other}.jpg"), None).await.status, 404);

        // The resident's photos erased: the address answers nothing, the request shows none.
        app.post(
            &format!("/api/v1/tickets/{ticket_id}/erase-personal-data"),
            &demo.admin,
            json!({"reason": "居民申请删除照片", "remove_attachments": true}),
        )
        .await
        .expect(200);
        assert_eq!(fetch_public(&app, &path, None).await.status, 404);
        let after = get(&app, &format!("/requests/{number}.json")).await.json(200);
        assert!(after[0]["media_url"].is_null(), "{after}");

        // An address given at Open311 filing is still what such a request shows.
        let key = new_key(&app, &demo.admin, "12345 热线平台").await;
        let created = post_form(&app, "/requests.json", &filing(&key)).await.json(201);
        let filed = created[0]["service_request_id"].as_str().expect("service_request_id");
        let external = get(&app, &format!("/requests/{filed}.json")).await.json(200);
        assert_eq!(external[0]["media_url"], "https://img.example/photos/1.jpg", "{external}");
    }
}

/// Posts `body` as it is, form-encoded by hand (so it can be broken).
async fn post_raw(app: &TestApp, path: &str, body: String) -> Got {
    let response = app
        .client
        .post(app.url(&format!("{ROOT}{path}")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("sent");
    got(response).await
}

#[tokio::test]
async fn repeated_parameters_and_broken_percent_encoding_are_refused_naming_the_parameter() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let key = new_key(&app, &demo.admin, "市民 App").await;
        let encoded: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(filing(&key)).finish();
        // One of each is filed; the cases below change one thing of it.
        let cases: Vec<(String, &str)> = vec![
            (format!("{encoded}&description=%E5%8F%A6%E4%B8%80%E4%B8%AA"), "description"),
            (format!("{encoded}&service_code=dispute"), "service_code"),
            (format!("{encoded}&api_key={key}"), "api_key"),
            (encoded.replace("description=", "description=100%zz%"), "description"),
            // 另 cut after two of its three bytes: not UTF-8.
            (encoded.replace("description=", "description=%E5%8F"), "description"),
            (encoded.replace("address_string=", "address_string=%4"), "address_string"),
        ];
        for (body, names) in cases {
            let description = post_raw(&app, "/requests.json", body.clone()).await.json_error(400);
            assert!(description.contains(names), "should name {names}: {description}\n{body}");
            let description = post_raw(&app, "/requests.xml", body.clone()).await.xml_error(400);
            assert!(description.contains(names), "should name {names} (xml): {description}");
        }
        // A parameter both in the query and in the form is repeated too.
        let description =
            post_raw(&app, &format!("/requests.json?api_key={key}"), encoded.clone()).await.json_error(400);
        assert!(description.contains("api_key"), "{description}");
        assert_eq!(ticket_count(&app, &demo.admin).await, 0, "no refused POST filed anything");
        post_raw(&app, "/requests.json", encoded).await.json(201);

        // Reads alike: a repeated single parameter, and broken encoding.
        for format in ["json", "xml"] {
            let repeated = get(&app, &format!("/requests.{format}?status=open&status=closed")).await;
            let broken = get(&app, &format!("/requests.{format}?start_date=2026-11-27T09:00:00%2")).await;
            let services =
                get(&app, &format!("/services.{format}?jurisdiction_id=140900&jurisdiction_id=110000")).await;
            if format == "json" {
                assert!(repeated.json_error(400).contains("status"));
                assert!(broken.json_error(400).contains("start_date"));
                assert!(services.json_error(400).contains("jurisdiction_id"));
            } else {
                assert!(repeated.xml_error(400).contains("status"));
                assert!(broken.xml_error(400).contains("start_date"));
                assert!(services.xml_error(400).contains("jurisdiction_id"));
            }
        }
        // Lists may still be repeated, as GeoReport clients send them.
        get(&app, "/requests.json?service_code=environment&service_code=dispute").await.json(200);
    })
    .await;
}
