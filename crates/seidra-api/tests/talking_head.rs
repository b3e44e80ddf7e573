//! Talking-head videos end to end on SQLite and PostgreSQL: `POST /api/generate/video` → worker
//! → a fake SadTalker-compatible server (real MP4s from ffmpeg) → a `video` media item with its
//! duration and provenance; text spoken first with espeak-ng; the persona's avatar and voice;
//! every validation error naming its field, other users' media refused; engine refusals (final),
//! server errors (retried), cancel (the request is dropped) and idempotent submits.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "test helpers panic on broken fixtures")]

use std::io::Cursor;
use std::time::{Duration, Instant};

use seidra_config::{RemoteEngineKind, RemoteEngineSettings};
use seidra_store::Backend;
use seidra_testkit::fake_engines::remote_engine;
use seidra_testkit::fake_engines::{Behavior, Failure, FakeEngine};
use seidra_testkit::{TestServer, dual_test};
use serde_json::{Value, json};

const PASSWORD: &str = "a-long-enough-passphrase";
const WAIT: Duration = Duration::from_secs(120);

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

fn remote(name: &str, url: &str) -> RemoteEngineSettings {
    // A render takes longer than an image: 120 s.
    RemoteEngineSettings { timeout_secs: 120, ..remote_engine(name, RemoteEngineKind::Sadtalker, url, &["sadtalker"]) }
}

fn portrait() -> Vec<u8> {
    let img = image::RgbImage::from_fn(96, 128, |x, y| image::Rgb([(x * 2) as u8, (y * 2) as u8, 140]));
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img).write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out
}

fn tone(secs: f64) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tone.wav");
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", &format!("sine=frequency=330:duration={secs}"), "-y"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(out).unwrap()
}

async fn upload(server: &TestServer, token: &str, name: &str, mime: &str, body: Vec<u8>) -> String {
    s(&server.upload(token, name, mime, &body).await["id"])
}

async fn download(server: &TestServer, url: &Value) -> Vec<u8> {
    let resp = server.client.get(server.url(&s(url))).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    resp.bytes().await.unwrap().to_vec()
}

async fn finished(server: &TestServer, token: &str, id: &str) -> Value {
    server
        .wait_job(token, id, WAIT, |j| {
            ["succeeded", "failed", "cancelled"].contains(&j["status"].as_str().unwrap_or(""))
        })
        .await
        .unwrap()
}

async fn talking_head_videos(backend: Backend) -> anyhow::Result<()> {
    seidra_testkit::require_av_tools();
    let steady = Behavior { steps: 4, step_delay: Duration::from_millis(100), ..Behavior::default() };
    let talker = FakeEngine::sadtalker(steady.clone()).await?;
    let picky = FakeEngine::sadtalker(Behavior { failure: Some(Failure::BadRequest), ..steady.clone() }).await?;
    let crashing = FakeEngine::sadtalker(Behavior { failure: Some(Failure::Disconnect), ..steady.clone() }).await?;
    let slow = FakeEngine::sadtalker(Behavior { steps: 400, step_delay: Duration::from_millis(50), ..steady }).await?;
    let server = TestServer::builder(backend)
        .settings(|s| {
            s.engines.remote = vec![
                remote("talker", &talker.url),
                remote("picky", &picky.url),
                remote("crashing", &crashing.url),
                remote("slow", &slow.url),
            ];
        })
        .with_workers(1)
        .start()
        .await?;
    let tara = s(&server.register("tara", PASSWORD).await?["access_token"]);
    let bo = s(&server.register("bodil", PASSWORD).await?["access_token"]);
    let face = upload(&server, &tara, "face.png", "image/png", portrait()).await;
    let voice = upload(&server, &tara, "voice.wav", "audio/wav", tone(1.5)).await;
    let bo_face = upload(&server, &bo, "mine.png", "image/png", portrait()).await;
    let mut ws = server.ws(&tara).await?;

    // Image + audio: a video item as long as the audio, with its provenance.
    let body =
        json!({ "image": face, "audio": voice, "engine": "talker", "pose_style": 5, "still": true, "size": 256 });
    let (status, resp) = server.post("/api/generate/video", Some(&tara), &body).await?;
    assert_eq!(status, 202, "{resp}");
    let job = &resp["jobs"][0];
    assert_eq!((job["job_type"].as_str(), job["engine"].as_str()), (Some("talking_head"), Some("talker")));
    let id = s(&job["id"]);
    let stages: Vec<String> = {
        let mut seen = Vec::new();
        let deadline = Instant::now() + WAIT;
        loop {
            let ev = ws.next(Duration::from_secs(30)).await?.expect("an event");
            if ev["job_id"] == id.as_str() && ev["type"] == "job.progress" {
                seen.push(s(&ev["data"]["stage"]));
            }
            if (ev["job_id"] == id.as_str() && ev["type"] == "job.succeeded") || Instant::now() > deadline {
                break seen;
            }
        }
    };
    assert!(stages.iter().any(|st| st == "rendering"), "progress stages: {stages:?}");
    let job = finished(&server, &tara, &id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let out = &job["outputs"][0];
    assert_eq!(
        (out["mime"].as_str(), out["width"].as_i64(), out["height"].as_i64()),
        (Some("video/mp4"), Some(256), Some(256))
    );
    let (duration, streams) = seidra_testkit::ffprobe(&download(&server, &out["url"]).await);
    assert!((duration - 1.5).abs() <= 0.2, "{duration} s for 1.5 s of audio");
    assert_eq!(streams.iter().filter(|st| st.0 == "video").count(), 1, "{streams:?}");
    assert_eq!(streams.iter().filter(|st| st.0 == "audio").count(), 1, "{streams:?}");
    let (_, item) = server.get(&format!("/api/media/{}", s(&out["media_id"])), Some(&tara)).await?;
    assert_eq!((item["kind"].as_str(), item["engine"].as_str()), (Some("video"), Some("talker")), "{item}");
    assert!((item["duration_secs"].as_f64().unwrap() - duration).abs() < 0.05, "{item}");
    assert_eq!(item["parameters"]["image"], face.as_str(), "{item}");
    assert_eq!(item["parameters"]["audio"], voice.as_str());
    assert_eq!(item["parameters"]["params"]["pose_style"], 5);
    let sent = talker.last_body("POST /generate").unwrap();
    assert_eq!((sent["pose_style"].as_str(), sent["still"].as_str()), (Some("5"), Some("true")));

    // Text → speech (espeak-ng) with the persona's voice, on the persona's avatar.
    let persona = json!({ "name": "Guide", "voice": { "voice": "en-gb", "rate": 1.5 }, "video": { "avatar": face } });
    let (status, p) = server.post("/api/personas", Some(&tara), &persona).await?;
    assert_eq!(status, 201, "{p}");
    let body = json!({ "persona_id": p["id"], "text": "Hello, I am your guide for today." });
    let (status, resp) = server.post("/api/generate/video", Some(&tara), &body).await?;
    assert_eq!(status, 202, "{resp}");
    let request = &resp["jobs"][0]["request"];
    assert_eq!(request["image"], face.as_str(), "the avatar is the default image");
    assert_eq!((request["speech"]["voice"].as_str(), request["speech"]["rate"].as_f64()), (Some("en-gb"), Some(1.5)));
    assert_eq!(resp["jobs"][0]["persona_id"], p["id"]);
    let job = finished(&server, &tara, &s(&resp["job_ids"][0])).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let (duration, _) = seidra_testkit::ffprobe(&download(&server, &job["outputs"][0]["url"]).await);
    assert!(duration > 1.0, "spoken text lasts {duration} s");
    let sent = talker.last_body("POST /generate").unwrap();
    assert_eq!(sent["driven_audio"]["content_type"], "audio/wav");

    // Idempotency: the same key and body are the same job.
    let body = json!({ "image": face, "audio": voice });
    let post_idem = |key: &'static str| {
        let (server, tara, body) = (&server, tara.clone(), body.clone());
        async move {
            let resp = server
                .client
                .post(server.url("/api/generate/video"))
                .bearer_auth(&tara)
                .header("idempotency-key", key)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap())
        }
    };
    let (first, a) = post_idem("th-1").await;
    let (again, b) = post_idem("th-1").await;
    assert_eq!((first, again), (202, 200));
    assert_eq!(a["job_ids"], b["job_ids"]);
    finished(&server, &tara, &s(&a["job_ids"][0])).await;

    // Validation errors name their field; other users' media do not exist.
    let tara_face = face.clone();
    for (token, body, field) in [
        (&tara, json!({ "audio": voice }), "image"),
        (&tara, json!({ "image": bo_face, "audio": voice }), "image"),
        (&bo, json!({ "image": bo_face, "audio": voice }), "audio"),
        (&bo, json!({ "image": tara_face, "text": "hi" }), "image"),
        (&tara, json!({ "image": voice, "audio": voice }), "image"),
        (&tara, json!({ "image": face, "audio": face }), "audio"),
        (&tara, json!({ "image": face }), "audio"),
        (&tara, json!({ "image": face, "audio": voice, "text": "hi" }), "text"),
        (&tara, json!({ "image": face, "audio": voice, "pose_style": 46 }), "pose_style"),
        (&tara, json!({ "image": face, "audio": voice, "expression_scale": 4 }), "expression_scale"),
        (&tara, json!({ "image": face, "audio": voice, "size": 1024 }), "size"),
        (&tara, json!({ "image": face, "audio": voice, "batch_size": 11 }), "batch_size"),
        (&tara, json!({ "image": face, "audio": voice, "preprocess": "zoom" }), "preprocess"),
        (&tara, json!({ "image": face, "audio": voice, "enhancer": "codeformer" }), "enhancer"),
        (&tara, json!({ "image": face, "audio": voice, "engine": "procedural" }), "engine"),
        (&tara, json!({ "image": face, "audio": voice, "duration": 5 }), "duration"),
        (&tara, json!({ "image": face, "text": "   " }), "text"),
        (&tara, json!({ "image": face, "text": "hi", "voice": "klingon-xx" }), "voice"),
        (&tara, json!({ "persona_id": p["id"], "image": "not-a-uuid", "audio": voice }), "image"),
    ] {
        let (status, err) = server.post("/api/generate/video", Some(token), &body).await?;
        assert_eq!(status, 422, "{body} → {err}");
        assert_eq!(err["error"]["field"].as_str(), Some(field), "{body} → {err}");
    }
    // A persona without an avatar needs an image; an avatar must be one of yours.
    let (_, bare) = server.post("/api/personas", Some(&tara), &json!({ "name": "Bare" })).await?;
    let (status, err) =
        server.post("/api/generate/video", Some(&tara), &json!({ "persona_id": bare["id"], "audio": voice })).await?;
    assert_eq!((status, err["error"]["field"].as_str()), (422, Some("image")), "{err}");
    let (status, err) =
        server.post("/api/personas", Some(&tara), &json!({ "name": "Thief", "video": { "avatar": bo_face } })).await?;
    assert_eq!((status, err["error"]["field"].as_str()), (422, Some("video.avatar")), "{err}");
    // Naming a talking-head engine for an image job is refused too.
    let (status, err) =
        server.post("/api/generate/single", Some(&tara), &json!({ "prompt": "x", "engine": "talker" })).await?;
    assert_eq!((status, err["error"]["field"].as_str()), (422, Some("engine")), "{err}");

    // The engine refuses the input (4xx): the job fails at once with its detail.
    let body = json!({ "image": face, "audio": voice, "engine": "picky" });
    let (_, resp) = server.post("/api/generate/video", Some(&tara), &body).await?;
    let job = finished(&server, &tara, &s(&resp["job_ids"][0])).await;
    assert_eq!((job["status"].as_str(), job["attempt"].as_i64()), (Some("failed"), Some(1)), "{job}");
    assert_eq!(
        (job["error"]["code"].as_str(), job["error"]["retryable"].as_bool()),
        (Some("engine_error"), Some(false))
    );
    assert!(s(&job["error"]["message"]).contains("No face is detected"), "{job}");

    // The server drops the connection: retryable, so the job goes back to the queue.
    let body = json!({ "image": face, "audio": voice, "engine": "crashing" });
    let (_, resp) = server.post("/api/generate/video", Some(&tara), &body).await?;
    let job = server.wait_job(&tara, &s(&resp["job_ids"][0]), WAIT, |j| j["status"] == "retrying").await?;
    assert_eq!(
        (job["error"]["code"].as_str(), job["error"]["retryable"].as_bool()),
        (Some("engine_unavailable"), Some(true))
    );
    server.post(&format!("/api/jobs/{}/cancel", s(&job["id"])), Some(&tara), &json!({})).await?;

    // Cancel while rendering: the job ends cancelled and the server sees the client leave.
    let body = json!({ "image": face, "audio": voice, "engine": "slow" });
    let (_, resp) = server.post("/api/generate/video", Some(&tara), &body).await?;
    let id = s(&resp["job_ids"][0]);
    server.wait_job(&tara, &id, WAIT, |j| j["stage"] == "rendering").await?;
    let started = Instant::now();
    let (status, _) = server.post(&format!("/api/jobs/{id}/cancel"), Some(&tara), &json!({})).await?;
    assert_eq!(status, 200);
    let job = finished(&server, &tara, &id).await;
    assert_eq!(job["status"], "cancelled", "{job}");
    assert!(started.elapsed() < Duration::from_secs(5), "cancelled in {:?}", started.elapsed());
    let deadline = Instant::now() + Duration::from_secs(5);
    while slow.count("ABORTED /generate") == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(slow.count("ABORTED /generate"), 1, "{:?}", slow.calls());
    server.stop().await
}

dual_test!(talking_head_videos);
