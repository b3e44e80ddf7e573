//! The security audit log: who did what, to what, from where, and whether it worked.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::db::{with_pool, with_write_pool};
use crate::{Db, StoreResult};

/// One audit record to write.
#[derive(Debug, Clone)]
pub struct NewAuditEntry<'a> {
    /// Acting account, when known.
    pub actor_id: Option<Uuid>,
    /// Dotted action name (`auth.login`, `admin.user.disable`…).
    pub action: &'a str,
    /// What was acted on (user id, key id…).
    pub target: Option<String>,
    /// Whether it worked.
    pub success: bool,
    /// Client IP.
    pub ip: Option<String>,
    /// Extra structured context (never secrets).
    pub details: Value,
}

/// A stored audit record.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AuditEntry {
    /// Sequence number.
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor_id: Option<Uuid>,
    /// What.
    pub action: String,
    /// On what.
    pub target: Option<String>,
    /// `success` or `failure`.
    pub outcome: String,
    /// From where.
    pub ip: Option<String>,
    /// Context.
    pub details: sqlx::types::Json<Value>,
}

/// Appends an entry.
pub async fn record(db: &Db, entry: &NewAuditEntry<'_>) -> StoreResult<()> {
    let outcome = if entry.success { "success" } else { "failure" };
    with_write_pool!(db, pool => {
        sqlx::query(
            "INSERT INTO audit_log (at, actor_id, action, target, outcome, ip, details) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(Utc::now())
        .bind(entry.actor_id)
        .bind(entry.action)
        .bind(&entry.target)
        .bind(outcome)
        .bind(&entry.ip)
        .bind(sqlx::types::Json(&entry.details))
        .execute(pool)
        .await
        .map(|_| ())?
    });
    Ok(())
}

/// Most recent entries first, optionally for one actor.
pub async fn list(db: &Db, actor_id: Option<Uuid>, limit: i64, offset: i64) -> StoreResult<Vec<AuditEntry>> {
    Ok(with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT id, at, actor_id, action, target, outcome, ip, details FROM audit_log \
             WHERE ($1 IS NULL OR actor_id = $1) ORDER BY id DESC LIMIT $2 OFFSET $3",
        )
        .bind(actor_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(pool)
        .await?
    }))
}

/// Client IPs of the last `n` successful sign-ins of `user_id`, newest first (for "sign-in
/// from a new address" notices).
pub async fn recent_login_ips(db: &Db, user_id: Uuid, n: i64) -> StoreResult<Vec<Option<String>>> {
    Ok(with_pool!(db, pool => {
        sqlx::query_scalar(
            "SELECT ip FROM audit_log WHERE actor_id = $1 AND action = 'auth.login' AND outcome = 'success' \
             ORDER BY id DESC LIMIT $2",
        )
        .bind(user_id)
        .bind(n)
        .fetch_all(pool)
        .await?
    }))
}
