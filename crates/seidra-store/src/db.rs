//! Connecting to the configured database and dispatching queries to it.

use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::{StoreError, StoreResult};

/// Which database engine a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded default.
    Sqlite,
    /// Cluster deployments.
    Postgres,
}

impl Backend {
    /// Picks the backend from a URL scheme.
    pub fn from_url(url: &str) -> StoreResult<Backend> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::Other(format!(
                "unsupported database URL scheme in `{}` (expected sqlite: or postgres://)",
                url.split(':').next().unwrap_or_default()
            )))
        }
    }

    /// Lower-case name for logs and health output.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// Upper bound of pooled connections.
    pub max_connections: u32,
    /// How long to wait for a pooled connection.
    pub acquire_timeout: Duration,
}

impl Default for DbOptions {
    fn default() -> Self {
        Self { max_connections: 16, acquire_timeout: Duration::from_secs(5) }
    }
}

/// How many SQLite readers to pool. sqlx runs each SQLite connection on a thread of its own and
/// hands every row across, so readers beyond about twice the cores only add thread hand-offs:
/// on 2 cores, 4 readers instead of 16 gave the jobs list +20–28 % (`bench/jobs.sh`, session 8).
fn sqlite_readers(max_connections: u32) -> u32 {
    let cores = std::thread::available_parallelism().map_or(2, |n| u32::try_from(n.get()).unwrap_or(u32::MAX));
    max_connections.min(cores.saturating_mul(2)).clamp(2, 16)
}

/// A connection pool on one of the two supported databases. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Db {
    /// PostgreSQL pool.
    Postgres(PgPool),
    /// SQLite pools (WAL, foreign keys on, busy timeout).
    Sqlite(SqliteDb),
}

/// SQLite allows one writer at a time. Writers that contend for its lock wait in SQLite's busy
/// handler, which *sleeps* (1, 2, 5 … 100 ms) between retries, so under load the lock is often
/// free while every writer sleeps (measured: 1.2 sleeps of ~9 ms per job, claims taking over
/// a second). Writes therefore go through a pool of exactly one connection: writers queue in
/// tokio and the next one starts the moment the previous commits. Reads use the other pool
/// and never wait for writers (WAL).
#[derive(Debug, Clone)]
pub struct SqliteDb {
    /// Readers (and writes not yet routed through `write`, which then use the busy handler).
    pub read: SqlitePool,
    /// The single writer connection.
    pub write: SqlitePool,
}

/// Runs `$body` with `$pool` bound to the concrete pool of `$db`: the same code, and the
/// same SQL text, compiled once per backend. On SQLite this is the read pool: statements
/// that write use [`with_write_pool!`].
#[macro_export]
#[doc(hidden)]
macro_rules! with_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::Db::Postgres($pool) => $body,
            $crate::Db::Sqlite(sqlite) => {
                let $pool = &sqlite.read;
                $body
            }
        }
    };
}
pub(crate) use with_pool;

/// Like [`with_pool!`], for statements and transactions that write: on SQLite `$pool` is the
/// single writer connection (see [`SqliteDb`]).
#[macro_export]
#[doc(hidden)]
macro_rules! with_write_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::Db::Postgres($pool) => $body,
            $crate::Db::Sqlite(sqlite) => {
                let $pool = &sqlite.write;
                $body
            }
        }
    };
}
pub(crate) use with_write_pool;

impl Db {
    /// Connects (lazily for PostgreSQL so a down database is reported by health, not a crash).
    pub async fn connect(url: &str, options: &DbOptions) -> StoreResult<Db> {
        match Backend::from_url(url)? {
            Backend::Postgres => {
                let connect = PgConnectOptions::from_str(url)
                    .map_err(|e| StoreError::Other(format!("invalid PostgreSQL URL: {e}")))?
                    .application_name("seidra");
                let pool = PgPoolOptions::new()
                    .max_connections(options.max_connections.max(2))
                    .min_connections(0)
                    .acquire_timeout(options.acquire_timeout)
                    .idle_timeout(Some(Duration::from_secs(300)))
                    .connect_lazy_with(connect);
                Ok(Db::Postgres(pool))
            }
            Backend::Sqlite => {
                let connect = SqliteConnectOptions::from_str(url)
                    .map_err(|e| StoreError::Other(format!("invalid SQLite URL: {e}")))?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(10));
                let read = SqlitePoolOptions::new()
                    .max_connections(sqlite_readers(options.max_connections))
                    .acquire_timeout(options.acquire_timeout)
                    .before_acquire(|conn, _| Box::pin(async move { Ok(!sqlite_tx_left_open(conn)) }))
                    .connect_with(connect.clone())
                    .await?;
                // An in-memory database exists once per connection: there, one pool does both.
                let write = if url.contains(":memory:") || url.contains("mode=memory") {
                    read.clone()
                } else {
                    SqlitePoolOptions::new()
                        .max_connections(1)
                        .min_connections(1)
                        .acquire_timeout(options.acquire_timeout)
                        .idle_timeout(None)
                        .max_lifetime(None)
                        .before_acquire(|conn, _| Box::pin(async move { Ok(!sqlite_tx_left_open(conn)) }))
                        .connect_with(connect)
                        .await?
                };
                Ok(Db::Sqlite(SqliteDb { read, write }))
            }
        }
    }

    /// Which backend this pool talks to.
    pub fn backend(&self) -> Backend {
        match self {
            Db::Postgres(_) => Backend::Postgres,
            Db::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Round-trips a trivial query; returns the latency.
    pub async fn ping(&self) -> StoreResult<Duration> {
        let started = Instant::now();
        with_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))?;
        Ok(started.elapsed())
    }

    /// Pool size and idle connections, for metrics.
    pub fn pool_stats(&self) -> (u32, usize) {
        match self {
            Db::Postgres(pool) => (pool.size(), pool.num_idle()),
            Db::Sqlite(db) => (db.read.size() + db.write.size(), db.read.num_idle() + db.write.num_idle()),
        }
    }

    /// Closes every pooled connection (on shutdown).
    pub async fn close(&self) {
        match self {
            Db::Postgres(pool) => pool.close().await,
            Db::Sqlite(db) => {
                db.read.close().await;
                db.write.close().await;
            }
        }
    }
}

/// Starts a write transaction: plain `BEGIN` on PostgreSQL, `BEGIN IMMEDIATE` on SQLite so
/// that read-then-write transactions wait for the write lock instead of failing with BUSY.
pub(crate) trait BeginWrite {
    /// The database of the pool.
    type Database: sqlx::Database;
    /// Begins the transaction.
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, Self::Database>, sqlx::Error>> + Send;
}

impl BeginWrite for PgPool {
    type Database = sqlx::Postgres;
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error>> + Send {
        self.begin()
    }
}

impl BeginWrite for SqlitePool {
    type Database = sqlx::Sqlite;
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error>> + Send {
        self.begin_with("BEGIN IMMEDIATE")
    }
}

/// Whether sqlx still counts this idle connection as inside a transaction, so the pool must
/// discard it. After `SQLITE_FULL` (a full disk) SQLite rolls the transaction back by itself;
/// sqlx's own `ROLLBACK` then fails ("no transaction is active") and its depth counter stays at
/// 1, and every later `begin` on the connection failed with "attempted to call begin_with at
/// non-zero transaction depth": one full disk poisoned the single write connection for good.
/// The pool pings before this check, so a rollback queued when a transaction was dropped has
/// been processed by then.
fn sqlite_tx_left_open(conn: &sqlx::SqliteConnection) -> bool {
    use sqlx::Connection;
    let open = conn.is_in_transaction();
    if open {
        tracing::warn!("discarding a SQLite connection left inside a failed transaction");
    }
    open
}

#[cfg(test)]
mod tests {
    use super::sqlite_readers;

    #[test]
    fn sqlite_readers_follow_the_cores_within_the_configured_bound() {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
        assert_eq!(sqlite_readers(16), (cores * 2).clamp(2, 16));
        assert_eq!(sqlite_readers(2), 2, "never more than configured");
        assert!(sqlite_readers(3) <= 3);
        assert_eq!(sqlite_readers(1000), (cores * 2).clamp(2, 16), "at most 16");
    }
}
