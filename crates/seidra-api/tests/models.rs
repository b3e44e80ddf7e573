//! The model catalogue through the API: rescans (pickles refused), filters, registration,
//! removal, and downloads as jobs from a real local HTTP server — a good file lands and is
//! catalogued with its hash, a bad hash and a pickle never appear. On SQLite and PostgreSQL.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "test helpers panic on broken fixtures")]

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use seidra_models::safetensors::build;
use seidra_store::Backend;
use seidra_testkit::{TestServer, dual_test};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const PASSWORD: &str = "a-long-enough-passphrase";
const WAIT: Duration = Duration::from_secs(30);

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

fn sdxl_lora() -> Vec<u8> {
    build(
        &[("lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight", &[4, 320])],
        &[("ss_base_model_version", "sdxl_base_v1-0"), ("ss_output_name", "ink")],
    )
}

fn sd15_checkpoint() -> Vec<u8> {
    build(
        &[
            ("model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight", &[320, 768]),
            ("cond_stage_model.transformer.text_model.embeddings.position_ids", &[1, 77]),
        ],
        &[],
    )
}

/// Serves model files on 127.0.0.1; returns the base URL.
async fn file_server() -> String {
    let app = Router::new()
        .route("/files/ink.safetensors", get(|| async { sdxl_lora() }))
        .route("/files/base.safetensors", get(|| async { sd15_checkpoint() }))
        .route("/files/sneaky.safetensors", get(|| async { vec![0x80u8, 0x04, 0x95, 0, 0, 0, 0, 0, 0, 0] }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/files")
}

async fn catalogue_and_downloads(backend: Backend) -> anyhow::Result<()> {
    let models_dir = tempfile::tempdir()?;
    tokio::fs::write(models_dir.path().join("dreamshaper.safetensors"), sd15_checkpoint()).await?;
    tokio::fs::write(models_dir.path().join("legacy.ckpt"), [0x80u8, 0x02, 0x7d]).await?;
    let dir = models_dir.path().to_path_buf();
    let server = TestServer::builder(backend)
        .settings(move |s| {
            s.models.dir = Some(dir);
            s.models.allow_http = true;
            s.models.allow_private = vec!["127.0.0.1/32".into()];
            s.models.scan_on_start = false;
        })
        .with_workers(1)
        .start()
        .await?;
    let admin = server.admin_token().await?;
    let alice = s(&server.register("alice", PASSWORD).await?["access_token"]);

    // Rescan: admins only; the pickle is reported, never catalogued.
    assert_eq!(server.post("/api/models/rescan", Some(&alice), &Value::Null).await?.0, 403);
    let (status, report) = server.post("/api/models/rescan", Some(&admin), &Value::Null).await?;
    assert_eq!((status, report["added"].as_u64()), (200, Some(1)), "{report}");
    assert_eq!(report["refused"][0]["path"], "legacy.ckpt", "{report}");
    assert!(s(&report["refused"][0]["reason"]).contains("pickle"), "{report}");
    let (_, again) = server.post("/api/models/rescan", Some(&admin), &Value::Null).await?;
    assert_eq!((again["added"].as_u64(), again["updated"].as_u64()), (Some(0), Some(0)), "a rescan is idempotent");

    // The startup scan runs in one replica at a time: while another holds the lease it skips;
    // afterwards it runs and gives the lease back.
    let other = uuid::Uuid::now_v7();
    let lease = seidra_api::routes::models::STARTUP_SCAN_LEASE;
    let db = &server.state.db;
    assert!(seidra_store::workers::try_lead(db, lease, other, chrono::Duration::minutes(5)).await?);
    assert!(
        seidra_api::routes::models::scan_at_startup(&server.state)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?
            .is_none()
    );
    seidra_store::workers::resign(db, lease, other).await?;
    let report =
        seidra_api::routes::models::scan_at_startup(&server.state).await.map_err(|e| anyhow::anyhow!(e.message))?;
    assert_eq!(report.map(|r| r.added), Some(0), "scanned (nothing new)");
    assert!(seidra_store::workers::try_lead(db, lease, other, chrono::Duration::minutes(5)).await?, "given back");

    // Everyone signed in reads the catalogue.
    let (status, list) = server.get("/api/models", Some(&alice)).await?;
    assert_eq!((status, list["total"].as_u64()), (200, Some(1)), "{list}");
    let base = &list["items"][0];
    assert_eq!(
        (s(&base["name"]), s(&base["kind"]), s(&base["architecture"])),
        ("dreamshaper".into(), "base".into(), "sd15".into())
    );
    assert_eq!(s(&base["sha256"]), hex::encode(Sha256::digest(sd15_checkpoint())));
    let (status, err) = server.get("/api/models?kind=checkpoint", Some(&alice)).await?;
    assert_eq!((status, err["error"]["field"].as_str()), (422, Some("kind")), "{err}");
    let (_, loras) = server.get("/api/models?kind=lora", Some(&alice)).await?;
    assert_eq!(loras["total"], 0);

    // Downloads: checked before a job exists.
    let files = file_server().await;
    let download = |body: Value| {
        let (server, admin) = (&server, admin.clone());
        async move { server.post("/api/models/download", Some(&admin), &body).await.unwrap() }
    };
    assert_eq!(
        server
            .post("/api/models/download", Some(&alice), &json!({ "url": format!("{files}/ink.safetensors") }))
            .await?
            .0,
        403
    );
    let (status, err) = download(json!({ "url": format!("{files}/model.ckpt") })).await;
    assert_eq!((status, err["error"]["field"].as_str()), (422, Some("url")), "{err}");
    assert!(s(&err["error"]["message"]).contains("pickle"), "{err}");
    let (status, err) =
        download(json!({ "url": format!("{files}/ink.safetensors"), "file_name": "../escape.safetensors" })).await;
    assert_eq!((status, err["error"]["field"].as_str()), (422, Some("file_name")), "{err}");
    let (status, err) = download(json!({ "url": format!("{files}/ink.safetensors"), "sha256": "abc" })).await;
    assert_eq!((status, err["error"]["field"].as_str()), (422, Some("sha256")), "{err}");
    let (status, err) =
        download(json!({ "url": format!("{files}/base.safetensors"), "file_name": "dreamshaper" })).await;
    assert_eq!((status, err["error"]["code"].as_str()), (409, Some("model_exists")), "{err}");

    // A good file with its hash: the job succeeds and the LoRA is catalogued.
    let sha = hex::encode(Sha256::digest(sdxl_lora()));
    let (status, resp) = download(
        json!({ "url": format!("{files}/ink.safetensors"), "sha256": sha, "name": "Ink wash", "description": "test" }),
    )
    .await;
    assert_eq!(status, 202, "{resp}");
    let job_id = s(&resp["job_ids"][0]);
    let job = server.wait_job(&admin, &job_id, WAIT, |j| j["status"] == "succeeded" || j["status"] == "failed").await?;
    assert_eq!(
        (job["status"].as_str(), job["job_type"].as_str()),
        (Some("succeeded"), Some("model_download")),
        "{job}"
    );
    let (_, loras) = server.get("/api/models?kind=lora", Some(&alice)).await?;
    let lora = &loras["items"][0];
    assert_eq!(
        (s(&lora["name"]), s(&lora["architecture"]), s(&lora["source"]), s(&lora["sha256"]), s(&lora["path"])),
        ("Ink wash".into(), "sdxl".into(), "download".into(), sha.clone(), "ink.safetensors".into()),
        "{loras}"
    );
    assert_eq!(lora["metadata"]["ss_output_name"], "ink");
    assert!(models_dir.path().join("ink.safetensors").exists());

    // A wrong hash and a pickle behind a .safetensors name: failed jobs, nothing visible.
    for (file, name, code) in
        [("base.safetensors", "wrong-hash", "sha256_mismatch"), ("sneaky.safetensors", "sneaky", "not_safetensors")]
    {
        let mut body = json!({ "url": format!("{files}/{file}"), "file_name": name });
        if code == "sha256_mismatch" {
            body["sha256"] = json!("0".repeat(64));
        }
        let (status, resp) = download(body).await;
        assert_eq!(status, 202, "{resp}");
        let id = s(&resp["job_ids"][0]);
        let job = server.wait_job(&admin, &id, WAIT, |j| j["status"] == "failed" || j["status"] == "succeeded").await?;
        assert_eq!((job["status"].as_str(), job["error"]["code"].as_str()), (Some("failed"), Some(code)), "{job}");
        assert!(!models_dir.path().join(format!("{name}.safetensors")).exists(), "{name}: no file");
    }
    let (_, all) = server.get("/api/models", Some(&alice)).await?;
    assert_eq!(all["total"], 2, "only the two good models: {all}");
    let mut partial = tokio::fs::read_dir(models_dir.path().join(".partial")).await?;
    assert!(partial.next_entry().await?.is_none(), "no partial file is left behind");

    // Registration names a file already there; paths outside the directory are refused.
    tokio::fs::write(models_dir.path().join("extra.safetensors"), sdxl_lora()).await?;
    let (status, err) = server.post("/api/models", Some(&admin), &json!({ "path": "../etc/passwd" })).await?;
    assert_eq!((status, err["error"]["field"].as_str()), (422, Some("path")), "{err}");
    assert_eq!(server.post("/api/models", Some(&admin), &json!({ "path": "absent.safetensors" })).await?.0, 404);
    assert_eq!(server.post("/api/models", Some(&alice), &json!({ "path": "extra.safetensors" })).await?.0, 403);
    let (status, registered) =
        server.post("/api/models", Some(&admin), &json!({ "path": "extra.safetensors", "name": "Extra ink" })).await?;
    assert_eq!(
        (status, registered["source"].as_str(), registered["kind"].as_str()),
        (201, Some("registered"), Some("lora"))
    );

    // Removal: the row, and the file when asked.
    let path = format!("/api/models/{}", s(&registered["id"]));
    assert_eq!(server.delete(&path, Some(&alice)).await?.0, 403);
    assert_eq!(server.delete(&format!("{path}?delete_file=true"), Some(&admin)).await?.0, 204);
    assert_eq!(server.get(&path, Some(&alice)).await?.0, 404);
    assert!(!models_dir.path().join("extra.safetensors").exists());
    server.stop().await
}

dual_test!(catalogue_and_downloads);
