//! A WebSocket client for tests.

use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Stream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A connected client.
pub struct WsClient {
    stream: Stream,
}

impl WsClient {
    /// Connects to `{base}/ws` with `Authorization: Bearer token`.
    pub async fn connect(base: &str, token: &str) -> anyhow::Result<WsClient> {
        let url = format!("{}/ws", base.replacen("http://", "ws://", 1));
        let mut req = url.into_client_request()?;
        req.headers_mut().insert(http::header::AUTHORIZATION, format!("Bearer {token}").parse()?);
        let (stream, _) = tokio_tungstenite::connect_async(req).await.context("WebSocket connect")?;
        Ok(WsClient { stream })
    }

    /// Connects with the token in the `Sec-WebSocket-Protocol` pair `bearer, <token>`.
    pub async fn connect_subprotocol(base: &str, token: &str) -> anyhow::Result<WsClient> {
        let url = format!("{}/ws", base.replacen("http://", "ws://", 1));
        let mut req = url.into_client_request()?;
        req.headers_mut().insert(http::header::SEC_WEBSOCKET_PROTOCOL, format!("bearer, {token}").parse()?);
        let (stream, _) = tokio_tungstenite::connect_async(req).await.context("WebSocket connect")?;
        Ok(WsClient { stream })
    }

    /// Connects without credentials (authenticate with a first message).
    pub async fn connect_anonymous(base: &str) -> anyhow::Result<WsClient> {
        let url = format!("{}/ws", base.replacen("http://", "ws://", 1));
        let (stream, _) = tokio_tungstenite::connect_async(url).await.context("WebSocket connect")?;
        Ok(WsClient { stream })
    }

    /// Sends a JSON message.
    pub async fn send(&mut self, value: &Value) -> anyhow::Result<()> {
        self.stream.send(Message::Text(value.to_string().into())).await?;
        Ok(())
    }

    /// Next JSON message within `timeout` (None on timeout or close).
    pub async fn next(&mut self, timeout: Duration) -> anyhow::Result<Option<Value>> {
        loop {
            let msg = match tokio::time::timeout(timeout, self.stream.next()).await {
                Err(_) | Ok(None) => return Ok(None),
                Ok(Some(msg)) => msg?,
            };
            match msg {
                Message::Text(text) => return Ok(Some(serde_json::from_str(&text)?)),
                Message::Close(frame) => {
                    return Ok(Some(
                        serde_json::json!({ "type": "__close", "code": frame.map(|f| u16::from(f.code)) }),
                    ));
                }
                _ => {}
            }
        }
    }

    /// Reads messages until one has `type == kind` (and passes `filter`); errors on timeout.
    pub async fn expect(
        &mut self,
        kind: &str,
        timeout: Duration,
        filter: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(msg) = self.next(left).await? else { anyhow::bail!("no `{kind}` message within {timeout:?}") };
            if msg["type"] == kind && filter(&msg) {
                return Ok(msg);
            }
        }
    }

    /// Every message received within `window`.
    pub async fn drain(&mut self, window: Duration) -> anyhow::Result<Vec<Value>> {
        let deadline = tokio::time::Instant::now() + window;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Ok(out);
            }
            match self.next(left).await? {
                Some(msg) => out.push(msg),
                None => return Ok(out),
            }
        }
    }
}
