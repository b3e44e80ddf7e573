//! The settings structs. Every field has a default and a doc comment; `deny_unknown_fields`
//! turns a typo in the TOML file into an error that names the key.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

use crate::Secret;

/// Deployment flavour: production tightens the rules (secret key required, JSON logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Laptop / embedded default.
    #[default]
    Development,
    /// Cluster or any shared deployment.
    Production,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (Loki-ready).
    Json,
    /// Human-readable, coloured when a terminal.
    Pretty,
}

/// All settings of a SEIDRA process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// `development` or `production` (`SEIDRA_ENV`).
    pub env: Environment,
    /// Address the HTTP server listens on.
    pub bind: SocketAddr,
    /// Directory for the SQLite database, generated secret key and local media.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; empty = SQLite file `seidra.db` in the data dir.
    pub database_url: Option<Secret>,
    /// Optional Redis for shared rate limits and live events across replicas.
    pub redis_url: Option<Secret>,
    /// Prefix of every Redis key this instance writes.
    pub redis_prefix: String,
    /// JWT signing key; generated into the data dir when absent outside production.
    pub secret_key: Option<Secret>,
    /// Username of the admin account created on first boot.
    pub admin_username: String,
    /// Password of the first-boot admin; generated and printed once when absent.
    pub admin_password: Option<Secret>,
    /// `json` or `pretty`; defaults to `json` in production, `pretty` otherwise.
    pub log_format: Option<LogFormat>,
    /// tracing filter directive (`info`, `seidra=debug,sqlx=warn`…); `RUST_LOG` wins when set.
    pub log_level: String,
    /// Whether anyone may create an account through `POST /api/auth/register`.
    pub allow_registration: bool,
    /// Origins allowed by CORS (comma-separated in env). Empty = same-origin only.
    #[serde(deserialize_with = "string_or_list")]
    pub cors_origins: Vec<String>,
    /// Proxies (IPs or CIDRs) whose `X-Forwarded-For` is believed (comma-separated in env).
    #[serde(deserialize_with = "string_or_list")]
    pub trusted_proxies: Vec<String>,
    /// Lifetime of an access token (JWT), seconds.
    pub access_token_ttl_secs: u64,
    /// Lifetime of a refresh token, seconds.
    pub refresh_token_ttl_secs: u64,
    /// Largest accepted JSON request body, bytes.
    pub max_body_bytes: usize,
    /// Directory of the built web app (`frontend/dist`), served at `/` when it holds an index.html.
    pub ui_dir: PathBuf,
    /// Seconds in-flight requests get to finish after SIGTERM.
    pub shutdown_grace_secs: u64,
    /// Whether this process records Prometheus metrics and serves `/metrics` (off: no recorder,
    /// no per-request accounting, `/metrics` answers 404).
    pub metrics_enabled: bool,
    /// Database pool settings.
    pub database: DatabaseSettings,
    /// Rate-limit policies.
    pub rate_limit: RateLimitSettings,
    /// Job queue behaviour.
    pub queue: QueueSettings,
    /// Worker behaviour (`seidra worker`, and the in-process workers of `seidra up`).
    pub worker: WorkerSettings,
    /// Which generation engines this process offers.
    pub engines: EngineSettings,
    /// Where media objects live: the data dir (`local`) or the S3 bucket of `s3`.
    pub storage: StorageSettings,
    /// The S3 bucket used when `storage.backend = "s3"` (`SEIDRA_S3__*`).
    pub s3: S3Settings,
    /// Outbound webhook deliveries.
    pub webhooks: WebhookSettings,
    /// Uploads, thumbnails and exports.
    pub media: MediaSettings,
    /// The model catalogue: its directory and downloads (`SEIDRA_MODELS__*`).
    pub models: ModelSettings,
}

/// The model catalogue (`/api/models`) and model downloads.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSettings {
    /// Directory of model files; empty = `<data_dir>/models`. Workers that download or run
    /// models need the same directory (a shared volume on Kubernetes).
    pub dir: Option<PathBuf>,
    /// Largest model download, bytes.
    pub max_download_bytes: u64,
    /// Whether downloads may use plain `http` (off: https only).
    pub allow_http: bool,
    /// IPs, CIDR ranges or host names downloads may reach although they are internal
    /// (comma-separated in env). Empty = public addresses only.
    #[serde(deserialize_with = "string_or_list")]
    pub allow_private: Vec<String>,
    /// Seconds a download may wait for the next bytes before it is abandoned (and retried).
    pub read_timeout_secs: u64,
    /// Whether the server scans the directory when it starts.
    pub scan_on_start: bool,
}

impl Default for ModelSettings {
    fn default() -> Self {
        Self {
            dir: None,
            max_download_bytes: 20 * 1024 * 1024 * 1024,
            allow_http: false,
            allow_private: Vec::new(),
            read_timeout_secs: 60,
            scan_on_start: true,
        }
    }
}

/// Outbound webhook deliveries (made by workers and `seidra up`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// IPs, CIDR ranges or host names that webhook URLs may reach although they are loopback,
    /// private, link-local or otherwise internal (comma-separated in env). Empty = public only.
    #[serde(deserialize_with = "string_or_list")]
    pub allow_private: Vec<String>,
    /// Milliseconds before the first retry; later retries wait 3×, 12×, 60×, 360×… this.
    pub retry_base_ms: u64,
    /// Attempts per delivery before it is marked failed.
    pub max_attempts: u32,
    /// Seconds one delivery request may take.
    pub timeout_secs: u64,
    /// Milliseconds between polls of the delivery outbox.
    pub poll_interval_ms: u64,
    /// Days finished deliveries are kept in the delivery log.
    pub retention_days: u32,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            allow_private: Vec::new(),
            retry_base_ms: 10_000,
            max_attempts: 8,
            timeout_secs: 10,
            poll_interval_ms: 1000,
            retention_days: 14,
        }
    }
}

/// Uploads, thumbnails and exports.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaSettings {
    /// Largest accepted image upload (png, jpeg, gif, webp), bytes.
    pub max_image_bytes: u64,
    /// Largest accepted audio upload (wav, mp3, ogg/opus, flac), bytes.
    pub max_audio_bytes: u64,
    /// Largest accepted video upload (mp4, webm, mov), bytes.
    pub max_video_bytes: u64,
    /// Largest upload request (all parts together), bytes.
    pub max_upload_request_bytes: u64,
    /// Most bytes a user's library may hold before uploads are refused (0 = no quota).
    pub user_quota_bytes: u64,
    /// The `ffprobe` executable used for audio/video durations.
    pub ffprobe: String,
    /// Most items one ZIP export may hold.
    pub export_max_items: u32,
    /// Hours a finished export archive is kept before it is deleted.
    pub export_retention_hours: u64,
    /// The `ffmpeg` executable (speech transcoding, video renders, waveforms).
    pub ffmpeg: String,
    /// The `espeak-ng` executable (the built-in speech engine).
    pub espeak_ng: String,
    /// The `piper` executable; empty = the piper speech engine is off.
    pub piper: String,
    /// Directory of piper voices (`<name>.onnx` with `<name>.onnx.json`); empty = piper is off.
    pub piper_voices: String,
    /// Longest a render (storyboard or proxy) may run before it fails, seconds.
    pub render_timeout_secs: u64,
}

impl Default for MediaSettings {
    fn default() -> Self {
        const MIB: u64 = 1024 * 1024;
        Self {
            max_image_bytes: 25 * MIB,
            max_audio_bytes: 100 * MIB,
            max_video_bytes: 500 * MIB,
            max_upload_request_bytes: 1024 * MIB,
            user_quota_bytes: 0,
            ffprobe: "ffprobe".to_owned(),
            export_max_items: 10_000,
            export_retention_hours: 7 * 24,
            ffmpeg: "ffmpeg".to_owned(),
            espeak_ng: "espeak-ng".to_owned(),
            piper: String::new(),
            piper_voices: String::new(),
            render_timeout_secs: 3600,
        }
    }
}

/// Engines offered by this process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineSettings {
    /// The built-in CPU `procedural` engine (on by default so the studio works with no GPU).
    pub procedural: bool,
    /// The `noop` diagnostics engine (instant tiny outputs; `!fail`/`!flaky` prompts fail).
    pub noop: bool,
    /// Remote engines (`[[engines.remote]]` in TOML, `SEIDRA_ENGINES__REMOTE__<i>__<KEY>` in env).
    #[serde(deserialize_with = "indexed_list")]
    pub remote: Vec<RemoteEngineSettings>,
    /// Consecutive connection-level failures that open an engine's circuit breaker.
    pub breaker_failures: u32,
    /// Seconds an open breaker waits before letting one trial request through.
    pub breaker_cooldown_secs: u64,
    /// Seconds between health checks of each remote engine.
    pub health_interval_secs: u64,
    /// The in-process candle Stable Diffusion engine (binaries built with the `candle` feature).
    pub candle: CandleSettings,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            procedural: true,
            noop: false,
            remote: Vec::new(),
            breaker_failures: 3,
            breaker_cooldown_secs: 30,
            health_interval_secs: 15,
            candle: CandleSettings::default(),
        }
    }
}

/// The candle engine (`SEIDRA_ENGINES__CANDLE__*`); it serves the diffusers directories of the model directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CandleSettings {
    /// Whether this process offers the engine (ignored by builds without the `candle` feature).
    pub enabled: bool,
    /// `cpu`, `cuda` or `cuda:N` (CUDA needs a build with the `cuda` feature).
    pub device: String,
    /// Most bytes of model weights kept loaded; least recently used models are dropped first.
    pub cache_bytes: u64,
}

impl Default for CandleSettings {
    fn default() -> Self {
        Self { enabled: false, device: "cpu".to_owned(), cache_bytes: 8 * 1024 * 1024 * 1024 }
    }
}

/// The protocol a remote engine speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RemoteEngineKind {
    /// ComfyUI (`/prompt`, `/ws`, `/history`, `/view`) with an API-format workflow.
    Comfyui,
    /// AUTOMATIC1111 / Forge (`/sdapi/v1/txt2img`).
    A1111,
    /// An OpenAI-compatible images API (`/v1/images/generations`).
    Openai,
    /// A SadTalker-compatible talking-head server (`POST /generate`, `GET /health`; see docs/ENGINES.md).
    Sadtalker,
}

/// One remote generation server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteEngineSettings {
    /// Engine name used in requests and metrics (unique; `[a-z0-9_-]`).
    pub name: String,
    /// `comfyui`, `a1111`, `openai` or `sadtalker`.
    pub kind: RemoteEngineKind,
    /// Base URL (`http://gpu-1:8188`); paths are appended to it.
    pub url: String,
    /// Bearer token / API key sent as `Authorization: Bearer …` (masked in `config check`).
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// Models (checkpoint names) served; the first is the default (comma-separated in env).
    #[serde(deserialize_with = "string_or_list")]
    pub models: Vec<String>,
    /// Most requests in flight to this server at once.
    #[serde(default = "default_remote_concurrency")]
    pub max_concurrency: u32,
    /// Seconds one generation may take end to end.
    #[serde(default = "default_remote_timeout")]
    pub timeout_secs: u64,
    /// ComfyUI only: an API-format workflow JSON with `{{prompt}}`-style slots (built-in txt2img when unset).
    #[serde(default)]
    pub workflow: Option<PathBuf>,
}

fn default_remote_concurrency() -> u32 {
    2
}
fn default_remote_timeout() -> u64 {
    600
}

/// Accepts a TOML array of tables as well as the env form, a table keyed by index (`0`, `1`…).
/// Entries are decoded one by one so an error names the entry (`entry 1: missing field `url``).
fn indexed_list<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned>(
    deserializer: D,
) -> Result<Vec<T>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrMap {
        List(Vec<serde_json::Value>),
        Map(std::collections::BTreeMap<String, serde_json::Value>),
    }
    let entries: Vec<(usize, serde_json::Value)> = match ListOrMap::deserialize(deserializer)? {
        ListOrMap::List(v) => v.into_iter().enumerate().collect(),
        ListOrMap::Map(map) => {
            let mut entries = Vec::new();
            for (key, value) in map {
                let index: usize = key
                    .parse()
                    .map_err(|_| serde::de::Error::custom(format!("`{key}` is not a list index (0, 1, …)")))?;
                entries.push((index, value));
            }
            entries.sort_by_key(|(i, _)| *i);
            entries
        }
    };
    entries
        .into_iter()
        .map(|(i, v)| serde_json::from_value(v).map_err(|e| serde::de::Error::custom(format!("entry {i}: {e}"))))
        .collect()
}

/// Job queue settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueSettings {
    /// Seconds a claimed job stays leased without a heartbeat before another worker may take it.
    pub lease_secs: u64,
    /// Claims a job gets before it fails for good.
    pub max_attempts: u32,
    /// Most queued (or retrying) jobs per user; more are refused with 429.
    pub max_queued_per_user: u32,
    /// Most running jobs per user; further jobs wait in the queue.
    pub max_running_per_user: u32,
    /// Days finished jobs are kept before the maintenance loop prunes them.
    pub retention_days: u32,
    /// Milliseconds between queue polls when no wake-up arrives.
    pub poll_interval_ms: u64,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            lease_secs: 30,
            max_attempts: 3,
            max_queued_per_user: 200,
            max_running_per_user: 4,
            retention_days: 30,
            poll_interval_ms: 1000,
        }
    }
}

/// Worker settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSettings {
    /// Jobs a worker runs at once (`seidra worker --concurrency` overrides).
    pub concurrency: u32,
    /// In-process workers of `seidra up` (0 = none).
    pub embedded: u32,
    /// Seconds running jobs get to finish after SIGTERM before they are released to the queue.
    pub grace_secs: u64,
    /// Where `seidra worker` serves `/metrics` and `/healthz` (unset: no HTTP listener).
    pub metrics_bind: Option<SocketAddr>,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self { concurrency: 2, embedded: 1, grace_secs: 30, metrics_bind: None }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            env: Environment::Development,
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./seidra-data"),
            database_url: None,
            redis_url: None,
            redis_prefix: "seidra:".to_owned(),
            secret_key: None,
            admin_username: "admin".to_owned(),
            admin_password: None,
            log_format: None,
            log_level: "info".to_owned(),
            allow_registration: false,
            cors_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            max_body_bytes: 2 * 1024 * 1024,
            ui_dir: PathBuf::from("frontend/dist"),
            shutdown_grace_secs: 30,
            metrics_enabled: true,
            database: DatabaseSettings::default(),
            rate_limit: RateLimitSettings::default(),
            queue: QueueSettings::default(),
            worker: WorkerSettings::default(),
            engines: EngineSettings::default(),
            storage: StorageSettings::default(),
            s3: S3Settings::default(),
            webhooks: WebhookSettings::default(),
            media: MediaSettings::default(),
            models: ModelSettings::default(),
        }
    }
}

impl Settings {
    /// The database URL in effect: the configured one, or the SQLite file in the data dir.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) if !url.expose().trim().is_empty() => url.expose().trim().to_owned(),
            _ => format!("sqlite://{}?mode=rwc", self.data_dir.join("seidra.db").display()),
        }
    }

    /// The log format in effect.
    pub fn effective_log_format(&self) -> LogFormat {
        self.log_format.unwrap_or(match self.env {
            Environment::Production => LogFormat::Json,
            Environment::Development => LogFormat::Pretty,
        })
    }

    /// The model directory in effect.
    pub fn models_dir(&self) -> PathBuf {
        match &self.models.dir {
            Some(dir) if !dir.as_os_str().is_empty() => dir.clone(),
            _ => self.data_dir.join("models"),
        }
    }

    /// Whether this is a production deployment.
    pub fn is_production(&self) -> bool {
        self.env == Environment::Production
    }
}

/// Database connection pool settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Maximum pooled connections (PostgreSQL; SQLite uses it for readers).
    pub max_connections: u32,
    /// Seconds to wait for a pooled connection before failing with 503.
    pub acquire_timeout_secs: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self { max_connections: 16, acquire_timeout_secs: 5 }
    }
}

/// Requests allowed per window for one key (principal or client IP).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitPolicy {
    /// Requests allowed per window.
    pub requests: u32,
    /// Window length, seconds.
    pub window_secs: u64,
}

impl Default for RateLimitPolicy {
    fn default() -> Self {
        Self { requests: 600, window_secs: 60 }
    }
}

/// Rate-limit policies.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Turn rate limiting off entirely (benchmarks only).
    pub enabled: bool,
    /// Login / register / refresh, per client IP and per username (brute-force guard).
    pub auth: RateLimitPolicy,
    /// Every other `/api` request, per principal (user or API key), else per client IP.
    pub api: RateLimitPolicy,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            auth: RateLimitPolicy { requests: 10, window_secs: 60 },
            api: RateLimitPolicy { requests: 1200, window_secs: 60 },
        }
    }
}

/// Accepts `"a, b"` (environment) as well as `["a", "b"]` (TOML).
fn string_or_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(s) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        OneOrMany::Many(v) => v,
    })
}

/// Which object storage backend holds media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// Files under `<data_dir>/media` (one machine, or a shared volume).
    #[default]
    Local,
    /// An S3-compatible bucket (the `s3` section).
    S3,
}

/// Object storage settings (`SEIDRA_STORAGE__*`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// `local` or `s3` (the bucket is configured in the top-level `s3` section).
    pub backend: StorageBackend,
    /// Minutes an object may stay unreferenced by any media row before the orphan sweeper deletes it.
    pub orphan_grace_minutes: u64,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self { backend: StorageBackend::Local, orphan_grace_minutes: 60 }
    }
}

/// How to reach the S3 bucket (`SEIDRA_S3__*`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Settings {
    /// Base URL of the S3 API as this server reaches it (`https://s3.eu-west-1.amazonaws.com`, `http://seaweedfs:8333`).
    pub endpoint: String,
    /// Base URL browsers use for presigned downloads, when it differs from `endpoint` (e.g. a public ingress).
    pub public_endpoint: Option<String>,
    /// Signing region (`us-east-1` suits most self-hosted servers).
    pub region: String,
    /// Bucket name (must exist).
    pub bucket: String,
    /// `true`: `endpoint/bucket/key` (SeaweedFS, MinIO, Garage); `false`: `bucket.endpoint/key` (AWS virtual host).
    pub path_style: bool,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: Option<Secret>,
    /// Session token of temporary credentials (optional).
    pub session_token: Option<Secret>,
    /// Seconds one S3 request may take, body included.
    pub timeout_secs: u64,
}

impl Default for S3Settings {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            public_endpoint: None,
            region: "us-east-1".to_owned(),
            bucket: String::new(),
            path_style: true,
            access_key_id: String::new(),
            secret_access_key: None,
            session_token: None,
            timeout_secs: 30,
        }
    }
}
