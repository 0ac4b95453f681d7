//! The outbox mailer: claims due rows with a lease (no transaction is held while talking to
//! the SMTP server), sends them with lettre, and marks each sent — or schedules a retry with
//! backoff, so mail queued while the server is down goes out when it is back. With several
//! replicas, the lease covers the slowest whole batch and every outcome is recorded only
//! under the claim's token, so a sender whose lease ran out neither sends nor overwrites.
//!
//! Mail is never dropped. A mail the server cannot take is retried until `smtp.retention`
//! has passed since it was queued, then marked `dead` (logged, counted, listed for admins,
//! who may re-queue it); only a permanent refusal (5xx, a malformed address) makes it dead
//! at once. A circuit breaker over the SMTP server keeps an outage cheap and the recovery
//! quick: while the server is unreachable one mail per tick probes it, and the first mail
//! that goes through makes every waiting mail due at once.
//!
//! Delivery is at least once (a crash between the server's answer and the record sends the
//! mail again): every mail carries the `Message-ID` `<{outbox row id}@{host of public_url}>`
//! so receiving systems can drop the copy.

use entities::enums::MailStatus;
use std::{sync::Mutex, time::Duration};

use chrono::{DateTime, Utc};
use entities::notification;
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Body, Mailbox, header::ContentTransferEncoding, header::ContentType},
    transport::smtp::authentication::Credentials,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DbBackend, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect, Set,
    sea_query::{Expr, Func, LockBehavior, LockType},
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    config::{SmtpSettings, SmtpTls},
    context::AppContext,
    db::begin_write,
    error::{AppError, AppResult},
    metrics,
    service::notifications,
};

/// Mails claimed at a time.
const BATCH: u64 = 20;
/// Batches one tick may send while each comes back full.
const MAX_BATCHES_PER_TICK: usize = 10;
/// The SMTP client's timeout for each step of the conversation.
const SMTP_TIMEOUT: Duration = Duration::from_secs(15);
/// The most one mail may take, the whole conversation included; a slower one counts as a
/// failed attempt and is retried.
const SEND_BUDGET: Duration = Duration::from_secs(30);

/// How long a claim holds its mails: the whole batch at the slowest, plus a margin. A sender
/// never starts a mail its lease may not cover, and a crashed sender's mails come back after it.
fn lease() -> chrono::Duration {
    let batch = SEND_BUDGET.saturating_mul(BATCH as u32);
    chrono::Duration::from_std(batch).unwrap_or(chrono::Duration::MAX) + chrono::Duration::minutes(1)
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MailReport {
    pub sent: usize,
    /// Failed this time, to be tried again.
    pub retried: usize,
    /// Given up on: refused for good, or undelivered for longer than `smtp.retention`.
    pub dead: usize,
}

impl MailReport {
    fn add(&mut self, other: MailReport) {
        self.sent += other.sent;
        self.retried += other.retried;
        self.dead += other.dead;
    }
}

/// The SMTP client, the circuit breaker over its server, and the domain of Message-IDs.
pub struct Transport {
    smtp: AsyncSmtpTransport<Tokio1Executor>,
    breaker: Mutex<Breaker>,
    message_id_host: String,
}

pub fn transport(settings: &SmtpSettings) -> AppResult<Transport> {
    type Smtp = AsyncSmtpTransport<Tokio1Executor>;
    let smtp_error = |e: lettre::transport::smtp::Error| AppError::internal_from("smtp configuration", e);
    let builder = match settings.tls {
        SmtpTls::None => Smtp::builder_dangerous(&settings.host),
        SmtpTls::Starttls => Smtp::starttls_relay(&settings.host).map_err(smtp_error)?,
        SmtpTls::Tls => Smtp::relay(&settings.host).map_err(smtp_error)?,
    };
    let mut builder = builder.port(settings.port).timeout(Some(SMTP_TIMEOUT));
    if !settings.username.is_empty() {
        builder = builder.credentials(Credentials::new(settings.username.clone(), settings.password.clone()));
    }
    Ok(Transport {
        smtp: builder.build(),
        breaker: Mutex::new(Breaker::default()),
        message_id_host: message_id_host(&settings.public_url, &settings.from),
    })
}

impl Transport {
    fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        // The breaker is a few plain fields: a panic elsewhere cannot leave it half-written.
        self.breaker.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The host of `public_url` (`https://gw.example.org:8443/x` → `gw.example.org`), else the
/// domain of the sender address, else a reserved name.
fn message_id_host(public_url: &str, from: &str) -> String {
    let after_scheme = public_url.split_once("://").map_or(public_url, |(_, rest)| rest);
    let authority = after_scheme.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let host = if host_port.starts_with('[') {
        host_port.split_inclusive(']').next().unwrap_or_default()
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    let valid = |h: &str| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || "-.[]:".contains(c));
    if valid(host) {
        return host.to_ascii_lowercase();
    }
    let domain = from.trim().trim_end_matches('>').rsplit_once('@').map(|(_, d)| d.trim()).unwrap_or_default();
    if valid(domain) { domain.to_ascii_lowercase() } else { "gridwhistle.invalid".into() }
}

/// The Message-ID of the mail in outbox row `id`: the same for every attempt.
pub fn message_id(transport: &Transport, id: Uuid) -> String {
    format!("<{id}@{}>", transport.message_id_host)
}

/// What the mailer knows about the SMTP server. Starts `Unknown` (after a start, mails may
/// be backed off from before it), which probes like `Open` until a mail goes through.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub enum Breaker {
    #[default]
    Unknown,
    Closed,
    Open {
        since: DateTime<Utc>,
        failures: u64,
    },
}

/// A change of the breaker worth acting on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The server stopped answering: log the cause once.
    Opened,
    /// Still down: nothing to log.
    StillOpen,
    /// A mail went through after an outage (or the first after a start): every waiting mail
    /// is due now.
    Recovered {
        down_since: Option<DateTime<Utc>>,
        failures: u64,
    },
    Unchanged,
}

impl Breaker {
    /// Probing: one mail a tick, whatever its own backoff says.
    pub fn probing(&self) -> bool {
        !matches!(self, Self::Closed)
    }

    pub fn unreachable(&mut self, now: DateTime<Utc>) -> Change {
        match self {
            Self::Open { failures, .. } => {
                *failures += 1;
                Change::StillOpen
            }
            Self::Closed | Self::Unknown => {
                *self = Self::Open { since: now, failures: 1 };
                Change::Opened
            }
        }
    }

    pub fn delivered(&mut self) -> Change {
        let change = match self {
            Self::Closed => Change::Unchanged,
            Self::Unknown => Change::Recovered { down_since: None, failures: 0 },
            Self::Open { since, failures } => Change::Recovered { down_since: Some(*since), failures: *failures },
        };
        *self = Self::Closed;
        change
    }
}

pub async fn run(ctx: AppContext, token: CancellationToken) {
    let transport = match transport(&ctx.settings.smtp) {
        Ok(transport) => transport,
        Err(err) => {
            tracing::error!(error = %err.chain(), "mailer not started");
            return;
        }
    };
    loop {
        match run_once(&ctx, &transport).await {
            Ok(report) if report.sent > 0 || report.dead > 0 => {
                tracing::info!(sent = report.sent, retried = report.retried, dead = report.dead, "mail")
            }
            Ok(report) if report.retried > 0 => tracing::debug!(retried = report.retried, "mail waiting"),
            Ok(_) => {}
            Err(err) => tracing::error!(error = %err.chain(), "mail delivery failed; retrying next tick"),
        }
        if !super::pause(&token, ctx.settings.smtp.poll_interval).await {
            break;
        }
    }
}

/// One tick: gives up on mail past its retention, then claims due mail and delivers it —
/// a single probe while the server is (or may be) unreachable, and right after a probe that
/// went through, batch after batch while they come back full (up to
/// [`MAX_BATCHES_PER_TICK`]).
pub async fn run_once(ctx: &AppContext, transport: &Transport) -> AppResult<MailReport> {
    let mut report = MailReport { dead: expire(ctx).await?, ..Default::default() };
    if transport.breaker().probing() {
        let probe = claim_rows(ctx, 1, true).await?;
        report.add(deliver(ctx, transport, probe).await?);
    }
    // A backlog (everything that waited out an outage) goes out back to back, not a batch
    // per poll interval; bounded, so a tick still ends and a drain can stop the mailer.
    for _ in 0..MAX_BATCHES_PER_TICK {
        if transport.breaker().probing() {
            break;
        }
        let claimed = claim(ctx).await?;
        let full = claimed.mails.len() as u64 >= BATCH;
        report.add(deliver(ctx, transport, claimed).await?);
        if !full {
            break;
        }
    }
    update_gauges(ctx, transport).await;
    Ok(report)
}

async fn update_gauges(ctx: &AppContext, transport: &Transport) {
    let reachable = match &*transport.breaker() {
        Breaker::Open { .. } => 0,
        Breaker::Closed | Breaker::Unknown => 1,
    };
    metrics::smtp_reachable().set(reachable);
    match notifications::outbox_health(&ctx.db).await {
        Ok(health) => {
            metrics::outbox().with_label_values(&["pending"]).set(health.pending as i64);
            metrics::outbox().with_label_values(&["dead"]).set(health.dead as i64);
            ctx.health.record_outbox(health);
        }
        Err(err) => tracing::debug!(error = %err.chain(), "outbox gauges not updated"),
    }
}

/// Marks dead the mails that failed and have waited longer than `smtp.retention` (a mail
/// never tried is tried once before it can die). One WARN line for all of them.
async fn expire(ctx: &AppContext) -> AppResult<usize> {
    let now = ctx.clock.now();
    let cutoff = now - retention(ctx);
    use sea_orm::sea_query::ExprTrait as _;
    let window_start =
        Func::coalesce([Expr::col(notification::Column::QueuedAt), Expr::col(notification::Column::CreatedAt)]);
    let expired = notification::Entity::update_many()
        .col_expr(notification::Column::Status, Expr::value(MailStatus::Dead))
        .filter(notification::Column::Status.eq(MailStatus::Pending))
        .filter(notification::Column::Attempts.gt(0))
        .filter(Expr::expr(window_start).lte(cutoff))
        .filter(
            Condition::any()
                .add(notification::Column::LeaseUntil.is_null())
                .add(notification::Column::LeaseUntil.lte(now)),
        )
        .exec(&ctx.db)
        .await?
        .rows_affected as usize;
    if expired > 0 {
        metrics::mails().with_label_values(&["dead"]).inc_by(expired as u64);
        tracing::warn!(
            mails = expired,
            retention = ?ctx.settings.smtp.retention,
            "mail undelivered for longer than smtp.retention is marked dead; \
             list it with GET /api/v1/notifications?status=dead, re-queue with POST /api/v1/notifications/retry-dead"
        );
    }
    Ok(expired)
}

fn retention(ctx: &AppContext) -> chrono::Duration {
    chrono::Duration::from_std(ctx.settings.smtp.retention).unwrap_or(chrono::Duration::MAX)
}

/// The mails one claim took, to be delivered by the claimer alone. The token fences every
/// update: once the lease has run out and another sender claimed a mail, this claim's
/// updates of it change nothing.
#[derive(Debug)]
pub struct Claim {
    pub token: Uuid,
    pub lease_until: DateTime<Utc>,
    pub mails: Vec<notification::Model>,
}

/// Why a send did not go through.
enum Failure {
    /// Refused for good (5xx, malformed address): retrying cannot help.
    Refused(String),
    /// The server answered "not now" (4xx) for this mail: retry it with backoff.
    Deferred(String),
    /// No conversation with the server (refused connection, timeout, TLS): the breaker opens.
    Unreachable(String),
}

/// Sends the mails of `claim` and records each outcome, as long as the claim holds them.
pub async fn deliver(ctx: &AppContext, transport: &Transport, claim: Claim) -> AppResult<MailReport> {
    let mut report = MailReport::default();
    let budget = chrono::Duration::from_std(SEND_BUDGET).unwrap_or(chrono::Duration::MAX);
    for (index, mail) in claim.mails.iter().enumerate() {
        if ctx.clock.now() + budget > claim.lease_until {
            // Stalled past our lease: another sender may hold these mails by now.
            let left: Vec<Uuid> = claim.mails[index..].iter().map(|m| m.id).collect();
            tracing::warn!(unsent = left.len(), "mail lease ran out before the batch was done; releasing the rest");
            metrics::mail_leases().with_label_values(&["before_send"]).inc_by(left.len() as u64);
            release(ctx, claim.token, left).await?;
            break;
        }
        let outcome = match tokio::time::timeout(SEND_BUDGET, send(ctx, transport, mail)).await {
            Ok(outcome) => outcome,
            Err(_) => {
                Err(Failure::Unreachable(format!("no answer from the SMTP server within {} s", SEND_BUDGET.as_secs())))
            }
        };
        let now = ctx.clock.now();
        let attempts = mail.attempts + 1;
        let mut row = notification::ActiveModel {
            attempts: Set(attempts),
            lease_until: Set(None),
            lease_token: Set(None),
            ..Default::default()
        };
        let mut unreachable = None;
        let outcome_label = match outcome {
            Ok(()) => {
                row.status = Set(MailStatus::Sent);
                row.sent_at = Set(Some(now));
                row.last_error = Set(None);
                report.sent += 1;
                "sent"
            }
            Err(failure) => {
                let (refused, error) = match failure {
                    Failure::Refused(error) => (true, error),
                    Failure::Deferred(error) => (false, error),
                    Failure::Unreachable(error) => {
                        unreachable = Some(error.clone());
                        (false, error)
                    }
                };
                let window_start = mail.queued_at.unwrap_or(mail.created_at);
                let dead = refused || now - window_start >= retention(ctx);
                if dead {
                    tracing::warn!(
                        notification_id = %mail.id, kind = %mail.kind, attempts, error = %error,
                        "mail marked dead; re-queue it with POST /api/v1/notifications/{{id}}/retry"
                    );
                    row.status = Set(MailStatus::Dead);
                    report.dead += 1;
                } else {
                    row.next_attempt_at = Set(now + backoff(attempts));
                    report.retried += 1;
                }
                row.last_error = Set(Some(error));
                if dead { "dead" } else { "retry" }
            }
        };
        metrics::mails().with_label_values(&[outcome_label]).inc();
        let recorded = notification::Entity::update_many()
            .set(row)
            .filter(notification::Column::Id.eq(mail.id))
            .filter(notification::Column::LeaseToken.eq(claim.token))
            .exec(&ctx.db)
            .await?;
        if recorded.rows_affected == 0 {
            // Another sender holds the mail now; what it records stands.
            tracing::warn!(notification_id = %mail.id, outcome = outcome_label, "mail lease lost; outcome not recorded");
            metrics::mail_leases().with_label_values(&["after_send"]).inc();
        }
        if outcome_label == "sent" {
            let change = transport.breaker().delivered();
            if let Change::Recovered { down_since, failures } = change {
                let due = wake_waiting(ctx, now).await?;
                match down_since {
                    Some(since) => tracing::info!(
                        down_for_secs = (now - since).num_seconds(),
                        failed_attempts = failures,
                        waiting_mails = due,
                        "SMTP server reachable again; sending the waiting mail now"
                    ),
                    None if due > 0 => {
                        tracing::info!(waiting_mails = due, "SMTP server reachable; sending the waiting mail now")
                    }
                    None => {}
                }
            }
        }
        if let Some(cause) = unreachable {
            let change = transport.breaker().unreachable(now);
            if change == Change::Opened {
                tracing::warn!(
                    error = %cause,
                    host = %ctx.settings.smtp.host,
                    port = ctx.settings.smtp.port,
                    "SMTP server unreachable; mail waits in the outbox, one mail per tick probes the server"
                );
            }
            // Do not hammer a server that is down: the rest of the batch waits for the probe.
            let left: Vec<Uuid> = claim.mails[index + 1..].iter().map(|m| m.id).collect();
            if !left.is_empty() {
                release(ctx, claim.token, left).await?;
            }
            break;
        }
    }
    Ok(report)
}

/// Gives mails of a claim back at once, unless another sender has claimed them since.
async fn release(ctx: &AppContext, token: Uuid, ids: Vec<Uuid>) -> AppResult<()> {
    notification::Entity::update_many()
        .set(notification::ActiveModel { lease_until: Set(None), lease_token: Set(None), ..Default::default() })
        .filter(notification::Column::Id.is_in(ids))
        .filter(notification::Column::LeaseToken.eq(token))
        .exec(&ctx.db)
        .await?;
    Ok(())
}

/// After an outage: every pending mail is due now, whatever its own backoff — one UPDATE,
/// so every replica sees it.
async fn wake_waiting(ctx: &AppContext, now: DateTime<Utc>) -> AppResult<u64> {
    Ok(notification::Entity::update_many()
        .col_expr(notification::Column::NextAttemptAt, Expr::value(now))
        .filter(notification::Column::Status.eq(MailStatus::Pending))
        .filter(notification::Column::NextAttemptAt.gt(now))
        .exec(&ctx.db)
        .await?
        .rows_affected)
}

/// 30 s, 1 min, 2 min, … capped at an hour.
fn backoff(attempts: i32) -> chrono::Duration {
    let exponent = attempts.clamp(1, 8) as u32 - 1;
    chrono::Duration::seconds((30_i64 << exponent).min(3600))
}

/// Takes a lease on due rows in a short transaction of its own.
pub async fn claim(ctx: &AppContext) -> AppResult<Claim> {
    claim_rows(ctx, BATCH, false).await
}

/// `probe`: the pending mail whose retry is nearest, due or not.
async fn claim_rows(ctx: &AppContext, limit: u64, probe: bool) -> AppResult<Claim> {
    let now = ctx.clock.now();
    let txn = begin_write(&ctx.db).await?;
    let mut select = notification::Entity::find()
        .filter(notification::Column::Status.eq(MailStatus::Pending))
        .filter(
            Condition::any()
                .add(notification::Column::LeaseUntil.is_null())
                .add(notification::Column::LeaseUntil.lte(now)),
        )
        .order_by_asc(notification::Column::NextAttemptAt)
        .order_by_asc(notification::Column::Id)
        .limit(limit);
    if !probe {
        select = select.filter(notification::Column::NextAttemptAt.lte(now));
    }
    if ctx.db.get_database_backend() == DbBackend::Postgres {
        select = select.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let due = select.all(&txn).await?;
    let (token, lease_until) = (Uuid::now_v7(), now + lease());
    let mut claimed = Vec::with_capacity(due.len());
    for mail in due {
        let mut row = mail.into_active_model();
        row.lease_until = Set(Some(lease_until));
        row.lease_token = Set(Some(token));
        claimed.push(row.update(&txn).await?);
    }
    txn.commit().await?;
    Ok(Claim { token, lease_until, mails: claimed })
}

/// The UTF-8 text as 8bit, readable as it is in any SMTP sink and mail client. lettre picks
/// quoted-printable for UTF-8 lines over 76 bytes (a link, a few words of Chinese); 8bit only
/// needs lines within RFC 5322's 998 octets and no NUL, which we check ourselves. A text that
/// does not fit goes quoted-printable.
fn text_body(text: &str) -> Body {
    let crlf = text.replace("\r\n", "\n").replace('\r', "\n").replace('\n', "\r\n");
    let fits = !crlf.contains('\0') && crlf.split("\r\n").all(|line| line.len() <= 998);
    if fits {
        Body::dangerous_pre_encoded(crlf.into_bytes(), ContentTransferEncoding::EightBit)
    } else {
        Body::new_with_encoding(crlf, ContentTransferEncoding::QuotedPrintable).unwrap_or_else(Body::new)
    }
}

async fn send(ctx: &AppContext, transport: &Transport, mail: &notification::Model) -> Result<(), Failure> {
    let from: Mailbox = ctx.settings.smtp.from.parse().map_err(|e| Failure::Refused(format!("from address: {e}")))?;
    let to: Mailbox = mail.recipient.parse().map_err(|e| Failure::Refused(format!("recipient address: {e}")))?;
    let message = Message::builder()
        .message_id(Some(message_id(transport, mail.id)))
        .from(from)
        .to(to)
        .subject(mail.subject.clone())
        .header(ContentType::TEXT_PLAIN)
        .body(text_body(&mail.body))
        .map_err(|e| Failure::Refused(format!("message: {e}")))?;
    match transport.smtp.send(message).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_permanent() => Err(Failure::Refused(e.to_string())),
        Err(e) if e.is_transient() => Err(Failure::Deferred(e.to_string())),
        Err(e) => Err(Failure::Unreachable(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::minutes(minute)
    }

    #[test]
    fn an_outage_is_reported_once_and_its_end_once() {
        let mut breaker = Breaker::Closed;
        assert!(!breaker.probing());
        assert_eq!(breaker.unreachable(at(0)), Change::Opened, "the first failure is logged");
        for minute in 1..100 {
            assert_eq!(breaker.unreachable(at(minute)), Change::StillOpen, "later ones are not");
        }
        assert!(breaker.probing());
        assert_eq!(breaker.delivered(), Change::Recovered { down_since: Some(at(0)), failures: 100 });
        assert_eq!(breaker.delivered(), Change::Unchanged, "recovery is reported once");
        assert!(!breaker.probing());
    }

    #[test]
    fn a_fresh_mailer_probes_until_a_mail_goes_through() {
        let mut breaker = Breaker::default();
        assert!(breaker.probing(), "mail may be backed off from before a restart");
        assert_eq!(breaker.delivered(), Change::Recovered { down_since: None, failures: 0 });
        let mut breaker = Breaker::default();
        assert_eq!(breaker.unreachable(at(0)), Change::Opened);
    }

    #[test]
    fn backoff_grows_and_is_capped_at_an_hour() {
        assert_eq!(backoff(1), chrono::Duration::seconds(30));
        assert_eq!(backoff(2), chrono::Duration::minutes(1));
        assert_eq!(backoff(8), chrono::Duration::hours(1));
        assert_eq!(backoff(10_000), chrono::Duration::hours(1));
    }

    #[test]
    fn message_ids_take_the_public_host() {
        let from = "GridWhistle <noreply@gridwhistle.example>";
        assert_eq!(message_id_host("https://gw.xinzhou.example:8443/app", from), "gw.xinzhou.example");
        assert_eq!(message_id_host("http://127.0.0.1:8080", from), "127.0.0.1");
        assert_eq!(message_id_host("http://[::1]:8080/", from), "[::1]");
        assert_eq!(message_id_host("", from), "gridwhistle.example");
        assert_eq!(message_id_host("", "nobody"), "gridwhistle.invalid");
    }

    #[test]
    fn text_goes_8bit_unless_a_line_is_too_long() {
        let body = text_body(
            "工单编号：XZ-2026-000001\n查看工单：http://127.0.0.1:8080/api/v1/tickets/01a22862-e2e5-7728-aeb6-52f152f59981",
        );
        assert_eq!(body.encoding(), ContentTransferEncoding::EightBit);
        assert!(String::from_utf8_lossy(&body.into_vec()).contains("工单编号：XZ-2026-000001\r\n"));
        assert_eq!(text_body(&"长".repeat(400)).encoding(), ContentTransferEncoding::QuotedPrintable);
    }
}
