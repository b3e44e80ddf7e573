//! Webhooks: signed deliveries to a real receiver, retries recorded in the delivery log, the
//! test event, the SSRF guard and the ownership rules. On SQLite and PostgreSQL.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "test helpers panic on broken fixtures")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, KeyInit, Mac};
use seidra_store::Backend;
use seidra_testkit::{TestServer, dual_test};
use serde_json::{Value, json};
use sha2::Sha256;

const PASSWORD: &str = "a-long-enough-passphrase";
const WAIT: Duration = Duration::from_secs(30);

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: String,
}

/// A tiny HTTP server on 127.0.0.1 that records requests and answers 500 for the first
/// `fail_first` of them, then 200.
#[derive(Clone)]
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(fail_first: usize) -> Receiver {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let seen = got.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let seen = seen.clone();
                async move {
                    let mut seen = seen.lock().unwrap();
                    seen.push(Received { headers, body });
                    if seen.len() <= fail_first { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url: format!("http://{addr}/hook"), got }
    }

    fn requests(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let got = self.requests();
            if got.len() >= n {
                return got;
            }
            assert!(tokio::time::Instant::now() < deadline, "receiver got {} of {n} requests", got.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Checks `X-Seidra-Signature: t=…,v1=…` against the secret, independently of the server code.
fn verify(received: &Received, secret: &str) {
    let header = received.headers.get("x-seidra-signature").and_then(|v| v.to_str().ok()).unwrap();
    let (t, v1) = header.split_once(',').unwrap();
    let t = t.strip_prefix("t=").unwrap();
    let v1 = v1.strip_prefix("v1=").unwrap();
    let age = chrono::Utc::now().timestamp() - t.parse::<i64>().unwrap();
    assert!((0..120).contains(&age), "timestamp is current");
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{}", received.body).as_bytes());
    assert_eq!(v1, hex::encode(mac.finalize().into_bytes()), "signature verifies with the secret");
}

fn header<'a>(r: &'a Received, name: &str) -> &'a str {
    r.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

async fn submit(server: &TestServer, token: &str, prompt: &str) -> String {
    let body = json!({ "prompt": prompt, "engine": "noop", "width": 64, "height": 64 });
    let (status, resp) = server.post("/api/generate/single", Some(token), &body).await.unwrap();
    assert_eq!(status, 202, "{resp}");
    s(&resp["jobs"][0]["id"])
}

/// The delivery log once no delivery is mid-flight: the receiver has its request a moment before
/// the sender records the answer, so a log read right after the receiver saw it may still say
/// `delivering`.
async fn deliveries(server: &TestServer, token: &str, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, page) = server.get(&format!("/api/webhooks/{id}/deliveries"), Some(token)).await.unwrap();
        assert_eq!(status, 200, "{page}");
        let in_flight = page["items"].as_array().is_some_and(|items| items.iter().any(|d| d["status"] == "delivering"));
        if !in_flight || tokio::time::Instant::now() > deadline {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn signed_deliveries_retries_and_ownership(backend: Backend) -> anyhow::Result<()> {
    let server = TestServer::builder(backend)
        .settings(|s| {
            s.engines.noop = true;
            s.webhooks.allow_private = vec!["127.0.0.1/32".into()];
            s.webhooks.retry_base_ms = 200;
            s.webhooks.poll_interval_ms = 50;
        })
        .with_workers(1)
        .start()
        .await?;
    let alice = s(&server.register("alice", PASSWORD).await?["access_token"]);
    let bob = s(&server.register("bob", PASSWORD).await?["access_token"]);

    // 1. A receiver that always answers 200, subscribed to successes only; generated secret.
    let ok_receiver = Receiver::start(0).await;
    let (status, hook) = server
        .post("/api/webhooks", Some(&alice), &json!({ "url": ok_receiver.url, "events": ["job.succeeded"] }))
        .await?;
    assert_eq!(status, 201, "{hook}");
    let secret = s(&hook["secret"]);
    assert!(secret.starts_with("whsec_") && secret.len() > 40, "{hook}");
    let hook_id = s(&hook["id"]);
    let (_, shown) = server.get(&format!("/api/webhooks/{hook_id}"), Some(&alice)).await?;
    assert!(shown.get("secret").is_none(), "the secret is shown once: {shown}");

    let failed = submit(&server, &alice, "!fail first").await;
    server.wait_job(&alice, &failed, WAIT, |j| j["status"] == "failed").await?;
    let job = submit(&server, &alice, "a lighthouse at dusk").await;
    server.wait_job(&alice, &job, WAIT, |j| j["status"] == "succeeded").await?;
    let got = ok_receiver.wait_for(1).await;
    verify(&got[0], &secret);
    assert_eq!(header(&got[0], "x-seidra-event"), "job.succeeded");
    assert_eq!(header(&got[0], "content-type"), "application/json");
    let body: Value = serde_json::from_str(&got[0].body)?;
    assert_eq!((body["event"].as_str(), s(&body["data"]["job_id"])), (Some("job.succeeded"), job.clone()));
    let log = deliveries(&server, &alice, &hook_id).await;
    assert_eq!(log["total"], 1, "the failed job was not subscribed: {log}");
    assert_eq!(header(&got[0], "x-seidra-delivery"), log["items"][0]["id"].to_string());
    assert_eq!(
        (log["items"][0]["status"].as_str(), log["items"][0]["status_code"].as_i64()),
        (Some("delivered"), Some(200))
    );

    // 2. A receiver that fails twice: three attempts in the log, then delivered.
    let flaky = Receiver::start(2).await;
    let (status, flaky_hook) = server
        .post("/api/webhooks", Some(&alice), &json!({ "url": flaky.url, "secret": "my-own-secret-0123456789" }))
        .await?;
    assert_eq!((status, flaky_hook["events"].clone()), (201, json!(["*"])), "{flaky_hook}");
    let flaky_id = s(&flaky_hook["id"]);
    let job2 = submit(&server, &alice, "a harbour in fog").await;
    server.wait_job(&alice, &job2, WAIT, |j| j["status"] == "succeeded").await?;
    let got = flaky.wait_for(3).await;
    for r in &got {
        verify(r, "my-own-secret-0123456789");
    }
    assert!(got.iter().all(|r| r.body == got[0].body), "every attempt sends the same body");
    let deadline = tokio::time::Instant::now() + WAIT;
    let delivery = loop {
        let log = deliveries(&server, &alice, &flaky_id).await;
        if log["items"][0]["status"] == "delivered" {
            break log["items"][0].clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(delivery["attempts"], 3, "{delivery}");
    let codes: Vec<i64> =
        delivery["attempt_log"].as_array().unwrap().iter().map(|a| a["status_code"].as_i64().unwrap()).collect();
    assert_eq!(codes, vec![500, 500, 200], "{delivery}");
    assert_eq!(delivery["attempt_log"][0]["error"], "HTTP 500");
    assert!(delivery["delivered_at"].is_string());

    // 3. The test event goes out at once, whatever the event list.
    let (status, test) = server.post(&format!("/api/webhooks/{hook_id}/test"), Some(&alice), &Value::Null).await?;
    assert_eq!(
        (status, test["event"].as_str(), test["status"].as_str()),
        (200, Some("webhook.test"), Some("delivered")),
        "{test}"
    );
    let got = ok_receiver.wait_for(3).await;
    let test_request = got.iter().find(|r| header(r, "x-seidra-event") == "webhook.test").expect("test event received");
    verify(test_request, &secret);
    assert_eq!(got.len(), 3, "job 1, job 2 and the test event");

    // 4. Bob sees and changes nothing of Alice's: 404 everywhere.
    let (_, bobs) = server.get("/api/webhooks", Some(&bob)).await?;
    assert_eq!(bobs["items"], json!([]));
    let path = format!("/api/webhooks/{hook_id}");
    assert_eq!(server.get(&path, Some(&bob)).await?.0, 404);
    assert_eq!(server.patch(&path, Some(&bob), &json!({ "active": false })).await?.0, 404);
    assert_eq!(server.get(&format!("{path}/deliveries"), Some(&bob)).await?.0, 404);
    assert_eq!(server.post(&format!("{path}/test"), Some(&bob), &Value::Null).await?.0, 404);
    assert_eq!(server.delete(&path, Some(&bob)).await?.0, 404);

    // Alice pauses, edits and deletes her own.
    let (status, paused) =
        server.patch(&path, Some(&alice), &json!({ "active": false, "events": ["job.failed"] })).await?;
    assert_eq!(
        (status, paused["active"].as_bool(), paused["events"].clone()),
        (200, Some(false), json!(["job.failed"]))
    );
    let (status, err) = server.patch(&path, Some(&alice), &json!({ "events": ["job.exploded"] })).await?;
    assert_eq!((status, err["error"]["field"].as_str()), (422, Some("events[0]")));
    assert_eq!(server.delete(&path, Some(&alice)).await?.0, 204);
    assert_eq!(server.get(&path, Some(&alice)).await?.0, 404);
    server.stop().await
}

/// A queued job cancelled through the API ends in the API process: its `job.cancelled`
/// delivery is enqueued there (no worker runs in this server, so the job stays queued).
async fn cancelling_a_queued_job_enqueues_its_webhook(backend: Backend) -> anyhow::Result<()> {
    let server = TestServer::builder(backend)
        .settings(|s| {
            s.engines.noop = true;
            s.webhooks.allow_private = vec!["127.0.0.1/32".into()];
        })
        .start()
        .await?;
    let alice = s(&server.register("alice", PASSWORD).await?["access_token"]);
    let receiver = Receiver::start(0).await;
    let (status, hook) = server
        .post("/api/webhooks", Some(&alice), &json!({ "url": receiver.url, "events": ["job.cancelled"] }))
        .await?;
    assert_eq!(status, 201, "{hook}");
    let job = submit(&server, &alice, "never runs").await;
    let (status, cancelled) = server.post(&format!("/api/jobs/{job}/cancel"), Some(&alice), &Value::Null).await?;
    assert_eq!((status, cancelled["status"].as_str()), (200, Some("cancelled")), "{cancelled}");
    let log = deliveries(&server, &alice, &s(&hook["id"])).await;
    assert_eq!((log["total"].as_i64(), log["items"][0]["event"].as_str()), (Some(1), Some("job.cancelled")), "{log}");
    server.stop().await
}

async fn ssrf_guard_refuses_internal_addresses(backend: Backend) -> anyhow::Result<()> {
    let server = TestServer::start(backend).await?;
    let token = s(&server.register("carol", PASSWORD).await?["access_token"]);
    for url in [
        "http://127.0.0.1/",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://localhost:8080/",
        "http://2130706433/",
        "http://[fd00::1]/",
        "http://100.64.0.1/",
        "ftp://93.184.216.34/",
        "http://user:secret@93.184.216.34/",
        "not a url",
    ] {
        let (status, err) = server.post("/api/webhooks", Some(&token), &json!({ "url": url })).await?;
        assert_eq!((status, err["error"]["field"].as_str()), (422, Some("url")), "{url} → {err}");
    }
    let (status, err) = server.post("/api/webhooks", Some(&token), &json!({ "url": "http://10.0.0.1/" })).await?;
    assert!(s(&err["error"]["message"]).contains("private"), "{status} {err}");
    let (status, ok) =
        server.post("/api/webhooks", Some(&token), &json!({ "url": "https://93.184.216.34/hook" })).await?;
    assert_eq!(status, 201, "a public address is fine: {ok}");
    server.stop().await?;

    // With the allow-list, the listed ranges and hosts (only those) are accepted.
    let server = TestServer::builder(backend)
        .settings(|s| s.webhooks.allow_private = vec!["127.0.0.1/32".into(), "::1".into(), "localhost".into()])
        .start()
        .await?;
    let token = s(&server.register("carol", PASSWORD).await?["access_token"]);
    for (url, want) in [
        ("http://127.0.0.1:9/", 201),
        ("http://[::1]:9/", 201),
        ("http://[::ffff:127.0.0.1]:9/", 201),
        ("http://localhost:9/", 201),
        ("http://10.0.0.1/", 422),
        ("http://169.254.169.254/", 422),
    ] {
        let (status, body) = server.post("/api/webhooks", Some(&token), &json!({ "url": url })).await?;
        assert_eq!(status, want, "{url} → {body}");
    }
    server.stop().await
}

/// An endpoint that got past creation (stored before the allow-list shrank, or a name that
/// rebinds to an internal address) is still refused when connecting.
async fn delivery_time_guard(backend: Backend) -> anyhow::Result<()> {
    let server = TestServer::builder(backend)
        .settings(|s| {
            s.engines.noop = true;
            s.webhooks.poll_interval_ms = 50;
        })
        .with_workers(1)
        .start()
        .await?;
    let alice = server.register("alice", PASSWORD).await?;
    let token = s(&alice["access_token"]);
    let owner = uuid::Uuid::parse_str(&s(&alice["user"]["id"]))?;
    let receiver = Receiver::start(0).await;
    let by_name = receiver.url.replace("127.0.0.1", "localhost");
    let mut ids = Vec::new();
    for url in [receiver.url.as_str(), by_name.as_str()] {
        // Written straight to the store: the API would refuse these URLs.
        let hook =
            seidra_store::webhooks::create(&server.state.db, owner, url, "secret-0123456789abcdef", &["*".into()])
                .await?;
        ids.push(hook.id.to_string());
    }
    let job = submit(&server, &token, "a mountain pass").await;
    server.wait_job(&token, &job, WAIT, |j| j["status"] == "succeeded").await?;
    for id in &ids {
        let deadline = tokio::time::Instant::now() + WAIT;
        let delivery = loop {
            let log = deliveries(&server, &token, id).await;
            if log["items"][0]["status"] == "failed" {
                break log["items"][0].clone();
            }
            assert!(tokio::time::Instant::now() < deadline, "{log}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(delivery["attempts"], 1, "a refused address is not retried: {delivery}");
        assert!(s(&delivery["error"]).contains("refused"), "{delivery}");
    }
    assert!(receiver.requests().is_empty(), "nothing reached the internal address");
    server.stop().await
}

dual_test!(
    signed_deliveries_retries_and_ownership,
    cancelling_a_queued_job_enqueues_its_webhook,
    ssrf_guard_refuses_internal_addresses,
    delivery_time_guard
);
