//! The authorization matrix, generated from the OpenAPI document: every operation is called
//! without credentials, with a forged token, and (for admin operations) as a plain user; with
//! an API key of each scope against the scope the document declares; and, for every operation
//! on an owned resource, by a second user holding the first user's ids. A new route that forgets
//! its guard — or a public route nobody reviewed — fails here.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "test helpers panic on broken fixtures")]

use seidra_store::Backend;
use seidra_testkit::{TestServer, dual_test, http_client};
use serde_json::{Value, json};
use std::time::Duration;

const PASSWORD: &str = "a-long-enough-passphrase";

/// Operations that answer without credentials, on purpose.
const PUBLIC: &[&str] = &[
    "GET /healthz",
    "GET /readyz",
    "GET /api/system/health",
    "GET /api/generation/health",
    "GET /api/auth/config",
    "POST /api/auth/login",
    "POST /api/auth/register",
    "POST /api/auth/refresh",
];

/// Admin operations are tagged `admin` or say "(admins" in their summary.
fn admin_only(op: &Value) -> bool {
    let tagged = op["tags"].as_array().is_some_and(|t| t.iter().any(|t| t == "admin"));
    tagged || op["summary"].as_str().is_some_and(|s| s.contains("(admins"))
}

async fn call(method: &str, url: &str, auth: Option<&str>) -> u16 {
    call_full(method, url, auth).await.0
}

/// Status and the error code of the answer (empty when it has none); writes send `{}`.
async fn call_full(method: &str, url: &str, auth: Option<&str>) -> (u16, String) {
    call_with(method, url, auth, &json!({})).await
}

/// Like [`call_full`], with `body` for writes.
async fn call_with(method: &str, url: &str, auth: Option<&str>, body: &Value) -> (u16, String) {
    let client = http_client();
    let mut req = client.request(method.parse().unwrap(), url);
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    if matches!(method, "POST" | "PUT" | "PATCH") {
        req = req.header("content-type", "application/json").body(body.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    (status, body["error"]["code"].as_str().unwrap_or_default().to_owned())
}

/// Every operation of the document that needs credentials: (method, path template, operation).
fn secured_operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut ops = Vec::new();
    for (path, methods) in doc["paths"].as_object().unwrap() {
        for (method, op) in methods.as_object().unwrap() {
            if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
                ops.push((method.to_ascii_uppercase(), path.clone(), op.clone()));
            }
        }
    }
    ops
}

/// The API-key scopes an operation declares: `None` when only a signed-in session may call it.
fn declared_key_scopes(op: &Value) -> Option<Vec<String>> {
    op["security"].as_array()?.iter().find_map(|req| {
        req.get("api_key")
            .and_then(Value::as_array)
            .map(|scopes| scopes.iter().filter_map(Value::as_str).map(str::to_owned).collect())
    })
}

/// `path` with each `{param}` replaced by `id_for(param)`.
fn fill(path: &str, mut id_for: impl FnMut(&str) -> String) -> String {
    path.split('/')
        .map(|seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(param) => id_for(param),
            None => seg.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn every_operation_is_guarded(backend: Backend) -> anyhow::Result<()> {
    let server = TestServer::builder(backend).settings(|s| s.allow_registration = true).start().await?;
    let user = server.register("mallory", PASSWORD).await?["access_token"].as_str().unwrap().to_owned();
    let (status, doc) = server.get("/api/openapi.json", None).await?;
    assert_eq!(status, 200);
    let forged = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
    let mut failures = Vec::new();
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let method = method.to_ascii_uppercase();
            let name = format!("{method} {path}");
            let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
            if !secured {
                if !PUBLIC.contains(&name.as_str()) {
                    failures.push(format!("{name}: declares no security and is not in the reviewed public list"));
                }
                continue;
            }
            // Path parameters get ids nobody owns.
            let concrete = fill(path, |_| uuid::Uuid::now_v7().to_string());
            let url = server.url(&concrete);
            for (who, auth, expected) in [("no credentials", None, 401), ("a forged token", Some(forged), 401)] {
                let got = call(&method, &url, auth).await;
                if got != expected {
                    failures.push(format!("{name} with {who}: {got}, expected {expected}"));
                }
            }
            if admin_only(op) {
                let got = call(&method, &url, Some(&format!("Bearer {user}"))).await;
                if got != 403 {
                    failures.push(format!("{name} as a plain user: {got}, expected 403"));
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 50, "the document lists the API ({checked} operations checked)");
    assert!(failures.is_empty(), "authorization gaps:\n{}", failures.join("\n"));
    server.stop().await
}

/// An API key of each single scope (owned by an admin, so only the scope decides) against every
/// operation: allowed exactly where the document declares that scope, refused with 403
/// `insufficient_scope` elsewhere, and refused with `session_required` where the document lists
/// no API-key requirement at all.
async fn api_key_scopes_match_the_document(backend: Backend) -> anyhow::Result<()> {
    let server = TestServer::start(backend).await?;
    let admin = server.admin_token().await?;
    let (_, doc) = server.get("/api/openapi.json", None).await?;
    let mut keys = Vec::new();
    for scope in ["read", "generate", "admin"] {
        let (status, key) =
            server.post("/api/auth/api-keys", Some(&admin), &json!({ "name": scope, "scopes": [scope] })).await?;
        assert_eq!(status, 201, "{key}");
        keys.push((scope, format!("Bearer {}", key["token"].as_str().unwrap())));
    }
    let mut failures = Vec::new();
    let mut checked = 0;
    for (method, path, op) in secured_operations(&doc) {
        let name = format!("{method} {path}");
        let declared = declared_key_scopes(&op);
        let url = server.url(&fill(&path, |_| uuid::Uuid::now_v7().to_string()));
        for (scope, auth) in &keys {
            let (status, code) = call_full(&method, &url, Some(auth)).await;
            let expected_code = match &declared {
                None => Some("session_required"),
                Some(scopes) if scopes.is_empty() || scopes.iter().any(|s| s == scope) => None,
                Some(_) => Some("insufficient_scope"),
            };
            match expected_code {
                None if status == 401 || status == 403 => {
                    failures.push(format!("{name} with a `{scope}` key: {status} {code}, the document allows it"));
                }
                Some(expected) if (status, code.as_str()) != (403, expected) => {
                    failures.push(format!("{name} with a `{scope}` key: {status} {code}, expected 403 {expected}"));
                }
                _ => {}
            }
            checked += 1;
        }
    }
    assert!(checked > 150, "the document lists the API ({checked} calls checked)");
    assert!(failures.is_empty(), "API-key scope gaps:\n{}", failures.join("\n"));
    server.stop().await
}

/// User B calls every operation on user A's resources with A's real ids: nothing is read,
/// changed or deleted, and the answer is 404 (403 would confirm that the id exists).
async fn another_user_never_reaches_owned_resources(backend: Backend) -> anyhow::Result<()> {
    let server = TestServer::builder(backend)
        .settings(|s| {
            s.allow_registration = true;
            s.webhooks.allow_private = vec!["127.0.0.1/32".into()];
        })
        .with_workers(1)
        .start()
        .await?;
    let alice = server.register("alice", PASSWORD).await?["access_token"].as_str().unwrap().to_owned();
    let bob = server.register("bob", PASSWORD).await?["access_token"].as_str().unwrap().to_owned();
    let (_, doc) = server.get("/api/openapi.json", None).await?;

    // One of each kind of thing Alice owns.
    let id = |v: &Value, field: &str| v[field].as_str().unwrap_or_default().to_owned();
    let (_, persona) = server.post("/api/personas", Some(&alice), &json!({ "name": "Mine" })).await?;
    let (_, submitted) = server
        .post("/api/generate/single", Some(&alice), &json!({ "prompt": "owned", "width": 64, "height": 64 }))
        .await?;
    let job = submitted["job_ids"][0].as_str().unwrap_or_default().to_owned();
    server.wait_job(&alice, &job, Duration::from_secs(60), |j| j["status"] == "succeeded").await?;
    let (_, media) = server.get(&format!("/api/media?job_id={job}"), Some(&alice)).await?;
    let (_, hook) = server.post("/api/webhooks", Some(&alice), &json!({ "url": "http://127.0.0.1:9/hook" })).await?;
    let (_, timeline) = server
        .post("/api/video/timelines", Some(&alice), &json!({ "name": "t", "width": 64, "height": 64, "fps": 5 }))
        .await?;
    let (_, key) = server.post("/api/auth/api-keys", Some(&alice), &json!({ "name": "k", "scopes": ["read"] })).await?;
    let (_, export) = server.post("/api/media/export", Some(&alice), &json!({})).await?;
    let export = export["job_ids"][0].as_str().unwrap_or_default().to_owned();
    server.wait_job(&alice, &export, Duration::from_secs(60), |j| j["status"] == "succeeded").await?;
    let (_, notices) = server.get("/api/notifications", Some(&alice)).await?;
    let owned: Vec<(&str, String)> = vec![
        ("/api/personas/", id(&persona, "id")),
        ("/api/jobs/", job.clone()),
        ("/api/media/export/", export.clone()),
        ("/api/media/", id(&media["items"][0], "id")),
        ("/api/webhooks/", id(&hook, "id")),
        ("/api/video/timelines/", id(&timeline, "id")),
        ("/api/auth/api-keys/", id(&key["key"], "id")),
        ("/api/notifications/", id(&notices["items"][0], "id")),
    ];
    for (prefix, value) in &owned {
        assert!(!value.is_empty(), "fixture for {prefix} was not created");
    }
    // Shared by design (the model catalogue) or refused to non-admins before any lookup.
    let not_owned = ["/api/models/", "/api/admin/"];
    // Valid bodies where `{}` would be refused before the ownership check is reached.
    let valid_body = |name: &str| match name {
        "PUT /api/personas/{id}" => json!({ "name": "Taken" }),
        "PATCH /api/personas/{id}" => json!({ "favorite": true }),
        "PUT /api/video/timelines/{id}" => json!({ "name": "taken", "width": 64, "height": 64, "fps": 5 }),
        _ => json!({}),
    };

    let mut failures = Vec::new();
    let mut checked = 0;
    for (method, path, op) in secured_operations(&doc) {
        if !path.contains('{') || not_owned.iter().any(|p| path.starts_with(p)) || admin_only(&op) {
            continue;
        }
        let name = format!("{method} {path}");
        let Some((_, value)) = owned.iter().find(|(prefix, _)| path.starts_with(prefix)) else {
            failures.push(format!("{name}: no owned fixture for this path; add one to the matrix"));
            continue;
        };
        let url = server.url(&fill(&path, |_| value.clone()));
        let (status, code) = call_with(&method, &url, Some(&format!("Bearer {bob}")), &valid_body(&name)).await;
        if status != 404 {
            failures.push(format!("{name} as another user: {status} {code}, expected 404"));
        }
        checked += 1;
    }
    assert!(checked >= 20, "the document lists owned resources ({checked} operations checked)");
    assert!(failures.is_empty(), "cross-user gaps:\n{}", failures.join("\n"));
    // And nothing of Alice's was touched.
    for (prefix, value) in &owned {
        if *prefix == "/api/auth/api-keys/" || *prefix == "/api/notifications/" {
            continue; // no single-item GET; listed below
        }
        let (status, body) = server.get(&format!("{prefix}{value}"), Some(&alice)).await?;
        assert_eq!(status, 200, "{prefix}{value} after user B's calls: {body}");
    }
    let (_, keys) = server.get("/api/auth/api-keys", Some(&alice)).await?;
    assert!(keys["items"].as_array().unwrap().iter().any(|k| k["revoked_at"].is_null()), "{keys}");
    let (_, after) = server.get("/api/notifications", Some(&alice)).await?;
    assert_eq!(after["items"][0]["id"], notices["items"][0]["id"], "{after}");
    assert_eq!(after["items"][0]["read"], notices["items"][0]["read"], "{after}");
    server.stop().await
}

dual_test!(every_operation_is_guarded);
dual_test!(api_key_scopes_match_the_document);
dual_test!(another_user_never_reaches_owned_resources);
