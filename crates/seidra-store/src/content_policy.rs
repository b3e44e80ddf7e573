//! The instance content policy (one row, versioned) and the policy decision recorded on jobs.

use chrono::Utc;
use seidra_core::policy::PolicyDocument;
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use crate::db::{with_pool, with_write_pool};
use crate::{Db, StoreResult};

/// The stored policy and its version; `(0, defaults)` when no admin ever saved one.
pub async fn load(db: &Db) -> StoreResult<(i64, PolicyDocument)> {
    let row: Option<(i64, Json<PolicyDocument>)> = with_pool!(db, pool => {
        sqlx::query_as("SELECT version, document FROM content_policy WHERE id = 1").fetch_optional(pool).await?
    });
    Ok(row.map(|(v, d)| (v, d.0)).unwrap_or_default())
}

/// The current version only (what replicas poll to know whether their cache is stale).
pub async fn version(db: &Db) -> StoreResult<i64> {
    let v: Option<i64> = with_pool!(db, pool => {
        sqlx::query_scalar("SELECT version FROM content_policy WHERE id = 1").fetch_optional(pool).await?
    });
    Ok(v.unwrap_or(0))
}

/// Saves a new document; returns its version (the previous one + 1).
pub async fn save(db: &Db, doc: &PolicyDocument, by: Option<Uuid>) -> StoreResult<i64> {
    Ok(with_write_pool!(db, pool => {
        sqlx::query_scalar(
            "INSERT INTO content_policy (id, version, document, updated_by, updated_at) VALUES (1, 1, $1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET version = content_policy.version + 1, document = excluded.document, \
             updated_by = excluded.updated_by, updated_at = excluded.updated_at RETURNING version",
        )
        .bind(Json(doc))
        .bind(by)
        .bind(Utc::now())
        .fetch_one(pool)
        .await?
    }))
}

/// The policy decision recorded on a job, if any.
pub async fn job_decision(db: &Db, job_id: Uuid) -> StoreResult<Option<Value>> {
    let v: Option<Option<Json<Value>>> = with_pool!(db, pool => {
        sqlx::query_scalar("SELECT policy FROM jobs WHERE id = $1").bind(job_id).fetch_optional(pool).await?
    });
    Ok(v.flatten().map(|j| j.0))
}
