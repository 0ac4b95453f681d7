//! SLA reports (响应率 · 解决率 · 满意率) computed in SQL: each family of figures is one
//! GROUP BY over indexed columns, percentiles use window functions (nearest rank, the same on
//! SQLite and PostgreSQL), and Rust only merges a few hundred group rows and divides.
//! Definitions: docs/reports.md.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use entities::{category, department, grid_unit};
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, Statement, Value};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{require, tickets::Viewer};
use crate::{
    context::AppContext,
    domain::{
        access::{Caller, Permission},
        calendar::{MAX_YEARS_FROM_TODAY, check_date_near},
        report::{nearest_rank, rate, score},
        ticket::{Channel, DispatchRole, RESPONSIBLE_STATUSES, TicketStatus},
        validate::{FieldErrors, Message},
    },
    error::{AppError, AppResult, Refusal},
    repo::tickets::Scope,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Department,
    Township,
    County,
    Grid,
    Category,
    /// How the tickets came in (grid_app, hotline, web, open311, sensor).
    Channel,
}

impl GroupBy {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "department" => Some(Self::Department),
            "township" => Some(Self::Township),
            "county" => Some(Self::County),
            "grid" => Some(Self::Grid),
            "category" => Some(Self::Category),
            "channel" => Some(Self::Channel),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Department => "department",
            Self::Township => "township",
            Self::County => "county",
            Self::Grid => "grid",
            Self::Category => "category",
            Self::Channel => "channel",
        }
    }

    /// The group of a ticket-level fact (`t` tickets, `p` its responsible primary dispatch).
    fn of_ticket(self) -> &'static str {
        match self {
            Self::Department => "p.department_id",
            Self::Township => "t.township_id",
            Self::County => "t.county_id",
            Self::Grid => "t.unit_id",
            Self::Category => "t.category_id",
            Self::Channel => "t.channel",
        }
    }
}

/// The join to the department responsible for a ticket (`p`), written from the one domain
/// definition ([`crate::domain::ticket::RESPONSIBLE_STATUSES`]).
fn responsible_join() -> String {
    let statuses: Vec<String> = RESPONSIBLE_STATUSES.iter().map(|s| format!("'{s}'")).collect();
    format!(
        "LEFT JOIN dispatches p ON p.ticket_id = t.id AND p.role = '{}' AND p.status IN ({})",
        DispatchRole::Primary.as_str(),
        statuses.join(", ")
    )
}

#[derive(Debug, Clone)]
pub struct ReportRequest {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub group_by: GroupBy,
    pub unit: Option<Uuid>,
    pub category: Option<Uuid>,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct ReportRow {
    /// `null` in the total row, and for tickets with no responsible department.
    pub group_id: Option<Uuid>,
    pub group_name: String,
    pub dispatched: i64,
    pub acknowledged: i64,
    pub acknowledged_on_time: i64,
    /// 响应率 = acknowledged_on_time ÷ dispatched
    pub response_rate: Option<f64>,
    /// Tickets whose resolve deadline falls in the period (not cancelled).
    pub due: i64,
    pub resolved: i64,
    pub resolved_on_time: i64,
    /// 解决率 = resolved ÷ due
    pub resolution_rate: Option<f64>,
    pub rated: i64,
    pub satisfied: i64,
    pub bad_ratings: i64,
    /// 满意率 = satisfied ÷ rated
    pub satisfaction_rate: Option<f64>,
    pub returns: i64,
    pub breaches: i64,
    pub supervision_orders: i64,
    /// Extensions (延期) approved in the period.
    pub extensions: i64,
    /// Duplicates merged (并单) in the period into the group's tickets (the survivors).
    pub merged: i64,
    pub ack_hours_p50: Option<f64>,
    pub ack_hours_p90: Option<f64>,
    pub resolve_hours_p50: Option<f64>,
    pub resolve_hours_p90: Option<f64>,
    pub overdue: i64,
    pub score: Option<f64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Report {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub group_by: String,
    pub rows: Vec<ReportRow>,
    pub total: ReportRow,
}

/// Bound parameters, numbered as PostgreSQL writes them (`$n`; SQLite reads them as `?n`),
/// continuing after the `first` ones a query shares.
struct Params {
    first: usize,
    values: Vec<Value>,
}

impl Params {
    fn push(&mut self, value: impl Into<Value>) -> String {
        self.values.push(value.into());
        format!("${}", self.first + self.values.len())
    }
}

struct Query {
    backend: DbBackend,
    /// `(start, end)` of the period as UTC instants.
    period: (DateTime<Utc>, DateTime<Utc>),
    now: DateTime<Utc>,
    /// The jurisdiction and filters as a condition on `t`, with their parameters.
    where_tickets: String,
    params: Vec<Value>,
    /// The caller's jurisdiction, also deciding which idle groups get a row.
    scope: Scope,
    /// The path of the unit the report is narrowed to, if it is.
    unit_path: Option<String>,
}

impl Query {
    /// The statement with the shared parameters first, then the query's own.
    fn statement(&self, sql: String, params: Params) -> Statement {
        let sql = if self.backend == DbBackend::Sqlite { sql.replace('$', "?") } else { sql };
        let values = self.params.iter().cloned().chain(params.values).collect::<Vec<_>>();
        Statement::from_sql_and_values(self.backend, sql, values)
    }

    /// Parameters of one query, numbered after the shared ones.
    fn params(&self) -> Params {
        Params { first: self.params.len(), values: Vec::with_capacity(4) }
    }
}

/// Whether a unit at `path` lies inside the jurisdiction `scope` — not merely above it: the
/// caller may see only a part of a unit holding their home. The unit-level reading of the one
/// jurisdiction ([`Scope`], as `repo::tickets::scope_condition` reads it for tickets).
pub fn unit_within(scope: &Scope, path: &str) -> bool {
    match scope {
        Scope::Everything => true,
        Scope::UnitPath(home) | Scope::FiledByOrUnitPath { path: home, .. } => path.starts_with(home.as_str()),
        Scope::Department(_) | Scope::Nothing => false,
    }
}

/// The unit a report is narrowed to (`unit` / `unit_id`): 404 when there is no such unit, 403
/// when it lies outside the caller's jurisdiction. Either way no figure is counted: a report of
/// zeros would read as "nothing happened there".
pub async fn narrowing_unit(db: &impl ConnectionTrait, scope: &Scope, id: Uuid) -> AppResult<grid_unit::Model> {
    let unit = grid_unit::Entity::find_by_id(id).one(db).await?.ok_or_else(|| {
        AppError::refused(Refusal::NotFound, format!("找不到编号为 {id} 的单位"), format!("no grid unit with id {id}"))
    })?;
    if !unit_within(scope, &unit.path) {
        let name = &unit.name;
        return Err(AppError::refused(
            Refusal::Forbidden,
            format!("{name} 不在您的辖区内，不能查看它的报表"),
            format!("{name} lies outside your jurisdiction; its reports are not yours to see"),
        ));
    }
    Ok(unit)
}

/// The days a client asks about lie within a century of today (in the city's time zone), so
/// every date computed from them exists.
pub fn check_dates_near(ctx: &AppContext, from: NaiveDate, to: NaiveDate) -> AppResult<()> {
    let today = ctx.clock.now().with_timezone(&ctx.calendar().offset()).date_naive();
    let mut errors = FieldErrors::new();
    for (field, date) in [("from", from), ("to", to)] {
        if check_date_near(today, date).is_err() {
            errors.add(
                field,
                Message::said(
                    format!("应在今天前后 {MAX_YEARS_FROM_TODAY} 年之内"),
                    format!("must be within {MAX_YEARS_FROM_TODAY} years of today"),
                ),
            );
        }
    }
    Ok(errors.into_result()?)
}

/// Both days near today, and `to` not before `from`: a trend's period (which may be longer
/// than a year).
pub fn check_dates_in_order(ctx: &AppContext, from: NaiveDate, to: NaiveDate) -> AppResult<()> {
    check_dates_near(ctx, from, to)?;
    if to < from {
        return Err(AppError::invalid("to", Message::said("不能早于 from", "must not be before from")));
    }
    Ok(())
}

/// The days one report covers at most.
const MAX_REPORT_DAYS: i64 = 366;

/// A report's period, as every report checks it: both days near today, `to` not before
/// `from`, at most a year.
pub fn check_dates(ctx: &AppContext, from: NaiveDate, to: NaiveDate) -> AppResult<()> {
    check_dates_in_order(ctx, from, to)?;
    if (to - from).num_days() > MAX_REPORT_DAYS {
        return Err(AppError::invalid(
            "to",
            Message::said(
                format!("报表最多覆盖一年（{MAX_REPORT_DAYS} 天）"),
                format!("a report covers at most a year ({MAX_REPORT_DAYS} days)"),
            ),
        ));
    }
    Ok(())
}

/// A day the calendar cannot reach from the period asked for; days near today never are.
pub fn date_out_of_range() -> AppError {
    AppError::invalid("to", Message::said("超出可计算的日期范围", "lies outside the dates that can be computed"))
}

pub async fn sla_report(ctx: &AppContext, caller: &Caller, request: ReportRequest) -> AppResult<Report> {
    require(caller, Permission::ReadReports)?;
    check_dates(ctx, request.from, request.to)?;
    let query = prepare(ctx, caller, &request).await?;
    let (mut rows, total) = compute(ctx, &query, request.group_by).await?;
    name_groups(ctx, &query, &request, &mut rows).await?;
    let rows = rows.into_values().collect();
    Ok(Report { from: request.from, to: request.to, group_by: request.group_by.name().into(), rows, total })
}

/// The totals of several periods, one after the other (the trend report).
pub async fn totals(ctx: &AppContext, caller: &Caller, request: &ReportRequest) -> AppResult<ReportRow> {
    require(caller, Permission::ReadReports)?;
    let query = prepare(ctx, caller, request).await?;
    Ok(compute(ctx, &query, request.group_by).await?.1)
}

async fn prepare(ctx: &AppContext, caller: &Caller, request: &ReportRequest) -> AppResult<Query> {
    check_dates_near(ctx, request.from, request.to)?;
    let scope = Viewer::of(&ctx.db, caller).await?.scope();
    let unit_path = match request.unit {
        Some(unit) => Some(narrowing_unit(&ctx.db, &scope, unit).await?.path),
        None => None,
    };
    let mut params = Params { first: 0, values: Vec::new() };
    let mut conditions = vec![match &scope {
        Scope::Everything => "1 = 1".to_owned(),
        Scope::UnitPath(path) => {
            format!("t.unit_id IN (SELECT id FROM grid_units WHERE path LIKE {})", params.push(format!("{path}%")))
        }
        Scope::FiledByOrUnitPath { user_id, path } => format!(
            "(t.filed_by = {} OR t.unit_id IN (SELECT id FROM grid_units WHERE path LIKE {}))",
            params.push(*user_id),
            params.push(format!("{path}%"))
        ),
        Scope::Department(department) => {
            format!("t.id IN (SELECT ticket_id FROM dispatches WHERE department_id = {})", params.push(*department))
        }
        Scope::Nothing => "1 = 0".to_owned(),
    }];
    if let Some(path) = &unit_path {
        conditions.push(format!(
            "t.unit_id IN (SELECT id FROM grid_units WHERE path LIKE {})",
            params.push(format!("{path}%"))
        ));
    }
    if let Some(category) = request.category {
        conditions.push(format!("t.category_id = {}", params.push(category)));
    }
    let offset = ctx.calendar().offset();
    let out_of_range = date_out_of_range;
    let local_midnight = |date: NaiveDate| {
        date.and_time(chrono::NaiveTime::MIN)
            .checked_sub_signed(Duration::seconds(i64::from(offset.local_minus_utc())))
            .map(|t| t.and_utc())
            .ok_or_else(out_of_range)
    };
    let day_after = request.to.succ_opt().ok_or_else(out_of_range)?;
    let period = (local_midnight(request.from)?, local_midnight(day_after)?);
    Ok(Query {
        backend: ctx.db.get_database_backend(),
        period,
        now: ctx.clock.now(),
        scope,
        unit_path,
        where_tickets: conditions.join(" AND "),
        params: params.values,
    })
}

type Groups = BTreeMap<Option<Uuid>, ReportRow>;

async fn compute(ctx: &AppContext, q: &Query, group_by: GroupBy) -> AppResult<(Groups, ReportRow)> {
    let db = &ctx.db;
    let mut groups: Groups = BTreeMap::new();
    let mut total = ReportRow { group_name: "total".into(), ..Default::default() };
    let g = group_by.of_ticket();
    let responsible = responsible_join();

    // A merged duplicate is one request with its survivor: it is received, due, resolved and
    // rated there, and counted here only as a merge (8). What fired on it before the merge
    // (breaches, orders, extensions) stays counted: a merge does not undo a missed deadline.
    let counted_once = format!("t.status <> '{}'", TicketStatus::Merged);

    // 1. Dispatches sent in the period: received, reported in (on time), returned.
    let dispatch_group = if group_by == GroupBy::Department { "d.department_id" } else { g };
    let mut p = q.params();
    let (start, end) = (p.push(q.period.0), p.push(q.period.1));
    let sql = format!(
        "SELECT {dispatch_group} AS grp, COUNT(*) AS a, COUNT(d.acknowledged_at) AS b, \
         SUM(CASE WHEN d.acknowledged_at IS NOT NULL AND d.acknowledged_at <= d.ack_due_at THEN 1 ELSE 0 END) AS c, \
         SUM(CASE WHEN d.returned_at IS NOT NULL THEN 1 ELSE 0 END) AS e \
         FROM dispatches d JOIN tickets t ON t.id = d.ticket_id \
         WHERE d.created_at >= {start} AND d.created_at < {end} AND {counted_once} AND {w} GROUP BY {dispatch_group}",
        w = q.where_tickets
    );
    for (grp, [a, b, c, e]) in counts::<4>(db, q.statement(sql, p)).await? {
        let row = groups.entry(grp).or_default();
        (row.dispatched, row.acknowledged, row.acknowledged_on_time, row.returns) = (a, b, c, e);
    }

    // 2. Tickets whose resolve deadline falls in the period: due, resolved (on time). Cancelled
    //    tickets are not due; merged duplicates count in their survivor.
    let not_due = format!("'{}', '{}'", TicketStatus::Cancelled, TicketStatus::Merged);
    let mut p = q.params();
    let (start, end) = (p.push(q.period.0), p.push(q.period.1));
    let sql = format!(
        "SELECT {g} AS grp, COUNT(*) AS a, COUNT(t.resolved_at) AS b, \
         SUM(CASE WHEN t.resolved_at IS NOT NULL AND t.resolved_at <= t.resolve_due_at THEN 1 ELSE 0 END) AS c \
         FROM tickets t {responsible} \
         WHERE t.resolve_due_at >= {start} AND t.resolve_due_at < {end} AND t.status NOT IN ({not_due}) AND {w} GROUP BY {g}",
        w = q.where_tickets
    );
    for (grp, [a, b, c]) in counts::<3>(db, q.statement(sql, p)).await? {
        let row = groups.entry(grp).or_default();
        (row.due, row.resolved, row.resolved_on_time) = (a, b, c);
    }

    // 3. Ratings given in the period.
    let mut p = q.params();
    let (start, end) = (p.push(q.period.0), p.push(q.period.1));
    let sql = format!(
        "SELECT {g} AS grp, COUNT(*) AS a, SUM(CASE WHEN r.score >= 3 THEN 1 ELSE 0 END) AS b, \
         SUM(CASE WHEN r.score <= 2 THEN 1 ELSE 0 END) AS c \
         FROM ratings r JOIN tickets t ON t.id = r.ticket_id {responsible} \
         WHERE r.created_at >= {start} AND r.created_at < {end} AND {counted_once} AND {w} GROUP BY {g}",
        w = q.where_tickets
    );
    for (grp, [a, b, c]) in counts::<3>(db, q.statement(sql, p)).await? {
        let row = groups.entry(grp).or_default();
        (row.rated, row.satisfied, row.bad_ratings) = (a, b, c);
    }

    // 4. Clock breaches in the period; a dispatch's clock counts for its department.
    let clock_group = if group_by == GroupBy::Department { "COALESCE(cd.department_id, p.department_id)" } else { g };
    let mut p = q.params();
    let (start, end) = (p.push(q.period.0), p.push(q.period.1));
    let sql = format!(
        "SELECT {clock_group} AS grp, COUNT(*) AS a FROM sla_clocks c JOIN tickets t ON t.id = c.ticket_id \
         LEFT JOIN dispatches cd ON cd.id = c.dispatch_id {responsible} \
         WHERE c.breached_at >= {start} AND c.breached_at < {end} AND {w} GROUP BY {clock_group}",
        w = q.where_tickets
    );
    for (grp, [a]) in counts::<1>(db, q.statement(sql, p)).await? {
        groups.entry(grp).or_default().breaches = a;
    }

    // 5. Supervision orders opened in the period.
    let order_group = if group_by == GroupBy::Department { "o.department_id" } else { g };
    let mut p = q.params();
    let (start, end) = (p.push(q.period.0), p.push(q.period.1));
    let sql = format!(
        "SELECT {order_group} AS grp, COUNT(*) AS a FROM supervision_orders o JOIN tickets t ON t.id = o.ticket_id \
         WHERE o.created_at >= {start} AND o.created_at < {end} AND {w} GROUP BY {order_group}",
        w = q.where_tickets
    );
    for (grp, [a]) in counts::<1>(db, q.statement(sql, p)).await? {
        groups.entry(grp).or_default().supervision_orders = a;
    }

    // 5b. Extensions approved in the period; a dispatch's extension counts for its department.
    let extension_group = if group_by == GroupBy::Department { "d.department_id" } else { g };
    let mut p = q.params();
    let (start, end) = (p.push(q.period.0), p.push(q.period.1));
    let sql = format!(
        "SELECT {extension_group} AS grp, COUNT(*) AS a FROM extension_requests x JOIN tickets t ON t.id = x.ticket_id \
         JOIN dispatches d ON d.id = x.dispatch_id \
         WHERE x.status = 'approved' AND x.decided_at >= {start} AND x.decided_at < {end} AND {w} GROUP BY {extension_group}",
        w = q.where_tickets
    );
    for (grp, [a]) in counts::<1>(db, q.statement(sql, p)).await? {
        groups.entry(grp).or_default().extensions = a;
    }

    // 5c. Merges in the period, in the survivor's group (its responsible department for
    //     `department`: the duplicate's dispatches ended with the merge).
    let mut p = q.params();
    let (start, end) = (p.push(q.period.0), p.push(q.period.1));
    let sql = format!(
        "SELECT {g} AS grp, COUNT(*) AS a FROM ticket_merges m JOIN tickets t ON t.id = m.survivor_id {responsible} \
         WHERE m.merged_at >= {start} AND m.merged_at < {end} AND {w} GROUP BY {g}",
        w = q.where_tickets
    );
    for (grp, [a]) in counts::<1>(db, q.statement(sql, p)).await? {
        groups.entry(grp).or_default().merged = a;
    }

    // 6. Overdue now: tickets with a running clock past its deadline.
    // Grouped, and once overall: a ticket late in two groups counts once in the total.
    let overdue_sql = |grp: Option<&str>, p: &mut Params| {
        let now = p.push(q.now);
        let (select, group) = match grp {
            Some(grp) => (grp.to_owned(), format!(" GROUP BY {grp}")),
            None => ("NULL".to_owned(), String::new()),
        };
        format!(
            "SELECT {select} AS grp, COUNT(DISTINCT t.id) AS a FROM sla_clocks c JOIN tickets t ON t.id = c.ticket_id \
             LEFT JOIN dispatches cd ON cd.id = c.dispatch_id {responsible} \
             WHERE c.stopped_at IS NULL AND c.due_at <= {now} AND {w}{group}",
            w = q.where_tickets
        )
    };
    let mut p = q.params();
    let sql = overdue_sql(Some(clock_group), &mut p);
    for (grp, [a]) in counts::<1>(db, q.statement(sql, p)).await? {
        groups.entry(grp).or_default().overdue = a;
    }
    let mut p = q.params();
    let sql = overdue_sql(None, &mut p);
    total.overdue = counts::<1>(db, q.statement(sql, p)).await?.first().map_or(0, |(_, [a])| *a);

    // 7. Percentiles of working time to report in and to resolve, per group and overall.
    let ack_values = |grp: &str, p: &mut Params| {
        let (start, end) = (p.push(q.period.0), p.push(q.period.1));
        format!(
            "SELECT {grp} AS grp, d.ack_working_seconds AS v FROM dispatches d JOIN tickets t ON t.id = d.ticket_id \
             WHERE d.created_at >= {start} AND d.created_at < {end} AND d.ack_working_seconds IS NOT NULL \
             AND {counted_once} AND {w}",
            w = q.where_tickets
        )
    };
    let resolve_values = |grp: &str, p: &mut Params| {
        let (start, end) = (p.push(q.period.0), p.push(q.period.1));
        format!(
            "SELECT {grp} AS grp, t.resolve_working_seconds AS v FROM tickets t {responsible} \
             WHERE t.resolved_at >= {start} AND t.resolved_at < {end} AND t.resolve_working_seconds IS NOT NULL \
             AND {counted_once} AND {w}",
            w = q.where_tickets
        )
    };
    for (values, is_ack) in [(&ack_values as &dyn Fn(&str, &mut Params) -> String, true), (&resolve_values, false)] {
        let grp = if is_ack && group_by == GroupBy::Department { "d.department_id" } else { g };
        for (by_group, grp) in [(true, grp), (false, "0")] {
            let mut p = q.params();
            let inner = values(grp, &mut p);
            let sql = format!(
                "SELECT grp, v, rn, n FROM (SELECT grp, v, ROW_NUMBER() OVER (PARTITION BY grp ORDER BY v) AS rn, \
                 COUNT(*) OVER (PARTITION BY grp) AS n FROM ({inner}) x) y \
                 WHERE rn = (n * 50 + 99) / 100 OR rn = (n * 90 + 99) / 100"
            );
            for (group, value, rank, n) in percentile_rows(db, q.statement(sql, p)).await? {
                let row = if by_group { groups.entry(group).or_default() } else { &mut total };
                let hours = Some(value as f64 / 3600.0);
                let (p50, p90) = if is_ack {
                    (&mut row.ack_hours_p50, &mut row.ack_hours_p90)
                } else {
                    (&mut row.resolve_hours_p50, &mut row.resolve_hours_p90)
                };
                if rank == nearest_rank(n, 50) {
                    *p50 = hours;
                }
                if rank == nearest_rank(n, 90) {
                    *p90 = hours;
                }
            }
        }
    }

    for row in groups.values() {
        total.dispatched += row.dispatched;
        total.acknowledged += row.acknowledged;
        total.acknowledged_on_time += row.acknowledged_on_time;
        total.returns += row.returns;
        total.due += row.due;
        total.resolved += row.resolved;
        total.resolved_on_time += row.resolved_on_time;
        total.rated += row.rated;
        total.satisfied += row.satisfied;
        total.bad_ratings += row.bad_ratings;
        total.breaches += row.breaches;
        total.supervision_orders += row.supervision_orders;
        total.extensions += row.extensions;
        total.merged += row.merged;
    }
    let weights = [
        ctx.settings.reports.weight_response,
        ctx.settings.reports.weight_resolution,
        ctx.settings.reports.weight_satisfaction,
    ];
    for row in groups.values_mut().chain(std::iter::once(&mut total)) {
        row.response_rate = rate(row.acknowledged_on_time, row.dispatched);
        row.resolution_rate = rate(row.resolved, row.due);
        row.satisfaction_rate = rate(row.satisfied, row.rated);
        row.score = score([row.response_rate, row.resolution_rate, row.satisfaction_rate], weights);
    }
    Ok((groups, total))
}

/// Rows of `grp` and N counts (`a`, `b`, `c`, `e`), NULL sums read as 0.
async fn counts<const N: usize>(
    db: &impl ConnectionTrait,
    statement: Statement,
) -> AppResult<Vec<(Option<Uuid>, [i64; N])>> {
    const NAMES: [&str; 4] = ["a", "b", "c", "e"];
    let mut out = Vec::new();
    for row in db.query_all_raw(statement).await? {
        let grp = group_of(&row)?;
        let mut values = [0i64; N];
        for (i, value) in values.iter_mut().enumerate() {
            *value =
                row.try_get::<Option<i64>>("", NAMES[i]).map_err(|e| AppError::Internal(e.to_string()))?.unwrap_or(0);
        }
        out.push((grp, values));
    }
    Ok(out)
}

async fn percentile_rows(
    db: &impl ConnectionTrait,
    statement: Statement,
) -> AppResult<Vec<(Option<Uuid>, i64, i64, i64)>> {
    let mut out = Vec::new();
    for row in db.query_all_raw(statement).await? {
        let get = |name: &str| row.try_get::<i64>("", name).map_err(|e| AppError::Internal(e.to_string()));
        out.push((group_of(&row)?, get("v")?, get("rn")?, get("n")?));
    }
    Ok(out)
}

/// The group column: a UUID, NULL, or the constant of an overall query.
fn group_of(row: &sea_orm::QueryResult) -> AppResult<Option<Uuid>> {
    match row.try_get::<Option<Uuid>>("", "grp") {
        Ok(group) => Ok(group),
        // A channel word: keyed by its stand-in id until `name_groups` names it.
        Err(_) => Ok(row.try_get::<Option<String>>("", "grp").ok().flatten().and_then(|c| channel_key(&c))),
    }
}

/// A channel's stand-in group key (channels have no row, hence no id).
fn channel_key(text: &str) -> Option<Uuid> {
    Channel::ALL.iter().position(|c| c.as_str() == text).map(|i| Uuid::from_u128(i as u128 + 1))
}

/// Names the groups, and adds the idle ones (every department, unit of the level or category
/// in scope), so a report shows who did nothing as well.
async fn name_groups(ctx: &AppContext, q: &Query, request: &ReportRequest, groups: &mut Groups) -> AppResult<()> {
    let db = &ctx.db;
    let scope = &q.scope;
    // A group is shown when it lies inside the jurisdiction or holds the caller's home (the
    // caller sees part of it).
    let within = |path: &str| {
        unit_within(scope, path)
            || matches!(scope, Scope::UnitPath(home) | Scope::FiledByOrUnitPath { path: home, .. } if home.starts_with(path))
    };
    let mut names: HashMap<Uuid, String> = HashMap::new();
    let in_filter = |path: &str| q.unit_path.as_deref().is_none_or(|f| path.starts_with(f) || f.starts_with(path));
    match request.group_by {
        GroupBy::Department => {
            let units: HashMap<Uuid, String> =
                grid_unit::Entity::find().all(db).await?.into_iter().map(|u| (u.id, u.path)).collect();
            for d in department::Entity::find().all(db).await? {
                let path = units.get(&d.unit_id).cloned().unwrap_or_default();
                if d.active && within(&path) && in_filter(&path) && request.category.is_none() {
                    groups.entry(Some(d.id)).or_default();
                }
                names.insert(d.id, d.name);
            }
        }
        GroupBy::Township | GroupBy::County | GroupBy::Grid => {
            let level = match request.group_by {
                GroupBy::Township => entities::UnitLevel::Township,
                GroupBy::County => entities::UnitLevel::County,
                _ => entities::UnitLevel::Grid,
            };
            for u in grid_unit::Entity::find().filter(grid_unit::Column::Level.eq(level)).all(db).await? {
                if within(&u.path) && in_filter(&u.path) {
                    groups.entry(Some(u.id)).or_default();
                }
                names.insert(u.id, u.name);
            }
            for id in groups.keys().flatten() {
                if !names.contains_key(id)
                    && let Some(unit) = grid_unit::Entity::find_by_id(*id).one(db).await?
                {
                    names.insert(unit.id, unit.name);
                }
            }
        }
        GroupBy::Channel => {
            for channel in Channel::ALL {
                if let Some(key) = channel_key(channel.as_str()) {
                    groups.entry(Some(key)).or_default();
                    names.insert(key, channel.as_str().to_owned());
                }
            }
        }
        GroupBy::Category => {
            for c in category::Entity::find().all(db).await? {
                if c.active && request.category.is_none_or(|only| only == c.id) {
                    groups.entry(Some(c.id)).or_default();
                }
                names.insert(c.id, c.name);
            }
        }
    }
    for (id, row) in groups.iter_mut() {
        // A channel is named by its word alone; its stand-in key is no id.
        row.group_id = if request.group_by == GroupBy::Channel { None } else { *id };
        row.group_name = match id {
            Some(id) => names.get(id).cloned().unwrap_or_else(|| id.to_string()),
            None => "（无责任单位）".into(),
        };
    }
    Ok(())
}

/// One late or nearly late item of the overdue list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OverdueItem {
    pub ticket_id: Uuid,
    pub number: String,
    /// acknowledge, first_contact, resolve or rectify
    pub clock: String,
    pub due_at: DateTime<Utc>,
    /// warning or breached
    pub state: String,
    /// Seconds past the deadline; negative: still to go.
    pub late_seconds: i64,
    pub department_id: Option<Uuid>,
    pub department_name: Option<String>,
    /// The county's supervisors (the city's when the county has none).
    pub supervisors: Vec<String>,
}

/// Running clocks past their warning point, latest first, in the caller's jurisdiction.
pub async fn overdue(ctx: &AppContext, caller: &Caller, limit: u64) -> AppResult<Vec<OverdueItem>> {
    use entities::{dispatch, sla_clock, ticket, user};
    use sea_orm::{QueryOrder, QuerySelect};
    require(caller, Permission::ReadReports)?;
    let viewer = Viewer::of(&ctx.db, caller).await?;
    let now = ctx.clock.now();
    let clocks = sla_clock::Entity::find()
        .filter(sla_clock::Column::StoppedAt.is_null())
        .filter(sla_clock::Column::WarnAt.lte(now))
        .filter(sla_clock::Column::TicketId.in_subquery(crate::repo::tickets::ids_in_scope(&viewer.scope())))
        .order_by_asc(sla_clock::Column::DueAt)
        .limit(limit)
        .all(&ctx.db)
        .await?;
    let ticket_ids: Vec<Uuid> = clocks.iter().map(|c| c.ticket_id).collect();
    let tickets: HashMap<Uuid, ticket::Model> = ticket::Entity::find()
        .filter(ticket::Column::Id.is_in(ticket_ids.clone()))
        .all(&ctx.db)
        .await?
        .into_iter()
        .map(|t| (t.id, t))
        .collect();
    let dispatches = crate::repo::tickets::dispatches_of(&ctx.db, &ticket_ids).await?;
    let department_of = |clock: &sla_clock::Model| -> Option<Uuid> {
        match clock.dispatch_id {
            Some(id) => dispatches.iter().find(|d| d.id == id).map(|d| d.department_id),
            None => dispatches
                .iter()
                .rev()
                .find(|d: &&dispatch::Model| {
                    d.ticket_id == clock.ticket_id && crate::domain::ticket::holds_responsibility(&d.role, &d.status)
                })
                .map(|d| d.department_id),
        }
    };
    let departments: HashMap<Uuid, String> =
        department::Entity::find().all(&ctx.db).await?.into_iter().map(|d| (d.id, d.name)).collect();
    let supervisors: Vec<user::Model> = user::Entity::find()
        .filter(user::Column::Role.eq(entities::Role::Supervisor))
        .filter(user::Column::Active.eq(true))
        .all(&ctx.db)
        .await?;
    let city_supervisors: Vec<String> = {
        let cities: Vec<Uuid> = grid_unit::Entity::find()
            .filter(grid_unit::Column::Level.eq(entities::UnitLevel::City))
            .all(&ctx.db)
            .await?
            .into_iter()
            .map(|u| u.id)
            .collect();
        supervisors
            .iter()
            .filter(|u| u.unit_id.is_some_and(|unit| cities.contains(&unit)))
            .map(|u| u.display_name.clone())
            .collect()
    };
    Ok(clocks
        .iter()
        .filter_map(|clock| {
            let ticket = tickets.get(&clock.ticket_id)?;
            let department_id = department_of(clock);
            let county: Vec<String> = supervisors
                .iter()
                .filter(|u| u.unit_id.is_some() && u.unit_id == ticket.county_id)
                .map(|u| u.display_name.clone())
                .collect();
            Some(OverdueItem {
                ticket_id: ticket.id,
                number: ticket.number.clone(),
                clock: clock.clock.clone(),
                due_at: clock.due_at,
                state: if now >= clock.due_at { "breached" } else { "warning" }.into(),
                late_seconds: (now - clock.due_at).num_seconds(),
                department_id,
                department_name: department_id.and_then(|d| departments.get(&d).cloned()),
                supervisors: if county.is_empty() { city_supervisors.clone() } else { county },
            })
        })
        .collect())
}
