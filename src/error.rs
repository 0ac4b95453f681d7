//! The one error type of the service layer. `http::problem` turns it into RFC 9457 problem details.

use sea_orm::{DbErr, RuntimeErr, SqlErr};

use crate::domain::validate::{FieldErrors, Lang, Message};

/// The cause of an internal error, kept so the log shows the whole chain.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("invalid fields")]
    Validation(FieldErrors),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A limit the client ran into (429): [`Limit`] says which, in both languages;
    /// `retry_after_secs` is sent as `Retry-After`. Made by [`AppError::too_many_requests`].
    #[error("{}", .limit.text(Lang::En, *.retry_after_secs))]
    Limited { limit: Limit, retry_after_secs: u64 },
    /// A busy or unreachable database: the same request is expected to succeed when retried.
    #[error("{0}")]
    Unavailable(DatabaseUnavailable),

    /// Ours, without an underlying error. Prefer [`AppError::internal_from`] when there is one.
    #[error("internal error: {0}")]
    Internal(String),
    /// Ours, with the error that caused it; the cause chain is logged once, never sent.
    #[error("internal error: {context}")]
    InternalCause {
        context: String,
        #[source]
        source: Cause,
    },
    #[error("database error")]
    Database(#[source] DbErr),

    /// A refusal whose detail is said in the client's language (Chinese, or English on
    /// request); `kind` picks the status. Prefer it to the variants carrying English text.
    #[error("{message}")]
    Refused { kind: Refusal, message: Message },
}

/// The kinds of refusal a [`AppError::Refused`] can be, one per status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    BadRequest,
    Unauthenticated,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PreconditionFailed,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unavailable,
}

/// The limits a client can run into, each with what it counts: what a 429 says, in either
/// language, is worded here once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Logins from one client address in a minute.
    LoginsFromAddress { per_minute: u32 },
    /// Tickets filed by one user in a minute.
    FilingsPerUser { per_minute: u32 },
    /// Open311 POSTs from one client address in a minute.
    Open311FromAddress { per_minute: u32 },
    /// An account locked after this many failed logins in a row.
    AccountLocked { failures: i32 },
    /// Uploads one user has in progress at once: work under way, not a rate.
    UploadsInProgress { max: usize },
    /// Event streams one session holds open at once: work under way, not a rate.
    StreamsOpen { max: usize },
}

impl Limit {
    /// What was hit, and when to retry, as `Retry-After` says (`retry_after_secs`).
    pub fn text(self, lang: Lang, retry_after_secs: u64) -> String {
        let retry = retry_when(lang, retry_after_secs);
        match (self, lang) {
            (Limit::LoginsFromAddress { per_minute }, Lang::Zh) => {
                format!("此地址登录过于频繁（每分钟最多 {per_minute} 次）；{retry}")
            }
            (Limit::LoginsFromAddress { per_minute }, Lang::En) => {
                format!("too many logins from this address (at most {per_minute} a minute); {retry}")
            }
            (Limit::FilingsPerUser { per_minute }, Lang::Zh) => {
                format!("提交诉求过于频繁（每个账号每分钟最多 {per_minute} 件）；{retry}")
            }
            (Limit::FilingsPerUser { per_minute }, Lang::En) => {
                format!("too many tickets filed (at most {per_minute} a minute per account); {retry}")
            }
            (Limit::Open311FromAddress { per_minute }, Lang::Zh) => {
                format!("此地址的 Open311 请求过于频繁（每分钟最多 {per_minute} 次）；{retry}")
            }
            (Limit::Open311FromAddress { per_minute }, Lang::En) => {
                format!("too many Open311 requests from this address (at most {per_minute} a minute); {retry}")
            }
            (Limit::AccountLocked { failures }, Lang::Zh) => {
                format!("密码连续错误 {failures} 次，此账号已暂时锁定；{retry}")
            }
            (Limit::AccountLocked { failures }, Lang::En) => {
                format!("this account is locked for a while after {failures} failed logins; {retry}")
            }
            (Limit::UploadsInProgress { max }, Lang::Zh) => {
                format!("同时进行的上传过多：您已有 {max} 个上传正在进行，请等其中一个完成；{retry}")
            }
            (Limit::UploadsInProgress { max }, Lang::En) => {
                format!(
                    "too many uploads in progress: you already have {max} under way; wait for one to finish; {retry}"
                )
            }
            (Limit::StreamsOpen { max }, Lang::Zh) => {
                format!("打开的事件流过多：此会话已打开 {max} 个事件流，请关闭其中一个；{retry}")
            }
            (Limit::StreamsOpen { max }, Lang::En) => {
                format!("too many event streams open: this session already has {max}; close one; {retry}")
            }
        }
    }
}

/// "Retry in …, as Retry-After says": minutes from two minutes on (a lock-out of 900 s reads
/// as 15 minutes), seconds below.
fn retry_when(lang: Lang, secs: u64) -> String {
    let secs = secs.max(1);
    let minutes = secs.div_ceil(60);
    match lang {
        Lang::Zh if secs >= 120 => format!("请在 {minutes} 分钟后重试（见 Retry-After）"),
        Lang::Zh => format!("请在 {secs} 秒后重试（见 Retry-After）"),
        Lang::En if secs >= 120 => format!("retry in {minutes} minutes, as Retry-After says"),
        Lang::En if secs == 1 => "retry in 1 second, as Retry-After says".to_owned(),
        Lang::En => format!("retry in {secs} seconds, as Retry-After says"),
    }
}

impl AppError {
    /// A 429 for `limit`, with `Retry-After: retry_after_secs` (at least 1).
    pub fn too_many_requests(limit: Limit, retry_after_secs: u64) -> Self {
        Self::Limited { limit, retry_after_secs: retry_after_secs.max(1) }
    }

    /// How many seconds the client should wait before retrying, for `Retry-After`: a limit's
    /// own wait, or one second for a busy database.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            AppError::Limited { retry_after_secs, .. } => Some((*retry_after_secs).max(1)),
            AppError::Unavailable(_) | AppError::Refused { kind: Refusal::Unavailable, .. } => Some(1),
            _ => None,
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::NotFound(format!("{what} not found"))
    }

    pub fn invalid(field: &str, message: impl Into<Message>) -> Self {
        Self::Validation(FieldErrors::single(field, message))
    }

    /// A refusal said in both languages.
    pub fn refused(
        kind: Refusal,
        zh: impl Into<std::borrow::Cow<'static, str>>,
        en: impl Into<std::borrow::Cow<'static, str>>,
    ) -> Self {
        Self::Refused { kind, message: Message::said(zh, en) }
    }

    /// A 404 of either form: a caller re-labels "ticket not found" as its own resource.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound(_) | Self::Refused { kind: Refusal::NotFound, .. })
    }

    /// An internal error that has no underlying cause.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal(message.into())
    }

    /// An internal error caused by `source`: `context` says what we were doing.
    pub fn internal_from(context: impl Into<String>, source: impl Into<Cause>) -> Self {
        Self::InternalCause { context: context.into(), source: source.into() }
    }

    /// The error and its causes, outermost first, joined by ": " — for logs only.
    pub fn chain(&self) -> String {
        chain(self)
    }
}

/// `err` and its `source()` chain on one line.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl From<FieldErrors> for AppError {
    fn from(errors: FieldErrors) -> Self {
        Self::Validation(errors)
    }
}

/// Constraint violations are the client's conflict; a pool timeout, a lock wait that gave up,
/// a deadlock or a serialization failure is a busy server (503, retry); the rest is ours.
/// Services check references up front with named fields; these are the backstops.
impl From<DbErr> for AppError {
    fn from(err: DbErr) -> Self {
        // SQLite reports an ON DELETE RESTRICT refusal as SQLITE_CONSTRAINT_TRIGGER (1811),
        // which sea-orm does not classify; its message is the same as any foreign-key failure.
        let restrict_refusal = err.to_string().contains("FOREIGN KEY constraint failed");
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => {
                Self::Conflict("a record with the same unique value already exists".into())
            }
            Some(SqlErr::ForeignKeyConstraintViolation(_)) => {
                Self::Conflict("the record is still referenced by other records".into())
            }
            _ if restrict_refusal => Self::Conflict("the record is still referenced by other records".into()),
            // PostgreSQL text cannot hold NUL (SQLite can); a client that sends one made a
            // mistake, whichever field it was in.
            _ if is_nul_in_text(&err) => Self::BadRequest("text must not contain NUL (\\u0000) characters".into()),
            _ if matches!(err, DbErr::ConnectionAcquire(sea_orm::error::ConnAcquireErr::Timeout)) => {
                Self::Unavailable(DatabaseUnavailable::Busy)
            }
            _ if is_connection_failure(&err) => {
                // A restart or an outage, not the request: the same request can succeed later.
                tracing::warn!(error = %chain(&err), "the database connection failed");
                Self::Unavailable(DatabaseUnavailable::Unreachable)
            }
            _ if is_contention(&err) => {
                // The transaction was rolled back as a whole; nothing of the request is kept.
                tracing::warn!(error = %chain(&err), "transaction gave way to a concurrent one");
                Self::refused(
                    Refusal::Unavailable,
                    "请求与他人的修改同时发生，请稍后重试",
                    "the request collided with a concurrent change; retry shortly",
                )
            }
            _ => Self::Database(err),
        }
    }
}

/// Why the database could not serve a request that may well succeed when retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DatabaseUnavailable {
    /// No connection could be had in time (pool full, or database gone).
    #[error("the database is busy; retry shortly")]
    Busy,
    /// The connection to the database failed (restart, outage).
    #[error("the database cannot be reached; retry shortly")]
    Unreachable,
}

/// Whether the connection itself failed (refused, reset, closed, TLS or protocol breakdown, the
/// server shutting down), as opposed to the statement: the database is restarting or away.
/// The driver's error under sea-orm's wrapping, where there is one.
fn sqlx_error(err: &DbErr) -> Option<&sea_orm::sqlx::Error> {
    match err {
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => Some(e),
        _ => None,
    }
}

pub fn is_connection_failure(err: &DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    if matches!(err, DbErr::ConnectionAcquire(_)) {
        return true;
    }
    let Some(e) = sqlx_error(err) else { return false };
    match e {
        Sqlx::Io(_)
        | Sqlx::Tls(_)
        | Sqlx::Protocol(_)
        | Sqlx::PoolClosed
        | Sqlx::PoolTimedOut
        | Sqlx::WorkerCrashed => true,
        // PostgreSQL: class 08 (connection exception), 57P01–57P03 (shutdown, crash, starting up).
        Sqlx::Database(db) if db.try_downcast_ref::<sea_orm::sqlx::postgres::PgDatabaseError>().is_some() => {
            db.code().is_some_and(|code| code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03"))
        }
        _ => false,
    }
}

/// PostgreSQL refused a NUL character in a text value: 22021 `invalid byte sequence for
/// encoding "UTF8": 0x00`, or 22P05 for `\u0000` inside JSON.
fn is_nul_in_text(err: &DbErr) -> bool {
    let Some(e) = sqlx_error(err) else { return false };
    e.as_database_error().and_then(|d| d.code()).is_some_and(|code| code == "22021" || code == "22P05")
}

/// Whether the database gave up on the statement because of concurrent transactions, so the
/// same work is expected to succeed when retried: PostgreSQL's deadlock (40P01) and
/// serialization failure (40001), SQLite's busy / locked after the busy timeout.
pub fn is_contention(err: &DbErr) -> bool {
    let Some(sea_orm::sqlx::Error::Database(db)) = sqlx_error(err) else { return false };
    let code = db.code().unwrap_or_default();
    if db.try_downcast_ref::<sea_orm::sqlx::postgres::PgDatabaseError>().is_some() {
        return matches!(code.as_ref(), "40P01" | "40001");
    }
    if db.try_downcast_ref::<sea_orm::sqlx::sqlite::SqliteError>().is_some() {
        // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes.
        return code.parse::<i32>().is_ok_and(|code| matches!(code & 0xff, 5 | 6));
    }
    false
}

pub type AppResult<T> = Result<T, AppError>;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sea_orm::sqlx;

    use super::*;

    fn query_failure(err: sqlx::Error) -> DbErr {
        DbErr::Query(RuntimeErr::SqlxError(Arc::new(err)))
    }

    #[test]
    fn a_connection_reset_is_unavailable_not_internal() {
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset by peer");
        for err in [
            query_failure(sqlx::Error::Io(reset)),
            query_failure(sqlx::Error::Protocol("unexpected end of stream".into())),
            query_failure(sqlx::Error::PoolClosed),
            DbErr::Conn(RuntimeErr::SqlxError(Arc::new(sqlx::Error::Io(std::io::ErrorKind::ConnectionRefused.into())))),
            DbErr::ConnectionAcquire(sea_orm::error::ConnAcquireErr::ConnectionClosed),
        ] {
            assert!(is_connection_failure(&err), "{err}");
            assert!(matches!(AppError::from(err), AppError::Unavailable(DatabaseUnavailable::Unreachable)));
        }
    }

    #[test]
    fn a_failing_statement_is_not_a_connection_failure() {
        let err = query_failure(sqlx::Error::RowNotFound);
        assert!(!is_connection_failure(&err));
        assert!(matches!(AppError::from(err), AppError::Database(_)));
    }
}
