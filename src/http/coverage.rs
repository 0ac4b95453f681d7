//! The survey-coverage report (满意度调查覆盖) as JSON or CSV.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::NaiveDate;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{
    extract::{PermittedQuery, may},
    problem::Problem,
    reports::{csv_in_english, csv_response, csv_text, rounded, wants_csv},
};
use crate::{
    context::AppContext,
    error::AppResult,
    service::coverage::{self, CoverageReport, CoverageRequest, CoverageRow},
};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CoverageQuery {
    /// First day, YYYY-MM-DD, in the city's time zone.
    from: NaiveDate,
    /// Last day, inclusive.
    to: NaiveDate,
    /// Only communities in (or holding) this unit's subtree; a unit outside your jurisdiction is 403, an
    /// unknown one 404.
    unit_id: Option<uuid::Uuid>,
    /// Rated tickets a community needs to count as covered (default `governance.coverage_min_rated`).
    min_rated: Option<i64>,
    /// json (default) or csv; `Accept: text/csv` works too.
    format: Option<String>,
    /// CSV headers: zh (default) or en.
    lang: Option<String>,
}

/// Satisfaction-survey coverage of every community (满意度调查覆盖所有村（社区）).
///
/// For each community or village in your jurisdiction: tickets closed and rated in the period, 满意率, the five
/// 好差评 levels, merged duplicates, and whether it is covered (at least `min_rated` rated tickets). Totals: communities,
/// covered, coverage rate, and the uncovered communities. CSV (one line per community, then the total) with
/// `format=csv` or `Accept: text/csv`. Definitions: docs/reports.md.
#[utoipa::path(get, path = "/api/v1/reports/coverage", operation_id = "getCoverageReport", tag = "reports", params(CoverageQuery),
    responses((status = 200, description = "JSON, or CSV with `format=csv` / `Accept: text/csv`", content((CoverageReport = "application/json"), (String = "text/csv"))), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn coverage(
    ctx: web::Data<AppContext>,
    req: HttpRequest,
    PermittedQuery(caller, q, _): PermittedQuery<may::ReadReports, CoverageQuery>,
) -> AppResult<HttpResponse> {
    let csv_wanted = wants_csv(&req, q.format.as_deref())?;
    let english = csv_in_english(q.lang.as_deref())?;
    let request = CoverageRequest { from: q.from, to: q.to, unit: q.unit_id, min_rated: q.min_rated };
    let report = coverage::coverage(&ctx, &caller, request).await?;
    if csv_wanted {
        let name = format!("coverage-{}-{}", report.from, report.to);
        return Ok(csv_response(csv(&report, english), &name));
    }
    Ok(HttpResponse::Ok().json(report))
}

const COLUMNS: &[(&str, &str, &str)] = &[
    ("community_id", "社区编号", "community_id"),
    ("community_name", "村（社区）", "community"),
    ("township_name", "街道（乡镇）", "township"),
    ("closed", "办结关闭数", "closed"),
    ("rated", "评价数", "rated"),
    ("satisfied", "满意数", "satisfied"),
    ("satisfaction_rate", "满意率", "satisfaction_rate"),
    ("rated_5", "非常满意", "rated_5"),
    ("rated_4", "满意", "rated_4"),
    ("rated_3", "基本满意", "rated_3"),
    ("rated_2", "不满意", "rated_2"),
    ("rated_1", "非常不满意", "rated_1"),
    ("merged", "并单数", "merged"),
    ("covered", "是否覆盖", "covered"),
];

fn csv(report: &CoverageReport, english: bool) -> String {
    let mut out = String::from("\u{feff}");
    let header: Vec<&str> = COLUMNS.iter().map(|(_, zh, en)| if english { *en } else { *zh }).collect();
    out.push_str(&header.join(","));
    out.push_str("\r\n");
    let mut total = report.total.clone();
    total.community_name = if english { "Total".into() } else { "合计".into() };
    let (yes, no) = if english { ("yes", "no") } else { ("是", "否") };
    for row in report.rows.iter().chain(std::iter::once(&total)) {
        out.push_str(&line(row, yes, no));
    }
    out
}

fn line(row: &CoverageRow, yes: &str, no: &str) -> String {
    let value = serde_json::to_value(row).unwrap_or_default();
    let cells: Vec<String> = COLUMNS
        .iter()
        .map(|(key, ..)| match &value[*key] {
            serde_json::Value::Null => String::new(),
            serde_json::Value::Bool(b) => (if *b { yes } else { no }).to_owned(),
            serde_json::Value::String(s) => csv_text(s),
            serde_json::Value::Number(n) if n.is_f64() => rounded(key, n.as_f64().unwrap_or_default()),
            other => other.to_string(),
        })
        .collect();
    cells.join(",") + "\r\n"
}
