//! 每月一题: the recurring problem a supervisor picks for a month — a category at a place —
//! from the hotspot report. A topic's tickets are that category's tickets filed in the place's
//! subtree in that month (cancelled and merged ones not), listed and counted here and marked
//! in the hotspot report.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use entities::{category, grid_unit, ticket, topic};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, SqlErr,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    coverage::{period, tickets_condition, unit_in_scope},
    referenced, require,
    tickets::{Viewer, long_text},
};
use crate::{
    context::AppContext,
    domain::{
        access::{Caller, Permission},
        report::rate,
        ticket::TicketStatus,
        validate::{FieldErrors, Message},
    },
    error::{AppError, AppResult, Refusal},
    repo::tickets::Scope,
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTopic {
    pub title: String,
    pub category_id: Uuid,
    /// The place: a grid, community or township in your jurisdiction.
    pub unit_id: Uuid,
    /// The month, `YYYY-MM`.
    pub period: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Topic {
    pub id: Uuid,
    pub title: String,
    pub category_id: Uuid,
    pub category_name: String,
    pub unit_id: Uuid,
    pub unit_name: String,
    pub period: String,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    /// The topic's tickets (see the module doc), in your jurisdiction.
    pub tickets: i64,
    /// Of those, closed now.
    pub closed: i64,
    /// Of those, rated (latest rating) / rated ≥ 3.
    pub rated: i64,
    pub satisfied: i64,
    /// 满意率 = satisfied ÷ rated
    pub satisfaction_rate: Option<f64>,
    /// Duplicates of the topic merged into another ticket.
    pub merged: i64,
}

/// One of a topic's tickets, in brief; the whole ticket is at `/tickets/{id}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TopicTicket {
    pub id: Uuid,
    pub number: String,
    pub title: String,
    pub status: String,
    pub unit_id: Uuid,
    pub created_at: DateTime<Utc>,
}

/// `YYYY-MM` → its first and last day.
pub fn parse_month(text: &str) -> Option<(NaiveDate, NaiveDate)> {
    let (year, month) = text.split_once('-')?;
    if year.len() != 4 || month.len() != 2 {
        return None;
    }
    let first = NaiveDate::from_ymd_opt(year.parse().ok()?, month.parse().ok()?, 1)?;
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)?
    };
    Some((first, next.pred_opt()?))
}

/// The months (`YYYY-MM`) from `from`'s to `to`'s.
pub fn months_between(from: NaiveDate, to: NaiveDate) -> Vec<String> {
    let mut months = Vec::new();
    let (mut year, mut month) = (from.year(), from.month());
    while (year, month) <= (to.year(), to.month()) && months.len() < 1200 {
        months.push(format!("{year:04}-{month:02}"));
        (year, month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    }
    months
}

pub async fn create(ctx: &AppContext, caller: &Caller, input: NewTopic) -> AppResult<Topic> {
    require(caller, Permission::Supervise)?;
    let mut errors = FieldErrors::new();
    let title = long_text(&mut errors, "title", &input.title, 200);
    let month = parse_month(&input.period);
    if month.is_none() {
        errors.add("period", Message::said("应为 YYYY-MM 格式的月份", "must be a month, YYYY-MM"));
    }
    errors.into_result()?;
    if let Some((first, last)) = month {
        period(ctx, first, last).map_err(|_| AppError::invalid("period", "must lie within 100 years of today"))?;
    }
    let category: category::Model =
        referenced::<category::Entity>(&ctx.db, "category_id", input.category_id, "category").await?;
    let unit: grid_unit::Model =
        referenced::<grid_unit::Entity>(&ctx.db, "unit_id", input.unit_id, "grid unit").await?;
    let scope = Viewer::of(&ctx.db, caller).await?.scope();
    if !super::reports::unit_within(&scope, &unit.path) {
        return Err(AppError::invalid(
            "unit_id",
            Message::said("该单位不在您的辖区内", "this unit is outside your jurisdiction"),
        ));
    }
    let row = topic::ActiveModel {
        id: Set(Uuid::now_v7()),
        title: Set(title),
        category_id: Set(category.id),
        unit_id: Set(unit.id),
        period: Set(input.period.clone()),
        created_by: Set(caller.user_id),
        created_at: Set(ctx.clock.now()),
    };
    let saved = row.insert(&ctx.db).await.map_err(|err| match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => AppError::refused(
            Refusal::Conflict,
            format!("{} 的 {} 已是 {} 的每月一题", unit.name, category.name, input.period),
            format!("{} at {} is already a topic of {}", category.name, unit.name, input.period),
        ),
        _ => err.into(),
    })?;
    describe(ctx, caller, saved).await
}

/// Topics of places in the caller's jurisdiction, newest month first; `period` narrows to one month.
pub async fn list(ctx: &AppContext, caller: &Caller, month: Option<String>) -> AppResult<Vec<Topic>> {
    require(caller, Permission::ReadReports)?;
    let mut select = topic::Entity::find().order_by_desc(topic::Column::Period).order_by_desc(topic::Column::Id);
    if let Some(month) = month {
        if parse_month(&month).is_none() {
            return Err(AppError::invalid("period", "must be a month, YYYY-MM"));
        }
        select = select.filter(topic::Column::Period.eq(month));
    }
    let scope = Viewer::of(&ctx.db, caller).await?.scope();
    let units = super::coverage::Units::load(&ctx.db).await?;
    let mut out = Vec::new();
    for topic in select.limit(500).all(&ctx.db).await? {
        let path = units.0.get(&topic.unit_id).map(|u| u.path.clone()).unwrap_or_default();
        if unit_in_scope(&scope, None, &path) {
            out.push(describe(ctx, caller, topic).await?);
        }
    }
    Ok(out)
}

async fn visible_topic(ctx: &AppContext, caller: &Caller, id: Uuid) -> AppResult<(topic::Model, Scope, String)> {
    require(caller, Permission::ReadReports)?;
    let not_found = || AppError::refused(Refusal::NotFound, "未找到该每月一题", "topic not found");
    let topic = topic::Entity::find_by_id(id).one(&ctx.db).await?.ok_or_else(not_found)?;
    let path = grid_unit::Entity::find_by_id(topic.unit_id).one(&ctx.db).await?.map(|u| u.path).unwrap_or_default();
    let scope = Viewer::of(&ctx.db, caller).await?.scope();
    if !unit_in_scope(&scope, None, &path) {
        return Err(not_found());
    }
    Ok((topic, scope, path))
}

pub async fn get(ctx: &AppContext, caller: &Caller, id: Uuid) -> AppResult<Topic> {
    let (topic, ..) = visible_topic(ctx, caller, id).await?;
    describe(ctx, caller, topic).await
}

/// The condition of a topic's tickets, merged ones included (they are counted apart).
async fn topic_tickets(ctx: &AppContext, scope: &Scope, topic: &topic::Model, path: &str) -> AppResult<Condition> {
    let (first, last) = parse_month(&topic.period).ok_or_else(|| AppError::Internal("stored topic period".into()))?;
    let (start, end) = period(ctx, first, last)?;
    Ok(Condition::all()
        .add(tickets_condition(scope, Some(path)))
        .add(ticket::Column::CategoryId.eq(topic.category_id))
        .add(ticket::Column::Status.ne(TicketStatus::Cancelled.to_string()))
        .add(ticket::Column::CreatedAt.gte(start))
        .add(ticket::Column::CreatedAt.lt(end)))
}

async fn describe(ctx: &AppContext, caller: &Caller, topic: topic::Model) -> AppResult<Topic> {
    let db = &ctx.db;
    let unit = grid_unit::Entity::find_by_id(topic.unit_id).one(db).await?;
    let category = category::Entity::find_by_id(topic.category_id).one(db).await?;
    let scope = Viewer::of(db, caller).await?.scope();
    let path = unit.as_ref().map(|u| u.path.clone()).unwrap_or_default();
    let rows: Vec<(Uuid, String)> = ticket::Entity::find()
        .select_only()
        .columns([ticket::Column::Id, ticket::Column::Status])
        .filter(topic_tickets(ctx, &scope, &topic, &path).await?)
        .into_tuple()
        .all(db)
        .await?;
    let merged_status = TicketStatus::Merged.to_string();
    let counted: Vec<&(Uuid, String)> = rows.iter().filter(|(_, status)| *status != merged_status).collect();
    let ids: Vec<Uuid> = counted.iter().map(|(id, _)| *id).collect();
    let ratings = crate::repo::tickets::latest_ratings(db, &ids).await?;
    let satisfied = ratings.values().filter(|r| r.score >= 3).count() as i64;
    Ok(Topic {
        id: topic.id,
        title: topic.title,
        category_id: topic.category_id,
        category_name: category.map(|c| c.name).unwrap_or_default(),
        unit_id: topic.unit_id,
        unit_name: unit.map(|u| u.name).unwrap_or_default(),
        period: topic.period,
        created_by: topic.created_by,
        created_at: topic.created_at,
        tickets: counted.len() as i64,
        closed: counted.iter().filter(|(_, s)| *s == TicketStatus::Closed.to_string()).count() as i64,
        rated: ratings.len() as i64,
        satisfied,
        satisfaction_rate: rate(satisfied, ratings.len() as i64),
        merged: (rows.len() - counted.len()) as i64,
    })
}

/// The topic's tickets (merged duplicates not), newest first, at most `limit`.
pub async fn tickets(ctx: &AppContext, caller: &Caller, id: Uuid, limit: u64) -> AppResult<Vec<TopicTicket>> {
    let (topic, scope, path) = visible_topic(ctx, caller, id).await?;
    Ok(ticket::Entity::find()
        .filter(topic_tickets(ctx, &scope, &topic, &path).await?)
        .filter(ticket::Column::Status.ne(TicketStatus::Merged.to_string()))
        .order_by_desc(ticket::Column::CreatedAt)
        .order_by_desc(ticket::Column::Id)
        .limit(limit)
        .all(&ctx.db)
        .await?
        .into_iter()
        .map(|t| TopicTicket {
            id: t.id,
            number: t.number,
            title: t.title,
            status: t.status,
            unit_id: t.unit_id,
            created_at: t.created_at,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).expect("date");
        assert_eq!(parse_month("2026-12"), Some((d(2026, 12, 1), d(2026, 12, 31))));
        assert_eq!(parse_month("2026-02"), Some((d(2026, 2, 1), d(2026, 2, 28))));
        for bad in ["2026-13", "2026-1", "26-01", "2026/01", "", "2026-00"] {
            assert_eq!(parse_month(bad), None, "{bad}");
        }
        assert_eq!(months_between(d(2026, 11, 30), d(2027, 1, 2)), ["2026-11", "2026-12", "2027-01"]);
    }
}
