//! Liveness, readiness, dependency health, generation health and `/metrics`.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

/// Health of one dependency.
#[derive(Debug, Serialize, ToSchema)]
pub struct DependencyHealth {
    /// `ok`, `down` or `not_configured`.
    pub status: &'static str,
    /// Round-trip time of the check, milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// What failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Extra facts (backend kind, schema version…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

/// Overall health and each dependency's.
#[derive(Debug, Serialize, ToSchema)]
pub struct SystemHealth {
    /// `ok` (all up), `degraded` (an optional dependency is down) or `down` (the database is).
    pub status: &'static str,
    /// Server version.
    pub version: &'static str,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// Per dependency: `database`, `migrations`, `redis`, `storage`.
    pub dependencies: std::collections::BTreeMap<&'static str, DependencyHealth>,
}

/// Readiness answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// Why not, when not ready.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

async fn check_database(state: &AppState) -> (DependencyHealth, DependencyHealth) {
    let ping = tokio::time::timeout(CHECK_TIMEOUT, state.db.ping()).await;
    let database = match ping {
        Ok(Ok(latency)) => DependencyHealth {
            status: "ok",
            latency_ms: Some(latency.as_secs_f64() * 1000.0),
            error: None,
            detail: Some(serde_json::json!({ "backend": state.db.backend().as_str() })),
        },
        Ok(Err(err)) => down(format!("{err}")),
        Err(_) => down(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())),
    };
    let migrations = if database.status == "ok" {
        match tokio::time::timeout(CHECK_TIMEOUT, seidra_store::migrate::status(&state.db)).await {
            // A schema *ahead* of this binary is normal during a rolling upgrade (migrations are
            // additive): old pods stay ready. Behind (pending) or a failed migration is not.
            Ok(Ok(s)) if s.pending().next().is_none() && s.failed.is_empty() => DependencyHealth {
                status: "ok",
                latency_ms: None,
                error: None,
                detail: Some(serde_json::json!({ "version": s.current, "latest": s.latest })),
            },
            Ok(Ok(s)) => DependencyHealth {
                status: "down",
                latency_ms: None,
                error: Some(format!("schema at version {}, this server needs {}", s.current, s.latest)),
                detail: None,
            },
            Ok(Err(err)) => down(err.to_string()),
            Err(_) => down("timed out".to_owned()),
        }
    } else {
        down("database unreachable".to_owned())
    };
    (database, migrations)
}

async fn check_redis(state: &AppState) -> DependencyHealth {
    let Some(conn) = &state.redis else {
        return DependencyHealth { status: "not_configured", latency_ms: None, error: None, detail: None };
    };
    let mut conn = conn.clone();
    let started = std::time::Instant::now();
    let ping = tokio::time::timeout(CHECK_TIMEOUT, redis::cmd("PING").query_async::<String>(&mut conn)).await;
    match ping {
        Ok(Ok(_)) => DependencyHealth {
            status: "ok",
            latency_ms: Some(started.elapsed().as_secs_f64() * 1000.0),
            error: None,
            detail: None,
        },
        Ok(Err(err)) => down(err.to_string()),
        Err(_) => down("no answer within 2 s".to_owned()),
    }
}

/// A write/read/delete probe through the configured store, with the backend's non-secret
/// facts (`backend`, and for S3 `endpoint`, `bucket`, `region`).
async fn check_storage(state: &AppState) -> DependencyHealth {
    let mut detail = serde_json::Map::new();
    detail.insert("backend".to_owned(), state.storage.backend().into());
    for (name, value) in state.storage.describe() {
        detail.insert(name.to_owned(), value.into());
    }
    let detail = Some(serde_json::Value::Object(detail));
    match tokio::time::timeout(CHECK_TIMEOUT, state.storage.health()).await {
        Ok(Ok(took)) => {
            DependencyHealth { status: "ok", latency_ms: Some(took.as_secs_f64() * 1000.0), error: None, detail }
        }
        Ok(Err(err)) => DependencyHealth { detail, ..down(err.to_string()) },
        Err(_) => DependencyHealth { detail, ..down(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())) },
    }
}

fn down(error: String) -> DependencyHealth {
    DependencyHealth { status: "down", latency_ms: None, error: Some(error), detail: None }
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "system", responses((status = 200, description = "alive")))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "alive" }))
}

/// Readiness: database reachable, schema at head, Redis reachable when configured.
#[utoipa::path(get, path = "/readyz", tag = "system",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let ((database, migrations), redis) = tokio::join!(check_database(&state), check_redis(&state));
    let reasons: Vec<String> = [("database", database), ("migrations", migrations), ("redis", redis)]
        .into_iter()
        .filter(|(_, h)| h.status == "down")
        .map(|(name, h)| format!("{name}: {}", h.error.unwrap_or_default()))
        .collect();
    if reasons.is_empty() {
        (StatusCode::OK, Json(Readiness { status: "ready", reasons }))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(Readiness { status: "not_ready", reasons }))
    }
}

/// Overall health with each dependency's status, latency and error.
#[utoipa::path(get, path = "/api/system/health", tag = "system",
    responses((status = 200, body = SystemHealth), (status = 503, body = SystemHealth)))]
pub async fn system_health(State(state): State<AppState>) -> (StatusCode, Json<SystemHealth>) {
    let ((database, migrations), redis, storage) =
        tokio::join!(check_database(&state), check_redis(&state), check_storage(&state));
    let critical_down = database.status == "down" || migrations.status == "down";
    let optional_down = redis.status == "down" || storage.status == "down";
    let status = if critical_down {
        "down"
    } else if optional_down {
        "degraded"
    } else {
        "ok"
    };
    let dependencies = [("database", database), ("migrations", migrations), ("redis", redis), ("storage", storage)]
        .into_iter()
        .collect();
    let code = if critical_down { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    let health = SystemHealth {
        status,
        version: seidra_core::VERSION,
        uptime_secs: state.started.elapsed().as_secs(),
        dependencies,
    };
    (code, Json(health))
}

/// Engines, registered workers and queue depth.
#[derive(Debug, Serialize, ToSchema)]
pub struct GenerationHealth {
    /// `ok` when at least one live worker runs an engine, else `unavailable`.
    pub status: &'static str,
    // Remote engines also carry `remote` (status, breaker, latency_ms, last_error, in_flight).
    /// Engines known to this server, with models and capabilities.
    pub engines: Vec<serde_json::Value>,
    /// Registered live workers with heartbeat age and current jobs.
    pub workers: Vec<serde_json::Value>,
    /// Queue depth by class, running jobs, and the oldest waiting job's age.
    pub queue: serde_json::Value,
}

/// Generation engines, registered workers and the queue.
#[utoipa::path(get, path = "/api/generation/health", tag = "system", responses((status = 200, body = GenerationHealth)))]
pub async fn generation_health(
    State(state): State<AppState>,
) -> Result<Json<GenerationHealth>, crate::error::ApiError> {
    let now = chrono::Utc::now();
    let live = seidra_store::workers::list_live(&state.db).await?;
    let workers: Vec<serde_json::Value> = live
        .iter()
        .map(|w| {
            serde_json::json!({
                "id": w.id,
                "name": w.name,
                "host": w.host,
                "version": w.version,
                "status": w.status,
                "engines": w.engines.0,
                "models": w.models.0,
                "concurrency": w.concurrency,
                "current_jobs": w.current_jobs.0,
                "started_at": w.started_at,
                "heartbeat_age_secs": (now - w.heartbeat_at).num_milliseconds() as f64 / 1000.0,
            })
        })
        .collect();
    let engines = state
        .engines
        .engines()
        .iter()
        .map(|e| {
            let served_by = live.iter().filter(|w| w.engines.0.iter().any(|n| n == e.name())).count();
            let remote = state.engines.remote_health_of(e.name());
            let state = match &remote {
                _ if served_by == 0 => "no_worker",
                Some(h) if h.status == "down" || h.breaker == seidra_engines::remote::BreakerState::Open => {
                    "unavailable"
                }
                _ => "ready",
            };
            serde_json::json!({
                "name": e.name(),
                "state": state,
                "workers": served_by,
                "models": e.models(),
                "capabilities": e.capabilities(),
                // Remote engines: up/down, breaker, latency and last error as seen by this server.
                "remote": remote,
            })
        })
        .collect();
    let depth = seidra_store::jobs::queue_depth(&state.db).await?;
    let class =
        |c: seidra_core::job::PriorityClass| depth.by_class.iter().find(|(k, _)| *k == c).map_or(0, |(_, n)| *n);
    let queue = serde_json::json!({
        "interactive": class(seidra_core::job::PriorityClass::Interactive),
        "batch": class(seidra_core::job::PriorityClass::Batch),
        "running": depth.running,
        "oldest_queued_age_secs": depth.oldest_queued_at.map(|t| (now - t).num_milliseconds() as f64 / 1000.0),
    });
    let status = if workers.is_empty() { "unavailable" } else { "ok" };
    Ok(Json(GenerationHealth { status, engines, workers, queue }))
}

/// Prometheus metrics.
pub async fn metrics(State(state): State<AppState>) -> Response {
    if !state.settings.metrics_enabled {
        return crate::error::ApiError::new(
            StatusCode::NOT_FOUND,
            "metrics_disabled",
            "metrics are turned off (SEIDRA_METRICS_ENABLED)",
        )
        .into_response();
    }
    let Some(handle) = crate::metrics::handle() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "metrics recorder unavailable\n").into_response();
    };
    let (size, idle) = state.db.pool_stats();
    metrics::gauge!("seidra_db_pool_connections").set(f64::from(size));
    metrics::gauge!("seidra_db_pool_idle_connections").set(idle as f64);
    metrics::gauge!("seidra_process_uptime_seconds").set(state.started.elapsed().as_secs_f64());
    crate::metrics::record_process_metrics();
    if let Ok(depth) = seidra_store::jobs::queue_depth(&state.db).await {
        for class in [seidra_core::job::PriorityClass::Interactive, seidra_core::job::PriorityClass::Batch] {
            let n = depth.by_class.iter().find(|(c, _)| *c == class).map_or(0, |(_, n)| *n);
            metrics::gauge!("seidra_queue_depth", "class" => class.as_str()).set(n as f64);
        }
        metrics::gauge!("seidra_jobs_running").set(depth.running as f64);
        let age = depth.oldest_queued_at.map_or(0.0, |t| (chrono::Utc::now() - t).num_milliseconds() as f64 / 1000.0);
        metrics::gauge!("seidra_queue_oldest_age_seconds").set(age);
    }
    if let Ok(live) = seidra_store::workers::list_live(&state.db).await {
        metrics::gauge!("seidra_workers_alive").set(live.len() as f64);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response()
}
