//! Black-box tests of accounts and authentication: the real server on a random port, on
//! SQLite and on PostgreSQL.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "test helpers panic on broken fixtures")]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use seidra_api::auth::jwt::{Claims, JwtKeys};
use seidra_store::Backend;
use seidra_testkit::{ADMIN_PASSWORD, TestServer, dual_test};
use serde_json::json;
use uuid::Uuid;

const PASSWORD: &str = "a-long-enough-passphrase";

fn token(body: &serde_json::Value, field: &str) -> String {
    body[field].as_str().unwrap_or_default().to_owned()
}

async fn register_login_refresh_logout(backend: Backend) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let reg = s.register("alice", PASSWORD).await?;
    assert_eq!(reg["token_type"], "bearer");
    assert_eq!(reg["user"]["username"], "alice");
    assert_eq!(reg["user"]["role"], "user");
    assert!(reg["user"].get("password_hash").is_none());

    let login = s.login("alice", PASSWORD).await?;
    assert_eq!(login["expires_in"], 900);
    let access = token(&login, "access_token");
    let (status, me) = s.get("/api/auth/me", Some(&access)).await?;
    assert_eq!((status, me["username"].as_str()), (200, Some("alice")));

    // Rotation: the refresh token works once and yields a new pair.
    let r1 = token(&login, "refresh_token");
    let (status, rotated) = s.post("/api/auth/refresh", None, &json!({ "refresh_token": r1 })).await?;
    assert_eq!(status, 200, "{rotated}");
    let r2 = token(&rotated, "refresh_token");
    assert_ne!(r1, r2);
    let (status, _) = s.get("/api/auth/me", Some(&token(&rotated, "access_token"))).await?;
    assert_eq!(status, 200);

    // Reuse of r1 revokes the family: r2 stops working too.
    let (status, body) = s.post("/api/auth/refresh", None, &json!({ "refresh_token": r1 })).await?;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("refresh_token_reused")));
    let (status, body) = s.post("/api/auth/refresh", None, &json!({ "refresh_token": r2 })).await?;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("invalid_refresh_token")));

    // Logout revokes the session's refresh token.
    let login = s.login("alice", PASSWORD).await?;
    let access = token(&login, "access_token");
    let refresh = token(&login, "refresh_token");
    let (status, _) = s.post("/api/auth/logout", Some(&access), &json!({ "refresh_token": refresh })).await?;
    assert_eq!(status, 204);
    let (status, _) = s.post("/api/auth/refresh", None, &json!({ "refresh_token": refresh })).await?;
    assert_eq!(status, 401);

    // Wrong password, unknown user: same answer.
    let (s1, b1) =
        s.post("/api/auth/login", None, &json!({ "username": "alice", "password": "wrong-password-123" })).await?;
    let (s2, b2) =
        s.post("/api/auth/login", None, &json!({ "username": "nobody", "password": "wrong-password-123" })).await?;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(b1, b2);

    // Duplicate username.
    let (status, body) =
        s.post("/api/auth/register", None, &json!({ "username": "alice", "password": PASSWORD })).await?;
    assert_eq!(
        (status, body["error"]["code"].as_str(), body["error"]["field"].as_str()),
        (409, Some("username_taken"), Some("username"))
    );
    s.stop().await
}

async fn password_change(backend: Backend) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let login = s.register("bob", PASSWORD).await?;
    let access = token(&login, "access_token");
    let bad = json!({ "current_password": "nope-nope-nope", "new_password": "another-long-passphrase" });
    let (status, body) = s.post("/api/auth/me/password", Some(&access), &bad).await?;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("current_password")));
    let weak = json!({ "current_password": PASSWORD, "new_password": "password1234" });
    let (status, body) = s.post("/api/auth/me/password", Some(&access), &weak).await?;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("new_password")));
    let good = json!({ "current_password": PASSWORD, "new_password": "another-long-passphrase" });
    let (status, _) = s.post("/api/auth/me/password", Some(&access), &good).await?;
    assert_eq!(status, 204);
    // Old refresh tokens are revoked, the new password works, the old one does not.
    let (status, _) =
        s.post("/api/auth/refresh", None, &json!({ "refresh_token": token(&login, "refresh_token") })).await?;
    assert_eq!(status, 401);
    s.login("bob", "another-long-passphrase").await?;
    let (status, _) = s.post("/api/auth/login", None, &json!({ "username": "bob", "password": PASSWORD })).await?;
    assert_eq!(status, 401);
    s.stop().await
}

async fn forged_and_expired_tokens(backend: Backend) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let login = s.register("carol", PASSWORD).await?;
    let user_id: Uuid = login["user"]["id"].as_str().unwrap_or_default().parse()?;
    let key = s.state.settings.secret_key.as_ref().map(|k| k.expose().to_owned()).unwrap_or_default();
    let keys = JwtKeys::new(key.as_bytes())?;
    let now = Utc::now().timestamp();

    let expired = keys.encode(&Claims { sub: user_id, iat: now - 3600, exp: now - 60, jti: Uuid::new_v4() });
    let (status, body) = s.get("/api/auth/me", Some(&expired)).await?;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("token_expired")));

    let valid = keys.encode(&Claims { sub: user_id, iat: now, exp: now + 60, jti: Uuid::new_v4() });
    let parts: Vec<&str> = valid.split('.').collect();
    let evil_payload = URL_SAFE_NO_PAD
        .encode(json!({ "sub": user_id, "iat": now, "exp": now + 999_999, "jti": Uuid::new_v4() }).to_string());
    let tampered = format!("{}.{evil_payload}.{}", parts[0], parts[2]);
    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let alg_none = format!("{none_header}.{}.", parts[1]);
    let rs_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#);
    let alg_rs = format!("{rs_header}.{}.{}", parts[1], parts[2]);
    let foreign = JwtKeys::new(b"some-other-instance-key-0123456789abcdef")?.encode(&Claims {
        sub: user_id,
        iat: now,
        exp: now + 60,
        jti: Uuid::new_v4(),
    });
    for (name, forged) in [
        ("tampered", tampered),
        ("alg none", alg_none),
        ("alg RS256", alg_rs),
        ("foreign key", foreign),
        ("garbage", "abc".to_owned()),
    ] {
        let (status, body) = s.get("/api/auth/me", Some(&forged)).await?;
        assert_eq!((status, body["error"]["code"].as_str()), (401, Some("invalid_token")), "{name}: {body}");
    }
    let (status, body) = s.get("/api/auth/me", None).await?;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("authentication_required")));
    let (status, _) = s.get("/api/auth/me", Some(&valid)).await?;
    assert_eq!(status, 200);

    // A token for an account that does not exist.
    let ghost = keys.encode(&Claims { sub: Uuid::new_v4(), iat: now, exp: now + 60, jti: Uuid::new_v4() });
    let (status, _) = s.get("/api/auth/me", Some(&ghost)).await?;
    assert_eq!(status, 401);
    s.stop().await
}

async fn disabled_user_fails_at_once(backend: Backend) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let admin = s.admin_token().await?;
    let login = s.register("dave", PASSWORD).await?;
    let access = token(&login, "access_token");
    let id = login["user"]["id"].as_str().unwrap_or_default().to_owned();
    let (status, key) =
        s.post("/api/auth/api-keys", Some(&access), &json!({ "name": "script", "scopes": ["read"] })).await?;
    assert_eq!(status, 201);
    let api_key = token(&key, "token");

    let (status, body) = s.patch(&format!("/api/admin/users/{id}"), Some(&admin), &json!({ "disabled": true })).await?;
    assert_eq!((status, body["disabled"].as_bool()), (200, Some(true)));
    for credential in [&access, &api_key] {
        let (status, body) = s.get("/api/auth/me", Some(credential)).await?;
        assert_eq!((status, body["error"]["code"].as_str()), (401, Some("account_disabled")));
    }
    let (status, body) = s.post("/api/auth/login", None, &json!({ "username": "dave", "password": PASSWORD })).await?;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("account_disabled")));
    let (status, _) =
        s.post("/api/auth/refresh", None, &json!({ "refresh_token": token(&login, "refresh_token") })).await?;
    assert_eq!(status, 401);

    let (status, _) = s.patch(&format!("/api/admin/users/{id}"), Some(&admin), &json!({ "disabled": false })).await?;
    assert_eq!(status, 200);
    s.login("dave", PASSWORD).await?;
    s.stop().await
}

async fn api_keys_and_scopes(backend: Backend) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let login = s.register("erin", PASSWORD).await?;
    let access = token(&login, "access_token");

    let (status, created) =
        s.post("/api/auth/api-keys", Some(&access), &json!({ "name": "reader", "scopes": ["read"] })).await?;
    assert_eq!(status, 201, "{created}");
    let reader = token(&created, "token");
    assert!(reader.starts_with("sk_"));
    let reader_id = created["key"]["id"].as_str().unwrap_or_default().to_owned();
    let (status, _) =
        s.post("/api/auth/api-keys", Some(&access), &json!({ "name": "gen", "scopes": ["generate"] })).await?;
    assert_eq!(status, 201);
    let (_, created) =
        s.post("/api/auth/api-keys", Some(&access), &json!({ "name": "gen2", "scopes": ["generate"] })).await?;
    let generator = token(&created, "token");

    let (status, me) = s.get("/api/auth/me", Some(&reader)).await?;
    assert_eq!((status, me["username"].as_str()), (200, Some("erin")));
    let (status, body) = s.get("/api/auth/me", Some(&generator)).await?;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("insufficient_scope")));

    // Keys cannot mint keys; a user cannot get the admin scope.
    let (status, body) =
        s.post("/api/auth/api-keys", Some(&reader), &json!({ "name": "x", "scopes": ["read"] })).await?;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("session_required")));
    let (status, body) =
        s.post("/api/auth/api-keys", Some(&access), &json!({ "name": "x", "scopes": ["admin"] })).await?;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("scopes")));
    let (status, body) =
        s.post("/api/auth/api-keys", Some(&access), &json!({ "name": "x", "scopes": ["root"] })).await?;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("scopes[0]")));

    let (status, list) = s.get("/api/auth/api-keys", Some(&reader)).await?;
    assert_eq!((status, list["items"].as_array().map(Vec::len)), (200, Some(3)));
    assert!(list.to_string().find(&reader[reader.len() - 64..]).is_none(), "secrets are never listed");

    // Another user cannot revoke it; the owner can, and it fails at once.
    let other = s.register("frank", PASSWORD).await?;
    let (status, _) =
        s.delete(&format!("/api/auth/api-keys/{reader_id}"), Some(&token(&other, "access_token"))).await?;
    assert_eq!(status, 404);
    let (status, _) = s.delete(&format!("/api/auth/api-keys/{reader_id}"), Some(&access)).await?;
    assert_eq!(status, 204);
    let (status, body) = s.get("/api/auth/me", Some(&reader)).await?;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("invalid_api_key")));

    // A forged secret for a real key id is refused.
    let forged = format!("{}{}", &generator[..generator.len() - 64], "0".repeat(64));
    let (status, _) = s.get("/api/auth/me", Some(&forged)).await?;
    assert_eq!(status, 401);

    // last_used_at is recorded.
    let (_, list) = s.get("/api/auth/api-keys", Some(&access)).await?;
    let used = list["items"].as_array().into_iter().flatten().filter(|k| !k["last_used_at"].is_null()).count();
    assert!(used >= 1, "{list}");
    s.stop().await
}

async fn admin_routes(backend: Backend) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let admin = s.admin_token().await?;
    let user = s.register("gina", PASSWORD).await?;
    let user_token = token(&user, "access_token");

    for path in ["/api/admin/users", "/api/admin/audit"] {
        let (status, body) = s.get(path, Some(&user_token)).await?;
        assert_eq!((status, body["error"]["code"].as_str()), (403, Some("admin_required")), "{path}");
        let (status, _) = s.get(path, None).await?;
        assert_eq!(status, 401, "{path}");
    }
    let (status, _) =
        s.post("/api/admin/users", Some(&user_token), &json!({ "username": "x", "password": PASSWORD })).await?;
    assert_eq!(status, 403);

    let (status, created) = s
        .post("/api/admin/users", Some(&admin), &json!({ "username": "henry", "password": PASSWORD, "role": "admin" }))
        .await?;
    assert_eq!((status, created["role"].as_str()), (201, Some("admin")));
    let (status, page) = s.get("/api/admin/users?limit=2&offset=0", Some(&admin)).await?;
    assert_eq!((status, page["total"].as_i64(), page["items"].as_array().map(Vec::len)), (200, Some(3), Some(2)));
    let (status, body) = s.get("/api/admin/users?limit=1000", Some(&admin)).await?;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("limit")));

    // Role change, and the last-admin guard.
    let gina_id = user["user"]["id"].as_str().unwrap_or_default();
    let (status, body) =
        s.patch(&format!("/api/admin/users/{gina_id}"), Some(&admin), &json!({ "role": "admin" })).await?;
    assert_eq!((status, body["role"].as_str()), (200, Some("admin")));
    let (_, admins) = s.get("/api/admin/users", Some(&admin)).await?;
    let admin_id =
        admins["items"].as_array().into_iter().flatten().find(|u| u["username"] == "admin").map(|u| u["id"].clone());
    let henry_id = created["id"].as_str().unwrap_or_default();
    for id in [gina_id, henry_id] {
        let (status, _) = s.patch(&format!("/api/admin/users/{id}"), Some(&admin), &json!({ "role": "user" })).await?;
        assert_eq!(status, 200);
    }
    let admin_id = admin_id.and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    let (status, body) =
        s.patch(&format!("/api/admin/users/{admin_id}"), Some(&admin), &json!({ "disabled": true })).await?;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("last_admin")));
    let (status, body) =
        s.patch(&format!("/api/admin/users/{}", Uuid::new_v4()), Some(&admin), &json!({ "disabled": true })).await?;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
    let (status, body) = s.patch("/api/admin/users/not-a-uuid", Some(&admin), &json!({ "disabled": true })).await?;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("id")));

    // Admin API key with the admin scope works on admin routes; without it, it does not.
    let (_, key) =
        s.post("/api/auth/api-keys", Some(&admin), &json!({ "name": "ops", "scopes": ["read", "admin"] })).await?;
    let (status, _) = s.get("/api/admin/users", Some(&token(&key, "token"))).await?;
    assert_eq!(status, 200);
    let (_, key) = s.post("/api/auth/api-keys", Some(&admin), &json!({ "name": "ro", "scopes": ["read"] })).await?;
    let (status, body) = s.get("/api/admin/users", Some(&token(&key, "token"))).await?;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("insufficient_scope")));

    // The audit log saw all this.
    let (status, audit) = s.get("/api/admin/audit?limit=200", Some(&admin)).await?;
    assert_eq!(status, 200);
    let actions: Vec<&str> =
        audit["items"].as_array().into_iter().flatten().filter_map(|e| e["action"].as_str()).collect();
    for expected in ["auth.login", "user.create", "user.role.change", "apikey.create"] {
        assert!(actions.contains(&expected), "{expected} missing from {actions:?}");
    }
    s.stop().await
}

async fn registration_can_be_closed(backend: Backend) -> anyhow::Result<()> {
    let s = TestServer::builder(backend).settings(|s| s.allow_registration = false).start().await?;
    let (status, config) = s.get("/api/auth/config", None).await?;
    assert_eq!((status, config["registration_open"].as_bool()), (200, Some(false)));
    let (status, body) =
        s.post("/api/auth/register", None, &json!({ "username": "ivan", "password": PASSWORD })).await?;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("registration_disabled")));
    s.login("admin", ADMIN_PASSWORD).await?;
    s.stop().await
}

dual_test!(
    register_login_refresh_logout,
    password_change,
    forged_and_expired_tokens,
    disabled_user_fails_at_once,
    api_keys_and_scopes,
    admin_routes,
    registration_can_be_closed,
);
