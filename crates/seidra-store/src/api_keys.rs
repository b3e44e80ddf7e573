//! Long-lived scoped API keys. The secret is shown once; only its SHA-256 is stored.

use chrono::{DateTime, Utc};
use seidra_core::ApiKeyScope;
use uuid::Uuid;

use crate::db::{with_pool, with_write_pool};
use crate::{Db, StoreResult};

/// A stored API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Key id (the `<id>` in `sk_<id>_<secret>`).
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// Label chosen by the owner.
    pub name: String,
    /// Hex SHA-256 of the secret part.
    pub secret_hash: String,
    /// What the key may do.
    pub scopes: Vec<ApiKeyScope>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Optional expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last authenticated use (updated at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// Revocation time; revoked keys fail at once.
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct ApiKeyRow {
    id: Uuid,
    user_id: Uuid,
    name: String,
    secret_hash: String,
    scopes: String,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiKeyRow> for ApiKey {
    fn from(r: ApiKeyRow) -> Self {
        ApiKey {
            id: r.id,
            user_id: r.user_id,
            name: r.name,
            secret_hash: r.secret_hash,
            scopes: ApiKeyScope::split(&r.scopes),
            created_at: r.created_at,
            expires_at: r.expires_at,
            last_used_at: r.last_used_at,
            revoked_at: r.revoked_at,
        }
    }
}

/// The selected columns, as a macro so queries stay `&'static str`.
macro_rules! columns {
    () => {
        "id, user_id, name, secret_hash, scopes, created_at, expires_at, last_used_at, revoked_at"
    };
}

/// Data for a new key.
#[derive(Debug, Clone)]
pub struct NewApiKey<'a> {
    /// Key id, chosen by the caller because it is part of the token.
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// Label.
    pub name: &'a str,
    /// Hex SHA-256 of the secret.
    pub secret_hash: &'a str,
    /// Scopes.
    pub scopes: &'a [ApiKeyScope],
    /// Optional expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Stores a new key.
pub async fn create(db: &Db, new: &NewApiKey<'_>) -> StoreResult<ApiKey> {
    let sql = concat!(
        "INSERT INTO api_keys (id, user_id, name, secret_hash, scopes, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
        columns!()
    );
    let row: ApiKeyRow = with_write_pool!(db, pool => {
        sqlx::query_as(sql)
            .bind(new.id)
            .bind(new.user_id)
            .bind(new.name)
            .bind(new.secret_hash)
            .bind(ApiKeyScope::join(new.scopes))
            .bind(Utc::now())
            .bind(new.expires_at)
            .fetch_one(pool)
            .await?
    });
    Ok(row.into())
}

/// Fetches a key by id (revoked ones included; the caller decides).
pub async fn get(db: &Db, id: Uuid) -> StoreResult<ApiKey> {
    let sql = concat!("SELECT ", columns!(), " FROM api_keys WHERE id = $1");
    let row: ApiKeyRow = with_pool!(db, pool => sqlx::query_as(sql).bind(id).fetch_one(pool).await?);
    Ok(row.into())
}

/// Lists a user's keys, newest first (revoked ones included so the owner sees history).
pub async fn list_for_user(db: &Db, user_id: Uuid) -> StoreResult<Vec<ApiKey>> {
    let sql = concat!("SELECT ", columns!(), " FROM api_keys WHERE user_id = $1 ORDER BY created_at DESC");
    let rows: Vec<ApiKeyRow> = with_pool!(db, pool => sqlx::query_as(sql).bind(user_id).fetch_all(pool).await?);
    Ok(rows.into_iter().map(ApiKey::from).collect())
}

/// Revokes a key owned by `user_id`; false when there is no such live key.
pub async fn revoke(db: &Db, id: Uuid, user_id: Uuid) -> StoreResult<bool> {
    let done = with_write_pool!(db, pool => {
        sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL")
            .bind(Utc::now())
            .bind(id)
            .bind(user_id)
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(done == 1)
}

/// Records use of a key.
pub async fn touch(db: &Db, id: Uuid, at: DateTime<Utc>) -> StoreResult<()> {
    with_write_pool!(db, pool => {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2").bind(at).bind(id).execute(pool).await.map(|_| ())?
    });
    Ok(())
}
