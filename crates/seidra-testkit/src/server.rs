//! The real API served in-process on a random loopback port.

use std::time::Duration;

use seidra_api::startup::{build_state, ensure_admin};
use seidra_config::{RateLimitPolicy, Secret, Settings};
use serde_json::{Value, json};

use crate::{ADMIN_PASSWORD, Backend, TestDb, TestRedis, bind_loopback};

/// Options for a test server.
pub struct TestServerBuilder {
    backend: Backend,
    settings: Settings,
    redis: Option<TestRedis>,
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
            client: reqwest::Client::new(),
            state,
            test_db,
            shutdown: Some(tx),
            task: Some(task),
            _data_dir: data_dir,
            _redis: self.redis,
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
}

impl TestServer {
    /// Default test settings: registration open, admin password known, fixed secret key.
    pub fn builder(backend: Backend) -> TestServerBuilder {
        let settings = Settings {
            allow_registration: true,
            admin_password: Some(Secret::new(ADMIN_PASSWORD)),
            secret_key: Some(Secret::new("test-secret-key-that-is-long-enough-0123456789")),
            ..Settings::default()
        };
        TestServerBuilder { backend, settings, redis: None }
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
