//! The HTTP client shared by the remote protocols, and the mapping of its failures to
//! [`EngineError`]s (see the rule in the module docs of `remote`).

use std::time::Duration;

use serde::de::DeserializeOwned;

use super::{remote_error, unavailable};
use crate::EngineError;

/// Most characters of a remote error body kept in a message.
const MAX_MESSAGE_CHARS: usize = 500;

/// A client bound to one base URL and credential.
#[derive(Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    base: String,
    api_key: Option<String>,
}

impl Http {
    pub(crate) fn new(base: &str, api_key: Option<String>) -> Result<Self, String> {
        seidra_net::install_crypto_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self { client, base: base.trim_end_matches('/').to_owned(), api_key })
    }

    /// `base` + `path`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The base URL.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// The bearer credential, if any.
    pub(crate) fn api_key(&self) -> Option<&str> {
        self.api_key.as_deref()
    }

    fn auth(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.api_key {
            Some(key) => builder.bearer_auth(key),
            None => builder,
        }
    }

    pub(crate) fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.auth(self.client.get(self.url(path)))
    }

    pub(crate) fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.auth(self.client.post(self.url(path)))
    }

    /// GET `path` as JSON.
    pub(crate) async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        timeout: Option<Duration>,
    ) -> Result<T, EngineError> {
        let mut req = self.get(path);
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        json(req).await
    }
}

/// Sends a request and returns the body of a 2xx answer.
pub(crate) async fn send(req: reqwest::RequestBuilder) -> Result<reqwest::Response, EngineError> {
    let resp = req.send().await.map_err(from_reqwest)?;
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = resp.text().await.unwrap_or_default();
    Err(from_status(status, &body))
}

/// Sends a request and decodes a 2xx JSON answer.
pub(crate) async fn json<T: DeserializeOwned>(req: reqwest::RequestBuilder) -> Result<T, EngineError> {
    let resp = send(req).await?;
    let bytes = resp.bytes().await.map_err(from_reqwest)?;
    serde_json::from_slice(&bytes).map_err(|e| remote_error(format!("unexpected answer from the engine: {e}")))
}

/// Transport failures: all connection-level.
pub(crate) fn from_reqwest(err: reqwest::Error) -> EngineError {
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    // reqwest's Display names the URL; the source says why (refused, reset…).
    let cause = std::error::Error::source(&err).map(ToString::to_string).unwrap_or_default();
    unavailable(format!(
        "{what}: {}{}",
        err.without_url(),
        if cause.is_empty() { String::new() } else { format!(" ({cause})") }
    ))
}

/// HTTP error statuses: 429 and 5xx are retryable, other 4xx carry the remote's message.
pub(crate) fn from_status(status: reqwest::StatusCode, body: &str) -> EngineError {
    let message = format!("HTTP {}: {}", status.as_u16(), body_message(body));
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        unavailable(message)
    } else {
        remote_error(message)
    }
}

/// The human part of an error body: OpenAI `error.message`, ComfyUI `error.message`, A1111
/// `errors`/`detail`, else the text itself.
pub(crate) fn body_message(body: &str) -> String {
    let text = match serde_json::from_str::<serde_json::Value>(body) {
        Ok(v) => {
            let pick = |v: &serde_json::Value| -> Option<String> {
                match v {
                    serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
                    serde_json::Value::Null | serde_json::Value::String(_) => None,
                    other => Some(other.to_string()),
                }
            };
            let nested = v.get("error").and_then(|e| e.get("message")).and_then(pick);
            nested
                .or_else(|| v.get("errors").and_then(pick))
                .or_else(|| v.get("error").and_then(pick))
                .or_else(|| v.get("detail").and_then(pick))
                .or_else(|| v.get("message").and_then(pick))
                .unwrap_or_else(|| body.to_owned())
        }
        Err(_) => body.to_owned(),
    };
    let text = text.trim();
    if text.chars().count() > MAX_MESSAGE_CHARS {
        format!("{}…", text.chars().take(MAX_MESSAGE_CHARS).collect::<String>())
    } else {
        text.to_owned()
    }
}
