//! The SadTalker-compatible talking-head engine against a fake server speaking the protocol
//! (multipart fields validated like the wrapper, a real MP4 made by ffmpeg from the inputs):
//! the video and its streams, the parameters sent, 4xx refusals, 5xx and dropped connections
//! (retryable, failed over), cancel, the breaker, and the image router refusing it. Set
//! `SEIDRA_TEST_SADTALKER_URL` to also render once on a real server.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "tests")]

use std::sync::Mutex;
use std::time::{Duration, Instant};

use seidra_core::job::ImageRequest;
use seidra_core::talking_head::{Enhancer, Preprocess, TalkingHeadParams};
use seidra_engines::remote::{BreakerState, RemoteConfig, RemoteEngine, RemoteKind, RemotePool, TalkingHeadInput};
use seidra_engines::{CancellationToken, EngineError, EngineOutput, GenerationEngine, Progress, ProgressSink};
use seidra_testkit::fake_engines::{Behavior, Failure, FakeEngine, dead_url, png};
use serde_json::json;

#[derive(Default)]
struct Stages(Mutex<Vec<(f32, String)>>);

impl ProgressSink for Stages {
    fn report(&self, progress: Progress) {
        self.0.lock().unwrap().push((progress.fraction, progress.stage));
    }
}

fn config(name: &str, url: &str) -> RemoteConfig {
    RemoteConfig {
        name: name.into(),
        kind: RemoteKind::Sadtalker,
        base_url: url.into(),
        api_key: None,
        models: vec!["sadtalker".into()],
        max_concurrency: 2,
        timeout: Duration::from_secs(60),
        workflow: None,
        breaker_failures: 2,
        breaker_cooldown: Duration::from_millis(300),
    }
}

/// A 330 Hz tone of `secs` seconds as a WAV, made by ffmpeg.
fn tone(secs: f64) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tone.wav");
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", &format!("sine=frequency=330:duration={secs}"), "-y"])
        .arg(&out)
        .status()
        .expect("ffmpeg is required by the talking-head tests");
    assert!(status.success());
    std::fs::read(out).unwrap()
}

fn input(secs: f64) -> TalkingHeadInput {
    TalkingHeadInput {
        image: png(96, 128, 90),
        image_mime: "image/png".into(),
        audio: tone(secs),
        audio_mime: "audio/wav".into(),
        params: TalkingHeadParams::default(),
    }
}

async fn render(
    pool: &RemotePool,
    engine: &str,
    pinned: bool,
    input: &TalkingHeadInput,
) -> (Result<Vec<EngineOutput>, EngineError>, Vec<(f32, String)>) {
    let stages = Stages::default();
    let out = pool.talking_head(engine, "sadtalker", pinned, input, &stages, &CancellationToken::new()).await;
    let seen = stages.0.lock().unwrap().clone();
    (out, seen)
}

fn failed(err: &EngineError) -> (String, bool, String) {
    match err {
        EngineError::Failed { code, retryable, message } => (code.clone(), *retryable, message.clone()),
        other => (format!("{other:?}"), false, String::new()),
    }
}

#[tokio::test]
async fn renders_a_playable_mp4_as_long_as_the_audio() {
    let fake =
        FakeEngine::sadtalker(Behavior { steps: 4, step_delay: Duration::from_millis(100), ..Behavior::default() })
            .await
            .unwrap();
    let pool = RemotePool::new(vec![RemoteEngine::new(config("talker", &fake.url)).unwrap()]);
    let mut input = input(1.6);
    input.params = TalkingHeadParams {
        preprocess: Preprocess::Full,
        still: true,
        enhancer: Enhancer::Gfpgan,
        pose_style: 12,
        expression_scale: 1.25,
        size: 512,
        batch_size: 4,
    };
    let (out, stages) = render(&pool, "talker", true, &input).await;
    let out = out.unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].mime.as_str(), out[0].engine.as_deref()), ("video/mp4", None));
    let (duration, streams) = seidra_testkit::ffprobe(&out[0].bytes);
    assert!((duration - 1.6).abs() <= 0.2, "duration {duration} ≈ 1.6 s of audio");
    let video: Vec<_> = streams.iter().filter(|s| s.0 == "video").collect();
    let audio: Vec<_> = streams.iter().filter(|s| s.0 == "audio").collect();
    assert_eq!((video.len(), audio.len()), (1, 1), "{streams:?}");
    assert_eq!((video[0].1.as_str(), video[0].2, video[0].3), ("h264", 512, 512));
    assert_eq!(audio[0].1, "aac");

    // Every parameter went out under inference.py's name, with the two files.
    let sent = fake.last_body("POST /generate").unwrap();
    assert_eq!(sent["preprocess"], "full");
    assert_eq!(sent["still"], "true");
    assert_eq!(sent["enhancer"], "gfpgan");
    assert_eq!(sent["pose_style"], "12");
    assert_eq!(sent["expression_scale"], "1.25");
    assert_eq!(sent["size"], "512");
    assert_eq!(sent["batch_size"], "4");
    assert_eq!(sent["source_image"]["content_type"], "image/png");
    assert_eq!(sent["source_image"]["bytes"].as_u64(), Some(input.image.len() as u64));
    assert_eq!(sent["driven_audio"]["content_type"], "audio/wav");

    // Stages in order, fractions never going back.
    let names: Vec<&str> = stages.iter().map(|(_, s)| s.as_str()).collect();
    for stage in ["uploading", "rendering", "downloading"] {
        assert!(names.contains(&stage), "{stage} reported: {names:?}");
    }
    let first = |s: &str| names.iter().position(|n| *n == s).unwrap();
    assert!(first("uploading") < first("rendering") && first("rendering") < first("downloading"), "{names:?}");
    assert!(stages.windows(2).all(|w| w[0].0 <= w[1].0), "monotonic: {stages:?}");

    let engine = pool.get("talker").unwrap();
    assert!(engine.check_health().await);
    assert_eq!(fake.count("GET /health"), 1);
}

#[tokio::test]
async fn refusals_are_final_and_carry_the_detail() {
    // 400 from the wrapper (no face): not retryable, the detail in the message.
    let fake =
        FakeEngine::sadtalker(Behavior { failure: Some(Failure::BadRequest), ..Behavior::default() }).await.unwrap();
    let pool = RemotePool::new(vec![RemoteEngine::new(config("talker", &fake.url)).unwrap()]);
    let (code, retryable, message) = failed(&render(&pool, "talker", false, &input(0.5)).await.0.unwrap_err());
    assert_eq!((code.as_str(), retryable), ("engine_error", false));
    assert!(message.contains("HTTP 400") && message.contains("No face is detected"), "{message}");

    // The wrapper validates its fields like FastAPI: 422 naming the field.
    let fake = FakeEngine::sadtalker(Behavior::default()).await.unwrap();
    let pool = RemotePool::new(vec![RemoteEngine::new(config("talker", &fake.url)).unwrap()]);
    let mut bad = input(0.5);
    bad.params.pose_style = 46;
    let (code, retryable, message) = failed(&render(&pool, "talker", false, &bad).await.0.unwrap_err());
    assert_eq!((code.as_str(), retryable), ("engine_error", false));
    assert!(message.contains("HTTP 422") && message.contains("pose_style"), "{message}");
    let mut bad = input(0.5);
    bad.audio = b"not audio at all".to_vec();
    let (_, _, message) = failed(&render(&pool, "talker", false, &bad).await.0.unwrap_err());
    assert!(message.contains("driven_audio"), "{message}");
    // A refusal is the request's fault: the breaker stays closed.
    assert_eq!(pool.get("talker").unwrap().breaker().state(), BreakerState::Closed);
}

#[tokio::test]
async fn server_errors_and_disconnects_are_retryable_and_fail_over() {
    // 5xx and a connection dropped halfway through the video: retryable.
    for failure in [Failure::Execution, Failure::Disconnect] {
        let fake = FakeEngine::sadtalker(Behavior { failure: Some(failure), ..Behavior::default() }).await.unwrap();
        let pool = RemotePool::new(vec![RemoteEngine::new(config("talker", &fake.url)).unwrap()]);
        let (code, retryable, message) = failed(&render(&pool, "talker", true, &input(0.5)).await.0.unwrap_err());
        assert_eq!((code.as_str(), retryable), ("engine_unavailable", true), "{failure:?}: {message}");
    }

    // Dead first engine, dropping second, healthy third: the render lands on the third and
    // names it; the next two requests open the dead one's breaker (2 failures).
    let dead = dead_url().await.unwrap();
    let dropping =
        FakeEngine::sadtalker(Behavior { failure: Some(Failure::Disconnect), ..Behavior::default() }).await.unwrap();
    let good = FakeEngine::sadtalker(Behavior::default()).await.unwrap();
    // A long cool-down, so the breaker is still open when checked after two renders.
    let dead_config = RemoteConfig { breaker_cooldown: Duration::from_secs(60), ..config("dead", &dead) };
    let pool = RemotePool::new(vec![
        RemoteEngine::new(dead_config).unwrap(),
        RemoteEngine::new(config("dropping", &dropping.url)).unwrap(),
        RemoteEngine::new(config("good", &good.url)).unwrap(),
    ]);
    let (out, _) = render(&pool, "dead", false, &input(0.5)).await;
    let out = out.unwrap();
    assert_eq!(out[0].engine.as_deref(), Some("good"));
    assert_eq!((dropping.count("POST /generate"), good.count("POST /generate")), (1, 1));
    let _ = render(&pool, "dead", false, &input(0.5)).await.0.unwrap();
    assert_eq!(pool.get("dead").unwrap().breaker().state(), BreakerState::Open);

    // A named (pinned) engine does not fail over.
    let (err, _) = render(&pool, "dropping", true, &input(0.5)).await;
    assert_eq!(failed(&err.unwrap_err()).0, "engine_unavailable");
    assert_eq!(good.count("POST /generate"), 2);
}

#[tokio::test]
async fn cancel_drops_the_request_promptly() {
    let slow = Behavior { steps: 200, step_delay: Duration::from_millis(50), ..Behavior::default() };
    let fake = FakeEngine::sadtalker(slow).await.unwrap();
    let pool = RemotePool::new(vec![RemoteEngine::new(config("talker", &fake.url)).unwrap()]);
    let input = input(0.5);
    let cancel = CancellationToken::new();
    let stopper = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        stopper.cancel();
    });
    let started = Instant::now();
    let out = pool.talking_head("talker", "sadtalker", true, &input, &Stages::default(), &cancel).await;
    assert_eq!(out.unwrap_err(), EngineError::Cancelled);
    assert!(started.elapsed() < Duration::from_secs(2), "stopped in {:?}", started.elapsed());
    // The server sees the client go away mid-render (the protocol's cancel).
    let deadline = Instant::now() + Duration::from_secs(5);
    while fake.count("ABORTED /generate") == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(fake.count("ABORTED /generate"), 1, "{:?}", fake.calls());
    // A cancel is nobody's failure.
    assert_eq!(pool.get("talker").unwrap().breaker().state(), BreakerState::Closed);
}

#[tokio::test]
async fn the_image_router_refuses_a_talking_head_engine() {
    let fake = FakeEngine::sadtalker(Behavior::default()).await.unwrap();
    let engine = RemoteEngine::new(config("talker", &fake.url)).unwrap();
    assert_eq!(engine.capabilities().job_types, vec!["talking_head".to_owned()]);
    let req: ImageRequest = serde_json::from_value(json!({ "prompt": "a face" })).unwrap();
    assert_eq!(engine.check(&req).unwrap_err().field, "engine");
    let out = engine.run(&req, &Stages::default(), &CancellationToken::new()).await;
    assert!(matches!(out, Err(EngineError::Invalid(_))), "{out:?}");
    assert_eq!(fake.count("POST /generate"), 0);
}

/// Opt-in: one render on a real SadTalker-compatible server at `SEIDRA_TEST_SADTALKER_URL`
/// (`SEIDRA_TEST_SADTALKER_IMAGE`: a portrait to use instead of a flat PNG, which has no face).
#[tokio::test]
async fn real_sadtalker_when_configured() {
    let Ok(url) = std::env::var("SEIDRA_TEST_SADTALKER_URL") else {
        eprintln!("SEIDRA_TEST_SADTALKER_URL is not set; skipping the real SadTalker test");
        return;
    };
    let mut cfg = config("real", &url);
    cfg.timeout = Duration::from_secs(900);
    let pool = RemotePool::new(vec![RemoteEngine::new(cfg).unwrap()]);
    assert!(pool.get("real").unwrap().check_health().await, "GET {url}/health");
    let mut input = input(2.0);
    if let Ok(path) = std::env::var("SEIDRA_TEST_SADTALKER_IMAGE") {
        input.image = std::fs::read(&path).unwrap();
        input.image_mime = if path.ends_with(".png") { "image/png" } else { "image/jpeg" }.into();
    }
    let (out, stages) = render(&pool, "real", true, &input).await;
    let out = out.unwrap_or_else(|e| panic!("real SadTalker failed: {e}"));
    let (duration, streams) = seidra_testkit::ffprobe(&out[0].bytes);
    assert!((duration - 2.0).abs() <= 0.3, "duration {duration}");
    assert!(streams.iter().any(|s| s.0 == "video") && streams.iter().any(|s| s.0 == "audio"), "{streams:?}");
    eprintln!("real SadTalker: {} bytes, {duration:.2} s, {} progress reports", out[0].bytes.len(), stages.len());
}
