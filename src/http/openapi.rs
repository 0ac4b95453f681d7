//! The OpenAPI 3.1 document, generated from the handlers' annotations, and the browsable API
//! reference at `/docs/`.
//!
//! What many operations share is added here once, from facts the annotations already carry,
//! rather than copied onto each handler: the problem responses the extractors produce (401 for
//! a secured operation, 400/413/415/422 for a JSON body, 422 for a strict query string, 404 for
//! an id in the path, 400/412 for `If-Match`, 503 when the database is busy), every error as
//! `application/problem+json`, and who may call each operation — taken from the same
//! permission table (`domain::access`) the services enforce.

use actix_web::{HttpResponse, http::header};
use entities::Role;
use sea_orm::Iterable;
use utoipa::{
    Modify, OpenApi,
    openapi::{
        ContentBuilder, Ref, RefOr, Response, ResponseBuilder,
        header::HeaderBuilder,
        path::{Operation, ParameterIn},
        schema::{ObjectBuilder, Type},
        security::{Http, HttpAuthScheme, SecurityScheme},
    },
};
use utoipa_swagger_ui::{Config, SwaggerUi};

use super::{
    api_keys, attachments, categories, departments, devices, dispatches, event_stream, grid_units, health,
    notifications, reports, routing, session, sla, tickets, uploads, users, webhooks,
};
use super::{coverage, duplicates, hotspots, topics};
use crate::domain::access::{Permission, role_may};

const INFO: &str = "吹哨报到 · 接诉即办 — community service requests, routing and SLA tracking.

All API paths are under `/api/v1`; bodies are JSON (snake_case), ids are UUID strings, times \
RFC 3339. Authenticate with `Authorization: Bearer <token>` from `logIn`. Lists answer \
`{\"items\": […], \"next_cursor\": \"…\" | null}`: pass `cursor` (and `limit`, at most 200) to \
read on. Ticket reads carry an `ETag`; send it back as `If-Match` on a ticket write to get 412 \
instead of overwriting someone else's change, or as `If-None-Match` on a read (ticket lists too) to get 304 \
when nothing changed. `listTickets` answers a summary of each ticket unless asked for `view=full`. Answers are \
gzip- or br-compressed for clients that send `Accept-Encoding`. Every error is an RFC 9457 problem document \
(`application/problem+json`: `type`, `title`, `status`, `detail`, and `errors` naming each \
invalid field on 422). 503 and 429 carry `Retry-After`.";

#[derive(OpenApi)]
#[openapi(
    info(title = "GridWhistle", description = INFO),
    paths(
        health::healthz, health::readyz, document,
        session::token, session::refresh, session::logout, session::me,
        tickets::contact, tickets::erase, tickets::audit,
        grid_units::list, grid_units::create, grid_units::get, grid_units::update, grid_units::delete,
        grid_units::children, grid_units::locate,
        departments::list, departments::create, departments::get, departments::update, departments::delete,
        categories::list, categories::create, categories::get, categories::update, categories::delete,
        devices::list, devices::create, devices::get, devices::update, devices::disable,
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
        api_keys::create, api_keys::list, api_keys::revoke,
        webhooks::create, webhooks::list, webhooks::get, webhooks::update, webhooks::delete,
        webhooks::rotate_secret, webhooks::deliveries, webhooks::redeliver,
        event_stream::stream, event_stream::stream_token,
        uploads::upload, attachments::get, attachments::thumbnail, attachments::attach,
        coverage::coverage, hotspots::hotspots, topics::create, topics::list, topics::get, topics::tickets,
        duplicates::possible_duplicates, duplicates::merge,
    ),
    tags(
        (name = "auth", description = "Log in (get a bearer token), refresh it, log out, and who am I."),
        (name = "tickets", description = "诉求工单: file, read, dispatch, 吹哨, rate, cancel; the timeline; the audited reveal of a resident's contact."),
        (name = "dispatches", description = "派单: a department's part of a ticket — 签收/报到, 退单, progress, 办结 — and extension requests."),
        (name = "supervision", description = "督办: supervision orders on late tickets and the departments' replies."),
        (name = "sla", description = "SLA policies per category, the business calendar (holidays, 调休) and its deadline arithmetic."),
        (name = "reports", description = "Supervisors' SLA reports (响应率, 解决率, 满意率 …) as JSON or CSV."),
        (name = "grid units", description = "The unit tree city › county › township › community › grid, with boundaries to locate a point."),
        (name = "departments", description = "The departments tickets are dispatched to."),
        (name = "categories", description = "The request taxonomy (养老, 物业, 市容环境 …)."),
        (name = "devices", description = "Community sensors (社区感知设施) whose MQTT alarms file tickets."),
        (name = "routing", description = "Routing rules (category, unit subtree) → departments, and a preview of where a ticket would go."),
        (name = "users", description = "Accounts and their roles (admin; supervisors read their subtree's)."),
        (name = "open311", description = "API keys of the Open311 GeoReport v2 clients. The GeoReport endpoints themselves (`/open311/v2/…`, JSON and XML, Open311 error arrays) follow the GeoReport v2 specification and are not described here."),
        (name = "attachments", description = "Photos and documents: upload (re-encoded without metadata), read with the ticket's access rules, thumbnails."),
        (name = "operations", description = "Health, readiness, metrics, this document, escalation rules, the mail outbox and the audit log."),
    ),
    modifiers(&BearerAuth, &SharedResponses)
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// Who may call an operation.
#[derive(Debug, Clone, Copy)]
enum Access {
    /// Any user with a live token.
    SignedIn,
    /// The roles holding this permission.
    Needs(Permission),
}

/// The permission each secured operation's service checks, by operationId. A unit test keeps
/// it complete.
const ACCESS: &[(&str, Access)] = {
    use Access::*;
    use Permission::*;
    &[
        ("refreshToken", SignedIn),
        ("logOut", SignedIn),
        ("getMe", SignedIn),
        ("listGridUnits", Needs(ReadReferenceData)),
        ("createGridUnit", Needs(ManageReferenceData)),
        ("getGridUnit", Needs(ReadReferenceData)),
        ("updateGridUnit", Needs(ManageReferenceData)),
        ("deleteGridUnit", Needs(ManageReferenceData)),
        ("listGridUnitChildren", Needs(ReadReferenceData)),
        ("locateGridUnit", Needs(ReadReferenceData)),
        ("listDepartments", Needs(ReadReferenceData)),
        ("createDepartment", Needs(ManageReferenceData)),
        ("getDepartment", Needs(ReadReferenceData)),
        ("updateDepartment", Needs(ManageReferenceData)),
        ("deleteDepartment", Needs(ManageReferenceData)),
        ("listCategories", Needs(ReadReferenceData)),
        ("createCategory", Needs(ManageReferenceData)),
        ("getCategory", Needs(ReadReferenceData)),
        ("updateCategory", Needs(ManageReferenceData)),
        ("deleteCategory", Needs(ManageReferenceData)),
        ("listDevices", Needs(ReadReferenceData)),
        ("createDevice", Needs(ManageReferenceData)),
        ("getDevice", Needs(ReadReferenceData)),
        ("updateDevice", Needs(ManageReferenceData)),
        ("disableDevice", Needs(ManageReferenceData)),
        ("listRoutingRules", Needs(ReadRouting)),
        ("createRoutingRule", Needs(ManageReferenceData)),
        ("getRoutingRule", Needs(ReadRouting)),
        ("updateRoutingRule", Needs(ManageReferenceData)),
        ("deleteRoutingRule", Needs(ManageReferenceData)),
        ("resolveRouting", Needs(ReadRouting)),
        ("listUsers", Needs(ReadUsers)),
        ("createUser", Needs(ManageUsers)),
        ("getUser", Needs(ReadUsers)),
        ("updateUser", Needs(ManageUsers)),
        ("disableUser", Needs(ManageUsers)),
        ("fileTicket", Needs(FileTicket)),
        ("listTickets", Needs(ReadTickets)),
        ("getTicket", Needs(ReadTickets)),
        ("listTicketEvents", Needs(ReadTickets)),
        ("dispatchTicket", Needs(DispatchTicket)),
        ("whistleTicket", Needs(DispatchTicket)),
        ("rateTicket", Needs(RateTicket)),
        ("cancelTicket", Needs(DispatchTicket)),
        ("revealTicketContact", Needs(ReadTickets)),
        ("erasePersonalData", Needs(ErasePersonalData)),
        ("listAuditRecords", Needs(ReadAudit)),
        ("listDispatches", Needs(ReadTickets)),
        ("getDispatch", Needs(ReadTickets)),
        ("acknowledgeDispatch", Needs(HandleDispatch)),
        ("returnDispatch", Needs(HandleDispatch)),
        ("rejectDispatchReturn", Needs(DispatchTicket)),
        ("postDispatchProgress", Needs(HandleDispatch)),
        ("resolveDispatch", Needs(HandleDispatch)),
        ("requestExtension", Needs(HandleDispatch)),
        ("approveExtension", Needs(DispatchTicket)),
        ("rejectExtension", Needs(DispatchTicket)),
        ("superviseTicket", Needs(Supervise)),
        ("listSupervisionOrders", Needs(ReadTickets)),
        ("replyToSupervisionOrder", Needs(HandleDispatch)),
        ("listSlaPolicies", Needs(ReadRouting)),
        ("getSlaPolicy", Needs(ReadRouting)),
        ("replaceSlaPolicy", Needs(ManageReferenceData)),
        ("computeDeadline", SignedIn),
        ("listCalendarYears", SignedIn),
        ("loadCalendarYear", Needs(ManageReferenceData)),
        ("getSlaReport", Needs(ReadReports)),
        ("getTrendReport", Needs(ReadReports)),
        ("getOverdueReport", Needs(ReadReports)),
        ("listEscalationRules", Needs(ReadRouting)),
        ("createEscalationRule", Needs(Operate)),
        ("replaceEscalationRule", Needs(Operate)),
        ("deleteEscalationRule", Needs(Operate)),
        ("listNotifications", Needs(Operate)),
        ("retryNotification", Needs(Operate)),
        ("retryDeadNotifications", Needs(Operate)),
        ("createApiKey", Needs(ManageUsers)),
        ("listApiKeys", Needs(ManageUsers)),
        ("revokeApiKey", Needs(ManageUsers)),
        ("createWebhook", Needs(Operate)),
        ("listWebhooks", Needs(Operate)),
        ("getWebhook", Needs(Operate)),
        ("updateWebhook", Needs(Operate)),
        ("deleteWebhook", Needs(Operate)),
        ("rotateWebhookSecret", Needs(Operate)),
        ("listWebhookDeliveries", Needs(Operate)),
        ("redeliverWebhook", Needs(Operate)),
        ("streamEvents", Needs(ReadTickets)),
        ("createEventStreamToken", Needs(ReadTickets)),
        ("uploadFile", Needs(UploadFile)),
        ("getAttachment", Needs(ReadTickets)),
        ("getAttachmentThumbnail", Needs(ReadTickets)),
        ("attachDispatchEvidence", Needs(HandleDispatch)),
        ("getCoverageReport", Needs(ReadReports)),
        ("getHotspotReport", Needs(ReadReports)),
        ("createTopic", Needs(Supervise)),
        ("listTopics", Needs(ReadReports)),
        ("getTopic", Needs(ReadReports)),
        ("listTopicTickets", Needs(ReadReports)),
        ("listPossibleDuplicates", Needs(ReadTickets)),
        ("mergeTicket", Needs(DispatchTicket)),
    ]
};

fn role_name(role: Role) -> String {
    serde_json::to_value(role).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// The roles allowed, or `None` when every role is.
fn allowed_roles(access: Access) -> Option<Vec<String>> {
    match access {
        Access::SignedIn => None,
        Access::Needs(permission) => {
            let roles: Vec<Role> = Role::iter().filter(|role| role_may(*role, permission)).collect();
            (roles.len() < Role::iter().count()).then(|| roles.into_iter().map(role_name).collect())
        }
    }
}

fn problem(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build(),
        )
        .build()
}

fn integer_header(description: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new().schema(ObjectBuilder::new().schema_type(Type::Integer)).description(Some(description)).build()
}

fn string_header(description: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new().schema(ObjectBuilder::new().schema_type(Type::String)).description(Some(description)).build()
}

struct SharedResponses;

impl Modify for SharedResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ];
            for op in operations.into_iter().flatten() {
                complete(op);
            }
        }
    }
}

/// What an operation's annotation tells about the errors it can meet.
struct Facts {
    secured: bool,
    database: bool,
    body: bool,
    query: bool,
    path_id: bool,
    if_match: bool,
    /// The roles allowed, when not every role is.
    roles: Option<Vec<String>>,
}

/// The standard description of an error status, for the operations it applies to.
fn standard(status: u16, facts: &Facts) -> Option<String> {
    let text = match status {
        400 if facts.if_match => "the body is not JSON, or `If-Match` is not an ETag like `\"3\"`",
        400 if facts.body => "the body is not JSON, or could not be read",
        401 if facts.secured => "no bearer token, or it is unknown, expired or revoked: log in again (`logIn`)",
        403 => {
            return facts
                .roles
                .as_ref()
                .map(|roles| format!("your role may not do this; it needs {}", roles.join(" or ")));
        }
        404 if facts.path_id => "no such id, or not in your jurisdiction (answered alike, so ids cannot be probed)",
        409 => "the current state does not allow this; `detail` says why",
        412 if facts.if_match => {
            "`If-Match` names an older version: someone changed the ticket since you read it; read it again, then retry"
        }
        413 if facts.body => "the body exceeds `http.body_limit`",
        415 if facts.body => "send the body as `Content-Type: application/json`",
        422 if facts.body => "a field is missing, unknown, ill-typed or invalid; `errors` names each one",
        422 if facts.query => "a query parameter is unknown, ill-typed or invalid; `errors` names it",
        503 if facts.database => {
            "the database is busy or the request collided with a concurrent change; retry after `Retry-After` seconds"
        }
        _ => return None,
    };
    Some(text.to_owned())
}

/// The statuses every operation with these facts can answer, beyond what it declares.
const SHARED: &[u16] = &[400, 401, 403, 404, 412, 413, 415, 422, 503];

fn complete(op: &mut Operation) {
    let params = op.parameters.as_deref().unwrap_or_default();
    let id = op.operation_id.clone().unwrap_or_default();
    let access = ACCESS.iter().find(|(op_id, _)| *op_id == id).map(|(_, access)| *access);
    let facts = Facts {
        secured: op.security.as_ref().is_some_and(|s| !s.is_empty()),
        // Logging in has no token to check, but it does read the database.
        database: op.security.as_ref().is_some_and(|s| !s.is_empty()) || id == "logIn",
        body: op.request_body.is_some(),
        query: params.iter().any(|p| p.parameter_in == ParameterIn::Query),
        path_id: params.iter().any(|p| p.parameter_in == ParameterIn::Path),
        if_match: params.iter().any(|p| p.parameter_in == ParameterIn::Header && p.name == "If-Match"),
        roles: access.and_then(allowed_roles),
    };

    if let Some(access) = access {
        let line = match allowed_roles(access) {
            None => "**Roles:** any signed-in user.".to_owned(),
            Some(roles) => {
                let names: Vec<String> = roles.iter().map(|r| format!("`{r}`")).collect();
                format!("**Roles:** {}.", names.join(", "))
            }
        };
        op.description = Some(match op.description.take() {
            Some(text) if !text.trim().is_empty() => format!("{}\n\n{line}", text.trim_end()),
            _ => line,
        });
    }
    for status in SHARED {
        if let Some(text) = standard(*status, &facts) {
            op.responses.responses.entry(status.to_string()).or_insert_with(|| RefOr::T(problem(&text)));
        }
    }

    for (status, response) in op.responses.responses.iter_mut() {
        let RefOr::T(response) = response else { continue };
        let code: u16 = status.parse().unwrap_or_default();
        if code >= 400 {
            // Errors are sent as problem documents, whatever the annotation inferred.
            let problem_content = ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build();
            response.content.clear();
            response.content.insert("application/problem+json".to_owned(), problem_content);
        }
        if response.description.trim().is_empty() {
            response.description = match code {
                200 => "OK".to_owned(),
                201 => "created; `Location` names it".to_owned(),
                204 => "done; no body".to_owned(),
                _ => standard(code, &facts).unwrap_or_else(|| "see `detail`".to_owned()),
            };
        }
        match code {
            401 => {
                response.headers.entry("WWW-Authenticate".into()).or_insert_with(|| string_header("`Bearer`"));
            }
            429 | 503 => {
                response
                    .headers
                    .entry("Retry-After".into())
                    .or_insert_with(|| integer_header("seconds to wait before the same request may succeed"));
            }
            _ => {}
        }
    }
}

/// The document, for clients to generate from.
///
/// OpenAPI 3.1, generated from the server's own routes. No token needed.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", operation_id = "getOpenApiDocument",
    responses((status = 200, description = "this document", content_type = "application/json")))]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

/// The browsable API reference (Swagger UI, embedded in the binary: it loads nothing from the
/// network) at `/docs/`, reading `/openapi.json`. No token needed to read it; "Try it out"
/// takes one through "Authorize".
pub fn reference_page() -> SwaggerUi {
    SwaggerUi::new("/docs/{_:.*}")
        .config(Config::new(["/openapi.json"]).validator_url("none").persist_authorization(false))
}

/// `/docs` → `/docs/`, where the page's relative asset links resolve.
pub async fn reference_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect().insert_header((header::LOCATION, "/docs/")).finish()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn operations() -> Vec<Operation> {
        let doc = ApiDoc::openapi();
        let mut found = Vec::new();
        for item in doc.paths.paths.into_values() {
            for op in [item.get, item.put, item.post, item.delete, item.options, item.head, item.patch, item.trace]
                .into_iter()
                .flatten()
            {
                found.push(op);
            }
        }
        found
    }

    #[test]
    fn every_secured_operation_says_who_may_call_it() {
        let mut secured = BTreeSet::new();
        for op in operations() {
            let id = op.operation_id.clone().unwrap_or_default();
            if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                assert!(ACCESS.iter().any(|(name, _)| *name == id), "{id} is missing from ACCESS");
                secured.insert(id);
            }
        }
        for (name, _) in ACCESS {
            assert!(secured.contains(*name), "ACCESS names {name}, which is no secured operation");
        }
    }

    #[test]
    fn roles_follow_the_permission_table() {
        assert_eq!(allowed_roles(Access::Needs(Permission::ReadReferenceData)), None);
        assert_eq!(
            allowed_roles(Access::Needs(Permission::FileTicket)),
            Some(vec!["grid_worker".into(), "dispatcher".into()])
        );
        assert_eq!(allowed_roles(Access::Needs(Permission::Operate)), Some(vec!["admin".into()]));
    }
}
