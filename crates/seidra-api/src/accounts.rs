//! Account operations shared by the HTTP handlers and the `seidra user|apikey` CLI, so both
//! apply the same validation, hashing, token revocation and audit rules.

use chrono::{Duration, Utc};
use seidra_core::validation::{validate_label, validate_password, validate_username};
use seidra_core::{ApiKeyScope, Role, ValidationError};
use seidra_store::accounts::{self, NewUser, User};
use seidra_store::api_keys::{self, ApiKey, NewApiKey};
use seidra_store::audit::{self, NewAuditEntry};
use seidra_store::{Db, StoreError, refresh_tokens};
use uuid::Uuid;

use crate::auth::password::hash_password;
use crate::auth::tokens::new_api_key;
use crate::error::ApiError;

/// Who performed an action, for the audit log.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    /// Acting account (None = CLI / system).
    pub user_id: Option<Uuid>,
    /// Client IP, when over HTTP.
    pub ip: Option<String>,
}

/// Writes an audit entry; a failure to audit is logged, never hidden from operators.
pub async fn audit(
    db: &Db,
    actor: &Actor,
    action: &str,
    target: Option<String>,
    success: bool,
    details: serde_json::Value,
) {
    let entry = NewAuditEntry { actor_id: actor.user_id, action, target, success, ip: actor.ip.clone(), details };
    if let Err(err) = audit::record(db, &entry).await {
        tracing::error!(%err, action, "could not write audit log entry");
    }
}

/// Creates an account after validating username and password.
pub async fn create_user(db: &Db, actor: &Actor, username: &str, password: &str, role: Role) -> Result<User, ApiError> {
    validate_username("username", username)?;
    validate_password("password", password, username)?;
    let password_hash = hash_password(password.to_owned()).await?;
    let new = NewUser { username: username.to_owned(), password_hash, role };
    let user = accounts::create_user(db, &new).await.map_err(|err| match err {
        StoreError::Conflict { .. } => {
            ApiError::conflict("username_taken", format!("the username `{username}` is already taken"))
                .with_field("username")
        }
        other => other.into(),
    })?;
    audit(
        db,
        actor,
        "user.create",
        Some(user.id.to_string()),
        true,
        serde_json::json!({ "username": username, "role": role }),
    )
    .await;
    Ok(user)
}

/// Sets a new password and signs the account out everywhere (refresh tokens revoked).
pub async fn set_password(
    db: &Db,
    actor: &Actor,
    user: &User,
    new_password: &str,
    field: &str,
) -> Result<(), ApiError> {
    validate_password(field, new_password, &user.username)?;
    let hash = hash_password(new_password.to_owned()).await?;
    accounts::set_password(db, user.id, &hash).await?;
    refresh_tokens::revoke_all_for_user(db, user.id).await?;
    audit(db, actor, "user.password.change", Some(user.id.to_string()), true, serde_json::json!({})).await;
    Ok(())
}

/// Refuses to leave the instance without an enabled admin.
async fn ensure_not_last_admin(db: &Db, user: &User) -> Result<(), ApiError> {
    if user.role == Role::Admin && !user.disabled && accounts::count_active_admins(db).await? <= 1 {
        return Err(ApiError::conflict("last_admin", "this is the last enabled admin; promote another account first"));
    }
    Ok(())
}

/// Disables or re-enables an account; disabling revokes its refresh tokens.
pub async fn set_disabled(db: &Db, actor: &Actor, user: &User, disabled: bool) -> Result<User, ApiError> {
    if disabled {
        ensure_not_last_admin(db, user).await?;
    }
    let updated = accounts::set_disabled(db, user.id, disabled).await?;
    if disabled {
        refresh_tokens::revoke_all_for_user(db, user.id).await?;
    }
    let action = if disabled { "user.disable" } else { "user.enable" };
    audit(db, actor, action, Some(user.id.to_string()), true, serde_json::json!({})).await;
    Ok(updated)
}

/// Changes an account's role.
pub async fn set_role(db: &Db, actor: &Actor, user: &User, role: Role) -> Result<User, ApiError> {
    if role != Role::Admin {
        ensure_not_last_admin(db, user).await?;
    }
    let updated = accounts::set_role(db, user.id, role).await?;
    audit(db, actor, "user.role.change", Some(user.id.to_string()), true, serde_json::json!({ "role": role })).await;
    Ok(updated)
}

/// Upper bound of an API key's lifetime when one is asked for.
pub const MAX_API_KEY_DAYS: u32 = 3650;

/// Creates an API key; returns it with the full token (shown once).
pub async fn create_api_key(
    db: &Db,
    actor: &Actor,
    owner: &User,
    name: &str,
    scopes: &[ApiKeyScope],
    expires_in_days: Option<u32>,
) -> Result<(ApiKey, String), ApiError> {
    validate_label("name", name, 100)?;
    if scopes.is_empty() {
        return Err(ValidationError::new("scopes", "must name at least one of read, generate, admin").into());
    }
    if scopes.contains(&ApiKeyScope::Admin) && owner.role != Role::Admin {
        return Err(ValidationError::new("scopes", "the admin scope needs an admin account").into());
    }
    if let Some(days) = expires_in_days
        && !(1..=MAX_API_KEY_DAYS).contains(&days)
    {
        return Err(ValidationError::new("expires_in_days", format!("must be between 1 and {MAX_API_KEY_DAYS}")).into());
    }
    let (id, token, secret_hash) = new_api_key()?;
    let new = NewApiKey {
        id,
        user_id: owner.id,
        name: name.trim(),
        secret_hash: &secret_hash,
        scopes,
        expires_at: expires_in_days.map(|d| Utc::now() + Duration::days(i64::from(d))),
    };
    let key = api_keys::create(db, &new).await?;
    audit(
        db,
        actor,
        "apikey.create",
        Some(id.to_string()),
        true,
        serde_json::json!({ "name": name, "scopes": scopes }),
    )
    .await;
    Ok((key, token))
}

/// Revokes one of `owner`'s keys; 404 when it does not exist or is not theirs.
pub async fn revoke_api_key(db: &Db, actor: &Actor, owner_id: Uuid, key_id: Uuid) -> Result<(), ApiError> {
    if !api_keys::revoke(db, key_id, owner_id).await? {
        return Err(ApiError::not_found("API key"));
    }
    audit(db, actor, "apikey.revoke", Some(key_id.to_string()), true, serde_json::json!({})).await;
    Ok(())
}
