//! HS256 JSON Web Tokens with the algorithm pinned.
//!
//! Written directly on `hmac` + `sha2` rather than a general JWT library: we issue and accept
//! exactly one algorithm, so a token whose header says anything but `HS256` (including `none`
//! or an RSA/HS confusion attempt) is refused before any signature work.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

/// Claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: Uuid,
    /// Issued at (unix seconds).
    pub iat: i64,
    /// Expires at (unix seconds).
    pub exp: i64,
    /// Unique token id.
    pub jti: Uuid,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url parts of JSON.
    #[error("malformed token")]
    Malformed,
    /// Header names another algorithm.
    #[error("unsupported token algorithm")]
    Algorithm,
    /// Signature does not match our key.
    #[error("invalid token signature")]
    Signature,
    /// `exp` is in the past.
    #[error("token expired")]
    Expired,
    /// `iat` is in the future beyond clock skew.
    #[error("token not yet valid")]
    NotYetValid,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
}

/// Allowed clock skew between replicas, seconds.
const LEEWAY_SECS: i64 = 30;

/// Signing key for access tokens.
#[derive(Clone)]
pub struct JwtKeys {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys(********)")
    }
}

impl JwtKeys {
    /// Uses `secret` as the HMAC key (any length is accepted by HMAC; config enforces ≥ 32 bytes).
    pub fn new(secret: &[u8]) -> Result<Self, JwtError> {
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).map_err(|_| JwtError::Malformed)?;
        Ok(Self { mac })
    }

    fn mac(&self) -> Hmac<Sha256> {
        self.mac.clone()
    }

    /// Signs claims into a compact token.
    pub fn encode(&self, claims: &Claims) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let signing_input = format!("{header}.{payload}");
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{signature}")
    }

    /// Verifies a token and returns its claims; `now` is unix seconds.
    pub fn decode(&self, token: &str, now: i64) -> Result<Claims, JwtError> {
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let header_json = URL_SAFE_NO_PAD.decode(header_b64).map_err(|_| JwtError::Malformed)?;
        let header: Header = serde_json::from_slice(&header_json).map_err(|_| JwtError::Malformed)?;
        if header.alg != "HS256" {
            return Err(JwtError::Algorithm);
        }
        let signature = URL_SAFE_NO_PAD.decode(signature_b64).map_err(|_| JwtError::Malformed)?;
        let mut mac = self.mac();
        mac.update(header_b64.as_bytes());
        mac.update(b".");
        mac.update(payload_b64.as_bytes());
        mac.verify_slice(&signature).map_err(|_| JwtError::Signature)?;
        let payload = URL_SAFE_NO_PAD.decode(payload_b64).map_err(|_| JwtError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| JwtError::Malformed)?;
        if claims.exp <= now {
            return Err(JwtError::Expired);
        }
        if claims.iat > now + LEEWAY_SECS {
            return Err(JwtError::NotYetValid);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(now: i64) -> Claims {
        Claims { sub: Uuid::nil(), iat: now, exp: now + 60, jti: Uuid::nil() }
    }

    #[test]
    fn round_trip_and_attacks() {
        let Ok(keys) = JwtKeys::new(b"0123456789abcdef0123456789abcdef") else { panic!("key") };
        let Ok(other) = JwtKeys::new(b"another key of enough length....") else { panic!("key") };
        let token = keys.encode(&claims(1000));
        assert_eq!(keys.decode(&token, 1001), Ok(claims(1000)));
        assert_eq!(keys.decode(&token, 1060), Err(JwtError::Expired));
        assert_eq!(other.decode(&token, 1001), Err(JwtError::Signature));

        let parts: Vec<&str> = token.split('.').collect();
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let forged = format!("{none_header}.{}.", parts.get(1).copied().unwrap_or_default());
        assert_eq!(keys.decode(&forged, 1001), Err(JwtError::Algorithm));

        let tampered_payload = URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&Claims { sub: Uuid::max(), ..claims(1000) }).unwrap_or_default());
        let tampered = format!(
            "{}.{tampered_payload}.{}",
            parts.first().copied().unwrap_or_default(),
            parts.get(2).copied().unwrap_or_default()
        );
        assert_eq!(keys.decode(&tampered, 1001), Err(JwtError::Signature));
        assert_eq!(keys.decode("a.b", 1001), Err(JwtError::Malformed));
    }
}
