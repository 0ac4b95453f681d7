//! The recurring-problem report (高频诉求) as JSON or CSV.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::NaiveDate;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{
    extract::{PermittedQuery, may},
    problem::Problem,
    reports::{csv_in_english, csv_response, csv_text, not_between, not_one_of, rounded, wants_csv},
};
use crate::{
    context::AppContext,
    error::AppResult,
    service::hotspots::{self, HotspotReport, HotspotRequest, PlaceLevel},
};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HotspotQuery {
    /// First day, YYYY-MM-DD, in the city's time zone.
    from: NaiveDate,
    /// Last day, inclusive.
    to: NaiveDate,
    /// Only tickets in this unit's subtree; a unit outside your jurisdiction is 403, an unknown one 404.
    unit_id: Option<uuid::Uuid>,
    /// The place: grid, community (default) or township.
    group_by: Option<String>,
    /// At most this many rows (1–200, default 20). Signed, so that -1 is told the range.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// json (default) or csv; `Accept: text/csv` works too.
    format: Option<String>,
    /// CSV headers: zh (default) or en.
    lang: Option<String>,
}

/// Recurring problems (高频诉求, 每月一题): the category × place pairs with the most tickets.
///
/// Each row: tickets filed in the period, in the period of the same length before, the change, the share repeated
/// at the same spot (within `governance.hotspot_radius_m`), median working hours to resolve, 满意率, merged
/// duplicates and the 每月一题 topic picked for it. Sorted by count. Within your jurisdiction. CSV with
/// `format=csv` or `Accept: text/csv`. Definitions: docs/reports.md.
#[utoipa::path(get, path = "/api/v1/reports/hotspots", operation_id = "getHotspotReport", tag = "reports", params(HotspotQuery),
    responses((status = 200, description = "JSON, or CSV with `format=csv` / `Accept: text/csv`", content((HotspotReport = "application/json"), (String = "text/csv"))), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn hotspots(
    ctx: web::Data<AppContext>,
    req: HttpRequest,
    PermittedQuery(caller, q, _): PermittedQuery<may::ReadReports, HotspotQuery>,
) -> AppResult<HttpResponse> {
    let group_by = match q.group_by.as_deref() {
        None => PlaceLevel::Community,
        Some(text) => {
            PlaceLevel::parse(text).ok_or_else(|| not_one_of("group_by", &["grid", "community", "township"]))?
        }
    };
    let limit = q.limit.unwrap_or(20);
    let limit =
        usize::try_from(limit).ok().filter(|n| (1..=200).contains(n)).ok_or_else(|| not_between("limit", 1, 200))?;
    let csv_wanted = wants_csv(&req, q.format.as_deref())?;
    let english = csv_in_english(q.lang.as_deref())?;
    let request = HotspotRequest { from: q.from, to: q.to, unit: q.unit_id, group_by, limit };
    let report = hotspots::hotspots(&ctx, &caller, request).await?;
    if csv_wanted {
        let name = format!("hotspots-{}-{}-{}", report.group_by, report.from, report.to);
        return Ok(csv_response(csv(&report, english), &name));
    }
    Ok(HttpResponse::Ok().json(report))
}

const COLUMNS: &[(&str, &str, &str)] = &[
    ("category_name", "类别", "category"),
    ("place_name", "地点", "place"),
    ("count", "诉求数", "count"),
    ("previous_count", "上期诉求数", "previous_count"),
    ("change", "增减", "change"),
    ("change_rate", "增减率", "change_rate"),
    ("repeated", "同地重复数", "repeated"),
    ("repeat_share", "同地重复占比", "repeat_share"),
    ("resolve_hours_p50", "办结用时中位数(工作小时)", "resolve_hours_p50"),
    ("rated", "评价数", "rated"),
    ("satisfied", "满意数", "satisfied"),
    ("satisfaction_rate", "满意率", "satisfaction_rate"),
    ("merged", "并单数", "merged"),
    ("topic_id", "每月一题", "topic_id"),
    ("category_id", "类别编号", "category_id"),
    ("place_id", "地点编号", "place_id"),
];

fn csv(report: &HotspotReport, english: bool) -> String {
    let mut out = String::from("\u{feff}");
    let header: Vec<&str> = COLUMNS.iter().map(|(_, zh, en)| if english { *en } else { *zh }).collect();
    out.push_str(&header.join(","));
    out.push_str("\r\n");
    for row in &report.rows {
        let value = serde_json::to_value(row).unwrap_or_default();
        let cells: Vec<String> = COLUMNS
            .iter()
            .map(|(key, ..)| match &value[*key] {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => csv_text(s),
                serde_json::Value::Number(n) if n.is_f64() => {
                    // `_share` is a rate too.
                    let key = if key.ends_with("_share") { "share_rate" } else { key };
                    rounded(key, n.as_f64().unwrap_or_default())
                }
                other => other.to_string(),
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}
