//! Store errors with the distinctions callers act on.

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// What went wrong in the database layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row does not exist.
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was violated (`constraint` names it when the database says).
    #[error("conflict on {constraint}")]
    Conflict {
        /// The violated constraint or column.
        constraint: String,
    },
    /// The database cannot be reached or the pool is exhausted: retry later (HTTP 503).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database's disk is full (SQLite `SQLITE_FULL`, PostgreSQL `disk_full`, or `ENOSPC`):
    /// reads still work, writes fail until space is freed (HTTP 507).
    #[error("the database's disk is full: {0}")]
    StorageFull(String),
    /// The database schema is not what this binary expects.
    #[error("{0}")]
    Schema(String),
    /// Anything else (a bug or corrupt data).
    #[error("database error: {0}")]
    Other(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Io(io) if is_disk_full(io) => StoreError::StorageFull(err.to_string()),
            sqlx::Error::Database(db) if is_disk_full_code(db.code().as_deref()) => {
                StoreError::StorageFull(err.to_string())
            }
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
                StoreError::Unavailable(err.to_string())
            }
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict {
                constraint: db.constraint().map(str::to_owned).unwrap_or_else(|| db.message().to_owned()),
            },
            sqlx::Error::Database(db) if is_unavailable_code(db.code().as_deref()) => {
                StoreError::Unavailable(err.to_string())
            }
            _ => StoreError::Other(err.to_string()),
        }
    }
}

/// SQLite `SQLITE_FULL` (13) and PostgreSQL `disk_full` (53100). Checked before the
/// "unavailable" classes: PostgreSQL's class 53 holds both.
fn is_disk_full_code(code: Option<&str>) -> bool {
    matches!(code, Some("13" | "53100"))
}

/// `ENOSPC` or `EDQUOT` (the same test as `seidra_storage::is_disk_full`, which this crate
/// does not depend on).
fn is_disk_full(err: &std::io::Error) -> bool {
    matches!(err.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
        || matches!(err.raw_os_error(), Some(28 | 122))
}

/// PostgreSQL classes meaning "the server or database is not usable right now" (connection
/// exception, operator intervention, insufficient resources, invalid authorization, database
/// does not exist) and SQLite BUSY/LOCKED.
fn is_unavailable_code(code: Option<&str>) -> bool {
    code.is_some_and(|c| {
        ["08", "57P", "53", "28"].iter().any(|class| c.starts_with(class))
            || c == "3D000"
            || c == "5"
            || c == "6"
            || c == "517"
    })
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        match err {
            sqlx::migrate::MigrateError::Execute(inner) => StoreError::from(inner),
            other => StoreError::Schema(other.to_string()),
        }
    }
}
