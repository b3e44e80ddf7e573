//! The candle engine end to end: `POST /api/generate/single` with `engine: "candle"` on a tiny
//! random-weight model, run by an in-process worker, output fetched and checked.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "tests")]

use std::time::Duration;

use seidra_store::Backend;
use seidra_testkit::TestServer;
use serde_json::{Value, json};

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

async fn generate_through_the_job_api(backend: Backend) -> anyhow::Result<()> {
    let models = tempfile::tempdir()?;
    seidra_candle::tiny::write_model(&models.path().join("tiny-sd"))?;
    let dir = models.path().to_path_buf();
    let server = TestServer::builder(backend)
        .settings(move |s| {
            s.models.dir = Some(dir);
            s.engines.candle.enabled = true;
        })
        .with_workers(1)
        .start()
        .await?;
    let token = s(&server.register("alice", "a-long-enough-passphrase").await?["access_token"]);
    let body = json!({
        "prompt": "a lighthouse at dusk", "engine": "candle", "model_name": "tiny-sd",
        "width": 72, "height": 64, "num_inference_steps": 2, "seed": 11, "scheduler": "euler_a",
    });
    let mut hashes = Vec::new();
    for _ in 0..2 {
        let (status, resp) = server.post("/api/generate/single", Some(&token), &body).await?;
        assert_eq!(status, 202, "{resp}");
        let id = s(&resp["jobs"][0]["id"]);
        let done = server.wait_job(&token, &id, Duration::from_secs(120), |j| j["status"] == "succeeded").await?;
        assert_eq!(done["engine"], "candle", "{done}");
        let out = &done["outputs"][0];
        assert_eq!((out["width"].as_i64(), out["height"].as_i64()), (Some(72), Some(64)));
        let bytes = server.client.get(server.url(&s(&out["url"]))).send().await?.bytes().await?;
        let reader = png::Decoder::new(std::io::Cursor::new(bytes.to_vec())).read_info()?;
        assert_eq!((reader.info().width, reader.info().height), (72, 64));
        hashes.push(out["sha256"].clone());
    }
    assert_eq!(hashes[0], hashes[1], "same seed through the API, same image");

    // Engine-specific checks come back as 422s naming the field.
    let bad = json!({ "prompt": "x", "engine": "candle", "model_name": "missing" });
    let (status, resp) = server.post("/api/generate/single", Some(&token), &bad).await?;
    assert_eq!((status, resp["error"]["field"].as_str()), (422, Some("model_name")), "{resp}");
    server.stop().await
}

seidra_testkit::dual_test!(generate_through_the_job_api);
