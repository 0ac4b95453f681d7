//! PostgreSQL restarts under load, on a private instance the suite starts on its own port.
//! Promise: requests answer 503 with Retry-After while the database is away (never a 500,
//! never no answer), the server serves again without a restart of its own, and after retrying
//! every unacknowledged filing with its key nothing is lost or duplicated.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use crate::support::{
    Filer, Ledger, Outcome, PrivatePostgres, Server, ServerConfig, Size, TestDatabase, durability,
    retry_unacknowledged, secs,
};

#[tokio::test]
async fn a_postgres_restart_under_load_answers_503_and_loses_nothing() {
    experiment(Size::Quick, 56050, 56003).await;
}

#[tokio::test]
#[ignore = "long: run with --ignored (see README, Reliability)"]
async fn postgres_restarts_a_crash_and_a_10s_stop_under_load_lose_nothing() {
    experiment(Size::Long, 56051, 56023).await;
}

/// One disturbance of the database, with what pg_ctl is told.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// `pg_ctl restart -m fast`: sessions are terminated, the server restarts.
    Restart,
    /// `pg_ctl restart -m immediate`: as a crash; recovery replays the WAL.
    Crash,
    /// `pg_ctl stop -m fast`, ten seconds without a database, then start.
    Stop10s,
}

async fn experiment(size: Size, pg_port: u16, port: u16) {
    let label = "postgres-restart";
    let Some(postgres) = PrivatePostgres::start(label, pg_port) else { return };
    let faults: &[Fault] = match size {
        Size::Quick => &[Fault::Restart],
        Size::Long => &[Fault::Restart, Fault::Crash, Fault::Restart, Fault::Stop10s],
    };
    let clients = match size {
        Size::Quick => 4,
        Size::Long => 12,
    };
    let database = TestDatabase::create_on_postgres(&postgres.admin_url()).await;
    let logs = tempfile::tempdir().expect("log dir");
    let config = ServerConfig::demo_without_mail(
        database.url(),
        port,
        logs.path(),
        &[("GRIDWHISTLE_DATABASE__ACQUIRE_TIMEOUT", "2s")],
    );
    let mut server = Server::start(&config);
    server.ready(Duration::from_secs(120)).await;
    let base = server.base();
    let filer = Filer::new(&base).await;
    let ledger = Ledger::default();
    let reads = Ledger::default();
    let next = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    // Half the clients file, half read; none stops on an error.
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let (filer, ledger, reads, next, stop, base) =
                (filer.clone(), ledger.clone(), reads.clone(), next.clone(), stop.clone(), base.clone());
            tokio::spawn(async move {
                let mut r = 0;
                while !stop.load(Ordering::SeqCst) {
                    let outcome = if i % 2 == 0 {
                        let n = next.fetch_add(1, Ordering::SeqCst);
                        let outcome = filer.file(&base, n).await;
                        ledger.record(n, outcome.clone());
                        outcome
                    } else {
                        r += 1;
                        let outcome = filer.read(&base).await;
                        reads.record(i * 1_000_000 + r, outcome.clone());
                        outcome
                    };
                    if !outcome.acknowledged() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            })
        })
        .collect();

    for fault in faults {
        // Some acknowledged work before each fault.
        let before = ledger.acknowledged().len();
        while ledger.acknowledged().len() < before + 20 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let started = Instant::now();
        let ok = match fault {
            Fault::Restart => postgres.pg_ctl(&["restart", "-w", "-m", "fast"]),
            Fault::Crash => postgres.pg_ctl(&["restart", "-w", "-m", "immediate"]),
            Fault::Stop10s => {
                let stopped = postgres.pg_ctl(&["stop", "-w", "-m", "fast"]);
                tokio::time::sleep(Duration::from_secs(10)).await;
                stopped && postgres.pg_ctl(&["start", "-w"])
            }
        };
        assert!(ok, "[{label}] pg_ctl {fault:?}");
        let database_back = Instant::now();
        // Recovery: the first filing acknowledged after the database is back.
        let acknowledged = ledger.acknowledged().len();
        while ledger.acknowledged().len() == acknowledged {
            assert!(database_back.elapsed() < Duration::from_secs(60), "[{label}] no recovery within 60 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        println!(
            "[{label}] {fault:?}: database away and back in {}, filings acknowledged again {} after it was back",
            secs(database_back - started),
            secs(database_back.elapsed())
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.expect("client task");
    }

    let status = |code: u16| move |o: &Outcome| matches!(o, Outcome::Answered { status, .. } if *status == code);
    let (filed_503, read_503) = (ledger.count(status(503)), reads.count(status(503)));
    let server_errors = ledger.count(status(500)) + reads.count(status(500));
    let unanswered =
        ledger.count(|o| matches!(o, Outcome::Unanswered(_))) + reads.count(|o| matches!(o, Outcome::Unanswered(_)));
    let refused = ledger.count(|o| matches!(o, Outcome::Refused)) + reads.count(|o| matches!(o, Outcome::Refused));
    let other: Vec<Outcome> = ledger
        .snapshot()
        .into_values()
        .chain(reads.snapshot().into_values())
        .flatten()
        .filter(|o| !o.acknowledged() && !matches!(o, Outcome::Answered { status: 503, .. }))
        .collect();
    let retried = retry_unacknowledged(&filer, &base, &ledger, Duration::from_secs(60)).await;
    let db = database.connect().await;
    let found = durability(&db, &filer, &ledger).await;
    db.close().await.ok();
    println!(
        "[{label}] filings {}, acknowledged {}, lost {}, duplicated {}, unexplained {}; answered 503 while away: \
         {filed_503} filings, {read_503} reads; 500s {server_errors}; without an answer {unanswered}; refused {refused}; \
         retried with their key {retried}; reads {}",
        ledger.snapshot().len(),
        found.acknowledged,
        found.lost,
        found.duplicated,
        found.unexplained,
        reads.snapshot().len(),
    );
    assert!(other.is_empty(), "[{label}] answers other than 2xx or 503: {other:?}");
    assert_eq!(unanswered + refused, 0, "[{label}] the server itself never stopped answering");
    assert_eq!(found.lost, 0, "[{label}] acknowledged filings missing");
    assert_eq!(found.duplicated, 0, "[{label}] a request made more than one ticket");
    assert_eq!(found.unexplained, 0, "[{label}] tickets no request asked for");
    assert_eq!(ledger.unacknowledged().len(), 0, "[{label}] every filing acknowledged once retried");
}
