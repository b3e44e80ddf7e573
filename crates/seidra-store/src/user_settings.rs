//! Per-user settings: the user's overrides of the defaults (`seidra_core::user_settings`).

use chrono::Utc;
use seidra_core::user_settings::{UserSettings, effective};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use crate::db::{with_pool, with_write_pool};
use crate::{Db, StoreError, StoreResult};

/// Tries before a concurrently edited settings row is reported as a conflict.
const MAX_TRIES: usize = 8;

/// The stored overrides and their revision (`{}` and 0 when the user never saved settings).
pub async fn get_overrides(db: &Db, user_id: Uuid) -> StoreResult<(Value, i64)> {
    let row: Option<(Json<Value>, i64)> = with_pool!(db, pool => {
        sqlx::query_as("SELECT doc, revision FROM user_settings WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(pool)
            .await?
    });
    Ok(row.map(|(doc, rev)| (doc.0, rev)).unwrap_or_else(|| (Value::Object(serde_json::Map::new()), 0)))
}

/// The effective settings of a user (defaults merged with the overrides).
pub async fn get(db: &Db, user_id: Uuid) -> StoreResult<UserSettings> {
    Ok(effective(&get_overrides(db, user_id).await?.0))
}

/// The effective settings of several users in one read (users without a row get the defaults).
pub async fn get_many(db: &Db, user_ids: &[Uuid]) -> StoreResult<std::collections::HashMap<Uuid, UserSettings>> {
    let mut ids = user_ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    let rows: Vec<(Uuid, Json<Value>)> = match db {
        Db::Postgres(pool) => {
            sqlx::query_as("SELECT user_id, doc FROM user_settings WHERE user_id = ANY($1)")
                .bind(&ids)
                .fetch_all(pool)
                .await?
        }
        Db::Sqlite(sqlite) => {
            // SQLite stores uuids as 16-byte blobs; `json_each` cannot carry blobs, so bind each.
            let marks: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
            let sql = format!("SELECT user_id, doc FROM user_settings WHERE user_id IN ({})", marks.join(", "));
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
            for id in &ids {
                q = q.bind(id);
            }
            q.fetch_all(&sqlite.read).await?
        }
    };
    let mut found: std::collections::HashMap<Uuid, UserSettings> =
        rows.into_iter().map(|(id, doc)| (id, effective(&doc.0))).collect();
    for id in ids {
        found.entry(id).or_insert_with(|| effective(&Value::Object(serde_json::Map::new())));
    }
    Ok(found)
}

/// Whether notifications of `category` (`job`, `export`, `quota`, `security`, `system`) go to
/// `channel` (`in_app`, `websocket`, `webhook`) for this user. One primary-key read; unknown
/// names are `false`. If the settings cannot be read, the default for that pair is used (and
/// logged): a database hiccup should not silence security notifications.
pub async fn notification_enabled(db: &Db, user_id: Uuid, category: &str, channel: &str) -> bool {
    match get(db, user_id).await {
        Ok(settings) => settings.notification_enabled(category, channel),
        Err(err) => {
            tracing::warn!(%err, %user_id, "could not read notification settings; using the defaults");
            UserSettings::default().notification_enabled(category, channel)
        }
    }
}

/// Read-modify-write of the overrides with optimistic concurrency: `change` gets the current
/// overrides and returns the new ones (or a refusal, returned as the inner `Err`); a concurrent
/// edit makes it run again on the fresh value.
pub async fn update<T, E>(
    db: &Db,
    user_id: Uuid,
    change: impl Fn(&Value) -> Result<(Value, T), E>,
) -> StoreResult<Result<T, E>> {
    for _ in 0..MAX_TRIES {
        let (current, revision) = get_overrides(db, user_id).await?;
        let (next, out) = match change(&current) {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        let now = Utc::now();
        let written = with_write_pool!(db, pool => {
            if revision == 0 {
                sqlx::query(
                    "INSERT INTO user_settings (user_id, doc, revision, updated_at) VALUES ($1, $2, 1, $3) \
                     ON CONFLICT (user_id) DO NOTHING",
                )
                .bind(user_id)
                .bind(Json(&next))
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
            } else {
                sqlx::query(
                    "UPDATE user_settings SET doc = $1, revision = revision + 1, updated_at = $2 \
                     WHERE user_id = $3 AND revision = $4",
                )
                .bind(Json(&next))
                .bind(now)
                .bind(user_id)
                .bind(revision)
                .execute(pool)
                .await?
                .rows_affected()
            }
        });
        if written == 1 {
            return Ok(Ok(out));
        }
    }
    Err(StoreError::Conflict { constraint: "user_settings_revision".to_owned() })
}
