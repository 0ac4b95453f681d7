//! Response bodies: the API contract of DESIGN.md. Table models never leave the service layer raw.

use chrono::{DateTime, Utc};
use entities::{category, department, grid_unit, user};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    error::AppError,
    repo::page::{DEFAULT_LIMIT, MAX_LIMIT, Page, PageRequest},
    service::routing::{Resolution, RoutingRule as RuleWithCoHandlers},
    service::sla::ClockStatus,
};

#[derive(Debug, Serialize, ToSchema)]
pub struct List<T: ToSchema> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T: ToSchema> List<T> {
    pub fn from_page<M>(page: Page<M>, f: impl FnMut(M) -> T) -> Self {
        let page = page.map(f);
        Self { items: page.items, next_cursor: page.next_cursor }
    }
}

/// `limit` (1–200, default 50) and `cursor` (the previous page's `next_cursor`).
pub fn page_request(limit: Option<u64>, cursor: Option<&str>) -> Result<PageRequest, AppError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(AppError::invalid(
            "limit",
            crate::domain::validate::Message::said(
                format!("应为 1 到 {MAX_LIMIT}"),
                format!("must be between 1 and {MAX_LIMIT}"),
            ),
        ));
    }
    let after = cursor
        .map(|c| {
            Uuid::parse_str(c).map_err(|_| {
                AppError::invalid(
                    "cursor",
                    crate::domain::validate::Message::said(
                        "不是本接口给出的游标（next_cursor）",
                        "not a cursor this API issued",
                    ),
                )
            })
        })
        .transpose()?;
    Ok(PageRequest { limit, after })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GridUnit {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    /// city, county, township, community or grid
    pub level: String,
    pub parent_id: Option<Uuid>,
    #[schema(value_type = Option<Object>)]
    pub boundary: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<grid_unit::Model> for GridUnit {
    fn from(m: grid_unit::Model) -> Self {
        Self {
            id: m.id,
            code: m.code,
            name: m.name,
            level: crate::service::grid_units::level_name(m.level).into(),
            parent_id: m.parent_id,
            boundary: m.boundary,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Department {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    pub unit_id: Uuid,
    pub email: String,
    /// Escalations to the department head go here (the department's address when null).
    pub head_email: Option<String>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<department::Model> for Department {
    fn from(m: department::Model) -> Self {
        Self {
            id: m.id,
            code: m.code,
            name: m.name,
            unit_id: m.unit_id,
            email: m.email,
            head_email: m.head_email,
            active: m.active,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Category {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    /// normal or urgent
    #[schema(value_type = String)]
    pub default_priority: entities::Priority,
    pub auto_dispatch: bool,
    pub active: bool,
    /// Resolving needs an `after` photo.
    pub resolve_requires_photo: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<category::Model> for Category {
    fn from(m: category::Model) -> Self {
        Self {
            id: m.id,
            code: m.code,
            name: m.name,
            default_priority: m.default_priority,
            auto_dispatch: m.auto_dispatch,
            active: m.active,
            resolve_requires_photo: m.resolve_requires_photo,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoutingRule {
    pub id: Uuid,
    /// `null`: every category.
    pub category_id: Option<Uuid>,
    pub unit_id: Uuid,
    pub primary_department_id: Uuid,
    pub co_handler_department_ids: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<RuleWithCoHandlers> for RoutingRule {
    fn from(r: RuleWithCoHandlers) -> Self {
        Self {
            id: r.rule.id,
            category_id: r.rule.category_id,
            unit_id: r.rule.unit_id,
            primary_department_id: r.rule.primary_department_id,
            co_handler_department_ids: r.co_handler_department_ids,
            created_at: r.rule.created_at,
            updated_at: r.rule.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoutingResolution {
    pub category_id: Uuid,
    pub unit_id: Uuid,
    /// The winning rule; `null` when the ticket stays with the township dispatcher.
    pub rule_id: Option<Uuid>,
    pub primary_department_id: Option<Uuid>,
    pub co_handler_department_ids: Vec<Uuid>,
    /// The township whose dispatcher reviews the ticket.
    pub dispatcher_unit_id: Option<Uuid>,
    /// Every matching rule, most specific first (deepest unit, then exact category).
    pub candidates: Vec<RoutingRule>,
}

impl From<Resolution> for RoutingResolution {
    fn from(r: Resolution) -> Self {
        Self {
            category_id: r.category_id,
            unit_id: r.unit_id,
            rule_id: r.rule_id,
            primary_department_id: r.primary_department_id,
            co_handler_department_ids: r.co_handler_department_ids,
            dispatcher_unit_id: r.dispatcher_unit_id,
            candidates: r.candidates.into_iter().map(Into::into).collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    /// grid_worker, dispatcher, department_staff, supervisor or admin
    pub role: String,
    pub unit_id: Option<Uuid>,
    pub department_id: Option<Uuid>,
    pub email: Option<String>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<user::Model> for User {
    fn from(m: user::Model) -> Self {
        Self {
            id: m.id,
            username: m.username,
            display_name: m.display_name,
            role: crate::service::role_name(m.role).into(),
            unit_id: m.unit_id,
            department_id: m.department_id,
            email: m.email,
            active: m.active,

            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Ticket {
    pub id: Uuid,
    /// Human number, e.g. XZ-2026-000123.
    pub number: String,
    pub category_id: Uuid,
    /// normal or urgent
    #[schema(value_type = String)]
    pub priority: entities::Priority,
    pub title: String,
    pub description: String,
    pub location: Option<crate::service::tickets::Location>,
    pub grid_unit_id: Uuid,
    /// Masked after the street (`和平街******`): often the resident's home.
    pub address: Option<String>,
    /// Always masked (`张*`, `138****5678`); the unmasked values come only from the audited
    /// `GET /tickets/{id}/contact`.
    pub resident: Option<ResidentContact>,
    /// Always true: kept for clients that check it.
    pub contact_masked: bool,
    /// The caller may reveal the contact and address through `GET /tickets/{id}/contact`.
    pub contact_revealable: bool,
    pub channel: String,
    /// Uploaded photos and documents (`Attachment`: id, kind, content_type, size, width, height,
    /// uploaded_by, uploaded_at, url, thumbnail_url), then any metadata-only entries of older clients.
    #[schema(value_type = Vec<Object>)]
    pub attachments: Value,
    /// filed, dispatched, in_progress, resolved, closed, cancelled or merged
    pub status: String,
    pub filed_by: Uuid,
    pub version: i32,
    /// How many times departments returned it (退单).
    pub return_count: i32,
    /// Flagged for supervisor arbitration after repeated returns.
    pub needs_arbitration: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub first_dispatched_at: Option<DateTime<Utc>>,
    pub first_contact_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// A resolved ticket with no rating closes itself at this time.
    pub rating_due_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    /// The dispatches the caller may read: all of them, or for department staff their own
    /// department's only.
    pub dispatches: Vec<Dispatch>,
    /// For department staff: the other departments on the ticket and their state, nothing more.
    pub other_departments: Vec<crate::service::tickets::OtherDepartment>,
    /// The latest rating.
    pub rating: Option<Rating>,
    /// Every SLA clock of the ticket and its dispatches: deadline, state
    /// (on_track | warning | breached, or met | missed once stopped) and time left.
    pub sla: Vec<ClockStatus>,
    /// The most pressing running clock's state; `null` when none runs.
    pub sla_state: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResidentContact {
    pub name: Option<String>,
    pub phone: Option<String>,
}

impl From<crate::service::tickets::TicketView> for Ticket {
    fn from(view: crate::service::tickets::TicketView) -> Self {
        use crate::domain::privacy::{mask_address, mask_name, mask_phone};
        let t = view.ticket;
        let sla_state =
            view.sla.iter().filter(|c| c.stopped_at.is_none()).map(|c| c.state.clone()).max_by_key(|state| match state
                .as_str()
            {
                "breached" => 2,
                "warning" => 1,
                _ => 0,
            });
        let dispatches = view
            .dispatches
            .into_iter()
            .map(|d| {
                let clock = view.sla.iter().rev().find(|c| c.dispatch_id == Some(d.id)).cloned();
                Dispatch { sla: clock, ..Dispatch::from(d) }
            })
            .collect();
        let resident = (t.resident_name.is_some() || t.resident_phone.is_some()).then(|| ResidentContact {
            name: t.resident_name.as_deref().map(mask_name),
            phone: t.resident_phone.as_deref().map(mask_phone),
        });
        Self {
            id: t.id,
            number: t.number,
            category_id: t.category_id,
            priority: t.priority,
            title: t.title,
            description: t.description,
            location: t.lat.zip(t.lon).map(|(lat, lon)| crate::service::tickets::Location { lat, lon }),
            grid_unit_id: t.unit_id,
            address: t.address.as_deref().map(mask_address),
            resident,
            contact_masked: true,
            contact_revealable: view.contact_revealable,
            channel: t.channel,
            attachments: super::attachments::ticket_attachments(view.attachments, t.attachments),
            status: t.status,
            filed_by: t.filed_by,
            version: t.version,
            return_count: t.return_count,
            needs_arbitration: t.needs_arbitration,
            created_at: t.created_at,
            updated_at: t.updated_at,
            first_dispatched_at: t.first_dispatched_at,
            first_contact_at: t.first_contact_at,
            resolved_at: t.resolved_at,
            rating_due_at: t.rating_due_at,
            closed_at: t.closed_at,
            dispatches,
            other_departments: view.other_departments,
            rating: view.rating.map(Rating::from),
            sla: view.sla,
            sla_state,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Dispatch {
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub department_id: Uuid,
    /// primary or co_handler
    pub role: String,
    /// pending, acknowledged, returned, resolved or cancelled
    pub status: String,
    pub dispatched_at: DateTime<Utc>,
    /// The deadline to report in (签收报到时限) this dispatch is judged by.
    pub ack_due_at: Option<DateTime<Utc>>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub returned_at: Option<DateTime<Utc>>,
    pub return_reason: Option<String>,
    /// The dispatcher refused a return: no further return is possible.
    pub return_refused: bool,
    pub resolved_at: Option<DateTime<Utc>>,
    pub reply: Option<String>,
    /// The acknowledge clock (签收报到时限) of this dispatch, in ticket responses.
    pub sla: Option<ClockStatus>,
}

impl From<entities::dispatch::Model> for Dispatch {
    fn from(d: entities::dispatch::Model) -> Self {
        Self {
            id: d.id,
            ticket_id: d.ticket_id,
            department_id: d.department_id,
            role: d.role,
            status: d.status,
            dispatched_at: d.created_at,
            ack_due_at: d.ack_due_at,
            acknowledged_at: d.acknowledged_at,
            returned_at: d.returned_at,
            return_reason: d.return_reason,
            return_refused: d.return_refused,
            resolved_at: d.resolved_at,
            reply: d.reply,
            sla: None,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Rating {
    /// 1 非常不满意 … 5 非常满意
    pub score: i16,
    pub comment: Option<String>,
    pub rated_by: Uuid,
    pub rated_at: DateTime<Utc>,
}

impl From<entities::rating::Model> for Rating {
    fn from(r: entities::rating::Model) -> Self {
        Self { score: r.score, comment: r.comment, rated_by: r.rated_by, rated_at: r.created_at }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TicketEvent {
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub dispatch_id: Option<Uuid>,
    pub kind: String,
    /// `null` for the system (auto-dispatch, auto-close, timers).
    pub actor_id: Option<Uuid>,
    pub at: DateTime<Utc>,
    #[schema(value_type = Object)]
    pub payload: Value,
}

impl From<entities::ticket_event::Model> for TicketEvent {
    fn from(e: entities::ticket_event::Model) -> Self {
        Self {
            id: e.id,
            ticket_id: e.ticket_id,
            dispatch_id: e.dispatch_id,
            kind: e.kind,
            actor_id: e.actor_id,
            at: e.at,
            payload: e.payload,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DispatchOutcome {
    pub dispatch: Dispatch,
    pub ticket: Ticket,
}

impl From<crate::service::dispatches::DispatchOutcome> for DispatchOutcome {
    fn from(o: crate::service::dispatches::DispatchOutcome) -> Self {
        Self { dispatch: o.dispatch.into(), ticket: o.ticket.into() }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SupervisionOrder {
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub department_id: Option<Uuid>,
    /// supervise (督办) or listed (挂牌督办)
    pub level: String,
    pub instruction: String,
    pub due_at: DateTime<Utc>,
    /// open or replied
    pub status: String,
    /// `null` when the escalation chain opened it.
    pub issued_by: Option<Uuid>,
    pub reply: Option<String>,
    pub replied_by: Option<Uuid>,
    pub replied_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<entities::supervision_order::Model> for SupervisionOrder {
    fn from(o: entities::supervision_order::Model) -> Self {
        Self {
            id: o.id,
            ticket_id: o.ticket_id,
            department_id: o.department_id,
            level: o.level,
            instruction: o.instruction,
            due_at: o.due_at,
            status: o.status,
            issued_by: o.issued_by,
            reply: o.reply,
            replied_by: o.replied_by,
            replied_at: o.replied_at,
            created_at: o.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExtensionRequest {
    pub id: Uuid,
    pub dispatch_id: Uuid,
    pub ticket_id: Uuid,
    pub duration: String,
    pub reason: String,
    /// pending, approved or rejected
    pub status: String,
    pub requested_by: Uuid,
    pub decided_by: Option<Uuid>,
    pub decided_at: Option<DateTime<Utc>>,
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<entities::extension_request::Model> for ExtensionRequest {
    fn from(e: entities::extension_request::Model) -> Self {
        Self {
            id: e.id,
            dispatch_id: e.dispatch_id,
            ticket_id: e.ticket_id,
            duration: e.duration,
            reason: e.reason,
            status: e.status,
            requested_by: e.requested_by,
            decided_by: e.decided_by,
            decided_at: e.decided_at,
            note: e.note,
            created_at: e.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EscalationRule {
    pub id: Uuid,
    pub trigger: String,
    pub notify: Vec<String>,
    pub supervision_level: Option<String>,
    pub active: bool,
    pub updated_at: DateTime<Utc>,
}

impl From<entities::escalation_rule::Model> for EscalationRule {
    fn from(r: entities::escalation_rule::Model) -> Self {
        Self {
            id: r.id,
            trigger: r.trigger,
            notify: serde_json::from_value(r.notify).unwrap_or_default(),
            supervision_level: r.supervision_level,
            active: r.active,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Notification {
    pub id: Uuid,
    pub ticket_id: Option<Uuid>,
    pub kind: String,
    pub recipient: String,
    pub subject: String,
    /// pending, sent or dead
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

impl From<entities::notification::Model> for Notification {
    fn from(n: entities::notification::Model) -> Self {
        Self {
            id: n.id,
            ticket_id: n.ticket_id,
            kind: n.kind,
            recipient: n.recipient,
            subject: n.subject,
            status: sea_orm::ActiveEnum::to_value(&n.status),
            attempts: n.attempts,
            next_attempt_at: n.next_attempt_at,
            last_error: n.last_error,
            created_at: n.created_at,
            sent_at: n.sent_at,
        }
    }
}
