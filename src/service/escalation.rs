//! Firing escalations: the matching rules decide whom to notify and whether a supervision
//! order (督办 / 挂牌督办) opens. Everything lands in the caller's transaction — the escalation
//! record, the order, the timeline events and the outbox mails.

use chrono::{DateTime, Utc};
use entities::{
    Role, UnitLevel, department, dispatch, escalation, escalation_rule, grid_unit, supervision_order, ticket, user,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Set,
    sea_query::OnConflict,
};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::notify::{self, Mail};
use crate::{
    context::AppContext,
    domain::{
        escalation::{Rule, SupervisionLevel, Target, Trigger},
        sla::ClockKind,
        ticket::{DispatchRole, event},
    },
    error::AppResult,
    metrics, repo,
};

/// What set an escalation off.
pub struct Cause<'a> {
    pub trigger: Trigger,
    pub ticket: &'a ticket::Model,
    pub clock_id: Option<Uuid>,
    /// The dispatch concerned (an acknowledge clock's); otherwise the ticket's open primaries.
    pub dispatch: Option<&'a dispatch::Model>,
    pub deadline: Option<DateTime<Utc>>,
}

pub async fn fire(
    ctx: &AppContext,
    db: &impl ConnectionTrait,
    cause: &Cause<'_>,
    now: DateTime<Utc>,
) -> AppResult<usize> {
    let rules = escalation_rule::Entity::find()
        .filter(escalation_rule::Column::Trigger.eq(cause.trigger.name()))
        .filter(escalation_rule::Column::Active.eq(true))
        .all(db)
        .await?;
    let departments = departments_concerned(db, cause).await?;
    for row in &rules {
        let notify: Vec<String> = serde_json::from_value(row.notify.clone()).unwrap_or_default();
        let Ok(rule) = Rule::parse(&row.trigger, &notify, row.supervision_level.as_deref()) else {
            tracing::warn!(rule_id = %row.id, "skipping an escalation rule that no longer parses");
            continue;
        };
        let mut recipients = Vec::new();
        for target in &rule.notify {
            recipients.extend(addresses(db, *target, cause.ticket, &departments).await?);
        }
        let order = match rule.supervision {
            Some(level) => Some({
                let new = NewOrder {
                    ticket: cause.ticket,
                    department_id: departments.first().map(|d| d.id),
                    level,
                    instruction: None,
                    issued: None,
                    clock: clock_name(cause.trigger),
                };
                open_order(ctx, db, new, now).await?
            }),
            None => None,
        };
        let note = order.as_ref().map(|o| {
            format!(
                "已{}，请于 {} 前答复",
                SupervisionLevel::parse(&o.level).map_or("督办", |l| l.label()),
                o.due_at.with_timezone(&ctx.calendar().offset()).format("%Y-%m-%d %H:%M")
            )
        });
        let mail = Mail {
            kind: "escalation",
            ticket: cause.ticket,
            headline: cause.trigger.label(),
            department: department_named(cause, &departments),
            clock: clock_of(cause.trigger),
            deadline: cause.deadline,
            note,
        };
        let sent_to = notify::enqueue(ctx, db, &mail, &recipients, now).await?;
        let targets: Vec<&str> = rule.notify.iter().map(|t| t.as_str()).collect();
        escalation::ActiveModel {
            id: Set(Uuid::now_v7()),
            ticket_id: Set(cause.ticket.id),
            clock_id: Set(cause.clock_id),
            trigger: Set(cause.trigger.name()),
            rule_id: Set(Some(row.id)),
            notified: Set(json!({"targets": targets, "mails": sent_to})),
            supervision_order_id: Set(order.as_ref().map(|o| o.id)),
            at: Set(now),
        }
        .insert(db)
        .await?;
        let payload = json!({
            "trigger": cause.trigger.name(),
            "clock": clock_name(cause.trigger),
            "targets": targets,
            "mails": sent_to,
            "supervision_order_id": order.as_ref().map(|o| o.id),
        });
        repo::tickets::record_event(
            db,
            cause.ticket.id,
            cause.dispatch.map(|d| d.id),
            event::ESCALATED,
            None,
            now,
            payload,
        )
        .await?;
        metrics::escalations().with_label_values(&[&cause.trigger.name()]).inc();
    }
    Ok(rules.len())
}

fn clock_of(trigger: Trigger) -> Option<ClockKind> {
    match trigger {
        Trigger::Warning(clock) | Trigger::Breach(clock) => Some(clock),
        Trigger::ResolveFollowup => Some(ClockKind::Resolve),
        Trigger::ThirdReturn | Trigger::BadRating => None,
    }
}

fn clock_name(trigger: Trigger) -> Option<&'static str> {
    clock_of(trigger).map(ClockKind::as_str)
}

/// The departments a mail is about, with their part: a lead's and a co-handler's late
/// acknowledgement are two mails that must read differently.
fn department_named(cause: &Cause<'_>, departments: &[department::Model]) -> Option<String> {
    let role = match cause.dispatch {
        Some(dispatch) if dispatch.role == DispatchRole::CoHandler.as_str() => DispatchRole::CoHandler,
        _ => DispatchRole::Primary,
    };
    let names: Vec<String> = departments.iter().map(|d| notify::department_label(&d.name, Some(role))).collect();
    (!names.is_empty()).then(|| names.join("、"))
}

/// A supervision order to open.
pub struct NewOrder<'a> {
    pub ticket: &'a ticket::Model,
    pub department_id: Option<Uuid>,
    pub level: SupervisionLevel,
    /// A standard instruction when `None`.
    pub instruction: Option<String>,
    /// The supervisor and the deadline they set; `None`: the system, with the configured deadline.
    pub issued: Option<(Uuid, DateTime<Utc>)>,
    /// The SLA clock whose breach opened it, for the timeline.
    pub clock: Option<&'static str>,
}

/// Opens a supervision order with its timeline event.
pub async fn open_order(
    ctx: &AppContext,
    db: &impl ConnectionTrait,
    new: NewOrder<'_>,
    now: DateTime<Utc>,
) -> AppResult<supervision_order::Model> {
    let NewOrder { ticket, department_id, level, instruction, issued, clock } = new;
    let (issued_by, due_at) = match issued {
        Some((by, due)) => (Some(by), due),
        None => (None, ctx.calendar().add(now, ctx.settings.escalation.supervision_due).at),
    };
    let instruction =
        instruction.unwrap_or_else(|| format!("工单 {} 已超时，请责任部门加快办理并书面答复。", ticket.number));
    let order = supervision_order::ActiveModel {
        id: Set(Uuid::now_v7()),
        ticket_id: Set(ticket.id),
        department_id: Set(department_id),
        level: Set(level.as_str().to_owned()),
        instruction: Set(instruction.clone()),
        due_at: Set(due_at),
        status: Set("open".into()),
        issued_by: Set(issued_by),
        reply: Set(None),
        replied_by: Set(None),
        replied_at: Set(None),
        created_at: Set(now),
    }
    .insert(db)
    .await?;
    let payload = json!({"supervision_order_id": order.id, "level": order.level, "department_id": department_id, "due_at": due_at, "instruction": instruction, "clock": clock});
    repo::tickets::record_event(db, ticket.id, None, event::SUPERVISION_ORDERED, issued_by, now, payload).await?;
    Ok(order)
}

/// The department a cause concerns: its dispatch's, else the one responsible for the ticket.
async fn departments_concerned(db: &impl ConnectionTrait, cause: &Cause<'_>) -> AppResult<Vec<department::Model>> {
    let ids: Vec<Uuid> = match cause.dispatch {
        Some(dispatch) => vec![dispatch.department_id],
        None => super::tickets::responsible_department(&repo::tickets::dispatches_of(db, &[cause.ticket.id]).await?)
            .into_iter()
            .collect(),
    };
    Ok(department::Entity::find().filter(department::Column::Id.is_in(ids)).all(db).await?)
}

async fn addresses(
    db: &impl ConnectionTrait,
    target: Target,
    ticket: &ticket::Model,
    departments: &[department::Model],
) -> AppResult<Vec<String>> {
    Ok(match target {
        Target::Department => departments.iter().map(|d| d.email.clone()).collect(),
        Target::DepartmentHead => {
            departments.iter().map(|d| d.head_email.clone().unwrap_or_else(|| d.email.clone())).collect()
        }
        Target::TownshipDispatcher => people_at(db, ticket, UnitLevel::Township, Role::Dispatcher).await?,
        Target::CountySupervisor => people_at(db, ticket, UnitLevel::County, Role::Supervisor).await?,
        Target::CitySupervisor => people_at(db, ticket, UnitLevel::City, Role::Supervisor).await?,
    })
}

/// Active users of `role` whose home is the ticket's ancestor at `level`, with an address.
async fn people_at(
    db: &impl ConnectionTrait,
    ticket: &ticket::Model,
    level: UnitLevel,
    role: Role,
) -> AppResult<Vec<String>> {
    let Some(unit) = grid_unit::Entity::find_by_id(ticket.unit_id).one(db).await? else { return Ok(vec![]) };
    let ancestors = repo::grid_units::ancestry(&unit.path);
    let Some(home) = grid_unit::Entity::find()
        .filter(grid_unit::Column::Id.is_in(ancestors))
        .filter(grid_unit::Column::Level.eq(level))
        .one(db)
        .await?
    else {
        return Ok(vec![]);
    };
    Ok(user::Entity::find()
        .filter(user::Column::UnitId.eq(home.id))
        .filter(user::Column::Role.eq(role))
        .filter(user::Column::Active.eq(true))
        .filter(user::Column::Email.is_not_null())
        .all(db)
        .await?
        .into_iter()
        .filter_map(|u| u.email)
        .collect())
}

/// Loads the configured default chain into an empty rules table (first start).
///
/// Replicas starting together on an empty database may all find it empty. Each default rule
/// therefore has a fixed id (derived from its place in the configuration) and the chain goes
/// in as one `INSERT … ON CONFLICT (id) DO NOTHING`: whoever comes second inserts nothing.
pub async fn install_default_rules(ctx: &AppContext) -> AppResult<()> {
    if escalation_rule::Entity::find().count(&ctx.db).await? > 0 || ctx.settings.escalation.rules.is_empty() {
        return Ok(());
    }
    let now = ctx.clock.now();
    let rows = ctx.settings.escalation.rules.iter().enumerate().map(|(position, rule)| escalation_rule::ActiveModel {
        id: Set(default_rule_id(position, &rule.trigger)),
        trigger: Set(rule.trigger.clone()),
        notify: Set(json!(rule.notify)),
        supervision_level: Set(rule.supervision.clone()),
        active: Set(true),
        created_at: Set(now),
        updated_at: Set(now),
    });
    escalation_rule::Entity::insert_many(rows)
        .on_conflict(OnConflict::column(escalation_rule::Column::Id).do_nothing().to_owned())
        .exec_without_returning(&ctx.db)
        .await?;
    Ok(())
}

/// The same id for the same default rule on every replica.
fn default_rule_id(position: usize, trigger: &str) -> Uuid {
    let digest = Sha256::digest(format!("gridwhistle:default-escalation-rule:{position}:{trigger}"));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}
