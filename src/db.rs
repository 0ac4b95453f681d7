//! Database connection, migrations and the write-transaction helper.

use std::path::Path;

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    AccessMode, ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use crate::config::Settings;

pub async fn connect(settings: &Settings) -> Result<DatabaseConnection, DbErr> {
    let url = settings.database_url.as_str();
    if url.starts_with("sqlite:") {
        ensure_sqlite_folder(url);
    }
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(settings.database.max_connections)
        .acquire_timeout(settings.database.acquire_timeout)
        .sqlx_logging(false)
        // WAL lets readers run beside the one writer; the busy timeout makes a second writer
        // wait for the first instead of failing at once.
        .map_sqlx_sqlite_opts(|opts| {
            opts.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(std::time::Duration::from_secs(10))
                .foreign_keys(true)
        });
    Database::connect(options).await
}

pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

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

fn ensure_sqlite_folder(url: &str) {
    let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return;
    }
    if let Some(parent) = Path::new(path).parent().filter(|p| !p.as_os_str().is_empty()) {
        // Errors surface right after as a connection error naming the file.
        let _ = std::fs::create_dir_all(parent);
    }
}
