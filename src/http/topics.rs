//! 每月一题: topics picked from the hotspot report, their figures and tickets.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{
    dto::List,
    extract::{PathId, Permitted, PermittedQuery, may},
    problem::Problem,
};
use crate::{
    context::AppContext,
    domain::access::Caller,
    error::{AppError, AppResult},
    service::topics::{self, NewTopic, Topic, TopicTicket},
};

/// Pick the month's topic (每月一题).
///
/// Supervisors record the recurring problem — a category at a place in their jurisdiction — chosen for a month
/// (`period` = `YYYY-MM`), usually from `getHotspotReport`. One topic per category, place and month (409 for a
/// second). The answer counts the topic's tickets: that category's tickets filed in the place's subtree in the month.
#[utoipa::path(post, path = "/api/v1/topics", operation_id = "createTopic", tag = "reports", request_body = NewTopic,
    responses((status = 201, body = Topic), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    ctx: web::Data<AppContext>,
    Permitted(caller, body, _): Permitted<may::Supervise, NewTopic>,
) -> AppResult<HttpResponse> {
    let topic = topics::create(&ctx, &caller, body).await?;
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::LOCATION, format!("/api/v1/topics/{}", topic.id)))
        .json(topic))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TopicQuery {
    /// Only this month's topics, YYYY-MM.
    period: Option<String>,
}

/// Topics of places in your jurisdiction, newest month first, with their figures.
///
/// At most 500; `next_cursor` is always null.
#[utoipa::path(get, path = "/api/v1/topics", operation_id = "listTopics", tag = "reports", params(TopicQuery),
    responses((status = 200, body = List<Topic>), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    ctx: web::Data<AppContext>,
    PermittedQuery(caller, q, _): PermittedQuery<may::ReadReports, TopicQuery>,
) -> AppResult<web::Json<List<Topic>>> {
    Ok(web::Json(List { items: topics::list(&ctx, &caller, q.period).await?, next_cursor: None }))
}

/// One topic with its figures: tickets, closed, rated, 满意率, merged duplicates.
#[utoipa::path(get, path = "/api/v1/topics/{id}", operation_id = "getTopic", tag = "reports",
    params(("id" = uuid::Uuid, Path, description = "the id")),
    responses((status = 200, body = Topic), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(ctx: web::Data<AppContext>, PathId(id): PathId, caller: Caller) -> AppResult<web::Json<Topic>> {
    Ok(web::Json(topics::get(&ctx, &caller, id).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TopicTicketQuery {
    /// At most this many (1–500, default 200).
    limit: Option<u64>,
}

/// The topic's tickets, newest first (merged duplicates not; they live on in their survivor).
///
/// `next_cursor` is always null; the whole tickets are at `getTicket`.
#[utoipa::path(get, path = "/api/v1/topics/{id}/tickets", operation_id = "listTopicTickets", tag = "reports",
    params(("id" = uuid::Uuid, Path, description = "the id"), TopicTicketQuery),
    responses((status = 200, body = List<TopicTicket>), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn tickets(
    ctx: web::Data<AppContext>,
    PathId(id): PathId,
    PermittedQuery(caller, q, _): PermittedQuery<may::ReadReports, TopicTicketQuery>,
) -> AppResult<web::Json<List<TopicTicket>>> {
    let limit = q.limit.unwrap_or(200);
    if !(1..=500).contains(&limit) {
        return Err(AppError::invalid("limit", "between 1 and 500"));
    }
    Ok(web::Json(List { items: topics::tickets(&ctx, &caller, id, limit).await?, next_cursor: None }))
}
