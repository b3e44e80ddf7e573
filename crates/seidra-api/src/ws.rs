//! `GET /ws`: one authenticated WebSocket per client carrying its own jobs' events.
//!
//! Authentication: `Authorization: Bearer …`, or the subprotocol pair `bearer, <token>`, or a
//! first message `{"type":"auth","token":"…"}` within 10 s. On connect the client gets a
//! `snapshot` of its active jobs (so a reconnect resynchronises), then live events with a
//! per-connection increasing `id`. A client too slow to keep up is disconnected with close
//! code 4008 (it reconnects and gets a fresh snapshot); it never slows anyone else down. A
//! server that shuts down closes every socket with 1001 (going away) before it exits.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use seidra_core::ApiKeyScope;
use seidra_events::Channel;
use seidra_store::jobs;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::auth::Principal;
use crate::auth::principal::{AuthOutcome, authenticate};
use crate::error::ApiError;
use crate::routes::jobs::JobView;
use crate::state::AppState;

/// Time a client has to authenticate by message.
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// A send that takes longer than this means the client is not reading.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Close code for a client that fell behind.
const CLOSE_SLOW: u16 = 4008;
/// Close code for failed authentication.
const CLOSE_AUTH: u16 = 4001;
/// Close code when the server shuts down (RFC 6455 "going away"): reconnect to another replica
/// or after the restart.
const CLOSE_GOING_AWAY: u16 = 1001;

/// Upgrades to a WebSocket.
pub async fn upgrade(State(state): State<AppState>, headers: HeaderMap, ws: WebSocketUpgrade) -> Response {
    let header_token = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(|t| t.trim().to_owned());
    let protocols: Vec<String> = headers
        .get(http::header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(',').map(|p| p.trim().to_owned()).collect())
        .unwrap_or_default();
    let protocol_token = match protocols.as_slice() {
        [kind, token] if kind == "bearer" => Some(token.clone()),
        _ => None,
    };
    let token = header_token.or(protocol_token.clone());
    // Authenticate before upgrading when we can, so a bad token is a plain 401.
    let principal = match token {
        Some(t) => match authenticate(&state, &t).await {
            Ok(AuthOutcome::Authenticated(p)) => Some(*p),
            Ok(AuthOutcome::Rejected(code, message)) => return ApiError::unauthorized(code, message).into_response(),
            Ok(AuthOutcome::Anonymous) => None,
            Err(e) => return e.into_response(),
        },
        None => None,
    };
    let ws = if protocol_token.is_some() { ws.protocols(["bearer"]) } else { ws };
    ws.max_message_size(64 * 1024).on_upgrade(move |socket| async move {
        let _open = state.ws_sessions.enter();
        session(state, socket, principal).await;
    })
}

/// The open WebSocket sessions. The HTTP server does not track upgraded connections, so a
/// draining server waits here for their close frames before the process exits.
#[derive(Debug, Clone, Default)]
pub struct Sessions {
    open: Arc<AtomicUsize>,
    all_closed: Arc<Notify>,
}

/// One open session; dropping it closes it.
pub struct SessionGuard(Sessions);

impl Sessions {
    /// Counts a session as open until the guard drops.
    pub fn enter(&self) -> SessionGuard {
        self.open.fetch_add(1, Ordering::SeqCst);
        SessionGuard(self.clone())
    }

    /// Sessions open now.
    pub fn len(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves once no session is open.
    pub async fn closed(&self) {
        loop {
            // Created before the check: `notify_waiters` reaches it even before its first poll.
            let notified = self.all_closed.notified();
            if self.is_empty() {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.all_closed.notify_waiters();
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    Auth { token: String },
    Subscribe { channels: Vec<Channel> },
    Unsubscribe { channels: Vec<Channel> },
    Ping,
}

struct Conn {
    socket: WebSocket,
    seq: u64,
}

impl Conn {
    /// The next per-connection sequence id.
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Sends a JSON message with the next sequence id; false when the client is gone or stuck.
    async fn send(&mut self, mut value: Value) -> bool {
        let seq = self.next_seq();
        if let Some(obj) = value.as_object_mut() {
            obj.insert("id".to_owned(), json!(seq));
        }
        self.send_text(value.to_string()).await
    }

    /// Sends a rendered message; false when the client is gone or stuck.
    async fn send_text(&mut self, text: String) -> bool {
        match tokio::time::timeout(SEND_TIMEOUT, self.socket.send(Message::Text(Utf8Bytes::from(text)))).await {
            Ok(Ok(())) => true,
            Ok(Err(_)) => false,
            Err(_) => {
                self.close(CLOSE_SLOW, "client too slow; reconnect to resync").await;
                false
            }
        }
    }

    async fn close(&mut self, code: u16, reason: &'static str) {
        let frame = CloseFrame { code, reason: Utf8Bytes::from_static(reason) };
        let _ = tokio::time::timeout(Duration::from_secs(1), self.socket.send(Message::Close(Some(frame)))).await;
    }
}

async fn session(state: AppState, socket: WebSocket, principal: Option<Principal>) {
    let mut conn = Conn { socket, seq: 0 };
    let principal = match principal {
        Some(p) => p,
        None => match authenticate_by_message(&state, &mut conn).await {
            Some(p) => p,
            None => return,
        },
    };
    if principal.require_scope(ApiKeyScope::Read).is_err() {
        conn.close(CLOSE_AUTH, "this API key lacks the read scope").await;
        return;
    }
    metrics::gauge!("seidra_ws_connections").increment(1.0);
    run(&state, &mut conn, &principal).await;
    metrics::gauge!("seidra_ws_connections").decrement(1.0);
}

async fn authenticate_by_message(state: &AppState, conn: &mut Conn) -> Option<Principal> {
    let first = tokio::time::timeout(AUTH_TIMEOUT, conn.socket.next()).await;
    let token = match first {
        Ok(Some(Ok(Message::Text(text)))) => match serde_json::from_str::<ClientMessage>(&text) {
            Ok(ClientMessage::Auth { token }) => token,
            _ => {
                conn.close(CLOSE_AUTH, "first message must be {\"type\":\"auth\",\"token\":…}").await;
                return None;
            }
        },
        Ok(_) => return None,
        Err(_) => {
            conn.close(CLOSE_AUTH, "authentication timed out").await;
            return None;
        }
    };
    match authenticate(state, &token).await {
        Ok(AuthOutcome::Authenticated(p)) => Some(*p),
        _ => {
            conn.close(CLOSE_AUTH, "invalid credentials").await;
            None
        }
    }
}

async fn run(state: &AppState, conn: &mut Conn, principal: &Principal) {
    // Register before reading the snapshot so nothing falls between the two. The router only
    // hands this connection its own user's events (and system events to admins).
    let mut route = state.ws_router.register(principal.user.id, principal.is_admin());
    let mut channels: HashSet<Channel> = [Channel::Jobs, Channel::Notifications].into_iter().collect();
    if principal.is_admin() {
        channels.insert(Channel::System);
    }
    let welcome = json!({
        "type": "welcome",
        "user_id": principal.user.id,
        "channels": sorted(&channels),
        "server_version": seidra_core::VERSION,
    });
    if !conn.send(welcome).await {
        return;
    }
    let snapshot = match jobs::active_for_owner(&state.db, principal.user.id).await {
        Ok(active) => active.into_iter().map(|j| JobView::new(state, j, None)).collect::<Vec<_>>(),
        Err(err) => {
            tracing::warn!(%err, "snapshot failed");
            Vec::new()
        }
    };
    if !conn.send(json!({ "type": "snapshot", "jobs": snapshot })).await {
        return;
    }
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => {
                conn.close(CLOSE_GOING_AWAY, "server shutting down; reconnect").await;
                break;
            }
            incoming = conn.socket.next() => {
                let Some(Ok(msg)) = incoming else { break };
                match msg {
                    Message::Text(text) => {
                        let reply = match serde_json::from_str::<ClientMessage>(&text) {
                            Ok(ClientMessage::Ping) => json!({ "type": "pong" }),
                            Ok(ClientMessage::Subscribe { channels: add }) => {
                                for c in add {
                                    if c == Channel::System && !principal.is_admin() || c == Channel::Control {
                                        continue;
                                    }
                                    channels.insert(c);
                                }
                                json!({ "type": "subscribed", "channels": sorted(&channels) })
                            }
                            Ok(ClientMessage::Unsubscribe { channels: remove }) => {
                                for c in remove {
                                    channels.remove(&c);
                                }
                                json!({ "type": "subscribed", "channels": sorted(&channels) })
                            }
                            Ok(ClientMessage::Auth { .. }) => json!({ "type": "error", "message": "already authenticated" }),
                            Err(e) => json!({ "type": "error", "message": format!("unknown message: {e}") }),
                        };
                        if !conn.send(reply).await {
                            break;
                        }
                    }
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            event = route.events.recv() => match event {
                Some(event) if !route.lagged() => {
                    if !channels.contains(&event.channel) {
                        continue;
                    }
                    let text = event.with_id(conn.next_seq());
                    if !conn.send_text(text).await {
                        break;
                    }
                    metrics::counter!("seidra_ws_events_sent_total", "type" => event.kind.clone()).increment(1);
                }
                _ if route.lagged() => {
                    tracing::warn!(user_id = %principal.user.id, "WebSocket client fell behind; disconnecting");
                    metrics::counter!("seidra_ws_slow_disconnects_total").increment(1);
                    conn.close(CLOSE_SLOW, "client too slow; reconnect to resync").await;
                    break;
                }
                _ => break,
            }
        }
    }
}

fn sorted(channels: &HashSet<Channel>) -> Vec<Channel> {
    let mut v: Vec<Channel> = channels.iter().copied().collect();
    v.sort_by_key(|c| format!("{c:?}"));
    v
}
