//! Builds the running application: database, migrations, HTTP server.

use std::{
    net::TcpListener,
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use actix_web::{
    App, Error, HttpServer,
    body::MessageBody,
    dev::{Server, ServerHandle, ServiceRequest, ServiceResponse},
    http::{ConnectionType, StatusCode},
    middleware::{self, Next},
    web,
};
use tokio_util::sync::CancellationToken;

use crate::{
    clock::{Clock, SystemClock},
    config::Settings,
    context::AppContext,
    db, http,
    workers::Workers,
};

pub struct Application {
    port: u16,
    server: Server,
    ctx: AppContext,
    workers: Option<Workers>,
    stop_workers: CancellationToken,
    drain_started: Arc<OnceLock<Instant>>,
}

impl Application {
    /// Connects, applies pending migrations and binds the listener (port 0 picks a free one).
    pub async fn build(settings: Settings) -> anyhow_like::Result<Self> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(settings: Settings, clock: Arc<dyn Clock>) -> anyhow_like::Result<Self> {
        let db = db::connect(&settings).await?;
        db::migrate(&db).await?;
        let ctx = AppContext::new(db, clock, settings)?;
        prepare(&ctx).await?;
        // Live event streams: committed events of every replica, until a drain closes them.
        // Listening before serving, so a stream opened on this replica misses nothing.
        crate::service::event_stream::start_feed(ctx.clone()).await;
        let listener = TcpListener::bind((ctx.settings.http.host.as_str(), ctx.settings.http.port))?;
        let port = listener.local_addr()?.port();
        let server = serve(listener, ctx.clone())?;
        Ok(Self {
            port,
            server,
            ctx,
            workers: None,
            stop_workers: CancellationToken::new(),
            drain_started: Arc::new(OnceLock::new()),
        })
    }

    /// Starts the SLA sweeper and the mailer beside the HTTP server.
    pub fn start_workers(&mut self) {
        self.workers.get_or_insert_with(|| Workers::spawn_with(&self.ctx, self.stop_workers.clone()));
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn context(&self) -> &AppContext {
        &self.ctx
    }

    /// What starts a drain (the caller decides when: `main` on SIGTERM or ctrl-c).
    pub fn drain(&self) -> Drain {
        Drain {
            handle: self.server.handle(),
            ctx: self.ctx.clone(),
            stop_workers: self.stop_workers.clone(),
            started: self.drain_started.clone(),
        }
    }

    /// Serves until stopped by [`Drain::start`]: in-flight requests finish, the workers finish
    /// their batch (within what is left of `http.shutdown_grace`), then the pool closes.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.stop_workers.cancel();
        if let Some(workers) = self.workers {
            let grace = self.ctx.settings.http.shutdown_grace;
            let left = self.drain_started.get().map_or(grace, |start| grace.saturating_sub(start.elapsed()));
            if tokio::time::timeout(left, workers.shutdown()).await.is_err() {
                tracing::warn!("the sweeper or mailer did not finish within http.shutdown_grace; stopping anyway");
            }
        }
        let _ = self.ctx.db.close().await;
        result
    }
}

/// The shutdown of a running [`Application`]. Cheap to clone.
#[derive(Clone)]
pub struct Drain {
    handle: ServerHandle,
    ctx: AppContext,
    stop_workers: CancellationToken,
    started: Arc<OnceLock<Instant>>,
}

impl Drain {
    /// Readiness goes 503 and every response closes its connection at once; the sweeper and
    /// mailer finish their batch; after `http.drain_delay` (for a load balancer to notice) the
    /// listener closes and the requests in flight are answered, within `http.shutdown_grace`.
    pub async fn start(self) {
        if self.started.set(Instant::now()).is_err() {
            return;
        }
        let settings = &self.ctx.settings.http;
        tracing::info!(
            drain_delay = ?settings.drain_delay,
            shutdown_grace = ?settings.shutdown_grace,
            "draining: readiness answers 503; new connections are refused after the drain delay"
        );
        self.ctx.health.start_draining();
        // Open event streams end now, so the drain need not wait for them.
        self.ctx.events.close();
        self.stop_workers.cancel();
        tokio::time::sleep(settings.drain_delay).await;
        self.handle.stop(true).await;
    }

    /// Stops at once, dropping open connections (a second signal during a drain).
    pub async fn stop_now(self) {
        tracing::warn!("stopping now: open connections are dropped");
        self.ctx.events.close();
        self.stop_workers.cancel();
        self.handle.stop(false).await;
    }
}

/// Once the drain has started, every response tells its client to close the connection, so no
/// keep-alive connection is left idle to be cut without an answer.
async fn close_when_draining<B: MessageBody>(req: ServiceRequest, next: Next<B>) -> Result<ServiceResponse<B>, Error> {
    let draining = req.app_data::<web::Data<AppContext>>().map(|ctx| ctx.health.clone());
    let mut response = next.call(req).await?;
    if draining.is_some_and(|health| health.is_draining()) {
        response.response_mut().head_mut().set_connection_type(ConnectionType::Close);
    }
    Ok(response)
}

/// The part of the grace period the HTTP server has for the requests in flight once it stops
/// accepting; the rest is for the workers and closing the pool.
fn http_shutdown_timeout(settings: &Settings) -> u64 {
    let after_delay = settings.http.shutdown_grace.saturating_sub(settings.http.drain_delay);
    after_delay.saturating_sub(Duration::from_secs(1)).as_secs().max(1)
}

/// What a fresh or upgraded database needs before serving: the default escalation chain and
/// the holiday schedules stored through the API.
pub async fn prepare(ctx: &AppContext) -> Result<(), crate::error::AppError> {
    crate::service::escalation::install_default_rules(ctx).await?;
    crate::service::calendar::reload(ctx).await
}

fn serve(listener: TcpListener, ctx: AppContext) -> std::io::Result<Server> {
    let workers = match ctx.settings.http.workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let body_limit = ctx.settings.http.body_limit;
    let shutdown_timeout = http_shutdown_timeout(&ctx.settings);
    let data = web::Data::new(ctx);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(body_limit))
            .wrap(middleware::from_fn(http::catch_panic::middleware))
            .wrap(middleware::from_fn(http::health::database_gate))
            .wrap(
                middleware::ErrorHandlers::new()
                    .handler(StatusCode::METHOD_NOT_ALLOWED, http::problem::method_not_allowed),
            )
            // Problem documents in English for clients that ask (Accept-Language), else Chinese.
            .wrap(middleware::from_fn(http::problem::localise))
            .wrap(middleware::from_fn(http::request_id::middleware))
            // No response is ever to be sniffed into another type (a JSON string as HTML).
            .wrap(middleware::DefaultHeaders::new().add(("X-Content-Type-Options", "nosniff")))
            .wrap(middleware::from_fn(close_when_draining))
            // Statements sent while answering a request are counted as the request's (/metrics).
            .wrap(middleware::from_fn(crate::statements::middleware))
            // gzip or br for clients that accept it (JSON, CSV, the metrics text).
            .wrap(middleware::Compress::default())
            .configure(http::routes)
            .default_service(web::to(http::problem::not_found))
    })
    .workers(workers)
    // A compressed answer is chunked, and its last chunk is a second small write: with Nagle's
    // algorithm on, it waited for the client's delayed ACK, 40 ms on every kept-alive request
    // (benches/load: p50 42 ms for a 1 ms read). Every write goes out at once instead.
    .tcp_nodelay(true)
    // Signals are the caller's (`main`), so a drain can announce itself before it stops accepting.
    .disable_signals()
    .shutdown_timeout(shutdown_timeout)
    .listen(listener)?
    .run();
    Ok(server)
}

/// Start-up errors are reported, not handled: a boxed error is the honest type here.
pub mod anyhow_like {
    pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;
}
