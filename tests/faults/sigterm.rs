//! SIGTERM under load, with a load balancer that watches `/readyz`: readiness goes 503 at the
//! start of the drain, the balancer stops sending, the server answers what it has and exits.
//! Promise: every request sent gets an answer, the process exits 0 within the grace period, and
//! every acknowledged filing is in the database.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use crate::support::{
    Backend, Filer, Ledger, Outcome, Server, ServerConfig, Size, TestDatabase, backends, durability, secs,
};

#[tokio::test]
async fn sigterm_under_load_leaves_no_request_without_an_answer() {
    for (i, backend) in backends("sigterm").into_iter().enumerate() {
        experiment(backend, Size::Quick, 56007 + i as u16 * 10).await;
    }
}

#[tokio::test]
#[ignore = "long: run with --ignored (see README, Reliability)"]
async fn sigterm_under_heavier_load_leaves_no_request_without_an_answer() {
    for (i, backend) in backends("sigterm long").into_iter().enumerate() {
        experiment(backend, Size::Long, 56027 + i as u16 * 10).await;
    }
}

async fn experiment(backend: Backend, size: Size, port: u16) {
    let (clients, load_for) = match size {
        Size::Quick => (6, Duration::from_millis(1500)),
        Size::Long => (12, Duration::from_secs(10)),
    };
    let label = format!("sigterm/{}", backend.name());
    let database = TestDatabase::create(backend).await;
    let logs = tempfile::tempdir().expect("log dir");
    // The balancer checks every 100 ms; the drain delay leaves it ample time to notice.
    let drain = [("GRIDWHISTLE_HTTP__DRAIN_DELAY", "3s"), ("GRIDWHISTLE_HTTP__SHUTDOWN_GRACE", "20s")];
    let config = ServerConfig::demo_without_mail(database.url(), port, logs.path(), &drain);
    let mut server = Server::start(&config);
    server.ready(Duration::from_secs(120)).await;
    let base = server.base();
    let filer = Filer::new(&base).await;
    let ledger = Ledger::default();
    let reads = Ledger::default();
    let next = Arc::new(AtomicUsize::new(0));
    let in_rotation = Arc::new(AtomicBool::new(true));

    // The load balancer: takes the instance out of rotation when /readyz stops saying 200.
    let balancer = {
        let (in_rotation, base) = (in_rotation.clone(), base.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            // Out after two failed checks in a row (a balancer's unhealthy threshold).
            let mut failed = 0;
            while in_rotation.load(Ordering::SeqCst) {
                let ready = client.get(format!("{base}/readyz")).timeout(Duration::from_secs(2)).send().await;
                failed = if ready.is_ok_and(|r| r.status().is_success()) { 0 } else { failed + 1 };
                if failed >= 2 {
                    in_rotation.store(false, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let (filer, ledger, reads, next, in_rotation, base) =
                (filer.clone(), ledger.clone(), reads.clone(), next.clone(), in_rotation.clone(), base.clone());
            tokio::spawn(async move {
                let mut r = 0;
                while in_rotation.load(Ordering::SeqCst) {
                    if i % 3 == 2 {
                        r += 1;
                        reads.record(i * 1_000_000 + r, filer.read(&base).await);
                    } else {
                        let n = next.fetch_add(1, Ordering::SeqCst);
                        ledger.record(n, filer.file(&base, n).await);
                    }
                }
            })
        })
        .collect();

    tokio::time::sleep(load_for).await;
    let before = ledger.acknowledged().len();
    // Under overload a busy pool can fail readiness before the signal; then the figures say so.
    let routed_at_signal = in_rotation.load(Ordering::SeqCst);
    server.sigterm();
    let signalled = Instant::now();
    while in_rotation.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let out_of_rotation = signalled.elapsed();
    for task in tasks {
        task.await.expect("client task");
    }
    balancer.await.expect("balancer");
    let exit = server.exited(Duration::from_secs(30)).await;
    let exited_after = signalled.elapsed();

    let unanswered: Vec<Outcome> = ledger
        .snapshot()
        .into_values()
        .chain(reads.snapshot().into_values())
        .flatten()
        .filter(|o| !matches!(o, Outcome::Answered { .. }))
        .collect();
    let not_ok: Vec<Outcome> = ledger
        .snapshot()
        .into_values()
        .chain(reads.snapshot().into_values())
        .flatten()
        .filter(|o| matches!(o, Outcome::Answered { .. }) && !o.acknowledged())
        .collect();
    // A busy server may answer 503 with Retry-After (retryable); anything else is a failure.
    let busy = not_ok.iter().filter(|o| matches!(o, Outcome::Answered { status: 503, .. })).count();
    let wrong: Vec<&Outcome> = not_ok.iter().filter(|o| !matches!(o, Outcome::Answered { status: 503, .. })).collect();
    let db = database.connect().await;
    let found = durability(&db, &filer, &ledger).await;
    db.close().await.ok();
    println!(
        "[{label}] {} filings ({before} before the signal), {} reads; acknowledged {}, lost {}, duplicated {}; 503 \
         (busy) {busy}, other not 2xx {}, without an answer {}; in rotation at the signal {routed_at_signal}, out of \
         the balancer's rotation {} after SIGTERM, exit {:?} after {}",
        ledger.snapshot().len(),
        reads.snapshot().len(),
        found.acknowledged,
        found.lost,
        found.duplicated,
        wrong.len(),
        unanswered.len(),
        secs(out_of_rotation),
        exit.and_then(|s| s.code()),
        secs(exited_after),
    );
    assert!(unanswered.is_empty(), "[{label}] requests without an answer: {unanswered:?}");
    assert!(wrong.is_empty(), "[{label}] answers other than 2xx or 503: {wrong:?}");
    assert!(exit.is_some_and(|s| s.success()), "[{label}] exit 0 within the grace period: {exit:?}");
    assert_eq!(found.lost, 0, "[{label}] acknowledged filings missing");
    assert_eq!(found.duplicated, 0, "[{label}] a request made more than one ticket");
    assert_eq!(found.unexplained, 0, "[{label}] tickets no request asked for");
}
