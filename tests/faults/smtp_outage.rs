//! SMTP down, then up: mail queued while nothing listens on the SMTP port goes out once the
//! server is there. Promise: 0 lost, each mail once, and the outbox drains within a tick or two
//! of the server's return (the circuit breaker, not each row's backoff).

use entities::enums::MailStatus;
use std::time::{Duration, Instant};

use crate::support::{
    Backend, Filer, Server, ServerConfig, Sink, Size, TestDatabase, backends, delivery, outbox, rows_of_run, secs,
};

#[tokio::test]
async fn smtp_down_then_up_delivers_every_mail_once() {
    for (i, backend) in backends("smtp-outage").into_iter().enumerate() {
        experiment(backend, Size::Quick, 56004 + i as u16 * 10, 56060 + i as u16).await;
    }
}

#[tokio::test]
#[ignore = "long: run with --ignored (see README, Reliability)"]
async fn smtp_down_100s_then_up_delivers_every_mail_once() {
    for (i, backend) in backends("smtp-outage long").into_iter().enumerate() {
        experiment(backend, Size::Long, 56024 + i as u16 * 10, 56070 + i as u16).await;
    }
}

async fn experiment(backend: Backend, size: Size, port: u16, smtp_port: u16) {
    let (outage, filings) = match size {
        Size::Quick => (Duration::from_secs(4), 10),
        Size::Long => (Duration::from_secs(100), 100),
    };
    let label = format!("smtp-outage/{}", backend.name());
    let database = TestDatabase::create(backend).await;
    let logs = tempfile::tempdir().expect("log dir");
    let config =
        ServerConfig { database_url: database.url(), port, demo: true, smtp_port, log_dir: logs.path(), extra: &[] };
    let mut server = Server::start(&config);
    server.ready(Duration::from_secs(120)).await;
    let down_since = Instant::now();
    let base = server.base();
    let filer = Filer::new(&base).await;
    for n in 0..filings {
        filer.file_acknowledged(&base, n).await;
    }
    let db = database.connect().await;
    // The mailer has tried and failed: mail is waiting, none is dead.
    let mut tried = false;
    while down_since.elapsed() < outage.max(Duration::from_secs(60)) {
        let rows = outbox(&db).await;
        tried = rows.values().flatten().any(|r| r.attempts > 0);
        if tried && down_since.elapsed() >= outage {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(tried, "[{label}] the mailer tried while the SMTP server was down");
    let waiting = outbox(&db).await;
    let ours = rows_of_run(&db, &waiting, &filer).await;
    let pending = ours.iter().filter(|r| r.status == MailStatus::Pending).count();
    assert_eq!(pending, ours.len(), "[{label}] nothing of this run is sent or given up on during the outage");

    let sink = Sink::start(smtp_port);
    let back = Instant::now();
    let drained = loop {
        let rows = outbox(&db).await;
        if rows_of_run(&db, &rows, &filer).await.iter().all(|r| r.status != MailStatus::Pending) {
            break back.elapsed();
        }
        assert!(back.elapsed() < Duration::from_secs(120), "[{label}] the outbox did not drain: {rows:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // A tick more, for any second sending to show.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let rows = outbox(&db).await;
    let ours = rows_of_run(&db, &rows, &filer).await;
    db.close().await.ok();
    let mail = delivery(&rows, &ours, &sink);
    let sent = ours.iter().filter(|r| r.status == MailStatus::Sent).count();
    println!(
        "[{label}] SMTP down {}: {pending} mails waiting ({filings} filings); after it came back: sent {sent}, received \
         {} (the demo data's included), lost {}, duplicated {}, dead {}; outbox drained {} after the SMTP server \
         returned",
        secs(back - down_since),
        mail.received,
        mail.lost,
        mail.duplicated,
        ours.iter().filter(|r| r.status == MailStatus::Dead).count(),
        secs(drained),
    );
    assert!(pending >= filings, "[{label}] every filing queued a mail");
    assert_eq!(sent, mail.rows, "[{label}] every mail of the run is sent: {ours:?}");
    assert_eq!(mail.lost, 0, "[{label}] mails marked sent but never received");
    assert_eq!(mail.duplicated, 0, "[{label}] mails received twice");
    assert_eq!(mail.unknown, 0, "[{label}] mails that match no outbox row");
    server.sigterm();
    assert!(server.exited(Duration::from_secs(20)).await.is_some_and(|s| s.success()), "[{label}] clean exit");
}
