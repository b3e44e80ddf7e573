//! Migrations: up → down 1 → up 1 leaves an identical schema; status; a database ahead of the
//! binary is refused; concurrent `up` on PostgreSQL does not collide.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "test helpers panic on broken fixtures")]

use seidra_store::migrate;
use seidra_store::{Backend, Db};
use seidra_testkit::{TestDb, dual_test};

/// A canonical text dump of the schema (tables, columns, indexes, constraints).
async fn dump_schema(db: &Db) -> anyhow::Result<String> {
    let rows: Vec<String> = match db {
        Db::Sqlite(pool) => {
            sqlx::query_scalar(
                "SELECT type || ' ' || name || ': ' || COALESCE(sql, '') FROM sqlite_master \
                 WHERE name NOT LIKE 'sqlite_%' AND name != '_sqlx_migrations' ORDER BY type, name",
            )
            .fetch_all(pool)
            .await?
        }
        Db::Postgres(pool) => {
            let mut rows: Vec<String> = sqlx::query_scalar(
                "SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || COALESCE(column_default, '') \
                 FROM information_schema.columns WHERE table_schema = 'public' AND table_name != '_sqlx_migrations' \
                 ORDER BY table_name, column_name",
            )
            .fetch_all(pool)
            .await?;
            rows.extend(
                sqlx::query_scalar::<_, String>(
                    "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename != '_sqlx_migrations' ORDER BY indexname",
                )
                .fetch_all(pool)
                .await?,
            );
            rows.extend(
                sqlx::query_scalar::<_, String>(
                    "SELECT conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint \
                     WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text != '_sqlx_migrations' ORDER BY conname",
                )
                .fetch_all(pool)
                .await?,
            );
            rows
        }
    };
    Ok(rows.join("\n"))
}

async fn down_then_up_restores_schema(backend: Backend) -> anyhow::Result<()> {
    let t = TestDb::empty(backend).await?;
    let latest = migrate::latest_version(backend);
    assert!(latest >= 2);
    assert_eq!(migrate::up(&t.db).await?, latest);
    let full = dump_schema(&t.db).await?;
    assert!(full.contains("users") && full.contains("media_exports"), "{full}");

    assert_eq!(migrate::down(&t.db, 1).await?, vec![latest]);
    let reduced = dump_schema(&t.db).await?;
    assert_ne!(full, reduced);
    // The newest migration (0007_media_pipeline) is gone; the ones before it stay.
    assert!(!reduced.contains("media_exports") && reduced.contains("persona_versions"));
    // Versions need not be contiguous (numbers are assigned per branch): compare with the one before.
    let status = migrate::status(&t.db).await?;
    let previous = status.migrations.iter().map(|m| m.version).filter(|v| *v < latest).max();
    assert_eq!(Some(status.current), previous);

    assert_eq!(migrate::up(&t.db).await?, latest);
    assert_eq!(dump_schema(&t.db).await?, full, "down + up must give back the same schema");

    // All the way down and back up.
    let count = status.migrations.len();
    let reverted = migrate::down(&t.db, count).await?;
    assert_eq!(reverted.len(), count);
    assert_eq!(dump_schema(&t.db).await?, "");
    assert_eq!(migrate::up(&t.db).await?, latest);
    assert_eq!(dump_schema(&t.db).await?, full);
    assert!(migrate::down(&t.db, 99).await.is_err(), "cannot revert more than applied");
    Ok(())
}

async fn status_and_ahead_detection(backend: Backend) -> anyhow::Result<()> {
    let t = TestDb::empty(backend).await?;
    let empty = migrate::status(&t.db).await?;
    assert_eq!(empty.current, 0);
    assert!(!empty.at_head());
    assert_eq!(empty.pending().count(), empty.migrations.len());

    migrate::up(&t.db).await?;
    let status = migrate::status(&t.db).await?;
    assert!(status.at_head());
    assert!(status.migrations.iter().all(|m| m.applied_at.is_some()));
    assert_eq!(status.migrations.first().map(|m| m.description.as_str()), Some("accounts"));

    // A newer binary applied migration 9999: this one must refuse to run on it.
    let insert = "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                  VALUES (9999, 'future', TRUE, $1, 0)";
    match &t.db {
        Db::Postgres(pool) => sqlx::query(insert).bind(vec![0u8; 48]).execute(pool).await.map(|_| ())?,
        Db::Sqlite(pool) => sqlx::query(insert).bind(vec![0u8; 48]).execute(pool).await.map(|_| ())?,
    }
    let ahead = migrate::status(&t.db).await?;
    assert_eq!(ahead.unknown_applied, vec![9999]);
    let err = ahead.ensure_not_ahead().err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("newer than this binary"), "{err}");
    assert!(migrate::up(&t.db).await.is_err());
    assert!(migrate::down(&t.db, 1).await.is_err());
    Ok(())
}

dual_test!(down_then_up_restores_schema, status_and_ahead_detection);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrate_up_on_postgres_does_not_collide() -> anyhow::Result<()> {
    let t = TestDb::empty(Backend::Postgres).await?;
    let other = Db::connect(&t.url, &seidra_store::DbOptions::default()).await?;
    let (a, b, c) = tokio::join!(migrate::up(&t.db), migrate::up(&other), migrate::up(&t.db));
    let latest = migrate::latest_version(Backend::Postgres);
    assert_eq!((a?, b?, c?), (latest, latest, latest));
    let status = migrate::status(&t.db).await?;
    assert!(status.at_head());
    assert!(status.failed.is_empty());
    other.close().await;
    Ok(())
}
