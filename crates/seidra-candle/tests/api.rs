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

/// A server with the candle engine on, reading models from `dir`, and one worker.
async fn candle_server(backend: Backend, dir: &std::path::Path) -> anyhow::Result<TestServer> {
    let dir = dir.to_path_buf();
    TestServer::builder(backend)
        .settings(move |s| {
            s.models.dir = Some(dir);
            s.engines.candle.enabled = true;
        })
        .with_workers(1)
        .start()
        .await
}

async fn generate_through_the_job_api(backend: Backend) -> anyhow::Result<()> {
    let models = tempfile::tempdir()?;
    seidra_candle::tiny::write_model(&models.path().join("tiny-sd"))?;
    let server = candle_server(backend, models.path()).await?;
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

/// SDXL and SDXL-Turbo through the same path: both encoders, the `text_time` embedding, the
/// 0.13025 VAE; the catalogue files both as `sdxl`; an SGM-layout LoRA is a 422.
async fn sdxl_through_the_job_api(backend: Backend) -> anyhow::Result<()> {
    let models = tempfile::tempdir()?;
    seidra_candle::tiny::write_sdxl_model(&models.path().join("tiny-sdxl"), false)?;
    seidra_candle::tiny::write_sdxl_model(&models.path().join("tiny-sdxl-turbo"), true)?;
    let server = candle_server(backend, models.path()).await?;
    let token = s(&server.register("alice", "a-long-enough-passphrase").await?["access_token"]);
    let run = |body: Value| {
        let (server, token) = (&server, &token);
        async move {
            let (status, resp) = server.post("/api/generate/single", Some(token), &body).await?;
            assert_eq!(status, 202, "{resp}");
            let id = s(&resp["jobs"][0]["id"]);
            let done = server.wait_job(token, &id, Duration::from_secs(120), |j| j["status"] == "succeeded").await?;
            let out = done["outputs"][0].clone();
            let bytes = server.client.get(server.url(&s(&out["url"]))).send().await?.bytes().await?;
            let reader = png::Decoder::new(std::io::Cursor::new(bytes.to_vec())).read_info()?;
            let size = (reader.info().width, reader.info().height);
            anyhow::Ok((size, out["sha256"].clone()))
        }
    };
    let body = |seed: u64| {
        json!({
            "prompt": "a lighthouse at dusk", "engine": "candle", "model_name": "tiny-sdxl",
            "width": 72, "height": 64, "num_inference_steps": 2, "seed": seed, "scheduler": "euler",
        })
    };
    let (size, first) = run(body(11)).await?;
    assert_eq!(size, (72, 64));
    assert_eq!(run(body(11)).await?.1, first, "same seed through the API, same image");
    assert_ne!(run(body(12)).await?.1, first, "another seed, another image");
    let turbo = json!({
        "prompt": "a lighthouse at dusk", "engine": "candle", "model_name": "tiny-sdxl-turbo",
        "width": 64, "height": 64, "num_inference_steps": 1, "guidance_scale": 0, "seed": 3, "scheduler": "euler_a",
    });
    assert_eq!(run(turbo).await?.0, (64, 64));

    // The catalogue reads both directories as SDXL.
    let admin = server.admin_token().await?;
    let (status, report) = server.post("/api/models/rescan", Some(&admin), &Value::Null).await?;
    assert_eq!(status, 200, "{report}");
    let (_, list) = server.get("/api/models?architecture=sdxl", Some(&token)).await?;
    let mut names: Vec<String> = list["items"].as_array().unwrap().iter().map(|m| s(&m["name"])).collect();
    names.sort();
    assert_eq!(names, ["tiny-sdxl", "tiny-sdxl-turbo"], "{list}");

    // A kohya SDXL LoRA in the original UNet layout cannot be merged: a 422 naming it, not ignored.
    let tensors: std::collections::HashMap<String, candle_core::Tensor> = [
        ("lora_unet_input_blocks_4_1_proj_in.lora_down.weight", [2usize, 64]),
        ("lora_unet_input_blocks_4_1_proj_in.lora_up.weight", [64, 2]),
    ]
    .into_iter()
    .map(|(n, dims)| {
        (
            n.to_owned(),
            candle_core::Tensor::zeros(&dims[..], candle_core::DType::F32, &candle_core::Device::Cpu).unwrap(),
        )
    })
    .collect();
    candle_core::safetensors::save(&tensors, models.path().join("kohya-xl.safetensors"))?;
    let mut bad = body(1);
    bad["loras"] = json!([{ "name": "kohya-xl", "weight": 0.8 }]);
    let (status, resp) = server.post("/api/generate/single", Some(&token), &bad).await?;
    assert_eq!((status, resp["error"]["field"].as_str()), (422, Some("loras[0].name")), "{resp}");
    server.stop().await
}

seidra_testkit::dual_test!(generate_through_the_job_api);
seidra_testkit::dual_test!(sdxl_through_the_job_api);
