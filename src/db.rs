//! Database connection, migrations and the write-transaction helper.

use std::path::Path;

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    AccessMode, ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use crate::config::Settings;

pub async fn connect(settings: &Settings) -> Result<DatabaseConnection, DbErr> {
    let given = settings.database_url.as_str();
    let sqlite = given.starts_with("sqlite:");
    let (url, folder_error) = if sqlite {
        (sqlite_creating_file(given), ensure_sqlite_folder(given).err())
    } else {
        (given.to_owned(), None)
    };
    let mut options = ConnectOptions::new(url.clone());
    options
        .max_connections(settings.database.max_connections)
        .acquire_timeout(settings.database.acquire_timeout)
        .sqlx_logging(false)
        // A connection a database restart has closed is found out before a request gets it,
        // and replaced: the read then runs on a fresh connection (tests/api/outages.rs).
        .test_before_acquire(true)
        // WAL lets readers run beside the one writer; the busy timeout makes a second writer
        // wait for the first instead of failing at once.
        .map_sqlx_sqlite_opts(|opts| {
            opts.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(std::time::Duration::from_secs(10))
                .foreign_keys(true)
        });
    let connected = Database::connect(options).await;
    connected.map_err(|err| if sqlite { explain_sqlite_failure(&url, &err, folder_error) } else { err })
}

pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        // SQLite is one process's file: nobody to race with.
        return Migrator::up(db, None).await;
    }
    // Replicas starting together on an empty database would create the same tables and
    // types at once and one would fail; an advisory lock makes the second wait, then find
    // nothing left to apply. It is held on a connection of its own, outside the pool the
    // migrations use, so a small pool cannot starve it.
    use sea_orm::sqlx::Connection;
    let options = db.get_postgres_connection_pool().connect_options();
    let mut lock = sea_orm::sqlx::PgConnection::connect_with(&options)
        .await
        .map_err(|e| DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e.into())))?;
    let sql_err = |e: sea_orm::sqlx::Error| DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e.into()));
    sea_orm::sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut lock)
        .await
        .map_err(sql_err)?;
    let applied = Migrator::up(db, None).await;
    let released = sea_orm::sqlx::query("SELECT pg_advisory_unlock($1)").bind(MIGRATION_LOCK).execute(&mut lock).await;
    lock.close().await.ok();
    applied?;
    released.map(|_| ()).map_err(sql_err)
}

/// The advisory lock key that serialises migrations (any constant the app uses nowhere else).
const MIGRATION_LOCK: i64 = 0x6772_6964_7768_6973; // "gridwhis"

/// Opens a read-write transaction. On SQLite it takes the write lock at BEGIN, so two
/// writers queue on the busy timeout instead of one failing when it upgrades a read lock.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    let sqlite_transaction_mode =
        (db.get_database_backend() == DbBackend::Sqlite).then_some(SqliteTransactionMode::Immediate);
    db.begin_with_options(TransactionOptions {
        isolation_level: None,
        access_mode: Some(AccessMode::ReadWrite).filter(|_| db.get_database_backend() != DbBackend::Sqlite),
        sqlite_transaction_mode,
    })
    .await
}

/// The file part of a SQLite URL: `sqlite://data/x.db?mode=rwc` → `data/x.db`.
fn sqlite_path(url: &str) -> &str {
    let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
    path.split('?').next().unwrap_or_default()
}

fn sqlite_mode(url: &str) -> Option<&str> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|pair| pair.strip_prefix("mode="))
}

/// Without `mode=` SQLite refuses to create a missing file; an operator naming a new file
/// means "create it". An explicit mode (`ro`, `rw`, `memory`) is left as written.
fn sqlite_creating_file(url: &str) -> String {
    let path = sqlite_path(url);
    if sqlite_mode(url).is_some() || path.is_empty() || path == ":memory:" {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}mode=rwc")
}

fn ensure_sqlite_folder(url: &str) -> std::io::Result<()> {
    let path = sqlite_path(url);
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    match Path::new(path).parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => std::fs::create_dir_all(parent),
        None => Ok(()),
    }
}

/// SQLite only says "unable to open database file": name the file and the likely cause.
fn explain_sqlite_failure(url: &str, err: &DbErr, folder_error: Option<std::io::Error>) -> DbErr {
    let path = sqlite_path(url);
    let folder = Path::new(path).parent().map(|p| p.display().to_string()).unwrap_or_default();
    let cause = match (folder_error, sqlite_mode(url)) {
        (Some(io), _) => format!("its folder `{folder}` could not be created ({io})"),
        (None, Some(mode @ ("ro" | "rw"))) if !Path::new(path).exists() => {
            format!("the file does not exist and `mode={mode}` does not create it (use mode=rwc)")
        }
        _ => "check that the file and its folder are readable and writable by this user".into(),
    };
    DbErr::Conn(sea_orm::RuntimeErr::Internal(format!("cannot open the SQLite database `{path}`: {cause} [{err}]")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sqlite_url_without_mode_creates_its_file() {
        assert_eq!(sqlite_creating_file("sqlite://fresh.db"), "sqlite://fresh.db?mode=rwc");
        assert_eq!(sqlite_creating_file("sqlite:data/x.db?cache=shared"), "sqlite:data/x.db?cache=shared&mode=rwc");
        assert_eq!(sqlite_creating_file("sqlite://x.db?mode=ro"), "sqlite://x.db?mode=ro");
        assert_eq!(sqlite_creating_file("sqlite::memory:"), "sqlite::memory:");
        assert_eq!(sqlite_path("sqlite:///var/lib/gw.db?mode=rwc"), "/var/lib/gw.db");
    }
}
