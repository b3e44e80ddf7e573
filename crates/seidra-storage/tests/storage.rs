//! The local backend through the `ObjectStore` trait, and signed download URLs.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::path::Path;
use std::sync::Arc;

use seidra_storage::{LocalStore, ObjectStore, SharedStore, SignatureError, StorageError, UrlSigner};
use sha2::{Digest, Sha256};

fn store() -> (tempfile::TempDir, SharedStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path().join("objects")).unwrap();
    (dir, Arc::new(store))
}

/// Every file under `root`, relative, sorted.
fn files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn put_get_round_trip() {
    let (_dir, store) = store();
    let bytes = b"\x89PNG fake image bytes".to_vec();
    let stored = store.put("outputs/2025/01/job-1/0.png", bytes.clone(), "image/png").await.unwrap();
    assert_eq!(stored.key, "outputs/2025/01/job-1/0.png");
    assert_eq!(stored.bytes_len, bytes.len() as u64);
    assert_eq!(stored.sha256_hex, hex::encode(Sha256::digest(&bytes)));
    assert_eq!(store.get("outputs/2025/01/job-1/0.png").await.unwrap(), bytes);
    assert!(store.exists("outputs/2025/01/job-1/0.png").await.unwrap());
    assert_eq!(store.backend(), "local");

    // Overwrite replaces the whole object.
    store.put("outputs/2025/01/job-1/0.png", b"v2".to_vec(), "image/png").await.unwrap();
    assert_eq!(store.get("outputs/2025/01/job-1/0.png").await.unwrap(), b"v2");

    // Empty objects are objects too.
    let empty = store.put("empty", Vec::new(), "application/octet-stream").await.unwrap();
    assert_eq!(empty.bytes_len, 0);
    assert_eq!(empty.sha256_hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_eq!(store.get("empty").await.unwrap(), Vec::<u8>::new());
}

#[tokio::test]
async fn missing_objects_are_not_found() {
    let (_dir, store) = store();
    assert!(matches!(store.get("nope.png").await, Err(StorageError::NotFound(k)) if k == "nope.png"));
    assert!(!store.exists("nope.png").await.unwrap());
    // A "directory" holding other keys is not an object.
    store.put("a/b.png", b"x".to_vec(), "image/png").await.unwrap();
    assert!(matches!(store.get("a").await, Err(StorageError::NotFound(_))));
    assert!(!store.exists("a").await.unwrap());
    assert!(matches!(store.get_range("a", 0, 1).await, Err(StorageError::NotFound(_))));
}

#[tokio::test]
async fn ranges_follow_http_semantics() {
    let (_dir, store) = store();
    store.put("r", b"0123456789".to_vec(), "text/plain").await.unwrap();
    assert_eq!(store.get_range("r", 2, 5).await.unwrap(), b"234");
    assert_eq!(store.get_range("r", 7, 100).await.unwrap(), b"789", "end is clamped");
    assert_eq!(store.get_range("r", 10, 10).await.unwrap(), b"");
    assert!(matches!(store.get_range("r", 11, 12).await, Err(StorageError::InvalidRange { len: 10, .. })));
    assert!(matches!(store.get_range("r", 5, 2).await, Err(StorageError::InvalidRange { .. })));
}

#[tokio::test]
async fn writes_are_atomic_and_leave_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("objects");
    let store = Arc::new(LocalStore::new(&root).unwrap());
    // Concurrent writers to the same key and to other keys.
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let body = vec![i; 64 * 1024];
            store.put("same/key.bin", body.clone(), "application/octet-stream").await.unwrap();
            store.put(&format!("own/{i}.bin"), body, "application/octet-stream").await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Whichever writer won, the object is one writer's whole body, never a mix.
    let same = store.get("same/key.bin").await.unwrap();
    assert_eq!(same.len(), 64 * 1024);
    assert!(same.iter().all(|b| *b == same[0]));

    let mut expected: Vec<String> = (0..16).map(|i| format!("own/{i}.bin")).collect();
    expected.push("same/key.bin".to_owned());
    expected.sort();
    assert_eq!(files(&root), expected, "only objects, no temporary files");
    assert_eq!(std::fs::read_dir(root.join(".tmp")).unwrap().count(), 0);
}

#[tokio::test]
async fn delete_is_idempotent() {
    let (_dir, store) = store();
    store.put("d/x.png", b"x".to_vec(), "image/png").await.unwrap();
    store.delete("d/x.png").await.unwrap();
    assert!(!store.exists("d/x.png").await.unwrap());
    assert!(matches!(store.get("d/x.png").await, Err(StorageError::NotFound(_))));
    store.delete("d/x.png").await.unwrap();
    store.delete("never/existed").await.unwrap();
    store.delete("d").await.unwrap();
}

#[tokio::test]
async fn invalid_keys_are_refused_everywhere() {
    let (dir, store) = store();
    std::fs::write(dir.path().join("secret.txt"), b"outside the store").unwrap();
    for key in ["../secret.txt", "/etc/passwd", "a/../../secret.txt", "a/..", "", "a//b", "a/", ".tmp/x", "a b", "a\\b"]
    {
        let refused = |r: Result<(), StorageError>| matches!(r, Err(StorageError::InvalidKey { .. }));
        assert!(refused(store.put(key, b"x".to_vec(), "text/plain").await.map(drop)), "put {key:?}");
        assert!(refused(store.get(key).await.map(drop)), "get {key:?}");
        assert!(refused(store.get_range(key, 0, 1).await.map(drop)), "get_range {key:?}");
        assert!(refused(store.exists(key).await.map(drop)), "exists {key:?}");
        assert!(refused(store.delete(key).await), "delete {key:?}");
    }
    assert!(store.put(&"k".repeat(513), b"x".to_vec(), "text/plain").await.is_err());
    assert_eq!(std::fs::read(dir.path().join("secret.txt")).unwrap(), b"outside the store");
}

#[tokio::test]
async fn health_probes_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("objects");
    let store = LocalStore::new(&root).unwrap();
    let took = store.health().await.unwrap();
    assert!(took.as_secs() < 5);
    assert!(files(&root).is_empty(), "{:?}", files(&root));
}

#[tokio::test]
async fn io_failures_are_typed_and_retryable() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("objects");
    let store = LocalStore::new(&root).unwrap();
    // A file where a directory is needed: the write cannot happen.
    store.put("blocker", b"x".to_vec(), "text/plain").await.unwrap();
    let err = store.put("blocker/child", b"y".to_vec(), "text/plain").await.unwrap_err();
    assert!(matches!(err, StorageError::Io(_)), "{err:?}");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("blocker"), "{err}");
    assert!(!StorageError::NotFound("k".into()).is_retryable());
    assert_eq!(std::fs::read_dir(root.join(".tmp")).unwrap().count(), 0);
}

#[test]
fn stale_temporary_files_are_swept_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("objects");
    LocalStore::new(&root).unwrap();
    let stale = root.join(".tmp").join("crashed-writer");
    let fresh = root.join(".tmp").join("in-flight-writer");
    std::fs::write(&stale, b"half").unwrap();
    std::fs::write(&fresh, b"half").unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 3600);
    std::fs::File::options().write(true).open(&stale).unwrap().set_modified(old).unwrap();
    let store = LocalStore::new(&root).unwrap();
    assert!(!stale.exists(), "stale temp file removed");
    assert!(fresh.exists(), "another writer's in-flight file kept");
    assert!(store.root().is_absolute());
    assert_eq!(store.path_of("a/b.png").unwrap(), store.root().join("a/b.png"));
    assert!(store.path_of("../x").is_err());
}

const NOW: u64 = 1_750_000_000;

#[test]
fn signed_urls_verify() {
    let signer = UrlSigner::new(b"0123456789abcdef0123456789abcdef");
    let exp = NOW + 300;
    let url = signer.sign("outputs/a/0.png", exp);
    let sig = signer.signature("outputs/a/0.png", exp);
    assert_eq!(url, format!("/files/outputs/a/0.png?exp={exp}&sig={sig}"));
    assert_eq!(sig.len(), 64);
    assert!(sig.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert_eq!(signer.verify("outputs/a/0.png", exp, &sig, NOW), Ok(()));
    // Upper-case hex is the same signature.
    assert_eq!(signer.verify("outputs/a/0.png", exp, &sig.to_uppercase(), NOW), Ok(()));
}

#[test]
fn signed_urls_expire() {
    let signer = UrlSigner::new(b"secret");
    let sig = signer.signature("k.png", NOW);
    assert_eq!(signer.verify("k.png", NOW, &sig, NOW - 1), Ok(()));
    assert_eq!(signer.verify("k.png", NOW, &sig, NOW), Err(SignatureError::Expired));
    assert_eq!(signer.verify("k.png", NOW, &sig, NOW + 3600), Err(SignatureError::Expired));
}

#[test]
fn tampered_urls_are_invalid() {
    let signer = UrlSigner::new(b"secret");
    let exp = NOW + 60;
    let sig = signer.signature("users/1/a.png", exp);
    // Another object with the same signature.
    assert_eq!(signer.verify("users/2/a.png", exp, &sig, NOW), Err(SignatureError::Invalid));
    // A later expiry with the same signature (an expired link cannot be revived).
    assert_eq!(signer.verify("users/1/a.png", exp + 86_400, &sig, NOW), Err(SignatureError::Invalid));
    assert_eq!(signer.verify("users/1/a.png", exp - 1, &sig, NOW), Err(SignatureError::Invalid));
    // Forged, truncated, flipped or non-hex signatures.
    let mut flipped = sig.clone().into_bytes();
    flipped[10] = if flipped[10] == b'0' { b'1' } else { b'0' };
    for bad in
        [String::from_utf8(flipped).unwrap(), sig[..62].to_owned(), format!("{sig}00"), "zz".repeat(32), String::new()]
    {
        assert_eq!(signer.verify("users/1/a.png", exp, &bad, NOW), Err(SignatureError::Invalid), "{bad}");
    }
    // Another secret.
    assert_eq!(UrlSigner::new(b"other").verify("users/1/a.png", exp, &sig, NOW), Err(SignatureError::Invalid));
    // Keys that are not valid object keys never verify.
    let traversal = signer.signature("../etc/passwd", exp);
    assert_eq!(signer.verify("../etc/passwd", exp, &traversal, NOW), Err(SignatureError::Invalid));
}
