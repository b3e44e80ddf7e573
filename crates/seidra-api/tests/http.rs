//! The HTTP surface: error envelopes naming fields, health/readiness, metrics, OpenAPI and docs,
//! security headers, request ids and rate limits (in memory and shared through Redis).

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "test helpers panic on broken fixtures")]

use seidra_config::RateLimitPolicy;
use seidra_store::Backend;
use seidra_testkit::{TestRedis, TestServer, dual_test};
use serde_json::json;

async fn validation_errors_name_the_field(backend: Backend) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let cases = [
        (json!({ "username": "zoe", "password": "a-long-enough-passphrase", "email": "x" }), 422, "email"),
        (json!({ "username": "zoe" }), 422, "password"),
        (json!({ "username": 5, "password": "a-long-enough-passphrase" }), 422, "username"),
        (json!({ "username": "Zoe!", "password": "a-long-enough-passphrase" }), 422, "username"),
        (json!({ "username": "zoe", "password": "short" }), 422, "password"),
    ];
    for (body, status, field) in cases {
        let (got, resp) = s.post("/api/auth/register", None, &body).await?;
        assert_eq!(got, status, "{body} -> {resp}");
        assert_eq!(resp["error"]["field"].as_str(), Some(field), "{body} -> {resp}");
        assert!(resp["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    let resp = s
        .client
        .post(s.url("/api/auth/login"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 400);
    let body: serde_json::Value = resp.json().await?;
    assert_eq!(body["error"]["code"], "malformed_json");

    let resp = s.client.post(s.url("/api/auth/login")).body("username=a").send().await?;
    assert_eq!(resp.status().as_u16(), 415);

    let big = "x".repeat(3 * 1024 * 1024);
    let resp =
        // Its own client: the server answers 413 before reading the whole body and closes that
        // connection, which must not be reused by the requests below.
        seidra_testkit::http_client().post(s.url("/api/auth/login")).header("content-type", "application/json").body(big).send().await?;
    assert_eq!(resp.status().as_u16(), 413);

    let (status, body) = s.get("/api/nope", None).await?;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("route_not_found")));
    let resp = s.client.delete(s.url("/api/auth/login")).send().await?;
    assert_eq!(resp.status().as_u16(), 405);
    s.stop().await
}

async fn health_metrics_and_docs(backend: Backend) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let (status, body) = s.get("/healthz", None).await?;
    assert_eq!((status, body["status"].as_str()), (200, Some("alive")));
    let (status, body) = s.get("/readyz", None).await?;
    assert_eq!((status, body["status"].as_str()), (200, Some("ready")));

    let (status, health) = s.get("/api/system/health", None).await?;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")), "{health}");
    assert_eq!(health["dependencies"]["database"]["status"], "ok");
    assert_eq!(health["dependencies"]["database"]["detail"]["backend"], backend.as_str());
    assert!(health["dependencies"]["database"]["latency_ms"].as_f64().is_some());
    assert_eq!(health["dependencies"]["migrations"]["status"], "ok");
    assert_eq!(health["dependencies"]["redis"]["status"], "not_configured");
    assert_eq!(health["dependencies"]["storage"]["status"], "ok");

    let (status, gen_health) = s.get("/api/generation/health", None).await?;
    assert_eq!(status, 200);
    assert_eq!(gen_health["workers"], json!([]));

    s.get("/api/auth/me", None).await?;
    let metrics = s.client.get(s.url("/metrics")).send().await?.text().await?;
    for needle in [
        "seidra_build_info{version=\"",
        "seidra_http_requests_total{method=\"GET\",route=\"/api/auth/me\",status=\"401\"}",
        "seidra_http_request_duration_seconds_bucket",
        "seidra_db_pool_connections",
    ] {
        assert!(metrics.contains(needle), "missing {needle}");
    }
    assert!(!metrics.contains("route=\"/api/auth/api-keys/"), "routes are templates, not raw paths");

    let (status, spec) = s.get("/api/openapi.json", None).await?;
    assert_eq!(status, 200);
    assert!(spec["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    for path in ["/api/auth/login", "/api/auth/api-keys/{id}", "/api/admin/users", "/readyz"] {
        assert!(spec["paths"].get(path).is_some(), "spec lacks {path}");
    }
    let docs = s.client.get(s.url("/api/docs/")).send().await?;
    assert_eq!(docs.status().as_u16(), 200);
    let html = docs.text().await?;
    assert!(html.contains("swagger-ui") && !html.contains("https://"), "docs must be served offline");
    s.stop().await
}

async fn security_headers_and_request_ids(backend: Backend) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    for path in ["/healthz", "/api/auth/me", "/api/nope"] {
        let resp = s.client.get(s.url(path)).send().await?;
        let h = resp.headers();
        assert_eq!(h.get("x-content-type-options").and_then(|v| v.to_str().ok()), Some("nosniff"), "{path}");
        assert_eq!(h.get("x-frame-options").and_then(|v| v.to_str().ok()), Some("DENY"), "{path}");
        assert!(h.get("content-security-policy").is_some(), "{path}");
        assert!(h.get("x-request-id").is_some_and(|v| v.len() >= 32), "{path}");
    }
    let resp = s.client.get(s.url("/healthz")).header("x-request-id", "trace-me-123").send().await?;
    assert_eq!(resp.headers().get("x-request-id").and_then(|v| v.to_str().ok()), Some("trace-me-123"));
    s.stop().await
}

async fn assert_limited(s: &TestServer, remaining_before: u32) -> anyhow::Result<()> {
    let body = json!({ "username": "nobody", "password": "wrong-password-123" });
    let resp = s.client.post(s.url("/api/auth/login")).json(&body).send().await?;
    assert_eq!(resp.status().as_u16(), 429, "expected 429 after {remaining_before} allowed");
    let h = resp.headers();
    assert_eq!(h.get("x-ratelimit-limit").and_then(|v| v.to_str().ok()), Some("3"));
    assert_eq!(h.get("x-ratelimit-remaining").and_then(|v| v.to_str().ok()), Some("0"));
    let retry: u64 = h.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
    assert!((1..=60).contains(&retry), "retry-after {retry}");
    assert!(h.get("x-ratelimit-reset").is_some());
    let body: serde_json::Value = resp.json().await?;
    assert_eq!(body["error"]["code"], "rate_limited");
    Ok(())
}

async fn login_rate_limit_in_memory(backend: Backend) -> anyhow::Result<()> {
    let s = TestServer::builder(backend)
        .settings(|s| s.rate_limit.auth = RateLimitPolicy { requests: 3, window_secs: 60 })
        .start()
        .await?;
    let body = json!({ "username": "nobody", "password": "wrong-password-123" });
    for expected_remaining in ["2", "1", "0"] {
        let resp = s.client.post(s.url("/api/auth/login")).json(&body).send().await?;
        assert_eq!(resp.status().as_u16(), 401);
        assert_eq!(resp.headers().get("x-ratelimit-remaining").and_then(|v| v.to_str().ok()), Some(expected_remaining));
    }
    assert_limited(&s, 3).await?;
    // The API policy is separate: an authenticated read is still allowed.
    let (status, _) = s.get("/healthz", None).await?;
    assert_eq!(status, 200);
    s.stop().await
}

async fn login_rate_limit_shared_through_redis(backend: Backend) -> anyhow::Result<()> {
    let redis = TestRedis::new().await?;
    let prefix = redis.prefix.clone();
    let policy = RateLimitPolicy { requests: 3, window_secs: 60 };
    let a = TestServer::builder(backend).settings(|s| s.rate_limit.auth = policy).with_redis(redis).start().await?;
    let b = TestServer::builder(backend)
        .settings(|s| {
            s.rate_limit.auth = policy;
            s.redis_url = a.state.settings.redis_url.clone();
            s.redis_prefix = prefix;
        })
        .start()
        .await?;
    let body = json!({ "username": "nobody", "password": "wrong-password-123" });
    for server in [&a, &b, &a] {
        let (status, _) = server.post("/api/auth/login", None, &body).await?;
        assert_eq!(status, 401);
    }
    // Three attempts spread over two replicas exhaust the shared window.
    assert_limited(&b, 3).await?;
    assert_limited(&a, 3).await?;
    let (_, health) = a.get("/api/system/health", None).await?;
    assert_eq!(health["dependencies"]["redis"]["status"], "ok");
    b.stop().await?;
    a.stop().await
}

dual_test!(
    validation_errors_name_the_field,
    health_metrics_and_docs,
    security_headers_and_request_ids,
    login_rate_limit_in_memory,
    login_rate_limit_shared_through_redis,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_fails_when_postgres_database_is_gone() -> anyhow::Result<()> {
    let mut s = TestServer::start(Backend::Postgres).await?;
    let (status, _) = s.get("/readyz", None).await?;
    assert_eq!(status, 200);
    // Drop the database under the running server (terminating its connections).
    let url = s.test_db.url.clone();
    let base = seidra_testkit::postgres_base_url();
    let name = url.rsplit('/').next().unwrap_or_default().split('?').next().unwrap_or_default().to_owned();
    let admin = seidra_store::Db::connect(&base, &Default::default()).await?;
    if let seidra_store::Db::Postgres(pool) = &admin {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)"))).execute(pool).await?;
    }
    admin.close().await;
    let (status, body) = s.get("/readyz", None).await?;
    assert_eq!((status, body["status"].as_str()), (503, Some("not_ready")), "{body}");
    assert!(body["reasons"].to_string().contains("database"), "{body}");
    let (status, health) = s.get("/api/system/health", None).await?;
    assert_eq!((status, health["status"].as_str()), (503, Some("down")));
    // Requests needing the database answer 503 with a clear code, not 500.
    let (status, body) =
        s.post("/api/auth/login", None, &json!({ "username": "admin", "password": "whatever-password" })).await?;
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("database_unavailable")), "{body}");
    s.test_db.drop_database().await.ok();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allows_only_configured_origins() -> anyhow::Result<()> {
    let s = TestServer::builder(Backend::Sqlite)
        .settings(|s| s.cors_origins = vec!["https://studio.example".to_owned()])
        .start()
        .await?;
    let preflight = |origin: &'static str| {
        s.client
            .request(reqwest::Method::OPTIONS, s.url("/api/auth/me"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let allowed = preflight("https://studio.example").await?;
    assert_eq!(
        allowed.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()),
        Some("https://studio.example")
    );
    let denied = preflight("https://evil.example").await?;
    assert!(denied.headers().get("access-control-allow-origin").is_none());
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_web_app_with_spa_fallback() -> anyhow::Result<()> {
    let dist = tempfile::tempdir()?;
    std::fs::write(dist.path().join("index.html"), "<!doctype html><title>SEIDRA</title><div id=root></div>")?;
    std::fs::create_dir(dist.path().join("assets"))?;
    std::fs::write(dist.path().join("assets/app-3f2a1b.js"), "console.log('studio')")?;
    let ui_dir = dist.path().to_path_buf();
    let s = TestServer::builder(Backend::Sqlite).settings(|s| s.ui_dir = ui_dir).start().await?;
    for path in ["/", "/jobs", "/settings/api-keys"] {
        let resp = s.client.get(s.url(path)).send().await?;
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        assert_eq!(resp.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-cache"));
        assert!(resp.text().await?.contains("<div id=root>"), "{path} serves the app shell");
    }
    let asset = s.client.get(s.url("/assets/app-3f2a1b.js")).send().await?;
    assert_eq!(asset.status().as_u16(), 200);
    assert!(
        asset.headers().get("cache-control").and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("immutable"))
    );
    assert!(
        asset.headers().get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("javascript"))
    );
    // Precompressed copies are sent to browsers that accept them, with the original's type.
    std::fs::write(dist.path().join("assets/app-3f2a1b.js.gz"), b"gzipped bytes")?;
    let gz = s.client.get(s.url("/assets/app-3f2a1b.js")).header("accept-encoding", "br, gzip").send().await?;
    let header =
        |r: &reqwest::Response, name: &str| r.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(header(&gz, "content-encoding").as_deref(), Some("gzip"));
    assert!(header(&gz, "content-type").is_some_and(|v| v.contains("javascript")));
    assert_eq!(gz.bytes().await?.as_ref(), b"gzipped bytes");
    let plain = s.client.get(s.url("/assets/app-3f2a1b.js")).send().await?;
    assert_eq!(header(&plain, "content-encoding"), None, "no encoding unless asked");
    let (status, body) = s.get("/api/unknown", None).await?;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("route_not_found")), "API paths never get the app");
    s.stop().await
}
