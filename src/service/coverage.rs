//! Satisfaction-survey coverage (满意度调查覆盖所有村（社区）): for every community or village
//! in the caller's jurisdiction, the tickets closed and rated in a period, 满意率, the five
//! 好差评 levels, and whether the survey reached it. Counted in SQL built with sea-query from
//! the same jurisdiction as ticket listings (`repo::tickets::scope_condition`); Rust only folds
//! grid rows up to their community. Definitions: docs/reports.md.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use entities::{UnitLevel, grid_unit, rating, ticket, ticket_merge};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait,
    sea_query::{Alias, Expr, ExprTrait, Query, SelectStatement},
};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{reports::narrowing_unit, require, tickets::Viewer};
use crate::{
    context::AppContext,
    domain::{
        access::{Caller, Permission},
        report::rate,
        ticket::TicketStatus,
    },
    error::{AppError, AppResult},
    repo::{self, tickets::Scope},
};

/// A report's period as UTC instants: `from` 00:00 to the day after `to` 00:00, city time.
/// Checked as every report checks it: dates near today, `to` not before `from`, at most a year.
pub fn period(ctx: &AppContext, from: NaiveDate, to: NaiveDate) -> AppResult<(DateTime<Utc>, DateTime<Utc>)> {
    super::reports::check_dates(ctx, from, to)?;
    if to < from {
        return Err(AppError::invalid("to", "must not be before from"));
    }
    if (to - from).num_days() > 366 {
        return Err(AppError::invalid("to", "a report covers at most a year"));
    }
    let offset = ctx.calendar().offset();
    let out_of_range = || AppError::invalid("to", "out of range");
    let local_midnight = |date: NaiveDate| {
        date.and_time(NaiveTime::MIN)
            .checked_sub_signed(Duration::seconds(i64::from(offset.local_minus_utc())))
            .map(|t| t.and_utc())
            .ok_or_else(out_of_range)
    };
    Ok((local_midnight(from)?, local_midnight(to.succ_opt().ok_or_else(out_of_range)?)?))
}

/// Every grid unit, by id: the tree the reports fold their rows up.
pub struct Units(pub HashMap<Uuid, grid_unit::Model>);

impl Units {
    pub async fn load(db: &impl ConnectionTrait) -> AppResult<Self> {
        Ok(Self(grid_unit::Entity::find().all(db).await?.into_iter().map(|u| (u.id, u)).collect()))
    }

    /// The unit itself or its ancestor at `level`; `None` for a unit above that level.
    pub fn at_level(&self, mut id: Uuid, level: UnitLevel) -> Option<&grid_unit::Model> {
        for _ in 0..16 {
            let unit = self.0.get(&id)?;
            if unit.level == level {
                return Some(unit);
            }
            id = unit.parent_id?;
        }
        None
    }

    pub fn name(&self, id: Uuid) -> String {
        self.0.get(&id).map(|u| u.name.clone()).unwrap_or_default()
    }
}

/// Whether a unit at `path` is one a report in `scope`, narrowed to `filter`, gives a row: it
/// lies in the subtree, or holds the subtree (a caller at home below the level).
pub fn unit_in_scope(scope: &Scope, filter: Option<&str>, path: &str) -> bool {
    let overlaps = |home: &str| path.starts_with(home) || home.starts_with(path);
    let in_scope = match scope {
        Scope::Everything => true,
        Scope::UnitPath(home) | Scope::FiledByOrUnitPath { path: home, .. } => overlaps(home),
        Scope::Department(_) | Scope::Nothing => false,
    };
    in_scope && filter.is_none_or(overlaps)
}

/// The tickets a report in `scope` counts, narrowed to the `filter` subtree: a condition on
/// `tickets`, from the one definition of jurisdiction.
pub fn tickets_condition(scope: &Scope, filter: Option<&str>) -> Condition {
    let mut condition = Condition::all().add(repo::tickets::scope_condition(scope));
    if let Some(path) = filter {
        condition = condition.add(repo::tickets::in_unit_subtree(path));
    }
    condition
}

/// Runs a `SELECT unit_id, …` and reads each row's unit and `N` integer columns.
pub async fn unit_counts<const N: usize>(
    db: &impl ConnectionTrait,
    select: &SelectStatement,
    columns: [&str; N],
) -> AppResult<Vec<(Uuid, [i64; N])>> {
    let statement = db.get_database_backend().build(select);
    let mut out = Vec::new();
    for row in db.query_all_raw(statement).await? {
        let unit: Uuid = row.try_get("", "unit_id").map_err(|e| AppError::Internal(e.to_string()))?;
        let mut values = [0i64; N];
        for (value, column) in values.iter_mut().zip(columns) {
            *value = row
                .try_get::<Option<i64>>("", column)
                .map_err(|e| AppError::Internal(format!("{column}: {e}")))?
                .unwrap_or(0);
        }
        out.push((unit, values));
    }
    Ok(out)
}

#[derive(Debug, Clone)]
pub struct CoverageRequest {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub unit: Option<Uuid>,
    /// Overrides `governance.coverage_min_rated`.
    pub min_rated: Option<i64>,
}

/// One community's (village's) figures.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct CoverageRow {
    /// `null` in the total row.
    pub community_id: Option<Uuid>,
    pub community_name: String,
    /// The street or township it belongs to.
    pub township_name: String,
    /// Tickets closed (status `closed`) in the period; merged duplicates are not.
    pub closed: i64,
    /// Tickets rated in the period (a ticket rated twice counts once, by its latest rating).
    pub rated: i64,
    /// Of those, latest rating ≥ 3.
    pub satisfied: i64,
    /// 满意率 = satisfied ÷ rated
    pub satisfaction_rate: Option<f64>,
    /// 非常满意 (5)
    pub rated_5: i64,
    /// 满意 (4)
    pub rated_4: i64,
    /// 基本满意 (3)
    pub rated_3: i64,
    /// 不满意 (2)
    pub rated_2: i64,
    /// 非常不满意 (1)
    pub rated_1: i64,
    /// Duplicates merged (并单) in the period.
    pub merged: i64,
    /// rated ≥ the threshold. `null` in the total row.
    pub covered: Option<bool>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UncoveredCommunity {
    pub id: Uuid,
    pub name: String,
    pub township_name: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CoverageReport {
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// A community is covered with at least this many rated tickets.
    pub min_rated: i64,
    /// Communities in scope.
    pub communities: i64,
    pub covered: i64,
    /// 覆盖率 = covered ÷ communities
    pub coverage_rate: Option<f64>,
    /// Every community in scope, by township then name; the idle ones with zeros.
    pub rows: Vec<CoverageRow>,
    pub total: CoverageRow,
    pub uncovered: Vec<UncoveredCommunity>,
}

pub async fn coverage(ctx: &AppContext, caller: &Caller, request: CoverageRequest) -> AppResult<CoverageReport> {
    require(caller, Permission::ReadReports)?;
    let (start, end) = period(ctx, request.from, request.to)?;
    let min_rated = request.min_rated.unwrap_or(ctx.settings.governance.coverage_min_rated);
    if !(1..=10_000).contains(&min_rated) {
        return Err(AppError::invalid(
            "min_rated",
            crate::domain::validate::Message::said("应为 1 到 10000", "must be between 1 and 10000"),
        ));
    }
    let db = &ctx.db;
    let scope = Viewer::of(db, caller).await?.scope();
    let filter = match request.unit {
        Some(unit) => Some(narrowing_unit(db, &scope, unit).await?.path),
        None => None,
    };
    let units = Units::load(db).await?;
    let within = tickets_condition(&scope, filter.as_deref());

    // Every community in scope gets a row.
    let mut rows: BTreeMap<Uuid, CoverageRow> = units
        .0
        .values()
        .filter(|u| u.level == UnitLevel::Community && unit_in_scope(&scope, filter.as_deref(), &u.path))
        .map(|u| {
            let township = u.parent_id.map(|p| units.name(p)).unwrap_or_default();
            (
                u.id,
                CoverageRow {
                    community_id: Some(u.id),
                    community_name: u.name.clone(),
                    township_name: township,
                    ..Default::default()
                },
            )
        })
        .collect();
    let mut add = |unit: Uuid, f: &mut dyn FnMut(&mut CoverageRow)| {
        if let Some(row) = units.at_level(unit, UnitLevel::Community).and_then(|c| rows.get_mut(&c.id)) {
            f(row);
        }
    };

    // 1. Closed in the period.
    let closed = Query::select()
        .column((ticket::Entity, ticket::Column::UnitId))
        .expr_as(Expr::cust("COUNT(*)"), Alias::new("n"))
        .from(ticket::Entity)
        .cond_where(within.clone())
        .and_where(ticket::Column::Status.eq(TicketStatus::Closed.to_string()))
        .and_where(ticket::Column::ClosedAt.gte(start))
        .and_where(ticket::Column::ClosedAt.lt(end))
        .group_by_col((ticket::Entity, ticket::Column::UnitId))
        .to_owned();
    for (unit, [n]) in unit_counts(db, &closed, ["n"]).await? {
        add(unit, &mut |row| row.closed += n);
    }

    // 2. Rated in the period, by each ticket's latest rating in it: no later rating of the
    //    same ticket in the period. Merged duplicates count in their survivor only.
    let later = Alias::new("later");
    let rated_in_period = |table: &dyn Fn(rating::Column) -> Expr| {
        Condition::all().add(table(rating::Column::CreatedAt).gte(start)).add(table(rating::Column::CreatedAt).lt(end))
    };
    let outer = |c: rating::Column| Expr::col((rating::Entity, c));
    let inner = |c: rating::Column| Expr::col((later.clone(), c));
    let superseded = Query::select()
        .expr(Expr::val(1))
        .from_as(rating::Entity, later.clone())
        .and_where(inner(rating::Column::TicketId).equals((rating::Entity, rating::Column::TicketId)))
        .cond_where(rated_in_period(&inner))
        .cond_where(
            Condition::any().add(inner(rating::Column::CreatedAt).gt(outer(rating::Column::CreatedAt))).add(
                Condition::all()
                    .add(inner(rating::Column::CreatedAt).eq(outer(rating::Column::CreatedAt)))
                    .add(inner(rating::Column::Id).gt(outer(rating::Column::Id))),
            ),
        )
        .to_owned();
    let rated = Query::select()
        .column((ticket::Entity, ticket::Column::UnitId))
        .expr_as(Expr::cust(r#"CAST("ratings"."score" AS BIGINT)"#), Alias::new("score"))
        .expr_as(Expr::cust("COUNT(*)"), Alias::new("n"))
        .from(rating::Entity)
        .inner_join(
            ticket::Entity,
            Expr::col((ticket::Entity, ticket::Column::Id)).equals((rating::Entity, rating::Column::TicketId)),
        )
        .cond_where(within.clone())
        .and_where(ticket::Column::Status.ne(TicketStatus::Merged.to_string()))
        .cond_where(rated_in_period(&outer))
        .and_where(Expr::exists(superseded).not())
        .group_by_col((ticket::Entity, ticket::Column::UnitId))
        .group_by_col((rating::Entity, rating::Column::Score))
        .to_owned();
    for (unit, [score, n]) in unit_counts(db, &rated, ["score", "n"]).await? {
        add(unit, &mut |row| {
            row.rated += n;
            if score >= 3 {
                row.satisfied += n;
            }
            match score {
                5 => row.rated_5 += n,
                4 => row.rated_4 += n,
                3 => row.rated_3 += n,
                2 => row.rated_2 += n,
                _ => row.rated_1 += n,
            }
        });
    }

    // 3. Duplicates merged in the period, where the duplicate was filed.
    let merged = Query::select()
        .column((ticket::Entity, ticket::Column::UnitId))
        .expr_as(Expr::cust("COUNT(*)"), Alias::new("n"))
        .from(ticket_merge::Entity)
        .inner_join(
            ticket::Entity,
            Expr::col((ticket::Entity, ticket::Column::Id))
                .equals((ticket_merge::Entity, ticket_merge::Column::DuplicateId)),
        )
        .cond_where(within)
        .and_where(ticket_merge::Column::MergedAt.gte(start))
        .and_where(ticket_merge::Column::MergedAt.lt(end))
        .group_by_col((ticket::Entity, ticket::Column::UnitId))
        .to_owned();
    for (unit, [n]) in unit_counts(db, &merged, ["n"]).await? {
        add(unit, &mut |row| row.merged += n);
    }

    let mut rows: Vec<CoverageRow> = rows.into_values().collect();
    rows.sort_by(|a, b| a.township_name.cmp(&b.township_name).then(a.community_name.cmp(&b.community_name)));
    let mut total = CoverageRow { community_name: "total".into(), ..Default::default() };
    for row in &mut rows {
        row.satisfaction_rate = rate(row.satisfied, row.rated);
        row.covered = Some(row.rated >= min_rated);
        total.closed += row.closed;
        total.rated += row.rated;
        total.satisfied += row.satisfied;
        total.rated_5 += row.rated_5;
        total.rated_4 += row.rated_4;
        total.rated_3 += row.rated_3;
        total.rated_2 += row.rated_2;
        total.rated_1 += row.rated_1;
        total.merged += row.merged;
    }
    total.satisfaction_rate = rate(total.satisfied, total.rated);
    let communities = rows.len() as i64;
    let covered = rows.iter().filter(|r| r.covered == Some(true)).count() as i64;
    let uncovered = rows
        .iter()
        .filter(|r| r.covered == Some(false))
        .filter_map(|r| {
            Some(UncoveredCommunity {
                id: r.community_id?,
                name: r.community_name.clone(),
                township_name: r.township_name.clone(),
            })
        })
        .collect();
    Ok(CoverageReport {
        from: request.from,
        to: request.to,
        min_rated,
        communities,
        covered,
        coverage_rate: rate(covered, communities),
        rows,
        total,
        uncovered,
    })
}
