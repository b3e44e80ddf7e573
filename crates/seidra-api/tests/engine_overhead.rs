//! Bench (ignored by default; run by `bench/engine_overhead.sh`): the job system's overhead
//! around a remote engine that answers instantly, submit → `job.succeeded` on the WebSocket,
//! against the same measure with the in-process `noop` engine. Goal: remote p50 ≤ 30 ms.
//! `SEIDRA_BENCH_JOBS` (default 200) sets the measured submits, `SEIDRA_BENCH_BACKEND` the
//! database (`sqlite` default, or `postgres`); `SEIDRA_BENCH_ASSERT=1` fails above the goal.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "bench harness")]

use std::time::{Duration, Instant};

use seidra_config::{RemoteEngineKind, RemoteEngineSettings};
use seidra_store::Backend;
use seidra_testkit::TestServer;
use seidra_testkit::fake_engines::{Behavior, FakeEngine};
use serde_json::json;

const WARM_UP: usize = 20;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: run with bench/engine_overhead.sh"]
async fn engine_overhead() -> anyhow::Result<()> {
    let jobs: usize = std::env::var("SEIDRA_BENCH_JOBS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let backend = match std::env::var("SEIDRA_BENCH_BACKEND").as_deref() {
        Ok("postgres") => Backend::Postgres,
        _ => Backend::Sqlite,
    };
    let instant = FakeEngine::openai(Behavior { steps: 0, ..Behavior::default() }).await?;
    let server = TestServer::builder(backend)
        .settings(|s| {
            s.rate_limit.enabled = false;
            s.engines.noop = true;
            s.engines.remote = vec![RemoteEngineSettings {
                name: "instant".into(),
                kind: RemoteEngineKind::Openai,
                url: instant.url.clone(),
                api_key: None,
                models: vec!["instant".into()],
                max_concurrency: 8,
                timeout_secs: 30,
                workflow: None,
            }];
        })
        .with_workers(1)
        .start()
        .await?;
    let token =
        server.register("bench", "a-long-enough-passphrase").await?["access_token"].as_str().unwrap().to_owned();
    let mut ws = server.ws(&token).await?;
    let mut report = Vec::new();
    for engine in ["noop", "instant"] {
        let mut samples = Vec::new();
        for i in 0..WARM_UP + jobs {
            let body = json!({ "prompt": format!("bench {i}"), "width": 64, "height": 64, "num_inference_steps": 1,
                               "engine": engine, "model_name": engine });
            let started = Instant::now();
            let (status, resp) = server.post("/api/generate/single", Some(&token), &body).await?;
            assert_eq!(status, 202, "{resp}");
            let id = resp["jobs"][0]["id"].as_str().unwrap().to_owned();
            ws.expect("job.succeeded", Duration::from_secs(30), |m| m["job_id"] == id.as_str()).await?;
            if i >= WARM_UP {
                samples.push(started.elapsed());
            }
        }
        samples.sort();
        let (p50, p95) = (percentile(&samples, 0.5), percentile(&samples, 0.95));
        println!(
            "engine_overhead engine={engine} jobs={jobs} p50_ms={:.2} p95_ms={:.2} max_ms={:.2}",
            p50.as_secs_f64() * 1000.0,
            p95.as_secs_f64() * 1000.0,
            samples.last().copied().unwrap_or_default().as_secs_f64() * 1000.0
        );
        report.push((engine, p50));
    }
    assert_eq!(instant.count("POST /v1/images/generations"), WARM_UP + jobs, "every remote job reached the fake");
    if std::env::var("SEIDRA_BENCH_ASSERT").as_deref() == Ok("1") {
        let remote = report.iter().find(|(e, _)| *e == "instant").map(|(_, p)| *p).unwrap_or_default();
        assert!(remote <= Duration::from_millis(30), "remote engine p50 {remote:?} > 30 ms");
    }
    server.stop().await
}
