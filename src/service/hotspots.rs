//! Recurring problems (高频诉求, the source of 每月一题): the category × place pairs with the
//! most tickets in a period, against the period of the same length before it, with how much
//! of each repeats at the same spot, how fast it is resolved and how satisfied residents are.
//! Counts are GROUP BYs built with sea-query from the one jurisdiction; the per-ticket figures
//! (distances, medians) are computed in Rust for the `limit` pairs shown. Definitions:
//! docs/reports.md.

use std::collections::{HashMap, HashSet};

use chrono::{Duration, NaiveDate};
use entities::{UnitLevel, category, ticket, topic};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect,
    sea_query::{Alias, Expr, Func, Query},
};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    coverage::{Units, period, tickets_condition},
    reports::narrowing_unit,
    require,
    tickets::Viewer,
};
use crate::{
    context::AppContext,
    domain::{
        access::{Caller, Permission},
        geo::{Point, distance_m},
        report::{nearest_rank, rate},
        ticket::TicketStatus,
    },
    error::{AppError, AppResult},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaceLevel {
    Grid,
    Community,
    Township,
}

impl PlaceLevel {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "grid" => Some(Self::Grid),
            "community" => Some(Self::Community),
            "township" => Some(Self::Township),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Grid => "grid",
            Self::Community => "community",
            Self::Township => "township",
        }
    }

    fn level(self) -> UnitLevel {
        match self {
            Self::Grid => UnitLevel::Grid,
            Self::Community => UnitLevel::Community,
            Self::Township => UnitLevel::Township,
        }
    }
}

#[derive(Debug, Clone)]
pub struct HotspotRequest {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub unit: Option<Uuid>,
    pub group_by: PlaceLevel,
    pub limit: usize,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HotspotRow {
    pub category_id: Uuid,
    pub category_name: String,
    pub place_id: Uuid,
    pub place_name: String,
    /// Tickets filed in the period (cancelled and merged ones not: a merged duplicate counts
    /// in its survivor).
    pub count: i64,
    /// The same, in the period of the same length just before.
    pub previous_count: i64,
    /// count − previous_count
    pub change: i64,
    /// change ÷ previous_count; `null` when there was none before.
    pub change_rate: Option<f64>,
    /// Tickets with another ticket of the row within the radius.
    pub repeated: i64,
    /// repeated ÷ count
    pub repeat_share: Option<f64>,
    /// Median (nearest rank) working hours from the first dispatch to the latest resolution,
    /// over the row's resolved tickets.
    pub resolve_hours_p50: Option<f64>,
    /// The row's tickets rated (each by its latest rating).
    pub rated: i64,
    pub satisfied: i64,
    /// 满意率 = satisfied ÷ rated
    pub satisfaction_rate: Option<f64>,
    /// Duplicates of the row filed in the period and merged into another ticket.
    pub merged: i64,
    /// The 每月一题 topic picked for this category and place in a month of the period.
    pub topic_id: Option<Uuid>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HotspotReport {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub previous_from: NaiveDate,
    pub previous_to: NaiveDate,
    /// grid, community or township
    pub group_by: String,
    pub radius_m: f64,
    /// Sorted by count, most first (then by change, then by name).
    pub rows: Vec<HotspotRow>,
}

type Pair = (Uuid, Uuid);

pub async fn hotspots(ctx: &AppContext, caller: &Caller, request: HotspotRequest) -> AppResult<HotspotReport> {
    require(caller, Permission::ReadReports)?;
    let (start, end) = period(ctx, request.from, request.to)?;
    let (previous_from, previous_to) = previous_period(request.from, request.to);
    let (previous_start, _) = period(ctx, previous_from, previous_to)?;
    let db = &ctx.db;
    let scope = Viewer::of(db, caller).await?.scope();
    let filter = match request.unit {
        Some(unit) => Some(narrowing_unit(db, &scope, unit).await?.path),
        None => None,
    };
    let within = tickets_condition(&scope, filter.as_deref());
    let units = Units::load(db).await?;
    let level = request.group_by.level();
    let place_of = |unit: Uuid| units.at_level(unit, level).map(|u| u.id);

    let counted =
        || Condition::all().add(within.clone()).add(ticket::Column::Status.ne(TicketStatus::Cancelled.to_string()));
    let mut current: HashMap<Pair, (i64, i64)> = HashMap::new();
    let mut previous: HashMap<Pair, i64> = HashMap::new();
    for (from, until, is_current) in [(start, end, true), (previous_start, start, false)] {
        let select = Query::select()
            .column((ticket::Entity, ticket::Column::UnitId))
            .column((ticket::Entity, ticket::Column::CategoryId))
            .expr_as(Expr::cust("COUNT(*)"), Alias::new("n"))
            .expr_as(
                Func::sum(Expr::case(ticket::Column::Status.eq(TicketStatus::Merged.to_string()), 1).finally(0)),
                Alias::new("m"),
            )
            .from(ticket::Entity)
            .cond_where(counted())
            .and_where(ticket::Column::CreatedAt.gte(from))
            .and_where(ticket::Column::CreatedAt.lt(until))
            .group_by_col((ticket::Entity, ticket::Column::UnitId))
            .group_by_col((ticket::Entity, ticket::Column::CategoryId))
            .to_owned();
        for row in db.query_all_raw(db.get_database_backend().build(&select)).await? {
            let get_id = |c: &str| row.try_get::<Uuid>("", c).map_err(|e| AppError::Internal(e.to_string()));
            let get_n = |c: &str| row.try_get::<Option<i64>>("", c).map_err(|e| AppError::Internal(e.to_string()));
            let (unit, category) = (get_id("unit_id")?, get_id("category_id")?);
            let (n, merged) = (get_n("n")?.unwrap_or(0), get_n("m")?.unwrap_or(0));
            let Some(place) = place_of(unit) else { continue };
            if is_current {
                let entry = current.entry((category, place)).or_default();
                entry.0 += n - merged;
                entry.1 += merged;
            } else {
                *previous.entry((category, place)).or_default() += n - merged;
            }
        }
    }

    let mut pairs: Vec<(Pair, i64)> =
        current.iter().filter(|(_, (count, _))| *count > 0).map(|(pair, (count, _))| (*pair, *count)).collect();
    let categories: HashMap<Uuid, String> =
        category::Entity::find().all(db).await?.into_iter().map(|c| (c.id, c.name)).collect();
    let name = |pair: &Pair| (categories.get(&pair.0).cloned().unwrap_or_default(), units.name(pair.1));
    pairs.sort_by(|(a, a_count), (b, b_count)| {
        let change = |pair: &Pair, count: i64| count - previous.get(pair).copied().unwrap_or(0);
        b_count.cmp(a_count).then(change(b, *b_count).cmp(&change(a, *a_count))).then(name(a).cmp(&name(b)))
    });
    pairs.truncate(request.limit);
    let shown: HashSet<Pair> = pairs.iter().map(|(pair, _)| *pair).collect();

    // The shown pairs' tickets, one by one: where, how long, how rated.
    let shown_categories: Vec<Uuid> = shown.iter().map(|(c, _)| *c).collect::<HashSet<_>>().into_iter().collect();
    type TicketFacts = (Uuid, Uuid, Uuid, Option<f64>, Option<f64>, Option<i64>);
    let facts: Vec<TicketFacts> = ticket::Entity::find()
        .select_only()
        .columns([
            ticket::Column::Id,
            ticket::Column::UnitId,
            ticket::Column::CategoryId,
            ticket::Column::Lat,
            ticket::Column::Lon,
            ticket::Column::ResolveWorkingSeconds,
        ])
        .filter(counted())
        .filter(ticket::Column::Status.ne(TicketStatus::Merged.to_string()))
        .filter(ticket::Column::CreatedAt.gte(start))
        .filter(ticket::Column::CreatedAt.lt(end))
        .filter(ticket::Column::CategoryId.is_in(shown_categories))
        .into_tuple()
        .all(db)
        .await?;
    let mut by_pair: HashMap<Pair, Vec<TicketFacts>> = HashMap::new();
    for fact in facts {
        if let Some(place) = place_of(fact.1)
            && shown.contains(&(fact.2, place))
        {
            by_pair.entry((fact.2, place)).or_default().push(fact);
        }
    }
    let ids: Vec<Uuid> = by_pair.values().flatten().map(|f| f.0).collect();
    let ratings = crate::repo::tickets::latest_ratings(db, &ids).await?;
    let topics = topics_of(db, request.from, request.to, &shown).await?;
    let radius = ctx.settings.governance.hotspot_radius_m;

    let rows = pairs
        .into_iter()
        .map(|(pair, count)| {
            let tickets = by_pair.remove(&pair).unwrap_or_default();
            let points: Vec<Option<Point>> = tickets.iter().map(|t| Some(Point { lat: t.3?, lon: t.4? })).collect();
            let repeated = points
                .iter()
                .enumerate()
                .filter(|(i, p)| {
                    p.is_some_and(|p| {
                        points.iter().enumerate().any(|(j, q)| j != *i && q.is_some_and(|q| distance_m(p, q) <= radius))
                    })
                })
                .count() as i64;
            let mut seconds: Vec<i64> = tickets.iter().filter_map(|t| t.5).collect();
            seconds.sort_unstable();
            let median = usize::try_from(nearest_rank(seconds.len() as i64, 50))
                .ok()
                .and_then(|rank| rank.checked_sub(1))
                .and_then(|i| seconds.get(i))
                .map(|s| *s as f64 / 3600.0);
            let scores: Vec<i16> = tickets.iter().filter_map(|t| ratings.get(&t.0).map(|r| r.score)).collect();
            let satisfied = scores.iter().filter(|s| **s >= 3).count() as i64;
            let previous_count = previous.get(&pair).copied().unwrap_or(0);
            let (category_name, place_name) = name(&pair);
            HotspotRow {
                category_id: pair.0,
                category_name,
                place_id: pair.1,
                place_name,
                count,
                previous_count,
                change: count - previous_count,
                change_rate: rate(count - previous_count, previous_count),
                repeated,
                repeat_share: rate(repeated, count),
                resolve_hours_p50: median,
                rated: scores.len() as i64,
                satisfied,
                satisfaction_rate: rate(satisfied, scores.len() as i64),
                merged: current.get(&pair).map_or(0, |(_, merged)| *merged),
                topic_id: topics.get(&pair).copied(),
            }
        })
        .collect();
    Ok(HotspotReport {
        from: request.from,
        to: request.to,
        previous_from,
        previous_to,
        group_by: request.group_by.name().into(),
        radius_m: radius,
        rows,
    })
}

/// The topics picked for the shown pairs in the months the period touches.
async fn topics_of(
    db: &impl ConnectionTrait,
    from: NaiveDate,
    to: NaiveDate,
    shown: &HashSet<Pair>,
) -> AppResult<HashMap<Pair, Uuid>> {
    let months = super::topics::months_between(from, to);
    Ok(topic::Entity::find()
        .filter(topic::Column::Period.is_in(months))
        .all(db)
        .await?
        .into_iter()
        .filter(|t| shown.contains(&(t.category_id, t.unit_id)))
        .map(|t| ((t.category_id, t.unit_id), t.id))
        .collect())
}

/// The period of the same length just before `from`–`to` (days inclusive).
pub fn previous_period(from: NaiveDate, to: NaiveDate) -> (NaiveDate, NaiveDate) {
    let days = (to - from).num_days() + 1;
    (from - Duration::days(days), from - Duration::days(1))
}
