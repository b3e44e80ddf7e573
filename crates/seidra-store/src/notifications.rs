//! Per-user notifications: each row belongs to one user and carries its own read state.

use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;

use crate::db::{with_pool, with_write_pool};
use crate::{Db, StoreError, StoreResult};

/// A stored notification.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Notification {
    /// Id.
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// `info`, `success`, `warning` or `error`.
    pub level: String,
    /// `job`, `export`, `quota`, `security`, `system`.
    pub category: String,
    /// Short title.
    pub title: String,
    /// Body text.
    pub body: String,
    /// Relative link in the studio (`/jobs/…`), if any.
    pub link: Option<String>,
    /// When it was read.
    pub read_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A notification to create.
#[derive(Debug, Clone)]
pub struct NewNotification<'a> {
    /// Level.
    pub level: &'a str,
    /// Category.
    pub category: &'a str,
    /// Title.
    pub title: &'a str,
    /// Body.
    pub body: &'a str,
    /// Link.
    pub link: Option<&'a str>,
}

macro_rules! columns {
    () => {
        "id, user_id, level, category, title, body, link, read_at, created_at"
    };
}

/// The INSERT of one notification, binding id, user, level, category, title, body, link and
/// creation time in that order (also run inside other transactions, see `jobs::complete_many`).
pub(crate) const INSERT_SQL: &str = "INSERT INTO notifications (id, user_id, level, category, title, body, link, read_at, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8)";

/// Binds a [`Notification`]'s fields to [`INSERT_SQL`].
macro_rules! bind_insert {
    ($query:expr, $n:expr) => {
        $query
            .bind($n.id)
            .bind($n.user_id)
            .bind(&$n.level)
            .bind(&$n.category)
            .bind(&$n.title)
            .bind(&$n.body)
            .bind(&$n.link)
            .bind($n.created_at)
    };
}
pub(crate) use bind_insert;

/// Inserts `rows` in one statement (PostgreSQL arrays), inside the caller's transaction.
pub(crate) async fn insert_many_pg(tx: &mut sqlx::PgConnection, rows: &[Notification]) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&Notification) -> &str| rows.iter().map(f).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO notifications (id, user_id, level, category, title, body, link, read_at, created_at) \
         SELECT id, user_id, level, category, title, body, link, NULL, created_at \
         FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[]) \
         AS n(id, user_id, level, category, title, body, link, created_at)",
    )
    .bind(rows.iter().map(|n| n.id).collect::<Vec<_>>())
    .bind(rows.iter().map(|n| n.user_id).collect::<Vec<_>>())
    .bind(col(|n| &n.level))
    .bind(col(|n| &n.category))
    .bind(col(|n| &n.title))
    .bind(col(|n| &n.body))
    .bind(rows.iter().map(|n| n.link.as_deref()).collect::<Vec<_>>())
    .bind(rows.iter().map(|n| n.created_at).collect::<Vec<_>>())
    .execute(tx)
    .await?;
    Ok(())
}

/// A notification not yet stored, owned (built inside a transaction by a caller's hook).
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// Level.
    pub level: &'static str,
    /// Category.
    pub category: &'static str,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// Link.
    pub link: Option<String>,
}

impl Draft {
    /// The row this draft becomes for `user_id`, with a fresh id and `now` as creation time.
    pub(crate) fn into_row(self, user_id: Uuid, now: DateTime<Utc>) -> Notification {
        Notification {
            id: Uuid::now_v7(),
            user_id,
            level: self.level.to_owned(),
            category: self.category.to_owned(),
            title: self.title,
            body: self.body,
            link: self.link,
            read_at: None,
            // What PostgreSQL keeps, so the row pushed live equals the row read back later.
            created_at: now.trunc_subsecs(6),
        }
    }
}

/// Creates one notification for `user_id` (a single INSERT).
pub async fn create(db: &Db, user_id: Uuid, new: &NewNotification<'_>) -> StoreResult<Notification> {
    let n = Notification {
        id: Uuid::now_v7(),
        user_id,
        level: new.level.to_owned(),
        category: new.category.to_owned(),
        title: new.title.to_owned(),
        body: new.body.to_owned(),
        link: new.link.map(str::to_owned),
        read_at: None,
        created_at: Utc::now().trunc_subsecs(6),
    };
    with_write_pool!(db, pool => {
        bind_insert!(sqlx::query(INSERT_SQL), n).execute(pool).await?;
    });
    Ok(n)
}

/// Creates the same notification for every enabled account; returns the created rows.
pub async fn create_for_all_active(db: &Db, new: &NewNotification<'_>) -> StoreResult<Vec<Notification>> {
    let users: Vec<Uuid> = with_pool!(db, pool => {
        sqlx::query_scalar("SELECT id FROM users WHERE disabled = FALSE ORDER BY id").fetch_all(pool).await?
    });
    let mut out = Vec::with_capacity(users.len());
    for user in users {
        out.push(create(db, user, new).await?);
    }
    Ok(out)
}

/// A page of one user's notifications (newest first), the total and the unread count.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationPage {
    /// Items.
    pub items: Vec<Notification>,
    /// Items matching the filter.
    pub total: i64,
    /// Unread items of the user (whatever the filter).
    pub unread: i64,
}

/// Lists a user's notifications.
pub async fn list(db: &Db, user_id: Uuid, unread_only: bool, limit: i64, offset: i64) -> StoreResult<NotificationPage> {
    macro_rules! filter {
        () => {
            " FROM notifications WHERE user_id = $1 AND ($2 = FALSE OR read_at IS NULL)"
        };
    }
    let sql = concat!("SELECT ", columns!(), filter!(), " ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4");
    let count = concat!("SELECT COUNT(*)", filter!());
    Ok(with_pool!(db, pool => {
        let items = sqlx::query_as(sql).bind(user_id).bind(unread_only).bind(limit).bind(offset).fetch_all(pool).await?;
        let total: i64 = sqlx::query_scalar(count).bind(user_id).bind(unread_only).fetch_one(pool).await?;
        let unread: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL")
            .bind(user_id)
            .fetch_one(pool)
            .await?;
        NotificationPage { items, total, unread }
    }))
}

/// Marks one notification of `user_id` read (idempotent); `NotFound` for anyone else's.
pub async fn mark_read(db: &Db, user_id: Uuid, id: Uuid) -> StoreResult<Notification> {
    let sql = concat!(
        "UPDATE notifications SET read_at = COALESCE(read_at, $1) WHERE id = $2 AND user_id = $3 RETURNING ",
        columns!()
    );
    Ok(with_write_pool!(db, pool => sqlx::query_as(sql).bind(Utc::now()).bind(id).bind(user_id).fetch_one(pool).await?))
}

/// Marks every unread notification of `user_id` read; returns how many changed.
pub async fn mark_all_read(db: &Db, user_id: Uuid) -> StoreResult<u64> {
    Ok(with_write_pool!(db, pool => {
        sqlx::query("UPDATE notifications SET read_at = $1 WHERE user_id = $2 AND read_at IS NULL")
            .bind(Utc::now())
            .bind(user_id)
            .execute(pool)
            .await?
            .rows_affected()
    }))
}

/// Deletes one notification of `user_id`; `NotFound` for anyone else's.
pub async fn delete(db: &Db, user_id: Uuid, id: Uuid) -> StoreResult<()> {
    let n = with_write_pool!(db, pool => {
        sqlx::query("DELETE FROM notifications WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(pool)
            .await?
            .rows_affected()
    });
    if n == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

/// Whether `user_id` has an unread notification of `category` created since `since` (used to
/// avoid repeating the same notice, e.g. on every refused submission).
pub async fn has_recent_unread(db: &Db, user_id: Uuid, category: &str, since: DateTime<Utc>) -> StoreResult<bool> {
    let n: i64 = with_pool!(db, pool => {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM notifications WHERE user_id = $1 AND category = $2 AND read_at IS NULL AND created_at >= $3",
        )
        .bind(user_id)
        .bind(category)
        .bind(since)
        .fetch_one(pool)
        .await?
    });
    Ok(n > 0)
}
