//! GPU metrics are true: on a host without NVML or without a GPU, neither the API's nor a
//! worker's `/metrics` has a single `seidra_gpu_*` line (absent, never zeros); on a GPU host both
//! carry every device.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "test helpers panic on broken fixtures")]

use std::time::{Duration, Instant};

use seidra_api::metrics::gpu::{self, NvmlSampler, Status};
use seidra_store::Backend;
use seidra_testkit::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpu_series_exist_only_where_nvml_sees_a_device() -> anyhow::Result<()> {
    let s = TestServer::start(Backend::Sqlite).await?;
    // A worker's metrics endpoint, served like `seidra worker` does.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let worker_addr = listener.local_addr()?;
    let stop = tokio_util::sync::CancellationToken::new();
    let stop_worker = stop.clone();
    let worker = tokio::spawn(seidra_api::serve(
        listener,
        seidra_api::worker_router(),
        async move { stop_worker.cancelled().await },
        Duration::from_secs(1),
    ));

    // The collector starts with the recorder; wait for its first NVML attempt.
    let deadline = Instant::now() + Duration::from_secs(30);
    while gpu::status() == Status::Starting && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = gpu::status();
    assert_ne!(status, Status::Starting, "the GPU collector never finished starting");
    if status == Status::Sampling {
        // Let the first sample land.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let api = s.client.get(s.url("/metrics")).send().await?.text().await?;
    let worker_text = s.client.get(format!("http://{worker_addr}/metrics")).send().await?.text().await?;
    for (who, text) in [("API", &api), ("worker", &worker_text)] {
        assert!(text.contains("seidra_build_info"), "{who} /metrics is not the real recorder:\n{text}");
        match status {
            Status::Unavailable => {
                assert!(NvmlSampler::open().is_err(), "NVML opens, yet the collector gave up");
                let gpu_lines: Vec<&str> = text.lines().filter(|l| l.contains("seidra_gpu_")).collect();
                assert!(gpu_lines.is_empty(), "{who} /metrics without a GPU has GPU lines: {gpu_lines:?}");
            }
            _ => {
                for name in ["seidra_gpu_info{gpu=\"0\"", "seidra_gpu_memory_total_bytes{gpu=\"0\"}"] {
                    assert!(text.contains(name), "{who} /metrics on a GPU host lacks {name}:\n{text}");
                }
            }
        }
    }
    stop.cancel();
    worker.await??;
    s.stop().await
}
