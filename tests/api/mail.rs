//! Mail delivery through a real SMTP server on loopback (mailin-embedded runs the server side
//! of the conversation in-process; lettre is the client the service uses in production).

use std::{
    net::TcpListener,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use chrono::Duration;
use gridwhistle::{
    config::{SmtpSettings, SmtpTls},
    workers::mailer::{self, MailReport},
};
use mailin_embedded::{Handler, Response, Server, response};
use serde_json::Value;

use crate::helpers::{RESIDENT_PHONE, each_backend};

#[derive(Debug, Clone)]
pub struct Received {
    pub to: Vec<String>,
    pub data: String,
}

#[derive(Clone, Default)]
struct Sink {
    store: Arc<Mutex<Vec<Received>>>,
    /// How many more mails to keep but answer with a 451, as a server that stores a mail and
    /// then fails to confirm it: the sender sends it again.
    unconfirmed: Arc<AtomicUsize>,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for Sink {
    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.to = to.to_vec();
        self.data.clear();
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let mail =
            Received { to: std::mem::take(&mut self.to), data: String::from_utf8_lossy(&self.data).into_owned() };
        self.store.lock().unwrap_or_else(|p| p.into_inner()).push(mail);
        if self.unconfirmed.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return Response::custom(451, "4.3.0 try again later".into());
        }
        response::OK
    }
}

/// A running SMTP server and what it received.
pub struct Mailbox {
    store: Arc<Mutex<Vec<Received>>>,
}

impl Mailbox {
    /// Starts a server on `port` (it runs until the test process ends).
    pub fn start(port: u16) -> Self {
        Self::start_unconfirmed(port, 0)
    }

    /// A server that keeps the first `unconfirmed` mails but answers each with a 451.
    pub fn start_unconfirmed(port: u16, unconfirmed: usize) -> Self {
        let store = Arc::new(Mutex::new(Vec::new()));
        let sink =
            Sink { store: store.clone(), unconfirmed: Arc::new(AtomicUsize::new(unconfirmed)), ..Default::default() };
        let mut server = Server::new(sink);
        server.with_name("mail.test").with_num_threads(2).with_addr(("127.0.0.1", port)).expect("address");
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        // Wait until it accepts connections.
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Self { store }
    }

    pub fn received(&self) -> Vec<Received> {
        self.store.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

pub fn smtp(settings: &SmtpSettings, port: u16) -> mailer::Transport {
    let settings = SmtpSettings { port, tls: SmtpTls::None, ..settings.clone() };
    mailer::transport(&settings).expect("transport")
}

/// The text of a single-part mail, whichever transfer encoding it came in.
pub fn decoded(data: &str) -> String {
    use base64::Engine;
    let (headers, body) = data.split_once("\r\n\r\n").unwrap_or((data, ""));
    let headers = headers.to_ascii_lowercase();
    if headers.contains("content-transfer-encoding: 8bit") {
        return body.to_owned();
    }
    if headers.contains("content-transfer-encoding: base64") {
        let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = base64::engine::general_purpose::STANDARD.decode(compact).expect("base64 body");
        return String::from_utf8_lossy(&bytes).into_owned();
    }
    let joined = body.replace("=\r\n", "");
    let raw = joined.as_bytes();
    let (mut bytes, mut i) = (Vec::new(), 0);
    while i < raw.len() {
        if raw[i] == b'='
            && i + 2 < raw.len()
            && let Ok(byte) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
        {
            bytes.push(byte);
            i += 3;
            continue;
        }
        bytes.push(raw[i]);
        i += 1;
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test]
async fn dispatch_mail_reaches_the_department_once() {
    each_backend(|app| async move {
        let port = free_port();
        let mailbox = Mailbox::start(port);
        let transport = smtp(&app.ctx.settings.smtp, port);
        let demo = app.demo().await;
        let ticket = app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;
        let number = ticket["number"].as_str().expect("number").to_owned();

        let report = mailer::run_once(&app.ctx, &transport).await.expect("mailer runs");
        assert_eq!(report, MailReport { sent: 1, ..Default::default() });
        assert_eq!(
            mailer::run_once(&app.ctx, &transport).await.expect("mailer runs"),
            MailReport::default(),
            "never twice"
        );
        let received = mailbox.received();
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].to, ["cgj.xinfu@gridwhistle.example"]);
        let text = decoded(&received[0].data);
        assert!(received[0].data.contains("Subject:"), "{}", received[0].data);
        assert!(text.contains(&number), "{text}");
        assert!(text.contains("市容环境"), "{text}");
        assert!(text.contains("办理时限"), "{text}");
        assert!(text.contains(&format!("/tickets/{}", ticket["id"].as_str().expect("id"))), "{text}");
        assert!(!received[0].data.contains(RESIDENT_PHONE) && !text.contains(RESIDENT_PHONE), "no phone in mail");
        assert!(!text.contains("张三丰"), "no resident name in mail");

        let outbox = app.get("/api/v1/notifications?status=sent", &demo.admin).await.expect(200);
        assert_eq!(outbox["items"].as_array().map(Vec::len), Some(1));
        assert!(outbox["items"][0]["sent_at"].is_string());
    })
    .await;
}

#[tokio::test]
async fn mail_waits_while_the_server_is_down_and_goes_out_when_it_is_back() {
    each_backend(|app| async move {
        let port = free_port(); // nothing listens here yet
        let transport = smtp(&app.ctx.settings.smtp, port);
        let demo = app.demo().await;
        app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;

        let down = mailer::run_once(&app.ctx, &transport).await.expect("mailer runs");
        assert_eq!(down, MailReport { retried: 1, ..Default::default() });
        let pending = app.get("/api/v1/notifications?status=pending", &demo.admin).await.expect(200);
        let row: &Value = &pending["items"][0];
        assert_eq!(row["attempts"], 1);
        assert!(row["last_error"].is_string());

        let mailbox = Mailbox::start(port);
        // The server was down: the next tick probes it with the waiting mail, backoff or not.
        assert_eq!(
            mailer::run_once(&app.ctx, &transport).await.expect("runs"),
            MailReport { sent: 1, ..Default::default() }
        );
        assert_eq!(mailbox.received().len(), 1);
        assert_eq!(mailer::run_once(&app.ctx, &transport).await.expect("runs"), MailReport::default());
        let admin = app.demo_token("demo-admin").await;
        let sent = app.get("/api/v1/notifications?status=sent", &admin).await.expect(200);
        assert_eq!(sent["items"][0]["attempts"], 2);
    })
    .await;
}

/// A sender that stalls keeps its claim for as long as a whole batch may take; once its lease
/// has run out and another replica sent the mail, the stalled sender neither sends it again
/// nor overwrites what the other recorded.
#[tokio::test]
async fn a_stalled_sender_neither_sends_again_nor_overwrites_the_record() {
    each_backend(|app| async move {
        let port = free_port();
        let mailbox = Mailbox::start(port);
        let transport = smtp(&app.ctx.settings.smtp, port);
        let demo = app.demo().await;
        app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;

        let stalled = mailer::claim(&app.ctx).await.expect("first replica claims");
        assert_eq!(stalled.mails.len(), 1);
        assert!(mailer::claim(&app.ctx).await.expect("second replica claims").mails.is_empty(), "claimed once");

        // Minutes pass inside one batch (a slow SMTP server answers each mail in up to 15 s).
        app.clock.advance(Duration::minutes(3));
        assert_eq!(
            mailer::run_once(&app.ctx, &transport).await.expect("another replica"),
            MailReport::default(),
            "still the first replica's"
        );

        // The first replica is gone for good: its lease runs out and another replica sends.
        app.clock.advance(Duration::hours(1));
        assert_eq!(
            mailer::run_once(&app.ctx, &transport).await.expect("another replica"),
            MailReport { sent: 1, ..Default::default() }
        );
        // The stalled replica wakes up with its old claim.
        assert_eq!(
            mailer::deliver(&app.ctx, &transport, stalled).await.expect("stale delivery"),
            MailReport::default()
        );
        assert_eq!(mailbox.received().len(), 1, "sent once");
        let sent = app.get("/api/v1/notifications?status=sent", &demo.admin).await.expect(200);
        assert_eq!(sent["items"].as_array().map(Vec::len), Some(1));
        assert_eq!(sent["items"][0]["attempts"], 1, "the stale sender recorded nothing");
    })
    .await;
}

/// The demo data set plays three weeks of history; its mails enter the outbox when the demo is
/// loaded, so an SMTP server that is not running yet must not kill them on the first try.
#[tokio::test]
async fn the_demo_data_sets_mail_waits_for_a_mail_server_started_later() {
    each_backend(|app| async move {
        gridwhistle::service::demo::seed(&app.ctx).await.expect("demo data with tickets");
        let transport = smtp(&app.ctx.settings.smtp, free_port()); // nothing listens here
        let report = mailer::run_once(&app.ctx, &transport).await.expect("mailer runs");
        assert_eq!(report.dead, 0, "no demo mail dies of one refused connection: {report:?}");
        assert_eq!(report.retried, 1, "the first mail probes the server, the rest wait: {report:?}");
        let admin = app.demo_token("demo-admin").await;
        let dead = app.get("/api/v1/notifications?status=dead", &admin).await.expect(200);
        assert_eq!(dead["items"].as_array().expect("items").len(), 0, "{dead}");
    })
    .await;
}
