//! Mail that is never dropped and can be read: retention then `dead` with admin re-queue,
//! a circuit breaker that sends everything waiting once the server answers again, readable
//! 8bit bodies with a link that answers, stable Message-IDs, and mails that name the
//! department and the clock they are about.

use chrono::Duration;
use gridwhistle::workers::{
    mailer::{self, MailReport},
    sweeper,
};
use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, each_backend},
    mail::{Mailbox, decoded, free_port, smtp},
};

async fn outbox(app: &TestApp, status: &str, admin: &str) -> Vec<Value> {
    let list = app.get(&format!("/api/v1/notifications?status={status}&limit=200"), admin).await.expect(200);
    list["items"].as_array().expect("items").clone()
}

fn header<'a>(data: &'a str, name: &str) -> Option<&'a str> {
    let (headers, _) = data.split_once("\r\n\r\n").unwrap_or((data, ""));
    headers.split("\r\n").find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

#[tokio::test]
async fn a_mail_is_plain_utf8_with_a_message_id_of_its_row_and_a_link_that_answers() {
    each_backend(|app| async move {
        let port = free_port();
        let mailbox = Mailbox::start(port);
        let transport = smtp(&app.ctx.settings.smtp, port);
        let demo = app.demo().await;
        let ticket = app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;
        let row = outbox(&app, "pending", &demo.admin).await[0]["id"].as_str().expect("id").to_owned();

        assert_eq!(mailer::run_once(&app.ctx, &transport).await.expect("runs").sent, 1);
        let received = mailbox.received();
        let data = &received[0].data;
        // Readable as it is in any SMTP sink: no base64, no quoted-printable.
        assert_eq!(header(data, "Content-Transfer-Encoding"), Some("8bit"), "{data}");
        assert!(data.contains("工单编号："), "{data}");
        assert!(data.contains("诉求类别：市容环境"), "{data}");
        assert_eq!(header(data, "Message-ID"), Some(format!("<{row}@127.0.0.1>").as_str()), "{data}");

        // The link lands on the ticket in the API (public_url + /api/v1/tickets/{id}).
        let text = decoded(data);
        let link = text.lines().find_map(|l| l.strip_prefix("查看工单：")).expect("a link").trim().to_owned();
        let id = ticket["id"].as_str().expect("id");
        assert_eq!(link, format!("http://127.0.0.1:8080/api/v1/tickets/{id}"));
        let path = link.trim_start_matches("http://127.0.0.1:8080");
        assert_eq!(app.get(path, &demo.dispatcher).await.expect(200)["id"], id);
    })
    .await;
}

/// At least once: a server that keeps a mail but fails to confirm it gets it again, with the
/// same Message-ID, so the receiver can drop the copy.
#[tokio::test]
async fn a_resent_mail_has_the_same_message_id() {
    each_backend(|app| async move {
        let port = free_port();
        let mailbox = Mailbox::start_unconfirmed(port, 1);
        let transport = smtp(&app.ctx.settings.smtp, port);
        let demo = app.demo().await;
        app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;

        assert_eq!(
            mailer::run_once(&app.ctx, &transport).await.expect("runs"),
            MailReport { retried: 1, ..Default::default() }
        );
        app.clock.advance(Duration::seconds(31));
        assert_eq!(
            mailer::run_once(&app.ctx, &transport).await.expect("runs"),
            MailReport { sent: 1, ..Default::default() }
        );
        let received = mailbox.received();
        assert_eq!(received.len(), 2, "delivered twice");
        let ids: Vec<_> =
            received.iter().map(|m| header(&m.data, "Message-ID").expect("Message-ID").to_owned()).collect();
        assert_eq!(ids[0], ids[1]);
    })
    .await;
}

/// With the old defaults a mail was dropped after ten attempts (about three hours). Now it
/// waits out `smtp.retention` (7 days), then is dead: listed, reported by /readyz without
/// failing it, counted — and an admin can put it back.
#[tokio::test]
async fn mail_waits_out_the_retention_then_is_dead_until_an_admin_requeues_it() {
    each_backend(|app| async move {
        let port = free_port(); // nothing listens here
        let transport = smtp(&app.ctx.settings.smtp, port);
        let demo = app.demo().await;
        app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;
        app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;

        // Two days of outage, a tick every half hour (the breaker probes one mail per tick).
        for _ in 0..100 {
            let report = mailer::run_once(&app.ctx, &transport).await.expect("runs");
            assert_eq!(report.dead, 0);
            app.clock.advance(Duration::minutes(30));
        }
        let admin = app.demo_token("demo-admin").await;
        let pending = outbox(&app, "pending", &admin).await;
        assert_eq!(pending.len(), 2, "still waiting after two days");
        assert!(pending.iter().all(|m| m["attempts"].as_i64() > Some(10)), "{pending:?}");
        assert!(outbox(&app, "dead", &admin).await.is_empty());

        app.clock.advance(Duration::days(6));
        let report = mailer::run_once(&app.ctx, &transport).await.expect("runs");
        let demo = app.demo().await; // a week later: new sessions
        assert_eq!(report.dead, 2, "{report:?}");
        let dead = outbox(&app, "dead", &demo.admin).await;
        assert_eq!(dead.len(), 2);
        assert!(dead[0]["last_error"].as_str().is_some_and(|e| e.contains("onnection")), "{dead:?}");
        assert_eq!(
            mailer::run_once(&app.ctx, &transport).await.expect("runs"),
            MailReport::default(),
            "dead is not tried"
        );

        // Reported, not a reason to refuse traffic.
        let ready = app.request(Method::GET, "/readyz", None, None).await.expect(200);
        assert_eq!(ready["mail"]["dead"], 2, "{ready}");
        assert_eq!(ready["mail"]["pending"], 0, "{ready}");
        let metrics = app.client.get(app.url("/metrics")).send().await.expect("sent").text().await.expect("text");
        assert!(metrics.contains("gridwhistle_outbox_mails{status=\"dead\"}"), "{metrics}");

        // Only admins re-queue.
        let id = dead[0]["id"].as_str().expect("id").to_owned();
        app.post(&format!("/api/v1/notifications/{id}/retry"), &demo.dispatcher, json!({})).await.problem(403);
        app.post("/api/v1/notifications/retry-dead", &demo.supervisor, json!({})).await.problem(403);

        let one = app.post(&format!("/api/v1/notifications/{id}/retry"), &demo.admin, json!({})).await.expect(200);
        assert_eq!(one["status"], "pending");
        assert_eq!(one["attempts"], 0);
        let all = app.post("/api/v1/notifications/retry-dead", &demo.admin, json!({})).await.expect(200);
        assert_eq!(all["requeued"], 1);

        let mailbox = Mailbox::start(port);
        let mut sent = 0;
        for _ in 0..2 {
            sent += mailer::run_once(&app.ctx, &transport).await.expect("runs").sent;
        }
        assert_eq!(sent, 2);
        assert_eq!(mailbox.received().len(), 2);
        // A sent mail is not sent again.
        app.post(&format!("/api/v1/notifications/{id}/retry"), &demo.admin, json!({})).await.problem(409);
        let unknown = "00000000-0000-7000-8000-000000000000";
        app.post(&format!("/api/v1/notifications/{unknown}/retry"), &demo.admin, json!({})).await.problem(404);
    })
    .await;
}

/// Rows backed off for an hour go out as soon as the server answers again, and while it was
/// down each tick tried one mail, not every due one.
#[tokio::test]
async fn after_an_outage_everything_waiting_goes_out_at_once() {
    each_backend(|app| async move {
        let port = free_port();
        let transport = smtp(&app.ctx.settings.smtp, port);
        let demo = app.demo().await;
        let category = app.category("environment", &demo.admin).await;
        for _ in 0..5 {
            app.file(&demo.grid, &category).await;
        }

        let ticks = 60;
        for _ in 0..ticks {
            let report = mailer::run_once(&app.ctx, &transport).await.expect("runs");
            assert!(report.retried <= 1, "one probe per tick: {report:?}");
            app.clock.advance(Duration::seconds(5));
        }
        let waiting = outbox(&app, "pending", &demo.admin).await;
        let attempts: i64 = waiting.iter().filter_map(|m| m["attempts"].as_i64()).sum();
        assert_eq!(attempts, ticks, "one attempt per tick");
        let now = app.ctx.clock.now();
        let backed_off = waiting
            .iter()
            .filter(|m| {
                let at: chrono::DateTime<chrono::Utc> =
                    m["next_attempt_at"].as_str().expect("time").parse().expect("rfc 3339");
                at - now > Duration::minutes(30)
            })
            .count();
        assert_eq!(backed_off, 5, "every mail backed off for more than half an hour: {waiting:?}");

        let mailbox = Mailbox::start(port);
        let first = mailer::run_once(&app.ctx, &transport).await.expect("runs");
        let second = mailer::run_once(&app.ctx, &transport).await.expect("runs");
        assert_eq!(first.sent + second.sent, 5, "{first:?} {second:?}");
        assert_eq!(mailbox.received().len(), 5);
        assert!(outbox(&app, "pending", &demo.admin).await.is_empty());
    })
    .await;
}

/// More mail waiting than one batch: the tick that finds the server back sends all of it,
/// back to back, instead of one batch per poll interval (the fault suite measured 100 mails
/// taking six ticks to drain).
#[tokio::test]
async fn after_an_outage_a_backlog_larger_than_a_batch_goes_out_in_one_tick() {
    each_backend(|app| async move {
        let port = free_port();
        let transport = smtp(&app.ctx.settings.smtp, port);
        let demo = app.demo().await;
        let category = app.category("environment", &demo.admin).await;
        let backlog = 45; // more than two batches of 20
        for _ in 0..backlog {
            app.file(&demo.grid, &category).await;
        }
        for _ in 0..3 {
            mailer::run_once(&app.ctx, &transport).await.expect("runs");
            app.clock.advance(Duration::seconds(5));
        }
        assert_eq!(outbox(&app, "pending", &demo.admin).await.len(), backlog);

        let mailbox = Mailbox::start(port);
        let report = mailer::run_once(&app.ctx, &transport).await.expect("runs");
        assert_eq!(report.sent, backlog, "{report:?}");
        assert_eq!(mailbox.received().len(), backlog);
        assert!(outbox(&app, "pending", &demo.admin).await.is_empty());
    })
    .await;
}

/// A lead and a co-handler both late to acknowledge: the dispatcher gets two mails that say
/// which department and which clock each is about.
#[tokio::test]
async fn two_late_acknowledgements_make_two_mails_that_name_department_and_clock() {
    each_backend(|app| async move {
        let port = free_port();
        let mailbox = Mailbox::start(port);
        let transport = smtp(&app.ctx.settings.smtp, port);
        let demo = app.demo().await;
        // 供水供电供气供热: urgent, routed to 城管局 with 住建局 as co-handler; 30 minutes to acknowledge.
        let ticket = app.file(&demo.grid, &app.category("utilities", &demo.admin).await).await;
        assert_eq!(ticket["dispatches"].as_array().map(Vec::len), Some(2), "{ticket}");
        app.clock.advance(Duration::minutes(31));
        sweeper::run_once(&app.ctx).await.expect("sweeps");
        while mailer::run_once(&app.ctx, &transport).await.expect("runs").sent > 0 {}

        let to_dispatcher: Vec<String> = mailbox
            .received()
            .into_iter()
            .filter(|m| m.to == ["demo-dispatcher@gridwhistle.example"])
            .map(|m| decoded(&m.data))
            .collect();
        assert_eq!(to_dispatcher.len(), 2, "{to_dispatcher:?}");
        assert_ne!(to_dispatcher[0], to_dispatcher[1]);
        let body_of = |department: &str| {
            to_dispatcher.iter().find(|t| t.contains(&format!("责任部门：{department}"))).cloned().unwrap_or_default()
        };
        for (department, role) in [("忻府区城市管理局", "主办"), ("忻府区住房和城乡建设局", "协办")]
        {
            let body = body_of(&format!("{department}（{role}）"));
            assert!(body.contains("计时：签收报到"), "{department}: {to_dispatcher:?}");
        }

        let subjects: Vec<String> = outbox(&app, "sent", &demo.admin)
            .await
            .into_iter()
            .filter(|m| m["recipient"] == "demo-dispatcher@gridwhistle.example")
            .map(|m| m["subject"].as_str().expect("subject").to_owned())
            .collect();
        assert_eq!(subjects.len(), 2);
        assert!(subjects.iter().all(|s| s.contains("签收报到超时")), "{subjects:?}");
        assert!(subjects.iter().any(|s| s.contains("忻府区城市管理局（主办）")), "{subjects:?}");
        assert!(subjects.iter().any(|s| s.contains("忻府区住房和城乡建设局（协办）")), "{subjects:?}");
    })
    .await;
}

/// Mail the old scheme gave up on (`failed` after `smtp.max_attempts`) is pending again after
/// the upgrade, and goes out.
#[tokio::test]
async fn mail_failed_under_the_old_scheme_is_retried_after_the_upgrade() {
    use migration::{Migrator, MigratorTrait};
    use sea_orm::{ConnectionTrait, Database};

    for backend in crate::helpers::backends() {
        let (url, _guard) = crate::helpers::fresh_database(backend).await;
        let db = Database::connect(&url).await.expect("connect");
        loop {
            let pending = Migrator::get_pending_migrations(&db).await.expect("pending migrations");
            let next = pending.first().expect("the retention migration is pending").name().to_owned();
            if next == "m20261129_000011_notification_retention" {
                break;
            }
            Migrator::up(&db, Some(1)).await.expect("migrates");
        }
        let id = uuid::Uuid::now_v7();
        db.execute_unprepared(&format!(
            "INSERT INTO notifications (id, ticket_id, kind, recipient, subject, body, status, attempts, \
             next_attempt_at, lease_until, lease_token, last_error, created_at, sent_at) VALUES \
             ('{id}', NULL, 'dispatched', 'cgj.xinfu@gridwhistle.example', 's', 'b', 'failed', 10, \
             '2026-11-01T03:00:00+00:00', NULL, NULL, 'Connection error: Connection refused', \
             '2026-11-01T00:00:00+00:00', NULL)"
        ))
        .await
        .expect("an old failed row");
        Migrator::up(&db, None).await.expect("upgrade");
        // Read back as plain SQL: the test wrote the row as plain SQL too.
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT status, attempts FROM notifications",
            ))
            .await
            .expect("reads")
            .expect("the row");
        assert_eq!(row.try_get::<String>("", "status").expect("status"), "pending", "{backend:?}");
        assert_eq!(row.try_get::<i32>("", "attempts").expect("attempts"), 0, "{backend:?}");
        db.close().await.ok();
    }
}
