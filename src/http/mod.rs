//! The HTTP surface: routes, extractors, DTOs, problem details and the OpenAPI document.

pub mod api_keys;
pub mod attachments;
pub mod catch_panic;
pub mod categories;
pub mod console;
pub mod coverage;
pub mod departments;
pub mod devices;
pub mod dispatches;
pub mod dto;
pub mod duplicates;
pub mod event_stream;
pub mod extract;
pub mod grid_units;
pub mod health;
pub mod hotspots;
pub mod notifications;
pub mod open311;
pub mod openapi;
pub mod problem;
pub mod reports;
pub mod request_id;
pub mod routing;
pub mod session;
pub mod sla;
pub mod ticket_lists;
pub mod tickets;
pub mod topics;
pub mod uploads;
pub mod users;
pub mod webhooks;

use actix_web::web::{self, delete, get, patch, post, put, resource};

/// Every route. Registered as resources so a wrong method answers 405, not 404.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/healthz").route(get().to(health::healthz)))
        .service(resource("/readyz").route(get().to(health::readyz)))
        .service(resource("/openapi.json").route(get().to(openapi::document)))
        .service(resource("/docs").route(get().to(openapi::reference_redirect)))
        .service(openapi::reference_page())
        .service(resource("/metrics").route(get().to(sla::prometheus)))
        .configure(open311::routes)
        .configure(console::routes)
        .service(
            web::scope("/api/v1")
                // API answers may carry residents' personal data: no cache (browser, proxy)
                // is to keep any of them.
                .wrap(actix_web::middleware::DefaultHeaders::new().add(("Cache-Control", "no-store")))
                .service(resource("/auth/token").route(post().to(session::token)))
                .service(resource("/auth/logout").route(post().to(session::logout)))
                .service(resource("/auth/refresh").route(post().to(session::refresh)))
                .service(resource("/audit").route(get().to(tickets::audit)))
                .service(resource("/tickets/{id}/contact").route(get().to(tickets::contact)))
                .service(resource("/tickets/{id}/erase-personal-data").route(post().to(tickets::erase)))
                .service(resource("/me").route(get().to(session::me)))
                .service(resource("/grid-units").route(get().to(grid_units::list)).route(post().to(grid_units::create)))
                .service(resource("/grid-units/locate").route(get().to(grid_units::locate)))
                .service(
                    resource("/grid-units/{id}")
                        .route(get().to(grid_units::get))
                        .route(patch().to(grid_units::update))
                        .route(delete().to(grid_units::delete)),
                )
                .service(resource("/grid-units/{id}/children").route(get().to(grid_units::children)))
                .service(
                    resource("/departments").route(get().to(departments::list)).route(post().to(departments::create)),
                )
                .service(
                    resource("/departments/{id}")
                        .route(get().to(departments::get))
                        .route(patch().to(departments::update))
                        .route(delete().to(departments::delete)),
                )
                .service(resource("/categories").route(get().to(categories::list)).route(post().to(categories::create)))
                .service(
                    resource("/categories/{id}")
                        .route(get().to(categories::get))
                        .route(patch().to(categories::update))
                        .route(delete().to(categories::delete)),
                )
                .service(resource("/devices").route(get().to(devices::list)).route(post().to(devices::create)))
                .service(
                    resource("/devices/{id}")
                        .route(get().to(devices::get))
                        .route(patch().to(devices::update))
                        .route(delete().to(devices::disable)),
                )
                .service(resource("/routing-rules").route(get().to(routing::list)).route(post().to(routing::create)))
                .service(
                    resource("/routing-rules/{id}")
                        .route(get().to(routing::get))
                        .route(patch().to(routing::update))
                        .route(delete().to(routing::delete)),
                )
                .service(resource("/routing/resolve").route(get().to(routing::resolve)))
                .service(resource("/tickets").route(get().to(tickets::list)).route(post().to(tickets::file)))
                .service(resource("/tickets/{id}").route(get().to(tickets::get)))
                .service(resource("/tickets/{id}/events").route(get().to(tickets::events)))
                .service(resource("/tickets/{id}/dispatch").route(post().to(tickets::dispatch)))
                .service(resource("/tickets/{id}/whistle").route(post().to(tickets::whistle)))
                .service(resource("/tickets/{id}/rating").route(post().to(tickets::rate)))
                .service(resource("/tickets/{id}/cancel").route(post().to(tickets::cancel)))
                .service(resource("/dispatches").route(get().to(dispatches::list)))
                .service(resource("/dispatches/{id}").route(get().to(dispatches::get)))
                .service(resource("/dispatches/{id}/acknowledge").route(post().to(dispatches::acknowledge)))
                .service(resource("/dispatches/{id}/return").route(post().to(dispatches::return_dispatch)))
                .service(resource("/dispatches/{id}/reject-return").route(post().to(dispatches::reject_return)))
                .service(resource("/dispatches/{id}/progress").route(post().to(dispatches::progress)))
                .service(resource("/dispatches/{id}/resolve").route(post().to(dispatches::resolve)))
                .service(resource("/dispatches/{id}/attachments").route(post().to(attachments::attach)))
                .service(resource("/uploads").route(post().to(uploads::upload)))
                .service(resource("/attachments/{id}").route(get().to(attachments::get)))
                .service(resource("/attachments/{id}/thumbnail").route(get().to(attachments::thumbnail)))
                .service(resource("/dispatches/{id}/extension-requests").route(post().to(sla::request_extension)))
                .service(resource("/extension-requests/{id}/approve").route(post().to(sla::approve_extension)))
                .service(resource("/extension-requests/{id}/reject").route(post().to(sla::reject_extension)))
                .service(resource("/tickets/{id}/supervise").route(post().to(sla::supervise)))
                .service(resource("/supervision-orders").route(get().to(sla::orders)))
                .service(resource("/supervision-orders/{id}/reply").route(post().to(sla::reply)))
                .service(resource("/sla-policies").route(get().to(sla::policies)))
                .service(resource("/sla-policies/{id}").route(get().to(sla::policy)).route(put().to(sla::put_policy)))
                .service(resource("/calendar").route(get().to(sla::years)).route(post().to(sla::add_year)))
                .service(resource("/calendar/deadline").route(get().to(sla::deadline)))
                .service(resource("/escalation-rules").route(get().to(sla::rules)).route(post().to(sla::create_rule)))
                .service(
                    resource("/escalation-rules/{id}")
                        .route(put().to(sla::replace_rule))
                        .route(delete().to(sla::delete_rule)),
                )
                .service(resource("/notifications").route(get().to(sla::notifications)))
                .service(resource("/notifications/retry-dead").route(post().to(notifications::retry_dead)))
                .service(resource("/notifications/{id}/retry").route(post().to(notifications::retry)))
                .service(resource("/reports/sla").route(get().to(reports::sla)))
                .service(resource("/reports/trend").route(get().to(reports::trend)))
                .service(resource("/reports/overdue").route(get().to(reports::overdue)))
                .service(resource("/api-keys").route(get().to(api_keys::list)).route(post().to(api_keys::create)))
                .service(resource("/api-keys/{id}").route(delete().to(api_keys::revoke)))
                .service(resource("/reports/coverage").route(get().to(coverage::coverage)))
                .service(resource("/reports/hotspots").route(get().to(hotspots::hotspots)))
                .service(resource("/topics").route(get().to(topics::list)).route(post().to(topics::create)))
                .service(resource("/topics/{id}").route(get().to(topics::get)))
                .service(resource("/topics/{id}/tickets").route(get().to(topics::tickets)))
                .service(resource("/tickets/{id}/possible-duplicates").route(get().to(duplicates::possible_duplicates)))
                .service(resource("/tickets/{id}/merge").route(post().to(duplicates::merge)))
                .service(resource("/users").route(get().to(users::list)).route(post().to(users::create)))
                .service(
                    resource("/users/{id}")
                        .route(get().to(users::get))
                        .route(patch().to(users::update))
                        .route(delete().to(users::delete)),
                )
                .service(resource("/webhooks").route(get().to(webhooks::list)).route(post().to(webhooks::create)))
                .service(
                    resource("/webhooks/{id}")
                        .route(get().to(webhooks::get))
                        .route(patch().to(webhooks::update))
                        .route(delete().to(webhooks::delete)),
                )
                .service(resource("/webhooks/{id}/rotate-secret").route(post().to(webhooks::rotate_secret)))
                .service(resource("/webhooks/{id}/deliveries").route(get().to(webhooks::deliveries)))
                .service(resource("/webhook-deliveries/{id}/redeliver").route(post().to(webhooks::redeliver)))
                .service(resource("/events/stream").route(get().to(event_stream::stream)))
                .service(resource("/events/stream-token").route(post().to(event_stream::stream_token))),
        );
}
