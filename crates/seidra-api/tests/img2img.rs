//! Image-to-image end to end: an image from the caller's library (generated or uploaded) as
//! `init_image` → worker loads it from storage → procedural, AUTOMATIC1111 and ComfyUI engines
//! (fakes) → outputs whose provenance records `init_image` and `strength`; and the 422s: another
//! user's or an unknown item, a non-image, `strength` alone, an engine without image-to-image.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "test helpers panic on broken fixtures")]

use std::io::Cursor;
use std::time::Duration;

use seidra_config::RemoteEngineKind;
use seidra_store::Backend;
use seidra_testkit::fake_engines::{Behavior, FakeEngine};
use seidra_testkit::{TestServer, dual_test};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const PASSWORD: &str = "a-long-enough-passphrase";

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

use seidra_testkit::fake_engines::remote_engine as remote;

/// A 200×150 photo-like PNG (gradients), a size different from the requests' so it is resized.
fn photo() -> Vec<u8> {
    let img = image::RgbImage::from_fn(200, 150, |x, y| image::Rgb([(x + 40) as u8, (y + 60) as u8, 180]));
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img).write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out
}

/// A short silent WAV (a library item that is not an image).
fn wav() -> Vec<u8> {
    let samples = 800u32;
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + samples * 2).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&16000u32.to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(samples * 2).to_le_bytes());
    w.resize(w.len() + (samples * 2) as usize, 0);
    w
}

fn rgb_of(png: &[u8]) -> image::RgbImage {
    image::load_from_memory(png).unwrap().to_rgb8()
}

fn mean_abs_diff(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    let (a, b) = (a.as_raw(), b.as_raw());
    a.iter().zip(b).map(|(x, y)| f64::from(x.abs_diff(*y))).sum::<f64>() / a.len() as f64
}

async fn upload(server: &TestServer, token: &str, name: &str, mime: &str, content: &[u8]) -> String {
    s(&server.upload(token, name, mime, content).await["id"])
}

async fn submit(server: &TestServer, token: &str, body: &Value) -> (u16, Value) {
    server.post("/api/generate/single", Some(token), body).await.unwrap()
}

async fn succeeded(server: &TestServer, token: &str, resp: &Value) -> Value {
    let id = s(&resp["job_ids"][0]);
    server.wait_job(token, &id, WAIT, |j| j["status"] == "succeeded" || j["status"] == "failed").await.unwrap()
}

async fn fetch(server: &TestServer, token: &str, job: &Value) -> Vec<u8> {
    let (_, item) =
        server.get(&format!("/api/media/{}", s(&job["outputs"][0]["media_id"])), Some(token)).await.unwrap();
    let resp = server.client.get(server.url(&s(&item["file"]["url"]))).send().await.unwrap();
    resp.bytes().await.unwrap().to_vec()
}

fn field_of(resp: &Value) -> String {
    s(&resp["error"]["field"])
}

async fn img2img_end_to_end(backend: Backend) -> anyhow::Result<()> {
    let steady = Behavior { steps: 4, step_delay: Duration::from_millis(30), ..Behavior::default() };
    let comfy = FakeEngine::comfyui(steady.clone()).await?;
    let forge = FakeEngine::a1111(steady.clone()).await?;
    let server = TestServer::builder(backend)
        .settings(|s| {
            s.engines.noop = true;
            // One job at a time, so a queued job waits behind a running one (the deletion case).
            s.worker.concurrency = 1;
            s.engines.remote = vec![
                remote("comfy", RemoteEngineKind::Comfyui, &comfy.url, &["sdxl"]),
                remote("forge", RemoteEngineKind::A1111, &forge.url, &["sd15"]),
            ];
        })
        .with_workers(1)
        .start()
        .await?;
    let rita = s(&server.register("rita", PASSWORD).await?["access_token"]);
    let bob = s(&server.register("bob", PASSWORD).await?["access_token"]);

    // The engine listing says who can start from an image.
    let (_, health) = server.get("/api/generation/health", None).await?;
    let caps = |name: &str| {
        health["engines"].as_array().into_iter().flatten().find(|e| e["name"] == name).unwrap()["capabilities"]
            ["supports_img2img"]
            .clone()
    };
    assert_eq!(
        (caps("procedural"), caps("noop"), caps("forge"), caps("comfy")),
        (json!(true), json!(false), json!(true), json!(true))
    );

    // An uploaded photo as the init image, on the procedural engine.
    let photo_id = upload(&server, &rita, "photo.png", "image/png", &photo()).await;
    let base =
        json!({ "prompt": "a red fox in the snow", "width": 128, "height": 128, "num_inference_steps": 8, "seed": 3 });
    let with = |extra: Value| {
        let mut b = base.clone();
        b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        b
    };
    let (status, resp) = submit(&server, &rita, &with(json!({ "init_image": photo_id, "strength": 0.2 }))).await;
    assert_eq!(status, 202, "{resp}");
    let job = succeeded(&server, &rita, &resp).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(
        (job["request"]["init_image"].as_str(), job["request"]["strength"].as_f64()),
        (Some(photo_id.as_str()), Some(0.2)),
        "stored as the decimal sent, not the widened f32"
    );
    let (_, item) = server.get(&format!("/api/media/{}", s(&job["outputs"][0]["media_id"])), Some(&rita)).await?;
    assert_eq!(item["parameters"]["init_image"].as_str(), Some(photo_id.as_str()), "provenance: {item}");
    assert_eq!(item["parameters"]["strength"].as_f64(), Some(0.2));
    assert_eq!((item["file"]["width"].as_i64(), item["file"]["height"].as_i64()), (Some(128), Some(128)));
    let low = rgb_of(&fetch(&server, &rita, &job).await);
    let init = image::imageops::resize(&rgb_of(&photo()), 128, 128, image::imageops::FilterType::Lanczos3);
    // The same request without the photo, to compare with.
    let (_, resp) = submit(&server, &rita, &base).await;
    let txt = succeeded(&server, &rita, &resp).await;
    let (low_diff, txt_diff) =
        (mean_abs_diff(&low, &init), mean_abs_diff(&rgb_of(&fetch(&server, &rita, &txt).await), &init));
    assert!(low_diff < 0.3 * txt_diff, "strength 0.2 stays close to the photo: {low_diff} vs {txt_diff}");

    // A generated image as the init image; the default strength is recorded.
    let generated_id = s(&txt["outputs"][0]["media_id"]);
    let (status, resp) = submit(&server, &rita, &with(json!({ "init_image": generated_id, "seed": 4 }))).await;
    assert_eq!(status, 202, "{resp}");
    let job = succeeded(&server, &rita, &resp).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["request"]["strength"].as_f64(), Some(0.75));

    // Through AUTOMATIC1111 and ComfyUI: the fakes receive the (resized) image.
    let (status, resp) = submit(
        &server,
        &rita,
        &with(json!({ "init_image": photo_id, "strength": 0.5, "engine": "forge", "num_images": 2 })),
    )
    .await;
    assert_eq!(status, 202, "{resp}");
    let job = succeeded(&server, &rita, &resp).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["outputs"].as_array().map(Vec::len), Some(2));
    let body = forge.last_body("POST /sdapi/v1/img2img").unwrap();
    assert_eq!(body["denoising_strength"], 0.5);
    use base64::Engine as _;
    let sent = base64::engine::general_purpose::STANDARD.decode(s(&body["init_images"][0]))?;
    assert_eq!(rgb_of(&sent).dimensions(), (128, 128), "resized to the requested size");

    let (status, resp) =
        submit(&server, &rita, &with(json!({ "init_image": photo_id, "strength": 0.6, "engine": "comfy" }))).await;
    assert_eq!(status, 202, "{resp}");
    let job = succeeded(&server, &rita, &resp).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let uploads = comfy.uploads();
    assert_eq!(uploads.len(), 1);
    let wf = &comfy.last_body("POST /prompt").unwrap()["prompt"];
    assert_eq!(wf["10"]["inputs"]["image"].as_str(), uploads.keys().next().map(String::as_str));
    assert_eq!(wf["3"]["inputs"]["denoise"].as_f64().map(|d| (d * 10.0).round()), Some(6.0));

    // Refusals, each naming the field.
    let cases = [
        (&rita, json!({ "strength": 0.5 }), "strength"),
        (&rita, json!({ "init_image": photo_id, "strength": 1.5 }), "strength"),
        (&rita, json!({ "init_image": photo_id, "engine": "noop" }), "init_image"),
        (&rita, json!({ "init_image": uuid::Uuid::now_v7() }), "init_image"),
        (&bob, json!({ "init_image": photo_id }), "init_image"),
    ];
    let mut unknown_message = None;
    for (token, extra, field) in cases {
        let (status, resp) = submit(&server, token, &with(extra.clone())).await;
        assert_eq!((status, field_of(&resp).as_str()), (422, field), "{extra}: {resp}");
        if extra.get("engine").is_none() && field == "init_image" {
            // Another user's item reads exactly like an unknown one.
            let message = s(&resp["error"]["message"]);
            assert_eq!(unknown_message.get_or_insert(message.clone()), &message);
        }
    }
    let audio_id = upload(&server, &rita, "tone.wav", "audio/wav", &wav()).await;
    let (status, resp) = submit(&server, &rita, &with(json!({ "init_image": audio_id }))).await;
    assert_eq!((status, field_of(&resp).as_str()), (422, "init_image"), "{resp}");
    // Batches name the request.
    let batch = json!({ "requests": [base, with(json!({ "strength": 0.3 }))] });
    let (status, resp) = server.post("/api/generate/batch", Some(&rita), &batch).await?;
    assert_eq!((status, field_of(&resp).as_str()), (422, "requests[1].strength"), "{resp}");

    // The init image deleted after queueing: the job fails without retry, saying why.
    let doomed = upload(&server, &rita, "doomed.png", "image/png", &photo()).await;
    let slow = with(json!({ "prompt": "first a slow one", "num_inference_steps": 150, "width": 1024, "height": 1024 }));
    let (_, first) = submit(&server, &rita, &slow).await;
    let (status, resp) = submit(&server, &rita, &with(json!({ "init_image": doomed }))).await;
    assert_eq!(status, 202, "{resp}");
    let (status, _) = server.delete(&format!("/api/media/{doomed}"), Some(&rita)).await?;
    assert_eq!(status, 204);
    server.post(&format!("/api/jobs/{}/cancel", s(&first["job_ids"][0])), Some(&rita), &json!({})).await?;
    let job = succeeded(&server, &rita, &resp).await;
    assert_eq!(
        (job["status"].as_str(), job["error"]["code"].as_str()),
        (Some("failed"), Some("init_image_missing")),
        "{job}"
    );
    server.stop().await
}

dual_test!(img2img_end_to_end);
