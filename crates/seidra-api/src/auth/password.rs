//! argon2id password hashing, off the async runtime.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::error::ApiError;

/// A PHC string of a password nobody knows, verified when the username does not exist so that
/// a failed login takes the same time either way.
static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Hashes a password with argon2id (default parameters: 19 MiB, t=2, p=1).
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || hash_password_blocking(&password)).await.map_err(ApiError::internal)?
}

/// Blocking variant for CLI use.
pub fn hash_password_blocking(password: &str) -> Result<String, ApiError> {
    Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(ApiError::internal)
}

/// Checks a password against a stored hash; `None` hash = unknown user (still does the work).
pub async fn verify_password(password: String, hash: Option<String>) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || {
        let hash = match hash {
            Some(h) => h,
            None => {
                DUMMY_HASH.get_or_init(|| hash_password_blocking("not-a-real-password-000").unwrap_or_default()).clone()
            }
        };
        Argon2::default().verify_password(password.as_bytes(), hash.as_str()).is_ok()
    })
    .await
    .map_err(ApiError::internal)
}
