//! The notification outbox: mails are rows written in the transaction of the change that
//! causes them, and a worker delivers them after commit. Short, in Chinese, with the ticket
//! number, category, the department and the SLA clock it is about, the deadline and a link
//! to the ticket — never a resident's name or phone.

use chrono::{DateTime, Utc};
use entities::enums::MailStatus;
use entities::{category, notification, ticket};
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, Set};
use uuid::Uuid;

use crate::{
    context::AppContext,
    domain::{sla::ClockKind, ticket::DispatchRole},
    error::AppResult,
};

/// One mail to write: what it is about and who gets it.
pub struct Mail<'a> {
    pub kind: &'a str,
    pub ticket: &'a ticket::Model,
    pub headline: String,
    /// The department(s) the mail is about, as [`department_label`] writes them: two mails
    /// about one ticket for two departments must be told apart by subject.
    pub department: Option<String>,
    /// The SLA clock the mail is about, if any.
    pub clock: Option<ClockKind>,
    pub deadline: Option<DateTime<Utc>>,
    pub note: Option<String>,
}

/// `忻府区城市管理局（主办）`: a department and its part in the ticket.
pub fn department_label(name: &str, role: Option<DispatchRole>) -> String {
    match role {
        Some(DispatchRole::Primary) => format!("{name}（主办）"),
        Some(DispatchRole::CoHandler) => format!("{name}（协办）"),
        None => name.to_owned(),
    }
}

/// The path of a ticket in the API: mails link here until a web console exists.
pub fn ticket_link(ctx: &AppContext, ticket_id: Uuid) -> String {
    format!("{}/api/v1/tickets/{ticket_id}", ctx.settings.smtp.public_url.trim_end_matches('/'))
}

pub async fn enqueue(
    ctx: &AppContext,
    db: &impl ConnectionTrait,
    mail: &Mail<'_>,
    recipients: &[String],
    now: DateTime<Utc>,
) -> AppResult<usize> {
    if recipients.is_empty() {
        return Ok(0);
    }
    let category_name =
        category::Entity::find_by_id(mail.ticket.category_id).one(db).await?.map(|c| c.name).unwrap_or_default();
    let subject = match &mail.department {
        Some(department) => format!("【接诉即办】{} · {department} · 工单 {}", mail.headline, mail.ticket.number),
        None => format!("【接诉即办】{} · 工单 {}", mail.headline, mail.ticket.number),
    };
    let body = body(ctx, mail, &category_name);
    let mut unique: Vec<&String> = recipients.iter().collect();
    unique.sort();
    unique.dedup();
    for recipient in &unique {
        notification::ActiveModel {
            id: Set(Uuid::now_v7()),
            ticket_id: Set(Some(mail.ticket.id)),
            kind: Set(mail.kind.to_owned()),
            recipient: Set((*recipient).clone()),
            subject: Set(subject.clone()),
            body: Set(body.clone()),
            status: Set(MailStatus::Pending),
            attempts: Set(0),
            next_attempt_at: Set(now),
            lease_until: Set(None),
            lease_token: Set(None),
            last_error: Set(None),
            created_at: Set(now),
            queued_at: Set(None),
            sent_at: Set(None),
        }
        .insert(db)
        .await?;
    }
    Ok(unique.len())
}

fn body(ctx: &AppContext, mail: &Mail<'_>, category_name: &str) -> String {
    let local = |t: DateTime<Utc>| t.with_timezone(&ctx.calendar().offset()).format("%Y-%m-%d %H:%M").to_string();
    let mut lines = vec![
        format!("{}。", mail.headline),
        String::new(),
        format!("工单编号：{}", mail.ticket.number),
        format!("诉求类别：{category_name}"),
        format!("事项：{}", mail.ticket.title),
    ];
    if let Some(department) = &mail.department {
        lines.push(format!("责任部门：{department}"));
    }
    if let Some(clock) = mail.clock {
        lines.push(format!("计时：{}", clock.label()));
    }
    if let Some(deadline) = mail.deadline {
        lines.push(format!("办理时限：{}", local(deadline)));
    }
    if let Some(note) = &mail.note {
        lines.push(format!("说明：{note}"));
    }
    lines.push(format!("查看工单：{}", ticket_link(ctx, mail.ticket.id)));
    lines.push(String::new());
    lines.push("（本邮件由系统自动发送，请勿直接回复。）".into());
    lines.join("\r\n")
}
