//! Rotating refresh tokens. Each login starts a family; each refresh marks the presented token
//! used and issues the next one in the same family. Presenting a used token again is reuse:
//! the whole family is revoked.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db::{with_pool, with_write_pool};
use crate::{Db, StoreResult};

/// A stored refresh token (only its SHA-256 is kept).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RefreshToken {
    /// Primary key.
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// Rotation family (one per login).
    pub family_id: Uuid,
    /// Hex SHA-256 of the token.
    pub token_hash: String,
    /// Issue time.
    pub created_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// When it was exchanged for a new one.
    pub used_at: Option<DateTime<Utc>>,
    /// When it was revoked (logout, reuse, password change).
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Data for a new refresh token.
#[derive(Debug, Clone)]
pub struct NewRefreshToken<'a> {
    /// Owner.
    pub user_id: Uuid,
    /// Family: fresh for a login, inherited on rotation.
    pub family_id: Uuid,
    /// Hex SHA-256 of the token.
    pub token_hash: &'a str,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Client IP.
    pub ip: Option<&'a str>,
    /// Client user agent.
    pub user_agent: Option<&'a str>,
}

/// The selected columns, as a macro so queries stay `&'static str`.
macro_rules! columns {
    () => {
        "id, user_id, family_id, token_hash, created_at, expires_at, used_at, revoked_at"
    };
}

/// Stores a new refresh token.
pub async fn insert(db: &Db, new: &NewRefreshToken<'_>) -> StoreResult<RefreshToken> {
    let sql = concat!(
        "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, created_at, expires_at, ip, user_agent) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ",
        columns!()
    );
    Ok(with_write_pool!(db, pool => {
        sqlx::query_as(sql)
            .bind(Uuid::now_v7())
            .bind(new.user_id)
            .bind(new.family_id)
            .bind(new.token_hash)
            .bind(Utc::now())
            .bind(new.expires_at)
            .bind(new.ip)
            .bind(new.user_agent)
            .fetch_one(pool)
            .await?
    }))
}

/// Finds a token by its hash.
pub async fn find_by_hash(db: &Db, token_hash: &str) -> StoreResult<Option<RefreshToken>> {
    let sql = concat!("SELECT ", columns!(), " FROM refresh_tokens WHERE token_hash = $1");
    Ok(with_pool!(db, pool => sqlx::query_as(sql).bind(token_hash).fetch_optional(pool).await?))
}

/// Marks a token used; false when it was already used or revoked (a concurrent or replayed refresh).
pub async fn mark_used(db: &Db, id: Uuid) -> StoreResult<bool> {
    let done = with_write_pool!(db, pool => {
        sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE id = $2 AND used_at IS NULL AND revoked_at IS NULL")
            .bind(Utc::now())
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(done == 1)
}

/// Revokes every token of a family; returns how many were still live.
pub async fn revoke_family(db: &Db, family_id: Uuid) -> StoreResult<u64> {
    Ok(with_write_pool!(db, pool => {
        sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL")
            .bind(Utc::now())
            .bind(family_id)
            .execute(pool)
            .await?
            .rows_affected()
    }))
}

/// Revokes every token of a user (password change, account disabled).
pub async fn revoke_all_for_user(db: &Db, user_id: Uuid) -> StoreResult<u64> {
    Ok(with_write_pool!(db, pool => {
        sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
            .bind(Utc::now())
            .bind(user_id)
            .execute(pool)
            .await?
            .rows_affected()
    }))
}

/// Deletes tokens that expired before `before`; returns how many.
pub async fn prune_expired(db: &Db, before: DateTime<Utc>) -> StoreResult<u64> {
    Ok(with_write_pool!(db, pool => {
        sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < $1").bind(before).execute(pool).await?.rows_affected()
    }))
}
