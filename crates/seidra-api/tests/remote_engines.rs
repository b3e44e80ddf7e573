//! Remote engines end to end: `POST /api/generate/single` → worker → fake ComfyUI / A1111 /
//! OpenAI server → stored outputs, with progress on the WebSocket; fail-over from a dead engine,
//! cancel reaching the engine, and per-engine health.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "test helpers panic on broken fixtures")]

use std::time::Duration;

use seidra_config::{RemoteEngineKind, Secret};
use seidra_store::Backend;
use seidra_testkit::fake_engines::{Behavior, FakeEngine, dead_url};
use seidra_testkit::{TestServer, dual_test};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

use seidra_testkit::fake_engines::remote_engine as remote;

async fn remote_engines_end_to_end(backend: Backend) -> anyhow::Result<()> {
    let steady = Behavior { steps: 6, step_delay: Duration::from_millis(80), ..Behavior::default() };
    let comfy = FakeEngine::comfyui(steady.clone()).await?;
    let forge = FakeEngine::a1111(steady.clone()).await?;
    let oai = FakeEngine::openai(Behavior { api_key: Some("sk-e2e".into()), ..steady.clone() }).await?;
    let dead = dead_url().await?;
    let server = TestServer::builder(backend)
        .settings(|s| {
            let mut openai = remote("oai", RemoteEngineKind::Openai, &oai.url, &["gpt-image-1"]);
            openai.api_key = Some(Secret::new("sk-e2e"));
            s.engines.remote = vec![
                remote("dead", RemoteEngineKind::Comfyui, &dead, &["sdxl"]),
                remote("comfy", RemoteEngineKind::Comfyui, &comfy.url, &["sdxl"]),
                remote("forge", RemoteEngineKind::A1111, &forge.url, &["sd15"]),
                openai,
            ];
        })
        .with_workers(1)
        .start()
        .await?;
    let token = s(&server.register("rita", "a-long-enough-passphrase").await?["access_token"]);
    let mut ws = server.ws(&token).await?;

    // Each kind, named explicitly, with progress on the WebSocket and stored PNG outputs.
    for (engine, model, fake) in [("comfy", "sdxl", &comfy), ("forge", "sd15", &forge), ("oai", "gpt-image-1", &oai)] {
        let body = json!({ "prompt": format!("a harbour via {engine}"), "width": 128, "height": 96, "num_inference_steps": 6,
                           "seed": 5, "num_images": 2, "engine": engine, "model_name": model });
        let (status, resp) = server.post("/api/generate/single", Some(&token), &body).await?;
        assert_eq!(status, 202, "{resp}");
        let id = s(&resp["jobs"][0]["id"]);
        ws.expect("job.progress", WAIT, |m| m["job_id"] == id.as_str()).await?;
        let done = ws.expect("job.succeeded", WAIT, |m| m["job_id"] == id.as_str()).await?;
        assert_eq!(done["data"]["outputs"].as_array().map(Vec::len), Some(2), "{engine}: {done}");
        let job = server.wait_job(&token, &id, WAIT, |j| j["status"] == "succeeded").await?;
        assert_eq!((job["engine"].as_str(), job["outputs"][0]["width"].as_i64()), (Some(engine), Some(128)));
        let file = server.client.get(server.url(&s(&job["outputs"][0]["url"]))).send().await?;
        assert_eq!(&file.bytes().await?[..8], b"\x89PNG\r\n\x1a\n");
        assert!(!fake.calls().is_empty(), "{engine} was called");
    }

    // Model `sdxl` is served by `dead` (first) and `comfy`: the job succeeds through `comfy`
    // (routed there directly once a health check saw `dead` down, else by fail-over).
    let before = comfy.count("POST /prompt");
    let body =
        json!({ "prompt": "fail over", "width": 64, "height": 64, "num_inference_steps": 2, "model_name": "sdxl" });
    let (status, resp) = server.post("/api/generate/single", Some(&token), &body).await?;
    assert_eq!(status, 202, "{resp}");
    let id = s(&resp["jobs"][0]["id"]);
    let job = server.wait_job(&token, &id, WAIT, |j| j["status"] == "succeeded").await?;
    assert_eq!(job["attempt"], 1, "failed over within the attempt");
    assert_eq!(comfy.count("POST /prompt"), before + 1);
    // Provenance names the engine that drew it, whichever one the job was routed to.
    let (_, media) = server.get(&format!("/api/media?job_id={id}"), Some(&token)).await?;
    assert_eq!(media["items"][0]["engine"].as_str(), Some("comfy"), "job engine {}: {media}", job["engine"]);

    // Cancel reaches ComfyUI.
    let body = json!({ "prompt": "long", "width": 64, "height": 64, "num_inference_steps": 100, "engine": "comfy", "model_name": "sdxl" });
    let (_, resp) = server.post("/api/generate/single", Some(&token), &body).await?;
    let id = s(&resp["jobs"][0]["id"]);
    ws.expect("job.progress", WAIT, |m| m["job_id"] == id.as_str()).await?;
    let (status, _) = server.post(&format!("/api/jobs/{id}/cancel"), Some(&token), &json!({})).await?;
    assert_eq!(status, 200);
    ws.expect("job.cancelled", WAIT, |m| m["job_id"] == id.as_str()).await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while comfy.count("POST /interrupt") == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(comfy.count("POST /interrupt"), 1, "{:?}", comfy.calls());
    assert_eq!(comfy.count("POST /queue"), 1);

    // Health per engine: the dead one is down (health check or breaker), the others up.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let health = loop {
        let (status, health) = server.get("/api/generation/health", None).await?;
        assert_eq!(status, 200);
        let ready =
            health["engines"].as_array().into_iter().flatten().filter(|e| e["remote"]["status"] == "up").count();
        if ready == 3 || std::time::Instant::now() > deadline {
            break health;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let engine = |name: &str| {
        health["engines"].as_array().into_iter().flatten().find(|e| e["name"] == name).cloned().unwrap_or(Value::Null)
    };
    assert_eq!(engine("dead")["remote"]["status"], "down", "{health}");
    assert_eq!(engine("dead")["state"], "unavailable");
    assert!(engine("dead")["remote"]["last_error"].as_str().is_some_and(|e| !e.is_empty()));
    for name in ["comfy", "forge", "oai"] {
        assert_eq!(engine(name)["remote"]["status"], "up", "{name}: {health}");
        assert_eq!(engine(name)["remote"]["breaker"], "closed");
        assert!(engine(name)["remote"]["latency_ms"].as_f64().is_some());
    }
    assert_eq!(engine("procedural")["remote"], Value::Null);
    assert!(!serde_json::to_string(&health)?.contains("sk-e2e"), "no key in health");

    let metrics = server.client.get(server.url("/metrics")).send().await?.text().await?;
    assert!(metrics.contains("seidra_engine_requests_total{engine=\"comfy\",outcome=\"ok\"}"), "metrics exported");
    assert!(metrics.contains("seidra_engine_up{engine=\"dead\"} 0"), "{metrics}");
    assert!(metrics.contains("seidra_engine_up{engine=\"comfy\"} 1"), "{metrics}");
    // Error counters exist from the start, so error-ratio alerts see 0%, not "no data".
    for kind in ["unavailable", "error"] {
        let series = format!("seidra_engine_errors_total{{engine=\"oai\",kind=\"{kind}\"}}");
        assert!(metrics.contains(&series), "missing {series} in {metrics}");
    }
    assert!(metrics.contains("seidra_engine_breaker_state{engine=\"comfy\"} 0"), "{metrics}");
    server.stop().await
}

dual_test!(remote_engines_end_to_end);
