//! The last line of defence: a panic while handling a request becomes a 500 problem document,
//! logged once, instead of a dropped connection (and a worker thread restarted under load).

use std::{any::Any, panic::AssertUnwindSafe};

use actix_web::{
    Error,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    middleware::Next,
};
use futures_util::FutureExt;

use crate::error::AppError;

/// Wrap the routes with `middleware::from_fn(catch_panic::middleware)`.
///
/// A panic turns into [`AppError::Internal`], which the server answers as every other internal
/// error: a 500 problem document, the cause logged once (by `problem`), nothing internal in
/// the body. (An error rather than a response, because building a response needs the request,
/// and holding a copy of it while the router runs is not allowed.)
pub async fn middleware<B: MessageBody>(req: ServiceRequest, next: Next<B>) -> Result<ServiceResponse<B>, Error> {
    // Unwind safety: a request's own state is dropped with it; the shared state (the pool, the
    // calendar behind a lock that recovers from poisoning) holds no half-made change.
    match AssertUnwindSafe(next.call(req)).catch_unwind().await {
        Ok(result) => result,
        Err(payload) => Err(AppError::Internal(format!("the handler panicked: {}", message(payload.as_ref()))).into()),
    }
}

fn message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}

#[cfg(test)]
mod tests {
    use actix_web::{
        App, HttpResponse, body::to_bytes, http::StatusCode, middleware::from_fn, test as actix_test, web,
    };

    use super::*;

    #[allow(clippy::unreachable)]
    async fn panics(path: web::Path<String>) -> HttpResponse {
        match path.as_str() {
            "str" => panic!("boom"),
            "string" => panic!("{}", String::from("boom")),
            _ => unreachable!("no other route"),
        }
    }

    #[actix_web::test]
    async fn a_panicking_handler_answers_500_problem_and_the_service_keeps_serving() {
        let app = actix_test::init_service(
            App::new()
                .wrap(from_fn(middleware))
                .route("/panic/{how}", web::get().to(panics))
                .route("/fine", web::get().to(|| async { HttpResponse::Ok().body("fine") })),
        )
        .await;
        for how in ["str", "string"] {
            let request = actix_test::TestRequest::get().uri(&format!("/panic/{how}")).to_request();
            // What the server does with an error: its response, as for any other.
            let error = actix_test::try_call_service(&app, request).await.expect_err("the panic as an error");
            let response = error.error_response();
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
            let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok());
            assert_eq!(content_type, Some("application/problem+json"));
            let bytes = to_bytes(response.into_body()).await.unwrap_or_default();
            let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            assert_eq!(body["status"], 500);
            assert_eq!(body["type"], "urn:gridwhistle:problem:internal");
            assert_eq!(body["title"], "Internal error");
            assert!(!body["detail"].as_str().unwrap_or_default().contains("boom"), "nothing internal leaks: {body}");
        }
        let response = actix_test::call_service(&app, actix_test::TestRequest::get().uri("/fine").to_request()).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(actix_test::read_body(response).await, "fine");
    }

    #[test]
    fn panic_messages_are_read_from_either_payload() {
        let from_str: Box<dyn Any + Send> = Box::new("static");
        let from_string: Box<dyn Any + Send> = Box::new(String::from("owned"));
        let other: Box<dyn Any + Send> = Box::new(42);
        assert_eq!(message(from_str.as_ref()), "static");
        assert_eq!(message(from_string.as_ref()), "owned");
        assert_eq!(message(other.as_ref()), "a panic without a message");
    }
}
