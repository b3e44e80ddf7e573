//! `/api/auth`: register, login, refresh, logout, me, password.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use chrono::{Duration, Utc};
use seidra_core::{Role, ValidationError};
use seidra_store::StoreError;
use seidra_store::accounts::{self, User};
use seidra_store::refresh_tokens::{self, NewRefreshToken};
use uuid::Uuid;

use crate::accounts::{Actor, audit, create_user, set_password};
use crate::auth::jwt::Claims;
use crate::auth::password::verify_password;
use crate::auth::tokens::{new_refresh_token, sha256_hex};
use crate::auth::{CanRead, SignedIn};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppJson, parse_json};
use crate::middleware::{ClientIp, rate_limited};
use crate::state::AppState;
use crate::views::{ChangePasswordRequest, Credentials, LogoutRequest, RefreshRequest, TokenResponse, UserView};

fn actor(user_id: Option<Uuid>, ip: ClientIp) -> Actor {
    Actor { user_id, ip: Some(ip.0.to_string()) }
}

/// Issues an access token and a refresh token in `family_id`.
async fn issue_tokens(state: &AppState, user: &User, family_id: Uuid, ip: ClientIp) -> ApiResult<TokenResponse> {
    let now = Utc::now();
    let ttl = state.settings.access_token_ttl_secs;
    let claims = Claims {
        sub: user.id,
        iat: now.timestamp(),
        exp: now.timestamp().saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)),
        jti: Uuid::new_v4(),
    };
    let refresh = new_refresh_token()?;
    let refresh_ttl = i64::try_from(state.settings.refresh_token_ttl_secs).unwrap_or(i64::MAX);
    let ip_text = ip.0.to_string();
    refresh_tokens::insert(
        &state.db,
        &NewRefreshToken {
            user_id: user.id,
            family_id,
            token_hash: &sha256_hex(&refresh),
            expires_at: now + Duration::seconds(refresh_ttl),
            ip: Some(&ip_text),
            user_agent: None,
        },
    )
    .await?;
    Ok(TokenResponse {
        access_token: state.jwt.encode(&claims),
        refresh_token: refresh,
        token_type: "bearer".to_owned(),
        expires_in: ttl,
        user: UserView::from(user),
    })
}

/// Create an account (when registration is open) and sign in.
#[utoipa::path(post, path = "/api/auth/register", tag = "auth", request_body = Credentials,
    responses((status = 201, body = TokenResponse), (status = 403, description = "registration disabled", body = ErrorBody),
        (status = 409, description = "username taken", body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn register(
    State(state): State<AppState>,
    Extension(ip): Extension<ClientIp>,
    AppJson(body): AppJson<Credentials>,
) -> ApiResult<(StatusCode, Json<TokenResponse>)> {
    if !state.settings.allow_registration {
        return Err(ApiError::forbidden(
            "registration_disabled",
            "registration is closed on this instance; ask an admin",
        ));
    }
    let user = create_user(&state.db, &actor(None, ip), &body.username, &body.password, Role::User).await?;
    let tokens = issue_tokens(&state, &user, Uuid::new_v4(), ip).await?;
    Ok((StatusCode::CREATED, Json(tokens)))
}

/// Sign in with username and password.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = Credentials,
    responses((status = 200, body = TokenResponse), (status = 401, description = "wrong credentials", body = ErrorBody),
        (status = 403, description = "account disabled", body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    Extension(ip): Extension<ClientIp>,
    AppJson(body): AppJson<Credentials>,
) -> ApiResult<Json<TokenResponse>> {
    let username = body.username.trim().to_lowercase();
    if username.is_empty() {
        return Err(ValidationError::new("username", "must not be empty").into());
    }
    if body.password.is_empty() {
        return Err(ValidationError::new("password", "must not be empty").into());
    }
    if state.settings.rate_limit.enabled {
        // Second window per username, so a distributed guess at one account is slowed too.
        let decision = state.limiter.check("login-user", &username, state.settings.rate_limit.auth).await;
        if !decision.allowed {
            metrics::counter!("seidra_rate_limit_rejections_total", "policy" => "login-user").increment(1);
            return Err(rate_limited(decision));
        }
    }
    let user = match accounts::get_user_by_username(&state.db, &username).await {
        Ok(u) => Some(u),
        Err(StoreError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    let valid = verify_password(body.password, user.as_ref().map(|u| u.password_hash.clone())).await?;
    let user = match (user, valid) {
        (Some(user), true) => user,
        (user, _) => {
            metrics::counter!("seidra_auth_logins_total", "outcome" => "failure").increment(1);
            let details = serde_json::json!({ "username": username });
            audit(&state.db, &actor(user.map(|u| u.id), ip), "auth.login", None, false, details).await;
            return Err(ApiError::unauthorized("invalid_credentials", "wrong username or password"));
        }
    };
    if user.disabled {
        audit(
            &state.db,
            &actor(Some(user.id), ip),
            "auth.login",
            None,
            false,
            serde_json::json!({"reason": "disabled"}),
        )
        .await;
        return Err(ApiError::forbidden("account_disabled", "this account is disabled"));
    }
    let user = accounts::touch_login(&state.db, user.id).await?;
    let tokens = issue_tokens(&state, &user, Uuid::new_v4(), ip).await?;
    metrics::counter!("seidra_auth_logins_total", "outcome" => "success").increment(1);
    // Before this sign-in is audited, so "known" means seen in earlier sign-ins.
    seidra_notify::login_from_ip(&state.db, &state.bus, user.id, &ip.0.to_string()).await;
    audit(&state.db, &actor(Some(user.id), ip), "auth.login", None, true, serde_json::json!({})).await;
    Ok(Json(tokens))
}

/// Exchange a refresh token for new tokens. A reused token revokes its whole session.
#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401, description = "invalid, expired, revoked or reused", body = ErrorBody)))]
pub async fn refresh(
    State(state): State<AppState>,
    Extension(ip): Extension<ClientIp>,
    AppJson(body): AppJson<RefreshRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let invalid =
        || ApiError::unauthorized("invalid_refresh_token", "the refresh token is invalid, expired or revoked");
    let Some(token) = refresh_tokens::find_by_hash(&state.db, &sha256_hex(body.refresh_token.trim())).await? else {
        return Err(invalid());
    };
    if token.revoked_at.is_some() || token.expires_at <= Utc::now() {
        return Err(invalid());
    }
    let first_use = token.used_at.is_none() && refresh_tokens::mark_used(&state.db, token.id).await?;
    if !first_use {
        let revoked = refresh_tokens::revoke_family(&state.db, token.family_id).await?;
        let details = serde_json::json!({ "family_id": token.family_id, "revoked": revoked });
        audit(&state.db, &actor(Some(token.user_id), ip), "auth.refresh.reuse", None, false, details).await;
        tracing::warn!(user_id = %token.user_id, "refresh token reuse detected; session revoked");
        return Err(ApiError::unauthorized(
            "refresh_token_reused",
            "this refresh token was already used; the session has been revoked, sign in again",
        ));
    }
    let user = accounts::get_user(&state.db, token.user_id).await?;
    if user.disabled {
        return Err(ApiError::unauthorized("account_disabled", "this account is disabled"));
    }
    Ok(Json(issue_tokens(&state, &user, token.family_id, ip).await?))
}

/// Sign out: revoke this session's refresh tokens, or every session with `all`.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", request_body = LogoutRequest, security(("bearer" = [])),
    responses((status = 204, description = "signed out"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn logout(
    State(state): State<AppState>,
    Extension(ip): Extension<ClientIp>,
    SignedIn(principal): SignedIn,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    // Sessions end sessions: a leaked API key, even a read-only one, must not sign its owner
    // out everywhere.
    // The body is optional: an empty POST signs out nothing but is still audited.
    let body: LogoutRequest =
        if body.iter().all(u8::is_ascii_whitespace) { LogoutRequest::default() } else { parse_json(&body)? };
    if body.all {
        refresh_tokens::revoke_all_for_user(&state.db, principal.user.id).await?;
    } else if let Some(raw) = body.refresh_token {
        let token = refresh_tokens::find_by_hash(&state.db, &sha256_hex(raw.trim())).await?;
        match token {
            Some(t) if t.user_id == principal.user.id => {
                refresh_tokens::revoke_family(&state.db, t.family_id).await?;
            }
            _ => {
                return Err(ApiError::validation(ValidationError::new(
                    "refresh_token",
                    "is not a refresh token of this account",
                )));
            }
        }
    }
    audit(
        &state.db,
        &actor(Some(principal.user.id), ip),
        "auth.logout",
        None,
        true,
        serde_json::json!({ "all": body.all }),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in account.
#[utoipa::path(get, path = "/api/auth/me", tag = "auth", security(("bearer" = []), ("api_key" = ["read"])),
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn me(CanRead(principal): CanRead) -> ApiResult<Json<UserView>> {
    Ok(Json(UserView::from(&principal.user)))
}

/// Change the password (signs out every session).
#[utoipa::path(post, path = "/api/auth/me/password", tag = "auth", request_body = ChangePasswordRequest, security(("bearer" = [])),
    responses((status = 204, description = "changed"), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn change_password(
    State(state): State<AppState>,
    Extension(ip): Extension<ClientIp>,
    SignedIn(principal): SignedIn,
    AppJson(body): AppJson<ChangePasswordRequest>,
) -> ApiResult<StatusCode> {
    // A fresh row, not the cached one: the hash may have changed in another replica just now.
    let user = accounts::get_user(&state.db, principal.user.id).await?;
    let ok = verify_password(body.current_password, Some(user.password_hash)).await?;
    if !ok {
        audit(
            &state.db,
            &actor(Some(principal.user.id), ip),
            "user.password.change",
            None,
            false,
            serde_json::json!({}),
        )
        .await;
        return Err(ApiError::validation(ValidationError::new("current_password", "is wrong")));
    }
    set_password(&state.db, &actor(Some(principal.user.id), ip), &principal.user, &body.new_password, "new_password")
        .await?;
    state.accounts.forget(principal.user.id);
    let body = format!("Your password was changed from {}; every session was signed out.", ip.0);
    seidra_notify::security(&state.db, &state.bus, principal.user.id, "Password changed", &body).await;
    Ok(StatusCode::NO_CONTENT)
}

/// What the sign-in page needs to know before anyone signs in.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AuthConfig {
    /// Whether `POST /api/auth/register` is open to anyone.
    pub registration_open: bool,
    /// Minimum password length.
    pub min_password_chars: usize,
}

/// Public sign-in settings (registration open or not, password rules).
#[utoipa::path(get, path = "/api/auth/config", tag = "auth", responses((status = 200, body = AuthConfig)))]
pub async fn config(State(state): State<AppState>) -> Json<AuthConfig> {
    Json(AuthConfig {
        registration_open: state.settings.allow_registration,
        min_password_chars: seidra_core::validation::MIN_PASSWORD_CHARS,
    })
}
