//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use actix_web::HttpResponse;
use utoipa::{
    Modify, OpenApi,
    openapi::security::{Http, HttpAuthScheme, SecurityScheme},
};

use super::{
    categories, departments, dispatches, grid_units, health, notifications, reports, routing, session, sla, tickets,
    users,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "GridWhistle", description = "吹哨报到 · 接诉即办 — community service requests, routing and SLA tracking."),
    paths(
        health::healthz, health::readyz, document,
        session::token, session::refresh, session::logout, session::me,
        tickets::contact, tickets::erase, tickets::audit,
        grid_units::list, grid_units::create, grid_units::get, grid_units::update, grid_units::delete,
        grid_units::children, grid_units::locate,
        departments::list, departments::create, departments::get, departments::update, departments::delete,
        categories::list, categories::create, categories::get, categories::update, categories::delete,
        routing::list, routing::create, routing::get, routing::update, routing::delete, routing::resolve,
        users::list, users::create, users::get, users::update, users::delete,
        tickets::file, tickets::list, tickets::get, tickets::events, tickets::dispatch, tickets::whistle,
        tickets::rate, tickets::cancel,
        dispatches::list, dispatches::get, dispatches::acknowledge, dispatches::return_dispatch,
        dispatches::reject_return, dispatches::progress, dispatches::resolve,
        sla::policies, sla::policy, sla::put_policy, sla::deadline, sla::years, sla::add_year,
        sla::supervise, sla::orders, sla::reply,
        sla::request_extension, sla::approve_extension, sla::reject_extension,
        reports::sla, reports::trend, reports::overdue,
        sla::rules, sla::create_rule, sla::replace_rule, sla::delete_rule, sla::notifications, sla::prometheus,
        notifications::retry, notifications::retry_dead,
    ),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses((status = 200, description = "this document")))]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
