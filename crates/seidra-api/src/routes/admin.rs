//! `/api/admin`: user management and the audit log, for admins only.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use seidra_core::Role;
use seidra_store::{accounts, audit};

use crate::accounts::{Actor, create_user, set_disabled, set_password, set_role};
use crate::auth::{Admin, Principal};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppJson, AppQuery, parse_uuid};
use crate::middleware::ClientIp;
use crate::state::AppState;
use crate::views::{AdminCreateUser, AdminUpdateUser, AuditPage, AuditView, PageQuery, UserPage, UserView};

fn actor(p: &Principal, ip: ClientIp) -> Actor {
    Actor { user_id: Some(p.user.id), ip: Some(ip.0.to_string()) }
}

/// List accounts.
#[utoipa::path(get, path = "/api/admin/users", tag = "admin", params(PageQuery), security(("bearer" = []), ("api_key" = ["admin"])),
    responses((status = 200, body = UserPage), (status = 403, body = ErrorBody)))]
pub async fn list_users(
    State(state): State<AppState>,
    _: Admin,
    AppQuery(page): AppQuery<PageQuery>,
) -> ApiResult<Json<UserPage>> {
    let (limit, offset) = page.resolve()?;
    let (users, total) = accounts::list_users(&state.db, limit, offset).await?;
    Ok(Json(UserPage { items: users.iter().map(UserView::from).collect(), total, limit, offset }))
}

/// Create an account.
#[utoipa::path(post, path = "/api/admin/users", tag = "admin", request_body = AdminCreateUser, security(("bearer" = []), ("api_key" = ["admin"])),
    responses((status = 201, body = UserView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Extension(ip): Extension<ClientIp>,
    Admin(principal): Admin,
    AppJson(body): AppJson<AdminCreateUser>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    let role = body.role.unwrap_or(Role::User);
    let user = create_user(&state.db, &actor(&principal, ip), &body.username, &body.password, role).await?;
    Ok((StatusCode::CREATED, Json(UserView::from(&user))))
}

/// Disable/enable an account, change its role or reset its password.
#[utoipa::path(patch, path = "/api/admin/users/{id}", tag = "admin", request_body = AdminUpdateUser, security(("bearer" = []), ("api_key" = ["admin"])),
    params(("id" = uuid::Uuid, Path, description = "user id")),
    responses((status = 200, body = UserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "last admin", body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    Extension(ip): Extension<ClientIp>,
    Admin(principal): Admin,
    Path(id): Path<String>,
    AppJson(body): AppJson<AdminUpdateUser>,
) -> ApiResult<Json<UserView>> {
    let id = parse_uuid("id", &id)?;
    let actor = actor(&principal, ip);
    let mut user = accounts::get_user(&state.db, id).await.map_err(ApiError::or_not_found("user"))?;
    if let Some(password) = &body.password {
        set_password(&state.db, &actor, &user, password, "password").await?;
    }
    if let Some(role) = body.role
        && role != user.role
    {
        user = set_role(&state.db, &actor, &user, role).await?;
    }
    if let Some(disabled) = body.disabled
        && disabled != user.disabled
    {
        user = set_disabled(&state.db, &actor, &user, disabled).await?;
    }
    state.accounts.forget(id);
    Ok(Json(UserView::from(&user)))
}

/// The security audit log, newest first.
#[utoipa::path(get, path = "/api/admin/audit", tag = "admin", params(PageQuery), security(("bearer" = []), ("api_key" = ["admin"])),
    responses((status = 200, body = AuditPage), (status = 403, body = ErrorBody)))]
pub async fn audit_log(
    State(state): State<AppState>,
    _: Admin,
    AppQuery(page): AppQuery<PageQuery>,
) -> ApiResult<Json<AuditPage>> {
    let (limit, offset) = page.resolve()?;
    let entries = audit::list(&state.db, None, limit, offset).await?;
    let items = entries
        .into_iter()
        .map(|e| AuditView {
            id: e.id,
            at: e.at,
            actor_id: e.actor_id,
            action: e.action,
            target: e.target,
            outcome: e.outcome,
            ip: e.ip,
            details: e.details.0,
        })
        .collect();
    Ok(Json(AuditPage { items }))
}
