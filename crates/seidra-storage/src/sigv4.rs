//! AWS Signature Version 4 for S3: header-signed requests and presigned query URLs.
//!
//! Written on `hmac`/`sha2` rather than an SDK (compile time); checked against the examples in
//! the S3 SigV4 documentation (see the tests).

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// `x-amz-content-sha256` of an empty body.
pub(crate) const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// Payload hash used by presigned URLs (the body is not known when the link is made).
pub(crate) const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Longest expiry S3 accepts for a presigned URL (7 days).
pub(crate) const MAX_PRESIGN_SECS: u64 = 7 * 24 * 3600;

/// Access key, secret and optional session token (temporary credentials).
#[derive(Clone)]
pub(crate) struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material; the access key id is not secret and helps debugging.
        write!(f, "Credentials {{ access_key_id: {:?}, .. }}", self.access_key_id)
    }
}

/// What gets signed. `path` is already URI-encoded; `query` and `headers` are raw.
pub(crate) struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a [(String, String)],
    /// Lower-case names; must include `host` (and `x-amz-date`, `x-amz-content-sha256` for
    /// header signing).
    pub headers: &'a [(String, String)],
    pub payload_hash: &'a str,
}

/// Percent-encodes per SigV4: everything but `A-Z a-z 0-9 - _ . ~` (and `/` when
/// `keep_slash`, for paths).
pub(crate) fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `a=1&b=2`, names and values encoded, sorted by name then value.
pub(crate) fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> =
        query.iter().map(|(k, v)| (uri_encode(k, false), uri_encode(v, false))).collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The derived signing key for one day, region and service.
fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// The result of signing: which headers were signed, the scope and the hex signature.
pub(crate) struct Signature {
    pub signed_headers: String,
    pub scope: String,
    pub signature: String,
}

/// Signs `req` at `amz_date` (`YYYYMMDDTHHMMSSZ`).
pub(crate) fn sign(creds: &Credentials, region: &str, amz_date: &str, req: &Request<'_>) -> Signature {
    let mut headers: Vec<(String, String)> =
        req.headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_owned())).collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(";");
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        req.path,
        canonical_query(req.query),
        canonical_headers,
        signed_headers,
        req.payload_hash
    );
    let date = amz_date.get(..8).unwrap_or(amz_date);
    let scope = format!("{date}/{region}/s3/aws4_request");
    let string_to_sign =
        format!("{ALGORITHM}\n{amz_date}\n{scope}\n{}", hex::encode(Sha256::digest(canonical_request.as_bytes())));
    let key = signing_key(&creds.secret_access_key, date, region, "s3");
    let signature = hex::encode(hmac(&key, string_to_sign.as_bytes()));
    Signature { signed_headers, scope, signature }
}

/// The `Authorization` header value for a header-signed request.
pub(crate) fn authorization(creds: &Credentials, sig: &Signature) -> String {
    format!(
        "{ALGORITHM} Credential={}/{},SignedHeaders={},Signature={}",
        creds.access_key_id, sig.scope, sig.signed_headers, sig.signature
    )
}

/// Query parameters of a presigned URL before the signature (`X-Amz-Signature` is appended
/// after signing). `extra` are additional parameters (`response-content-type`…).
pub(crate) fn presign_query(
    creds: &Credentials,
    region: &str,
    amz_date: &str,
    expires_secs: u64,
    extra: &[(String, String)],
) -> Vec<(String, String)> {
    let date = amz_date.get(..8).unwrap_or(amz_date);
    let mut query = vec![
        ("X-Amz-Algorithm".to_owned(), ALGORITHM.to_owned()),
        ("X-Amz-Credential".to_owned(), format!("{}/{date}/{region}/s3/aws4_request", creds.access_key_id)),
        ("X-Amz-Date".to_owned(), amz_date.to_owned()),
        ("X-Amz-Expires".to_owned(), expires_secs.clamp(1, MAX_PRESIGN_SECS).to_string()),
        ("X-Amz-SignedHeaders".to_owned(), "host".to_owned()),
    ];
    if let Some(token) = &creds.session_token {
        query.push(("X-Amz-Security-Token".to_owned(), token.clone()));
    }
    query.extend(extra.iter().cloned());
    query
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example credentials of the AWS documentation.
    fn creds() -> Credentials {
        Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }
    }

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    /// "Example: GET Object" of the S3 "Signature Calculations for the Authorization Header" page.
    #[test]
    fn aws_get_object_example() {
        let headers = h(&[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", "20130524T000000Z"),
        ]);
        let req =
            Request { method: "GET", path: "/test.txt", query: &[], headers: &headers, payload_hash: EMPTY_SHA256 };
        let sig = sign(&creds(), "us-east-1", "20130524T000000Z", &req);
        assert_eq!(sig.signed_headers, "host;range;x-amz-content-sha256;x-amz-date");
        assert_eq!(sig.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
        assert_eq!(
            authorization(&creds(), &sig),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,\
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    /// "Example: GET Bucket Lifecycle" (a query parameter with an empty value).
    #[test]
    fn aws_get_bucket_lifecycle_example() {
        let headers = h(&[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", "20130524T000000Z"),
        ]);
        let query = h(&[("lifecycle", "")]);
        let req = Request { method: "GET", path: "/", query: &query, headers: &headers, payload_hash: EMPTY_SHA256 };
        let sig = sign(&creds(), "us-east-1", "20130524T000000Z", &req);
        assert_eq!(sig.signature, "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
    }

    /// "Example: GET Bucket (List Objects)".
    #[test]
    fn aws_list_objects_example() {
        let headers = h(&[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", "20130524T000000Z"),
        ]);
        let query = h(&[("max-keys", "2"), ("prefix", "J")]);
        let req = Request { method: "GET", path: "/", query: &query, headers: &headers, payload_hash: EMPTY_SHA256 };
        let sig = sign(&creds(), "us-east-1", "20130524T000000Z", &req);
        assert_eq!(sig.signature, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
    }

    /// The presigned URL example of "Authenticating Requests: Using Query Parameters".
    #[test]
    fn aws_presigned_url_example() {
        let query = presign_query(&creds(), "us-east-1", "20130524T000000Z", 86400, &[]);
        let headers = h(&[("host", "examplebucket.s3.amazonaws.com")]);
        let req = Request {
            method: "GET",
            path: "/test.txt",
            query: &query,
            headers: &headers,
            payload_hash: UNSIGNED_PAYLOAD,
        };
        let sig = sign(&creds(), "us-east-1", "20130524T000000Z", &req);
        assert_eq!(sig.signature, "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
        assert_eq!(
            canonical_query(&query),
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
             &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        );
    }

    #[test]
    fn encoding_follows_sigv4() {
        assert_eq!(uri_encode("a b/c~d*e", true), "a%20b/c~d%2Ae");
        assert_eq!(uri_encode("a/b", false), "a%2Fb");
        assert_eq!(uri_encode("é", false), "%C3%A9");
        assert_eq!(canonical_query(&h(&[("b", "2"), ("a", "x y")])), "a=x%20y&b=2");
    }

    #[test]
    fn debug_hides_the_secret() {
        let shown = format!("{:?}", creds());
        assert!(!shown.contains("wJalr"), "{shown}");
    }
}
