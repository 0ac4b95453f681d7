//! Ticket queries: the row lock that serialises changes to one ticket, the number counter,
//! jurisdiction filters, the timeline and batch loads for listings.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entities::{dispatch, grid_unit, rating, ticket, ticket_counter, ticket_event, ticket_follower};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait, ExprTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
    sea_query::{Expr, LockType, OnConflict, Query},
};
use serde_json::Value;
use uuid::Uuid;

/// Loads a ticket for change. On PostgreSQL the row stays locked until the transaction ends,
/// so concurrent changes to one ticket queue instead of overwriting each other; SQLite's
/// write transaction already excludes every other writer.
///
/// The lock is `FOR NO KEY UPDATE`, not `FOR UPDATE`: rows that merely point at the ticket
/// (events, supervision orders, escalations) take `FOR KEY SHARE` on it through their
/// foreign key, which `FOR UPDATE` would block. The sweeper writes such rows while holding
/// clocks that a ticket change then waits for, so `FOR UPDATE` deadlocked the two.
pub async fn lock(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<ticket::Model>, DbErr> {
    let mut select = ticket::Entity::find_by_id(id);
    if db.get_database_backend() == DbBackend::Postgres {
        select = select.lock(LockType::NoKeyUpdate);
    }
    select.one(db).await
}

/// The next number of `year`. The counter row's lock serialises concurrent filings, and a
/// rolled-back filing gives its number back, so numbers stay unique and nearly gap-free.
pub async fn next_number(db: &impl ConnectionTrait, year: i32) -> Result<i64, DbErr> {
    ticket_counter::Entity::insert(ticket_counter::ActiveModel { year: Set(year), last: Set(0) })
        .on_conflict(OnConflict::column(ticket_counter::Column::Year).do_nothing().to_owned())
        .exec_without_returning(db)
        .await?;
    ticket_counter::Entity::update_many()
        .col_expr(ticket_counter::Column::Last, Expr::col(ticket_counter::Column::Last).add(1))
        .filter(ticket_counter::Column::Year.eq(year))
        .exec(db)
        .await?;
    let counter = ticket_counter::Entity::find_by_id(year)
        .one(db)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("ticket counter {year}")))?;
    Ok(counter.last)
}

/// A jurisdiction resolved to what SQL needs: subtree path prefixes instead of unit ids.
#[derive(Debug, Clone)]
pub enum Scope {
    Everything,
    UnitPath(String),
    FiledByOrUnitPath { user_id: Uuid, path: String },
    Department(Uuid),
    Nothing,
}

pub fn scope_condition(scope: &Scope) -> Condition {
    match scope {
        Scope::Everything => Condition::all(),
        Scope::UnitPath(path) => Condition::all().add(in_unit_subtree(path)),
        Scope::FiledByOrUnitPath { user_id, path } => Condition::any()
            .add(ticket::Column::FiledBy.eq(*user_id))
            .add(in_unit_subtree(path))
            .add(followed_by(*user_id)),
        Scope::Department(department) => Condition::all().add(
            ticket::Column::Id.in_subquery(
                Query::select()
                    .column(dispatch::Column::TicketId)
                    .from(dispatch::Entity)
                    .and_where(dispatch::Column::DepartmentId.eq(*department))
                    .to_owned(),
            ),
        ),
        Scope::Nothing => Condition::all().add(Expr::cust("1 = 0")),
    }
}

/// The ids of the tickets a scope covers, as a subquery for rows that hang off tickets.
pub fn ids_in_scope(scope: &Scope) -> sea_orm::sea_query::SelectStatement {
    Query::select().column(ticket::Column::Id).from(ticket::Entity).cond_where(scope_condition(scope)).to_owned()
}

/// Tickets the user follows (the survivors of duplicates they filed).
pub fn followed_by(user_id: Uuid) -> sea_orm::sea_query::SimpleExpr {
    ticket::Column::Id.in_subquery(
        Query::select()
            .column(ticket_follower::Column::TicketId)
            .from(ticket_follower::Entity)
            .and_where(ticket_follower::Column::UserId.eq(user_id))
            .to_owned(),
    )
}

/// The ids of the tickets `user_id` follows.
pub async fn followed_ids(db: &impl ConnectionTrait, user_id: Uuid) -> Result<Vec<Uuid>, DbErr> {
    ticket_follower::Entity::find()
        .select_only()
        .column(ticket_follower::Column::TicketId)
        .filter(ticket_follower::Column::UserId.eq(user_id))
        .into_tuple()
        .all(db)
        .await
}

/// Tickets filed anywhere in the subtree whose stored path starts with `path`.
pub fn in_unit_subtree(path: &str) -> sea_orm::sea_query::SimpleExpr {
    ticket::Column::UnitId.in_subquery(
        Query::select()
            .column(grid_unit::Column::Id)
            .from(grid_unit::Entity)
            .and_where(grid_unit::Column::Path.starts_with(path))
            .to_owned(),
    )
}

pub async fn record_event(
    db: &impl ConnectionTrait,
    ticket_id: Uuid,
    dispatch_id: Option<Uuid>,
    kind: &str,
    actor_id: Option<Uuid>,
    at: DateTime<Utc>,
    payload: Value,
) -> Result<ticket_event::Model, DbErr> {
    let event = ticket_event::ActiveModel {
        id: Set(Uuid::now_v7()),
        ticket_id: Set(ticket_id),
        dispatch_id: Set(dispatch_id),
        kind: Set(kind.to_owned()),
        actor_id: Set(actor_id),
        at: Set(at),
        payload: Set(payload),
    }
    .insert(db)
    .await?;
    // Webhook outbox rows and the live streams' notice, in the event's own transaction.
    super::push::after_event(db, &event).await?;
    Ok(event)
}

pub async fn dispatches_of(db: &impl ConnectionTrait, ticket_ids: &[Uuid]) -> Result<Vec<dispatch::Model>, DbErr> {
    dispatch::Entity::find()
        .filter(dispatch::Column::TicketId.is_in(ticket_ids.iter().copied()))
        .order_by_asc(dispatch::Column::Id)
        .all(db)
        .await
}

/// The most recent rating of each ticket.
pub async fn latest_ratings(
    db: &impl ConnectionTrait,
    ticket_ids: &[Uuid],
) -> Result<HashMap<Uuid, rating::Model>, DbErr> {
    let mut latest = HashMap::new();
    for rating in rating::Entity::find()
        .filter(rating::Column::TicketId.is_in(ticket_ids.iter().copied()))
        .order_by_asc(rating::Column::Id)
        .all(db)
        .await?
    {
        latest.insert(rating.ticket_id, rating);
    }
    Ok(latest)
}

pub async fn unit_paths(db: &impl ConnectionTrait, unit_ids: &[Uuid]) -> Result<HashMap<Uuid, String>, DbErr> {
    Ok(grid_unit::Entity::find()
        .filter(grid_unit::Column::Id.is_in(unit_ids.iter().copied()))
        .all(db)
        .await?
        .into_iter()
        .map(|u| (u.id, u.path))
        .collect())
}
