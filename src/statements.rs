//! Counts the statements one application sends to its database, as
//! `gridwhistle_db_statements_total{origin}` on `/metrics`: `request` for the statements issued
//! while answering an HTTP request, `background` for the sweeper, the mailer and start-up.
//!
//! The counter belongs to the connection pool of one application (not to the process), so
//! several applications in one process — the test harness runs many — each count their own.
//! A request's statements are told apart by a task-local flag that the middleware below sets
//! around the request; sea-orm calls the metric callback on the task that awaited the query.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use actix_web::{
    Error,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    middleware::Next,
};
use sea_orm::DatabaseConnection;

tokio::task_local! {
    static IN_REQUEST: ();
}

#[derive(Debug, Clone, Default)]
pub struct StatementCounter {
    request: Arc<AtomicU64>,
    background: Arc<AtomicU64>,
}

impl StatementCounter {
    /// Counts every statement sent through `db` (and through the clones made after this call).
    pub fn attach(&self, db: &mut DatabaseConnection) {
        let counter = self.clone();
        db.set_metric_callback(move |_| counter.count());
    }

    fn count(&self) {
        let target = if IN_REQUEST.try_with(|_| ()).is_ok() { &self.request } else { &self.background };
        target.fetch_add(1, Ordering::Relaxed);
    }

    /// Statements sent while answering requests, since start.
    pub fn request_statements(&self) -> u64 {
        self.request.load(Ordering::Relaxed)
    }

    /// The counter in Prometheus' text format, to append to the process-wide metrics.
    pub fn render(&self) -> String {
        format!(
            "# HELP gridwhistle_db_statements_total Statements sent to the database, by origin \
             (request: while answering HTTP requests; background: workers and start-up)\n\
             # TYPE gridwhistle_db_statements_total counter\n\
             gridwhistle_db_statements_total{{origin=\"background\"}} {}\n\
             gridwhistle_db_statements_total{{origin=\"request\"}} {}\n",
            self.background.load(Ordering::Relaxed),
            self.request.load(Ordering::Relaxed),
        )
    }
}

/// Marks everything the request does (extractors, handler) as the request's statements.
pub async fn middleware<B: MessageBody>(req: ServiceRequest, next: Next<B>) -> Result<ServiceResponse<B>, Error> {
    IN_REQUEST.scope((), next.call(req)).await
}
