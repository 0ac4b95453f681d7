//! The audit log: logins, failed logins, user and role changes, contact reveals, erasures,
//! policy and rule changes. Written in the transaction of the change it records.

use chrono::{DateTime, Utc};
use entities::{audit_log, grid_unit};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set, sea_query::Query};
use serde_json::Value;
use uuid::Uuid;

use super::require;
use crate::{
    context::AppContext,
    domain::access::{Caller, Permission, TicketScope, ticket_scope},
    error::AppResult,
    repo::page::{self, Order, Page, PageRequest},
};

/// One audit record. `unit_id` places it in the tree so supervisors see their subtree's.
pub struct Entry<'a> {
    pub actor_id: Option<Uuid>,
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: Option<String>,
    pub ip: Option<String>,
    pub detail: Value,
    pub unit_id: Option<Uuid>,
}

impl<'a> Entry<'a> {
    /// A change made by an authenticated caller.
    pub fn by(caller: &Caller, action: &'a str, target_type: &'a str, target_id: impl ToString, detail: Value) -> Self {
        Self {
            actor_id: Some(caller.user_id).filter(|id| !id.is_nil()),
            action,
            target_type,
            target_id: Some(target_id.to_string()),
            ip: caller.ip.clone(),
            detail,
            unit_id: None,
        }
    }

    pub fn in_unit(self, unit_id: Option<Uuid>) -> Self {
        Self { unit_id, ..self }
    }
}

pub async fn record(db: &impl ConnectionTrait, entry: Entry<'_>, at: DateTime<Utc>) -> AppResult<()> {
    audit_log::ActiveModel {
        id: Set(Uuid::now_v7()),
        at: Set(at),
        actor_id: Set(entry.actor_id),
        action: Set(entry.action.to_owned()),
        target_type: Set(entry.target_type.to_owned()),
        target_id: Set(entry.target_id),
        ip: Set(entry.ip),
        detail: Set(entry.detail),
        unit_id: Set(entry.unit_id),
    }
    .insert(db)
    .await?;
    Ok(())
}

#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub actor: Option<Uuid>,
}

/// Admins read everything; supervisors the records placed in their subtree. Newest first.
pub async fn list(
    ctx: &AppContext,
    caller: &Caller,
    filter: AuditFilter,
    request: PageRequest,
) -> AppResult<Page<audit_log::Model>> {
    require(caller, Permission::ReadAudit)?;
    let mut select = audit_log::Entity::find();
    if let TicketScope::UnitSubtree(home) = ticket_scope(caller) {
        let path =
            grid_unit::Entity::find_by_id(home).one(&ctx.db).await?.map(|u| u.path).unwrap_or_else(|| "-".into());
        select = select.filter(
            audit_log::Column::UnitId.in_subquery(
                Query::select()
                    .column(grid_unit::Column::Id)
                    .from(grid_unit::Entity)
                    .and_where(grid_unit::Column::Path.starts_with(path))
                    .to_owned(),
            ),
        );
    }
    if let Some(action) = filter.action {
        select = select.filter(audit_log::Column::Action.eq(action));
    }
    if let Some(actor) = filter.actor {
        select = select.filter(audit_log::Column::ActorId.eq(actor));
    }
    Ok(page::fetch_ordered(&ctx.db, select, audit_log::Column::Id, |a| a.id, request, Order::NewestFirst).await?)
}
