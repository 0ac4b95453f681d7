//! Routing rules — (category, unit subtree) → primary department + co-handlers — and the
//! resolution that picks the most specific one: deepest unit first, then the exact category
//! before a rule for all categories.

use std::collections::HashMap;

use entities::{UnitLevel, category, department, grid_unit, routing_rule};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{found, nullable, referenced, require};
use crate::{
    context::AppContext,
    db::begin_write,
    domain::access::{Caller, Permission},
    error::{AppError, AppResult},
    repo::{
        self,
        grid_units::ancestry,
        page::{self, Page, PageRequest},
    },
};

const MAX_CO_HANDLERS: usize = 10;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRoutingRule {
    /// `null` or absent: the rule applies to every category.
    pub category_id: Option<Uuid>,
    /// The rule covers this unit's whole subtree.
    pub unit_id: Uuid,
    pub primary_department_id: Uuid,
    #[serde(default)]
    pub co_handler_department_ids: Vec<Uuid>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoutingRuleChanges {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Uuid>)]
    pub category_id: Option<Option<Uuid>>,
    pub unit_id: Option<Uuid>,
    pub primary_department_id: Option<Uuid>,
    pub co_handler_department_ids: Option<Vec<Uuid>>,
}

#[derive(Debug, Default, Clone)]
pub struct RoutingRuleFilter {
    pub category: Option<Uuid>,
    pub unit: Option<Uuid>,
    pub department: Option<Uuid>,
}

/// A rule with its co-handling departments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingRule {
    pub rule: routing_rule::Model,
    pub co_handler_department_ids: Vec<Uuid>,
}

/// Where a ticket of a category filed in a unit would go.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub category_id: Uuid,
    pub unit_id: Uuid,
    /// The winning rule; `None` leaves the ticket with the township dispatcher.
    pub rule_id: Option<Uuid>,
    pub primary_department_id: Option<Uuid>,
    pub co_handler_department_ids: Vec<Uuid>,
    /// The township whose dispatcher handles the ticket when no rule (or a manual re-route) applies.
    pub dispatcher_unit_id: Option<Uuid>,
    /// Every matching rule, most specific first.
    pub candidates: Vec<RoutingRule>,
}

pub async fn create(ctx: &AppContext, caller: &Caller, input: NewRoutingRule) -> AppResult<RoutingRule> {
    require(caller, Permission::ManageReferenceData)?;
    let txn = begin_write(&ctx.db).await?;
    let co_handlers = check_rule(
        &txn,
        input.category_id,
        input.unit_id,
        input.primary_department_id,
        &input.co_handler_department_ids,
    )
    .await?;
    let scope_key = scope_key(input.category_id, input.unit_id);
    ensure_scope_free(&txn, &scope_key, None).await?;
    let now = ctx.clock.now();
    let rule = routing_rule::ActiveModel {
        id: Set(Uuid::now_v7()),
        category_id: Set(input.category_id),
        unit_id: Set(input.unit_id),
        primary_department_id: Set(input.primary_department_id),
        scope_key: Set(scope_key),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    repo::routing_rules::replace_co_handlers(&txn, rule.id, &co_handlers).await?;
    let detail = serde_json::json!({"change": "created"});
    super::audit::record(
        &txn,
        super::audit::Entry::by(caller, "routing_rule_changed", "routing_rule", rule.id, detail),
        ctx.clock.now(),
    )
    .await?;
    txn.commit().await?;
    Ok(RoutingRule { rule, co_handler_department_ids: co_handlers })
}

pub async fn update(
    ctx: &AppContext,
    caller: &Caller,
    id: Uuid,
    changes: RoutingRuleChanges,
) -> AppResult<RoutingRule> {
    require(caller, Permission::ManageReferenceData)?;
    let txn = begin_write(&ctx.db).await?;
    let current =
        with_co_handlers(&txn, vec![found::<routing_rule::Entity>(&txn, id, "routing rule").await?]).await?.remove(0);
    let category_id = changes.category_id.unwrap_or(current.rule.category_id);
    let unit_id = changes.unit_id.unwrap_or(current.rule.unit_id);
    let primary = changes.primary_department_id.unwrap_or(current.rule.primary_department_id);
    let co_handlers = changes.co_handler_department_ids.unwrap_or(current.co_handler_department_ids);
    let co_handlers = check_rule(&txn, category_id, unit_id, primary, &co_handlers).await?;
    let scope_key = scope_key(category_id, unit_id);
    ensure_scope_free(&txn, &scope_key, Some(id)).await?;
    let mut row: routing_rule::ActiveModel = current.rule.into();
    row.category_id = Set(category_id);
    row.unit_id = Set(unit_id);
    row.primary_department_id = Set(primary);
    row.scope_key = Set(scope_key);
    row.updated_at = Set(ctx.clock.now());
    let rule = row.update(&txn).await?;
    repo::routing_rules::replace_co_handlers(&txn, id, &co_handlers).await?;
    let detail = serde_json::json!({"change": "updated"});
    super::audit::record(
        &txn,
        super::audit::Entry::by(caller, "routing_rule_changed", "routing_rule", id, detail),
        ctx.clock.now(),
    )
    .await?;
    txn.commit().await?;
    Ok(RoutingRule { rule, co_handler_department_ids: co_handlers })
}

pub async fn delete(ctx: &AppContext, caller: &Caller, id: Uuid) -> AppResult<()> {
    require(caller, Permission::ManageReferenceData)?;
    let txn = begin_write(&ctx.db).await?;
    found::<routing_rule::Entity>(&txn, id, "routing rule").await?;
    routing_rule::Entity::delete_by_id(id).exec(&txn).await?;
    let detail = serde_json::json!({"change": "deleted"});
    super::audit::record(
        &txn,
        super::audit::Entry::by(caller, "routing_rule_changed", "routing_rule", id, detail),
        ctx.clock.now(),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

pub async fn get(ctx: &AppContext, caller: &Caller, id: Uuid) -> AppResult<RoutingRule> {
    require(caller, Permission::ReadRouting)?;
    let rule = found::<routing_rule::Entity>(&ctx.db, id, "routing rule").await?;
    Ok(with_co_handlers(&ctx.db, vec![rule]).await?.remove(0))
}

pub async fn list(
    ctx: &AppContext,
    caller: &Caller,
    filter: RoutingRuleFilter,
    request: PageRequest,
) -> AppResult<Page<RoutingRule>> {
    require(caller, Permission::ReadRouting)?;
    let mut select = routing_rule::Entity::find();
    if let Some(category) = filter.category {
        select = select.filter(routing_rule::Column::CategoryId.eq(category));
    }
    if let Some(unit) = filter.unit {
        select = select.filter(routing_rule::Column::UnitId.eq(unit));
    }
    if let Some(department) = filter.department {
        select = select.filter(routing_rule::Column::PrimaryDepartmentId.eq(department));
    }
    let found = page::fetch(&ctx.db, select, routing_rule::Column::Id, |m| m.id, request).await?;
    let items = with_co_handlers(&ctx.db, found.items).await?;
    Ok(Page { items, next_cursor: found.next_cursor })
}

/// Resolves `category` and `unit`, each given as an id or a code.
pub async fn resolve(ctx: &AppContext, caller: &Caller, category: &str, unit: &str) -> AppResult<Resolution> {
    require(caller, Permission::ReadRouting)?;
    let category = match Uuid::parse_str(category) {
        Ok(id) => category::Entity::find_by_id(id).one(&ctx.db).await?,
        Err(_) => super::categories::by_code(&ctx.db, category).await?,
    }
    .ok_or_else(|| AppError::invalid("category", "no such category (give its id or code)"))?;
    let unit = match Uuid::parse_str(unit) {
        Ok(id) => grid_unit::Entity::find_by_id(id).one(&ctx.db).await?,
        Err(_) => super::grid_units::by_code(&ctx.db, unit).await?,
    }
    .ok_or_else(|| AppError::invalid("unit", "no such grid unit (give its id or code)"))?;
    resolve_for(&ctx.db, category.id, &unit).await
}

/// The routing decision for a ticket; used by the preview endpoint and by dispatch.
pub async fn resolve_for(
    db: &impl ConnectionTrait,
    category_id: Uuid,
    unit: &grid_unit::Model,
) -> AppResult<Resolution> {
    let ancestors = ancestry(&unit.path);
    let depth_of: HashMap<Uuid, usize> = ancestors.iter().enumerate().map(|(depth, id)| (*id, depth)).collect();
    let mut rules = repo::routing_rules::candidates(db, category_id, &ancestors).await?;
    rules.sort_by_key(|rule| {
        let depth = depth_of.get(&rule.unit_id).copied().unwrap_or_default();
        (std::cmp::Reverse(depth), rule.category_id.is_none())
    });
    let candidates = with_co_handlers(db, rules).await?;

    let department_ids: Vec<Uuid> = candidates
        .iter()
        .flat_map(|c| std::iter::once(c.rule.primary_department_id).chain(c.co_handler_department_ids.iter().copied()))
        .collect();
    let active: HashMap<Uuid, bool> = department::Entity::find()
        .filter(department::Column::Id.is_in(department_ids))
        .all(db)
        .await?
        .into_iter()
        .map(|d| (d.id, d.active))
        .collect();
    let is_active = |id: &Uuid| active.get(id).copied().unwrap_or(false);
    // A rule whose primary department has been switched off falls through to the next one.
    let winner = candidates.iter().find(|c| is_active(&c.rule.primary_department_id));

    let township = grid_unit::Entity::find()
        .filter(grid_unit::Column::Id.is_in(ancestors.iter().copied()))
        .filter(grid_unit::Column::Level.eq(UnitLevel::Township))
        .one(db)
        .await?;

    Ok(Resolution {
        category_id,
        unit_id: unit.id,
        rule_id: winner.map(|w| w.rule.id),
        primary_department_id: winner.map(|w| w.rule.primary_department_id),
        co_handler_department_ids: winner
            .map(|w| w.co_handler_department_ids.iter().copied().filter(|id| is_active(id)).collect())
            .unwrap_or_default(),
        dispatcher_unit_id: township.map(|t| t.id),
        candidates,
    })
}

async fn with_co_handlers(db: &impl ConnectionTrait, rules: Vec<routing_rule::Model>) -> AppResult<Vec<RoutingRule>> {
    let ids: Vec<Uuid> = rules.iter().map(|r| r.id).collect();
    let mut by_rule: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for row in repo::routing_rules::co_handlers(db, &ids).await? {
        by_rule.entry(row.rule_id).or_default().push(row.department_id);
    }
    Ok(rules
        .into_iter()
        .map(|rule| RoutingRule { co_handler_department_ids: by_rule.remove(&rule.id).unwrap_or_default(), rule })
        .collect())
}

/// Checks every reference of a rule; returns the co-handlers deduplicated.
async fn check_rule(
    db: &impl ConnectionTrait,
    category_id: Option<Uuid>,
    unit_id: Uuid,
    primary: Uuid,
    co_handlers: &[Uuid],
) -> AppResult<Vec<Uuid>> {
    if let Some(category_id) = category_id {
        referenced::<category::Entity>(db, "category_id", category_id, "category").await?;
    }
    referenced::<grid_unit::Entity>(db, "unit_id", unit_id, "grid unit").await?;
    referenced::<department::Entity>(db, "primary_department_id", primary, "department").await?;
    let mut unique: Vec<Uuid> = Vec::with_capacity(co_handlers.len());
    for &id in co_handlers {
        if !unique.contains(&id) {
            unique.push(id);
        }
    }
    if unique.len() > MAX_CO_HANDLERS {
        return Err(AppError::invalid(
            "co_handler_department_ids",
            format!("at most {MAX_CO_HANDLERS} co-handling departments"),
        ));
    }
    if unique.contains(&primary) {
        return Err(AppError::invalid(
            "co_handler_department_ids",
            "the primary department cannot also be a co-handler",
        ));
    }
    for &id in &unique {
        referenced::<department::Entity>(db, "co_handler_department_ids", id, "department").await?;
    }
    Ok(unique)
}

fn scope_key(category_id: Option<Uuid>, unit_id: Uuid) -> String {
    match category_id {
        Some(category) => format!("{category}:{unit_id}"),
        None => format!("*:{unit_id}"),
    }
}

async fn ensure_scope_free(db: &impl ConnectionTrait, scope_key: &str, except: Option<Uuid>) -> AppResult<()> {
    match routing_rule::Entity::find().filter(routing_rule::Column::ScopeKey.eq(scope_key)).one(db).await? {
        Some(existing) if Some(existing.id) != except => Err(AppError::Conflict(format!(
            "routing rule {} already covers this category and unit; change that one instead",
            existing.id
        ))),
        _ => Ok(()),
    }
}
