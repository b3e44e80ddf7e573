//! Opaque secrets: refresh tokens (`rt_<hex>`) and API keys (`sk_<id>_<hex>`). Only their
//! SHA-256 is stored.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::ApiError;

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> Result<String, ApiError> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(ApiError::internal)?;
    Ok(hex::encode(buf))
}

/// A random password of `len` characters from an unambiguous alphabet.
pub fn random_password(len: usize) -> Result<String, ApiError> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut buf = vec![0u8; len];
    getrandom::fill(&mut buf).map_err(ApiError::internal)?;
    // 256 % 57 bias is negligible for a generated password of this length.
    Ok(buf.iter().map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()])).collect())
}

/// Hex SHA-256.
pub fn sha256_hex(input: &str) -> String {
    hex::encode(Sha256::digest(input.as_bytes()))
}

/// A new refresh token.
pub fn new_refresh_token() -> Result<String, ApiError> {
    Ok(format!("rt_{}", random_hex(32)?))
}

/// A new API key: `(id, full token, hash of the secret part)`.
pub fn new_api_key() -> Result<(Uuid, String, String), ApiError> {
    let id = Uuid::new_v4();
    let secret = random_hex(32)?;
    let token = format!("sk_{}_{secret}", id.simple());
    Ok((id, token, sha256_hex(&secret)))
}

/// Splits `sk_<id>_<secret>` into its id and secret.
pub fn parse_api_key(token: &str) -> Option<(Uuid, &str)> {
    let rest = token.strip_prefix("sk_")?;
    let (id, secret) = rest.split_once('_')?;
    if secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((Uuid::try_parse(id).ok()?, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_key_format() {
        let generated = new_api_key().ok();
        let Some((id, token, hash)) = generated else { panic!("randomness") };
        let parsed = parse_api_key(&token);
        assert_eq!(parsed.map(|p| p.0), Some(id));
        assert_eq!(parsed.map(|p| sha256_hex(p.1)), Some(hash));
        assert!(parse_api_key("sk_nothex_abc").is_none());
        assert!(parse_api_key("rt_abc").is_none());
    }
}
