//! Reading tickets in few round trips: the tickets themselves with their unit's path (one
//! statement), then everything hanging off them — dispatches with their department's name,
//! SLA clocks, ratings and attached uploads — in one more: a `UNION ALL` of four branches that
//! share one column list (`d_…`, `c_…`, `r_…`, `u_…`). Each branch fills its own columns and
//! leaves the others as typed NULLs; the ids are the statement's only values, so PostgreSQL
//! plans it once per connection. A summary list reads only the running clocks instead.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use chrono::{DateTime, Utc};
use entities::{department, dispatch, grid_unit, rating, sla_clock, ticket, upload};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, ExprTrait, FromQueryResult, IdenStatic, Iterable,
    JoinType, QueryFilter, QueryOrder, QueryResult, QuerySelect, RelationDef, Select, Statement, Value,
    sea_query::{Alias, ColumnType, Expr, Query, SelectStatement, UnionType},
};
use uuid::Uuid;

use super::page::{MAX_LIMIT, Page, PageRequest};

/// A ticket and the path of its unit (for jurisdiction), read together.
#[derive(Debug, Clone)]
pub struct TicketRow {
    pub ticket: ticket::Model,
    pub unit_path: Option<String>,
}

impl FromQueryResult for TicketRow {
    fn from_query_result(res: &QueryResult, pre: &str) -> Result<Self, DbErr> {
        Ok(Self { ticket: ticket::Model::from_query_result(res, pre)?, unit_path: res.try_get(pre, "unit_path")? })
    }
}

fn ticket_unit() -> RelationDef {
    ticket::Entity::belongs_to(grid_unit::Entity).from(ticket::Column::UnitId).to(grid_unit::Column::Id).into()
}

fn with_unit_path(select: Select<ticket::Entity>) -> Select<ticket::Entity> {
    select.column_as(grid_unit::Column::Path, "unit_path").join(JoinType::LeftJoin, ticket_unit())
}

/// One ticket with its unit's path.
pub async fn one(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<TicketRow>, DbErr> {
    with_unit_path(ticket::Entity::find_by_id(id)).into_model::<TicketRow>().one(db).await
}

/// A page of tickets, newest first, with their units' paths: one statement.
pub async fn newest_first(
    db: &impl ConnectionTrait,
    select: Select<ticket::Entity>,
    request: PageRequest,
) -> Result<Page<TicketRow>, DbErr> {
    let mut select = select;
    if let Some(after) = request.after {
        select = select.filter(ticket::Column::Id.lt(after));
    }
    let mut items = with_unit_path(select)
        .order_by_desc(ticket::Column::Id)
        .limit(request.limit + 1)
        .into_model::<TicketRow>()
        .all(db)
        .await?;
    let next_cursor = if items.len() as u64 > request.limit {
        items.truncate(request.limit as usize);
        items.last().map(|row| row.ticket.id.to_string())
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

/// Everything hanging off a set of tickets, each list oldest first.
#[derive(Debug, Default)]
pub struct Related {
    pub dispatches: HashMap<Uuid, Vec<dispatch::Model>>,
    pub department_names: HashMap<Uuid, String>,
    pub clocks: HashMap<Uuid, Vec<sla_clock::Model>>,
    /// The latest rating of each ticket.
    pub ratings: HashMap<Uuid, rating::Model>,
    /// Uploads attached to each ticket (photos, documents), oldest first.
    pub uploads: HashMap<Uuid, Vec<upload::Model>>,
}

#[derive(Clone, Copy)]
enum Branch {
    Dispatches,
    Clocks,
    Ratings,
    Uploads,
}

/// `NULL` as a value of `column_type`. Every branch of the UNION ALL must agree on each
/// column's type, and PostgreSQL reads a bare NULL in a nested UNION as text. SQLite takes any
/// type name here and the value stays NULL.
fn typed_null(column_type: &ColumnType) -> Expr {
    let name = match column_type {
        ColumnType::Uuid => "uuid",
        ColumnType::TinyInteger | ColumnType::SmallInteger => "smallint",
        ColumnType::Integer => "integer",
        ColumnType::BigInteger => "bigint",
        ColumnType::Boolean => "boolean",
        ColumnType::TimestampWithTimeZone => "timestamptz",
        _ => "text",
    };
    Expr::cust(format!("CAST(NULL AS {name})"))
}

/// `E`'s columns as `{prefix}{column}`: the values in `E`'s own branch, typed NULLs in the
/// others. (Joining the other tables `ON` a false condition instead cost PostgreSQL ~2 ms of
/// planning per read: 20 relations, and a parameterised condition kept it from caching a plan.)
fn columns<E: EntityTrait>(select: &mut SelectStatement, prefix: &str, own: bool) {
    for column in E::Column::iter() {
        let value = if own { Expr::col((E::default(), column)) } else { typed_null(column.def().get_column_type()) };
        select.expr_as(value, Alias::new(format!("{prefix}{}", column.as_str())));
    }
}

fn branch(which: Branch, ids: &[Uuid]) -> SelectStatement {
    let mut select = Query::select();
    let dispatches = matches!(which, Branch::Dispatches);
    columns::<dispatch::Entity>(&mut select, "d_", dispatches);
    let department_name = if dispatches {
        Expr::col((department::Entity, department::Column::Name))
    } else {
        typed_null(&ColumnType::Text)
    };
    select.expr_as(department_name, Alias::new("d_department_name"));
    columns::<sla_clock::Entity>(&mut select, "c_", matches!(which, Branch::Clocks));
    columns::<rating::Entity>(&mut select, "r_", matches!(which, Branch::Ratings));
    columns::<upload::Entity>(&mut select, "u_", matches!(which, Branch::Uploads));
    let ids = ids.iter().copied();
    match which {
        Branch::Dispatches => select
            .from(dispatch::Entity)
            .left_join(
                department::Entity,
                Expr::col((department::Entity, department::Column::Id))
                    .equals((dispatch::Entity, dispatch::Column::DepartmentId)),
            )
            .and_where(Expr::col((dispatch::Entity, dispatch::Column::TicketId)).is_in(ids)),
        Branch::Clocks => select
            .from(sla_clock::Entity)
            .and_where(Expr::col((sla_clock::Entity, sla_clock::Column::TicketId)).is_in(ids)),
        Branch::Ratings => {
            select.from(rating::Entity).and_where(Expr::col((rating::Entity, rating::Column::TicketId)).is_in(ids))
        }
        Branch::Uploads => {
            select.from(upload::Entity).and_where(Expr::col((upload::Entity, upload::Column::TicketId)).is_in(ids))
        }
    };
    select.to_owned()
}

fn related_union(ids: &[Uuid]) -> SelectStatement {
    let mut union = branch(Branch::Dispatches, ids);
    union.union(UnionType::All, branch(Branch::Clocks, ids));
    union.union(UnionType::All, branch(Branch::Ratings, ids));
    union.union(UnionType::All, branch(Branch::Uploads, ids));
    union
}

/// The SQL of [`related`] for `n` tickets. Building this wide statement with sea-query cost
/// more server CPU than reading its rows, so it is built once per backend and count, for
/// counts up to a page (longer lists are built each time, and not kept).
fn related_sql(backend: DbBackend, n: usize) -> Arc<str> {
    static BUILT: Mutex<Vec<(DbBackend, usize, Arc<str>)>> = Mutex::new(Vec::new());
    let build = || {
        let statement = backend.build(&related_union(&vec![Uuid::nil(); n]));
        let values = statement.values.as_ref().map_or(0, |values| values.0.len());
        assert_eq!(values, 4 * n, "the related statement's only values are the ids, once per branch");
        Arc::<str>::from(statement.sql)
    };
    if n > MAX_LIMIT as usize + 1 {
        return build();
    }
    let mut built = BUILT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, _, sql)) = built.iter().find(|(b, count, _)| *b == backend && *count == n) {
        return sql.clone();
    }
    let sql = build();
    built.push((backend, n, sql.clone()));
    sql
}

/// The statement [`related`] sends. Its only values are the ids, so PostgreSQL can plan it once
/// per connection and count (a generic plan) instead of on every read.
pub fn related_statement(backend: DbBackend, ticket_ids: &[Uuid]) -> Statement {
    // The same list once per branch.
    let values = (0..4).flat_map(|_| ticket_ids.iter().map(|&id| Value::from(id)));
    Statement::from_sql_and_values(backend, &*related_sql(backend, ticket_ids.len()), values)
}

/// Dispatches (with department names), clocks and ratings of `ticket_ids`: one statement.
pub async fn related(db: &impl ConnectionTrait, ticket_ids: &[Uuid]) -> Result<Related, DbErr> {
    let mut related = Related::default();
    if ticket_ids.is_empty() {
        return Ok(related);
    }
    let rows = db.query_all_raw(related_statement(db.get_database_backend(), ticket_ids)).await?;

    let (mut dispatches, mut clocks, mut ratings, mut uploads) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for row in rows {
        if row.try_get::<Option<Uuid>>("", "d_id")?.is_some() {
            let dispatch = dispatch::Model::from_query_result(&row, "d_")?;
            if let Some(name) = row.try_get::<Option<String>>("", "d_department_name")? {
                related.department_names.insert(dispatch.department_id, name);
            }
            dispatches.push(dispatch);
        } else if row.try_get::<Option<Uuid>>("", "c_id")?.is_some() {
            clocks.push(sla_clock::Model::from_query_result(&row, "c_")?);
        } else if row.try_get::<Option<Uuid>>("", "r_id")?.is_some() {
            ratings.push(rating::Model::from_query_result(&row, "r_")?);
        } else if row.try_get::<Option<Uuid>>("", "u_id")?.is_some() {
            uploads.push(upload::Model::from_query_result(&row, "u_")?);
        }
    }
    // UUID v7 ids sort by creation: id order is the order things happened.
    dispatches.sort_by_key(|d| d.id);
    clocks.sort_by_key(|c| c.id);
    ratings.sort_by_key(|r| r.id);
    uploads.sort_by_key(|u| u.id);
    for dispatch in dispatches {
        related.dispatches.entry(dispatch.ticket_id).or_default().push(dispatch);
    }
    for clock in clocks {
        related.clocks.entry(clock.ticket_id).or_default().push(clock);
    }
    for rating in ratings {
        related.ratings.insert(rating.ticket_id, rating);
    }
    for upload in uploads {
        if let Some(ticket) = upload.ticket_id {
            related.uploads.entry(ticket).or_default().push(upload);
        }
    }
    Ok(related)
}

/// A running clock with its dispatch's department: what a summary row needs of the clocks.
#[derive(Debug, Clone, FromQueryResult)]
pub struct RunningClock {
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub dispatch_id: Option<Uuid>,
    pub clock: String,
    pub warn_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    /// The department of the clock's dispatch; `None` for a ticket's own clock.
    pub department_id: Option<Uuid>,
}

/// The running clocks of `ticket_ids`: one statement. A summary list shows only the next
/// deadline, so it reads these few rows and columns instead of everything [`related`] reads.
pub async fn running_clocks(
    db: &impl ConnectionTrait,
    ticket_ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<RunningClock>>, DbErr> {
    let mut by_ticket: HashMap<Uuid, Vec<RunningClock>> = HashMap::new();
    if ticket_ids.is_empty() {
        return Ok(by_ticket);
    }
    let clock_dispatch: RelationDef = sla_clock::Entity::belongs_to(dispatch::Entity)
        .from(sla_clock::Column::DispatchId)
        .to(dispatch::Column::Id)
        .into();
    let clocks = sla_clock::Entity::find()
        .select_only()
        .columns([
            sla_clock::Column::Id,
            sla_clock::Column::TicketId,
            sla_clock::Column::DispatchId,
            sla_clock::Column::Clock,
            sla_clock::Column::WarnAt,
            sla_clock::Column::DueAt,
        ])
        .column_as(dispatch::Column::DepartmentId, "department_id")
        .join(JoinType::LeftJoin, clock_dispatch)
        .filter(sla_clock::Column::TicketId.is_in(ticket_ids.iter().copied()))
        .filter(sla_clock::Column::StoppedAt.is_null())
        .into_model::<RunningClock>()
        .all(db)
        .await?;
    for clock in clocks {
        by_ticket.entry(clock.ticket_id).or_default().push(clock);
    }
    Ok(by_ticket)
}
