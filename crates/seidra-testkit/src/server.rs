//! The real API served in-process on a random loopback port.

use std::time::Duration;

use seidra_api::startup::{build_state, ensure_admin};
use seidra_config::{RateLimitPolicy, Secret, Settings};
use seidra_worker::{Worker, WorkerConfig, WorkerDeps};
use serde_json::{Value, json};

use crate::{ADMIN_PASSWORD, Backend, TestDb, TestRedis, bind_loopback};

/// Options for a test server.
pub struct TestServerBuilder {
    backend: Backend,
    settings: Settings,
    redis: Option<TestRedis>,
    workers: usize,
}

impl TestServerBuilder {
    /// Adjusts settings before start.
    pub fn settings(mut self, f: impl FnOnce(&mut Settings)) -> Self {
        f(&mut self.settings);
        self
    }

    /// Shares rate limits through Redis under a private prefix.
    pub fn with_redis(mut self, redis: TestRedis) -> Self {
        self.settings.redis_url = Some(Secret::new(redis.url.clone()));
        self.settings.redis_prefix = redis.prefix.clone();
        self.redis = Some(redis);
        self
    }

    /// Runs `n` in-process workers beside the API (as `seidra up` does).
    pub fn with_workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Starts on a fresh, migrated database.
    pub async fn start(self) -> anyhow::Result<TestServer> {
        let test_db = TestDb::migrated(self.backend).await?;
        self.start_on(test_db).await
    }

    /// Starts on the given database (migrated by the caller).
    pub async fn start_on(mut self, test_db: TestDb) -> anyhow::Result<TestServer> {
        let data_dir = tempfile::tempdir()?;
        self.settings.data_dir = data_dir.path().to_path_buf();
        self.settings.database_url = Some(Secret::new(test_db.url.clone()));
        ensure_admin(&test_db.db, &self.settings).await?;
        let state = build_state(self.settings, test_db.db.clone()).await?;
        let router = seidra_api::router(state.clone());
        let stop_workers = tokio_util::sync::CancellationToken::new();
        let mut workers = Vec::new();
        for i in 0..self.workers {
            let deps = WorkerDeps {
                db: state.db.clone(),
                storage: state.storage.clone(),
                bus: state.bus.clone(),
                engines: state.engines.clone(),
                signer: state.signer.clone(),
                media: state.settings.media.clone(),
                models: state.models.clone(),
            };
            let worker = Worker::new(deps, test_worker_config(&state.settings, i));
            workers.push(tokio::spawn(worker.run(stop_workers.clone())));
        }
        let (listener, addr) = bind_loopback().await?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(seidra_api::serve(
            listener,
            router,
            async {
                let _ = rx.await;
            },
            Duration::from_secs(5),
        ));
        Ok(TestServer {
            base: format!("http://{addr}"),
            client: crate::http_client(),
            state,
            test_db,
            shutdown: Some(tx),
            task: Some(task),
            _data_dir: data_dir,
            _redis: self.redis,
            stop_workers,
            workers,
        })
    }
}

/// A running API server with its own database.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// HTTP client.
    pub client: reqwest::Client,
    /// The server's state (database, settings…).
    pub state: seidra_api::AppState,
    /// Its database.
    pub test_db: TestDb,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _data_dir: tempfile::TempDir,
    _redis: Option<TestRedis>,
    stop_workers: tokio_util::sync::CancellationToken,
    workers: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Worker settings for tests: short lease and poll so failures show quickly.
pub fn test_worker_config(settings: &Settings, index: usize) -> WorkerConfig {
    WorkerConfig {
        name: format!("test-{index}"),
        concurrency: usize::try_from(settings.worker.concurrency).unwrap_or(2),
        lease: Duration::from_secs(settings.queue.lease_secs),
        poll_interval: Duration::from_millis(settings.queue.poll_interval_ms),
        max_running_per_owner: i64::from(settings.queue.max_running_per_user),
        grace: Duration::from_secs(settings.worker.grace_secs),
        retention_days: settings.queue.retention_days,
        maintenance: true,
        orphan_grace: Duration::from_secs(settings.storage.orphan_grace_minutes * 60),
        webhooks: seidra_notify::webhooks::DeliveryConfig::from_settings(&settings.webhooks)
            .inspect_err(|err| eprintln!("webhook deliveries disabled in this worker: {err}"))
            .ok(),
    }
}

impl TestServer {
    /// Uploads one file to `POST /api/media/uploads` (multipart field `file`), asserts 201 and
    /// returns the created item.
    #[expect(clippy::expect_used, reason = "a test fixture: failing here fails the test")]
    pub async fn upload(&self, token: &str, name: &str, mime: &str, content: &[u8]) -> serde_json::Value {
        let boundary = "----seidra-testkit-upload-boundary";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: {mime}\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(content);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let resp = self
            .client
            .post(self.url("/api/media/uploads"))
            .bearer_auth(token)
            .header("content-type", format!("multipart/form-data; boundary={boundary}"))
            .body(body)
            .send()
            .await
            .expect("upload request");
        let status = resp.status().as_u16();
        let v: serde_json::Value = resp.json().await.expect("upload answer");
        assert_eq!(status, 201, "{v}");
        v["items"][0].clone()
    }

    /// Default test settings: registration open, admin password known, fixed secret key.
    pub fn builder(backend: Backend) -> TestServerBuilder {
        let settings = Settings {
            allow_registration: true,
            admin_password: Some(Secret::new(ADMIN_PASSWORD)),
            secret_key: Some(Secret::new("test-secret-key-that-is-long-enough-0123456789")),
            ..Settings::default()
        };
        TestServerBuilder { backend, settings, redis: None, workers: 0 }
    }

    /// A server with default test settings and generous rate limits.
    pub async fn start(backend: Backend) -> anyhow::Result<TestServer> {
        Self::builder(backend)
            .settings(|s| s.rate_limit.auth = RateLimitPolicy { requests: 1000, window_secs: 60 })
            .start()
            .await
    }

    /// Absolute URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs JSON, optionally with a bearer token; returns status and parsed body (Null if empty).
    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> anyhow::Result<(u16, Value)> {
        let mut req = self.client.post(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await?;
        Ok((resp.status().as_u16(), body_json(resp).await?))
    }

    /// PATCHes JSON.
    pub async fn patch(&self, path: &str, token: Option<&str>, body: &Value) -> anyhow::Result<(u16, Value)> {
        let mut req = self.client.patch(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await?;
        Ok((resp.status().as_u16(), body_json(resp).await?))
    }

    /// GETs, optionally with a bearer token.
    pub async fn get(&self, path: &str, token: Option<&str>) -> anyhow::Result<(u16, Value)> {
        let mut req = self.client.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await?;
        Ok((resp.status().as_u16(), body_json(resp).await?))
    }

    /// DELETEs, optionally with a bearer token.
    pub async fn delete(&self, path: &str, token: Option<&str>) -> anyhow::Result<(u16, Value)> {
        let mut req = self.client.delete(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await?;
        Ok((resp.status().as_u16(), body_json(resp).await?))
    }

    /// Logs in; returns the whole token response.
    pub async fn login(&self, username: &str, password: &str) -> anyhow::Result<Value> {
        let (status, body) =
            self.post("/api/auth/login", None, &json!({ "username": username, "password": password })).await?;
        anyhow::ensure!(status == 200, "login as {username} failed: {status} {body}");
        Ok(body)
    }

    /// Logs in as the bootstrap admin; returns the access token.
    pub async fn admin_token(&self) -> anyhow::Result<String> {
        let body = self.login("admin", ADMIN_PASSWORD).await?;
        Ok(body["access_token"].as_str().unwrap_or_default().to_owned())
    }

    /// Registers a user; returns the token response.
    pub async fn register(&self, username: &str, password: &str) -> anyhow::Result<Value> {
        let (status, body) =
            self.post("/api/auth/register", None, &json!({ "username": username, "password": password })).await?;
        anyhow::ensure!(status == 201, "register {username} failed: {status} {body}");
        Ok(body)
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stop_workers.cancel();
        for w in self.workers.drain(..) {
            w.await??;
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await??;
        }
        Ok(())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop_workers.cancel();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn body_json(resp: reqwest::Response) -> anyhow::Result<Value> {
    let bytes = resp.bytes().await?;
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    Ok(serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())))
}

impl TestServer {
    /// Polls a job until `done(job)` or the timeout; returns the last state.
    pub async fn wait_job(
        &self,
        token: &str,
        id: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let (status, job) = self.get(&format!("/api/jobs/{id}"), Some(token)).await?;
            anyhow::ensure!(status == 200, "GET job {id}: {status} {job}");
            if done(&job) {
                return Ok(job);
            }
            anyhow::ensure!(tokio::time::Instant::now() < deadline, "job {id} did not reach the expected state: {job}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Opens an authenticated WebSocket (`Authorization` header).
    pub async fn ws(&self, token: &str) -> anyhow::Result<crate::WsClient> {
        crate::WsClient::connect(&self.base, token).await
    }
}
