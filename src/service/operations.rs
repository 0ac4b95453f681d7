//! What operators look at and tune: the escalation rules and the notification outbox.

use entities::enums::MailStatus;
use entities::{escalation_rule, notification};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, Set};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{found, require};
use crate::{
    context::AppContext,
    domain::{
        access::{Caller, Permission},
        escalation::Rule,
    },
    error::{AppError, AppResult},
    repo::page::{self, Page, PageRequest},
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleBody {
    /// acknowledge_breach, resolve_warning, resolve_breach, resolve_followup, third_return, bad_rating, …
    pub trigger: String,
    /// department, department_head, township_dispatcher, county_supervisor, city_supervisor
    pub notify: Vec<String>,
    /// supervise (督办) or listed (挂牌督办); absent opens no order.
    pub supervision_level: Option<String>,
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

fn check(body: &RuleBody) -> AppResult<()> {
    Rule::parse(&body.trigger, &body.notify, body.supervision_level.as_deref())
        .map(|_| ())
        .map_err(|m| AppError::invalid("rule", m))
}

pub async fn rules(ctx: &AppContext, caller: &Caller, request: PageRequest) -> AppResult<Page<escalation_rule::Model>> {
    require(caller, Permission::ReadRouting)?;
    Ok(page::fetch(&ctx.db, escalation_rule::Entity::find(), escalation_rule::Column::Id, |r| r.id, request).await?)
}

pub async fn create_rule(ctx: &AppContext, caller: &Caller, body: RuleBody) -> AppResult<escalation_rule::Model> {
    require(caller, Permission::Operate)?;
    check(&body)?;
    let now = ctx.clock.now();
    let rule = escalation_rule::ActiveModel {
        id: Set(Uuid::now_v7()),
        trigger: Set(body.trigger),
        notify: Set(json!(body.notify)),
        supervision_level: Set(body.supervision_level),
        active: Set(body.active),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&ctx.db)
    .await?;
    changed(ctx, caller, "created", &rule).await?;
    Ok(rule)
}

async fn changed(ctx: &AppContext, caller: &Caller, change: &str, rule: &escalation_rule::Model) -> AppResult<()> {
    let detail = json!({"change": change, "trigger": rule.trigger, "notify": rule.notify, "supervision_level": rule.supervision_level, "active": rule.active});
    super::audit::record(
        &ctx.db,
        super::audit::Entry::by(caller, "escalation_rule_changed", "escalation_rule", rule.id, detail),
        ctx.clock.now(),
    )
    .await
}

pub async fn replace_rule(
    ctx: &AppContext,
    caller: &Caller,
    id: Uuid,
    body: RuleBody,
) -> AppResult<escalation_rule::Model> {
    require(caller, Permission::Operate)?;
    check(&body)?;
    let mut row = found::<escalation_rule::Entity>(&ctx.db, id, "escalation rule").await?.into_active_model();
    row.trigger = Set(body.trigger);
    row.notify = Set(json!(body.notify));
    row.supervision_level = Set(body.supervision_level);
    row.active = Set(body.active);
    row.updated_at = Set(ctx.clock.now());
    let rule = row.update(&ctx.db).await?;
    changed(ctx, caller, "updated", &rule).await?;
    Ok(rule)
}

pub async fn delete_rule(ctx: &AppContext, caller: &Caller, id: Uuid) -> AppResult<()> {
    require(caller, Permission::Operate)?;
    let rule = found::<escalation_rule::Entity>(&ctx.db, id, "escalation rule").await?;
    escalation_rule::Entity::delete_by_id(id).exec(&ctx.db).await?;
    changed(ctx, caller, "deleted", &rule).await?;
    Ok(())
}

pub async fn notifications(
    ctx: &AppContext,
    caller: &Caller,
    status: Option<String>,
    request: PageRequest,
) -> AppResult<Page<notification::Model>> {
    require(caller, Permission::Operate)?;
    let mut select = notification::Entity::find();
    if let Some(status) = status {
        let status = <MailStatus as sea_orm::ActiveEnum>::try_from_value(&status)
            .map_err(|_| AppError::invalid("status", "pending, sent or dead"))?;
        select = select.filter(notification::Column::Status.eq(status));
    }

    Ok(page::fetch(&ctx.db, select, notification::Column::Id, |n| n.id, request).await?)
}
