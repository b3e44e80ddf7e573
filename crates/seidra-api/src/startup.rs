//! Turning settings into a running application state: database, secret key, Redis, limiter,
//! and the first-boot admin account.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use seidra_config::Settings;
use seidra_core::Role;
use seidra_events::EventBus;
use seidra_storage::{DownloadSigner, LocalStore, Metered, S3Config, S3Store, SharedStore, UrlSigner};
use seidra_store::{Db, DbOptions, accounts};
use seidra_worker::EngineRegistry;
use sha2::{Digest, Sha256};

use crate::accounts::{Actor, create_user};
use crate::auth::jwt::JwtKeys;
use crate::auth::tokens::{random_hex, random_password};
use crate::net::TrustedProxies;
use crate::ratelimit::RateLimiter;
use crate::state::AppState;

/// Name of the generated key file in the data dir.
pub const SECRET_KEY_FILE: &str = "secret.key";

/// Opens the configured database.
pub async fn open_db(settings: &Settings) -> anyhow::Result<Db> {
    let options = DbOptions {
        max_connections: settings.database.max_connections,
        acquire_timeout: Duration::from_secs(settings.database.acquire_timeout_secs),
    };
    if settings.database_url.is_none() {
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("cannot create data directory {}", settings.data_dir.display()))?;
    }
    Db::connect(&settings.effective_database_url(), &options).await.context("cannot open the database")
}

/// The JWT key: configured, or generated once into the data dir with 0600 permissions.
pub fn load_secret_key(settings: &Settings) -> anyhow::Result<Vec<u8>> {
    if let Some(key) = &settings.secret_key {
        return Ok(key.expose().as_bytes().to_vec());
    }
    anyhow::ensure!(!settings.is_production(), "SEIDRA_SECRET_KEY is required in production");
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("cannot create data directory {}", settings.data_dir.display()))?;
    let path = settings.data_dir.join(SECRET_KEY_FILE);
    read_or_create_key(&path)
}

fn read_or_create_key(path: &Path) -> anyhow::Result<Vec<u8>> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(mut file) => {
            let key = random_hex(32).map_err(|e| anyhow::anyhow!("{e}"))?;
            file.write_all(key.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
            tracing::info!(path = %path.display(), "generated a new secret key");
            Ok(key.into_bytes())
        }
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
                tracing::warn!(path = %path.display(), "secret key file was readable by others; fixed to 0600");
            }
            let key = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            let key = key.trim().as_bytes().to_vec();
            anyhow::ensure!(key.len() >= 32, "{} holds a key shorter than 32 bytes", path.display());
            Ok(key)
        }
        Err(err) => Err(err).with_context(|| format!("cannot create {}", path.display())),
    }
}

/// Connects to Redis when configured. A Redis that is down at start is an error: it was asked for.
pub async fn connect_redis(settings: &Settings) -> anyhow::Result<Option<redis::aio::ConnectionManager>> {
    let Some(url) = settings.redis_url.as_ref().filter(|u| !u.expose().is_empty()) else { return Ok(None) };
    let client = seidra_events::redis_client(url.expose()).context("invalid SEIDRA_REDIS_URL")?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(3)))
        .set_response_timeout(Some(Duration::from_secs(2)));
    let conn =
        tokio::time::timeout(Duration::from_secs(5), redis::aio::ConnectionManager::new_with_config(client, config))
            .await
            .context("Redis did not answer within 5 s")?
            .context("cannot connect to Redis")?;
    Ok(Some(conn))
}

/// The event bus for this deployment: Redis when configured, else PostgreSQL NOTIFY on a
/// PostgreSQL database, else in-process (the embedded default: one process).
pub async fn open_bus(settings: &Settings, db: &Db) -> anyhow::Result<EventBus> {
    if let Some(url) = settings.redis_url.as_ref().filter(|u| !u.expose().is_empty()) {
        let channel = format!("{}events", settings.redis_prefix);
        return EventBus::redis(url.expose(), &channel).await.context("cannot subscribe to Redis events");
    }
    match db {
        Db::Postgres(pool) => {
            EventBus::postgres(pool.clone(), "seidra_events").await.context("cannot LISTEN for events")
        }
        Db::Sqlite(_) => Ok(EventBus::in_process()),
    }
}

/// The object store for media (`SEIDRA_STORAGE__BACKEND`): the `media` directory under the
/// data dir, or the S3 bucket, wrapped with metrics. Probes it once: a bucket that refuses us
/// (bad credentials, missing bucket) stops the start; one that does not answer is logged and
/// left to the health endpoint (it may come up later).
pub async fn open_storage(settings: &Settings) -> anyhow::Result<SharedStore> {
    let store: SharedStore = match settings.storage.backend {
        seidra_config::StorageBackend::Local => {
            let root = settings.data_dir.join("media");
            let store = LocalStore::new(&root).with_context(|| format!("cannot use {} for media", root.display()))?;
            Arc::new(store)
        }
        seidra_config::StorageBackend::S3 => {
            let s3 = &settings.s3;
            let config = S3Config {
                endpoint: s3.endpoint.trim().to_owned(),
                public_endpoint: s3.public_endpoint.clone(),
                region: s3.region.trim().to_owned(),
                bucket: s3.bucket.trim().to_owned(),
                path_style: s3.path_style,
                access_key_id: s3.access_key_id.trim().to_owned(),
                secret_access_key: s3.secret_access_key.as_ref().map(|k| k.expose().to_owned()).unwrap_or_default(),
                session_token: s3.session_token.as_ref().map(|t| t.expose().to_owned()),
                timeout: Duration::from_secs(s3.timeout_secs.max(1)),
            };
            Arc::new(S3Store::new(config).context("invalid SEIDRA_S3__* settings")?)
        }
    };
    let facts = store.describe().iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
    match store.health().await {
        Ok(took) => tracing::info!(
            backend = store.backend(),
            %facts,
            latency_ms = took.as_secs_f64() * 1000.0,
            "object storage ready"
        ),
        Err(err) if err.is_retryable() => {
            tracing::error!(backend = store.backend(), %facts, %err, "object storage is not reachable yet; continuing")
        }
        Err(err) => {
            return Err(anyhow::anyhow!(err))
                .with_context(|| format!("object storage ({} {facts}) refused the health probe", store.backend()));
        }
    }
    Ok(Arc::new(Metered::new(store)))
}

/// A separate key for download links, derived so that neither signature can stand in for the other.
fn signer_from_key(key: &[u8]) -> UrlSigner {
    UrlSigner::new(&Sha256::digest([b"seidra-download-urls:".as_slice(), key].concat()))
}

/// The download-link signer of this deployment (workers sign export links with it).
pub fn url_signer(settings: &Settings) -> anyhow::Result<UrlSigner> {
    Ok(signer_from_key(&load_secret_key(settings)?))
}

/// Builds the application state from settings (the database must already be migrated).
pub async fn build_state(settings: Settings, db: Db) -> anyhow::Result<AppState> {
    let bus = open_bus(&settings, &db).await?;
    // The recorder first: remote engines record their first health check at once.
    crate::metrics::init(&settings);
    let engines = EngineRegistry::from_config(&settings);
    build_state_with(settings, db, bus, engines).await
}

/// Builds the application state with a given bus and engines (shared with in-process workers).
pub async fn build_state_with(
    settings: Settings,
    db: Db,
    bus: EventBus,
    engines: EngineRegistry,
) -> anyhow::Result<AppState> {
    let key = load_secret_key(&settings)?;
    let jwt = JwtKeys::new(&key).map_err(|e| anyhow::anyhow!("invalid secret key: {e}"))?;
    let local_signer = signer_from_key(&key);
    let storage = open_storage(&settings).await?;
    let signer = DownloadSigner::new(local_signer, storage.clone());
    let redis = connect_redis(&settings).await?;
    let limiter = match &redis {
        Some(conn) => RateLimiter::redis(conn.clone(), &settings.redis_prefix),
        None => RateLimiter::in_memory(),
    };
    crate::metrics::init(&settings);
    let models = seidra_worker::model_tasks::ModelDownloads::from_settings(&settings).map_err(anyhow::Error::msg)?;
    let state = AppState {
        db,
        proxies: Arc::new(TrustedProxies::parse(&settings.trusted_proxies)),
        settings: Arc::new(settings),
        jwt,
        limiter,
        redis,
        started: Instant::now(),
        ws_router: crate::fanout::EventRouter::start(&bus),
        bus,
        engines,
        storage,
        signer,
        policy: crate::policy::PolicyCache::new(crate::policy::POLICY_REFRESH),
        accounts: crate::auth::account_cache::AccountCache::default(),
        models,
        shutdown: tokio_util::sync::CancellationToken::new(),
        ws_sessions: crate::ws::Sessions::default(),
    };
    if state.settings.models.scan_on_start {
        // In the background: hashing a large directory must not delay readiness.
        let scanning = state.clone();
        tokio::spawn(async move {
            if let Err(err) = crate::routes::models::scan_at_startup(&scanning).await {
                tracing::warn!(error = %err.message, "the model directory could not be scanned at startup");
            }
        });
    }
    Ok(state)
}

/// What first boot did about the admin account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminBootstrap {
    /// Accounts already exist.
    Existing,
    /// Created with the password from `SEIDRA_ADMIN_PASSWORD`.
    CreatedFromEnv {
        /// Username.
        username: String,
    },
    /// Created with a generated password, to be shown once.
    CreatedGenerated {
        /// Username.
        username: String,
        /// The generated password.
        password: String,
    },
}

/// Creates the admin account when the database has no accounts yet.
pub async fn ensure_admin(db: &Db, settings: &Settings) -> anyhow::Result<AdminBootstrap> {
    if accounts::count_users(db).await? > 0 {
        return Ok(AdminBootstrap::Existing);
    }
    let username = settings.admin_username.trim().to_lowercase();
    let (password, generated) = match &settings.admin_password {
        Some(p) => (p.expose().to_owned(), false),
        None => (random_password(20).map_err(|e| anyhow::anyhow!("{e}"))?, true),
    };
    let actor = Actor::default();
    match create_user(db, &actor, &username, &password, Role::Admin).await {
        Ok(_) => {}
        // Another replica won the race to create it.
        Err(err) if err.code == "username_taken" => return Ok(AdminBootstrap::Existing),
        Err(err) => anyhow::bail!("cannot create the admin account `{username}`: {err}"),
    }
    Ok(if generated {
        AdminBootstrap::CreatedGenerated { username, password }
    } else {
        AdminBootstrap::CreatedFromEnv { username }
    })
}
