//! Model files: header parsing and classification, directory scans, and downloads from a real
//! local HTTP server (good file, bad hash, pickle, oversize, truncated, cancel).

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "tests")]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use seidra_models::download::{self, DownloadOptions};
use seidra_models::safetensors::{self, build};
use seidra_models::{Architecture, ModelError, ModelKind, classify, scan};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

fn sd15_checkpoint() -> Vec<u8> {
    build(
        &[
            ("model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight", &[320, 768]),
            ("cond_stage_model.transformer.text_model.embeddings.position_ids", &[1, 77]),
            ("first_stage_model.decoder.conv_in.weight", &[4, 4, 1, 1]),
        ],
        &[],
    )
}

fn kind_of(bytes: &[u8]) -> (ModelKind, Architecture) {
    classify::classify(&safetensors::parse(bytes).unwrap())
}

#[test]
fn classification_by_tensor_names_shapes_and_metadata() {
    assert_eq!(kind_of(&sd15_checkpoint()), (ModelKind::Base, Architecture::Sd15));
    let sd21 = build(
        &[
            ("model.diffusion_model.out.0.weight", &[320]),
            ("cond_stage_model.model.token_embedding.weight", &[8, 1024]),
        ],
        &[],
    );
    assert_eq!(kind_of(&sd21), (ModelKind::Base, Architecture::Sd21));
    let sdxl = build(
        &[
            ("model.diffusion_model.out.0.weight", &[320]),
            ("conditioner.embedders.1.model.token_embedding.weight", &[8, 1280]),
        ],
        &[],
    );
    assert_eq!(kind_of(&sdxl), (ModelKind::Base, Architecture::Sdxl));
    // A bare UNet: the family comes from the cross-attention width.
    let unet =
        build(&[("model.diffusion_model.middle_block.1.transformer_blocks.0.attn2.to_k.weight", &[4, 2048])], &[]);
    assert_eq!(kind_of(&unet), (ModelKind::Base, Architecture::Sdxl));
    // A diffusers-layout SDXL UNet file alone: its `add_embedding` says SDXL even when narrow.
    let diffusers_unet = build(
        &[
            ("add_embedding.linear_1.weight", &[128, 80]),
            ("down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight", &[64, 64]),
        ],
        &[],
    );
    assert_eq!(kind_of(&diffusers_unet), (ModelKind::Unknown, Architecture::Sdxl));
    let diffusers_sd15 =
        build(&[("down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight", &[320, 768])], &[]);
    assert_eq!(kind_of(&diffusers_sd15), (ModelKind::Unknown, Architecture::Sd15));
    // Diffusers directories: the class name, a second text encoder or the UNet's `text_time`.
    let sd_index = serde_json::json!({ "_class_name": "StableDiffusionPipeline" });
    let xl_unet = serde_json::json!({ "addition_embed_type": "text_time", "cross_attention_dim": 64 });
    let sd_te = serde_json::json!({ "hidden_size": 768 });
    assert_eq!(classify::classify_diffusers(&sd_index, Some(&sd_te), None), Architecture::Sd15);
    assert_eq!(classify::classify_diffusers(&sd_index, Some(&sd_te), Some(&xl_unet)), Architecture::Sdxl);
    let two = serde_json::json!({ "_class_name": "DiffusionPipeline", "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"] });
    assert_eq!(classify::classify_diffusers(&two, None, None), Architecture::Sdxl);
    let none = serde_json::json!({ "_class_name": "StableDiffusionPipeline", "text_encoder_2": [null, null] });
    assert_eq!(classify::classify_diffusers(&none, Some(&sd_te), None), Architecture::Sd15);

    let kohya_xl = build(
        &[("lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight", &[4, 320])],
        &[("ss_base_model_version", "sdxl_base_v1-0")],
    );
    assert_eq!(kind_of(&kohya_xl), (ModelKind::Lora, Architecture::Sdxl));
    let lora_by_shape = build(
        &[
            ("lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight", &[8, 768]),
            ("lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight", &[1280, 8]),
        ],
        &[],
    );
    assert_eq!(kind_of(&lora_by_shape), (ModelKind::Lora, Architecture::Sd15));
    let peft = build(&[("unet.down_blocks.0.attentions.0.attn2.to_k.lora_A.weight", &[4, 1024])], &[]);
    assert_eq!(kind_of(&peft), (ModelKind::Lora, Architecture::Sd21));
    let vae = build(&[("encoder.conv_in.weight", &[128, 3, 3, 3]), ("decoder.conv_out.bias", &[3])], &[]);
    assert_eq!(kind_of(&vae), (ModelKind::Vae, Architecture::Unknown));
    assert_eq!(kind_of(&build(&[("something.else", &[2])], &[])).0, ModelKind::Unknown);
}

#[test]
fn malformed_headers_and_pickles_are_refused() {
    let refuse = |bytes: &[u8]| match safetensors::parse(bytes) {
        Err(ModelError::NotSafetensors { reason }) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert!(refuse(&[0x80, 0x02, 0x7d, 0x71]).contains("pickle"));
    assert!(refuse(b"PK\x03\x04rest-of-zip").contains("ZIP"));
    assert!(refuse(&[1, 0, 0]).contains("shorter"));
    assert!(refuse(&u64::MAX.to_le_bytes()).contains("not plausible"));
    let mut not_json = 4u64.to_le_bytes().to_vec();
    not_json.extend_from_slice(b"nope");
    assert!(refuse(&not_json).contains("JSON"));
    let mut empty = 2u64.to_le_bytes().to_vec();
    empty.extend_from_slice(b"{}");
    assert!(refuse(&empty).contains("no tensors"));
}

#[tokio::test]
async fn scan_catalogues_safetensors_and_diffusers_and_refuses_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tokio::fs::create_dir_all(root.join("loras")).await.unwrap();
    tokio::fs::write(root.join("dreamshaper.safetensors"), sd15_checkpoint()).await.unwrap();
    let lora = build(&[("lora_unet_x.lora_down.weight", &[4, 768])], &[("ss_base_model_version", "sd_v1")]);
    tokio::fs::write(root.join("loras/ink.safetensors"), &lora).await.unwrap();
    tokio::fs::write(root.join("old.ckpt"), [0x80, 0x02, 0x7d]).await.unwrap();
    let mut truncated = sd15_checkpoint();
    truncated.truncate(truncated.len() - 10);
    tokio::fs::write(root.join("broken.safetensors"), truncated).await.unwrap();
    tokio::fs::write(root.join("notes.txt"), "ignored").await.unwrap();
    // A running download is hidden.
    tokio::fs::create_dir_all(root.join(".partial")).await.unwrap();
    tokio::fs::write(root.join(".partial/x.part"), sd15_checkpoint()).await.unwrap();
    // A diffusers pipeline (SDXL).
    let xl = root.join("sdxl-turbo");
    tokio::fs::create_dir_all(xl.join("unet")).await.unwrap();
    tokio::fs::write(xl.join("model_index.json"), r#"{"_class_name":"StableDiffusionXLPipeline"}"#).await.unwrap();
    tokio::fs::write(xl.join("unet/diffusion_pytorch_model.safetensors"), sd15_checkpoint()).await.unwrap();

    let scan = scan::scan(root, &|_, _, _| None).await.unwrap();
    let found: Vec<(&str, &str, ModelKind, Architecture)> =
        scan.found.iter().map(|f| (f.rel_path.as_str(), f.format, f.kind, f.architecture)).collect();
    assert_eq!(
        found,
        [
            ("dreamshaper.safetensors", "safetensors", ModelKind::Base, Architecture::Sd15),
            ("loras/ink.safetensors", "safetensors", ModelKind::Lora, Architecture::Sd15),
            ("sdxl-turbo", "diffusers", ModelKind::Base, Architecture::Sdxl),
        ]
    );
    let expected_sha = hex::encode(Sha256::digest(sd15_checkpoint()));
    assert_eq!(scan.found[0].sha256.as_deref(), Some(expected_sha.as_str()));
    assert_eq!(scan.found[1].metadata.get("ss_base_model_version").map(String::as_str), Some("sd_v1"));
    let refused: Vec<&str> = scan.refused.iter().map(|r| r.rel_path.as_str()).collect();
    assert_eq!(refused, ["broken.safetensors", "old.ckpt"]);
    assert!(scan.refused[0].reason.contains("the header describes"), "{:?}", scan.refused[0]);
    assert!(scan.refused[1].reason.contains("pickle"), "{:?}", scan.refused[1]);

    // A known hash for an unchanged file is reused, not recomputed.
    let cached =
        scan::scan(root, &|path, _, _| (path == "dreamshaper.safetensors").then(|| "cached".to_owned())).await.unwrap();
    assert_eq!(cached.found[0].sha256.as_deref(), Some("cached"));
}

#[test]
fn download_requests_are_checked_before_any_byte_moves() {
    let refused = |url: &str, name: Option<&str>, http: bool| match download::check_request(url, name, http) {
        Err(ModelError::Refused { reason }) => reason,
        other => panic!("{url}: expected a refusal, got {other:?}"),
    };
    assert!(refused("http://example.com/m.safetensors", None, false).contains("only https"));
    assert!(refused("ftp://example.com/m.safetensors", None, true).contains("ftp"));
    assert!(refused("https://u:p@example.com/m.safetensors", None, false).contains("credentials"));
    assert!(refused("https://example.com/m.ckpt", None, false).contains("pickles"));
    assert!(refused("https://example.com/m.safetensors", Some("x.bin"), false).contains("pickles"));
    assert!(refused("https://example.com/model.zip", None, false).contains("not a .safetensors"));
    assert!(refused("https://example.com/m.safetensors", Some("../../etc/x.safetensors"), false).contains("safe"));
    let (_, name) = download::check_request("https://example.com/a/b/Ink-v2.safetensors?dl=1", None, false).unwrap();
    assert_eq!(name, "Ink-v2.safetensors");
    let (_, name) = download::check_request("http://127.0.0.1/x", Some("my-lora"), true).unwrap();
    assert_eq!(name, "my-lora.safetensors");
}

/// A file server for downloads, counting requests per path.
async fn file_server(files: Vec<(&'static str, Vec<u8>)>) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let hits: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut app = Router::new();
    for (path, body) in files {
        let hits = hits.clone();
        app = app.route(
            path,
            get(move || {
                let (hits, body) = (hits.clone(), body.clone());
                async move {
                    hits.lock().unwrap().push(path.to_owned());
                    if path.ends_with("/missing") {
                        return StatusCode::NOT_FOUND.into_response();
                    }
                    body.into_response()
                }
            }),
        );
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, hits)
}

#[tokio::test]
async fn downloads_are_verified_before_they_become_visible() {
    seidra_net::install_crypto_provider();
    let good = sd15_checkpoint();
    let good_sha = hex::encode(Sha256::digest(&good));
    let mut pickle = vec![0x80, 0x04, 0x95];
    pickle.resize(100_000, 7);
    let mut truncated = good.clone();
    truncated.truncate(good.len() - 4);
    let (addr, _) = file_server(vec![
        ("/good.safetensors", good.clone()),
        ("/pickle.safetensors", pickle),
        ("/truncated.safetensors", truncated),
        ("/missing", Vec::new()),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let cancel = CancellationToken::new();
    let opts = |sha: Option<&str>| DownloadOptions { max_bytes: 10 << 20, expected_sha256: sha.map(str::to_owned) };
    let url = |p: &str| url::Url::parse(&format!("http://{addr}{p}")).unwrap();
    let progress_seen = Mutex::new(Vec::new());
    let progress = |done: u64, total: Option<u64>| progress_seen.lock().unwrap().push((done, total));

    // Good file, hash given: lands at its final path with a matching header.
    let dest = dir.path().join("good.safetensors");
    let got = download::download(&client, &url("/good.safetensors"), &dest, &opts(Some(&good_sha)), &progress, &cancel)
        .await
        .unwrap();
    assert_eq!((got.bytes, got.sha256.as_str()), (good.len() as u64, good_sha.as_str()));
    assert_eq!(tokio::fs::read(&dest).await.unwrap(), good);
    let last = *progress_seen.lock().unwrap().last().unwrap();
    assert_eq!(last, (good.len() as u64, Some(good.len() as u64)));

    // The same name again: refused, the existing file untouched.
    let again = download::download(&client, &url("/good.safetensors"), &dest, &opts(None), &progress, &cancel).await;
    assert!(matches!(again, Err(ModelError::Exists { .. })), "{again:?}");

    let attempt = |path: &'static str, dest: &'static str, sha: Option<String>, max: u64| {
        let (client, cancel, dir) = (client.clone(), cancel.clone(), dir.path().to_path_buf());
        let url = url(path);
        async move {
            let options = DownloadOptions { max_bytes: max, expected_sha256: sha };
            let dest = dir.join(dest);
            let r = download::download(&client, &url, &dest, &options, &|_, _| {}, &cancel).await;
            (r, tokio::fs::try_exists(&dest).await.unwrap())
        }
    };
    let (r, exists) = attempt("/good.safetensors", "bad-hash.safetensors", Some("00".repeat(32)), 10 << 20).await;
    assert!(matches!(r, Err(ModelError::HashMismatch { .. })) && !exists, "{r:?}");
    let (r, exists) = attempt("/pickle.safetensors", "pickle.safetensors", None, 10 << 20).await;
    assert!(matches!(&r, Err(ModelError::NotSafetensors { reason }) if reason.contains("pickle")) && !exists, "{r:?}");
    let (r, exists) = attempt("/truncated.safetensors", "truncated.safetensors", None, 10 << 20).await;
    assert!(matches!(r, Err(ModelError::NotSafetensors { .. })) && !exists, "{r:?}");
    let (r, exists) = attempt("/good.safetensors", "big.safetensors", None, 100).await;
    assert!(matches!(r, Err(ModelError::TooLarge { limit: 100 })) && !exists, "{r:?}");
    let (r, exists) = attempt("/missing", "missing.safetensors", None, 10 << 20).await;
    assert!(matches!(r, Err(ModelError::Http { status: 404 })) && !exists, "{r:?}");
    assert!(!r.unwrap_err().is_retryable(), "a 404 will not change");

    // Nothing is left in the partial directory after any of these.
    let mut partial = tokio::fs::read_dir(dir.path().join(".partial")).await.unwrap();
    assert!(partial.next_entry().await.unwrap().is_none(), "partial files are removed");

    // A scan sees only the good file.
    let scan = scan::scan(dir.path(), &|_, _, _| None).await.unwrap();
    assert_eq!(scan.found.iter().map(|f| f.rel_path.as_str()).collect::<Vec<_>>(), ["good.safetensors"]);
}
