//! kill -9 under concurrent filing: the server dies with requests in flight, comes back on the
//! same database, and every request that had no answer is retried with its Idempotency-Key.
//! Promise: every acknowledged filing is in the database (0 lost), and no request made two
//! tickets (0 duplicated).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use crate::support::{
    Backend, Filer, Ledger, Outcome, Server, ServerConfig, Size, TestDatabase, backends, durability,
    retry_unacknowledged, secs,
};

#[tokio::test]
async fn kill_9_under_filing_loses_and_duplicates_nothing() {
    for backend in backends("kill-9") {
        experiment(backend, Size::Quick, 56001).await;
    }
}

#[tokio::test]
#[ignore = "long: run with --ignored (see README, Reliability)"]
async fn kill_9_under_filing_three_times_loses_and_duplicates_nothing() {
    for backend in backends("kill-9 long") {
        experiment(backend, Size::Long, 56021).await;
    }
}

async fn experiment(backend: Backend, size: Size, port: u16) {
    let (clients, rounds, kill_after) = match size {
        Size::Quick => (4, 1, 30),
        Size::Long => (12, 3, 300),
    };
    let label = format!("kill-9/{}", backend.name());
    let database = TestDatabase::create(backend).await;
    let logs = tempfile::tempdir().expect("log dir");
    let config = ServerConfig::demo_without_mail(database.url(), port, logs.path(), &[]);
    let mut server = Server::start(&config);
    server.ready(Duration::from_secs(120)).await;
    let base = server.base();
    let filer = Filer::new(&base).await;
    let ledger = Ledger::default();
    let next = Arc::new(AtomicUsize::new(0));
    let config = ServerConfig { demo: false, ..config };

    for round in 1..=rounds {
        // Clients file as fast as they are answered, each request with its own key.
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged_before = ledger.acknowledged().len();
        let unanswered_before = ledger.count(|o| matches!(o, Outcome::Unanswered(_)));
        let refused_before = ledger.count(|o| matches!(o, Outcome::Refused));
        let busy_before = ledger.count(|o| matches!(o, Outcome::Answered { status: 503, .. }));
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let (filer, ledger, next, stop, base) =
                    (filer.clone(), ledger.clone(), next.clone(), stop.clone(), base.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        let n = next.fetch_add(1, Ordering::SeqCst);
                        let outcome = filer.file(&base, n).await;
                        let failed = !matches!(outcome, Outcome::Answered { .. });
                        ledger.record(n, outcome);
                        if failed {
                            // The server is gone: a client would wait and try again later.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                })
            })
            .collect();
        while ledger.acknowledged().len() < acknowledged_before + kill_after {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.kill9();
        let killed = Instant::now();
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.store(true, Ordering::SeqCst);
        for task in tasks {
            task.await.expect("client task");
        }
        // This round's figures; the database checks below cover every round so far.
        let unanswered = ledger.count(|o| matches!(o, Outcome::Unanswered(_))) - unanswered_before;
        let refused = ledger.count(|o| matches!(o, Outcome::Refused)) - refused_before;
        let busy = ledger.count(|o| matches!(o, Outcome::Answered { status: 503, .. })) - busy_before;

        server = Server::start(&config);
        let restarted = Instant::now();
        let ready_after = server.ready(Duration::from_secs(120)).await;
        let retried = retry_unacknowledged(&filer, &base, &ledger, Duration::from_secs(60)).await;

        let db = database.connect().await;
        let found = durability(&db, &filer, &ledger).await;
        db.close().await.ok();
        let left = ledger.unacknowledged().len();
        println!(
            "[{label}] round {round}/{rounds}: requests so far {}, acknowledged {}, lost {}, duplicated {}, unexplained \
             {}; this round: in flight at the kill (no answer) {unanswered}, refused while down {refused}, 503 (busy) \
             {busy}, retried with their key {retried}, still unacknowledged {left}; restart to ready {} (down {} in all)",
            ledger.snapshot().len(),
            found.acknowledged,
            found.lost,
            found.duplicated,
            found.unexplained,
            secs(ready_after),
            secs(killed.elapsed() - restarted.elapsed() + ready_after),
        );
        assert_eq!(found.lost, 0, "[{label}] acknowledged filings missing from the database");
        assert_eq!(found.duplicated, 0, "[{label}] a request made more than one ticket");
        assert_eq!(found.unexplained, 0, "[{label}] tickets no request asked for");
        assert_eq!(left, 0, "[{label}] every request is acknowledged once retried with its key");
        assert!(server.errors().is_empty(), "[{label}] errors in the log: {:?}", server.errors());
    }
}
