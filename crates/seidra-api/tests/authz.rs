//! The authorization matrix, generated from the OpenAPI document: every operation is called
//! without credentials, with a forged token, and (for admin operations) as a plain user. A new
//! route that forgets its guard — or a public route nobody reviewed — fails here.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "test helpers panic on broken fixtures")]

use seidra_store::Backend;
use seidra_testkit::{TestServer, dual_test, http_client};
use serde_json::Value;

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
    let client = http_client();
    let mut req = client.request(method.parse().unwrap(), url);
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    if matches!(method, "POST" | "PUT" | "PATCH") {
        req = req.header("content-type", "application/json").body("{}");
    }
    req.send().await.unwrap().status().as_u16()
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
            let concrete: String = path
                .split('/')
                .map(|seg| if seg.starts_with('{') { uuid::Uuid::now_v7().to_string() } else { seg.to_owned() })
                .collect::<Vec<_>>()
                .join("/");
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

dual_test!(every_operation_is_guarded);
