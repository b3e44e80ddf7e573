//! Reversible schema migrations embedded in the binary, one directory per backend.
//!
//! PostgreSQL runs take sqlx's advisory lock, so a Kubernetes migration Job and a rolling
//! deploy (or two `migrate up` at once) never apply the same migration twice.

use sqlx::migrate::Migrator;

use crate::db::with_pool;
use crate::{Backend, Db, StoreError, StoreResult};

static POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");

fn migrator(backend: Backend) -> &'static Migrator {
    match backend {
        Backend::Postgres => &POSTGRES,
        Backend::Sqlite => &SQLITE,
    }
}

/// One migration known to the binary and whether the database has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationInfo {
    /// Version number (file prefix).
    pub version: i64,
    /// Description (file name after the version).
    pub description: String,
    /// When it was applied, as the database printed it; `None` = pending.
    pub applied_at: Option<String>,
}

/// Where the schema stands relative to this binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    /// Highest applied version (0 = empty database).
    pub current: i64,
    /// Highest version this binary knows.
    pub latest: i64,
    /// Every migration of this binary, in order.
    pub migrations: Vec<MigrationInfo>,
    /// Versions applied in the database that this binary does not know (database is ahead).
    pub unknown_applied: Vec<i64>,
    /// Versions recorded as failed (a migration that broke half-way).
    pub failed: Vec<i64>,
}

impl MigrationStatus {
    /// Migrations not yet applied.
    pub fn pending(&self) -> impl Iterator<Item = &MigrationInfo> {
        self.migrations.iter().filter(|m| m.applied_at.is_none())
    }

    /// True when every known migration is applied and nothing unknown is.
    pub fn at_head(&self) -> bool {
        self.pending().next().is_none() && self.unknown_applied.is_empty() && self.failed.is_empty()
    }

    /// Refuses a database written by a newer binary, or one left by a failed migration.
    pub fn ensure_not_ahead(&self) -> StoreResult<()> {
        if let Some(max) = self.unknown_applied.iter().max() {
            return Err(StoreError::Schema(format!(
                "the database schema is at version {max}, newer than this binary (which knows up to {}); \
                 run a newer seidra, or revert with `seidra migrate down` using the binary that applied it",
                self.latest
            )));
        }
        if let Some(v) = self.failed.first() {
            return Err(StoreError::Schema(format!(
                "migration {v} previously failed half-way; repair the database and remove its row from _sqlx_migrations"
            )));
        }
        Ok(())
    }
}

/// Highest migration version embedded for `backend`.
pub fn latest_version(backend: Backend) -> i64 {
    migrator(backend).iter().filter(|m| m.migration_type.is_up_migration()).map(|m| m.version).max().unwrap_or(0)
}

/// Versions of the migrations embedded for `backend`, in order.
pub fn known_versions(backend: Backend) -> Vec<i64> {
    migrator(backend).iter().filter(|m| m.migration_type.is_up_migration()).map(|m| m.version).collect()
}

/// Reads the applied migrations and compares them with the embedded ones.
pub async fn status(db: &Db) -> StoreResult<MigrationStatus> {
    let applied = applied(db).await?;
    let known = migrator(db.backend());
    let migrations: Vec<MigrationInfo> = known
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .map(|m| MigrationInfo {
            version: m.version,
            description: m.description.to_string(),
            applied_at: applied.iter().find(|a| a.0 == m.version && a.2).map(|a| a.1.clone()),
        })
        .collect();
    let unknown_applied =
        applied.iter().filter(|a| !migrations.iter().any(|m| m.version == a.0)).map(|a| a.0).collect();
    let failed = applied.iter().filter(|a| !a.2).map(|a| a.0).collect();
    let current = applied.iter().filter(|a| a.2).map(|a| a.0).max().unwrap_or(0);
    Ok(MigrationStatus { current, latest: latest_version(db.backend()), migrations, unknown_applied, failed })
}

/// `(version, applied_at, success)` rows; empty when the bookkeeping table does not exist yet.
async fn applied(db: &Db) -> StoreResult<Vec<(i64, String, bool)>> {
    let exists: bool = match db {
        Db::Postgres(pool) => {
            sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL").fetch_one(pool).await?
        }
        Db::Sqlite(sqlite) => {
            sqlx::query_scalar(
                "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
            )
            .fetch_one(&sqlite.read)
            .await?
        }
    };
    if !exists {
        return Ok(Vec::new());
    }
    let rows = with_pool!(db, pool => {
        sqlx::query_as::<_, (i64, String, bool)>(
            "SELECT version, CAST(installed_on AS TEXT), success FROM _sqlx_migrations ORDER BY version",
        )
        .fetch_all(pool)
        .await?
    });
    Ok(rows)
}

/// Applies every pending migration; returns the new version. Refuses a database that is ahead.
pub async fn up(db: &Db) -> StoreResult<i64> {
    status(db).await?.ensure_not_ahead()?;
    let m = migrator(db.backend());
    with_pool!(db, pool => m.run(pool).await?);
    Ok(status(db).await?.current)
}

/// Reverts the `steps` most recent migrations; returns the versions reverted (newest first).
pub async fn down(db: &Db, steps: usize) -> StoreResult<Vec<i64>> {
    let before = status(db).await?;
    before.ensure_not_ahead()?;
    let mut applied: Vec<i64> =
        before.migrations.iter().filter(|m| m.applied_at.is_some()).map(|m| m.version).collect();
    applied.sort_unstable_by(|a, b| b.cmp(a));
    if steps > applied.len() {
        return Err(StoreError::Schema(format!("cannot revert {steps} migration(s): only {} applied", applied.len())));
    }
    let target = applied.get(steps).copied().unwrap_or(0);
    let m = migrator(db.backend());
    with_pool!(db, pool => m.undo(pool, target).await?);
    Ok(applied.into_iter().take(steps).collect())
}
