//! `gridwhistle` — run with no arguments for `serve --demo` on 127.0.0.1:8080 (SQLite under data/).

use std::{io::BufRead, path::PathBuf, process::ExitCode, sync::Arc};

use clap::{Parser, Subcommand, builder::TypedValueParser};
use entities::Role;
use gridwhistle::{
    clock::SystemClock,
    config::{Settings, SettingsSources},
    context::AppContext,
    db,
    domain::access::Caller,
    service::{self, users},
    startup::Application,
    telemetry,
};
use migration::{Migrator, MigratorTrait};
use uuid::Uuid;

const AFTER_HELP: &str = "\
With no command, gridwhistle runs `serve --demo`: it serves on http://127.0.0.1:8080 from the
SQLite file data/gridwhistle.db and loads the demo data set if that database has no users.

Choosing the database (GRIDWHISTLE_DATABASE_URL, else DATABASE_URL, else `database_url` in the
--config file):
  GRIDWHISTLE_DATABASE_URL=sqlite://data/gridwhistle.db        a SQLite file, created if missing
  GRIDWHISTLE_DATABASE_URL=postgres://user:pass@host:5432/db   PostgreSQL
Any setting can be given as GRIDWHISTLE_<SECTION>__<KEY> (GRIDWHISTLE_HTTP__PORT=9000); every key
and its default is listed in config/default.toml. Unknown keys and variables stop start-up.

First admin of a new database (the password is read from standard input, at least 10 characters):
  printf '%s\\n' \"$PASSWORD\" | gridwhistle user create --username admin --role admin --display-name 管理员
  gridwhistle serve
The admin then creates units, departments and the other users through the API or `user create`.";

#[derive(Parser)]
#[command(version, about = "吹哨报到 · 接诉即办 service-request backend", after_help = AFTER_HELP)]
struct Cli {
    /// A local configuration file layered over config/default.toml (also GRIDWHISTLE_CONFIG).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending migrations and serve the API (the default, with --demo).
    Serve {
        /// Load the demo data set first if the database has no users yet (never into one that has).
        #[arg(long)]
        demo: bool,
    },
    /// Apply pending migrations and exit.
    Migrate,
    /// Load the demo data set (idempotent) and print the demo logins.
    SeedDemo,
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password (10–128 characters) is read as one line from standard input.
    #[command(after_help = "\
Each role has its home: grid_worker → --unit of a grid; dispatcher → --unit of a township;
supervisor → --unit of a county or the city; department_staff → --department; admin → neither.
The first admin of a new database:
  printf '%s\\n' \"$PASSWORD\" | gridwhistle user create --username admin --role admin --display-name 管理员")]
    Create {
        /// Login name: 3–64 characters of lower-case letters, digits, '.', '-' or '_'.
        #[arg(long)]
        username: String,
        /// What the user may do.
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(ROLES).try_map(|text: String| parse_role(&text)))]
        role: Role,
        /// The name shown to other users (any text).
        #[arg(long)]
        display_name: String,
        /// Home unit code: a grid (grid_worker), township (dispatcher), county or city (supervisor).
        #[arg(long)]
        unit: Option<String>,
        /// Department code (department_staff only).
        #[arg(long)]
        department: Option<String>,
    },
    /// Set a user's password (read from standard input); ends their sessions.
    Passwd { username: String },
    /// Disable a user; ends their sessions.
    Disable { username: String },
}

const ROLES: [&str; 5] = ["grid_worker", "dispatcher", "department_staff", "supervisor", "admin"];

fn parse_role(text: &str) -> std::result::Result<Role, String> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|_| "one of grid_worker, dispatcher, department_staff, supervisor, admin".to_owned())
}

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(SettingsSources::from_process(cli.config)) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("gridwhistle: {err}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&settings.log);
    match run(cli.command.unwrap_or(Command::Serve { demo: true }), settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Once, on standard error, not again as a log line.
            eprintln!("gridwhistle: {err}");
            ExitCode::FAILURE
        }
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

async fn run(command: Command, settings: Settings) -> Result<()> {
    match command {
        Command::Serve { demo } => {
            let mut app = Application::build(settings).await?;
            let ctx = app.context().clone();
            let empty = service::demo::database_is_empty(&ctx).await?;
            match (demo, empty) {
                (true, true) => {
                    let report = service::demo::seed(&ctx).await?;
                    tracing::info!(created = report.created, "demo data loaded");
                    print_demo_logins(&ctx);
                }
                (true, false) => tracing::info!(
                    "demo data not loaded: the database already has users (--demo seeds only an empty \
                     database; `gridwhistle seed-demo` adds the demo set to any database)"
                ),
                (false, true) => tracing::warn!(
                    "the database has no users, so nobody can log in. Create the first admin with: \
                     printf '%s\\n' \"$PASSWORD\" | gridwhistle user create --username admin --role admin \
                     --display-name 管理员"
                ),
                (false, false) => {}
            }
            // Only once the demo data is in: the demo replays three weeks of work on a clock
            // of its own, and a sweeper running beside it would act on the same tickets on
            // today's clock (auto-closing one before the replay rates it).
            app.start_workers();
            tracing::info!(address = %format!("http://{}:{}", ctx.settings.http.host, app.port()), "serving");
            let drain = app.drain();
            actix_web::rt::spawn(async move {
                wait_for_signal().await;
                let now = drain.clone();
                actix_web::rt::spawn(drain.start());
                // A second signal during the drain: the operator means now.
                wait_for_signal().await;
                now.stop_now().await;
            });
            app.run_until_stopped().await?;
        }
        Command::Migrate => {
            let db = db::connect(&settings).await?;
            let pending = Migrator::get_pending_migrations(&db).await?.len();
            let ctx = context_on(db, settings).await?;
            let total = Migrator::migrations().len();
            match pending {
                0 => println!("nothing to apply: the database is up to date ({total} migrations)"),
                1 => println!("applied 1 migration; the database is up to date ({total} migrations)"),
                n => println!("applied {n} migrations; the database is up to date ({total} migrations)"),
            }
            ctx.db.close().await?;
        }
        Command::SeedDemo => {
            let ctx = context(settings).await?;
            let report = service::demo::seed(&ctx).await?;
            println!("demo data: {} rows created, {} already present", report.created, report.existing);
            print_demo_logins(&ctx);
        }
        Command::User(command) => {
            let ctx = context(settings).await?;
            user_command(&ctx, command).await?;
        }
    }
    Ok(())
}

/// SIGTERM (an orchestrator) or ctrl-c (a console).
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM; only ctrl-c stops the server");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

async fn context(settings: Settings) -> Result<AppContext> {
    let db = db::connect(&settings).await?;
    context_on(db, settings).await
}

async fn context_on(db: sea_orm::DatabaseConnection, settings: Settings) -> Result<AppContext> {
    db::migrate(&db).await?;
    let ctx = AppContext::new(db, Arc::new(SystemClock), settings)?;
    gridwhistle::startup::prepare(&ctx).await?;
    Ok(ctx)
}

/// The operator at the console acts with admin rights.
fn operator() -> Caller {
    Caller {
        user_id: Uuid::nil(),
        username: "console".into(),
        role: Role::Admin,
        unit_id: None,
        department_id: None,
        home_path: None,
        ip: None,
    }
}

async fn user_command(ctx: &AppContext, command: UserCommand) -> Result<()> {
    let caller = operator();
    match command {
        UserCommand::Create { username, role, display_name, unit, department } => {
            let unit_id = match unit {
                Some(code) => Some(
                    service::grid_units::by_code(&ctx.db, &code)
                        .await?
                        .ok_or(format!("no grid unit with code {code}"))?
                        .id,
                ),
                None => None,
            };
            let department_id = match department {
                Some(code) => Some(
                    service::departments::by_code(&ctx.db, &code)
                        .await?
                        .ok_or(format!("no department with code {code}"))?
                        .id,
                ),
                None => None,
            };
            let password = read_password()?;
            let input = users::NewUser {
                username,
                display_name,
                role,
                unit_id,
                department_id,
                password,
                email: None,
                active: true,
            };
            let user = users::create(ctx, &caller, input).await.map_err(describe)?;
            println!("created user {} ({})", user.username, user.id);
        }
        UserCommand::Passwd { username } => {
            let user = users::by_username(&ctx.db, &username).await?.ok_or(format!("no user {username}"))?;
            let changes = users::UserChanges { password: Some(read_password()?), ..Default::default() };
            users::update(ctx, &caller, user.id, changes).await.map_err(describe)?;
            println!("password of {username} changed; their sessions are ended");
        }
        UserCommand::Disable { username } => {
            let user = users::by_username(&ctx.db, &username).await?.ok_or(format!("no user {username}"))?;
            users::disable(ctx, &caller, user.id).await.map_err(describe)?;
            println!("{username} disabled; their sessions are ended");
        }
    }
    Ok(())
}

fn read_password() -> Result<String> {
    eprintln!("password (one line on standard input):");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Field errors read better on a console than the bare "invalid fields".
fn describe(err: gridwhistle::error::AppError) -> Box<dyn std::error::Error + Send + Sync> {
    match err {
        gridwhistle::error::AppError::Validation(fields) => {
            let lines: Vec<String> = fields.0.iter().map(|(f, m)| format!("{f}: {m}")).collect();
            lines.join("; ").into()
        }
        other => Box::new(other),
    }
}

fn print_demo_logins(ctx: &AppContext) {
    println!("demo logins (password: {}):", ctx.settings.demo.password);
    for (username, display_name, ..) in service::demo::USERS {
        println!("  {username:<16} {display_name}");
    }
}
