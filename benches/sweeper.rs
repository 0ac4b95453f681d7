//! What one sweeper tick costs with 1,000 and with 100,000 open tickets, each with a running
//! clock, when the same 100 clocks are due. The due work comes from an index, so the two
//! should cost about the same.
//!
//!     cargo bench --bench sweeper                                   # SQLite
//!     BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench sweeper
//!
//! Not a test: timings on a shared machine are noisy, so it reports a ratio measured in one run.

use std::{collections::HashMap, time::Instant};

use chrono::Duration;
use entities::{Priority, sla_clock, ticket};
use gridwhistle::{
    clock::ManualClock,
    config::{Settings, SettingsSources},
    context::AppContext,
    db, service, startup,
    workers::sweeper,
};
use sea_orm::{ConnectionTrait, Database, EntityTrait, Set};
use uuid::Uuid;

const DUE_PER_TICK: usize = 100;
const TICKS: usize = 7;

#[tokio::main]
async fn main() {
    let mut results = Vec::new();
    for open in [1_000usize, 100_000] {
        let (ctx, cleanup) = fresh_context(open).await;
        let tickets = load_open_tickets(&ctx, open).await;
        let mut samples = Vec::new();
        let mut empty = Vec::new();
        for tick in 0..TICKS {
            make_due(&ctx, &tickets, tick).await;
            let started = Instant::now();
            let report = sweeper::run_once(&ctx).await.expect("sweep");
            samples.push(started.elapsed());
            assert_eq!(report.breaches, DUE_PER_TICK, "each due clock breaches once");
            let started = Instant::now();
            sweeper::run_once(&ctx).await.expect("sweep");
            empty.push(started.elapsed());
        }
        samples.sort();
        empty.sort();
        let (busy, idle) = (samples[TICKS / 2], empty[TICKS / 2]);
        println!(
            "{open:>7} open tickets: tick with {DUE_PER_TICK} due clocks {busy:>10.2?}, tick with none {idle:>10.2?} (median of {TICKS})"
        );
        results.push((busy, idle));
        cleanup.await;
    }
    let ratio = |a: std::time::Duration, b: std::time::Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "ratio 100k / 1k: busy tick {:.2}, idle tick {:.2}",
        ratio(results[1].0, results[0].0),
        ratio(results[1].1, results[0].1)
    );
}

async fn fresh_context(open: usize) -> (AppContext, impl std::future::Future<Output = ()>) {
    let admin_url = std::env::var("BENCH_DATABASE_URL").ok();
    let dir = tempfile::tempdir().expect("temp dir");
    let (url, database) = match &admin_url {
        Some(admin) => {
            let name = format!("gw_bench_{open}_{}", Uuid::now_v7().simple());
            let conn = Database::connect(admin).await.expect("connect");
            conn.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create");
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b).to_owned();
            (format!("{base}/{name}"), Some(name))
        }
        None => (format!("sqlite://{}/bench.db?mode=rwc", dir.path().display()), None),
    };
    let env = HashMap::from([
        ("GRIDWHISTLE_DATABASE_URL".to_owned(), url),
        ("GRIDWHISTLE_SLA__SWEEP_BATCH".to_owned(), "200".to_owned()),
    ]);
    let settings = Settings::load(SettingsSources { local_file: None, env }).expect("settings");
    let conn = db::connect(&settings).await.expect("connect");
    db::migrate(&conn).await.expect("migrate");
    let clock = ManualClock::new();
    let ctx = AppContext::new(conn, clock, settings).expect("context");
    startup::prepare(&ctx).await.expect("prepare");
    service::demo::seed_reference(&ctx).await.expect("reference data");
    let cleanup = async move {
        drop(dir);
        if let (Some(admin), Some(name)) = (admin_url, database) {
            let conn = Database::connect(&admin).await.expect("connect");
            let _ = conn.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
        }
    };
    (ctx, cleanup)
}

/// `open` in-progress tickets, each with a resolve clock due in a month.
async fn load_open_tickets(ctx: &AppContext, open: usize) -> Vec<Uuid> {
    use sea_orm::{ColumnTrait, QueryFilter};
    let category = entities::category::Entity::find()
        .filter(entities::category::Column::Code.eq("other"))
        .one(&ctx.db)
        .await
        .expect("q")
        .expect("category");
    let unit = entities::grid_unit::Entity::find()
        .filter(entities::grid_unit::Column::Code.eq("140902001001-G01"))
        .one(&ctx.db)
        .await
        .expect("q")
        .expect("unit");
    let filer = entities::user::Entity::find()
        .filter(entities::user::Column::Username.eq("demo-grid"))
        .one(&ctx.db)
        .await
        .expect("q")
        .expect("user");
    let now = ctx.clock.now();
    let ids: Vec<Uuid> = (0..open).map(|_| Uuid::now_v7()).collect();
    for (chunk_no, chunk) in ids.chunks(1000).enumerate() {
        let tickets = chunk.iter().enumerate().map(|(i, id)| ticket::ActiveModel {
            id: Set(*id),
            number: Set(format!("BENCH-{:07}", chunk_no * 1000 + i)),
            category_id: Set(category.id),
            priority: Set(Priority::Normal),
            title: Set("bench".into()),
            description: Set("bench".into()),
            unit_id: Set(unit.id),
            lat: Set(None),
            lon: Set(None),
            address: Set(None),
            resident_name: Set(None),
            resident_phone: Set(None),
            channel: Set("web".into()),
            attachments: Set(serde_json::json!([])),
            filed_by: Set(filer.id),
            status: Set("in_progress".into()),
            version: Set(1),
            return_count: Set(0),
            needs_arbitration: Set(false),
            created_at: Set(now),
            updated_at: Set(now),
            first_dispatched_at: Set(Some(now)),
            first_contact_at: Set(None),
            resolved_at: Set(None),
            rating_due_at: Set(None),
            closed_at: Set(None),
            township_id: Set(None),
            county_id: Set(None),
            resolve_due_at: Set(None),
            resolve_working_seconds: Set(None),
        });
        ticket::Entity::insert_many(tickets).exec(&ctx.db).await.expect("tickets");
        let clocks = chunk.iter().map(|id| clock(*id, "resolve", now + Duration::days(30), now));
        sla_clock::Entity::insert_many(clocks).exec(&ctx.db).await.expect("clocks");
    }
    ids
}

fn clock(
    ticket_id: Uuid,
    kind: &str,
    due: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
) -> sla_clock::ActiveModel {
    sla_clock::ActiveModel {
        id: Set(Uuid::now_v7()),
        ticket_id: Set(ticket_id),
        dispatch_id: Set(None),
        clock: Set(kind.into()),
        duration: Set("24h".into()),
        started_at: Set(now - Duration::days(1)),
        warn_at: Set(due),
        due_at: Set(due),
        followup_at: Set(None),
        next_check_at: Set(Some(due)),
        warned_at: Set(Some(now)),
        breached_at: Set(None),
        followed_up_at: Set(None),
        stopped_at: Set(None),
        stop_reason: Set(None),
        estimated: Set(false),
        last_error: Set(None),
        failures: Set(0),
    }
}

/// 100 first-contact clocks that fell due a minute ago, on tickets spread over the table.
async fn make_due(ctx: &AppContext, tickets: &[Uuid], tick: usize) {
    let now = ctx.clock.now();
    let step = tickets.len() / DUE_PER_TICK;
    let due = (0..DUE_PER_TICK)
        .map(|i| clock(tickets[(i * step + tick) % tickets.len()], "first_contact", now - Duration::minutes(1), now));
    sla_clock::Entity::insert_many(due).exec(&ctx.db).await.expect("due clocks");
}
