//! Closure: 好差评 and auto-close after the rating window.

use super::*;
use entities::{rating, ticket};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, Set};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::service::require;
use crate::{
    context::AppContext,
    db::begin_write,
    domain::{
        access::{Caller, Permission},
        escalation::Trigger,
        sla::ClockKind,
        ticket::{DispatchAction, DispatchRole, DispatchStatus, TicketAction, TicketStatus, event, is_bad_rating},
        validate::{FieldErrors, Message},
    },
    error::{AppError, AppResult, Refusal},
    repo::{self},
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RatingRequest {
    /// 5 非常满意 · 4 满意 · 3 基本满意 · 2 不满意 · 1 非常不满意
    /// (any whole number is read, so -1 or 300 get the same clear answer as 6).
    pub score: i64,
    pub comment: Option<String>,
}

// ---- closure ---------------------------------------------------------------------------------

/// 好差评 on the resident's behalf: ≥ 3 closes the ticket, ≤ 2 reopens it for rectification
/// by the same departments.
pub async fn rate(
    ctx: &AppContext,
    caller: &Caller,
    id: Uuid,
    if_match: Option<i32>,
    request: RatingRequest,
) -> AppResult<TicketView> {
    require(caller, Permission::RateTicket)?;
    let mut errors = FieldErrors::new();
    let score = match u8::try_from(request.score) {
        Ok(score) if (1..=5).contains(&score) => score,
        _ => {
            errors.add(
                "score",
                Message::said("应为 1（非常不满意）到 5（非常满意）", "must be 1 (非常不满意) to 5 (非常满意)"),
            );
            0
        }
    };
    let comment = request.comment.as_deref().map(|c| long_text(&mut errors, "comment", c, 500));
    errors.into_result()?;
    let viewer = Viewer::of(&ctx.db, caller).await?;
    let Locked { txn, ticket, dispatches, now } = lock_in_scope(ctx, &viewer, id, if_match).await?;
    if !crate::domain::access::may_rate(caller, ticket.filed_by) {
        return Err(AppError::refused(
            Refusal::Forbidden,
            "网格员只能为自己提交的工单登记评价",
            "a grid worker rates only the tickets they filed",
        ));
    }
    let bad = is_bad_rating(score);
    let status = next_status(&ticket, if bad { TicketAction::Reopen } else { TicketAction::RateSatisfied })?;
    rating::ActiveModel {
        id: Set(Uuid::now_v7()),
        ticket_id: Set(id),
        score: Set(i16::from(score)),
        comment: Set(comment.clone()),
        rated_by: Set(caller.user_id),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let actor = Some(caller.user_id);
    repo::tickets::record_event(&txn, id, None, event::RATED, actor, now, json!({"score": score, "comment": comment}))
        .await?;
    let mut row = ticket.clone().into_active_model();
    row.status = Set(status.to_string());
    row.rating_due_at = Set(None);
    if bad {
        // Rectification (整改): the primary departments' resolved work is open again.
        let mut reopened = Vec::new();
        for resolved in dispatches
            .iter()
            .filter(|d| d.role == DispatchRole::Primary.as_str() && d.status == DispatchStatus::Resolved.to_string())
        {
            let mut dispatch_row = resolved.clone().into_active_model();
            dispatch_row.status = Set(next_dispatch_status(resolved, DispatchAction::Reopen)?.to_string());
            dispatch_row.resolved_at = Set(None);
            dispatch_row.updated_at = Set(now);
            dispatch_row.update(&txn).await?;
            reopened.push(resolved.id);
        }
        let payload = json!({"score": score, "note": "差评整改：请原承办部门重新办理", "dispatch_ids": reopened});
        repo::tickets::record_event(&txn, id, None, event::REOPENED, actor, now, payload).await?;
        row.resolved_at = Set(None);
        crate::service::sla::start(ctx, &txn, &ticket, None, ClockKind::Rectify, now).await?;
        let cause = crate::service::escalation::Cause {
            trigger: Trigger::BadRating,
            ticket: &ticket,
            clock_id: None,
            dispatch: None,
            deadline: None,
        };
        crate::service::escalation::fire(ctx, &txn, &cause, now).await?;
    } else {
        repo::tickets::record_event(&txn, id, None, event::CLOSED, actor, now, json!({"score": score})).await?;
        row.closed_at = Set(Some(now));
        end_open_work(&txn, id, &dispatches, now).await?;
    }
    commit(ctx, txn, &viewer, row, &ticket, now).await
}

/// Closes resolved tickets whose rating window has passed without a rating; returns how many.
/// Due tickets come from an index on (status, rating_due_at), a bounded batch at a time.
pub async fn auto_close_due(ctx: &AppContext, limit: u64) -> AppResult<usize> {
    let now = ctx.clock.now();
    let due: Vec<Uuid> = ticket::Entity::find()
        .select_only()
        .column(ticket::Column::Id)
        .filter(ticket::Column::Status.eq(TicketStatus::Resolved.to_string()))
        .filter(ticket::Column::RatingDueAt.lte(now))
        .order_by_asc(ticket::Column::RatingDueAt)
        .limit(limit)
        .into_tuple()
        .all(&ctx.db)
        .await?;
    let mut closed = 0;
    for id in due {
        let txn = begin_write(&ctx.db).await?;
        let Some(ticket) = repo::tickets::lock(&txn, id).await? else {
            continue;
        };
        // Rated or changed since the query: not ours to close any more.
        let still_due =
            ticket.status == TicketStatus::Resolved.to_string() && ticket.rating_due_at.is_some_and(|due| due <= now);
        if !still_due {
            continue;
        }
        let status = next_status(&ticket, TicketAction::AutoClose)?;
        let payload = json!({"clock": "rating_window", "due_at": ticket.rating_due_at});
        repo::tickets::record_event(&txn, id, None, event::AUTO_CLOSED, None, now, payload).await?;
        let dispatches = repo::tickets::dispatches_of(&txn, &[id]).await?;
        end_open_work(&txn, id, &dispatches, now).await?;
        let mut row = ticket.clone().into_active_model();
        row.status = Set(status.to_string());
        row.closed_at = Set(Some(now));
        row.rating_due_at = Set(None);
        save(&txn, row, &ticket, now).await?;
        txn.commit().await?;
        closed += 1;
    }
    Ok(closed)
}
