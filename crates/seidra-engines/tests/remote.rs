//! Remote engines against fake servers that speak each protocol: requests, progress, outputs,
//! errors, disconnects, cancellation, fail-over and the circuit breaker. Set
//! `SEIDRA_TEST_COMFYUI_URL` / `SEIDRA_TEST_A1111_URL` (and `…_MODEL`) to also run against real servers.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "tests")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use seidra_core::job::ImageRequest;
use seidra_engines::remote::{BreakerState, RemoteConfig, RemoteEngine, RemoteKind, RemotePool};
use seidra_engines::{CancellationToken, EngineError, GenerationEngine, InitImage, Progress, ProgressSink};
use seidra_testkit::fake_engines::{Behavior, Failure, FakeEngine, dead_url};
use serde_json::json;

#[derive(Default)]
struct Recorder(Mutex<Vec<f32>>);

impl ProgressSink for Recorder {
    fn report(&self, progress: Progress) {
        self.0.lock().unwrap().push(progress.fraction);
    }
}

fn config(name: &str, kind: RemoteKind, url: &str) -> RemoteConfig {
    RemoteConfig {
        name: name.into(),
        kind,
        base_url: url.into(),
        api_key: None,
        models: vec!["sdxl".into()],
        max_concurrency: 2,
        timeout: Duration::from_secs(20),
        workflow: None,
        breaker_failures: 2,
        breaker_cooldown: Duration::from_millis(300),
    }
}

fn request(extra: serde_json::Value) -> ImageRequest {
    let mut base = json!({ "prompt": "a lighthouse at dusk", "negative_prompt": "blurry", "width": 128, "height": 96,
        "num_inference_steps": 5, "guidance_scale": 6.0, "num_images": 2, "seed": 11, "scheduler": "euler_a" });
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    serde_json::from_value(base).unwrap()
}

async fn run(
    engine: &dyn GenerationEngine,
    req: &ImageRequest,
) -> (Result<Vec<seidra_engines::EngineOutput>, EngineError>, Vec<f32>) {
    let rec = Recorder::default();
    let out = engine.run(req, &rec, &CancellationToken::new()).await;
    let fractions = rec.0.lock().unwrap().clone();
    (out, fractions)
}

fn failed(err: &EngineError) -> (String, bool, String) {
    match err {
        EngineError::Failed { code, retryable, message } => (code.clone(), *retryable, message.clone()),
        other => (format!("{other:?}"), false, String::new()),
    }
}

#[tokio::test]
async fn comfyui_runs_the_workflow_relays_progress_and_fetches_outputs() {
    let fake = FakeEngine::comfyui(Behavior { steps: 4, ..Behavior::default() }).await.unwrap();
    let engine = RemoteEngine::new(config("comfy", RemoteKind::Comfyui, &fake.url)).unwrap();
    let req = request(json!({ "loras": [{ "name": "ink", "weight": 0.7 }] }));
    let (out, fractions) = run(&engine, &req).await;
    let out = out.unwrap();
    assert_eq!(out.len(), 2, "the temp preview image is not an output");
    assert_eq!((out[0].width, out[0].height, out[0].mime.as_str()), (Some(128), Some(96), "image/png"));
    assert_eq!((out[0].seed, out[1].seed), (Some(11), Some(12)));
    assert_ne!(out[0].bytes, out[1].bytes);
    for f in [0.25, 0.5, 0.75, 1.0] {
        assert!(fractions.contains(&f), "progress {f} relayed: {fractions:?}");
    }
    let sent = fake.last_body("POST /prompt").unwrap();
    let wf = &sent["prompt"];
    assert_eq!(wf["4"]["inputs"]["ckpt_name"], "sdxl");
    assert_eq!(wf["3"]["inputs"]["steps"], 5);
    assert_eq!(wf["3"]["inputs"]["sampler_name"], "euler_ancestral");
    assert_eq!(wf["3"]["inputs"]["model"], json!(["seidra_lora_0", 0]));
    assert_eq!(wf["seidra_lora_0"]["inputs"]["strength_model"].as_f64().map(|v| (v * 10.0).round()), Some(7.0));
    assert!(sent["client_id"].as_str().is_some_and(|c| !c.is_empty()));
    let calls = fake.calls();
    assert!(calls.iter().position(|c| c == "GET /ws") < calls.iter().position(|c| c == "POST /prompt"), "{calls:?}");
    assert_eq!(fake.count("GET /view"), 2);
    assert!(engine.check_health().await);
    assert_eq!(engine.health().status, "up");
}

#[tokio::test]
async fn comfyui_errors_and_a_dropped_socket() {
    // execution_error → not retryable, with the remote's message.
    let fake =
        FakeEngine::comfyui(Behavior { failure: Some(Failure::Execution), ..Behavior::default() }).await.unwrap();
    let engine = RemoteEngine::new(config("comfy", RemoteKind::Comfyui, &fake.url)).unwrap();
    let (code, retryable, message) = failed(&run(&engine, &request(json!({}))).await.0.unwrap_err());
    assert_eq!((code.as_str(), retryable), ("engine_error", false));
    assert!(message.contains("KSampler") && message.contains("CUDA out of memory"), "{message}");

    // 400 on /prompt (validation) → not retryable, with the message.
    let fake =
        FakeEngine::comfyui(Behavior { failure: Some(Failure::BadRequest), ..Behavior::default() }).await.unwrap();
    let engine = RemoteEngine::new(config("comfy", RemoteKind::Comfyui, &fake.url)).unwrap();
    let (code, retryable, message) = failed(&run(&engine, &request(json!({}))).await.0.unwrap_err());
    assert_eq!((code.as_str(), retryable), ("engine_error", false));
    assert!(message.contains("Prompt outputs failed validation"), "{message}");

    // The socket closes mid-run: completion is read from /history instead.
    let fake = FakeEngine::comfyui(Behavior { drop_ws: true, steps: 4, ..Behavior::default() }).await.unwrap();
    let engine = RemoteEngine::new(config("comfy", RemoteKind::Comfyui, &fake.url)).unwrap();
    let out = run(&engine, &request(json!({}))).await.0.unwrap();
    assert_eq!(out.len(), 2);
    assert!(fake.count("GET /history") >= 2, "polled: {:?}", fake.calls());
}

#[tokio::test]
async fn cancel_reaches_comfyui_and_a1111() {
    for kind in [RemoteKind::Comfyui, RemoteKind::A1111] {
        let slow = Behavior { steps: 200, step_delay: Duration::from_millis(25), ..Behavior::default() };
        let fake = if kind == RemoteKind::Comfyui {
            FakeEngine::comfyui(slow).await.unwrap()
        } else {
            FakeEngine::a1111(slow).await.unwrap()
        };
        let engine = RemoteEngine::new(config("e", kind, &fake.url)).unwrap();
        let req = request(json!({}));
        let rec = Recorder::default();
        let cancel = CancellationToken::new();
        let stopper = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            stopper.cancel();
        });
        let started = std::time::Instant::now();
        let out = engine.run(&req, &rec, &cancel).await;
        assert!(matches!(out, Err(EngineError::Cancelled)), "{kind:?}: {out:?}");
        assert!(started.elapsed() < Duration::from_secs(3), "cancel is prompt");
        assert!(rec.0.lock().unwrap().iter().any(|f| *f > 0.0), "{kind:?}: progress before the cancel");
        if kind == RemoteKind::Comfyui {
            assert_eq!(fake.count("POST /interrupt"), 1, "{:?}", fake.calls());
            let prompt_id = fake.last_body("POST /interrupt").unwrap()["prompt_id"].clone();
            assert_eq!(fake.last_body("POST /queue").unwrap()["delete"], json!([prompt_id]));
        } else {
            assert_eq!(fake.count("POST /sdapi/v1/interrupt"), 1, "{:?}", fake.calls());
        }
        assert_eq!(engine.breaker().state(), BreakerState::Closed, "a cancel is not a failure");
    }
}

#[tokio::test]
async fn a1111_request_progress_and_errors() {
    let fake = FakeEngine::a1111(Behavior { steps: 12, step_delay: Duration::from_millis(60), ..Behavior::default() })
        .await
        .unwrap();
    let engine = RemoteEngine::new(config("forge", RemoteKind::A1111, &fake.url)).unwrap();
    let req = request(json!({ "loras": [{ "name": "ink", "weight": 0.5 }], "scheduler": "dpmpp_2m" }));
    let (out, fractions) = run(&engine, &req).await;
    let out = out.unwrap();
    assert_eq!(out.len(), 2, "the grid is dropped");
    assert_eq!((out[0].width, out[0].height), (Some(128), Some(96)));
    assert!(fractions.iter().any(|f| *f > 0.0 && *f < 1.0), "polled progress relayed: {fractions:?}");
    let body = fake.last_body("POST /sdapi/v1/txt2img").unwrap();
    assert_eq!(body["prompt"], "a lighthouse at dusk <lora:ink:0.5>");
    assert_eq!(
        (body["sampler_name"].as_str(), body["batch_size"].as_u64(), body["seed"].as_i64()),
        (Some("DPM++ 2M"), Some(2), Some(11))
    );
    assert_eq!(body["override_settings"]["sd_model_checkpoint"], "sdxl");
    assert_eq!(body["cfg_scale"], 6.0);
    assert!(engine.check_health().await);

    let fake = FakeEngine::a1111(Behavior { failure: Some(Failure::Execution), ..Behavior::default() }).await.unwrap();
    let engine = RemoteEngine::new(config("forge", RemoteKind::A1111, &fake.url)).unwrap();
    let (code, retryable, message) = failed(&run(&engine, &request(json!({}))).await.0.unwrap_err());
    assert_eq!((code.as_str(), retryable), ("engine_unavailable", true), "5xx is retryable");
    assert!(message.contains("CUDA out of memory"), "{message}");
    let fake = FakeEngine::a1111(Behavior { failure: Some(Failure::BadRequest), ..Behavior::default() }).await.unwrap();
    let engine = RemoteEngine::new(config("forge", RemoteKind::A1111, &fake.url)).unwrap();
    let (code, retryable, message) = failed(&run(&engine, &request(json!({}))).await.0.unwrap_err());
    assert_eq!((code.as_str(), retryable), ("engine_error", false));
    assert!(message.contains("422") && message.contains("not a valid integer"), "{message}");
}

#[tokio::test]
async fn openai_images_with_a_key_and_its_errors() {
    let fake = FakeEngine::openai(Behavior { api_key: Some("sk-test".into()), ..Behavior::default() }).await.unwrap();
    let mut cfg = config("oai", RemoteKind::Openai, &fake.url);
    cfg.models = vec!["gpt-image-1".into()];
    let engine = RemoteEngine::new(cfg.clone()).unwrap();
    let (code, retryable, message) = failed(&run(&engine, &request(json!({}))).await.0.unwrap_err());
    assert_eq!(
        (code.as_str(), retryable, message.as_str()),
        ("engine_error", false, "HTTP 401: Incorrect API key provided.")
    );
    cfg.api_key = Some("sk-test".into());
    let engine = RemoteEngine::new(cfg).unwrap();
    let (out, fractions) = run(&engine, &request(json!({}))).await;
    assert_eq!(out.unwrap().len(), 2);
    assert_eq!(fractions.last(), Some(&1.0));
    let body = fake.last_body("POST /v1/images/generations").unwrap();
    assert_eq!(
        body,
        json!({ "model": "gpt-image-1", "prompt": "a lighthouse at dusk", "n": 2, "size": "128x96", "response_format": "b64_json" })
    );
    assert!(engine.check(&request(json!({ "loras": [{ "name": "x" }] }))).is_err(), "no LoRAs on OpenAI");
}

#[tokio::test]
async fn fails_over_from_a_dead_engine_and_the_breaker_opens_then_closes() {
    let live = FakeEngine::openai(Behavior::default()).await.unwrap();
    let dead = dead_url().await.unwrap();
    let pool = RemotePool::new(vec![
        RemoteEngine::new(config("dead", RemoteKind::Openai, &dead)).unwrap(),
        RemoteEngine::new(config("live", RemoteKind::Openai, &live.url)).unwrap(),
    ]);
    let routed = pool.routed();
    let (dead_engine, live_engine) = (&routed[0], &routed[1]);
    assert_eq!(dead_engine.name(), "dead");

    // Routed to `dead` (first serving sdxl): the attempt fails over to `live` within the same run.
    for _ in 0..2 {
        let (out, _) = run(dead_engine, &request(json!({ "model_name": "sdxl" }))).await;
        let out = out.unwrap();
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|o| o.engine.as_deref() == Some("live")), "outputs name the engine that drew them");
    }
    assert_eq!(live.count("POST /v1/images/generations"), 2);
    let dead_member = pool.get("dead").unwrap();
    assert_eq!(dead_member.breaker().state(), BreakerState::Open, "two connection failures open it");
    let h = dead_member.health();
    assert!(h.last_error.as_deref().is_some_and(|e| e.contains("cannot connect")), "{h:?}");

    // While open, `dead` is skipped without a connection attempt; naming it disables fail-over.
    let (out, _) = run(dead_engine, &request(json!({}))).await;
    assert!(out.is_ok());
    let (out, _) = run(dead_engine, &request(json!({ "engine": "dead" }))).await;
    let (code, retryable, message) = failed(&out.unwrap_err());
    assert_eq!((code.as_str(), retryable), ("engine_unavailable", true));
    assert!(message.contains("circuit breaker open"), "{message}");
    let direct = live_engine.run(&request(json!({})), &Recorder::default(), &CancellationToken::new()).await;
    assert!(direct.unwrap().iter().all(|o| o.engine.is_none()), "no fail-over, nothing to record");

    // After the cool-down one trial goes through; a failed trial re-opens, a success closes.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(dead_member.breaker().state(), BreakerState::HalfOpen);
    let (out, _) = run(dead_engine, &request(json!({ "engine": "dead" }))).await;
    assert!(failed(&out.unwrap_err()).2.contains("cannot connect"));
    assert_eq!(dead_member.breaker().state(), BreakerState::Open);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(dead_member.breaker().try_acquire());
    dead_member.breaker().record_success();
    assert_eq!(dead_member.breaker().state(), BreakerState::Closed);

    // Health checks see the dead one down, the live one up.
    pool.check_all().await;
    let health = pool.health();
    assert_eq!((health[0].status, health[1].status), ("down", "up"));
    assert!(health[1].latency_ms.is_some());
}

#[tokio::test]
async fn the_concurrency_limit_holds() {
    let fake = FakeEngine::openai(Behavior { steps: 5, step_delay: Duration::from_millis(40), ..Behavior::default() })
        .await
        .unwrap();
    let mut cfg = config("oai", RemoteKind::Openai, &fake.url);
    cfg.max_concurrency = 1;
    let engine = Arc::new(RemoteEngine::new(cfg).unwrap());
    let req = request(json!({ "num_images": 1 }));
    let started = std::time::Instant::now();
    let (a, b) = tokio::join!(run(engine.as_ref(), &req), run(engine.as_ref(), &req));
    assert!(a.0.is_ok() && b.0.is_ok());
    assert!(started.elapsed() >= Duration::from_millis(390), "two 200 ms requests ran one after the other");
}

/// Opt-in: a real server. Prints a note and passes when the variable is unset.
async fn real(kind: RemoteKind, var: &str) {
    let Ok(url) = std::env::var(var) else {
        eprintln!("skipped: set {var} (and {var}_MODEL) to run against a real server");
        return;
    };
    let mut cfg = config("real", kind, &url);
    cfg.timeout = Duration::from_secs(300);
    if let Ok(model) = std::env::var(format!("{var}_MODEL")) {
        cfg.models = vec![model];
    }
    let engine = RemoteEngine::new(cfg).unwrap();
    assert!(engine.check_health().await, "{:?}", engine.health());
    let req = request(
        json!({ "width": 512, "height": 512, "num_images": 1, "num_inference_steps": 4, "negative_prompt": "" }),
    );
    let (out, fractions) = run(&engine, &req).await;
    let out = out.unwrap();
    assert_eq!(out.len(), 1);
    assert!(out[0].bytes.len() > 1000 && !fractions.is_empty());
}

#[tokio::test]
async fn real_comfyui_when_configured() {
    real(RemoteKind::Comfyui, "SEIDRA_TEST_COMFYUI_URL").await;
}

#[tokio::test]
async fn real_a1111_when_configured() {
    real(RemoteKind::A1111, "SEIDRA_TEST_A1111_URL").await;
}

/// A 128×96 init image (what the worker hands over: already at the requested size).
fn init_image() -> InitImage {
    let rgb: Vec<u8> = (0..128 * 96).flat_map(|i: u32| [(i % 128) as u8 * 2, 90, 200]).collect();
    InitImage::from_rgb(128, 96, rgb).unwrap()
}

async fn run_img2img(
    engine: &dyn GenerationEngine,
    req: &ImageRequest,
    init: &InitImage,
) -> (Result<Vec<seidra_engines::EngineOutput>, EngineError>, Vec<f32>) {
    let rec = Recorder::default();
    let out = engine.run_img2img(req, init, &rec, &CancellationToken::new()).await;
    let fractions = rec.0.lock().unwrap().clone();
    (out, fractions)
}

fn img2img_request(extra: serde_json::Value) -> ImageRequest {
    let mut req = request(extra);
    req.init_image = Some(uuid::Uuid::now_v7());
    req
}

#[tokio::test]
async fn a1111_img2img_sends_the_init_image_and_strength() {
    let fake = FakeEngine::a1111(Behavior { steps: 6, step_delay: Duration::from_millis(60), ..Behavior::default() })
        .await
        .unwrap();
    let engine = RemoteEngine::new(config("forge", RemoteKind::A1111, &fake.url)).unwrap();
    assert!(engine.capabilities().supports_img2img);
    let init = init_image();
    let req = img2img_request(json!({ "strength": 0.35, "loras": [{ "name": "ink", "weight": 0.5 }] }));
    let (out, fractions) = run_img2img(&engine, &req, &init).await;
    let out = out.unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!((out[0].width, out[0].height), (Some(128), Some(96)));
    assert!(fractions.iter().any(|f| *f > 0.0 && *f < 1.0), "polled progress relayed: {fractions:?}");
    assert_eq!(fake.count("POST /sdapi/v1/txt2img"), 0);
    let body = fake.last_body("POST /sdapi/v1/img2img").unwrap();
    let sent = base64::engine::general_purpose::STANDARD.decode(body["init_images"][0].as_str().unwrap()).unwrap();
    assert_eq!(sent, init.png().unwrap(), "the init image is sent as base64 PNG");
    assert_eq!(body["denoising_strength"].as_f64().map(|s| (s * 100.0).round()), Some(35.0));
    assert_eq!(
        (body["width"].as_u64(), body["height"].as_u64(), body["steps"].as_u64()),
        (Some(128), Some(96), Some(5))
    );
    assert_eq!(body["prompt"], "a lighthouse at dusk <lora:ink:0.5>");
    assert_eq!(body["override_settings"]["sd_model_checkpoint"], "sdxl");

    // The default strength, and the fake's own 422 when init_images is missing (as FastAPI answers).
    let (out, _) = run_img2img(&engine, &img2img_request(json!({})), &init).await;
    assert_eq!(out.unwrap().len(), 2);
    let body = fake.last_body("POST /sdapi/v1/img2img").unwrap();
    assert_eq!(body["denoising_strength"].as_f64().map(|s| (s * 100.0).round()), Some(75.0));
    let bare = reqwest::Client::new()
        .post(format!("{}/sdapi/v1/img2img", fake.url))
        .json(&json!({ "prompt": "x", "width": 64, "height": 64 }))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status().as_u16(), 422);

    // Text-to-image `run` refuses a request that names an init image (it would be lost).
    let (out, _) = run(&engine, &req).await;
    assert!(matches!(out, Err(EngineError::Invalid(e)) if e.field == "init_image"));
}

#[tokio::test]
async fn comfyui_img2img_uploads_the_image_and_loads_it() {
    let fake = FakeEngine::comfyui(Behavior { steps: 4, ..Behavior::default() }).await.unwrap();
    let engine = RemoteEngine::new(config("comfy", RemoteKind::Comfyui, &fake.url)).unwrap();
    assert!(engine.capabilities().supports_img2img);
    let init = init_image();
    let req = img2img_request(json!({ "strength": 0.6, "loras": [{ "name": "ink", "weight": 0.7 }] }));
    let (out, fractions) = run_img2img(&engine, &req, &init).await;
    let out = out.unwrap();
    assert_eq!(out.len(), 2, "RepeatLatentBatch makes the batch");
    assert_eq!((out[0].width, out[0].height), (Some(128), Some(96)), "the size of the loaded image");
    assert!(fractions.contains(&0.5), "{fractions:?}");
    let calls = fake.calls();
    let pos = |c: &str| calls.iter().position(|x| x == c);
    assert!(pos("POST /upload/image") < pos("POST /prompt"), "{calls:?}");
    let uploads = fake.uploads();
    assert_eq!(uploads.len(), 1);
    let (name, bytes) = uploads.into_iter().next().unwrap();
    assert_eq!(bytes, init.png().unwrap(), "the init image is uploaded as PNG");
    let wf = &fake.last_body("POST /prompt").unwrap()["prompt"];
    let load = wf.as_object().unwrap().values().find(|n| n["class_type"] == "LoadImage").unwrap();
    assert_eq!(load["inputs"]["image"], name.as_str(), "LoadImage uses the uploaded name");
    let sampler = wf.as_object().unwrap().values().find(|n| n["class_type"] == "KSampler").unwrap();
    assert_eq!(sampler["inputs"]["denoise"].as_f64().map(|d| (d * 10.0).round()), Some(6.0));
    assert_eq!(sampler["inputs"]["model"], json!(["seidra_lora_0", 0]));
    assert!(!wf.as_object().unwrap().values().any(|n| n["class_type"] == "EmptyLatentImage"));

    // A custom text-to-image template cannot start from an image: refused, never ignored.
    let mut cfg = config("custom", RemoteKind::Comfyui, &fake.url);
    cfg.workflow = Some(serde_json::from_str(seidra_engines::remote::comfyui::BUILTIN_WORKFLOW).unwrap());
    let custom = RemoteEngine::new(cfg).unwrap();
    assert!(!custom.capabilities().supports_img2img);
    assert_eq!(custom.check(&req).unwrap_err().field, "init_image");
}

#[tokio::test]
async fn openai_refuses_img2img() {
    let fake = FakeEngine::openai(Behavior::default()).await.unwrap();
    let mut cfg = config("oai", RemoteKind::Openai, &fake.url);
    cfg.models = vec!["gpt-image-1".into()];
    let engine = RemoteEngine::new(cfg).unwrap();
    assert!(!engine.capabilities().supports_img2img);
    let req = img2img_request(json!({}));
    assert_eq!(engine.check(&req).unwrap_err().field, "init_image");
    let (out, _) = run_img2img(&engine, &req, &init_image()).await;
    assert!(matches!(out, Err(EngineError::Invalid(e)) if e.field == "init_image"));
    assert_eq!(fake.count("POST /v1/images/generations"), 0, "nothing sent");
}
