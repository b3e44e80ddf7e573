//! User accounts.

use chrono::{DateTime, Utc};
use seidra_core::Role;
use uuid::Uuid;

use crate::db::{with_pool, with_write_pool};
use crate::{Db, StoreError, StoreResult};

/// A stored account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Primary key.
    pub id: Uuid,
    /// Unique login name.
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Instance role.
    pub role: Role,
    /// Disabled accounts cannot log in and their tokens stop working.
    pub disabled: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Last successful login.
    pub last_login_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    username: String,
    password_hash: String,
    role: String,
    disabled: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    last_login_at: Option<DateTime<Utc>>,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> StoreResult<User> {
        let role = Role::parse(&r.role).ok_or_else(|| StoreError::Other(format!("unknown role `{}`", r.role)))?;
        Ok(User {
            id: r.id,
            username: r.username,
            password_hash: r.password_hash,
            role,
            disabled: r.disabled,
            created_at: r.created_at,
            updated_at: r.updated_at,
            last_login_at: r.last_login_at,
        })
    }
}

/// The selected columns, as a macro so queries stay `&'static str`.
macro_rules! columns {
    () => {
        "id, username, password_hash, role, disabled, created_at, updated_at, last_login_at"
    };
}

/// Data for a new account.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Unique login name (validated by the caller).
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Role.
    pub role: Role,
}

/// Creates an account; `Conflict` when the username is taken.
pub async fn create_user(db: &Db, new: &NewUser) -> StoreResult<User> {
    let now = Utc::now();
    let id = Uuid::now_v7();
    let sql = concat!(
        "INSERT INTO users (id, username, password_hash, role, disabled, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, FALSE, $5, $5) RETURNING ",
        columns!()
    );
    let row: UserRow = with_write_pool!(db, pool => {
        sqlx::query_as(sql)
            .bind(id)
            .bind(&new.username)
            .bind(&new.password_hash)
            .bind(new.role.as_str())
            .bind(now)
            .fetch_one(pool)
            .await?
    });
    row.try_into()
}

/// Looks an account up by id.
pub async fn get_user(db: &Db, id: Uuid) -> StoreResult<User> {
    let sql = concat!("SELECT ", columns!(), " FROM users WHERE id = $1");
    let row: UserRow = with_pool!(db, pool => sqlx::query_as(sql).bind(id).fetch_one(pool).await?);
    row.try_into()
}

/// Looks an account up by username.
pub async fn get_user_by_username(db: &Db, username: &str) -> StoreResult<User> {
    let sql = concat!("SELECT ", columns!(), " FROM users WHERE username = $1");
    let row: UserRow = with_pool!(db, pool => sqlx::query_as(sql).bind(username).fetch_one(pool).await?);
    row.try_into()
}

/// Lists accounts by username with the total count.
pub async fn list_users(db: &Db, limit: i64, offset: i64) -> StoreResult<(Vec<User>, i64)> {
    let sql = concat!("SELECT ", columns!(), " FROM users ORDER BY username LIMIT $1 OFFSET $2");
    let (rows, total): (Vec<UserRow>, i64) = with_pool!(db, pool => {
        let rows = sqlx::query_as(sql).bind(limit).bind(offset).fetch_all(pool).await?;
        let total = sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(pool).await?;
        (rows, total)
    });
    let users = rows.into_iter().map(User::try_from).collect::<StoreResult<Vec<_>>>()?;
    Ok((users, total))
}

/// Number of accounts (0 means first boot).
pub async fn count_users(db: &Db) -> StoreResult<i64> {
    Ok(with_pool!(db, pool => sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(pool).await?))
}

/// Number of enabled admins (to refuse demoting or disabling the last one).
pub async fn count_active_admins(db: &Db) -> StoreResult<i64> {
    Ok(with_pool!(db, pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = FALSE")
            .fetch_one(pool)
            .await?
    }))
}

async fn update_one(db: &Db, sql: &'static str, id: Uuid, bind: UpdateValue<'_>) -> StoreResult<User> {
    let now = Utc::now();
    let row: UserRow = with_write_pool!(db, pool => {
        let query = sqlx::query_as(sql);
        let query = match bind {
            UpdateValue::Text(t) => query.bind(t),
            UpdateValue::Bool(b) => query.bind(b),
            UpdateValue::Time(t) => query.bind(t),
        };
        query.bind(now).bind(id).fetch_one(pool).await?
    });
    row.try_into()
}

enum UpdateValue<'a> {
    Text(&'a str),
    Bool(bool),
    Time(DateTime<Utc>),
}

/// Replaces the password hash.
pub async fn set_password(db: &Db, id: Uuid, password_hash: &str) -> StoreResult<User> {
    let sql = concat!("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3 RETURNING ", columns!());
    update_one(db, sql, id, UpdateValue::Text(password_hash)).await
}

/// Enables or disables an account.
pub async fn set_disabled(db: &Db, id: Uuid, disabled: bool) -> StoreResult<User> {
    let sql = concat!("UPDATE users SET disabled = $1, updated_at = $2 WHERE id = $3 RETURNING ", columns!());
    update_one(db, sql, id, UpdateValue::Bool(disabled)).await
}

/// Changes the role.
pub async fn set_role(db: &Db, id: Uuid, role: Role) -> StoreResult<User> {
    let sql = concat!("UPDATE users SET role = $1, updated_at = $2 WHERE id = $3 RETURNING ", columns!());
    update_one(db, sql, id, UpdateValue::Text(role.as_str())).await
}

/// Records a successful login.
pub async fn touch_login(db: &Db, id: Uuid) -> StoreResult<User> {
    let sql = concat!("UPDATE users SET last_login_at = $1, updated_at = $2 WHERE id = $3 RETURNING ", columns!());
    update_one(db, sql, id, UpdateValue::Time(Utc::now())).await
}
