//! The one error type of the service layer. `http::problem` turns it into RFC 9457 problem details.

use sea_orm::{DbErr, SqlErr};

use crate::domain::validate::FieldErrors;

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
    #[error("{message}")]
    TooManyRequests { message: String, retry_after_secs: u64 },
    #[error("{0}")]
    Unavailable(String),

    #[error("internal error: {0}")]
    Internal(String),
    #[error("database error")]
    Database(#[source] DbErr),
}

impl AppError {
    pub fn not_found(what: &str) -> Self {
        Self::NotFound(format!("{what} not found"))
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(FieldErrors::single(field, message))
    }
}

impl From<FieldErrors> for AppError {
    fn from(errors: FieldErrors) -> Self {
        Self::Validation(errors)
    }
}

/// Constraint violations are the client's conflict, a pool timeout is a busy server, the rest
/// is ours. Services check references up front with named fields; these are the backstops.
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
            _ if matches!(err, DbErr::ConnectionAcquire(_)) => {
                Self::Unavailable("the database is busy; retry shortly".into())
            }
            _ => Self::Database(err),
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;
