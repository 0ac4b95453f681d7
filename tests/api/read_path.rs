//! The read path: how many statements a read costs (counted on the app's own connection and
//! read through /metrics), the token cache and its revocation bound, the summary and full
//! list shapes, list ETags, and compressed answers.

use std::io::Read;

use chrono::Duration;
use reqwest::header;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use serde_json::{Value, json};

use crate::helpers::{Demo, TestApp, each_backend, spawn_app_with};

/// Statements the app sent while answering requests, as /metrics shows them.
async fn request_statements(app: &TestApp) -> u64 {
    let text = app.client.get(app.url("/metrics")).send().await.expect("sent").text().await.expect("text");
    text.lines()
        .find_map(|line| line.strip_prefix("gridwhistle_db_statements_total{origin=\"request\"} "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no request statement counter in {text}"))
}

/// The statements one GET costs, with its answer.
async fn cost_of(app: &TestApp, path: &str, token: &str) -> (u64, Value) {
    let before = request_statements(app).await;
    let body = app.get(path, token).await.expect(200);
    (request_statements(app).await - before, body)
}

/// Three environment tickets dispatched to 城管局 (XF-CGJ), one of them acknowledged by it.
async fn tickets_with_history(app: &TestApp, demo: &Demo) -> Vec<String> {
    let environment = app.category("environment", &demo.admin).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let ticket = app.file(&demo.grid, &environment).await;
        ids.push(ticket["id"].as_str().expect("id").to_owned());
    }
    let ticket = app.ticket(&ids[0], &demo.dispatcher).await;
    let dispatch = app.dispatch_of(&ticket, "XF-CGJ", &demo.admin).await;
    app.post(&format!("/api/v1/dispatches/{dispatch}/acknowledge"), &demo.dept, json!({})).await.expect(200);
    ids
}

#[tokio::test]
async fn a_ticket_read_takes_three_statements_and_a_list_page_four_for_every_role() {
    for backend in crate::helpers::backends() {
        println!("-- on {backend:?}");
        // No token cache: every request pays for its token look-up.
        let app = spawn_app_with(backend, &[("GRIDWHISTLE_AUTH__TOKEN_CACHE_TTL", "0s")]).await;
        let demo = app.demo().await;
        let ids = tickets_with_history(&app, &demo).await;
        let township = app.id_by_code("grid-units", "140902001000", &demo.admin).await;
        for (role, token) in [
            ("admin", &demo.admin),
            ("supervisor", &demo.supervisor),
            ("dispatcher", &demo.dispatcher),
            ("department", &demo.dept),
            ("grid worker", &demo.grid),
        ] {
            let (cost, ticket) = cost_of(&app, &format!("/api/v1/tickets/{}", ids[0]), token).await;
            assert!(cost <= 3, "{role}: a ticket read took {cost} statements");
            assert_eq!(ticket["dispatches"].as_array().map(Vec::len), Some(1), "{role}: {ticket}");
            assert_eq!(ticket["dispatches"][0]["status"], "acknowledged", "{role}");
            assert!(ticket["sla"].as_array().is_some_and(|c| c.len() >= 2), "{role}: the clocks come along: {ticket}");

            for list in [
                "/api/v1/tickets?limit=50".to_owned(),
                "/api/v1/tickets?limit=50&view=full".to_owned(),
                "/api/v1/tickets?limit=50&status=dispatched&overdue=false".to_owned(),
                format!("/api/v1/tickets?limit=50&unit={township}&view=full"),
            ] {
                let (cost, page) = cost_of(&app, &list, token).await;
                assert!(cost <= 4, "{role}: {list} took {cost} statements");
                assert!(page["items"].as_array().is_some_and(|items| !items.is_empty()), "{role}: {list}: {page}");
            }
        }
        // The full list carries what a single read does.
        let (_, full) = cost_of(&app, "/api/v1/tickets?limit=50&view=full", &demo.dispatcher).await;
        let listed = full["items"].as_array().expect("items").iter().find(|t| t["id"] == ids[0].as_str()).cloned();
        let single = app.ticket(&ids[0], &demo.dispatcher).await;
        assert_eq!(listed.as_ref().map(|t| &t["dispatches"]), Some(&single["dispatches"]));
        assert_eq!(listed.as_ref().map(|t| &t["sla"]), Some(&single["sla"]));
    }
}

#[tokio::test]
async fn a_cached_token_costs_nothing_and_revocations_here_end_it_at_once() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let ids = tickets_with_history(&app, &demo).await;
        let path = format!("/api/v1/tickets/{}", ids[0]);
        app.get(&path, &demo.dispatcher).await.expect(200);
        let (cost, _) = cost_of(&app, &path, &demo.dispatcher).await;
        assert!(cost <= 2, "a read with a cached token took {cost} statements");

        // Logging out through this process ends the token at once, cached or not.
        let token = app.demo_token("demo-grid").await;
        app.get("/api/v1/me", &token).await.expect(200);
        app.post("/api/v1/auth/logout", &token, json!({})).await;
        app.get("/api/v1/me", &token).await.problem(401);

        // So does a password change by an admin.
        let token = app.demo_token("demo-supervisor").await;
        app.get("/api/v1/me", &token).await.expect(200);
        let me = app.get("/api/v1/me", &token).await.expect(200);
        let user_id = me["id"].as_str().expect("id").to_owned();
        app.patch(&format!("/api/v1/users/{user_id}"), &demo.admin, json!({"password": "a new long password 7"}))
            .await
            .expect(200);
        app.get("/api/v1/me", &token).await.problem(401);

        // A revocation made elsewhere (another replica, or by hand) reaches this process
        // within auth.token_cache_ttl (5s by default).
        let token = app.demo_token("demo-dept").await;
        app.get("/api/v1/me", &token).await.expect(200);
        entities::api_token::Entity::update_many()
            .col_expr(entities::api_token::Column::RevokedAt, Expr::val(app.clock.now_for_tests()))
            .filter(entities::api_token::Column::RevokedAt.is_null())
            .exec(&app.ctx.db)
            .await
            .expect("revoked in the database");
        app.get("/api/v1/me", &token).await.expect(200);
        app.clock.advance(Duration::seconds(5));
        app.get("/api/v1/me", &token).await.problem(401);
    })
    .await;
}

#[tokio::test]
async fn lists_are_summaries_by_default_and_full_tickets_on_request() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let ids = tickets_with_history(&app, &demo).await;
        let summary = app.get("/api/v1/tickets?limit=50", &demo.dispatcher).await.expect(200);
        let items = summary["items"].as_array().expect("items");
        assert_eq!(items.len(), 3);
        let first = items.iter().find(|t| t["id"] == ids[0].as_str()).expect("listed");
        let mut keys: Vec<&str> = first.as_object().expect("object").keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "category_id",
                "created_at",
                "grid_unit_id",
                "id",
                "next_deadline",
                "number",
                "priority",
                "status",
                "title",
                "updated_at",
                "version"
            ]
        );
        assert_eq!(first["status"], "in_progress");
        // Acknowledged: the acknowledge clock stopped; the next one due is first contact or resolve.
        let next = &first["next_deadline"];
        assert!(["first_contact", "resolve"].contains(&next["clock"].as_str().unwrap_or_default()), "{next}");
        assert_eq!(next["state"], "on_track");
        let single = app.ticket(&ids[0], &demo.dispatcher).await;
        let soonest = single["sla"]
            .as_array()
            .expect("sla")
            .iter()
            .filter(|c| c["stopped_at"].is_null())
            .filter_map(|c| c["due_at"].as_str())
            .min()
            .expect("a running clock")
            .to_owned();
        assert_eq!(next["due_at"], soonest.as_str(), "the next deadline is the soonest running clock");
        // A summary row is small: 50 of them stay well under 25 KB.
        let per_item = serde_json::to_vec(first).expect("json").len();
        assert!(per_item * 50 < 25_000, "a summary item is {per_item} bytes");

        let full = app.get("/api/v1/tickets?limit=50&view=full", &demo.dispatcher).await.expect(200);
        let listed = full["items"].as_array().expect("items").iter().find(|t| t["id"] == ids[0].as_str()).cloned();
        assert_eq!(listed.as_ref().map(|t| &t["dispatches"]), Some(&single["dispatches"]));
        assert_eq!(listed.as_ref().map(|t| &t["resident"]), Some(&single["resident"]));

        // Department staff see their own clocks only, in the summary as in the full read. A
        // second department whistled in on ids[1] after 城管局 acknowledged: its acknowledge
        // clock is the ticket's next deadline, but not for 城管局, which may not see that dispatch.
        let public_security = app.id_by_code("departments", "XF-GAJ", &demo.admin).await;
        let ticket = app.ticket(&ids[1], &demo.dispatcher).await;
        let own = app.dispatch_of(&ticket, "XF-CGJ", &demo.admin).await;
        app.post(&format!("/api/v1/dispatches/{own}/acknowledge"), &demo.dept, json!({})).await.expect(200);
        let whistle = json!({"department_ids": [public_security], "reason": "联合处置"});
        app.post(&format!("/api/v1/tickets/{}/whistle", ids[1]), &demo.dispatcher, whistle).await.expect(200);
        let ticket = app.ticket(&ids[1], &demo.dispatcher).await;
        let summoned = app.dispatch_of(&ticket, "XF-GAJ", &demo.admin).await;
        let next_of = |list: &Value| {
            let items = list["items"].as_array().expect("items");
            items.iter().find(|t| t["id"] == ids[1].as_str()).map(|t| t["next_deadline"].clone()).expect("listed")
        };
        let dispatchers = app.get("/api/v1/tickets?limit=50", &demo.dispatcher).await.expect(200);
        assert_eq!(next_of(&dispatchers)["dispatch_id"], summoned.as_str(), "{dispatchers}");
        let dept = app.get("/api/v1/tickets?limit=50", &demo.dept).await.expect(200);
        assert_eq!(dept["items"].as_array().map(Vec::len), Some(3));
        let departments = next_of(&dept);
        assert!(departments.is_object(), "城管局's own clocks still run: {dept}");
        assert_ne!(departments["dispatch_id"], summoned.as_str(), "{departments}");
        let problem = app.get("/api/v1/tickets?view=everything", &demo.dispatcher).await.problem(422);
        assert!(problem["errors"]["view"].is_string(), "{problem}");
    })
    .await;
}

#[tokio::test]
async fn an_unchanged_list_answers_304_and_a_change_gives_it_a_new_etag() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let ids = tickets_with_history(&app, &demo).await;
        let list = |view: &'static str, tag: Option<String>| {
            let mut request =
                app.client.get(app.url(&format!("/api/v1/tickets?limit=50{view}"))).bearer_auth(&demo.dispatcher);
            if let Some(tag) = tag {
                request = request.header(header::IF_NONE_MATCH, tag);
            }
            request.send()
        };
        let first = list("", None).await.expect("sent");
        assert_eq!(first.status().as_u16(), 200);
        let tag = first.headers()[header::ETAG].to_str().expect("etag").to_owned();
        let again = list("", Some(tag.clone())).await.expect("sent");
        assert_eq!(again.status().as_u16(), 304);
        assert_eq!(again.headers()[header::ETAG].to_str().ok(), Some(tag.as_str()));
        assert!(again.bytes().await.expect("body").is_empty(), "a 304 has no body");
        let weak = list("", Some(format!("\"other\", W/{tag}"))).await.expect("sent");
        assert_eq!(weak.status().as_u16(), 304, "any tag of the list, weak or strong");

        let full = list("&view=full", None).await.expect("sent");
        let full_tag = full.headers()[header::ETAG].to_str().expect("etag").to_owned();
        assert_ne!(full_tag, tag, "the two shapes have their own tags");
        assert_eq!(list("&view=full", Some(full_tag.clone())).await.expect("sent").status().as_u16(), 304);

        // A change to a listed ticket (its clock and version move) gives both new tags.
        let ticket = app.ticket(&ids[1], &demo.dispatcher).await;
        let dispatch = app.dispatch_of(&ticket, "XF-CGJ", &demo.admin).await;
        app.post(&format!("/api/v1/dispatches/{dispatch}/acknowledge"), &demo.dept, json!({})).await.expect(200);
        let changed = list("", Some(tag.clone())).await.expect("sent");
        assert_eq!(changed.status().as_u16(), 200);
        assert_ne!(changed.headers()[header::ETAG].to_str().ok(), Some(tag.as_str()));
        assert_eq!(list("&view=full", Some(full_tag)).await.expect("sent").status().as_u16(), 200);

        // Time alone moves a deadline's state, and the tag with it.
        let now = list("", None).await.expect("sent");
        let tag = now.headers()[header::ETAG].to_str().expect("etag").to_owned();
        app.clock.advance(Duration::days(30));
        let later = app.demo_token("demo-dispatcher").await;
        let reread = app
            .client
            .get(app.url("/api/v1/tickets?limit=50"))
            .bearer_auth(&later)
            .header(header::IF_NONE_MATCH, tag)
            .send()
            .await
            .expect("sent");
        assert_eq!(reread.status().as_u16(), 200, "a month on, the deadlines are breached");
    })
    .await;
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).expect("gzip");
    out
}

fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(bytes, 4096).read_to_end(&mut out).expect("brotli");
    out
}

#[tokio::test]
async fn json_and_csv_are_compressed_for_clients_that_accept_it() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        tickets_with_history(&app, &demo).await;
        let fetch = |path: String, encoding: Option<&'static str>| {
            let mut request = app.client.get(app.url(&path)).bearer_auth(&demo.dispatcher);
            if let Some(encoding) = encoding {
                request = request.header(header::ACCEPT_ENCODING, encoding);
            }
            async move {
                let response = request.send().await.expect("sent");
                assert_eq!(response.status().as_u16(), 200, "{path}");
                let encoding =
                    response.headers().get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).map(str::to_owned);
                (encoding, response.bytes().await.expect("body").to_vec())
            }
        };
        let today = app.clock.now_for_tests().date_naive();
        let report = format!("/api/v1/reports/sla?from={today}&to={today}&group_by=department&format=csv");
        for path in ["/api/v1/tickets?limit=50&view=full".to_owned(), report] {
            let (plain_encoding, plain) = fetch(path.clone(), None).await;
            assert_eq!(plain_encoding, None, "{path}: nothing asked, nothing compressed");
            let (encoding, gzipped) = fetch(path.clone(), Some("gzip")).await;
            assert_eq!(encoding.as_deref(), Some("gzip"), "{path}");
            assert_eq!(gunzip(&gzipped), plain, "{path}: the same answer, gzipped");
            assert!(gzipped.len() < plain.len(), "{path}: {} bytes gzipped of {}", gzipped.len(), plain.len());
            let (encoding, brotlied) = fetch(path.clone(), Some("br")).await;
            assert_eq!(encoding.as_deref(), Some("br"), "{path}");
            assert_eq!(unbrotli(&brotlied), plain, "{path}: the same answer, br");
        }
    })
    .await;
}

/// The server's own end of `client` (a connection to this process's server): found among this
/// process's descriptors as the socket whose peer is the client's address.
fn server_end_of(client: &tokio::net::TcpStream) -> std::os::fd::RawFd {
    use std::os::fd::BorrowedFd;
    let client_address = client.local_addr().expect("client address");
    for entry in std::fs::read_dir("/proc/self/fd").expect("this process's descriptors").flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<std::os::fd::RawFd>() else { continue };
        // SAFETY: only borrowed for this check, while the server keeps the connection open (the
        // client end is still open); a descriptor that is not a socket just fails peer_addr.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = socket2::SockRef::from(&borrowed);
        if socket.peer_addr().ok().and_then(|peer| peer.as_socket()) == Some(client_address) {
            return fd;
        }
    }
    panic!("no server socket has the peer {client_address}");
}

/// A compressed answer is chunked and its last chunk goes out in a write of its own. With
/// Nagle's algorithm on, that write waited for the client's delayed ACK: 40 ms on every request
/// of a kept-alive connection (the load benchmark showed a 1 ms read at p50 42 ms). Timing it
/// here would be flaky on a shared machine, so this checks the cause: the server's end of a
/// connection has TCP_NODELAY set.
#[tokio::test]
async fn answers_are_not_held_back_for_the_clients_acknowledgement() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    // Asynchronous I/O: the server runs on this test's runtime, which a blocking read would stop.
    let mut client = tokio::net::TcpStream::connect(&address).await.expect("connect");
    client
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: gridwhistle\r\naccept-encoding: gzip\r\n\r\n")
        .await
        .expect("request");
    let mut answer = [0u8; 12];
    client.read_exact(&mut answer).await.expect("status line");
    assert_eq!(&answer, b"HTTP/1.1 200", "the server answered");
    let server_end = server_end_of(&client);
    // SAFETY: as above; the connection is still open.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(server_end) };
    let socket = socket2::SockRef::from(&borrowed);
    assert!(socket.tcp_nodelay().expect("TCP_NODELAY"), "the server's end of a connection has TCP_NODELAY");
}

/// PostgreSQL plans a prepared statement afresh on every execution until a generic plan (one
/// made without the values) is as cheap as the custom ones. The rows hanging off a ticket are
/// read by one wide UNION on every ticket read and list page; when its branches were joined to
/// the other tables `ON $1 = $2`, the generic plan had to join them for real, so PostgreSQL
/// kept planning it (~2 ms of database CPU per read, more than the read itself). Its generic
/// plan must join nothing but a dispatch's department.
#[tokio::test]
async fn the_rows_of_a_ticket_are_read_by_a_statement_postgresql_plans_once() {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    if std::env::var("TEST_DATABASE_URL").is_err() {
        println!("skipped: needs TEST_DATABASE_URL (a PostgreSQL plan)");
        return;
    }
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Postgres).await;
    let demo = app.demo().await;
    let ids = tickets_with_history(&app, &demo).await;
    let id: uuid::Uuid = ids[0].parse().expect("uuid");
    let statement = gridwhistle::repo::ticket_reads::related_statement(sea_orm::DbBackend::Postgres, &[id]);
    let values = statement.values.as_ref().map_or(0, |values| values.0.len());
    // One connection for PREPARE, the plan mode and EXPLAIN.
    let txn = app.ctx.db.begin().await.expect("begin");
    txn.execute_unprepared(&format!("PREPARE related_rows AS {}", statement.sql)).await.expect("prepare");
    txn.execute_unprepared("SET LOCAL plan_cache_mode = force_generic_plan").await.expect("generic plans");
    let arguments = vec![format!("'{id}'"); values].join(", ");
    let plan = txn
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!("EXPLAIN (FORMAT JSON) EXECUTE related_rows({arguments})"),
        ))
        .await
        .expect("explain")
        .expect("a plan");
    txn.rollback().await.expect("rollback");
    let plan: Value = plan.try_get::<Value>("", "QUERY PLAN").expect("the plan as JSON");
    fn joins(node: &Value, found: &mut Vec<String>) {
        let kind = node["Node Type"].as_str().unwrap_or_default();
        if ["Nested Loop", "Hash Join", "Merge Join"].contains(&kind) {
            found.push(kind.to_owned());
        }
        for child in node["Plans"].as_array().into_iter().flatten() {
            joins(child, found);
        }
    }
    let mut found = Vec::new();
    joins(&plan[0]["Plan"], &mut found);
    assert!(found.len() <= 1, "the generic plan joins only a dispatch's department, found {found:?} in {plan:#}");
    assert_eq!(values, 4, "the ids are the statement's only values, once per branch: {}", statement.sql);
}

/// A department's clerk sees only their own dispatches' clocks and the ticket's (README,
/// "Who sees what"). `?overdue=true` counted every running clock, so a clerk's list gave away
/// that another department was late, while the same clerk's summary and read of the ticket
/// said on track.
#[tokio::test]
async fn a_clerks_overdue_filter_counts_only_the_clocks_the_clerk_is_shown() {
    each_backend(|app| async move {
        app.clock.set(crate::helpers::cst("2026-12-01 09:00")); // a Tuesday: two working hours to acknowledge
        let demo = app.demo().await;
        let environment = app.category("environment", &demo.admin).await;
        let filed = app.file(&demo.grid, &environment).await;
        let id = filed["id"].as_str().expect("id").to_owned();
        let ticket = app.ticket(&id, &demo.dispatcher).await;
        let own = app.dispatch_of(&ticket, "XF-CGJ", &demo.admin).await;
        app.post(&format!("/api/v1/dispatches/{own}/acknowledge"), &demo.dept, json!({})).await.expect(200);
        let public_security = app.id_by_code("departments", "XF-GAJ", &demo.admin).await;
        let whistle = json!({"department_ids": [public_security], "reason": "联合处置"});
        app.post(&format!("/api/v1/tickets/{id}/whistle"), &demo.dispatcher, whistle).await.expect(200);
        // 公安局 has not acknowledged by 11:30; 城管局's own clocks still run on time.
        app.clock.set(crate::helpers::cst("2026-12-01 11:30"));
        async fn listed(app: &TestApp, id: &str, overdue: bool, token: &str) -> bool {
            let list = app.get(&format!("/api/v1/tickets?overdue={overdue}&limit=200"), token).await.expect(200);
            list["items"].as_array().expect("items").iter().any(|t| t["id"] == id)
        }
        assert!(listed(&app, &id, true, &demo.dispatcher).await, "公安局's acknowledgement is late");
        assert!(!listed(&app, &id, true, &demo.dept).await, "but that is not 城管局's to see");
        assert!(listed(&app, &id, false, &demo.dept).await, "for 城管局 the ticket is on time");
        let read = app.ticket(&id, &demo.dept).await;
        assert_ne!(read["sla_state"], "breached", "as its read says: {read}");
    })
    .await;
}
