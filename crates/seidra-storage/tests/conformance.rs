//! One behaviour suite for every backend: the local directory and a real S3 server
//! (SeaweedFS in CI, through `seidra_testkit::TestS3`), plus what only S3 has: presigned URLs
//! that a plain HTTP client can fetch, that expire and that cannot be tampered with.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "tests")]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use seidra_storage::{
    DownloadSigner, LocalStore, Metered, ObjectStore, PresignOptions, S3Config, S3Store, SharedStore, StorageError,
    UrlSigner, list_all,
};
use seidra_testkit::TestS3;
use sha2::{Digest, Sha256};

/// The behaviour every backend must have.
async fn conformance(store: SharedStore) {
    // Put / get / exists / overwrite.
    let bytes = b"\x89PNG fake image bytes".to_vec();
    let stored = store.put("jobs/u1/j1/1-0.png", bytes.clone(), "image/png").await.unwrap();
    assert_eq!(stored.key, "jobs/u1/j1/1-0.png");
    assert_eq!(stored.bytes_len, bytes.len() as u64);
    assert_eq!(stored.sha256_hex, hex::encode(Sha256::digest(&bytes)));
    assert_eq!(store.get("jobs/u1/j1/1-0.png").await.unwrap(), bytes);
    assert!(store.exists("jobs/u1/j1/1-0.png").await.unwrap());
    store.put("jobs/u1/j1/1-0.png", b"v2".to_vec(), "image/png").await.unwrap();
    assert_eq!(store.get("jobs/u1/j1/1-0.png").await.unwrap(), b"v2");
    let empty = store.put("empty.bin", Vec::new(), "application/octet-stream").await.unwrap();
    assert_eq!(empty.bytes_len, 0);
    assert_eq!(store.get("empty.bin").await.unwrap(), Vec::<u8>::new());

    // Missing keys.
    assert!(matches!(store.get("nope.png").await, Err(StorageError::NotFound(k)) if k == "nope.png"));
    assert!(matches!(store.get_range("nope.png", 0, 2).await, Err(StorageError::NotFound(_))));
    assert!(!store.exists("nope.png").await.unwrap());
    // A "directory" of other keys is not an object.
    assert!(!store.exists("jobs/u1").await.unwrap());
    assert!(matches!(store.get("jobs/u1").await, Err(StorageError::NotFound(_))));

    // Ranges follow HTTP semantics (end exclusive, clamped).
    store.put("r.txt", b"0123456789".to_vec(), "text/plain").await.unwrap();
    assert_eq!(store.get_range("r.txt", 2, 5).await.unwrap(), b"234");
    assert_eq!(store.get_range("r.txt", 0, 10).await.unwrap(), b"0123456789");
    assert_eq!(store.get_range("r.txt", 7, 100).await.unwrap(), b"789", "end is clamped");
    assert_eq!(store.get_range("r.txt", 10, 10).await.unwrap(), b"");
    assert_eq!(store.get_range("r.txt", 10, 20).await.unwrap(), b"");
    assert!(matches!(store.get_range("r.txt", 11, 12).await, Err(StorageError::InvalidRange { len: 10, .. })));
    assert!(matches!(store.get_range("r.txt", 5, 2).await, Err(StorageError::InvalidRange { .. })));

    // Listing: by prefix, in key order, paged.
    for i in 0..5 {
        store.put(&format!("list/p/{i}.bin"), vec![b'x'; i + 1], "application/octet-stream").await.unwrap();
    }
    store.put("list/q.bin", b"q".to_vec(), "application/octet-stream").await.unwrap();
    let all = list_all(store.as_ref(), "list/p/").await.unwrap();
    let keys: Vec<&str> = all.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["list/p/0.bin", "list/p/1.bin", "list/p/2.bin", "list/p/3.bin", "list/p/4.bin"]);
    assert_eq!(all.iter().map(|o| o.bytes_len).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    let now = SystemTime::now();
    for o in &all {
        let age = now.duration_since(o.last_modified).unwrap_or_default();
        assert!(age < Duration::from_secs(300), "{o:?} has a plausible mtime");
    }
    let page = store.list("list/", None, 2).await.unwrap();
    assert_eq!(page.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), ["list/p/0.bin", "list/p/1.bin"]);
    let page = store.list("list/", Some("list/p/3.bin"), 10).await.unwrap();
    assert_eq!(page.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), ["list/p/4.bin", "list/q.bin"]);
    assert!(store.list("list/", Some("list/q.bin"), 10).await.unwrap().is_empty());
    assert!(store.list("nothing/", None, 10).await.unwrap().is_empty());

    // Delete is idempotent.
    store.delete("list/q.bin").await.unwrap();
    assert!(!store.exists("list/q.bin").await.unwrap());
    store.delete("list/q.bin").await.unwrap();
    store.delete("never/existed").await.unwrap();

    // Invalid keys are refused before any I/O.
    for key in ["../x", "/etc/passwd", "a//b", ".health/x", "a b"] {
        assert!(matches!(store.put(key, b"x".to_vec(), "text/plain").await, Err(StorageError::InvalidKey { .. })));
        assert!(matches!(store.get(key).await, Err(StorageError::InvalidKey { .. })));
    }

    // Health: a probe round trip that leaves nothing behind.
    let before = list_all(store.as_ref(), "").await.unwrap();
    let took = store.health().await.unwrap();
    assert!(took < Duration::from_secs(5));
    assert_eq!(list_all(store.as_ref(), "").await.unwrap(), before, "the probe is cleaned up and never listed");
}

#[tokio::test]
async fn local_backend_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let store: SharedStore = Arc::new(LocalStore::new(dir.path().join("objects")).unwrap());
    conformance(Arc::new(Metered::new(store))).await;
}

#[tokio::test]
async fn s3_backend_conforms() {
    let s3 = TestS3::new().await.unwrap();
    let store: SharedStore = Arc::new(s3.store.clone());
    conformance(Arc::new(Metered::new(store))).await;
    s3.cleanup().await.unwrap();
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test]
async fn s3_presigned_urls_download_expire_and_resist_tampering() {
    let s3 = TestS3::new().await.unwrap();
    let png = b"\x89PNG\r\n\x1a\n not really".to_vec();
    s3.store.put("jobs/u/j/1-0.png", png.clone(), "image/png").await.unwrap();
    let client = seidra_testkit::http_client();

    // Through the one download-URL function the API uses.
    let store: SharedStore = Arc::new(s3.store.clone());
    let signer = DownloadSigner::new(UrlSigner::new(b"unused for s3"), store);
    let url = signer.url("jobs/u/j/1-0.png", unix_now() + 300, "image/png", Some("cat.png"));
    assert!(url.starts_with(&s3.config.endpoint), "{url}");
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    assert_eq!(response.headers()["content-type"], "image/png");
    assert_eq!(response.headers()["content-disposition"], "inline; filename=\"cat.png\"");
    assert_eq!(response.bytes().await.unwrap().to_vec(), png);

    // A range through a presigned URL (video seeking).
    let response = client.get(&url).header("range", "bytes=0-3").send().await.unwrap();
    assert_eq!(response.status(), 206);
    assert_eq!(response.bytes().await.unwrap().to_vec(), png[..4].to_vec());

    // Tampered: another signature, another key, or a longer expiry with the same signature.
    let sig_at = url.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let mut tampered = url.clone().into_bytes();
    tampered[sig_at] = if tampered[sig_at] == b'0' { b'1' } else { b'0' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(client.get(&tampered).send().await.unwrap().status(), 403, "{tampered}");
    let other_key = url.replace("1-0.png", "1-1.png");
    assert_eq!(client.get(&other_key).send().await.unwrap().status(), 403);
    let longer = url.replace("X-Amz-Expires=", "X-Amz-Expires=9");
    assert_eq!(client.get(&longer).send().await.unwrap().status(), 403);

    // Expired.
    let short = s3.store.presigned_get("jobs/u/j/1-0.png", unix_now() + 1, &PresignOptions::default()).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let response = client.get(&short).send().await.unwrap();
    assert_eq!(response.status(), 403, "an expired presigned URL is refused");

    s3.cleanup().await.unwrap();
}

#[tokio::test]
async fn s3_wrong_credentials_are_a_clear_non_retryable_error() {
    let s3 = TestS3::new().await.unwrap();
    let bad = S3Store::new(S3Config { secret_access_key: "not-the-secret".into(), ..s3.config.clone() }).unwrap();
    let err = bad.health().await.unwrap_err();
    match &err {
        StorageError::Backend { status: Some(403), code: Some(code), .. } => {
            assert!(code == "SignatureDoesNotMatch" || code == "AccessDenied", "{err}");
        }
        other => panic!("expected a 403 backend error, got {other:?}"),
    }
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("HTTP 403"), "{err}");

    let unknown = S3Store::new(S3Config { access_key_id: "NOSUCHKEY".into(), ..s3.config.clone() }).unwrap();
    let err = unknown.get("x").await.unwrap_err();
    assert!(matches!(err, StorageError::Backend { status: Some(403), .. }), "{err:?}");

    // A missing bucket is an error, not "object not found".
    let missing =
        S3Store::new(S3Config { bucket: format!("{}-missing", s3.config.bucket), ..s3.config.clone() }).unwrap();
    let err = missing.get("x").await.unwrap_err();
    assert!(matches!(err, StorageError::Backend { status: Some(404), .. }), "{err:?}");
    assert!(missing.health().await.is_err());

    // Nothing listening: retryable.
    let dead = S3Store::new(S3Config { endpoint: "http://127.0.0.1:9".into(), ..s3.config.clone() }).unwrap();
    let err = dead.exists("x").await.unwrap_err();
    assert!(matches!(err, StorageError::Backend { status: None, .. }), "{err:?}");
    assert!(err.is_retryable());
    s3.cleanup().await.unwrap();
}
