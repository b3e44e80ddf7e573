//! Notifications: created by jobs and security events, pushed live to their owner only,
//! listed, marked read and deleted; admin broadcasts. On SQLite and PostgreSQL.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "test helpers panic on broken fixtures")]

use std::time::Duration;

use seidra_config::RateLimitPolicy;
use seidra_store::Backend;
use seidra_testkit::{TestServer, dual_test};
use serde_json::{Value, json};

const PASSWORD: &str = "a-long-enough-passphrase";
const WAIT: Duration = Duration::from_secs(30);

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

async fn user(server: &TestServer, name: &str) -> String {
    s(&server.register(name, PASSWORD).await.unwrap()["access_token"])
}

async fn submit(server: &TestServer, token: &str, prompt: &str) -> String {
    let body = json!({ "prompt": prompt, "engine": "noop", "width": 64, "height": 64 });
    let (status, resp) = server.post("/api/generate/single", Some(token), &body).await.unwrap();
    assert_eq!(status, 202, "{resp}");
    s(&resp["jobs"][0]["id"])
}

async fn list(server: &TestServer, token: &str, query: &str) -> Value {
    let (status, page) = server.get(&format!("/api/notifications{query}"), Some(token)).await.unwrap();
    assert_eq!(status, 200, "{page}");
    page
}

async fn post_empty(server: &TestServer, path: &str, token: &str) -> (u16, Value) {
    server.post(path, Some(token), &Value::Null).await.unwrap()
}

async fn job_notifications_reach_only_their_owner(backend: Backend) -> anyhow::Result<()> {
    let server = TestServer::builder(backend).settings(|s| s.engines.noop = true).with_workers(1).start().await?;
    let alice = user(&server, "alice").await;
    let bob = user(&server, "bob").await;
    let mut ws_alice = server.ws(&alice).await?;
    let mut ws_bob = server.ws(&bob).await?;

    let ok = submit(&server, &alice, "a red fox in the snow").await;
    server.wait_job(&alice, &ok, WAIT, |j| j["status"] == "succeeded").await?;
    let pushed = ws_alice.expect("notification", WAIT, |m| m["data"]["level"] == "success").await?;
    assert_eq!(pushed["channel"], "notifications");
    assert_eq!(pushed["data"]["category"], "job");
    assert_eq!(pushed["data"]["link"], format!("/jobs/{ok}"));
    assert_eq!(pushed["data"]["read"], false);

    let bad = submit(&server, &alice, "!fail on purpose").await;
    server.wait_job(&alice, &bad, WAIT, |j| j["status"] == "failed").await?;
    let failed = ws_alice.expect("notification", WAIT, |m| m["data"]["level"] == "error").await?;
    assert_eq!(failed["data"]["link"], format!("/jobs/{bad}"));
    assert!(s(&failed["data"]["title"]).contains("failed"), "{failed}");

    // Bob's socket saw none of it.
    let seen = ws_bob.drain(Duration::from_millis(500)).await?;
    assert!(!seen.iter().any(|m| m["type"] == "notification"), "{seen:?}");

    let page = list(&server, &alice, "").await;
    assert_eq!((page["total"].as_i64(), page["unread_count"].as_i64()), (Some(2), Some(2)), "{page}");
    assert_eq!(page["items"][0]["level"], "error", "newest first");
    let failed_id = s(&page["items"][0]["id"]);
    let ok_id = s(&page["items"][1]["id"]);
    assert_eq!(list(&server, &bob, "").await["total"], 0);

    // Bob cannot touch Alice's notifications: 404, as if they did not exist.
    assert_eq!(post_empty(&server, &format!("/api/notifications/{ok_id}/read"), &bob).await.0, 404);
    assert_eq!(server.delete(&format!("/api/notifications/{ok_id}"), Some(&bob)).await?.0, 404);
    assert_eq!(list(&server, &alice, "").await["unread_count"], 2);

    let (status, read) = post_empty(&server, &format!("/api/notifications/{ok_id}/read"), &alice).await;
    assert_eq!((status, read["read"].as_bool()), (200, Some(true)), "{read}");
    let unread = list(&server, &alice, "?unread_only=true").await;
    assert_eq!((unread["total"].as_i64(), unread["unread_count"].as_i64()), (Some(1), Some(1)));
    assert_eq!(s(&unread["items"][0]["id"]), failed_id);
    let (status, all) = post_empty(&server, "/api/notifications/read-all", &alice).await;
    assert_eq!((status, all["updated"].as_u64()), (200, Some(1)));
    assert_eq!(list(&server, &alice, "").await["unread_count"], 0);
    assert_eq!(server.delete(&format!("/api/notifications/{failed_id}"), Some(&alice)).await?.0, 204);
    assert_eq!(server.delete(&format!("/api/notifications/{failed_id}"), Some(&alice)).await?.0, 404);
    assert_eq!(list(&server, &alice, "").await["total"], 1);
    let (status, err) = server.get("/api/notifications?limit=0", Some(&alice)).await?;
    assert_eq!((status, err["error"]["field"].as_str()), (422, Some("limit")));
    server.stop().await
}

async fn security_notices_and_broadcast(backend: Backend) -> anyhow::Result<()> {
    let server = TestServer::builder(backend)
        .settings(|s| {
            s.rate_limit.auth = RateLimitPolicy { requests: 1000, window_secs: 60 };
            s.trusted_proxies = vec!["127.0.0.1".into()];
            s.queue.max_queued_per_user = 1;
        })
        .start()
        .await?;
    let alice = user(&server, "alice").await;
    let bob = user(&server, "bob").await;
    let mut ws_alice = server.ws(&alice).await?;

    let (status, _) =
        server.post("/api/auth/api-keys", Some(&alice), &json!({ "name": "ci", "scopes": ["read"] })).await?;
    assert_eq!(status, 201);
    let notice = ws_alice.expect("notification", WAIT, |m| m["data"]["title"] == "API key created").await?;
    assert_eq!(
        (notice["data"]["category"].as_str(), notice["data"]["level"].as_str()),
        (Some("security"), Some("warning"))
    );

    let change = json!({ "current_password": PASSWORD, "new_password": "another-long-passphrase" });
    let (status, body) = server.post("/api/auth/me/password", Some(&alice), &change).await?;
    assert_eq!(status, 204, "{body}");
    ws_alice.expect("notification", WAIT, |m| m["data"]["title"] == "Password changed").await?;

    // Sign-ins: the first has no history; a second from another address is flagged; a
    // known address is not.
    let login = |ip: &'static str| {
        let req = server
            .client
            .post(server.url("/api/auth/login"))
            .header("x-forwarded-for", ip)
            .json(&json!({ "username": "alice", "password": "another-long-passphrase" }));
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(login("203.0.113.7").await, 200);
    assert_eq!(login("198.51.100.9").await, 200);
    assert_eq!(login("203.0.113.7").await, 200);
    let page = list(&server, &alice, "?limit=50").await;
    let titles: Vec<String> = page["items"].as_array().unwrap().iter().map(|n| s(&n["title"])).collect();
    let new_ip: Vec<&Value> =
        page["items"].as_array().unwrap().iter().filter(|n| n["title"] == "Sign-in from a new address").collect();
    assert_eq!(new_ip.len(), 1, "{titles:?}");
    assert!(s(&new_ip[0]["body"]).contains("198.51.100.9"), "{}", new_ip[0]);
    assert!(titles.contains(&"API key created".to_owned()) && titles.contains(&"Password changed".to_owned()));
    assert_eq!(list(&server, &bob, "").await["total"], 0, "nothing of Alice's reaches Bob");

    // Quota: the first refused submission leaves a notice; repeated refusals do not pile up.
    let job = json!({ "prompt": "a quiet lake", "width": 64, "height": 64, "num_inference_steps": 1 });
    assert_eq!(server.post("/api/generate/single", Some(&bob), &job).await?.0, 202);
    for _ in 0..3 {
        assert_eq!(server.post("/api/generate/single", Some(&bob), &job).await?.0, 429);
    }
    let page = list(&server, &bob, "").await;
    assert_eq!(page["total"], 1, "{page}");
    assert_eq!(
        (page["items"][0]["category"].as_str(), page["items"][0]["level"].as_str()),
        (Some("quota"), Some("warning"))
    );

    // Broadcast: admins only, to every enabled account, live too.
    let notice = json!({ "title": "Maintenance tonight", "body": "22:00 UTC", "level": "warning" });
    let (status, err) = server.post("/api/admin/notifications/broadcast", Some(&bob), &notice).await?;
    assert_eq!(status, 403, "{err}");
    let admin = server.admin_token().await?;
    let (status, err) = server
        .post("/api/admin/notifications/broadcast", Some(&admin), &json!({ "title": "x", "level": "loud" }))
        .await?;
    assert_eq!((status, err["error"]["field"].as_str()), (422, Some("level")));
    let (status, sent) = server.post("/api/admin/notifications/broadcast", Some(&admin), &notice).await?;
    assert_eq!((status, sent["recipients"].as_u64()), (201, Some(3)), "{sent}");
    let live = ws_alice.expect("notification", WAIT, |m| m["data"]["title"] == "Maintenance tonight").await?;
    assert_eq!(live["data"]["category"], "system");
    for token in [&bob, &admin] {
        let page = list(&server, token, "").await;
        assert!(page["items"].as_array().unwrap().iter().any(|n| n["title"] == "Maintenance tonight"), "{page}");
    }
    server.stop().await
}

/// `/api/settings` decides where job notices go: off in the inbox → none stored or pushed;
/// in the inbox but not live → stored, not pushed. Security notices ignore the preferences.
async fn preferences_decide_where_notices_go(backend: Backend) -> anyhow::Result<()> {
    let server = TestServer::builder(backend).settings(|s| s.engines.noop = true).with_workers(1).start().await?;
    let alice = user(&server, "alice").await;
    let mut ws = server.ws(&alice).await?;
    let off = json!({ "notifications": { "job": { "in_app": false }, "security": { "in_app": false } } });
    let (status, body) = server.patch("/api/settings", Some(&alice), &off).await?;
    assert_eq!(status, 200, "{body}");
    let first = submit(&server, &alice, "quietly").await;
    server.wait_job(&alice, &first, WAIT, |j| j["status"] == "succeeded").await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(list(&server, &alice, "").await["total"], 0, "job notices are off");

    let inbox_only = json!({ "notifications": { "job": { "in_app": true, "websocket": false } } });
    assert_eq!(server.patch("/api/settings", Some(&alice), &inbox_only).await?.0, 200);
    let second = submit(&server, &alice, "inbox only").await;
    server.wait_job(&alice, &second, WAIT, |j| j["status"] == "succeeded").await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(list(&server, &alice, "").await["total"], 1, "stored in the inbox");
    let seen = ws.drain(Duration::from_millis(300)).await?;
    assert!(!seen.iter().any(|m| m["type"] == "notification"), "not pushed live: {seen:?}");

    let (status, _) =
        server.post("/api/auth/api-keys", Some(&alice), &json!({ "name": "k", "scopes": ["read"] })).await?;
    assert_eq!(status, 201);
    let page = list(&server, &alice, "").await;
    assert_eq!(page["items"][0]["category"], "security", "security notices are mandatory: {page}");
    server.stop().await
}

dual_test!(
    job_notifications_reach_only_their_owner,
    security_notices_and_broadcast,
    preferences_decide_where_notices_go
);
