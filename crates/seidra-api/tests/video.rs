//! Speech and the video studio on SQLite and PostgreSQL, with the real tools (espeak-ng,
//! ffmpeg, ffprobe): speech jobs (non-silent WAV of a plausible length, persona voice defaults,
//! precise 422s), waveform peaks, timeline CRUD with every validation error, a 3-clip
//! storyboard rendered to MP4 and checked with ffprobe, a proxy render, and cancelling a render
//! kills ffmpeg.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "test helpers panic on broken fixtures")]

use std::io::Cursor;
use std::time::{Duration, Instant};

use seidra_store::Backend;
use seidra_testkit::{TestServer, dual_test};
use serde_json::{Value, json};

const PASSWORD: &str = "a-long-enough-passphrase";
const WAIT: Duration = Duration::from_secs(120);

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

fn png(w: u32, h: u32, shade: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x % 251) as u8, (y % 241) as u8, shade]));
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img).write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out
}

/// A sine tone WAV of `secs` seconds made by ffmpeg.
fn tone(secs: u32) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tone.wav");
    let status = std::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            &format!("sine=frequency=330:duration={secs}"),
            "-ar",
            "22050",
            "-y",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(out).unwrap()
}

async fn upload(server: &TestServer, token: &str, name: &str, mime: &str, body: Vec<u8>) -> Value {
    server.upload(token, name, mime, &body).await
}

async fn put(server: &TestServer, path: &str, token: &str, body: &Value) -> (u16, Value) {
    let resp = server.client.put(server.url(path)).bearer_auth(token).json(body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn download(server: &TestServer, url: &Value) -> Vec<u8> {
    let resp = server.client.get(server.url(&s(url))).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    resp.bytes().await.unwrap().to_vec()
}

/// 16-bit PCM samples of a WAV (the `data` chunk) and its sample rate.
fn wav_samples(bytes: &[u8]) -> (Vec<i16>, u32) {
    assert_eq!(&bytes[0..4], b"RIFF");
    let rate = u32::from_le_bytes(bytes[24..28].try_into().unwrap());
    let pos = bytes.windows(4).position(|w| w == b"data").unwrap() + 8;
    (bytes[pos..].chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect(), rate)
}

async fn speech_jobs_and_waveforms(backend: Backend) -> anyhow::Result<()> {
    seidra_testkit::require_av_tools();
    let server = TestServer::builder(backend).with_workers(1).start().await?;
    let alice = s(&server.register("alice", PASSWORD).await?["access_token"]);

    // Real espeak-ng speech: a non-silent WAV of plausible length for the text.
    let text = "Hello from the studio. This sentence is spoken by espeak.";
    let (status, resp) =
        server.post("/api/generate/speech", Some(&alice), &json!({ "text": text, "voice": "en-us" })).await?;
    assert_eq!(status, 202, "{resp}");
    assert_eq!(resp["jobs"][0]["job_type"], "tts");
    let job = server
        .wait_job(&alice, &s(&resp["job_ids"][0]), WAIT, |j| j["status"] == "succeeded" || j["status"] == "failed")
        .await?;
    assert_eq!(job["status"], "succeeded", "{job}");
    let out = &job["outputs"][0];
    assert_eq!(out["mime"], "audio/wav");
    let (samples, rate) = wav_samples(&download(&server, &out["url"]).await);
    let secs = samples.len() as f64 / f64::from(rate);
    assert!((1.5..10.0).contains(&secs), "{secs} s of speech for {} characters", text.len());
    let rms = (samples.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / samples.len() as f64).sqrt();
    assert!(rms > 300.0, "the speech is (nearly) silent: rms {rms}");
    let media_id = s(&out["media_id"]);
    let (_, item) = server.get(&format!("/api/media/{media_id}"), Some(&alice)).await?;
    assert_eq!(item["kind"], "audio");
    assert!((item["duration_secs"].as_f64().unwrap() - secs).abs() < 0.1, "{item}");

    // Waveform peaks: the asked number, in 0..=1, not flat; bad counts and images refused.
    let (status, wave) = server.get(&format!("/api/media/{media_id}/waveform?peaks=64"), Some(&alice)).await?;
    assert_eq!(status, 200, "{wave}");
    let peaks: Vec<f64> = wave["peaks"].as_array().unwrap().iter().map(|p| p.as_f64().unwrap()).collect();
    assert_eq!(peaks.len(), 64);
    assert!(peaks.iter().all(|p| (0.0..=1.0).contains(p)));
    assert!(peaks.iter().cloned().fold(0.0, f64::max) > 0.05, "{peaks:?}");
    assert!((wave["duration_secs"].as_f64().unwrap() - secs).abs() < 0.1, "{wave}");
    let (status, err) = server.get(&format!("/api/media/{media_id}/waveform?peaks=0"), Some(&alice)).await?;
    assert_eq!((status, err["error"]["field"].as_str()), (422, Some("peaks")), "{err}");
    let image = upload(&server, &alice, "still.png", "image/png", png(32, 32, 9)).await;
    let (status, err) = server.get(&format!("/api/media/{}/waveform", s(&image["id"])), Some(&alice)).await?;
    assert_eq!((status, err["error"]["field"].as_str()), (422, Some("id")), "{err}");
    let bob = s(&server.register("bob", PASSWORD).await?["access_token"]);
    let (status, _) = server.get(&format!("/api/media/{media_id}/waveform"), Some(&bob)).await?;
    assert_eq!(status, 404, "another user's item does not exist for bob");

    // MP3 on request, transcoded by ffmpeg; persona voice defaults fill what was not sent.
    let persona = json!({ "name": "Narrator", "voice": { "voice": "fr", "rate": 1.5, "pitch": 2 } });
    let (status, p) = server.post("/api/personas", Some(&alice), &persona).await?;
    assert_eq!(status, 201, "{p}");
    let body = json!({ "text": "Bonjour tout le monde", "format": "mp3", "rate": 1.0, "persona_id": p["id"] });
    let (status, resp) = server.post("/api/generate/speech", Some(&alice), &body).await?;
    assert_eq!(status, 202, "{resp}");
    let request = &resp["jobs"][0]["request"];
    assert_eq!(
        (request["voice"].as_str(), request["rate"].as_f64(), request["pitch"].as_f64()),
        (Some("fr"), Some(1.0), Some(2.0))
    );
    let job = server
        .wait_job(&alice, &s(&resp["job_ids"][0]), WAIT, |j| j["status"] == "succeeded" || j["status"] == "failed")
        .await?;
    assert_eq!(job["outputs"][0]["mime"], "audio/mpeg", "{job}");
    let (duration, streams) = seidra_testkit::ffprobe(&download(&server, &job["outputs"][0]["url"]).await);
    assert!(duration > 0.5, "{duration}");
    assert_eq!(streams[0].1, "mp3");

    // Precise refusals.
    for (body, field) in [
        (json!({ "text": "   " }), "text"),
        (json!({ "text": "x".repeat(5001) }), "text"),
        (json!({ "text": "hi", "voice": "klingon-xx" }), "voice"),
        (json!({ "text": "hi", "voice": "-w/etc/passwd" }), "voice"),
        (json!({ "text": "hi", "rate": 9 }), "rate"),
        (json!({ "text": "hi", "format": "flac" }), "format"),
        (json!({ "text": "hi", "engine": "piper", "voice": "amy" }), "voice"),
    ] {
        let (status, err) = server.post("/api/generate/speech", Some(&alice), &body).await?;
        assert!(status == 422 || status == 503, "{body} → {status} {err}");
        assert_eq!(err["error"]["field"].as_str(), Some(field), "{body} → {err}");
    }
    let (_, err) =
        server.post("/api/generate/speech", Some(&alice), &json!({ "text": "hi", "voice": "klingon-xx" })).await?;
    assert!(s(&err["error"]["message"]).contains("known voices include"), "{err}");
    server.stop().await
}

fn clip(start: f64, duration: f64, media: &Value) -> Value {
    json!({ "start": start, "duration": duration, "media_id": media["id"] })
}

async fn timeline_crud_and_validation(backend: Backend) -> anyhow::Result<()> {
    seidra_testkit::require_av_tools();
    let server = TestServer::builder(backend).start().await?;
    let alice = s(&server.register("alice", PASSWORD).await?["access_token"]);
    let bob = s(&server.register("bob", PASSWORD).await?["access_token"]);
    let still = upload(&server, &alice, "a.png", "image/png", png(64, 36, 1)).await;
    let music = upload(&server, &alice, "m.wav", "audio/wav", tone(2)).await;
    let bobs = upload(&server, &bob, "b.png", "image/png", png(64, 36, 2)).await;

    let good = json!({
        "name": "Trip", "width": 320, "height": 180, "fps": 25,
        "tracks": [
            { "kind": "image", "clips": [clip(0.0, 1.0, &still), clip(1.0, 1.0, &still)] },
            { "kind": "audio", "clips": [clip(0.0, 2.0, &music)] },
            { "kind": "title", "clips": [{ "start": 0.0, "duration": 0.5, "text": "Hi", "style": { "color": "#ffcc00" } }] },
        ]
    });
    let (status, t) = server.post("/api/video/timelines", Some(&alice), &good).await?;
    assert_eq!(status, 201, "{t}");
    let id = s(&t["id"]);
    assert_eq!((t["revision"].as_i64(), t["duration_secs"].as_f64()), (Some(1), Some(2.0)));
    let (status, got) = server.get(&format!("/api/video/timelines/{id}"), Some(&alice)).await?;
    assert_eq!((status, &got["spec"]["tracks"][2]["clips"][0]["text"]), (200, &json!("Hi")));
    let mut renamed = good.clone();
    renamed["name"] = json!("Trip (cut 2)");
    let (status, t2) = put(&server, &format!("/api/video/timelines/{id}"), &alice, &renamed).await;
    assert_eq!((status, t2["revision"].as_i64(), t2["name"].as_str()), (200, Some(2), Some("Trip (cut 2)")), "{t2}");
    let (_, page) = server.get("/api/video/timelines", Some(&alice)).await?;
    assert_eq!(page["total"], 1);

    // If-Match: a save from a stale revision is refused and changes nothing; the current one goes.
    let url = server.url(&format!("/api/video/timelines/{id}"));
    let put_if = |revision: &'static str| {
        server.client.put(&url).bearer_auth(&alice).header("if-match", revision).json(&good).send()
    };
    let stale = put_if("\"1\"").await?;
    assert_eq!(stale.status().as_u16(), 409);
    let err: Value = stale.json().await?;
    assert_eq!(
        (err["error"]["code"].as_str(), err["error"]["field"].as_str()),
        (Some("revision_conflict"), Some("If-Match"))
    );
    let (_, still) = server.get(&format!("/api/video/timelines/{id}"), Some(&alice)).await?;
    assert_eq!((still["revision"].as_i64(), still["name"].as_str()), (Some(2), Some("Trip (cut 2)")), "unchanged");
    let bad = put_if("yesterday").await?;
    assert_eq!(bad.status().as_u16(), 422);
    let fresh = put_if("W/\"2\"").await?;
    assert_eq!(fresh.status().as_u16(), 200);
    let saved: Value = fresh.json().await?;
    assert_eq!(saved["revision"].as_i64(), Some(3));

    // Others see nothing: 404 on every route, and their list is empty.
    let (status, _) = server.get(&format!("/api/video/timelines/{id}"), Some(&bob)).await?;
    assert_eq!(status, 404);
    assert_eq!(put(&server, &format!("/api/video/timelines/{id}"), &bob, &good).await.0, 404);
    assert_eq!(server.post(&format!("/api/video/timelines/{id}/render"), Some(&bob), &json!({})).await?.0, 404);
    assert_eq!(server.delete(&format!("/api/video/timelines/{id}"), Some(&bob)).await?.0, 404);
    assert_eq!(server.get("/api/video/timelines", Some(&bob)).await?.1["total"], 0);

    // Each structural or reference error names its field.
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        v
    };
    let cases: Vec<(Value, &str)> = vec![
        (with(&|v| v["tracks"][0]["clips"][1]["start"] = json!(0.5)), "tracks[0].clips[1].start"),
        (with(&|v| v["tracks"][0]["clips"][0]["start"] = json!(-1.0)), "tracks[0].clips[0].start"),
        (with(&|v| v["tracks"][0]["clips"][1]["duration"] = json!(0)), "tracks[0].clips[1].duration"),
        (
            with(&|v| v["tracks"][0]["clips"][0]["media_id"] = json!("018f0000-0000-7000-8000-000000000000")),
            "tracks[0].clips[0].media_id",
        ),
        (with(&|v| v["tracks"][0]["clips"][1]["media_id"] = bobs["id"].clone()), "tracks[0].clips[1].media_id"),
        (with(&|v| v["tracks"][0]["clips"][0]["media_id"] = music["id"].clone()), "tracks[0].clips[0].media_id"),
        (with(&|v| v["tracks"][1]["clips"][0]["in_point"] = json!(1.5)), "tracks[1].clips[0].duration"),
        (with(&|v| v["tracks"][2]["clips"][0]["text"] = json!("")), "tracks[2].clips[0].text"),
        (with(&|v| v["tracks"][2]["clips"][0]["style"]["color"] = json!("yellow")), "tracks[2].clips[0].style.color"),
        (
            with(&|v| v["tracks"][0]["clips"][0]["transition"] = json!({ "kind": "crossfade", "duration": 5 })),
            "tracks[0].clips[0].transition.duration",
        ),
        (
            with(&|v| v["tracks"][0]["clips"][0]["pan_zoom"] = json!({ "end_zoom": 9 })),
            "tracks[0].clips[0].pan_zoom.end_zoom",
        ),
        (with(&|v| v["tracks"][0]["clips"][0]["volume"] = json!(1)), "tracks[0].clips[0].volume"),
        (with(&|v| v["tracks"][0]["kind"] = json!("hologram")), "tracks[0].kind"),
        (
            with(
                &|v| v["tracks"] = json!([{ "kind": "narration", "clips": [{ "start": 0, "duration": 1, "text": "hi", "voice": "xx-nope" }] }]),
            ),
            "tracks[0].clips[0].voice",
        ),
        (with(&|v| v["width"] = json!(321)), "width"),
        (with(&|v| v["height"] = json!(20000)), "height"),
        (with(&|v| v["fps"] = json!(0)), "fps"),
        (with(&|v| v["name"] = json!(" ")), "name"),
    ];
    for (body, field) in cases {
        let (status, err) = server.post("/api/video/timelines", Some(&alice), &body).await?;
        assert_eq!((status, err["error"]["field"].as_str()), (422, Some(field)), "{err}");
    }
    // The same rules guard updates and renders.
    let (status, err) =
        put(&server, &format!("/api/video/timelines/{id}"), &alice, &with(&|v| v["fps"] = json!(61))).await;
    assert_eq!((status, err["error"]["field"].as_str()), (422, Some("fps")));
    let (status, err) =
        server.post(&format!("/api/video/timelines/{id}/render"), Some(&alice), &json!({ "width": 7 })).await?;
    assert_eq!((status, err["error"]["field"].as_str()), (422, Some("width")), "{err}");
    let (status, empty) = server
        .post("/api/video/timelines", Some(&alice), &json!({ "name": "e", "width": 64, "height": 64, "fps": 5 }))
        .await?;
    assert_eq!(status, 201);
    let (status, err) =
        server.post(&format!("/api/video/timelines/{}/render", s(&empty["id"])), Some(&alice), &json!({})).await?;
    assert_eq!((status, err["error"]["field"].as_str()), (422, Some("tracks")), "{err}");

    assert_eq!(server.delete(&format!("/api/video/timelines/{id}"), Some(&alice)).await?.0, 204);
    assert_eq!(server.get(&format!("/api/video/timelines/{id}"), Some(&alice)).await?.0, 404);
    server.stop().await
}

async fn storyboard_renders_an_mp4(backend: Backend) -> anyhow::Result<()> {
    seidra_testkit::require_av_tools();
    let server = TestServer::builder(backend).with_workers(1).start().await?;
    let alice = s(&server.register("alice", PASSWORD).await?["access_token"]);
    let a = upload(&server, &alice, "a.png", "image/png", png(400, 300, 40)).await;
    let b = upload(&server, &alice, "b.png", "image/png", png(200, 200, 200)).await;
    let music = upload(&server, &alice, "m.wav", "audio/wav", tone(4)).await;
    // Three picture clips (a zooming still, a crossfaded still, a title card), music ducked
    // under a narration.
    let spec = json!({
        "name": "Three clips", "width": 320, "height": 180, "fps": 25,
        "tracks": [
            { "kind": "image", "clips": [
                { "start": 0.0, "duration": 1.5, "media_id": a["id"], "pan_zoom": { "start_zoom": 1.0, "end_zoom": 1.3 } },
                { "start": 1.2, "duration": 1.8, "media_id": b["id"], "transition": { "kind": "crossfade", "duration": 0.3 } },
            ] },
            { "kind": "title", "clips": [{ "start": 3.0, "duration": 1.0, "text": "The End: 100% \"done\"", "style": { "background": "#203040" } }] },
            { "kind": "audio", "clips": [{ "start": 0.0, "duration": 4.0, "media_id": music["id"], "volume": 0.5 }] },
            { "kind": "narration", "clips": [{ "start": 0.5, "duration": 2.5, "text": "Once upon a time." }] },
        ]
    });
    let (status, t) = server.post("/api/video/timelines", Some(&alice), &spec).await?;
    assert_eq!(status, 201, "{t}");
    let id = s(&t["id"]);
    let (status, resp) = server.post(&format!("/api/video/timelines/{id}/render"), Some(&alice), &json!({})).await?;
    assert_eq!(status, 202, "{resp}");
    assert_eq!(resp["jobs"][0]["job_type"], "storyboard");
    let job = server
        .wait_job(&alice, &s(&resp["job_ids"][0]), WAIT, |j| j["status"] == "succeeded" || j["status"] == "failed")
        .await?;
    assert_eq!(job["status"], "succeeded", "{job}");
    let out = &job["outputs"][0];
    assert_eq!(
        (out["mime"].as_str(), out["width"].as_i64(), out["height"].as_i64()),
        (Some("video/mp4"), Some(320), Some(180))
    );
    let (duration, streams) = seidra_testkit::ffprobe(&download(&server, &out["url"]).await);
    assert!((duration - 4.0).abs() <= 0.1, "duration {duration}");
    let video: Vec<_> = streams.iter().filter(|st| st.0 == "video").collect();
    let audio: Vec<_> = streams.iter().filter(|st| st.0 == "audio").collect();
    assert_eq!(video.len(), 1, "{streams:?}");
    assert_eq!(audio.len(), 1, "{streams:?}");
    assert_eq!((video[0].1.as_str(), video[0].2, video[0].3), ("h264", 320, 180));
    assert_eq!(audio[0].1, "aac");
    // Provenance: a video item naming its timeline.
    let (_, item) = server.get(&format!("/api/media/{}", s(&out["media_id"])), Some(&alice)).await?;
    assert_eq!(
        (item["kind"].as_str(), item["parameters"]["timeline_id"].as_str()),
        (Some("video"), Some(id.as_str())),
        "{item}"
    );

    // A proxy: same length, lower resolution, still H.264/AAC.
    let (status, resp) = server.post(&format!("/api/video/timelines/{id}/proxy"), Some(&alice), &json!({})).await?;
    assert_eq!(status, 202, "{resp}");
    let job = server
        .wait_job(&alice, &s(&resp["job_ids"][0]), WAIT, |j| j["status"] == "succeeded" || j["status"] == "failed")
        .await?;
    assert_eq!((job["status"].as_str(), job["job_type"].as_str()), (Some("succeeded"), Some("video_proxy")), "{job}");
    let (duration, streams) = seidra_testkit::ffprobe(&download(&server, &job["outputs"][0]["url"]).await);
    assert!((duration - 4.0).abs() <= 0.1, "proxy duration {duration}");
    assert_eq!(streams.len(), 2, "{streams:?}");
    server.stop().await
}

/// Processes whose command line contains `needle` (our ffmpeg, told apart by a media id).
fn processes_with(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // A zombie is gone already (only its exit status is left).
        if String::from_utf8_lossy(&cmdline).contains(needle) && !stat.contains(") Z ") {
            found.push(pid);
        }
    }
    found
}

async fn cancelling_a_render_kills_ffmpeg(backend: Backend) -> anyhow::Result<()> {
    seidra_testkit::require_av_tools();
    let server = TestServer::builder(backend).with_workers(1).start().await?;
    let alice = s(&server.register("alice", PASSWORD).await?["access_token"]);
    let still = upload(&server, &alice, "a.png", "image/png", png(64, 64, 3)).await;
    let still_id = s(&still["id"]);
    // Ten minutes of zooming 720p: far longer than the test waits.
    let spec = json!({
        "name": "Long", "width": 1280, "height": 720, "fps": 30,
        "tracks": [{ "kind": "image", "clips": [{ "start": 0, "duration": 600, "media_id": still["id"], "pan_zoom": { "end_zoom": 2 } }] }]
    });
    let (_, t) = server.post("/api/video/timelines", Some(&alice), &spec).await?;
    let (status, resp) =
        server.post(&format!("/api/video/timelines/{}/render", s(&t["id"])), Some(&alice), &json!({})).await?;
    assert_eq!(status, 202, "{resp}");
    let job_id = s(&resp["job_ids"][0]);
    // Wait until ffmpeg runs.
    let needle = format!("m-{still_id}.png");
    let deadline = Instant::now() + WAIT;
    while processes_with(&needle).is_empty() {
        assert!(Instant::now() < deadline, "ffmpeg never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = server.post(&format!("/api/jobs/{job_id}/cancel"), Some(&alice), &json!({})).await?;
    assert!(status == 200 || status == 202, "{status}");
    let asked = Instant::now();
    let job = server.wait_job(&alice, &job_id, Duration::from_secs(10), |j| j["status"] == "cancelled").await?;
    assert!(asked.elapsed() < Duration::from_secs(5), "cancel took {:?}: {job}", asked.elapsed());
    let deadline = Instant::now() + Duration::from_secs(3);
    while !processes_with(&needle).is_empty() {
        assert!(Instant::now() < deadline, "ffmpeg survived the cancel: {:?}", processes_with(&needle));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(job["outputs"].as_array().is_none_or(Vec::is_empty), "{job}");
    server.stop().await
}

dual_test!(
    speech_jobs_and_waveforms,
    timeline_crud_and_validation,
    storyboard_renders_an_mp4,
    cancelling_a_render_kills_ffmpeg
);
