//! Two replicas on one PostgreSQL database, both sweeping every second and both mailing, with
//! SLA clocks of a few seconds so every clock warns and breaches while they run.
//! Promise: each clock's warning and breach fire once, and each mail arrives once.

use entities::enums::MailStatus;
use std::{
    collections::{BTreeMap, HashSet},
    time::{Duration, Instant},
};

use entities::notification;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::support::{
    Backend, Filer, Server, ServerConfig, Sink, Size, TestDatabase, clocks, count, delivery, outbox, same_mail_twice,
    secs,
};

#[tokio::test]
async fn two_replicas_fire_each_clock_once_and_send_each_mail_once() {
    experiment(Size::Quick, [56005, 56006], 56065).await;
}

#[tokio::test]
#[ignore = "long: run with --ignored (see README, Reliability)"]
async fn two_replicas_under_a_longer_load_fire_each_clock_once_and_send_each_mail_once() {
    experiment(Size::Long, [56025, 56026], 56075).await;
}

/// Clocks of seconds, calendar time, for every priority; a sweep each second.
const SHORT_CLOCKS: &[(&str, &str)] = &[
    ("GRIDWHISTLE_SLA__SWEEP_INTERVAL", "1s"),
    ("GRIDWHISTLE_SLA__NORMAL__ACKNOWLEDGE", "2s"),
    ("GRIDWHISTLE_SLA__NORMAL__FIRST_CONTACT", "3s"),
    ("GRIDWHISTLE_SLA__NORMAL__RESOLVE", "4s"),
    ("GRIDWHISTLE_SLA__NORMAL__RECTIFY", "5s"),
    ("GRIDWHISTLE_SLA__URGENT__ACKNOWLEDGE", "2s"),
    ("GRIDWHISTLE_SLA__URGENT__FIRST_CONTACT", "3s"),
    ("GRIDWHISTLE_SLA__URGENT__RESOLVE", "4s"),
    ("GRIDWHISTLE_SLA__URGENT__RECTIFY", "5s"),
];

async fn experiment(size: Size, ports: [u16; 2], smtp_port: u16) {
    let label = "replicas";
    if std::env::var("TEST_DATABASE_URL").is_err() {
        println!("[{label}] skipped: TEST_DATABASE_URL is not set (replicas share a PostgreSQL database)");
        return;
    }
    let filings = match size {
        Size::Quick => 12,
        Size::Long => 150,
    };
    let database = TestDatabase::create(Backend::Postgres).await;
    let logs = tempfile::tempdir().expect("log dir");
    let sink = Sink::start(smtp_port);
    let config = |port, demo| ServerConfig {
        database_url: database.url(),
        port,
        demo,
        smtp_port,
        log_dir: logs.path(),
        extra: SHORT_CLOCKS,
    };
    // The first loads the demo data into the empty database, then the second joins.
    let mut first = Server::start(&config(ports[0], true));
    first.ready(Duration::from_secs(120)).await;
    let mut second = Server::start(&config(ports[1], false));
    second.ready(Duration::from_secs(120)).await;
    let started = Instant::now();

    // Filings go to both, alternately, as behind a load balancer.
    let filer = Filer::new(&first.base()).await;
    for n in 0..filings {
        let base = if n % 2 == 0 { first.base() } else { second.base() };
        filer.file_acknowledged(&base, n).await;
    }

    // Until every running clock has breached and the outbox is empty, then two sweeps more.
    let db = database.connect().await;
    let quiet = loop {
        let open = entities::sla_clock::Entity::find()
            .filter(entities::sla_clock::Column::StoppedAt.is_null())
            .filter(entities::sla_clock::Column::BreachedAt.is_null())
            .all(&db)
            .await
            .expect("clocks");
        let rows = outbox(&db).await;
        if open.is_empty() && count(&rows, "pending") == 0 {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "[{label}] not quiet after 180 s: {} clocks open, {} mails pending; logs: {}\n{}",
            open.len(),
            count(&rows, "pending"),
            first.tail(),
            second.tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let fired = clocks(&db).await;
    let rows = outbox(&db).await;
    let tickets: HashSet<uuid::Uuid> = entities::ticket::Entity::find()
        .filter(entities::ticket::Column::Description.contains(format!("[{}#", filer.run)))
        .all(&db)
        .await
        .expect("tickets")
        .into_iter()
        .map(|t| t.id)
        .collect();
    db.close().await.ok();
    let ours: BTreeMap<String, Vec<notification::Model>> = rows
        .iter()
        .map(|(status, list)| {
            (
                status.clone(),
                list.iter().filter(|r| r.ticket_id.is_some_and(|t| tickets.contains(&t))).cloned().collect(),
            )
        })
        .collect();
    let all: Vec<&notification::Model> = rows.values().flatten().filter(|r| r.status != MailStatus::Dead).collect();
    let dead = count(&rows, "dead");
    let mail = delivery(&rows, &all, &sink);
    println!(
        "[{label}] 2 replicas, {filings} filings: clocks {}, warnings {}, breaches {}, fired twice {}, marked without \
         its event {}; mails {} (of these filings {}; dead demo history {dead}), received {}, lost {}, duplicated {}, identical twice {}; quiet \
         after {}",
        fired.clocks,
        fired.warnings,
        fired.breaches,
        fired.fired_twice,
        fired.mismatched,
        mail.rows,
        ours.values().map(Vec::len).sum::<usize>(),
        mail.received,
        mail.lost,
        mail.duplicated,
        same_mail_twice(&ours),
        secs(quiet),
    );
    assert!(fired.breaches >= filings, "[{label}] every filing's clocks breached: {fired:?}");
    assert_eq!(fired.fired_twice, 0, "[{label}] a clock's milestone fired twice");
    assert_eq!(fired.mismatched, 0, "[{label}] a clock marked fired without its event, or the reverse");
    assert_eq!(count(&rows, "sent"), mail.rows, "[{label}] every mail is sent (but the demo history's)");
    let dead_of_ours = ours.get("dead").map_or(0, Vec::len);
    assert_eq!(dead_of_ours, 0, "[{label}] mails of these filings given up on");
    assert_eq!(mail.lost, 0, "[{label}] mails marked sent but never received");
    assert_eq!(mail.duplicated, 0, "[{label}] a mail received twice");
    assert_eq!(same_mail_twice(&ours), 0, "[{label}] the same mail queued twice for one ticket");
    for server in [&first, &second] {
        let deadlocks: Vec<String> = server.errors().into_iter().filter(|l| l.contains("deadlock")).collect();
        assert!(deadlocks.is_empty(), "[{label}] deadlocks: {deadlocks:?}");
    }
    first.sigterm();
    second.sigterm();
    for server in [&mut first, &mut second] {
        assert!(server.exited(Duration::from_secs(20)).await.is_some_and(|s| s.success()), "[{label}] clean exit");
    }
}
