//! The media pipeline on SQLite and PostgreSQL: thumbnails made by workers after a job (and
//! after uploads), uploads with sniffed types and their attacks, ffprobe durations, and ZIP
//! exports as jobs — including that nobody can export or download someone else's items.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "test helpers panic on broken fixtures")]

use std::io::{Cursor, Read};
use std::time::Duration;

use seidra_store::Backend;
use seidra_testkit::{TestServer, dual_test};
use serde_json::{Value, json};

const PASSWORD: &str = "a-long-enough-passphrase";
const WAIT: Duration = Duration::from_secs(60);

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// One multipart part: form name, file name, declared type, content.
struct Part<'a> {
    name: &'a str,
    filename: Option<&'a str>,
    content_type: &'a str,
    body: Vec<u8>,
}

fn file<'a>(filename: &'a str, content_type: &'a str, body: Vec<u8>) -> Part<'a> {
    Part { name: "file", filename: Some(filename), content_type, body }
}

/// Posts a hand-built multipart body (so tests control every header, hostile ones included).
async fn upload(server: &TestServer, token: &str, parts: &[Part<'_>]) -> (u16, Value) {
    let boundary = "----seidra-test-boundary-7MA4YWxkTrZu0gW";
    let mut body: Vec<u8> = Vec::new();
    for p in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match p.filename {
            Some(f) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{}\"; filename=\"{f}\"\r\n", p.name).as_bytes(),
            ),
            None => {
                body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{}\"\r\n", p.name).as_bytes())
            }
        }
        body.extend_from_slice(format!("Content-Type: {}\r\n\r\n", p.content_type).as_bytes());
        body.extend_from_slice(&p.body);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let resp = server
        .client
        .post(server.url("/api/media/uploads"))
        .bearer_auth(token)
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img =
        image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x + y) % 239) as u8]));
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img).write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out
}

/// The classic 1×1 transparent GIF.
const GIF_1X1: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff\x21\xf9\x04\x01\x00\x00\x00\x00\
\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b";

/// A one-second 8 kHz mono 16-bit WAV, header written by hand.
fn wav_one_second() -> Vec<u8> {
    let (rate, samples) = (8000u32, 8000u32);
    let data_len = samples * 2;
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data_len).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&rate.to_le_bytes());
    w.extend_from_slice(&(rate * 2).to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..samples {
        let v = ((f64::from(i) * 0.05).sin() * 8000.0) as i16;
        w.extend_from_slice(&v.to_le_bytes());
    }
    w
}

/// CI installs ffmpeg: a missing ffprobe must fail loudly, not skip.
fn require_ffmpeg() {
    for tool in ["ffprobe", "ffmpeg"] {
        let ok = std::process::Command::new(tool).arg("-version").output().is_ok_and(|o| o.status.success());
        assert!(ok, "`{tool}` is required by the media tests: install ffmpeg (apt-get install -y ffmpeg)");
    }
}

/// A one-second 64×64 MP4 made by ffmpeg.
fn mp4_one_second() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("clip.mp4");
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", "testsrc=duration=1:size=64x64:rate=10", "-c:v", "mpeg4", "-y"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "ffmpeg could not make the test clip");
    std::fs::read(out).unwrap()
}

async fn wait_thumbnails(server: &TestServer, token: &str, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, item) = server.get(&format!("/api/media/{id}"), Some(token)).await.unwrap();
        assert_eq!(status, 200, "{item}");
        if item["thumbnail_state"] != "pending" {
            return item;
        }
        assert!(tokio::time::Instant::now() < deadline, "thumbnails never made: {item}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn fetch(server: &TestServer, url: &str) -> (u16, Vec<u8>) {
    let resp = server.client.get(server.url(url)).send().await.unwrap();
    (resp.status().as_u16(), resp.bytes().await.unwrap().to_vec())
}

async fn jpeg_dims(server: &TestServer, url: &Value) -> (u32, u32) {
    let (status, bytes) = fetch(server, &s(url)).await;
    assert_eq!(status, 200);
    let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg).unwrap();
    (img.width(), img.height())
}

async fn thumbnails_after_generation_and_upload(backend: Backend) -> anyhow::Result<()> {
    let server = TestServer::builder(backend).with_workers(1).start().await?;
    let alice = s(&server.register("alice", PASSWORD).await?["access_token"]);

    // A procedural job's output gets both thumbnails, aspect kept.
    let body = json!({ "prompt": "a lighthouse at dusk", "width": 1024, "height": 512, "num_inference_steps": 4 });
    let (status, resp) = server.post("/api/generate/single", Some(&alice), &body).await?;
    assert_eq!(status, 202, "{resp}");
    let job = server.wait_job(&alice, &s(&resp["job_ids"][0]), WAIT, |j| j["status"] == "succeeded").await?;
    let id = s(&job["outputs"][0]["media_id"]);
    let item = wait_thumbnails(&server, &alice, &id).await;
    assert_eq!(item["thumbnail_state"], "ready", "{item}");
    assert_eq!(jpeg_dims(&server, &item["thumb_256_url"]).await, (256, 128));
    assert_eq!(jpeg_dims(&server, &item["thumb_768_url"]).await, (768, 384));

    // An uploaded image smaller than 768 px is never upscaled.
    let (status, up) = upload(&server, &alice, &[file("small.png", "image/png", png(300, 200))]).await;
    assert_eq!(status, 201, "{up}");
    let up_id = s(&up["items"][0]["id"]);
    assert_eq!(up["items"][0]["thumbnail_state"], "pending");
    assert!(up["items"][0]["thumb_256_url"].is_null(), "no URL while pending");
    let item = wait_thumbnails(&server, &alice, &up_id).await;
    assert_eq!(jpeg_dims(&server, &item["thumb_256_url"]).await, (256, 171));
    assert_eq!(jpeg_dims(&server, &item["thumb_768_url"]).await, (300, 200));

    // Deleting the item deletes its thumbnails too.
    let (gen_item, thumbs) = (item.clone(), [s(&item["thumb_256_url"]), s(&item["thumb_768_url"])]);
    let (status, _) = server.delete(&format!("/api/media/{up_id}"), Some(&alice)).await?;
    assert_eq!(status, 204);
    for url in thumbs.iter().chain([&s(&gen_item["file"]["url"])]) {
        assert_eq!(fetch(&server, url).await.0, 404, "{url} survived the delete");
    }
    server.stop().await
}

async fn upload_rules_and_attacks(backend: Backend) -> anyhow::Result<()> {
    require_ffmpeg();
    let server = TestServer::builder(backend).settings(|s| s.media.max_image_bytes = 64 * 1024).start().await?;
    let alice = s(&server.register("alice", PASSWORD).await?["access_token"]);

    // A good upload: sniffed type, dimensions, hash, tags, sanitised name, key under the owner.
    let content = png(40, 30);
    let parts = [
        file("cat.png", "image/png", content.clone()),
        Part { name: "tags", filename: None, content_type: "text/plain", body: b"Pets, cute".to_vec() },
    ];
    let (status, up) = upload(&server, &alice, &parts).await;
    assert_eq!(status, 201, "{up}");
    let item = &up["items"][0];
    assert_eq!((item["kind"].as_str(), item["source"].as_str()), (Some("image"), Some("upload")));
    assert_eq!((item["file"]["width"].as_i64(), item["file"]["height"].as_i64()), (Some(40), Some(30)));
    assert_eq!(item["file"]["bytes"].as_u64(), Some(content.len() as u64));
    assert_eq!(item["tags"], json!(["cute", "pets"]));
    assert_eq!(item["original_name"], "cat.png");
    let (status, downloaded) = fetch(&server, &s(&item["file"]["url"])).await;
    assert_eq!((status, downloaded == content), (200, true));

    // Oversize → 413 naming the limit.
    let mut big = png(8, 8);
    big.resize(100 * 1024, 0);
    let (status, err) = upload(&server, &alice, &[file("big.png", "image/png", big)]).await;
    assert_eq!(status, 413, "{err}");
    assert!(s(&err["error"]["message"]).contains("media.max_image_bytes"), "{err}");
    assert!(s(&err["error"]["message"]).contains("64 KiB") || s(&err["error"]["message"]).contains("65536"), "{err}");

    // Wrong magic: a ".png" that is text → 415 naming the part.
    let (status, err) = upload(&server, &alice, &[file("evil.png", "image/png", b"hello, I am a PNG".to_vec())]).await;
    assert_eq!((status, err["error"]["field"].as_str()), (415, Some("file[0]")), "{err}");

    // Polyglot-ish: declared PNG, GIF magic → stored as a GIF.
    let (status, up) = upload(&server, &alice, &[file("fake.png", "image/png", GIF_1X1.to_vec())]).await;
    assert_eq!(status, 201, "{up}");
    assert_eq!(up["items"][0]["file"]["mime"], "image/gif");
    assert!(s(&up["items"][0]["file"]["url"]).contains(".gif?"), "{up}");

    // Path traversal in the name: only a display name survives; the key is ours.
    let (status, up) = upload(&server, &alice, &[file("../../etc/passwd", "image/png", png(4, 4))]).await;
    assert_eq!(status, 201, "{up}");
    assert_eq!(up["items"][0]["original_name"], "passwd");
    let url = s(&up["items"][0]["file"]["url"]);
    let me = s(&server.get("/api/auth/me", Some(&alice)).await?.1["id"]);
    assert!(
        url.starts_with(&format!("/files/uploads/{me}/")) && !url.contains("passwd") && !url.contains(".."),
        "{url}"
    );

    // Zero bytes → 422; no file part → 422; all-or-nothing when one part is bad.
    let (status, err) = upload(&server, &alice, &[file("empty.png", "image/png", Vec::new())]).await;
    assert_eq!((status, err["error"]["field"].as_str()), (422, Some("file[0]")), "{err}");
    let tags_only = [Part { name: "tags", filename: None, content_type: "text/plain", body: b"x".to_vec() }];
    let (status, err) = upload(&server, &alice, &tags_only).await;
    assert_eq!((status, err["error"]["field"].as_str()), (422, Some("file")), "{err}");
    let (_, before) = server.get("/api/media", Some(&alice)).await?;
    let mixed = [file("ok.png", "image/png", png(4, 4)), file("bad.png", "image/png", b"nope".to_vec())];
    let (status, err) = upload(&server, &alice, &mixed).await;
    assert_eq!((status, err["error"]["field"].as_str()), (415, Some("file[1]")), "{err}");
    let (_, after) = server.get("/api/media", Some(&alice)).await?;
    assert_eq!(before["total"], after["total"], "a refused request stores nothing");

    // Audio and video: durations from ffprobe.
    let (status, up) = upload(&server, &alice, &[file("tone.bin", "application/octet-stream", wav_one_second())]).await;
    assert_eq!(status, 201, "{up}");
    let item = &up["items"][0];
    assert_eq!((item["kind"].as_str(), item["file"]["mime"].as_str()), (Some("audio"), Some("audio/wav")));
    let secs = item["duration_secs"].as_f64().expect("a duration");
    assert!((secs - 1.0).abs() < 0.05, "{secs}");
    assert_eq!(item["thumbnail_state"], "none");
    let (status, up) = upload(&server, &alice, &[file("clip.mov", "video/quicktime", mp4_one_second())]).await;
    assert_eq!(status, 201, "{up}");
    let item = &up["items"][0];
    assert_eq!((item["kind"].as_str(), item["file"]["mime"].as_str()), (Some("video"), Some("video/mp4")));
    let secs = item["duration_secs"].as_f64().expect("a duration");
    assert!((secs - 1.0).abs() < 0.2, "{secs}");

    // Not multipart at all.
    let (status, _) = server.post("/api/media/uploads", Some(&alice), &json!({})).await?;
    assert_eq!(status, 415);
    server.stop().await
}

async fn export_jobs(backend: Backend) -> anyhow::Result<()> {
    let server = TestServer::builder(backend).with_workers(1).start().await?;
    let alice = s(&server.register("alice", PASSWORD).await?["access_token"]);
    let bob = s(&server.register("bob", PASSWORD).await?["access_token"]);
    let mut ids = Vec::new();
    let mut originals = std::collections::HashMap::new();
    for (name, body) in [("a.png", png(20, 10)), ("b.gif", GIF_1X1.to_vec()), ("c.png", png(7, 7))] {
        let (status, up) = upload(&server, &alice, &[file(name, "image/png", body.clone())]).await;
        assert_eq!(status, 201, "{up}");
        let id = s(&up["items"][0]["id"]);
        originals.insert(id.clone(), body);
        ids.push(id);
    }
    let mut ws = server.ws(&alice).await?;

    // Bob cannot export Alice's items, not even mixed with nothing of his own.
    let (status, err) = server.post("/api/media/export", Some(&bob), &json!({ "ids": [ids[0]] })).await?;
    assert_eq!(status, 404, "{err}");
    let (status, _) = server.post("/api/media/export", Some(&bob), &json!({})).await?;
    assert_eq!(status, 422, "Bob has nothing to export");

    let (status, resp) = server.post("/api/media/export", Some(&alice), &json!({ "ids": ids })).await?;
    assert_eq!(status, 202, "{resp}");
    assert_eq!(resp["jobs"][0]["job_type"], "export");
    let job_id = s(&resp["job_ids"][0]);
    let job = server.wait_job(&alice, &job_id, WAIT, |j| j["status"] == "succeeded" || j["status"] == "failed").await?;
    assert_eq!(job["status"], "succeeded", "{job}");
    let event = ws.expect("job.succeeded", WAIT, |m| m["job_id"] == job_id.as_str()).await?;
    let event_url = s(&event["data"]["export"]["download_url"]);
    assert!(event_url.starts_with("/files/exports/"), "{event}");
    // The ready export is announced in the owner's inbox (written with the job's completion).
    let (_, inbox) = server.get("/api/notifications", Some(&alice)).await?;
    let export_notices: Vec<&Value> =
        inbox["items"].as_array().unwrap().iter().filter(|n| n["category"] == "export").collect();
    assert_eq!(export_notices.len(), 1, "{inbox}");
    assert_eq!(export_notices[0]["link"], format!("/jobs/{job_id}"), "{inbox}");

    let (status, export) = server.get(&format!("/api/media/export/{job_id}"), Some(&alice)).await?;
    assert_eq!((status, export["items"].as_i64()), (200, Some(3)), "{export}");
    let (status, zip_bytes) = fetch(&server, &s(&export["download_url"])).await;
    assert_eq!(status, 200);
    assert_eq!(zip_bytes.len() as i64, export["bytes"].as_i64().unwrap());
    assert_eq!(fetch(&server, &event_url).await.1, zip_bytes, "the event's link serves the same archive");

    let mut zip = zip::ZipArchive::new(Cursor::new(zip_bytes))?;
    let mut manifest = String::new();
    zip.by_name("manifest.json")?.read_to_string(&mut manifest)?;
    let manifest: Value = serde_json::from_str(&manifest)?;
    assert_eq!(manifest["count"], 3);
    assert_eq!(manifest["items"].as_array().map(Vec::len), Some(3));
    for item in manifest["items"].as_array().unwrap() {
        let name = s(&item["file"]);
        let id = s(&item["metadata"]["id"]);
        let mut content = Vec::new();
        zip.by_name(&name)?.read_to_end(&mut content)?;
        assert_eq!(&content, originals.get(&id).unwrap(), "{name} is byte-identical");
        let mut meta = String::new();
        zip.by_name(&s(&item["metadata_file"]))?.read_to_string(&mut meta)?;
        let meta: Value = serde_json::from_str(&meta)?;
        assert_eq!((s(&meta["id"]), meta["source"].as_str()), (id.clone(), Some("upload")));
        assert!(meta["sha256"].as_str().is_some_and(|h| h.len() == 64));
    }
    assert_eq!(zip.len(), 7, "3 files, 3 metadata files, the manifest");

    // A filter export; Bob sees neither Alice's export nor its job.
    let (status, resp) =
        server.post("/api/media/export", Some(&alice), &json!({ "filter": { "type": "image" } })).await?;
    assert_eq!(status, 202, "{resp}");
    let job2 = s(&resp["job_ids"][0]);
    server.wait_job(&alice, &job2, WAIT, |j| j["status"] == "succeeded").await?;
    let (status, _) = server.get(&format!("/api/media/export/{job_id}"), Some(&bob)).await?;
    assert_eq!(status, 404);
    let (status, _) = server.get(&format!("/api/jobs/{job_id}"), Some(&bob)).await?;
    assert_eq!(status, 404);
    let (status, err) = server.post("/api/media/export", Some(&alice), &json!({ "ids": [], "filter": {} })).await?;
    assert_eq!(status, 422, "{err}");
    server.stop().await
}

async fn upload_quota(backend: Backend) -> anyhow::Result<()> {
    let server = TestServer::builder(backend).settings(|s| s.media.user_quota_bytes = 3000).start().await?;
    let alice = s(&server.register("alice", PASSWORD).await?["access_token"]);
    let bob = s(&server.register("bob", PASSWORD).await?["access_token"]);
    let mut first = png(8, 8);
    first.resize(2000, 0);
    let (status, up) = upload(&server, &alice, &[file("a.png", "image/png", first.clone())]).await;
    assert_eq!(status, 201, "{up}");
    let (status, err) = upload(&server, &alice, &[file("b.png", "image/png", first.clone())]).await;
    assert_eq!((status, err["error"]["code"].as_str()), (413, Some("upload_quota_exceeded")), "{err}");
    assert!(s(&err["error"]["message"]).contains("media.user_quota_bytes"), "{err}");
    let (status, _) = upload(&server, &bob, &[file("b.png", "image/png", first)]).await;
    assert_eq!(status, 201, "the quota is per user");
    server.stop().await
}

/// A cancelled export is retried as an export (not parsed as an image request).
async fn export_jobs_can_be_retried(backend: Backend) -> anyhow::Result<()> {
    let server = TestServer::builder(backend).start().await?; // no workers: the export stays queued
    let alice = s(&server.register("alice", PASSWORD).await?["access_token"]);
    let (status, up) = upload(&server, &alice, &[file("a.png", "image/png", png(4, 4))]).await;
    assert_eq!(status, 201, "{up}");
    let (status, resp) =
        server.post("/api/media/export", Some(&alice), &json!({ "ids": [s(&up["items"][0]["id"])] })).await?;
    assert_eq!(status, 202, "{resp}");
    let first = s(&resp["job_ids"][0]);
    let (status, cancelled) = server.post(&format!("/api/jobs/{first}/cancel"), Some(&alice), &Value::Null).await?;
    assert_eq!((status, cancelled["status"].as_str()), (200, Some("cancelled")), "{cancelled}");
    let (status, retried) = server.post(&format!("/api/jobs/{first}/retry"), Some(&alice), &Value::Null).await?;
    assert_eq!(status, 202, "{retried}");
    let job = &retried["jobs"][0];
    assert_eq!((job["job_type"].as_str(), job["status"].as_str()), (Some("export"), Some("queued")), "{job}");
    assert_eq!(job["retry_of"].as_str(), Some(first.as_str()));
    server.stop().await
}

dual_test!(
    thumbnails_after_generation_and_upload,
    upload_rules_and_attacks,
    export_jobs,
    export_jobs_can_be_retried,
    upload_quota
);
