//! Object storage through the API: the local `/files/` route (types, lengths, ranges,
//! signatures) and the S3 backend end to end (a real job's output downloaded through its
//! presigned URL, deleted with its media item), against a real S3 server.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "tests")]

use std::time::Duration;

use seidra_config::{Secret, StorageBackend};
use seidra_storage::{ObjectStore, list_all};
use seidra_store::Backend;
use seidra_testkit::{TestS3, TestServer, dual_test};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

fn exp() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp()).unwrap() + 300
}

async fn local_files_serve_types_lengths_and_ranges(backend: Backend) -> anyhow::Result<()> {
    let server = TestServer::start(backend).await?;
    let key = "jobs/u/j/1-0.png";
    server.state.storage.put(key, b"0123456789".to_vec(), "image/png").await?;
    let url = server.url(&server.state.signer.sign(key, exp()));
    let get = |range: Option<&'static str>| {
        let mut req = server.client.get(&url);
        if let Some(r) = range {
            req = req.header("range", r);
        }
        req.send()
    };
    let header = |r: &reqwest::Response, name: &str| {
        r.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    };

    let full = get(None).await?;
    assert_eq!(full.status(), 200);
    assert_eq!(header(&full, "content-type"), "image/png");
    assert_eq!(header(&full, "content-length"), "10");
    assert_eq!(header(&full, "accept-ranges"), "bytes");
    assert_eq!(header(&full, "content-disposition"), "inline; filename=\"1-0.png\"");
    assert_eq!(full.bytes().await?.as_ref(), b"0123456789");

    for (range, body, content_range) in [
        ("bytes=2-4", "234", "bytes 2-4/10"),
        ("bytes=7-", "789", "bytes 7-9/10"),
        ("bytes=-3", "789", "bytes 7-9/10"),
        ("bytes=5-100", "56789", "bytes 5-9/10"),
    ] {
        let r = get(Some(range)).await?;
        assert_eq!(r.status(), 206, "{range}");
        assert_eq!(header(&r, "content-range"), content_range, "{range}");
        assert_eq!(header(&r, "content-length"), body.len().to_string(), "{range}");
        assert_eq!(header(&r, "content-type"), "image/png");
        assert_eq!(r.bytes().await?.as_ref(), body.as_bytes(), "{range}");
    }
    let r = get(Some("bytes=10-")).await?;
    assert_eq!(r.status(), 416);
    assert_eq!(header(&r, "content-range"), "bytes */10");
    // Several ranges: the whole file.
    assert_eq!(get(Some("bytes=0-1,4-5")).await?.status(), 200);

    // Tampered and missing.
    let bad = url.replace("sig=", "sig=0");
    assert_eq!(server.client.get(&bad).send().await?.status(), 403);
    let gone = server.url(&server.state.signer.sign("jobs/u/j/none.png", exp()));
    assert_eq!(server.client.get(&gone).send().await?.status(), 404);

    let (status, health) = server.get("/api/system/health", None).await?;
    assert_eq!(status, 200);
    assert_eq!(health["dependencies"]["storage"]["status"], "ok");
    assert_eq!(health["dependencies"]["storage"]["detail"]["backend"], "local");
    assert!(health["dependencies"]["storage"]["latency_ms"].as_f64().is_some());
    let csp = full_csp(&server).await;
    assert!(csp.contains("img-src 'self' data: blob:;") && !csp.contains("media-src"), "{csp}");
    Ok(())
}

async fn full_csp(server: &TestServer) -> String {
    let resp = server.client.get(server.url("/healthz")).send().await.unwrap();
    resp.headers()["content-security-policy"].to_str().unwrap().to_owned()
}

dual_test!(local_files_serve_types_lengths_and_ranges);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_backend_serves_presigned_outputs_and_deletes_objects() {
    let s3 = TestS3::new().await.unwrap();
    let config = s3.config.clone();
    let server = TestServer::builder(Backend::Sqlite)
        .with_workers(1)
        .settings(|s| {
            s.storage.backend = StorageBackend::S3;
            s.s3.endpoint = config.endpoint.clone();
            s.s3.bucket = config.bucket.clone();
            s.s3.region = config.region.clone();
            s.s3.path_style = true;
            s.s3.access_key_id = config.access_key_id.clone();
            s.s3.secret_access_key = Some(Secret::new(config.secret_access_key.clone()));
        })
        .start()
        .await
        .unwrap();
    assert_eq!(server.state.storage.backend(), "s3");
    let token = server.register("alice", "a-long-enough-passphrase").await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = json!({ "prompt": "a red fox in snow", "width": 64, "height": 64, "num_inference_steps": 2, "seed": 3 });
    let (status, resp) = server.post("/api/generate/single", Some(&token), &body).await.unwrap();
    assert_eq!(status, 202, "{resp}");
    let id = resp["jobs"][0]["id"].as_str().unwrap().to_owned();
    let done = server.wait_job(&token, &id, WAIT, |j| j["status"] == "succeeded").await.unwrap();
    let out = &done["outputs"][0];

    // The URL is a presigned GET on the bucket: a plain client downloads the PNG.
    let url = out["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/{}/jobs/", config.endpoint, config.bucket)), "{url}");
    assert!(url.contains("X-Amz-Signature="), "{url}");
    let resp = reqwest::get(url).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/png");
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(i64::try_from(bytes.len()).unwrap(), out["bytes"].as_i64().unwrap());
    let objects = list_all(&s3.store, "jobs/").await.unwrap();
    assert_eq!(objects.len(), 1, "{objects:?}");

    // Health names the bucket and endpoint, never the secret.
    let (_, health) = server.get("/api/system/health", None).await.unwrap();
    let storage = &health["dependencies"]["storage"];
    assert_eq!(storage["status"], "ok", "{storage}");
    assert_eq!(storage["detail"]["backend"], "s3");
    assert_eq!(storage["detail"]["bucket"], config.bucket.as_str());
    assert_eq!(storage["detail"]["endpoint"], config.endpoint.as_str());
    assert!(!health.to_string().contains(&config.secret_access_key), "no secret in health");

    // The studio may load media from the bucket's origin (and nothing else remote).
    let resp = server.client.get(server.url("/healthz")).send().await.unwrap();
    let csp = resp.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains(&format!("img-src 'self' data: blob: {}", config.endpoint)), "{csp}");
    assert!(csp.contains(&format!("media-src 'self' blob: {}", config.endpoint)), "{csp}");

    // Deleting the media item removes its object from the bucket.
    let media_id = out["media_id"].as_str().unwrap();
    let (status, _) = server.delete(&format!("/api/media/{media_id}"), Some(&token)).await.unwrap();
    assert_eq!(status, 204);
    assert!(!s3.store.exists(&objects[0].key).await.unwrap());
    assert_eq!(reqwest::get(url).await.unwrap().status(), 404);

    server.stop().await.unwrap();
    s3.cleanup().await.unwrap();
}

/// S3 unreachable while a job runs: storing its output fails, the attempt is retried with
/// back-off, then the job fails with `storage_error` naming the cause; no media row is left
/// (nothing half-written is visible) and the API keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_unreachable_jobs_retry_then_fail_clearly() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server = TestServer::builder(Backend::Sqlite)
        .with_workers(1)
        .settings(move |s| {
            s.storage.backend = StorageBackend::S3;
            s.s3.endpoint = format!("http://127.0.0.1:{port}");
            s.s3.bucket = "nowhere".to_owned();
            s.s3.region = "us-east-1".to_owned();
            s.s3.path_style = true;
            s.s3.access_key_id = "key".to_owned();
            s.s3.secret_access_key = Some(Secret::new("secret".to_owned()));
            s.queue.max_attempts = 2;
        })
        .start()
        .await
        .unwrap();
    let token = server.register("alice", "a-long-enough-passphrase").await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = json!({ "prompt": "nowhere to go", "width": 64, "height": 64, "num_inference_steps": 1 });
    let (status, resp) = server.post("/api/generate/single", Some(&token), &body).await.unwrap();
    assert_eq!(status, 202, "{resp}");
    let id = resp["jobs"][0]["id"].as_str().unwrap().to_owned();
    let job = server.wait_job(&token, &id, WAIT, |j| j["status"] == "failed").await.unwrap();
    assert_eq!(job["error"]["code"], "storage_error", "{job}");
    assert!(job["error"]["message"].as_str().unwrap_or_default().contains("could not store"), "{job}");
    assert_eq!(job["attempt"], 2, "retried once before failing: {job}");
    let (status, media) = server.get(&format!("/api/media?job_id={id}"), Some(&token)).await.unwrap();
    assert_eq!((status, media["total"].as_i64()), (200, Some(0)), "no item without its object: {media}");
    let (status, _) = server.get("/api/jobs", Some(&token)).await.unwrap();
    assert_eq!(status, 200, "the API keeps answering");
    server.stop().await.unwrap();
}
