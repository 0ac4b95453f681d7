//! 并单: the dispatcher merges a duplicate report into the ticket that carries the work on
//! (the survivor). The duplicate ends as `merged` — its dispatches, clocks and supervision
//! orders end as on closing — both timelines say so, and the duplicate's filer (and whoever
//! followed the duplicate) may follow the survivor from then on.

use super::*;
use entities::{ticket, ticket_follower, ticket_merge};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, Set, sea_query::OnConflict};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::service::require;
use crate::{
    context::AppContext,
    db::begin_write,
    domain::{
        access::{Caller, Permission, may_see_ticket},
        ticket::{TicketAction, TicketStatus, event},
        validate::{FieldErrors, Message},
    },
    error::{AppError, AppResult, Refusal},
    repo,
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    /// The ticket that carries on (the survivor).
    pub into: Uuid,
    pub reason: String,
    /// Say `true` to merge tickets of different categories; without it that is refused.
    #[serde(default)]
    pub across_categories: bool,
}

/// Merges ticket `id` (the duplicate) into `request.into`; returns the duplicate as the
/// caller now sees it.
pub async fn merge(
    ctx: &AppContext,
    caller: &Caller,
    id: Uuid,
    if_match: Option<i32>,
    request: MergeRequest,
) -> AppResult<TicketView> {
    require(caller, Permission::DispatchTicket)?;
    let mut errors = FieldErrors::new();
    let reason = long_text(&mut errors, "reason", &request.reason, 500);
    if request.into == id {
        errors.add("into", Message::said("不能将工单合并到它自己", "a ticket cannot be merged into itself"));
    }
    errors.into_result()?;
    let viewer = Viewer::of(&ctx.db, caller).await?;
    let txn = begin_write(&ctx.db).await?;
    // Both rows locked, the lower id first, so two merges of the same pair in opposite
    // directions queue instead of deadlocking.
    let (first, second) = if id < request.into { (id, request.into) } else { (request.into, id) };
    let a = repo::tickets::lock(&txn, first).await?;
    let b = repo::tickets::lock(&txn, second).await?;
    let (duplicate, survivor) = if first == id { (a, b) } else { (b, a) };
    let now = ctx.clock.now();

    let visible = |t: &ticket::Model, dispatches: &[entities::dispatch::Model], path: &str, followed: &[Uuid]| {
        may_see_ticket(caller, &viewer.facts(t, path, dispatches, followed))
    };
    let duplicate = duplicate.ok_or_else(ticket_not_found)?;
    let dispatches = repo::tickets::dispatches_of(&txn, &[duplicate.id]).await?;
    let paths = repo::tickets::unit_paths(&txn, &[duplicate.unit_id]).await?;
    let path = paths.get(&duplicate.unit_id).map(String::as_str).unwrap_or_default();
    let followed = viewer.followed_among(&txn, &[(&duplicate, path)]).await?;
    if !visible(&duplicate, &dispatches, path, &followed) {
        return Err(ticket_not_found());
    }
    if let Some(expected) = if_match
        && expected != duplicate.version
    {
        let now = duplicate.version;
        return Err(AppError::refused(
            Refusal::PreconditionFailed,
            format!("工单已被他人修改（现为第 {now} 版，If-Match 为第 {expected} 版），请刷新后重试"),
            format!("the ticket changed (version {now} now, {expected} in If-Match); reload it and try again"),
        ));
    }
    let no_survivor = || {
        AppError::invalid(
            "into",
            Message::said(
                format!("您的辖区内没有编号为 {} 的工单", request.into),
                format!("no ticket {} in your jurisdiction", request.into),
            ),
        )
    };
    let survivor = survivor.ok_or_else(no_survivor)?;
    let survivor_dispatches = repo::tickets::dispatches_of(&txn, &[survivor.id]).await?;
    let survivor_paths = repo::tickets::unit_paths(&txn, &[survivor.unit_id]).await?;
    let survivor_path = survivor_paths.get(&survivor.unit_id).map(String::as_str).unwrap_or_default();
    let followed = viewer.followed_among(&txn, &[(&survivor, survivor_path)]).await?;
    if !visible(&survivor, &survivor_dispatches, survivor_path, &followed) {
        return Err(no_survivor());
    }
    let survivor_status = TicketStatus::parse(&survivor.status)
        .ok_or_else(|| AppError::Internal(format!("unknown ticket status {}", survivor.status)))?;
    if survivor_status.is_terminal() {
        let number = &survivor.number;
        return Err(AppError::refused(
            Refusal::Conflict,
            format!("工单 {number} 已结束（{survivor_status}），不能作为合并目标"),
            format!("ticket {number} has ended ({survivor_status}); nothing can be merged into it"),
        ));
    }
    let status = next_status(&duplicate, TicketAction::Merge)?;
    if duplicate.category_id != survivor.category_id && !request.across_categories {
        return Err(AppError::invalid(
            "across_categories",
            Message::said(
                format!(
                    "工单 {} 与 {} 的类别不同；确需合并请传 across_categories: true",
                    duplicate.number, survivor.number
                ),
                format!(
                    "tickets {} and {} are of different categories; send across_categories: true to merge them anyway",
                    duplicate.number, survivor.number
                ),
            ),
        ));
    }
    let across = duplicate.category_id != survivor.category_id;

    let actor = Some(caller.user_id);
    ticket_merge::ActiveModel {
        duplicate_id: Set(duplicate.id),
        survivor_id: Set(survivor.id),
        reason: Set(reason.clone()),
        across_categories: Set(across),
        merged_by: Set(caller.user_id),
        merged_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let payload =
        json!({"into": survivor.id, "into_number": survivor.number, "reason": reason, "across_categories": across});
    repo::tickets::record_event(&txn, duplicate.id, None, event::MERGED, actor, now, payload).await?;
    let payload = json!({"duplicate_id": duplicate.id, "duplicate_number": duplicate.number, "reason": reason, "across_categories": across});
    repo::tickets::record_event(&txn, survivor.id, None, event::DUPLICATE_MERGED, actor, now, payload).await?;
    end_open_work(&txn, duplicate.id, &dispatches, now).await?;

    // The duplicate's filer, and whoever followed the duplicate, follow the survivor.
    let mut followers: Vec<Uuid> = ticket_follower::Entity::find()
        .filter(ticket_follower::Column::TicketId.eq(duplicate.id))
        .all(&txn)
        .await?
        .into_iter()
        .map(|f| f.user_id)
        .collect();
    followers.push(duplicate.filed_by);
    followers.sort_unstable();
    followers.dedup();
    for user_id in followers.into_iter().filter(|u| *u != survivor.filed_by) {
        ticket_follower::Entity::insert(ticket_follower::ActiveModel {
            ticket_id: Set(survivor.id),
            user_id: Set(user_id),
            created_at: Set(now),
        })
        .on_conflict(
            OnConflict::columns([ticket_follower::Column::TicketId, ticket_follower::Column::UserId])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
    }

    // The survivor's version moves too: its timeline changed.
    save(&txn, survivor.clone().into_active_model(), &survivor, now).await?;
    let mut row = duplicate.clone().into_active_model();
    row.status = Set(status.to_string());
    row.closed_at = Set(Some(now));
    row.rating_due_at = Set(None);
    commit(ctx, txn, &viewer, row, &duplicate, now).await
}

/// The ticket a merged duplicate lives on in, if it was merged: `(id, number)`.
pub async fn merged_into(db: &impl sea_orm::ConnectionTrait, duplicate: Uuid) -> AppResult<Option<(Uuid, String)>> {
    let Some(merge) = ticket_merge::Entity::find_by_id(duplicate).one(db).await? else {
        return Ok(None);
    };
    Ok(ticket::Entity::find_by_id(merge.survivor_id).one(db).await?.map(|t| (t.id, t.number)))
}
