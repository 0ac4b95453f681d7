//! The outbox mailer: claims due rows with a lease (no transaction is held while talking to
//! the SMTP server), sends them with lettre, and marks each sent — or schedules a retry with
//! backoff, so mail queued while the server is down goes out when it is back. With several
//! replicas, the lease covers the slowest whole batch and every outcome is recorded only
//! under the claim's token, so a sender whose lease ran out neither sends nor overwrites.

use std::time::Duration;

use chrono::{DateTime, Utc};
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
use uuid::Uuid;

use crate::{
    config::{SmtpSettings, SmtpTls},
    context::AppContext,
    db::begin_write,
    error::{AppError, AppResult},
    metrics,
};

/// Mails claimed at a time.
const BATCH: u64 = 20;
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
    pub retried: usize,
    pub failed: usize,
}

pub type Transport = AsyncSmtpTransport<Tokio1Executor>;

pub fn transport(settings: &SmtpSettings) -> AppResult<Transport> {
    let smtp_error = |e: lettre::transport::smtp::Error| AppError::internal_from("smtp configuration", e);
    let builder = match settings.tls {
        SmtpTls::None => Transport::builder_dangerous(&settings.host),
        SmtpTls::Starttls => Transport::starttls_relay(&settings.host).map_err(smtp_error)?,
        SmtpTls::Tls => Transport::relay(&settings.host).map_err(smtp_error)?,
    };
    let mut builder = builder.port(settings.port).timeout(Some(SMTP_TIMEOUT));
    if !settings.username.is_empty() {
        builder = builder.credentials(Credentials::new(settings.username.clone(), settings.password.clone()));
    }
    Ok(builder.build())
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
            Ok(report) if report != MailReport::default() => tracing::info!(?report, "mail"),
            Ok(_) => {}
            Err(err) => tracing::error!(error = %err.chain(), "mail delivery failed; retrying next tick"),
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

/// The mails one claim took, to be delivered by the claimer alone. The token fences every
/// update: once the lease has run out and another sender claimed a mail, this claim's
/// updates of it change nothing.
#[derive(Debug)]
pub struct Claim {
    pub token: Uuid,
    pub lease_until: DateTime<Utc>,
    pub mails: Vec<notification::Model>,
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
            Err(_) => Err((false, format!("no answer from the SMTP server within {} s", SEND_BUDGET.as_secs()))),
        };
        let now = ctx.clock.now();
        let attempts = mail.attempts + 1;
        let mut row = notification::ActiveModel {
            attempts: Set(attempts),
            lease_until: Set(None),
            lease_token: Set(None),
            ..Default::default()
        };
        let outcome_label = match outcome {
            Ok(()) => {
                row.status = Set("sent".into());
                row.sent_at = Set(Some(now));
                row.last_error = Set(None);
                report.sent += 1;
                "sent"
            }
            Err((permanent, error)) => {
                row.last_error = Set(Some(error));
                if permanent || attempts >= ctx.settings.smtp.max_attempts {
                    row.status = Set("failed".into());
                    report.failed += 1;
                    "failed"
                } else {
                    row.next_attempt_at = Set(now + backoff(attempts));
                    report.retried += 1;
                    "retry"
                }
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
