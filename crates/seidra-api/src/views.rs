//! Request and response bodies of the account endpoints (documented in the OpenAPI spec).

use chrono::{DateTime, Utc};
use seidra_core::{ApiKeyScope, Role};
use seidra_store::accounts::User;
use seidra_store::api_keys::ApiKey;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// A user as clients see it (never the password hash).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    /// Id.
    pub id: Uuid,
    /// Login name.
    pub username: String,
    /// Role.
    pub role: Role,
    /// Whether the account is disabled.
    pub disabled: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last successful login.
    pub last_login_at: Option<DateTime<Utc>>,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id,
            username: u.username.clone(),
            role: u.role,
            disabled: u.disabled,
            created_at: u.created_at,
            last_login_at: u.last_login_at,
        }
    }
}

/// Username + password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// Login name.
    pub username: String,
    /// Password.
    pub password: String,
}

/// Tokens issued by login, register and refresh.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Single-use token for `POST /api/auth/refresh`.
    pub refresh_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The signed-in account.
    pub user: UserView,
}

/// A refresh token to exchange.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token from the last login or refresh.
    pub refresh_token: String,
}

/// What to sign out.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    /// Revoke this session (its refresh-token family).
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// Revoke every session of the account.
    #[serde(default)]
    pub all: bool,
}

/// Password change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    /// The current password.
    pub current_password: String,
    /// The new password (≥ 12 characters, not a common one).
    pub new_password: String,
}

/// An API key (without its secret).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyView {
    /// Key id.
    pub id: Uuid,
    /// Label.
    pub name: String,
    /// Scopes.
    pub scopes: Vec<ApiKeyScope>,
    /// First characters of the token, to recognise it.
    pub prefix: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Expiry, if any.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last use (updated at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// Revocation time.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<&ApiKey> for ApiKeyView {
    fn from(k: &ApiKey) -> Self {
        Self {
            id: k.id,
            name: k.name.clone(),
            scopes: k.scopes.clone(),
            prefix: format!("sk_{}", k.id.simple()),
            created_at: k.created_at,
            expires_at: k.expires_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
        }
    }
}

/// A new API key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// Label (1–100 characters).
    pub name: String,
    /// Scopes: `read`, `generate`, `admin` (admin accounts only).
    pub scopes: Vec<ApiKeyScope>,
    /// Optional lifetime in days (1–3650).
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

/// A created API key with its token, shown only in this response.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedApiKey {
    /// The key.
    pub key: ApiKeyView,
    /// `sk_<id>_<secret>`; store it now, it cannot be shown again.
    pub token: String,
}

/// API keys of the caller.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyList {
    /// Keys, newest first.
    pub items: Vec<ApiKeyView>,
}

/// A page of users.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserPage {
    /// Users, by username.
    pub items: Vec<UserView>,
    /// Total number of users.
    pub total: i64,
    /// Page size used.
    pub limit: i64,
    /// Offset used.
    pub offset: i64,
}

/// Pagination parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Page size (1–200, default 50).
    pub limit: Option<i64>,
    /// Items to skip (default 0).
    pub offset: Option<i64>,
}

impl PageQuery {
    /// Validated `(limit, offset)`.
    pub fn resolve(&self) -> Result<(i64, i64), seidra_core::ValidationError> {
        let limit = self.limit.unwrap_or(50);
        let offset = self.offset.unwrap_or(0);
        if !(1..=200).contains(&limit) {
            return Err(seidra_core::ValidationError::new("limit", "must be between 1 and 200"));
        }
        if offset < 0 {
            return Err(seidra_core::ValidationError::new("offset", "must not be negative"));
        }
        Ok((limit, offset))
    }
}

/// An account created by an admin.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminCreateUser {
    /// Login name.
    pub username: String,
    /// Initial password.
    pub password: String,
    /// Role (default `user`).
    #[serde(default)]
    pub role: Option<Role>,
}

/// Changes to an account, by an admin; absent fields are left alone.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminUpdateUser {
    /// Disable (true) or re-enable (false).
    #[serde(default)]
    pub disabled: Option<bool>,
    /// New role.
    #[serde(default)]
    pub role: Option<Role>,
    /// New password (signs the user out everywhere).
    #[serde(default)]
    pub password: Option<String>,
}

/// One audit record.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditView {
    /// Sequence number.
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who (absent for CLI/system actions or deleted accounts).
    pub actor_id: Option<Uuid>,
    /// What (`auth.login`, `user.disable`…).
    pub action: String,
    /// On what.
    pub target: Option<String>,
    /// `success` or `failure`.
    pub outcome: String,
    /// From where.
    pub ip: Option<String>,
    /// Context.
    pub details: serde_json::Value,
}

/// A page of audit records.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    /// Records, newest first.
    pub items: Vec<AuditView>,
}
