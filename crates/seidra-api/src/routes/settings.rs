//! `/api/settings` (each user's preferences) and `/api/admin/content-policy` (the instance
//! ceiling the preferences live within).

use axum::Json;
use axum::extract::{Extension, State};
use seidra_core::ValidationError;
use seidra_core::policy::{EffectiveCategory, PolicyDocument};
use seidra_core::user_settings::{UserSettings, apply_patch};
use seidra_store::audit::{self, NewAuditEntry};
use seidra_store::user_settings;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::auth::{Admin, CanGenerate, CanRead};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::AppJson;
use crate::middleware::ClientIp;
use crate::state::AppState;

/// The caller's effective settings (defaults merged with what they changed).
#[utoipa::path(get, path = "/api/settings", tag = "settings", security(("bearer" = []), ("api_key" = ["read"])),
    responses((status = 200, body = UserSettings)))]
pub async fn get(State(state): State<AppState>, CanRead(principal): CanRead) -> ApiResult<Json<UserSettings>> {
    Ok(Json(user_settings::get(&state.db, principal.user.id).await?))
}

/// Change settings with a JSON merge patch (RFC 7386): objects merge, `null` resets a setting
/// to its default. Unknown keys and wrong types are refused with a 422 naming the JSON path;
/// `content.nsfw` can only be enabled when the instance allows NSFW content.
#[utoipa::path(patch, path = "/api/settings", tag = "settings", security(("bearer" = []), ("api_key" = ["generate"])),
    request_body(content = Object, content_type = "application/json", description = "a JSON merge patch of the settings"),
    responses((status = 200, body = UserSettings), (status = 422, body = ErrorBody)))]
pub async fn patch(
    State(state): State<AppState>,
    CanGenerate(principal): CanGenerate,
    AppJson(patch): AppJson<Value>,
) -> ApiResult<Json<UserSettings>> {
    let policy = state.policy.get(&state.db).await?;
    let enables_nsfw = patch.pointer("/content/nsfw") == Some(&Value::Bool(true));
    let result = user_settings::update(&state.db, principal.user.id, |current| {
        let (next, settings) = apply_patch(current, &patch)?;
        if enables_nsfw && !policy.nsfw_allowed {
            return Err(ValidationError::new(
                "content.nsfw",
                "this instance does not allow NSFW content (the administrator's content policy)",
            ));
        }
        Ok((next, settings))
    })
    .await?;
    Ok(Json(result?))
}

/// The content policy as the admin sees it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ContentPolicyView {
    /// Bumped on every save; recorded on every job it admitted (0 = never saved: defaults).
    pub version: i64,
    /// Whether users may enable NSFW content.
    pub nsfw_allowed: bool,
    /// The admin-defined categories (what `PUT` takes).
    pub categories: Vec<seidra_core::policy::BlockedCategory>,
    /// Every category applied: built-ins (which cannot be removed) with the admin's additions.
    pub effective_categories: Vec<EffectiveCategory>,
    /// Seconds within which every API replica applies a change.
    pub refresh_secs: u64,
}

fn view(version: i64, doc: PolicyDocument) -> ContentPolicyView {
    ContentPolicyView {
        version,
        nsfw_allowed: doc.nsfw_allowed,
        effective_categories: doc.effective_categories(),
        categories: doc.categories,
        refresh_secs: crate::policy::POLICY_REFRESH.as_secs(),
    }
}

/// The instance content policy (admins).
#[utoipa::path(get, path = "/api/admin/content-policy", tag = "admin", security(("bearer" = []), ("api_key" = ["admin"])),
    responses((status = 200, body = ContentPolicyView), (status = 403, body = ErrorBody)))]
pub async fn get_policy(State(state): State<AppState>, _: Admin) -> ApiResult<Json<ContentPolicyView>> {
    let (version, doc) = seidra_store::content_policy::load(&state.db).await?;
    Ok(Json(view(version, doc)))
}

/// Replace the instance content policy (admins). Built-in categories stay; a category named
/// like one adds terms to it. Every API replica applies it within `refresh_secs`.
#[utoipa::path(put, path = "/api/admin/content-policy", tag = "admin", request_body = PolicyDocument, security(("bearer" = []), ("api_key" = ["admin"])),
    responses((status = 200, body = ContentPolicyView), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_policy(
    State(state): State<AppState>,
    Extension(ip): Extension<ClientIp>,
    Admin(principal): Admin,
    AppJson(doc): AppJson<PolicyDocument>,
) -> ApiResult<Json<ContentPolicyView>> {
    doc.validate()?;
    let version = crate::policy::save(&state, &doc, principal.user.id).await?;
    let entry = NewAuditEntry {
        actor_id: Some(principal.user.id),
        action: "admin.content_policy.update",
        target: Some(format!("v{version}")),
        success: true,
        ip: Some(ip.0.to_string()),
        details: json!({
            "version": version,
            "nsfw_allowed": doc.nsfw_allowed,
            "categories": doc.categories.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        }),
    };
    if let Err(err) = audit::record(&state.db, &entry).await {
        tracing::warn!(%err, "could not audit a content-policy change");
    }
    Ok(Json(view(version, doc)))
}
