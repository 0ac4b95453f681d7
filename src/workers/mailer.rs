//! The outbox mailer: claims due rows with a short lease (no transaction is held while
//! talking to the SMTP server), sends them with lettre, and marks each sent — or schedules a
//! retry with backoff, so mail queued while the server is down goes out when it is back.

use std::time::Duration;

use entities::notification;
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, header::ContentType},
    transport::smtp::authentication::Credentials,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DbBackend, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect, Set,
    sea_query::{LockBehavior, LockType},
};
use tokio_util::sync::CancellationToken;

use crate::{
    config::{SmtpSettings, SmtpTls},
    context::AppContext,
    db::begin_write,
    error::{AppError, AppResult},
    metrics,
};

const BATCH: u64 = 50;
/// Long enough for a slow SMTP conversation; a crashed sender's rows come back after it.
const LEASE: chrono::Duration = chrono::Duration::minutes(2);

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MailReport {
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
}

pub type Transport = AsyncSmtpTransport<Tokio1Executor>;

pub fn transport(settings: &SmtpSettings) -> AppResult<Transport> {
    let smtp_error = |e: lettre::transport::smtp::Error| AppError::Internal(format!("smtp configuration: {e}"));
    let builder = match settings.tls {
        SmtpTls::None => Transport::builder_dangerous(&settings.host),
        SmtpTls::Starttls => Transport::starttls_relay(&settings.host).map_err(smtp_error)?,
        SmtpTls::Tls => Transport::relay(&settings.host).map_err(smtp_error)?,
    };
    let mut builder = builder.port(settings.port).timeout(Some(Duration::from_secs(15)));
    if !settings.username.is_empty() {
        builder = builder.credentials(Credentials::new(settings.username.clone(), settings.password.clone()));
    }
    Ok(builder.build())
}

pub async fn run(ctx: AppContext, token: CancellationToken) {
    let transport = match transport(&ctx.settings.smtp) {
        Ok(transport) => transport,
        Err(err) => {
            tracing::error!(error = %err, "mailer not started");
            return;
        }
    };
    loop {
        match run_once(&ctx, &transport).await {
            Ok(report) if report != MailReport::default() => tracing::info!(?report, "mail"),
            Ok(_) => {}
            Err(err) => tracing::error!(error = %err, "mail delivery failed; retrying next tick"),
        }
        if !super::pause(&token, ctx.settings.smtp.poll_interval).await {
            break;
        }
    }
}

/// Claims due mail and delivers it: what one tick of the loop does.
pub async fn run_once(ctx: &AppContext, transport: &Transport) -> AppResult<MailReport> {
    let claimed = claim(ctx).await?;
    deliver(ctx, transport, claimed).await
}

/// The mails one claim took, to be delivered by the claimer alone.
#[derive(Debug)]
pub struct Claim {
    pub mails: Vec<notification::Model>,
}

/// Sends the mails of `claim` and records each outcome.
pub async fn deliver(ctx: &AppContext, transport: &Transport, claim: Claim) -> AppResult<MailReport> {
    let mut report = MailReport::default();
    for mail in claim.mails {
        let outcome = send(ctx, transport, &mail).await;
        let now = ctx.clock.now();
        let attempts = mail.attempts + 1;
        let mut row = mail.into_active_model();
        row.attempts = Set(attempts);
        row.lease_until = Set(None);
        match outcome {
            Ok(()) => {
                row.status = Set("sent".into());
                row.sent_at = Set(Some(now));
                row.last_error = Set(None);
                report.sent += 1;
                metrics::mails().with_label_values(&["sent"]).inc();
            }
            Err((permanent, error)) => {
                row.last_error = Set(Some(error));
                if permanent || attempts >= ctx.settings.smtp.max_attempts {
                    row.status = Set("failed".into());
                    report.failed += 1;
                    metrics::mails().with_label_values(&["failed"]).inc();
                } else {
                    row.next_attempt_at = Set(now + backoff(attempts));
                    report.retried += 1;
                    metrics::mails().with_label_values(&["retry"]).inc();
                }
            }
        }
        row.update(&ctx.db).await?;
    }
    Ok(report)
}

/// 30 s, 1 min, 2 min, … capped at an hour.
fn backoff(attempts: i32) -> chrono::Duration {
    let exponent = attempts.clamp(1, 8) as u32 - 1;
    chrono::Duration::seconds((30_i64 << exponent).min(3600))
}

/// Takes a lease on due rows in a short transaction of its own.
pub async fn claim(ctx: &AppContext) -> AppResult<Claim> {
    let now = ctx.clock.now();
    let txn = begin_write(&ctx.db).await?;
    let mut select = notification::Entity::find()
        .filter(notification::Column::Status.eq("pending"))
        .filter(notification::Column::NextAttemptAt.lte(now))
        .filter(
            Condition::any()
                .add(notification::Column::LeaseUntil.is_null())
                .add(notification::Column::LeaseUntil.lte(now)),
        )
        .order_by_asc(notification::Column::NextAttemptAt)
        .limit(BATCH);
    if ctx.db.get_database_backend() == DbBackend::Postgres {
        select = select.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let due = select.all(&txn).await?;
    let mut claimed = Vec::with_capacity(due.len());
    for mail in due {
        let mut row = mail.into_active_model();
        row.lease_until = Set(Some(now + LEASE));
        claimed.push(row.update(&txn).await?);
    }
    txn.commit().await?;
    Ok(Claim { mails: claimed })
}

/// Err((permanent, message)): a malformed address will never work; a refused connection may.
async fn send(ctx: &AppContext, transport: &Transport, mail: &notification::Model) -> Result<(), (bool, String)> {
    let from: Mailbox = ctx.settings.smtp.from.parse().map_err(|e| (true, format!("from address: {e}")))?;
    let to: Mailbox = mail.recipient.parse().map_err(|e| (true, format!("recipient address: {e}")))?;
    let message = Message::builder()
        .from(from)
        .to(to)
        .subject(mail.subject.clone())
        .header(ContentType::TEXT_PLAIN)
        .body(mail.body.clone())
        .map_err(|e| (true, format!("message: {e}")))?;
    match transport.send(message).await {
        Ok(_) => Ok(()),
        Err(e) => Err((e.is_permanent(), e.to_string())),
    }
}
