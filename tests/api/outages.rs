//! Outages and shutdown: a database that goes away and comes back, and a drain on SIGTERM.
//! The database outage is a TCP proxy in front of PostgreSQL that the test closes and reopens
//! (only this test's connections are cut; the shared server is never touched).

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{Shutdown, TcpListener, TcpStream},
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use gridwhistle::{
    config::{Settings, SettingsSources},
    startup::Application,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, fresh_database, test_env};

/// A TCP proxy to one upstream address that can be "stopped" (listener closed, every open
/// connection cut, like a database server going down) and started again on the same port.
struct Proxy {
    port: u16,
    upstream: String,
    running: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<TcpStream>>>,
    /// When set, the next statement sent on any connection cuts every open connection, as a
    /// database restart does to a query in flight (pings pass: the pool still thinks it healthy).
    cut_next_statement: Arc<AtomicBool>,
}

impl Proxy {
    fn start(upstream: &str) -> Self {
        let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let proxy = Proxy {
            port,
            upstream: upstream.to_owned(),
            running: Arc::new(AtomicBool::new(false)),
            connections: Arc::new(Mutex::new(Vec::new())),
            cut_next_statement: Arc::new(AtomicBool::new(false)),
        };
        proxy.open();
        proxy
    }

    fn open(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("proxy port free again");
        listener.set_nonblocking(true).expect("nonblocking");
        self.running.store(true, Ordering::SeqCst);
        let (running, connections, upstream) = (self.running.clone(), self.connections.clone(), self.upstream.clone());
        let cut_next_statement = self.cut_next_statement.clone();
        std::thread::spawn(move || {
            while running.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).expect("blocking");
                        let Ok(server) = TcpStream::connect(&upstream) else { continue };
                        let mut open = connections.lock().expect("lock");
                        open.push(client.try_clone().expect("clone"));
                        open.push(server.try_clone().expect("clone"));
                        let (from_client, to_server) =
                            (client.try_clone().expect("clone"), server.try_clone().expect("clone"));
                        pipe_to_server(from_client, to_server, cut_next_statement.clone(), connections.clone());
                        pipe(server, client);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
    }

    /// The database "goes down": no new connection is accepted, every open one is cut.
    fn stop(&self) {
        self.running.store(false, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(50));
        for connection in self.connections.lock().expect("lock").drain(..) {
            let _ = connection.shutdown(Shutdown::Both);
        }
    }
}

/// Client to PostgreSQL: passes everything on, unless the proxy is told to cut the next
/// statement (a Parse, Bind or simple Query message; a ping is a bare Sync and passes).
fn pipe_to_server(
    mut from: TcpStream,
    mut to: TcpStream,
    cut_next_statement: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<TcpStream>>>,
) {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 16 * 1024];
        while let Ok(read) = from.read(&mut buffer) {
            if read == 0 {
                break;
            }
            if matches!(buffer[0], b'P' | b'B' | b'Q') && cut_next_statement.swap(false, Ordering::SeqCst) {
                for connection in connections.lock().expect("lock").drain(..) {
                    let _ = connection.shutdown(Shutdown::Both);
                }
                break;
            }
            if to.write_all(&buffer[..read]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Both);
    });
}

async fn timed_login(client: &reqwest::Client, address: &str) -> (StatusCode, Option<String>, Value, Duration) {
    let started = Instant::now();
    let response = client
        .post(format!("{address}/api/v1/auth/token"))
        .json(&json!({"username": "nobody", "password": "not-the-password"}))
        .send()
        .await
        .expect("the server answers");
    let status = response.status();
    let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = response.json().await.unwrap_or(Value::Null);
    (status, retry_after, body, started.elapsed())
}

/// A server on a fresh PostgreSQL database reached through a [`Proxy`], with the demo's
/// reference data and users, and `GRIDWHISTLE_{key}` settings changed; `None` (the test is
/// skipped) without TEST_DATABASE_URL.
async fn behind_a_proxy(settings: &[(&str, &str)]) -> Option<(Proxy, String, crate::helpers::DatabaseGuard)> {
    let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
        println!("skipped: needs TEST_DATABASE_URL (a PostgreSQL to put a proxy in front of)");
        return None;
    };
    let upstream = admin_url.split('@').nth(1).and_then(|rest| rest.split('/').next()).expect("host:port in the URL");
    let proxy = Proxy::start(upstream);
    let (url, guard) = fresh_database(Backend::Postgres).await;
    let url = url.replacen(upstream, &format!("127.0.0.1:{}", proxy.port), 1);
    // In clear, so the proxy can tell a statement from a ping.
    let url = format!("{url}{}sslmode=disable", if url.contains('?') { '&' } else { '?' });
    let mut env = test_env(&url);
    env.extend(settings.iter().map(|(key, value)| (format!("GRIDWHISTLE_{key}"), value.to_string())));
    let settings = Settings::load(SettingsSources { local_file: None, env }).expect("settings");
    let app = Application::build(settings).await.expect("application starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    gridwhistle::service::demo::seed_reference(app.context()).await.expect("demo data loads");
    tokio::spawn(app.run_until_stopped());
    Some((proxy, address, guard))
}

#[tokio::test]
async fn a_database_outage_answers_503_fast_and_recovers_when_the_database_returns() {
    let Some((proxy, address, _guard)) = behind_a_proxy(&[("DATABASE__ACQUIRE_TIMEOUT", "2s")]).await else { return };
    let client = reqwest::Client::new();

    let (status, ..) = timed_login(&client, &address).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "an unknown login is refused while the database is up");
    assert_eq!(client.get(format!("{address}/readyz")).send().await.expect("readyz").status(), StatusCode::OK);

    proxy.stop();
    // The first request finds out: a 503 to retry, never a 500, within the acquire timeout.
    let (status, retry_after, body, took) = timed_login(&client, &address).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(retry_after.is_some(), "503 carries Retry-After");
    assert!(took < Duration::from_millis(3500), "the first request took {took:?}");
    // From then on requests fail at once instead of each waiting out the acquire timeout.
    for _ in 0..3 {
        let (status, retry_after, body, took) = timed_login(&client, &address).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(retry_after.is_some(), "503 carries Retry-After");
        assert!(took < Duration::from_millis(300), "a request during the outage took {took:?}");
        assert!(body["detail"].as_str().unwrap_or_default().contains("database"), "{body}");
    }
    // The probe of a load balancer gets its answer within a second, naming the database.
    let started = Instant::now();
    let ready = client.get(format!("{address}/readyz")).send().await.expect("readyz answers");
    let took = started.elapsed();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let problem: Value = ready.json().await.expect("problem document");
    assert!(took < Duration::from_millis(1500), "readyz took {took:?}");
    assert!(problem["detail"].as_str().unwrap_or_default().contains("database"), "{problem}");

    // The database comes back: requests pass again within moments, without a restart.
    proxy.open();
    let back = Instant::now();
    let mut recovered = None;
    while back.elapsed() < Duration::from_secs(10) {
        let (status, ..) = timed_login(&client, &address).await;
        if status == StatusCode::UNAUTHORIZED {
            recovered = Some(back.elapsed());
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "only 503 while the database comes back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered = recovered.expect("requests pass again within 10 s of the database's return");
    println!("recovered {recovered:?} after the database came back");
    assert!(recovered < Duration::from_secs(3), "recovery took {recovered:?}");
    assert_eq!(client.get(format!("{address}/readyz")).send().await.expect("readyz").status(), StatusCode::OK);
}

#[tokio::test]
async fn a_read_whose_connection_breaks_mid_query_is_retried_once_on_a_fresh_connection() {
    // Nothing but the test's own requests talks to the database while the cut is armed.
    let quiet = [("SLA__SWEEP_INTERVAL", "1h"), ("SMTP__POLL_INTERVAL", "1h"), ("WEBHOOKS__POLL_INTERVAL", "1h")];
    let Some((proxy, address, _guard)) = behind_a_proxy(&quiet).await else { return };
    let client = reqwest::Client::new();
    let login = client
        .post(format!("{address}/api/v1/auth/token"))
        .json(&json!({"username": "demo-dispatcher", "password": "gridwhistle-demo"}))
        .send()
        .await
        .expect("login");
    let body: Value = login.json().await.expect("token body");
    let token = body["access_token"].as_str().expect("access_token").to_owned();
    let read = || client.get(format!("{address}/api/v1/tickets?limit=5")).bearer_auth(&token).send();
    assert_eq!(read().await.expect("read").status(), StatusCode::OK, "a read before the cut");

    // The statement of the next read is cut on the wire, as a database restart cuts a query.
    proxy.cut_next_statement.store(true, Ordering::SeqCst);
    let answer = read().await.expect("the server answers");
    assert!(!proxy.cut_next_statement.load(Ordering::SeqCst), "the read's statement was cut");
    let status = answer.status();
    let body = answer.text().await.unwrap_or_default();
    assert_eq!(status, StatusCode::OK, "the read was retried on a fresh connection: {body}");
    assert_eq!(read().await.expect("read").status(), StatusCode::OK, "and the next read is served as usual");
}

/// One HTTP/1.1 response read from `stream`: status, lower-cased headers, body.
fn read_response(reader: &mut BufReader<TcpStream>) -> (u16, Vec<(String, String)>, String) {
    let mut status_line = String::new();
    reader.read_line(&mut status_line).expect("status line");
    let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header line");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_lowercase(), value.trim().to_owned()));
        }
    }
    let length = headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("body");
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// The server process, killed if a failed assertion leaves it running.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn closes(headers: &[(String, String)]) -> bool {
    headers.iter().any(|(n, v)| n == "connection" && v.eq_ignore_ascii_case("close"))
}

#[tokio::test]
async fn sigterm_drains_answers_in_flight_and_idle_connections_and_exits_within_the_grace() {
    let (url, _guard) = fresh_database(Backend::Sqlite).await;
    let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut env = test_env(&url);
    env.insert("GRIDWHISTLE_HTTP__PORT".into(), port.to_string());
    env.insert("GRIDWHISTLE_HTTP__DRAIN_DELAY".into(), "2s".into());
    env.insert("GRIDWHISTLE_HTTP__SHUTDOWN_GRACE".into(), "10s".into());
    env.insert("GRIDWHISTLE_LOG__LEVEL".into(), "warn".into());
    let mut server = Server(
        Command::new(env!("CARGO_BIN_EXE_gridwhistle"))
            .arg("serve")
            .envs(env)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("server starts"),
    );
    let child = &mut server.0;
    let client = reqwest::Client::new();
    let readyz = format!("http://127.0.0.1:{port}/readyz");
    let mut ready = false;
    for _ in 0..150 {
        if client.get(&readyz).send().await.is_ok_and(|r| r.status().is_success()) {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the server answers /readyz");

    // A keep-alive connection that has had one answer and now sits idle.
    let idle = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    idle.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
    let mut idle_reader = BufReader::new(idle.try_clone().expect("clone"));
    let get_healthz = b"GET /healthz HTTP/1.1\r\nHost: gridwhistle\r\n\r\n";
    (&idle).write_all(get_healthz).expect("send");
    let (status, headers, _) = read_response(&mut idle_reader);
    assert_eq!(status, 200);
    assert!(!closes(&headers), "before the drain the connection is kept alive");
    // A slow request in flight: its body is half sent when SIGTERM arrives.
    let body = json!({"username": "nobody", "password": "not-the-password"}).to_string();
    let (first, rest) = body.split_at(body.len() / 2);
    let slow = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    slow.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
    let head = format!(
        "POST /api/v1/auth/token HTTP/1.1\r\nHost: gridwhistle\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    (&slow).write_all(head.as_bytes()).expect("send head");
    (&slow).write_all(first.as_bytes()).expect("send half the body");
    tokio::time::sleep(Duration::from_millis(200)).await;

    let signalled = Instant::now();
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
    assert!(killed.success());
    tokio::time::sleep(Duration::from_millis(300)).await;

    // From the start of the drain, readiness says no, so a load balancer stops sending.
    let ready = client.get(&readyz).send().await.expect("readyz answers during the drain");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let problem: Value = ready.json().await.expect("problem document");
    assert!(problem["detail"].as_str().unwrap_or_default().contains("shutting down"), "{problem}");
    // The idle keep-alive connection gets its answer, told to close, then closed cleanly.
    (&idle).write_all(get_healthz).expect("send on the idle connection");
    let (status, headers, _) = read_response(&mut idle_reader);
    assert_eq!(status, 200);
    assert!(closes(&headers), "a response during the drain closes its connection: {headers:?}");
    let mut rest_of_idle = Vec::new();
    idle_reader.read_to_end(&mut rest_of_idle).expect("the server closes the connection cleanly");
    assert!(rest_of_idle.is_empty());

    // After the drain delay the listener is closed, but the request in flight is still answered.
    tokio::time::sleep(Duration::from_millis(2500).saturating_sub(signalled.elapsed())).await;
    (&slow).write_all(rest.as_bytes()).expect("send the rest of the body");
    let mut slow_reader = BufReader::new(slow);
    let (status, headers, answer) = read_response(&mut slow_reader);
    assert_eq!(status, 401, "the in-flight login is answered: {answer}");
    assert!(closes(&headers), "{headers:?}");

    let mut exit = None;
    while signalled.elapsed() < Duration::from_secs(12) {
        if let Some(status) = child.try_wait().expect("wait") {
            exit = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let exit = exit.expect("the server exits within the 10 s grace period");
    assert!(exit.success(), "exit status {exit:?}");
    println!("exited {:?} after SIGTERM", signalled.elapsed());
}

#[tokio::test]
async fn a_database_restart_cutting_every_connection_is_never_a_500() {
    if std::env::var("TEST_DATABASE_URL").is_err() {
        println!("skipped: needs TEST_DATABASE_URL");
        return;
    }
    let app = crate::helpers::spawn_app(Backend::Postgres).await;
    app.seed_demo().await;
    let token = app.demo_token("demo-admin").await;
    app.get("/api/v1/departments", &token).await.expect(200);
    // Only this test's own database: its backends end as in a server restart.
    use sea_orm::ConnectionTrait;
    let admin = sea_orm::Database::connect(std::env::var("TEST_DATABASE_URL").expect("url")).await.expect("admin");
    let name = app.ctx.settings.database_url.rsplit('/').next().expect("the test database's name").to_owned();
    let backends: Vec<i32> = admin
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!("SELECT pid FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"),
        ))
        .await
        .expect("the test database's backends")
        .iter()
        .filter_map(|row| row.try_get::<i32>("", "pid").ok())
        .collect();
    let pids = backends.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    admin
        .execute_unprepared(&format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid IN ({pids})"))
        .await
        .expect("terminate the test database's backends");
    // pg_terminate_backend only signals: wait until those backends are gone, as after a restart
    // (the event stream's listener reconnects at once, so new backends may appear meanwhile).
    let mut gone = false;
    for _ in 0..100 {
        let left = admin
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                format!("SELECT count(*) AS n FROM pg_stat_activity WHERE pid IN ({pids})"),
            ))
            .await
            .expect("count backends")
            .and_then(|row| row.try_get::<i64>("", "n").ok());
        if left == Some(0) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the test database's backends end");
    admin.close().await.ok();

    // Every pooled connection is dead now. The pool tests a connection before lending it
    // (sqlx's test_before_acquire), so the read runs on a fresh one and the client never sees
    // the restart; the next request passes too.
    let reply = app.get("/api/v1/departments", &token).await;
    assert_eq!(reply.status, StatusCode::OK, "the first read after the restart: {}", reply.body);
    let reply = app.get("/api/v1/departments", &token).await;
    assert_eq!(reply.status, StatusCode::OK, "the next read: {}", reply.body);
}
