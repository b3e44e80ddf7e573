//! The Prometheus recorder (one per process) and metric descriptions.

pub mod gpu;

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Turns metrics off for this process (`metrics_enabled = false`): no recorder is installed, so
/// every `metrics::*!` call is a no-op, and [`handle`] answers `None`. Call before the first
/// [`handle`]; afterwards it changes nothing.
pub fn disable() {
    let _ = HANDLE.set(None);
}

/// Installs the recorder, or turns metrics off, as the settings say.
pub fn init(settings: &seidra_config::Settings) {
    if settings.metrics_enabled {
        let _ = handle();
    } else {
        disable();
    }
}

/// Whether this process records metrics.
pub fn enabled() -> bool {
    handle().is_some()
}

/// Job wait/run buckets in seconds: 10 ms … 1 h.
const JOB_BUCKETS: &[f64] =
    &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0];

/// Latency buckets in seconds: 1 ms … 30 s.
const LATENCY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Installs the global recorder on first call and returns its handle.
pub fn handle() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            // Job timings span milliseconds (noop) to an hour (big renders); HTTP stays fine-grained.
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Prefix("seidra_job_".to_owned()), JOB_BUCKETS)
                .ok()?
                .set_buckets_for_metric(Matcher::Full("seidra_engine_request_seconds".to_owned()), JOB_BUCKETS)
                .ok()?
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
                .ok()?;
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
                return None;
            }
            describe();
            metrics::gauge!("seidra_build_info", "version" => seidra_core::VERSION).set(1.0);
            // Rare-event counters exist from the start so alerts can use increase() on them.
            for name in [
                "seidra_jobs_reclaimed_total",
                "seidra_ws_slow_disconnects_total",
                "seidra_rate_limit_backend_errors_total",
                "seidra_events_truncated_total",
            ] {
                metrics::counter!(name).increment(0);
            }
            // GPU gauges come from a sampling thread (absent on hosts without NVML or a GPU).
            gpu::start();
            start_upkeep(handle.clone());
            Some(handle)
        })
        .clone()
}

/// How often histogram samples are folded into their buckets between scrapes.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// The exporter keeps every histogram sample until it is folded into buckets, which happens on
/// a scrape or an upkeep; without a scraper (or with a slow one) memory would grow with every
/// request. One thread folds them every [`UPKEEP_INTERVAL`].
fn start_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new().name("seidra-metrics-upkeep".to_owned()).spawn(move || {
        loop {
            #[expect(clippy::disallowed_methods, reason = "this thread is ours, outside any async runtime")]
            std::thread::sleep(UPKEEP_INTERVAL);
            handle.run_upkeep();
        }
    });
    if let Err(err) = spawned {
        tracing::warn!(%err, "cannot start the metrics upkeep thread; histograms are folded only when scraped");
    }
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!("seidra_http_requests_total", "HTTP requests by method, route template and status");
    describe_histogram!(
        "seidra_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency by method and route template"
    );
    describe_gauge!("seidra_build_info", "Always 1; the version label says which build runs");
    describe_gauge!("seidra_db_pool_connections", "Open database connections in the pool");
    describe_gauge!("seidra_db_pool_idle_connections", "Idle database connections in the pool");
    describe_counter!("seidra_rate_limit_rejections_total", "Requests refused with 429, by policy");
    describe_counter!(
        "seidra_password_hash_rejections_total",
        "Password hashes refused because the argon2 pool queue was full"
    );
    describe_counter!(
        "seidra_rate_limit_backend_errors_total",
        "Redis rate-limit calls that failed and fell back to in-memory windows"
    );
    describe_counter!("seidra_auth_logins_total", "Login attempts by outcome");
    describe_gauge!("seidra_process_uptime_seconds", Unit::Seconds, "Seconds since the process started");
    describe_gauge!("seidra_process_resident_memory_bytes", Unit::Bytes, "Resident memory of this process");
    describe_gauge!("seidra_process_cpu_seconds_total", Unit::Seconds, "CPU time used by this process (user + system)");
    describe_gauge!("seidra_process_open_fds", "Open file descriptors of this process");
    describe_counter!("seidra_jobs_submitted_total", "Jobs queued, by type and engine");
    describe_counter!("seidra_jobs_started_total", "Job attempts started by workers, by type and engine");
    describe_counter!(
        "seidra_jobs_finished_total",
        "Job attempts finished, by type, engine and outcome (succeeded, failed, retrying, cancelled, released, lease_lost)"
    );
    describe_counter!("seidra_jobs_reclaimed_total", "Jobs taken back from workers that stopped heartbeating");
    describe_histogram!(
        "seidra_job_queue_wait_seconds",
        Unit::Seconds,
        "Time from submit to claim, by type and engine"
    );
    describe_histogram!(
        "seidra_job_run_seconds",
        Unit::Seconds,
        "Time from claim to the end of the attempt, by type and engine"
    );
    describe_counter!("seidra_engine_requests_total", "Remote engine attempts by engine and outcome");
    describe_counter!("seidra_engine_errors_total", "Remote engine failures by engine and kind (unavailable, error)");
    describe_counter!(
        "seidra_engine_failovers_total",
        "Attempts moved on to another engine after this one was unavailable"
    );
    describe_histogram!("seidra_engine_request_seconds", Unit::Seconds, "Remote engine attempt duration by engine");
    describe_histogram!("seidra_engine_health_check_seconds", Unit::Seconds, "Remote engine health check round trip");
    describe_gauge!("seidra_engine_up", "1 when the last health check of a remote engine passed, else 0");
    describe_gauge!("seidra_engine_breaker_state", "Remote engine circuit breaker: 0 closed, 1 half-open, 2 open");
    describe_gauge!("seidra_gpu_info", "Always 1 per GPU; the name and uuid labels say which device the gpu index is");
    describe_gauge!(
        "seidra_gpu_utilization_ratio",
        "Share of the last sample period in which a kernel ran on the GPU (0-1)"
    );
    describe_gauge!("seidra_gpu_memory_used_bytes", Unit::Bytes, "GPU memory allocated");
    describe_gauge!("seidra_gpu_memory_total_bytes", Unit::Bytes, "GPU memory installed");
    describe_gauge!("seidra_gpu_temperature_celsius", "GPU core temperature in degrees Celsius");
    describe_gauge!("seidra_gpu_power_watts", "GPU board power draw in watts");
    describe_gauge!("seidra_queue_depth", "Jobs waiting (queued or retrying), by priority class");
    describe_gauge!("seidra_queue_oldest_age_seconds", Unit::Seconds, "Age of the oldest waiting job (0 when none)");
    describe_gauge!("seidra_jobs_running", "Jobs running now");
    describe_gauge!("seidra_workers_alive", "Registered workers with a live heartbeat");
    describe_gauge!("seidra_workers_running", "Worker loops running in this process");
    describe_gauge!("seidra_ws_connections", "Open WebSocket connections on this replica");
    describe_counter!("seidra_ws_events_sent_total", "Events sent to WebSocket clients, by type");
    describe_counter!("seidra_ws_slow_disconnects_total", "WebSocket clients disconnected for falling behind");
    describe_counter!("seidra_events_published_total", "Events published on the bus by workers, by type");
    describe_counter!("seidra_events_reconnects_total", "Event-bus listener reconnects, by transport");
    describe_counter!(
        "seidra_events_publish_errors_total",
        "Event-bus publishes that failed (delivered locally only), by transport"
    );
    describe_counter!("seidra_events_truncated_total", "Events whose data was too large for PostgreSQL NOTIFY");
    describe_counter!("seidra_storage_operations_total", "Object-store operations by backend, operation and outcome");
    describe_histogram!(
        "seidra_storage_operation_duration_seconds",
        Unit::Seconds,
        "Object-store operation latency by backend and operation"
    );
    describe_counter!("seidra_storage_bytes_total", Unit::Bytes, "Object bytes written and read, by backend");
    describe_counter!("seidra_storage_orphans_deleted_total", "Unreferenced objects deleted by the orphan sweeper");
}

/// Samples this process's CPU time, resident memory and open file descriptors from `/proc`
/// (Linux); on other systems the series are simply absent.
pub fn record_process_metrics() {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status")
        && let Some(kb) = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
    {
        metrics::gauge!("seidra_process_resident_memory_bytes").set(kb * 1024.0);
    }
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat")
        && let Some(after_comm) = stat.rsplit(')').next()
    {
        // Fields after the command name: state is #3; utime and stime are #14 and #15 (1-based).
        let fields: Vec<&str> = after_comm.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // USER_HZ is 100 on every Linux platform we ship for.
        metrics::gauge!("seidra_process_cpu_seconds_total").set((ticks(11) + ticks(12)) / 100.0);
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        metrics::gauge!("seidra_process_open_fds").set(dir.count() as f64);
    }
}
