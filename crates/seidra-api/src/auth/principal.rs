//! Who is calling: resolved once per request from `Authorization: Bearer …` (a JWT or an
//! API key), then handed to handlers through the `Principal` extractor.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::{Duration, Utc};
use seidra_core::{ApiKeyScope, Role};
use seidra_store::accounts::User;
use seidra_store::{StoreError, api_keys};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::jwt::JwtError;
use super::tokens::{parse_api_key, sha256_hex};
use crate::error::ApiError;
use crate::state::AppState;

/// How the caller authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// A JWT access token (the UI): every scope of the user's role.
    Jwt {
        /// Token id.
        jti: Uuid,
    },
    /// An API key with its scopes.
    ApiKey {
        /// Key id.
        id: Uuid,
        /// Granted scopes.
        scopes: Vec<ApiKeyScope>,
    },
}

/// An authenticated, enabled account.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The account.
    pub user: User,
    /// The credential used.
    pub method: AuthMethod,
}

impl Principal {
    /// Key for rate limiting and logs: the API key when one is used, else the user.
    pub fn rate_key(&self) -> String {
        match &self.method {
            AuthMethod::Jwt { .. } => format!("user:{}", self.user.id),
            AuthMethod::ApiKey { id, .. } => format!("key:{id}"),
        }
    }

    /// Whether the caller is an admin.
    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin
    }

    /// Refuses with 403 unless the credential carries `scope` (JWTs carry all).
    pub fn require_scope(&self, scope: ApiKeyScope) -> Result<(), ApiError> {
        match &self.method {
            AuthMethod::Jwt { .. } => Ok(()),
            AuthMethod::ApiKey { scopes, .. } if scopes.contains(&scope) => Ok(()),
            AuthMethod::ApiKey { .. } => Err(ApiError::forbidden(
                "insufficient_scope",
                format!("this API key lacks the `{}` scope", scope.as_str()),
            )),
        }
    }

    /// Refuses with 403 unless the caller is an admin (and, for API keys, has the admin scope).
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if !self.is_admin() {
            return Err(ApiError::forbidden("admin_required", "this endpoint is for administrators"));
        }
        self.require_scope(ApiKeyScope::Admin)
    }

    /// Refuses API keys: some actions (password change, minting keys) need an interactive session.
    pub fn require_session(&self) -> Result<(), ApiError> {
        match self.method {
            AuthMethod::Jwt { .. } => Ok(()),
            AuthMethod::ApiKey { .. } => {
                Err(ApiError::forbidden("session_required", "this action needs a signed-in session, not an API key"))
            }
        }
    }
}

/// The outcome of reading the `Authorization` header, stored in request extensions.
#[derive(Debug, Clone)]
pub enum AuthOutcome {
    /// No credentials were sent.
    Anonymous,
    /// Valid credentials.
    Authenticated(Box<Principal>),
    /// Credentials were sent but refused (the error to return if the route needs auth).
    Rejected(&'static str, String),
}

/// How long `last_used_at` may lag behind real use, to avoid a write per request.
const API_KEY_TOUCH_INTERVAL_SECS: i64 = 60;

/// Resolves a bearer credential. Store failures are errors (→ 503/500), not rejections.
pub async fn authenticate(state: &AppState, bearer: &str) -> Result<AuthOutcome, ApiError> {
    if bearer.starts_with("sk_") {
        return authenticate_api_key(state, bearer).await;
    }
    let claims = match state.jwt.decode(bearer, Utc::now().timestamp()) {
        Ok(c) => c,
        Err(JwtError::Expired) => {
            return Ok(AuthOutcome::Rejected("token_expired", "the access token has expired; refresh it".into()));
        }
        Err(err) => return Ok(AuthOutcome::Rejected("invalid_token", format!("the access token is invalid ({err})"))),
    };
    let user = match state.accounts.get(&state.db, claims.sub).await {
        Ok(u) => u,
        Err(StoreError::NotFound) => {
            return Ok(AuthOutcome::Rejected("invalid_token", "the token's account no longer exists".into()));
        }
        Err(e) => return Err(e.into()),
    };
    if user.disabled {
        return Ok(AuthOutcome::Rejected("account_disabled", "this account is disabled".into()));
    }
    Ok(AuthOutcome::Authenticated(Box::new(Principal { user, method: AuthMethod::Jwt { jti: claims.jti } })))
}

async fn authenticate_api_key(state: &AppState, token: &str) -> Result<AuthOutcome, ApiError> {
    let rejected = || Ok(AuthOutcome::Rejected("invalid_api_key", "the API key is invalid or revoked".into()));
    let Some((id, secret)) = parse_api_key(token) else { return rejected() };
    let key = match api_keys::get(&state.db, id).await {
        Ok(k) => k,
        Err(StoreError::NotFound) => return rejected(),
        Err(e) => return Err(e.into()),
    };
    let matches: bool = sha256_hex(secret).as_bytes().ct_eq(key.secret_hash.as_bytes()).into();
    let now = Utc::now();
    if !matches || key.revoked_at.is_some() || key.expires_at.is_some_and(|exp| exp <= now) {
        return rejected();
    }
    let user = state.accounts.get(&state.db, key.user_id).await?;
    if user.disabled {
        return Ok(AuthOutcome::Rejected("account_disabled", "this account is disabled".into()));
    }
    if key.last_used_at.is_none_or(|t| now - t > Duration::seconds(API_KEY_TOUCH_INTERVAL_SECS)) {
        let db = state.db.clone();
        tokio::spawn(async move {
            if let Err(err) = api_keys::touch(&db, id, now).await {
                tracing::warn!(%err, key.id = %id, "could not record API key use");
            }
        });
    }
    Ok(AuthOutcome::Authenticated(Box::new(Principal {
        user,
        method: AuthMethod::ApiKey { id: key.id, scopes: key.scopes },
    })))
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<AuthOutcome>() {
            Some(AuthOutcome::Authenticated(p)) => Ok((**p).clone()),
            Some(AuthOutcome::Rejected(code, message)) => Err(ApiError::unauthorized(code, message.clone())),
            Some(AuthOutcome::Anonymous) | None => Err(ApiError::unauthorized(
                "authentication_required",
                "send `Authorization: Bearer <access token or API key>`",
            )),
        }
    }
}

/// Extractors that authorize before anything else is read: each refuses callers without the
/// right (401 without credentials, 403 with the wrong API-key scope or role) before the request
/// body is parsed, so an unauthorized caller learns nothing about what the endpoint expects.
/// The OpenAPI `api_key` requirement of each operation names the same scope.
macro_rules! authorizing_extractor {
    ($(#[$doc:meta])* $name:ident, |$principal:ident| $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(pub Principal);

        impl<S: Send + Sync> FromRequestParts<S> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
                let $principal = Principal::from_request_parts(parts, state).await?;
                $check?;
                Ok(Self($principal))
            }
        }
    };
}

authorizing_extractor!(
    /// A caller allowed to read its own resources (API keys need the `read` scope).
    CanRead, |principal| principal.require_scope(ApiKeyScope::Read)
);
authorizing_extractor!(
    /// A caller allowed to create and change its own resources (API keys need `generate`).
    CanGenerate, |principal| principal.require_scope(ApiKeyScope::Generate)
);
authorizing_extractor!(
    /// A signed-in session; API keys are refused (`session_required`).
    SignedIn, |principal| principal.require_session()
);
authorizing_extractor!(
    /// An admin (API keys also need the `admin` scope).
    Admin, |principal| principal.require_admin()
);
