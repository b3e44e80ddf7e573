//! Test support shared by the integration tests of every crate.
//!
//! * [`TestDb`]: a fresh database per test — a temporary SQLite file, or a new PostgreSQL
//!   database on the server named by `SEIDRA_TEST_DATABASE_URL` — dropped afterwards.
//! * [`TestServer`]: the real router served on `127.0.0.1:0` with its own database.
//! * [`dual_test!`]: runs one async test body on both backends.
//! * [`TestS3`]: a fresh bucket on the test S3 server (`SEIDRA_TEST_S3_*`).
//!
//! PostgreSQL is not optional: when the server cannot be reached the tests fail loudly rather
//! than skip, because a green run that never touched PostgreSQL proves nothing.

use std::net::SocketAddr;

use anyhow::Context;
pub use seidra_store::Backend;
use seidra_store::{Db, DbOptions};

pub mod fake_engines;
mod s3;
mod server;
mod ws;
pub use s3::{TestS3, s3_env};
pub use server::{TestServer, TestServerBuilder, test_worker_config};
pub use ws::WsClient;

/// The admin password every test server starts with.
pub const ADMIN_PASSWORD: &str = "test-admin-password-0001";

/// PostgreSQL server for tests (maintenance database URL).
pub fn postgres_base_url() -> String {
    std::env::var("SEIDRA_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Redis for tests.
pub fn redis_url() -> String {
    std::env::var("SEIDRA_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A random lowercase hex suffix for unique names.
pub fn unique_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Replaces the database name in a PostgreSQL URL.
fn with_database(base: &str, name: &str) -> String {
    let (without_query, query) = match base.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (base, None),
    };
    let scheme_end = without_query.find("://").map_or(0, |i| i + 3);
    let host_part_end = without_query[scheme_end..].find('/').map_or(without_query.len(), |i| i + scheme_end);
    let mut url = format!("{}/{name}", &without_query[..host_part_end]);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

/// A database that exists for one test.
pub struct TestDb {
    /// Pool on it.
    pub db: Db,
    /// Its URL (for child processes).
    pub url: String,
    /// The SQLite file's directory, deleted on drop.
    _sqlite_dir: Option<tempfile::TempDir>,
    cleanup: Option<Cleanup>,
}

/// A PostgreSQL database to drop.
enum Cleanup {
    Postgres { base: String, name: String },
}

impl TestDb {
    /// Creates an empty database (no migrations applied).
    pub async fn empty(backend: Backend) -> anyhow::Result<TestDb> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir()?;
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
                let db = Db::connect(&url, &DbOptions::default()).await?;
                Ok(TestDb { db, url, _sqlite_dir: Some(dir), cleanup: None })
            }
            Backend::Postgres => {
                let base = postgres_base_url();
                let name = format!("seidra_test_{}", unique_suffix());
                let admin = Db::connect(&base, &DbOptions::default()).await?;
                let Db::Postgres(pool) = &admin else { anyhow::bail!("SEIDRA_TEST_DATABASE_URL is not PostgreSQL") };
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(pool)
                    .await
                    .with_context(|| format!("cannot create a test database on {base} (is PostgreSQL running? set SEIDRA_TEST_DATABASE_URL)"))?;
                admin.close().await;
                let url = with_database(&base, &name);
                let db = Db::connect(&url, &DbOptions::default()).await?;
                Ok(TestDb { db, url, _sqlite_dir: None, cleanup: Some(Cleanup::Postgres { base, name }) })
            }
        }
    }

    /// Creates a database with every migration applied.
    pub async fn migrated(backend: Backend) -> anyhow::Result<TestDb> {
        let test_db = Self::empty(backend).await?;
        seidra_store::migrate::up(&test_db.db).await?;
        Ok(test_db)
    }

    /// Drops the PostgreSQL database now (also done on drop); the pool must not be used after.
    pub async fn drop_database(&mut self) -> anyhow::Result<()> {
        self.db.close().await;
        if let Some(Cleanup::Postgres { base, name }) = self.cleanup.take() {
            drop_pg(&base, &name).await?;
        }
        Ok(())
    }
}

async fn drop_pg(base: &str, name: &str) -> anyhow::Result<()> {
    let admin = Db::connect(base, &DbOptions::default()).await?;
    if let Db::Postgres(pool) = &admin {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).execute(pool).await?;
    }
    admin.close().await;
    Ok(())
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(Cleanup::Postgres { base, name }) = self.cleanup.take() {
            // Drop runs outside async context guarantees: use a private runtime on a thread.
            let handle = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build()
                    && let Err(err) = rt.block_on(drop_pg(&base, &name))
                {
                    eprintln!("warning: could not drop test database {name}: {err}");
                }
            });
            let _ = handle.join();
        }
    }
}

/// A Redis key prefix unique to one test, with its keys deleted on drop.
pub struct TestRedis {
    /// Redis URL.
    pub url: String,
    /// Key prefix (`seidra_test_<hex>:`).
    pub prefix: String,
}

impl TestRedis {
    /// Picks a fresh prefix and checks Redis answers.
    pub async fn new() -> anyhow::Result<TestRedis> {
        let url = redis_url();
        let client = redis::Client::open(url.as_str())?;
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .with_context(|| format!("cannot reach Redis at {url} (set SEIDRA_TEST_REDIS_URL)"))?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(TestRedis { url, prefix: format!("seidra_test_{}:", unique_suffix()) })
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let (url, pattern) = (self.url.clone(), format!("{}*", self.prefix));
        let _ = std::thread::spawn(move || {
            if let Ok(client) = redis::Client::open(url.as_str())
                && let Ok(mut conn) = client.get_connection()
            {
                let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query(&mut conn).unwrap_or_default();
                if !keys.is_empty() {
                    let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut conn);
                }
            }
        })
        .join();
    }
}

/// Binds an ephemeral loopback port.
pub async fn bind_loopback() -> anyhow::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// Runs an async test body `fn(Backend) -> anyhow::Result<()>` once per backend.
#[macro_export]
macro_rules! dual_test {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() -> anyhow::Result<()> {
                    super::$name($crate::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() -> anyhow::Result<()> {
                    super::$name($crate::Backend::Postgres).await
                }
            }
        )+
    };
}

/// An HTTP client for tests (installs the process's TLS crypto provider first, as the binary does).
pub fn http_client() -> reqwest::Client {
    seidra_net::install_crypto_provider();
    reqwest::Client::new()
}

/// Every file under `dir`, as paths relative to it (storage checks in process tests).
pub fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(dir) {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out
}

/// ffprobe of a media file's bytes: `(duration in seconds, [(codec_type, codec_name, width,
/// height)])`. Panics when ffprobe fails (a test fixture).
#[expect(clippy::expect_used, reason = "a test fixture: failing here fails the test")]
pub fn ffprobe(bytes: &[u8]) -> (f64, Vec<(String, String, i64, i64)>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("probe.bin");
    std::fs::write(&path, bytes).expect("write the probed file");
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format=duration:stream=codec_type,codec_name,width,height"])
        .args(["-of", "json"])
        .arg(&path)
        .output()
        .expect("ffprobe runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe JSON");
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    let duration = text(&v["format"]["duration"]).parse().expect("a duration");
    let streams = v["streams"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|st| {
            (
                text(&st["codec_type"]),
                text(&st["codec_name"]),
                st["width"].as_i64().unwrap_or(0),
                st["height"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    (duration, streams)
}

/// Fails (never skips) when ffprobe, ffmpeg or espeak-ng is missing: CI installs them, and the
/// audio/video tests must not pass by doing nothing.
pub fn require_av_tools() {
    for (tool, arg) in [("ffprobe", "-version"), ("ffmpeg", "-version"), ("espeak-ng", "--version")] {
        let ok = std::process::Command::new(tool).arg(arg).output().is_ok_and(|o| o.status.success());
        assert!(ok, "`{tool}` is required by the audio/video tests: apt-get install -y ffmpeg espeak-ng");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_name_replacement() {
        assert_eq!(super::with_database("postgres://u@h:5432/postgres", "x"), "postgres://u@h:5432/x");
        assert_eq!(
            super::with_database("postgres://u@h/postgres?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(super::with_database("postgres://u@h:5432", "x"), "postgres://u@h:5432/x");
    }
}
