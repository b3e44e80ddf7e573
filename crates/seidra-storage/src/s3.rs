//! The S3 backend: any S3-compatible service (AWS, SeaweedFS, MinIO, Garage, R2…), path-style
//! or virtual-host addressing, requests signed with SigV4 ([`crate::sigv4`]).
//!
//! A PUT replaces an object atomically (readers see the old or the new object, never a part),
//! and carries the body's SHA-256 so the server rejects a corrupted upload. Browsers download
//! through presigned GET URLs made for the public endpoint, which may differ from the one the
//! server uses (cluster-internal service vs. ingress).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sha2::{Digest, Sha256};

use crate::sigv4::{self, Credentials, EMPTY_SHA256, UNSIGNED_PAYLOAD};
use crate::{ObjectInfo, ObjectStore, PresignOptions, StorageError, StoredObject, validate_key};

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Most keys one ListObjectsV2 call returns.
const MAX_LIST_KEYS: usize = 1000;

/// How to reach a bucket.
#[derive(Clone)]
pub struct S3Config {
    /// Base URL of the S3 API the server uses (`https://s3.eu-west-1.amazonaws.com`,
    /// `http://seaweedfs:8333`).
    pub endpoint: String,
    /// Base URL browsers use for presigned downloads, when it differs from `endpoint`.
    pub public_endpoint: Option<String>,
    /// Signing region (`us-east-1` for most self-hosted servers).
    pub region: String,
    /// Bucket name.
    pub bucket: String,
    /// `true`: `endpoint/bucket/key`; `false`: `bucket.endpoint/key` (virtual host).
    pub path_style: bool,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token of temporary credentials.
    pub session_token: Option<String>,
    /// Time limit for one request, including reading the body.
    pub timeout: Duration,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("public_endpoint", &self.public_endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("path_style", &self.path_style)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Where requests go: scheme, host (with port) and the path of the bucket.
#[derive(Debug, Clone)]
struct Endpoint {
    scheme: String,
    /// The `Host` header value.
    host: String,
    /// Encoded path of the bucket root, without a trailing `/` (`/bucket`, or `` virtual-host).
    bucket_path: String,
}

impl Endpoint {
    fn parse(url: &str, bucket: &str, path_style: bool) -> Result<Self, String> {
        let uri: Uri = url.trim().parse().map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        let scheme = match uri.scheme_str() {
            Some(s @ ("http" | "https")) => s.to_owned(),
            _ => return Err(format!("`{url}` must start with http:// or https://")),
        };
        let authority = uri.authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("`{url}` must name a host (and no user info)"));
        }
        if uri.query().is_some() {
            return Err(format!("`{url}` must not have a query string"));
        }
        let base = uri.path().trim_end_matches('/');
        let bucket = sigv4::uri_encode(bucket, false);
        Ok(if path_style {
            Self { scheme, host: authority, bucket_path: format!("{base}/{bucket}") }
        } else {
            Self { scheme, host: format!("{bucket}.{authority}"), bucket_path: base.to_owned() }
        })
    }

    /// Encoded path of `key` (or of the bucket for `None`).
    fn path(&self, key: Option<&str>) -> String {
        match key {
            Some(key) => format!("{}/{}", self.bucket_path, sigv4::uri_encode(key, true)),
            None if self.bucket_path.is_empty() => "/".to_owned(),
            None => self.bucket_path.clone(),
        }
    }

    fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.host)
    }
}

/// Objects in an S3 bucket.
#[derive(Clone)]
pub struct S3Store {
    inner: Arc<Inner>,
}

struct Inner {
    client: HttpClient,
    creds: Credentials,
    region: String,
    bucket: String,
    endpoint: Endpoint,
    public: Endpoint,
    endpoint_url: String,
    timeout: Duration,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("endpoint", &self.inner.endpoint_url)
            .field("bucket", &self.inner.bucket)
            .field("region", &self.inner.region)
            .finish_non_exhaustive()
    }
}

/// A response read to the end.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    /// The S3 error code of an error body (`NoSuchKey`, `SignatureDoesNotMatch`…).
    fn code(&self) -> Option<String> {
        xml_text(std::str::from_utf8(&self.body).ok()?, "Code")
    }

    fn into_error(self, op: &'static str) -> StorageError {
        let text = String::from_utf8_lossy(&self.body);
        let code = xml_text(&text, "Code");
        let message = xml_text(&text, "Message")
            .unwrap_or_else(|| self.status.canonical_reason().unwrap_or("unexpected status").to_owned());
        StorageError::Backend { op, status: Some(self.status.as_u16()), code, message }
    }
}

fn amz_date(now: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(now).format("%Y%m%dT%H%M%SZ").to_string()
}

impl S3Store {
    /// A client for the bucket (no request is made; see [`ObjectStore::health`]).
    pub fn new(config: S3Config) -> Result<Self, StorageError> {
        let invalid = |message: String| StorageError::Config(message);
        if config.bucket.trim().is_empty() {
            return Err(invalid("the S3 bucket name is empty".into()));
        }
        let endpoint = Endpoint::parse(&config.endpoint, &config.bucket, config.path_style).map_err(invalid)?;
        let public = match config.public_endpoint.as_deref().filter(|p| !p.trim().is_empty()) {
            Some(url) => Endpoint::parse(url, &config.bucket, config.path_style).map_err(invalid)?,
            None => endpoint.clone(),
        };
        // ring, passed explicitly: no process-wide default provider is needed or installed.
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| invalid(format!("cannot set up TLS: {e}")))?
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(connector);
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                creds: Credentials {
                    access_key_id: config.access_key_id,
                    secret_access_key: config.secret_access_key,
                    session_token: config.session_token.filter(|t| !t.is_empty()),
                },
                region: config.region,
                bucket: config.bucket,
                endpoint,
                public,
                endpoint_url: config.endpoint.trim().trim_end_matches('/').to_owned(),
                timeout: config.timeout,
            }),
        })
    }

    /// The bucket name.
    pub fn bucket(&self) -> &str {
        &self.inner.bucket
    }

    /// The endpoint URL the server uses.
    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint_url
    }

    /// Creates the bucket (setup and tests; an existing bucket of ours is not an error).
    pub async fn create_bucket(&self) -> Result<(), StorageError> {
        let reply = self.send("create_bucket", Method::PUT, None, Vec::new(), Vec::new(), Bytes::new()).await?;
        if reply.status.is_success() || reply.code().as_deref() == Some("BucketAlreadyOwnedByYou") {
            return Ok(());
        }
        Err(reply.into_error("create_bucket"))
    }

    /// Deletes the (empty) bucket (tests).
    pub async fn delete_bucket(&self) -> Result<(), StorageError> {
        let reply = self.send("delete_bucket", Method::DELETE, None, Vec::new(), Vec::new(), Bytes::new()).await?;
        if reply.status.is_success() || reply.status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        Err(reply.into_error("delete_bucket"))
    }

    /// Signs and sends one request, reading the whole response.
    async fn send(
        &self,
        op: &'static str,
        method: Method,
        key: Option<&str>,
        query: Vec<(String, String)>,
        extra_headers: Vec<(String, String)>,
        body: Bytes,
    ) -> Result<Reply, StorageError> {
        let inner = &self.inner;
        let payload_hash = if body.is_empty() { EMPTY_SHA256.to_owned() } else { hex::encode(Sha256::digest(&body)) };
        let date = amz_date(SystemTime::now());
        let path = inner.endpoint.path(key);
        let mut headers = vec![
            ("host".to_owned(), inner.endpoint.host.clone()),
            ("x-amz-content-sha256".to_owned(), payload_hash.clone()),
            ("x-amz-date".to_owned(), date.clone()),
        ];
        if let Some(token) = &inner.creds.session_token {
            headers.push(("x-amz-security-token".to_owned(), token.clone()));
        }
        headers.extend(extra_headers);
        let sig = sigv4::sign(
            &inner.creds,
            &inner.region,
            &date,
            &sigv4::Request {
                method: method.as_str(),
                path: &path,
                query: &query,
                headers: &headers,
                payload_hash: &payload_hash,
            },
        );
        let query_string = sigv4::canonical_query(&query);
        let url = if query_string.is_empty() {
            format!("{}{path}", inner.endpoint.base_url())
        } else {
            format!("{}{path}?{query_string}", inner.endpoint.base_url())
        };
        let mut builder = Request::builder().method(method).uri(&url);
        for (name, value) in &headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        builder = builder.header("authorization", sigv4::authorization(&inner.creds, &sig));
        let request = builder.body(Full::new(body)).map_err(|e| StorageError::Backend {
            op,
            status: None,
            code: None,
            message: format!("cannot build the request for {url}: {e}"),
        })?;
        let exchange = async {
            let response = inner.client.request(request).await.map_err(|e| StorageError::Backend {
                op,
                status: None,
                code: None,
                message: format!("cannot reach {}: {}", inner.endpoint_url, error_chain(&e)),
            })?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await.map_err(|e| StorageError::Backend {
                op,
                status: Some(parts.status.as_u16()),
                code: None,
                message: format!("reading the response failed: {e}"),
            })?;
            Ok(Reply { status: parts.status, headers: parts.headers, body: body.to_bytes() })
        };
        match tokio::time::timeout(inner.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(StorageError::Backend {
                op,
                status: None,
                code: None,
                message: format!("no answer from {} within {} s", inner.endpoint_url, inner.timeout.as_secs_f64()),
            }),
        }
    }

    async fn put_raw(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<StoredObject, StorageError> {
        let len = bytes.len() as u64;
        let body = Bytes::from(bytes);
        let sha256_hex = hex::encode(Sha256::digest(&body));
        let headers = vec![("content-type".to_owned(), content_type.to_owned())];
        let reply = self.send("put", Method::PUT, Some(key), Vec::new(), headers, body).await?;
        if !reply.status.is_success() {
            return Err(reply.into_error("put"));
        }
        Ok(StoredObject { key: key.to_owned(), bytes_len: len, sha256_hex })
    }

    async fn get_raw(&self, key: &str) -> Result<Vec<u8>, StorageError> {
        let reply = self.send("get", Method::GET, Some(key), Vec::new(), Vec::new(), Bytes::new()).await?;
        match reply.status {
            s if s.is_success() => Ok(reply.body.to_vec()),
            StatusCode::NOT_FOUND if reply.code().as_deref() != Some("NoSuchBucket") => {
                Err(StorageError::NotFound(key.to_owned()))
            }
            _ => Err(reply.into_error("get")),
        }
    }

    async fn delete_raw(&self, key: &str) -> Result<(), StorageError> {
        let reply = self.send("delete", Method::DELETE, Some(key), Vec::new(), Vec::new(), Bytes::new()).await?;
        match reply.status {
            s if s.is_success() => Ok(()),
            StatusCode::NOT_FOUND if reply.code().as_deref() != Some("NoSuchBucket") => Ok(()),
            _ => Err(reply.into_error("delete")),
        }
    }

    /// The object's length, or `None` when there is no object.
    async fn head(&self, key: &str) -> Result<Option<u64>, StorageError> {
        let reply = self.send("head", Method::HEAD, Some(key), Vec::new(), Vec::new(), Bytes::new()).await?;
        match reply.status {
            s if s.is_success() => Ok(Some(
                reply
                    .headers
                    .get(http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            )),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(reply.into_error("head")),
        }
    }

    async fn range(&self, key: &str, start: u64, end: u64) -> Result<Vec<u8>, StorageError> {
        let invalid = |len| StorageError::InvalidRange { key: key.to_owned(), start, end, len };
        if start > end {
            let len = self.head(key).await?.ok_or_else(|| StorageError::NotFound(key.to_owned()))?;
            return Err(invalid(len));
        }
        if start == end {
            // HTTP cannot ask for zero bytes: check the object and its length instead.
            let len = self.head(key).await?.ok_or_else(|| StorageError::NotFound(key.to_owned()))?;
            return if start > len { Err(invalid(len)) } else { Ok(Vec::new()) };
        }
        let headers = vec![("range".to_owned(), format!("bytes={start}-{}", end - 1))];
        let reply = self.send("get_range", Method::GET, Some(key), Vec::new(), headers, Bytes::new()).await?;
        match reply.status {
            StatusCode::PARTIAL_CONTENT => Ok(reply.body.to_vec()),
            // A server that ignores Range sends everything: cut it here.
            StatusCode::OK => {
                let len = reply.body.len() as u64;
                if start > len {
                    return Err(invalid(len));
                }
                let (from, to) =
                    (usize::try_from(start).unwrap_or(usize::MAX), usize::try_from(end.min(len)).unwrap_or(usize::MAX));
                Ok(reply.body.get(from..to).map(<[u8]>::to_vec).unwrap_or_default())
            }
            StatusCode::RANGE_NOT_SATISFIABLE => {
                // Our ranges allow `start == len` (an empty tail); S3 refuses it.
                let len = match content_range_len(&reply.headers) {
                    Some(len) => len,
                    None => self.head(key).await?.ok_or_else(|| StorageError::NotFound(key.to_owned()))?,
                };
                if start == len { Ok(Vec::new()) } else { Err(invalid(len)) }
            }
            StatusCode::NOT_FOUND if reply.code().as_deref() != Some("NoSuchBucket") => {
                Err(StorageError::NotFound(key.to_owned()))
            }
            _ => Err(reply.into_error("get_range")),
        }
    }

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ObjectInfo>, StorageError> {
        let mut after = start_after.map(str::to_owned);
        loop {
            let mut query = vec![
                ("list-type".to_owned(), "2".to_owned()),
                ("max-keys".to_owned(), limit.clamp(1, MAX_LIST_KEYS).to_string()),
            ];
            if !prefix.is_empty() {
                query.push(("prefix".to_owned(), prefix.to_owned()));
            }
            if let Some(after) = &after {
                query.push(("start-after".to_owned(), after.clone()));
            }
            let reply = self.send("list", Method::GET, None, query, Vec::new(), Bytes::new()).await?;
            if !reply.status.is_success() {
                return Err(reply.into_error("list"));
            }
            let text = String::from_utf8_lossy(&reply.body);
            let mut out = Vec::new();
            let mut last_raw = None;
            for entry in xml_blocks(&text, "Contents") {
                let Some(key) = xml_text(entry, "Key") else { continue };
                last_raw = Some(key.clone());
                // Keys another writer made that break our rules are not ours to manage.
                if validate_key(&key).is_err() {
                    continue;
                }
                let bytes_len = xml_text(entry, "Size").and_then(|s| s.parse().ok()).unwrap_or(0);
                let last_modified = xml_text(entry, "LastModified")
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                    .map_or(UNIX_EPOCH, SystemTime::from);
                out.push(ObjectInfo { key, bytes_len, last_modified });
            }
            let truncated = xml_text(&text, "IsTruncated").as_deref() == Some("true");
            // Only foreign keys on this page but more to come: keep going, so that an empty
            // answer keeps meaning "no more objects".
            match last_raw {
                Some(raw) if out.is_empty() && truncated => after = Some(raw),
                _ => return Ok(out),
            }
        }
    }
}

/// `bytes */1234` (or `bytes 0-1/1234`) → 1234.
fn content_range_len(headers: &HeaderMap) -> Option<u64> {
    headers.get(http::header::CONTENT_RANGE)?.to_str().ok()?.rsplit('/').next()?.trim().parse().ok()
}

/// An error with its sources, for messages (hyper's top-level errors say little).
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

/// The text of the first `<tag>…</tag>` in `xml`, entities decoded.
fn xml_text(xml: &str, tag: &str) -> Option<String> {
    xml_blocks(xml, tag).next().map(unescape)
}

/// The inner text of every `<tag>…</tag>` (S3's answers are flat and attribute-free enough).
fn xml_blocks<'a>(xml: &'a str, tag: &str) -> impl Iterator<Item = &'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut rest = xml;
    std::iter::from_fn(move || {
        let start = rest.find(&open)? + open.len();
        let len = rest.get(start..)?.find(&close)?;
        let inner = rest.get(start..start + len)?;
        rest = rest.get(start + len + close.len()..).unwrap_or("");
        Some(inner)
    })
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}

impl ObjectStore for S3Store {
    fn backend(&self) -> &'static str {
        "s3"
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        bytes: Vec<u8>,
        content_type: &'a str,
    ) -> BoxFuture<'a, Result<StoredObject, StorageError>> {
        Box::pin(async move {
            validate_key(key)?;
            self.put_raw(key, bytes, content_type).await
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<u8>, StorageError>> {
        Box::pin(async move {
            validate_key(key)?;
            self.get_raw(key).await
        })
    }

    fn get_range<'a>(&'a self, key: &'a str, start: u64, end: u64) -> BoxFuture<'a, Result<Vec<u8>, StorageError>> {
        Box::pin(async move {
            validate_key(key)?;
            self.range(key, start, end).await
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            validate_key(key)?;
            self.delete_raw(key).await
        })
    }

    fn exists<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, StorageError>> {
        Box::pin(async move {
            validate_key(key)?;
            Ok(self.head(key).await?.is_some())
        })
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<ObjectInfo>, StorageError>> {
        Box::pin(self.list_page(prefix, start_after, limit))
    }

    fn health(&self) -> BoxFuture<'_, Result<Duration, StorageError>> {
        Box::pin(async move {
            let started = Instant::now();
            // The bucket first: some servers (SeaweedFS) create a missing bucket on PUT.
            let reply = self.send("head_bucket", Method::HEAD, None, Vec::new(), Vec::new(), Bytes::new()).await?;
            if !reply.status.is_success() {
                let mut err = reply.into_error("head_bucket");
                // A HEAD answer has no body to name the problem: name it here.
                if let StorageError::Backend { status: Some(status @ (403 | 404)), code, message, .. } = &mut err {
                    let bucket = &self.inner.bucket;
                    (*code, *message) = if *status == 404 {
                        (Some("NoSuchBucket".to_owned()), format!("bucket `{bucket}` does not exist"))
                    } else {
                        (
                            Some("AccessDenied".to_owned()),
                            format!("access to bucket `{bucket}` denied: check the access key id and secret"),
                        )
                    };
                }
                return Err(err);
            }
            let nonce = amz_date(SystemTime::now());
            let key = format!(".health/probe-{nonce}-{}", crate::unique_suffix());
            let payload = format!("seidra storage probe {key}").into_bytes();
            self.put_raw(&key, payload.clone(), "text/plain").await?;
            let read = self.get_raw(&key).await;
            let removed = self.delete_raw(&key).await;
            if read? != payload {
                return Err(StorageError::Corrupt(format!(
                    "s3://{}/{key} read back different bytes",
                    self.inner.bucket
                )));
            }
            removed?;
            Ok(started.elapsed())
        })
    }

    fn presigned_get(&self, key: &str, expires_at_unix: u64, options: &PresignOptions) -> Option<String> {
        validate_key(key).ok()?;
        let inner = &self.inner;
        let now = SystemTime::now();
        let now_unix = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let date = amz_date(now);
        let mut extra = Vec::new();
        if let Some(disposition) = &options.content_disposition {
            extra.push(("response-content-disposition".to_owned(), disposition.clone()));
        }
        if let Some(content_type) = &options.content_type {
            extra.push(("response-content-type".to_owned(), content_type.clone()));
        }
        let mut query =
            sigv4::presign_query(&inner.creds, &inner.region, &date, expires_at_unix.saturating_sub(now_unix), &extra);
        let path = inner.public.path(Some(key));
        let headers = vec![("host".to_owned(), inner.public.host.clone())];
        let sig = sigv4::sign(
            &inner.creds,
            &inner.region,
            &date,
            &sigv4::Request {
                method: "GET",
                path: &path,
                query: &query,
                headers: &headers,
                payload_hash: UNSIGNED_PAYLOAD,
            },
        );
        query.push(("X-Amz-Signature".to_owned(), sig.signature));
        Some(format!("{}{path}?{}", inner.public.base_url(), sigv4::canonical_query(&query)))
    }

    fn download_origin(&self) -> Option<String> {
        Some(self.inner.public.base_url())
    }

    fn describe(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![
            ("endpoint", self.inner.endpoint_url.clone()),
            ("bucket", self.inner.bucket.clone()),
            ("region", self.inner.region.clone()),
        ];
        if self.inner.public.host != self.inner.endpoint.host {
            out.push(("public_endpoint", self.inner.public.base_url()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_address_the_bucket() {
        let path = Endpoint::parse("http://127.0.0.1:8333/", "media", true).ok();
        let path = path.map(|e| (e.host.clone(), e.path(Some("jobs/a b.png")), e.path(None)));
        assert_eq!(path, Some(("127.0.0.1:8333".into(), "/media/jobs/a%20b.png".into(), "/media".into())));
        let vhost = Endpoint::parse("https://s3.eu-west-1.amazonaws.com", "media", false).ok();
        let vhost = vhost.map(|e| (e.host.clone(), e.path(Some("k")), e.path(None)));
        assert_eq!(vhost, Some(("media.s3.eu-west-1.amazonaws.com".into(), "/k".into(), "/".into())));
        assert!(Endpoint::parse("s3.amazonaws.com", "b", true).is_err());
        assert!(Endpoint::parse("ftp://x", "b", true).is_err());
    }

    #[test]
    fn xml_is_read() {
        let xml = "<Error><Code>NoSuchKey</Code><Message>a &amp; b</Message></Error>";
        assert_eq!(xml_text(xml, "Code").as_deref(), Some("NoSuchKey"));
        assert_eq!(xml_text(xml, "Message").as_deref(), Some("a & b"));
        let list = "<R><Contents><Key>a</Key></Contents><Contents><Key>b</Key></Contents></R>";
        let keys: Vec<_> = xml_blocks(list, "Contents").filter_map(|c| xml_text(c, "Key")).collect();
        assert_eq!(keys, ["a", "b"]);
    }
}
