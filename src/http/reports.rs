//! Supervisors' SLA reports as JSON or CSV (UTF-8 with BOM so Excel reads the Chinese).

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use chrono::{Datelike, Duration, NaiveDate};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    dto::List,
    extract::{PermittedQuery, may},
    problem::Problem,
};
use crate::{
    context::AppContext,
    domain::{
        sla::{ClockKind, SlaState},
        validate::Message,
    },
    error::{AppError, AppResult},
    service::reports::{self, GroupBy, Report, ReportRequest, ReportRow},
};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SlaQuery {
    /// First day, YYYY-MM-DD, in the city's time zone.
    from: NaiveDate,
    /// Last day, inclusive.
    to: NaiveDate,
    /// department, township, county, grid, category or channel
    group_by: String,
    /// Only tickets in this unit's subtree (`unit_id` works too, as on the other reports); a
    /// unit outside your jurisdiction is 403, an unknown one 404.
    #[serde(alias = "unit_id")]
    unit: Option<uuid::Uuid>,
    category: Option<uuid::Uuid>,
    /// json (default) or csv; `Accept: text/csv` works too.
    format: Option<String>,
    /// CSV headers: zh (default) or en.
    lang: Option<String>,
}

/// (key, 中文, English) of each column, in the contract's order.
const COLUMNS: &[(&str, &str, &str)] = &[
    ("group_id", "分组编号", "group_id"),
    ("group_name", "分组", "group_name"),
    ("dispatched", "派单数", "dispatched"),
    ("acknowledged", "签收数", "acknowledged"),
    ("acknowledged_on_time", "按时签收数", "acknowledged_on_time"),
    ("response_rate", "响应率", "response_rate"),
    ("due", "应办结数", "due"),
    ("resolved", "办结数", "resolved"),
    ("resolved_on_time", "按时办结数", "resolved_on_time"),
    ("resolution_rate", "解决率", "resolution_rate"),
    ("rated", "评价数", "rated"),
    ("satisfied", "满意数", "satisfied"),
    ("bad_ratings", "差评数", "bad_ratings"),
    ("satisfaction_rate", "满意率", "satisfaction_rate"),
    ("returns", "退单数", "returns"),
    ("breaches", "超时次数", "breaches"),
    ("supervision_orders", "督办数", "supervision_orders"),
    ("extensions", "延期数", "extensions"),
    ("merged", "并单数", "merged"),
    ("ack_hours_p50", "签收用时中位数(工作小时)", "ack_hours_p50"),
    ("ack_hours_p90", "签收用时P90(工作小时)", "ack_hours_p90"),
    ("resolve_hours_p50", "办结用时中位数(工作小时)", "resolve_hours_p50"),
    ("resolve_hours_p90", "办结用时P90(工作小时)", "resolve_hours_p90"),
    ("overdue", "当前超期数", "overdue"),
    ("score", "综合得分", "score"),
];

pub(crate) fn wants_csv(req: &HttpRequest, format: Option<&str>) -> AppResult<bool> {
    match format {
        Some("csv") => Ok(true),
        Some("json") => Ok(false),
        Some(_) => Err(not_one_of("format", &["json", "csv"])),
        None => {
            Ok(req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/csv")))
        }
    }
}

/// Whether CSV headers are wanted in English (`lang=en`) rather than Chinese (`zh`, the default).
pub(crate) fn csv_in_english(lang: Option<&str>) -> AppResult<bool> {
    match lang {
        None | Some("zh") => Ok(false),
        Some("en") => Ok(true),
        Some(_) => Err(not_one_of("lang", &["zh", "en"])),
    }
}

/// 422: `field` takes one of `words`.
pub(crate) fn not_one_of(field: &str, words: &[&str]) -> AppError {
    AppError::invalid(field, Message::OneOf(words.iter().map(|w| (*w).to_owned()).collect()))
}

/// 422: `field` lies between `min` and `max`.
pub(crate) fn not_between(field: &str, min: i64, max: i64) -> AppError {
    AppError::invalid(field, Message::said(format!("应为 {min} 到 {max}"), format!("must be between {min} and {max}")))
}

/// A text cell: neutralised when it starts like a spreadsheet formula — `=`, `+`, `-`, `@`, tab
/// or carriage return get a leading `'` (OWASP's advice against CSV injection), so a name such
/// as `=HYPERLINK(…)` shows as text — then quoted when it holds a separator. Every text cell
/// goes through here; numeric cells are written from numbers and are never prefixed, so a
/// negative figure stays a number.
pub(crate) fn csv_text(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}") } else { text.to_owned() };
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text }
}

fn csv(rows: &[ReportRow], total: &ReportRow, english: bool) -> String {
    let mut out = String::from("\u{feff}");
    let header: Vec<&str> = COLUMNS.iter().map(|(_, zh, en)| if english { *en } else { *zh }).collect();
    out.push_str(&header.join(","));
    out.push_str("\r\n");
    let mut total = total.clone();
    total.group_name = if english { "Total".into() } else { "合计".into() };
    for row in rows.iter().chain(std::iter::once(&total)) {
        let value = serde_json::to_value(row).unwrap_or_default();
        let cells: Vec<String> = COLUMNS
            .iter()
            .map(|(key, ..)| match &value[*key] {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => csv_text(s),
                serde_json::Value::Number(n) if n.is_f64() => rounded(key, n.as_f64().unwrap_or_default()),
                other => other.to_string(),
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

/// Rates to 4 decimals (0.8333), hours and scores to 2: what a spreadsheet reader wants, and
/// no float noise (0.30000000000000004). JSON keeps full precision.
pub(crate) fn rounded(key: &str, value: f64) -> String {
    let decimals = if key.ends_with("_rate") { 4 } else { 2 };
    let text = format!("{value:.decimals$}");
    // 0.5000 → 0.5, 12.00 → 12: the shortest text of the rounded number.
    if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_owned() } else { text }
}

pub(crate) fn csv_response(body: String, name: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}.csv\"")))
        .body(body)
}

/// The SLA report for a period, grouped.
///
/// Per department, township, county, grid, category or channel: dispatched, acknowledged on time, 响应率, 解决率, 满意率, returns,
/// breaches, merges (并单; a merged duplicate counts once, in its survivor), median and p90 times, currently overdue. Within
/// your jurisdiction. CSV (UTF-8 with BOM, headers in
/// Chinese or with `lang=en` in English) with `format=csv` or `Accept: text/csv`.
#[utoipa::path(get, path = "/api/v1/reports/sla", operation_id = "getSlaReport", tag = "reports", params(SlaQuery),
    responses((status = 200, description = "JSON, or CSV with `format=csv` / `Accept: text/csv`", content((Report = "application/json"), (String = "text/csv"))), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn sla(
    ctx: web::Data<AppContext>,
    req: HttpRequest,
    PermittedQuery(caller, q, _): PermittedQuery<may::ReadReports, SlaQuery>,
) -> AppResult<HttpResponse> {
    let group_by = GroupBy::parse(&q.group_by)
        .ok_or_else(|| not_one_of("group_by", &["department", "township", "county", "grid", "category", "channel"]))?;
    let csv_wanted = wants_csv(&req, q.format.as_deref())?;
    let english = csv_in_english(q.lang.as_deref())?;
    let request = ReportRequest { from: q.from, to: q.to, group_by, unit: q.unit, category: q.category };
    let report = reports::sla_report(&ctx, &caller, request).await?;
    if csv_wanted {
        let name = format!("sla-{}-{}-{}", report.group_by, report.from, report.to);
        return Ok(csv_response(csv(&report.rows, &report.total, english), &name));
    }
    Ok(HttpResponse::Ok().json(report))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TrendQuery {
    /// First day; default 29 days before `to` (30 days in all).
    from: Option<NaiveDate>,
    /// Last day, inclusive; default today in the city's time zone.
    to: Option<NaiveDate>,
    /// day, week (from Monday) or month
    interval: String,
    /// As on `getSlaReport` (`unit_id` works too).
    #[serde(alias = "unit_id")]
    unit: Option<uuid::Uuid>,
    category: Option<uuid::Uuid>,
    format: Option<String>,
    lang: Option<String>,
}

/// A trend's points at most: each is a report of its own.
const MAX_TREND_POINTS: usize = 120;

#[derive(Debug, Serialize, ToSchema)]
pub struct TrendPoint {
    pub from: NaiveDate,
    pub to: NaiveDate,
    #[serde(flatten)]
    pub figures: ReportRow,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Trend {
    pub interval: String,
    pub points: Vec<TrendPoint>,
}

/// The report's totals per day, week or month.
///
/// The same definitions as `getSlaReport`, as a time series of at most 120 points. CSV with `format=csv` or
/// `Accept: text/csv`.
#[utoipa::path(get, path = "/api/v1/reports/trend", operation_id = "getTrendReport", tag = "reports", params(TrendQuery),
    responses((status = 200, description = "JSON, or CSV with `format=csv` / `Accept: text/csv`", content((Trend = "application/json"), (String = "text/csv"))), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn trend(
    ctx: web::Data<AppContext>,
    req: HttpRequest,
    PermittedQuery(caller, q, _): PermittedQuery<may::ReadReports, TrendQuery>,
) -> AppResult<HttpResponse> {
    let csv_wanted = wants_csv(&req, q.format.as_deref())?;
    let english = csv_in_english(q.lang.as_deref())?;
    let to = q.to.unwrap_or_else(|| ctx.clock.now().with_timezone(&ctx.calendar().offset()).date_naive());
    let from = q.from.unwrap_or_else(|| to - Duration::days(29));
    // Near today and in order, but not bound to a year: a trend of months may span more.
    reports::check_dates_in_order(&ctx, from, to)?;
    let out_of_range = reports::date_out_of_range;
    // The buckets first: a request for too many is refused before any query runs.
    let mut buckets = Vec::new();
    let mut start = from;
    while start <= to {
        let next = match q.interval.as_str() {
            "day" => start.checked_add_signed(Duration::days(1)),
            "week" => start.checked_add_signed(Duration::days(7 - i64::from(start.weekday().num_days_from_monday()))),
            "month" => {
                let (y, m) =
                    if start.month() == 12 { (start.year() + 1, 1) } else { (start.year(), start.month() + 1) };
                NaiveDate::from_ymd_opt(y, m, 1)
            }
            _ => return Err(not_one_of("interval", &["day", "week", "month"])),
        }
        .ok_or_else(out_of_range)?;
        if buckets.len() >= MAX_TREND_POINTS {
            return Err(AppError::invalid(
                "interval",
                Message::said(
                    format!("最多 {MAX_TREND_POINTS} 个时间点，请选更长的间隔"),
                    format!("must give at most {MAX_TREND_POINTS} points; choose a longer interval"),
                ),
            ));
        }
        buckets.push((start, next.pred_opt().ok_or_else(out_of_range)?.min(to)));
        start = next;
    }
    let mut points = Vec::with_capacity(buckets.len());
    for (start, end) in buckets {
        let request =
            ReportRequest { from: start, to: end, group_by: GroupBy::Category, unit: q.unit, category: q.category };
        let mut figures = reports::totals(&ctx, &caller, &request).await?;
        figures.group_name = format!("{start}");
        points.push(TrendPoint { from: start, to: end, figures });
    }
    if csv_wanted {
        let rows: Vec<ReportRow> = points
            .iter()
            .map(|p| ReportRow { group_name: format!("{} – {}", p.from, p.to), ..p.figures.clone() })
            .collect();
        let total = ReportRow { group_name: String::new(), ..Default::default() };
        let mut body = csv(&rows, &total, english);
        // A trend has no total line.
        if let Some(cut) = body.trim_end_matches("\r\n").rfind("\r\n") {
            body.truncate(cut + 2);
        }
        return Ok(csv_response(body, &format!("trend-{}-{from}-{to}", q.interval)));
    }
    Ok(HttpResponse::Ok().json(Trend { interval: q.interval, points }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OverdueQuery {
    /// At most this many items (1–500, default 100). Signed, so that -1 is told the range.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    format: Option<String>,
}

/// Open items past their deadline or warning point.
///
/// The latest `limit` clocks past their warning point (80 %) or deadline, latest first, with the responsible
/// department and supervisors; `next_cursor` is always null. CSV with `format=csv` or `Accept: text/csv`.
#[utoipa::path(get, path = "/api/v1/reports/overdue", operation_id = "getOverdueReport", tag = "reports", params(OverdueQuery),
    responses((status = 200, description = "the latest `limit` items; `next_cursor` is always null. CSV with `format=csv` / `Accept: text/csv`", content((List<reports::OverdueItem> = "application/json"), (String = "text/csv"))), (status = 403, body = Problem)), security(("bearer" = [])))]
pub async fn overdue(
    ctx: web::Data<AppContext>,
    req: HttpRequest,
    PermittedQuery(caller, q, _): PermittedQuery<may::ReadReports, OverdueQuery>,
) -> AppResult<HttpResponse> {
    let limit = q.limit.unwrap_or(100);
    let limit =
        u64::try_from(limit).ok().filter(|n| (1..=500).contains(n)).ok_or_else(|| not_between("limit", 1, 500))?;
    let items = reports::overdue(&ctx, &caller, limit).await?;
    if wants_csv(&req, q.format.as_deref())? {
        return Ok(csv_response(overdue_csv(&items, ctx.calendar().offset()), "overdue"));
    }
    Ok(HttpResponse::Ok().json(List { items, next_cursor: None }))
}

/// The overdue list for a spreadsheet: Chinese labels, the city's local time to the second.
fn overdue_csv(items: &[reports::OverdueItem], offset: chrono::FixedOffset) -> String {
    let clock_name = |clock: &str| ClockKind::parse(clock).map_or("", ClockKind::label);
    let state_name = |state: &str| SlaState::parse(state).map_or("", SlaState::label);
    let mut body = String::from("\u{feff}工单编号,时限,截止时间(北京时间),状态,超时秒数,责任部门,督办人\r\n");
    for item in items {
        let line = [
            csv_text(&item.number),
            csv_text(clock_name(&item.clock)),
            item.due_at.with_timezone(&offset).format("%Y-%m-%d %H:%M:%S").to_string(),
            csv_text(state_name(&item.state)),
            item.late_seconds.to_string(),
            csv_text(item.department_name.as_deref().unwrap_or_default()),
            csv_text(&item.supervisors.join("、")),
        ];
        body.push_str(&line.join(","));
        body.push_str("\r\n");
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_cells_that_look_like_formulas_are_neutralised() {
        assert_eq!(
            csv_text(r#"=HYPERLINK("http://x.example","click")"#),
            r#""'=HYPERLINK(""http://x.example"",""click"")""#
        );
        for (text, cell) in [
            ("=1+1", "'=1+1"),
            ("+1", "'+1"),
            ("-1", "'-1"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "\"'\r=1\""),
            ("忻府区城市管理局", "忻府区城市管理局"),
            ("a=b", "a=b"),
            ("a,b", "\"a,b\""),
            ("", ""),
        ] {
            assert_eq!(csv_text(text), cell, "{text:?}");
        }
    }

    #[test]
    fn numbers_stay_numbers_and_names_are_neutralised_in_every_csv() {
        let row =
            ReportRow {
                group_name: "-负责人".into(), dispatched: 3, response_rate: Some(0.5), ..Default::default()
            };
        let total = ReportRow::default();
        let text = csv(&[row], &total, true);
        let line = text.lines().nth(1).expect("a row");
        assert!(line.starts_with(",'-负责人,3,0,0,0.5,"), "{line}");

        let item = reports::OverdueItem {
            ticket_id: uuid::Uuid::nil(),
            number: "XZ-2026-000001".into(),
            clock: "resolve".into(),
            due_at: chrono::DateTime::UNIX_EPOCH,
            state: "warning".into(),
            late_seconds: -3600,
            department_id: None,
            department_name: Some("=cmd|' /C calc'!A0".into()),
            supervisors: vec!["@督办".into(), "陈刚".into()],
        };
        let cst = chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8");
        let text = overdue_csv(&[item], cst);
        let line = text.lines().nth(1).expect("a row");
        assert_eq!(line, "XZ-2026-000001,办结,1970-01-01 08:00:00,即将超时,-3600,'=cmd|' /C calc'!A0,'@督办、陈刚");
    }
}
