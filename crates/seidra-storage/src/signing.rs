//! Signed, expiring download URLs for the local backend:
//! `/files/<key>?exp=<unix seconds>&sig=<hex HMAC-SHA256 of "<key>\n<exp>">`.
//!
//! The link is the capability: whoever holds it may download that one object until `exp`,
//! without a session (so `<img src>` works). Changing the key or the expiry breaks the
//! signature; the comparison is constant-time.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::validate_key;

/// Path prefix of signed download URLs (the API serves `GET /files/{*key}`).
pub const DOWNLOAD_PATH_PREFIX: &str = "/files/";

/// SHA-256 block size: HMAC keys are hashed down or zero-padded to this.
const BLOCK: usize = 64;

/// Why a signed URL was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signature is valid but the link has expired.
    #[error("the download link has expired")]
    Expired,
    /// The signature does not match the key and expiry (tampered, truncated or forged).
    #[error("the download link is invalid")]
    Invalid,
}

/// Signs and verifies download URLs with a server secret.
#[derive(Clone)]
pub struct UrlSigner {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.write_str("UrlSigner { .. }")
    }
}

impl UrlSigner {
    /// A signer keyed with `secret` (any length; use at least 32 random bytes).
    pub fn new(secret: &[u8]) -> Self {
        // HMAC's own key preparation (RFC 2104): hash keys longer than a block, zero-pad the
        // rest. Doing it here gives a fixed-size key, so construction cannot fail.
        let mut block = [0u8; BLOCK];
        if secret.len() > BLOCK {
            block[..32].copy_from_slice(&Sha256::digest(secret));
        } else {
            block[..secret.len()].copy_from_slice(secret);
        }
        Self { mac: <Hmac<Sha256> as KeyInit>::new(&block.into()) }
    }

    fn tag(&self, key: &str, expires_at_unix: u64) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(key.as_bytes());
        mac.update(b"\n");
        mac.update(expires_at_unix.to_string().as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Hex signature of `key` valid until `expires_at_unix`.
    pub fn signature(&self, key: &str, expires_at_unix: u64) -> String {
        hex::encode(self.tag(key, expires_at_unix))
    }

    /// The download path and query for `key` (a valid object key, so it needs no escaping).
    pub fn sign(&self, key: &str, expires_at_unix: u64) -> String {
        format!("{DOWNLOAD_PATH_PREFIX}{key}?exp={expires_at_unix}&sig={}", self.signature(key, expires_at_unix))
    }

    /// Checks a link's `key`, `exp` and `sig` at time `now_unix`. The signature is checked
    /// first, so a forged link is `Invalid` whatever its expiry.
    pub fn verify(&self, key: &str, exp: u64, sig: &str, now_unix: u64) -> Result<(), SignatureError> {
        if validate_key(key).is_err() {
            return Err(SignatureError::Invalid);
        }
        let mut given = [0u8; 32];
        if hex::decode_to_slice(sig, &mut given).is_err() {
            return Err(SignatureError::Invalid);
        }
        if !bool::from(self.tag(key, exp).ct_eq(&given)) {
            return Err(SignatureError::Invalid);
        }
        if now_unix >= exp {
            return Err(SignatureError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test cases 1 (short key) and 6 (key longer than a block): the fixed-block key
    /// preparation must give standard HMAC-SHA256.
    #[test]
    fn matches_rfc_4231() {
        let short = UrlSigner::new(&[0x0b; 20]);
        let mut mac = short.mac.clone();
        mac.update(b"Hi There");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        let long = UrlSigner::new(&[0xaa; 131]);
        let mut mac = long.mac.clone();
        mac.update(b"Test Using Larger Than Block-Size Key - Hash Key First");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn debug_hides_the_key() {
        assert_eq!(format!("{:?}", UrlSigner::new(b"secret")), "UrlSigner { .. }");
    }
}
