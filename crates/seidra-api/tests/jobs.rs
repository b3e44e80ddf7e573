//! The generation API and live events, with in-process workers, on SQLite and PostgreSQL.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "test helpers panic on broken fixtures")]

use std::time::Duration;

use seidra_store::Backend;
use seidra_testkit::{TestServer, WsClient, dual_test};
use serde_json::{Value, json};

const PASSWORD: &str = "a-long-enough-passphrase";
const WAIT: Duration = Duration::from_secs(60);

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

async fn user(server: &TestServer, name: &str) -> String {
    s(&server.register(name, PASSWORD).await.unwrap()["access_token"])
}

fn small(prompt: &str) -> Value {
    json!({ "prompt": prompt, "width": 128, "height": 96, "num_inference_steps": 4, "seed": 7, "num_images": 2 })
}

async fn submit(server: &TestServer, token: &str, body: &Value) -> Value {
    let (status, resp) = server.post("/api/generate/single", Some(token), body).await.unwrap();
    assert_eq!(status, 202, "{resp}");
    resp["jobs"][0].clone()
}

async fn single_job_produces_real_deterministic_images(backend: Backend) -> anyhow::Result<()> {
    let server = TestServer::builder(backend).with_workers(1).start().await?;
    let token = user(&server, "alice").await;
    let job = submit(&server, &token, &small("a violet dragon over golden hills")).await;
    assert_eq!(job["status"], "queued");
    assert_eq!(job["request"]["seed"], 7);
    let done = server.wait_job(&token, &s(&job["id"]), WAIT, |j| j["status"] == "succeeded").await?;
    assert_eq!((done["progress"].as_f64(), done["attempt"].as_i64()), (Some(1.0), Some(1)));
    let outputs = done["outputs"].as_array().cloned().unwrap_or_default();
    assert_eq!(outputs.len(), 2, "num_images is honoured");
    for (i, out) in outputs.iter().enumerate() {
        assert_eq!((out["width"].as_i64(), out["height"].as_i64()), (Some(128), Some(96)));
        assert_eq!(out["seed"].as_i64(), Some(7 + i64::try_from(i)?), "seed + index");
        let resp = server.client.get(server.url(&s(&out["url"]))).send().await?;
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(resp.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("image/png"));
        let bytes = resp.bytes().await?;
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(i64::try_from(bytes.len())?, out["bytes"].as_i64().unwrap_or(0));
    }
    // A tampered download link is refused.
    let url = s(&outputs[0]["url"]).replace("sig=", "sig=00");
    assert_eq!(server.client.get(server.url(&url)).send().await?.status().as_u16(), 403);

    // Same request and seed → identical bytes; another prompt → different bytes.
    let again = submit(&server, &token, &small("a violet dragon over golden hills")).await;
    let other = submit(&server, &token, &small("a grey city at night in the rain")).await;
    let again = server.wait_job(&token, &s(&again["id"]), WAIT, |j| j["status"] == "succeeded").await?;
    let other = server.wait_job(&token, &s(&other["id"]), WAIT, |j| j["status"] == "succeeded").await?;
    assert_eq!(again["outputs"][0]["sha256"], done["outputs"][0]["sha256"]);
    assert_ne!(other["outputs"][0]["sha256"], done["outputs"][0]["sha256"]);
    assert_ne!(done["outputs"][1]["sha256"], done["outputs"][0]["sha256"], "each image of a job differs");

    let (status, health) = server.get("/api/generation/health", None).await?;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    assert_eq!(health["workers"].as_array().map(Vec::len), Some(1));
    assert_eq!(health["engines"][0]["name"], "procedural");
    assert_eq!(health["engines"][0]["state"], "ready");

    let (status, stats) = server.get("/api/jobs/stats", Some(&token)).await?;
    assert_eq!((status, stats["by_status"]["succeeded"].as_i64()), (200, Some(3)));
    assert!(stats["average_run_secs"].as_f64().is_some());
    server.stop().await
}

async fn every_validation_error_names_its_field(backend: Backend) -> anyhow::Result<()> {
    let server = TestServer::start(backend).await?;
    let token = user(&server, "bob").await;
    let cases = [
        (json!({ "prompt": "x", "style": "anime" }), "style"),
        (json!({ "negative_prompt": "x" }), "prompt"),
        (json!({ "prompt": "" }), "prompt"),
        (json!({ "prompt": "x", "width": 100 }), "width"),
        (json!({ "prompt": "x", "height": 4096 }), "height"),
        (json!({ "prompt": "x", "num_images": 9 }), "num_images"),
        (json!({ "prompt": "x", "num_inference_steps": 0 }), "num_inference_steps"),
        (json!({ "prompt": "x", "guidance_scale": 31.0 }), "guidance_scale"),
        (json!({ "prompt": "x", "scheduler": "karras-magic" }), "scheduler"),
        (json!({ "prompt": "x", "loras": [{ "name": "film-grain", "weight": 0.8 }] }), "loras"),
        (json!({ "prompt": "x", "loras": [{ "name": "a", "weight": 9.0 }] }), "loras[0].weight"),
        (json!({ "prompt": "x", "seed": 9_007_199_254_740_993_u64 }), "seed"),
        (json!({ "prompt": "x", "model_name": "sdxl-base" }), "model_name"),
        (json!({ "prompt": "x", "engine": "comfyui" }), "engine"),
        (json!({ "prompt": "x", "persona_id": "01a20b84-8568-734e-8e24-4d16e8055fb8" }), "persona_id"),
        (json!({ "prompt": "x", "priority": "urgent" }), "priority"),
    ];
    for (body, field) in cases {
        let (status, resp) = server.post("/api/generate/single", Some(&token), &body).await?;
        assert_eq!(status, 422, "{body} → {resp}");
        assert_eq!(resp["error"]["field"].as_str(), Some(field), "{body} → {resp}");
    }
    let batch_cases = [
        (json!({ "requests": [] }), "requests"),
        (json!({ "requests": vec![json!({ "prompt": "x" }); 9] }), "requests"),
        (json!({ "requests": [{ "prompt": "x" }, { "prompt": "y", "num_images": 0 }] }), "requests[1].num_images"),
        (json!({ "requests": [{ "prompt": "x", "priority": "batch" }] }), "requests[0].priority"),
        (json!({ "requests": [{ "prompt": "x", "bogus": 1 }] }), "requests[0].bogus"),
    ];
    for (body, field) in batch_cases {
        let (status, resp) = server.post("/api/generate/batch", Some(&token), &body).await?;
        assert_eq!(status, 422, "{body} → {resp}");
        assert_eq!(resp["error"]["field"].as_str(), Some(field), "{body} → {resp}");
    }
    let (status, resp) = server.get("/api/jobs?status=done", Some(&token)).await?;
    assert_eq!((status, resp["error"]["field"].as_str()), (422, Some("status")));
    let (status, resp) = server.get("/api/jobs?sort=sideways", Some(&token)).await?;
    assert_eq!((status, resp["error"]["field"].as_str()), (422, Some("sort")));
    let (_, jobs) = server.get("/api/jobs", Some(&token)).await?;
    assert_eq!(jobs["total"], 0, "nothing was queued by invalid requests");
    server.stop().await
}

async fn batch_idempotency_and_quota(backend: Backend) -> anyhow::Result<()> {
    let server = TestServer::builder(backend).settings(|s| s.queue.max_queued_per_user = 4).start().await?;
    let token = user(&server, "carol").await;
    let batch = json!({ "requests": [{ "prompt": "one" }, { "prompt": "two" }, { "prompt": "three" }] });
    let (status, resp) = server.post("/api/generate/batch", Some(&token), &batch).await?;
    assert_eq!(status, 202, "{resp}");
    let batch_id = s(&resp["batch_id"]);
    assert_eq!(resp["job_ids"].as_array().map(Vec::len), Some(3));
    assert!(
        resp["jobs"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|j| j["batch_id"] == batch_id.as_str() && j["priority"] == "batch")
    );
    let (_, listed) = server.get(&format!("/api/jobs?batch_id={batch_id}&sort=oldest"), Some(&token)).await?;
    let prompts: Vec<String> = listed["items"].as_array().into_iter().flatten().map(|j| s(&j["prompt"])).collect();
    assert_eq!(prompts, ["one", "two", "three"]);

    // Idempotency-Key: same key + body → same job (200 + header); other body → 409.
    let send = |key: &'static str, body: Value| {
        let req = server
            .client
            .post(server.url("/api/generate/single"))
            .bearer_auth(&token)
            .header("idempotency-key", key)
            .json(&body);
        async move { req.send().await }
    };
    let first = send("k-1", json!({ "prompt": "once" })).await?;
    assert_eq!(first.status().as_u16(), 202);
    let first: Value = first.json().await?;
    let replay = send("k-1", json!({ "prompt": "once" })).await?;
    assert_eq!(replay.status().as_u16(), 200);
    assert_eq!(replay.headers().get("idempotent-replayed").and_then(|v| v.to_str().ok()), Some("true"));
    let replay: Value = replay.json().await?;
    assert_eq!(replay["job_ids"], first["job_ids"]);
    let conflict = send("k-1", json!({ "prompt": "twice" })).await?;
    assert_eq!(conflict.status().as_u16(), 409);

    // Quota: 4 queued now; one more is refused with a clear code.
    let (status, resp) = server.post("/api/generate/single", Some(&token), &json!({ "prompt": "too many" })).await?;
    assert_eq!((status, resp["error"]["code"].as_str()), (429, Some("queue_quota_exceeded")), "{resp}");
    server.stop().await
}

async fn cancel_retry_and_ownership(backend: Backend) -> anyhow::Result<()> {
    let server = TestServer::start(backend).await?; // no workers: jobs stay queued
    let alice = user(&server, "dora").await;
    let bob = user(&server, "eve").await;
    let admin = server.admin_token().await?;
    let job = submit(&server, &alice, &json!({ "prompt": "waiting" })).await;
    let id = s(&job["id"]);

    // Bob cannot see, cancel or retry Alice's job; it does not exist for him.
    for (method, path) in [
        ("GET", format!("/api/jobs/{id}")),
        ("POST", format!("/api/jobs/{id}/cancel")),
        ("POST", format!("/api/jobs/{id}/retry")),
    ] {
        let (status, body) = if method == "GET" {
            server.get(&path, Some(&bob)).await?
        } else {
            server.post(&path, Some(&bob), &json!({})).await?
        };
        assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{method} {path}");
    }
    let (_, bob_list) = server.get("/api/jobs", Some(&bob)).await?;
    assert_eq!(bob_list["total"], 0);
    let (status, _) = server.get("/api/jobs?all=true", Some(&bob)).await?;
    assert_eq!(status, 403);
    let (_, all) = server.get("/api/jobs?all=true", Some(&admin)).await?;
    assert_eq!(all["total"], 1);
    let (status, _) = server.get(&format!("/api/jobs/{id}"), Some(&admin)).await?;
    assert_eq!(status, 200);

    let (status, _) = server.post(&format!("/api/jobs/{id}/retry"), Some(&alice), &json!({})).await?;
    assert_eq!(status, 409, "a queued job is not retried");
    let (status, cancelled) = server.post(&format!("/api/jobs/{id}/cancel"), Some(&alice), &json!({})).await?;
    assert_eq!((status, cancelled["status"].as_str()), (200, Some("cancelled")));
    let (status, body) = server.post(&format!("/api/jobs/{id}/cancel"), Some(&alice), &json!({})).await?;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("job_finished")));
    let (status, retried) = server.post(&format!("/api/jobs/{id}/retry"), Some(&alice), &json!({})).await?;
    assert_eq!(status, 202, "{retried}");
    assert_eq!(retried["jobs"][0]["retry_of"], id.as_str());
    assert_eq!(retried["jobs"][0]["request"]["seed"], job["request"]["seed"], "a retry reproduces the same seed");
    server.stop().await
}

async fn cancel_running_job_stops_the_engine(backend: Backend) -> anyhow::Result<()> {
    let server = TestServer::builder(backend).with_workers(1).start().await?;
    let token = user(&server, "fay").await;
    let mut ws = server.ws(&token).await?;
    let big = json!({ "prompt": "a very long render", "width": 2048, "height": 2048, "num_inference_steps": 150, "num_images": 8 });
    let job = submit(&server, &token, &big).await;
    let id = s(&job["id"]);
    ws.expect("job.progress", WAIT, |m| m["job_id"] == id.as_str()).await?;
    let (status, body) = server.post(&format!("/api/jobs/{id}/cancel"), Some(&token), &json!({})).await?;
    assert_eq!((status, body["cancel_requested"].as_bool()), (200, Some(true)), "{body}");
    let cancelled = ws.expect("job.cancelled", Duration::from_secs(10), |m| m["job_id"] == id.as_str()).await?;
    assert_eq!(cancelled["data"]["status"], "cancelled");
    let job = server.wait_job(&token, &id, WAIT, |j| j["status"] == "cancelled").await?;
    assert!(job["progress"].as_f64().unwrap_or(1.0) < 1.0, "stopped part-way: {job}");
    assert_eq!(job["outputs"], json!([]), "partial outputs are discarded");
    server.stop().await
}

async fn websocket_events_reach_only_their_owner(backend: Backend) -> anyhow::Result<()> {
    let server = TestServer::builder(backend).with_workers(1).start().await?;
    let alice = user(&server, "gus").await;
    let bob = user(&server, "hal").await;
    let mut a = server.ws(&alice).await?;
    let mut b = WsClient::connect_subprotocol(&server.base, &bob).await?;
    assert_eq!(a.expect("welcome", WAIT, |_| true).await?["type"], "welcome");
    assert_eq!(b.expect("snapshot", WAIT, |_| true).await?["jobs"], json!([]));

    let job =
        submit(&server, &alice, &json!({ "prompt": "events", "width": 256, "height": 256, "num_inference_steps": 30 }))
            .await;
    let id = s(&job["id"]);
    let mut kinds = Vec::new();
    let mut last_id = 0;
    loop {
        let msg = a.next(WAIT).await?.expect("events until job.succeeded");
        let seq = msg["id"].as_u64().unwrap_or(0);
        assert!(seq > last_id, "ids increase: {seq} after {last_id}");
        last_id = seq;
        if msg["job_id"] != id.as_str() {
            continue;
        }
        kinds.push(s(&msg["type"]));
        if msg["type"] == "job.succeeded" {
            assert_eq!(msg["data"]["outputs"].as_array().map(Vec::len), Some(1));
            break;
        }
    }
    assert_eq!(kinds.first().map(String::as_str), Some("job.queued"));
    assert_eq!(kinds.get(1).map(String::as_str), Some("job.started"));
    assert!(kinds.iter().filter(|k| *k == "job.progress").count() >= 1, "{kinds:?}");
    assert!(
        kinds.iter().all(|k| ["job.queued", "job.started", "job.progress", "job.succeeded"].contains(&k.as_str())),
        "{kinds:?}"
    );
    // Bob saw nothing of it.
    let leaked: Vec<Value> =
        b.drain(Duration::from_millis(500)).await?.into_iter().filter(|m| m["job_id"] == id.as_str()).collect();
    assert!(leaked.is_empty(), "{leaked:?}");

    // Ping, subscribe, first-message auth, bad credentials.
    a.send(&json!({ "type": "ping" })).await?;
    a.expect("pong", WAIT, |_| true).await?;
    a.send(&json!({ "type": "unsubscribe", "channels": ["jobs"] })).await?;
    let ack = a.expect("subscribed", WAIT, |_| true).await?;
    assert!(!ack["channels"].as_array().into_iter().flatten().any(|c| c == "jobs"));
    let mut c = WsClient::connect_anonymous(&server.base).await?;
    c.send(&json!({ "type": "auth", "token": alice })).await?;
    c.expect("welcome", WAIT, |_| true).await?;
    let mut d = WsClient::connect_anonymous(&server.base).await?;
    d.send(&json!({ "type": "auth", "token": "nope" })).await?;
    let closed = d.expect("__close", WAIT, |_| true).await?;
    assert_eq!(closed["code"], 4001);
    let refused = WsClient::connect(&server.base, "not-a-token").await;
    assert!(refused.is_err(), "a bad header token is refused before the upgrade");

    // Reconnect → snapshot of active jobs.
    let queued = submit(
        &server,
        &alice,
        &json!({ "prompt": "snap", "width": 1024, "height": 1024, "num_inference_steps": 120, "num_images": 4 }),
    )
    .await;
    let mut again = server.ws(&alice).await?;
    let snapshot = again.expect("snapshot", WAIT, |_| true).await?;
    assert!(snapshot["jobs"].as_array().into_iter().flatten().any(|j| j["id"] == queued["id"]), "{snapshot}");
    server.stop().await
}

/// The noop engine's `empty` model (used by the throughput benchmark) succeeds with no output
/// and leaves nothing in the library; its `noop` model stores one tiny PNG per image.
async fn noop_empty_model_succeeds_without_outputs(backend: Backend) -> anyhow::Result<()> {
    let server = TestServer::builder(backend).settings(|s| s.engines.noop = true).with_workers(1).start().await?;
    let token = user(&server, "nina").await;
    let body = |model: &str| json!({ "prompt": "queue only", "engine": "noop", "model_name": model, "num_images": 2 });
    let empty = submit(&server, &token, &body("empty")).await;
    let png = submit(&server, &token, &body("noop")).await;
    let empty = server.wait_job(&token, &s(&empty["id"]), WAIT, |j| j["status"] == "succeeded").await?;
    let png = server.wait_job(&token, &s(&png["id"]), WAIT, |j| j["status"] == "succeeded").await?;
    assert_eq!(empty["outputs"].as_array().map(Vec::len), Some(0), "{empty}");
    assert_eq!(png["outputs"].as_array().map(Vec::len), Some(2), "{png}");
    let (status, page) = server.get("/api/media?limit=50", Some(&token)).await?;
    assert_eq!((status, page["total"].as_i64()), (200, Some(2)), "only the PNG job's items: {page}");
    let (status, err) = server.post("/api/generate/single", Some(&token), &body("nothing")).await?;
    assert_eq!((status, err["error"]["field"].as_str()), (422, Some("model_name")), "{err}");
    server.stop().await
}

dual_test!(
    noop_empty_model_succeeds_without_outputs,
    single_job_produces_real_deterministic_images,
    every_validation_error_names_its_field,
    batch_idempotency_and_quota,
    cancel_retry_and_ownership,
    cancel_running_job_stops_the_engine,
    websocket_events_reach_only_their_owner,
);
