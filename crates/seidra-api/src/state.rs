//! Shared state handed to every handler.

use std::sync::Arc;
use std::time::Instant;

use seidra_config::Settings;
use seidra_events::EventBus;
use seidra_storage::{DownloadSigner, SharedStore};
use seidra_store::Db;
use seidra_worker::EngineRegistry;
use tokio_util::sync::CancellationToken;

use crate::auth::jwt::JwtKeys;
use crate::fanout::EventRouter;
use crate::net::TrustedProxies;
use crate::ratelimit::RateLimiter;

/// Cheaply clonable application state.
#[derive(Clone)]
pub struct AppState {
    /// Database pool.
    pub db: Db,
    /// Effective settings.
    pub settings: Arc<Settings>,
    /// Access-token signing key.
    pub jwt: JwtKeys,
    /// Rate limiter (in-memory or Redis).
    pub limiter: RateLimiter,
    /// Redis connection when configured (health, shared state).
    pub redis: Option<redis::aio::ConnectionManager>,
    /// Proxies whose forwarded headers are believed.
    pub proxies: Arc<TrustedProxies>,
    /// Process start, for uptime.
    pub started: Instant,
    /// Live events (in-process, PostgreSQL NOTIFY or Redis).
    pub bus: EventBus,
    /// Engines requests are validated against and routed to.
    pub engines: EngineRegistry,
    /// Object storage for outputs.
    pub storage: SharedStore,
    /// Short-lived download URLs (presigned S3 GETs, or signed `/files/` links).
    pub signer: DownloadSigner,
    /// Hands bus events to the WebSocket connections of their owner.
    pub ws_router: EventRouter,
    /// Account rows of authenticated requests, kept for a second (see `auth::account_cache`).
    pub accounts: crate::auth::account_cache::AccountCache,
    /// The instance content policy, cached (see `crate::policy`).
    pub policy: crate::policy::PolicyCache,
    /// The model directory and download client (shared with in-process workers).
    pub models: Arc<seidra_worker::model_tasks::ModelDownloads>,
    /// Cancelled when the server starts draining: open WebSockets close with 1001 (going away)
    /// instead of being cut when the process exits.
    pub shutdown: CancellationToken,
    /// The open WebSocket sessions, so a draining server can wait for their close frames.
    pub ws_sessions: crate::ws::Sessions,
}
