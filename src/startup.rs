//! Builds the running application: database, migrations, HTTP server.

use std::{net::TcpListener, sync::Arc};

use actix_web::{App, HttpServer, dev::Server, http::StatusCode, middleware, web};

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
        let listener = TcpListener::bind((ctx.settings.http.host.as_str(), ctx.settings.http.port))?;
        let port = listener.local_addr()?.port();
        let server = serve(listener, ctx.clone())?;
        Ok(Self { port, server, ctx, workers: None })
    }

    /// Starts the SLA sweeper and the mailer beside the HTTP server.
    pub fn start_workers(&mut self) {
        self.workers.get_or_insert_with(|| Workers::spawn(&self.ctx));
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn context(&self) -> &AppContext {
        &self.ctx
    }

    /// Runs until SIGTERM / ctrl-c: in-flight requests finish, the workers finish their tick,
    /// then the pool closes.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        if let Some(workers) = self.workers {
            workers.shutdown().await;
        }
        let _ = self.ctx.db.close().await;
        result
    }
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
    let data = web::Data::new(ctx);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(body_limit))
            .wrap(middleware::from_fn(http::catch_panic::middleware))
            .wrap(
                middleware::ErrorHandlers::new()
                    .handler(StatusCode::METHOD_NOT_ALLOWED, http::problem::method_not_allowed),
            )
            // Problem documents in English for clients that ask (Accept-Language), else Chinese.
            .wrap(middleware::from_fn(http::problem::localise))
            .wrap(middleware::from_fn(http::request_id::middleware))
            // No response is ever to be sniffed into another type (a JSON string as HTML).
            .wrap(middleware::DefaultHeaders::new().add(("X-Content-Type-Options", "nosniff")))
            .configure(http::routes)
            .default_service(web::to(http::problem::not_found))
    })
    .workers(workers)
    .shutdown_timeout(30)
    .listen(listener)?
    .run();
    Ok(server)
}

/// Start-up errors are reported, not handled: a boxed error is the honest type here.
pub mod anyhow_like {
    pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;
}
