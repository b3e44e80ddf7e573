//! The event bus against real servers: PostgreSQL at `SEIDRA_TEST_DATABASE_URL`, Redis at
//! `SEIDRA_TEST_REDIS_URL`. Unreachable servers fail the tests, they are never skipped.
//!
//! Each test uses its own channel, so tests run in parallel without hearing each other.
//! Outages are real: a TCP proxy in front of the server is cut and restored.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "test helpers panic on broken fixtures")]

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use seidra_events::{BusError, Channel, Event, EventBus, PG_MAX_PAYLOAD};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::Receiver;
use tokio::task::AbortHandle;
use uuid::Uuid;

const RECV_TIMEOUT: Duration = Duration::from_secs(5);

fn pg_url() -> String {
    std::env::var("SEIDRA_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn redis_url() -> String {
    std::env::var("SEIDRA_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn unique_channel() -> String {
    format!("seidra_test_{}", Uuid::new_v4().simple())
}

fn pg_options() -> PgConnectOptions {
    PgConnectOptions::from_str(&pg_url()).expect("SEIDRA_TEST_DATABASE_URL is not a PostgreSQL URL")
}

async fn pg_pool_with(options: PgConnectOptions) -> PgPool {
    PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(3))
        .connect_with(options)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL unreachable (SEIDRA_TEST_DATABASE_URL): {e}"))
}

async fn pg_bus(pool: PgPool, channel: &str) -> EventBus {
    EventBus::postgres(pool, channel).await.unwrap_or_else(|e| panic!("PostgreSQL event bus failed to start: {e}"))
}

async fn redis_bus(url: &str, channel: &str) -> EventBus {
    EventBus::redis(url, channel)
        .await
        .unwrap_or_else(|e| panic!("Redis unreachable (SEIDRA_TEST_REDIS_URL) or event bus failed to start: {e}"))
}

fn event(job: Uuid, i: usize) -> Event {
    Event {
        kind: "job.progress".into(),
        channel: Channel::Jobs,
        owner_id: Some(Uuid::from_u128(7)),
        job_id: Some(job),
        data: serde_json::json!({ "i": i }),
        at: chrono::Utc::now(),
    }
}

async fn recv(rx: &mut Receiver<Arc<Event>>) -> Arc<Event> {
    match tokio::time::timeout(RECV_TIMEOUT, rx.recv()).await {
        Ok(Ok(event)) => event,
        Ok(Err(err)) => panic!("receive failed: {err}"),
        Err(_) => panic!("no event within {RECV_TIMEOUT:?}"),
    }
}

/// Proves "exactly once": nothing else shows up for a while.
async fn assert_quiet(rx: &mut Receiver<Arc<Event>>) {
    if let Ok(extra) = tokio::time::timeout(Duration::from_millis(400), rx.recv()).await {
        panic!("unexpected delivery: {extra:?}");
    }
}

async fn expect_sequence(rx: &mut Receiver<Arc<Event>>, sent: &[Event]) {
    for (i, want) in sent.iter().enumerate() {
        let got = recv(rx).await;
        assert_eq!(*got, *want, "event #{i} out of order or altered");
    }
}

/// Polls the health round trip until it succeeds, as clients do after an outage.
async fn wait_healthy(bus: &EventBus, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        // A probe sent before the listener is back is lost; retry soon rather than wait for
        // the health check's own 5 s limit, so the time measured is the reconnection's.
        let attempt = tokio::time::timeout(Duration::from_millis(500), bus.health()).await;
        match attempt.unwrap_or(Err(BusError::Timeout { what: "probe", after: Duration::from_millis(500) })) {
            Ok(_) => return started.elapsed(),
            Err(err) if started.elapsed() < within => {
                eprintln!("not healthy yet after {:?}: {err}", started.elapsed());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => panic!("bus still unhealthy after {within:?}: {err}"),
        }
    }
}

#[tokio::test]
async fn in_process_delivers_every_event_in_order() {
    let bus = EventBus::in_process();
    assert_eq!(bus.transport(), "in_process");
    let mut first = bus.subscribe();
    let mut second = bus.clone().subscribe();
    let job = Uuid::new_v4();
    let sent: Vec<Event> = (0..100).map(|i| event(job, i)).collect();
    for ev in &sent {
        bus.publish(ev).await.unwrap();
    }
    expect_sequence(&mut first, &sent).await;
    expect_sequence(&mut second, &sent).await;
    assert_quiet(&mut first).await;
    bus.health().await.unwrap();
}

#[tokio::test]
async fn in_process_slow_receivers_lag_instead_of_blocking() {
    let bus = EventBus::in_process();
    let mut rx = bus.subscribe();
    let job = Uuid::new_v4();
    for i in 0..seidra_events::BROADCAST_CAPACITY + 10 {
        bus.publish(&event(job, i)).await.unwrap();
    }
    assert!(matches!(rx.recv().await, Err(tokio::sync::broadcast::error::RecvError::Lagged(10))));
}

#[tokio::test]
async fn postgres_events_cross_processes_once_and_in_order() {
    let channel = unique_channel();
    // Two pools, two listeners: two processes as far as PostgreSQL can tell.
    let a = pg_bus(pg_pool_with(pg_options()).await, &channel).await;
    let b = pg_bus(pg_pool_with(pg_options()).await, &channel).await;
    assert_eq!(a.transport(), "postgres");
    let (mut rx_a, mut rx_b) = (a.subscribe(), b.subscribe());

    let job = Uuid::new_v4();
    let sent: Vec<Event> = (0..100).map(|i| event(job, i)).collect();
    for ev in &sent {
        a.publish(ev).await.unwrap();
    }
    expect_sequence(&mut rx_b, &sent).await;
    expect_sequence(&mut rx_a, &sent).await;

    let from_b = event(Uuid::new_v4(), 0);
    b.publish(&from_b).await.unwrap();
    assert_eq!(*recv(&mut rx_a).await, from_b);
    assert_eq!(*recv(&mut rx_b).await, from_b);
    assert_quiet(&mut rx_a).await;
    assert_quiet(&mut rx_b).await;

    let rtt = a.health().await.unwrap();
    assert!(rtt < Duration::from_secs(5));
}

#[tokio::test]
async fn postgres_large_events_arrive_truncated_with_a_marker() {
    let channel = unique_channel();
    let a = pg_bus(pg_pool_with(pg_options()).await, &channel).await;
    let b = pg_bus(pg_pool_with(pg_options()).await, &channel).await;
    let (mut rx_a, mut rx_b) = (a.subscribe(), b.subscribe());

    let mut big = event(Uuid::new_v4(), 0);
    big.data = serde_json::json!({ "blob": "x".repeat(PG_MAX_PAYLOAD + 1000) });
    a.publish(&big).await.unwrap();
    let after = event(Uuid::new_v4(), 1);
    a.publish(&after).await.unwrap();

    for rx in [&mut rx_a, &mut rx_b] {
        let got = recv(rx).await;
        assert_eq!(got.data, serde_json::json!({ "truncated": true }));
        assert_eq!((&got.kind, got.job_id, got.owner_id, got.at), (&big.kind, big.job_id, big.owner_id, big.at));
        assert_eq!(*recv(rx).await, after);
    }
}

#[tokio::test]
async fn postgres_channel_names_are_checked() {
    let pool = pg_pool_with(pg_options()).await;
    let err = EventBus::postgres(pool, &"c".repeat(64)).await.unwrap_err();
    assert!(matches!(err, BusError::InvalidChannel { .. }), "{err}");
}

#[tokio::test]
async fn postgres_listener_comes_back_after_its_backend_is_terminated() {
    let channel = unique_channel();
    let admin = pg_pool_with(pg_options()).await;
    let a = pg_bus(pg_pool_with(pg_options()).await, &channel).await;
    let b = pg_bus(pg_pool_with(pg_options()).await, &channel).await;
    let mut rx_a = a.subscribe();

    // Both listeners' backends; their last statement was the LISTEN naming our channel.
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE application_name = 'seidra-events-listener' AND query LIKE '%' || $1 || '%'",
    )
    .bind(&channel)
    .fetch_all(&admin)
    .await
    .unwrap();
    assert_eq!(killed, [true, true]);

    let took = wait_healthy(&a, Duration::from_secs(20)).await;
    eprintln!("listener back after {took:?}");
    wait_healthy(&b, Duration::from_secs(20)).await;
    let ev = event(Uuid::new_v4(), 0);
    b.publish(&ev).await.unwrap();
    assert_eq!(*recv(&mut rx_a).await, ev);
    assert_quiet(&mut rx_a).await;
}

#[tokio::test]
async fn postgres_outage_keeps_local_delivery_and_recovers() {
    let channel = unique_channel();
    let upstream = pg_options();
    let proxy = Proxy::start(&format!("{}:{}", upstream.get_host(), upstream.get_port())).await;
    let via_proxy = upstream.clone().host("127.0.0.1").port(proxy.addr.port());
    let a = pg_bus(pg_pool_with(via_proxy).await, &channel).await;
    let b = pg_bus(pg_pool_with(pg_options()).await, &channel).await;
    let (mut rx_a, mut rx_b) = (a.subscribe(), b.subscribe());
    let job = Uuid::new_v4();

    proxy.cut();
    let during = event(job, 1);
    let started = Instant::now();
    let err = a.publish(&during).await.unwrap_err();
    eprintln!("publish during the outage failed after {:?}: {err}", started.elapsed());
    assert!(matches!(err, BusError::Postgres(_)), "{err}");
    assert_eq!(*recv(&mut rx_a).await, during, "local subscribers still get local events");
    assert_quiet(&mut rx_b).await;

    proxy.restore();
    let took = wait_healthy(&a, Duration::from_secs(20)).await;
    eprintln!("healthy again {took:?} after restore");
    let after = event(job, 2);
    a.publish(&after).await.unwrap();
    assert_eq!(*recv(&mut rx_a).await, after, "delivered once: the fallback is not replayed");
    assert_eq!(*recv(&mut rx_b).await, after);
    assert_quiet(&mut rx_a).await;
}

#[tokio::test]
async fn postgres_dropping_the_last_handle_stops_the_listener() {
    let channel = unique_channel();
    let admin = pg_pool_with(pg_options()).await;
    let bus = pg_bus(pg_pool_with(pg_options()).await, &channel).await;
    let mut rx = bus.subscribe();
    let clone = bus.clone();
    drop(bus);
    clone.health().await.unwrap();
    drop(clone);
    let closed = tokio::time::timeout(RECV_TIMEOUT, rx.recv()).await.expect("receiver not closed");
    assert!(matches!(closed, Err(tokio::sync::broadcast::error::RecvError::Closed)));

    // The dedicated connection goes away too.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE application_name = 'seidra-events-listener' AND query LIKE '%' || $1 || '%'",
        )
        .bind(&channel)
        .fetch_one(&admin)
        .await
        .unwrap();
        if left == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "listener connection still open");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn redis_events_cross_processes_once_and_in_order() {
    let channel = unique_channel();
    let a = redis_bus(&redis_url(), &channel).await;
    let b = redis_bus(&redis_url(), &channel).await;
    assert_eq!(a.transport(), "redis");
    // Only B listens: A publishes while the subscriber lives in another process.
    let mut rx_b = b.subscribe();

    let job = Uuid::new_v4();
    let sent: Vec<Event> = (0..200).map(|i| event(job, i)).collect();
    for ev in &sent {
        a.publish(ev).await.unwrap();
    }
    expect_sequence(&mut rx_b, &sent).await;
    assert_quiet(&mut rx_b).await;

    // Now both listen; each event reaches both once, the publisher's own included.
    let mut rx_a = a.subscribe();
    let more: Vec<Event> = (200..250).map(|i| event(job, i)).collect();
    for ev in &more {
        a.publish(ev).await.unwrap();
    }
    expect_sequence(&mut rx_a, &more).await;
    expect_sequence(&mut rx_b, &more).await;
    assert_quiet(&mut rx_a).await;
    assert_quiet(&mut rx_b).await;

    // Large events are fine on Redis: no truncation there.
    let mut big = event(job, 999);
    big.data = serde_json::json!({ "blob": "x".repeat(PG_MAX_PAYLOAD * 4) });
    b.publish(&big).await.unwrap();
    assert_eq!(*recv(&mut rx_a).await, big);

    let rtt = a.health().await.unwrap();
    assert!(rtt < Duration::from_secs(5));
}

#[tokio::test]
async fn redis_outage_keeps_local_delivery_and_recovers() {
    let channel = unique_channel();
    let url = redis_url();
    let (prefix, authority, rest) = split_authority(&url);
    let proxy = Proxy::start(authority).await;
    let a = redis_bus(&format!("{prefix}127.0.0.1:{}{rest}", proxy.addr.port()), &channel).await;
    let b = redis_bus(&url, &channel).await;
    let (mut rx_a, mut rx_b) = (a.subscribe(), b.subscribe());
    let job = Uuid::new_v4();

    let before = event(job, 0);
    a.publish(&before).await.unwrap();
    assert_eq!(*recv(&mut rx_a).await, before);
    assert_eq!(*recv(&mut rx_b).await, before);

    proxy.cut();
    let during: Vec<Event> = (1..4).map(|i| event(job, i)).collect();
    for ev in &during {
        let started = Instant::now();
        let err = a.publish(ev).await.unwrap_err();
        eprintln!("publish during the outage failed after {:?}: {err}", started.elapsed());
    }
    expect_sequence(&mut rx_a, &during).await;
    assert_quiet(&mut rx_b).await;
    // Events of other processes do not reach A while it is cut off.
    let from_b = event(job, 10);
    b.publish(&from_b).await.unwrap();
    assert_eq!(*recv(&mut rx_b).await, from_b);
    assert_quiet(&mut rx_a).await;

    proxy.restore();
    let took = wait_healthy(&a, Duration::from_secs(20)).await;
    eprintln!("healthy again {took:?} after restore");
    let after = event(job, 20);
    a.publish(&after).await.unwrap();
    let from_b_after = event(job, 21);
    b.publish(&from_b_after).await.unwrap();
    for rx in [&mut rx_a, &mut rx_b] {
        expect_sequence(rx, &[after.clone(), from_b_after.clone()]).await;
        assert_quiet(rx).await;
    }
}

#[tokio::test]
async fn redis_dropping_the_last_handle_stops_the_listener() {
    let channel = unique_channel();
    let bus = redis_bus(&redis_url(), &channel).await;
    let mut rx = bus.subscribe();
    drop(bus);
    let closed = tokio::time::timeout(RECV_TIMEOUT, rx.recv()).await.expect("receiver not closed");
    assert!(matches!(closed, Err(tokio::sync::broadcast::error::RecvError::Closed)));

    // Redis sees the subscription go.
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, subscribers): (String, i64) =
            redis::cmd("PUBSUB").arg("NUMSUB").arg(&channel).query_async(&mut conn).await.unwrap();
        if subscribers == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "subscription still open");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn unreachable_redis_is_an_error_at_start() {
    let err = EventBus::redis("redis://127.0.0.1:1", "seidra_test").await.unwrap_err();
    assert!(matches!(err, BusError::Redis(_) | BusError::Timeout { .. }), "{err}");
}

/// `scheme://user:pass@` + `host:port` + `/rest`.
fn split_authority(url: &str) -> (&str, &str, &str) {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let start = url[after_scheme..].find('@').map_or(after_scheme, |i| after_scheme + i + 1);
    let end = url[start..].find(['/', '?']).map_or(url.len(), |i| start + i);
    (&url[..start], &url[start..end], &url[end..])
}

/// A TCP proxy that can be cut (every connection dropped, new ones refused) and restored.
struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    acceptor: AbortHandle,
}

impl Proxy {
    async fn start(upstream: &str) -> Self {
        let upstream: SocketAddr = tokio::net::lookup_host(upstream)
            .await
            .unwrap()
            .next()
            .unwrap_or_else(|| panic!("cannot resolve {upstream}"));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let (up2, connections2) = (up.clone(), connections.clone());
        let acceptor = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { continue };
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let pipe = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                connections2.lock().unwrap().push(pipe.abort_handle());
            }
        });
        Self { addr, up, connections, acceptor: acceptor.abort_handle() }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for pipe in self.connections.lock().unwrap().drain(..) {
            pipe.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.acceptor.abort();
    }
}

/// `publish_many` sends a batch (larger than one statement's share) in order, once, on every
/// transport, interleaved correctly with single publishes.
#[tokio::test]
async fn publish_many_keeps_order_on_every_transport() {
    let channel = unique_channel();
    let buses = [
        EventBus::in_process(),
        pg_bus(pg_pool_with(pg_options()).await, &channel).await,
        redis_bus(&redis_url(), &channel).await,
    ];
    for bus in &buses {
        let listener_bus = match bus.transport() {
            "postgres" => pg_bus(pg_pool_with(pg_options()).await, &channel).await,
            "redis" => redis_bus(&redis_url(), &channel).await,
            _ => bus.clone(),
        };
        let mut rx = listener_bus.subscribe();
        let job = Uuid::new_v4();
        let sent: Vec<Event> = (0..150).map(|i| event(job, i)).collect();
        bus.publish(&sent[0]).await.unwrap();
        bus.publish_many(&sent[1..149]).await.unwrap();
        bus.publish(&sent[149]).await.unwrap();
        bus.publish_many(&[]).await.unwrap();
        expect_sequence(&mut rx, &sent).await;
        assert_quiet(&mut rx).await;
    }
}
