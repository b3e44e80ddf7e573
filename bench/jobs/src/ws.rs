//! `ws`: `--clients` concurrent WebSocket clients, each following its own job.
//!
//! Client i uses account i (mod the number of accounts: with fewer accounts than clients a
//! user has several connections, and each connection counts only its own job's events).
//! 1. Every client connects (`--connect-concurrency` handshakes at a time) and reads its
//!    `welcome` and `snapshot`.
//! 2. When all are connected, client i submits one noop job at `i × spread / clients` (so the
//!    submits are spread evenly over `--spread-ms`), while reading its socket.
//! 3. Each event of its job is timed: delivery latency = receive time − the event's `at`
//!    (the server's publish time; same machine clock). The client is done at `job.succeeded`
//!    but stays connected until every client is done (or `--timeout`), plus 3 s for late
//!    events, so the server fans every event out to all connections for the whole run.
//!
//! Reported: delivery latency over all events and per type, submit → succeeded, missing
//! events (`job.queued`, `job.started`, `job.succeeded` of each *accepted* job), submit
//! answers other than 202, close frames, connection errors.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::users::read_tokens;
use crate::util::{
    CpuWindow, Flags, Result, emit, http_client, ms, noop_request, note, parse_pids, post_json, rfc3339_ms, round3,
    summary, wall_ms, ws_connect,
};

const EXPECTED: [&str; 3] = ["job.queued", "job.started", "job.succeeded"];

#[derive(Default)]
struct Outcome {
    connected: bool,
    connect_error: Option<String>,
    submit_status: u16,
    /// (event type, delivery latency ms) of this client's job.
    events: Vec<(String, f64)>,
    submit_to_succeeded_ms: Option<f64>,
    close_code: Option<u16>,
    done: bool,
}

pub async fn run(flags: &Flags) -> Result<()> {
    let base = flags.str("base")?;
    let accounts = Arc::new(read_tokens(&flags.str("tokens")?)?);
    let clients: usize = flags.num("clients", 1000)?;
    let spread = Duration::from_millis(flags.num("spread-ms", 1000)?);
    let timeout = Duration::from_secs(flags.num("timeout", 60)?);
    let connect_concurrency: usize = flags.num("connect-concurrency", 64)?;
    let pids = parse_pids(flags);
    let postgres = flags.num("postgres", 0u8)? == 1;

    let http = http_client(256)?;
    let handshakes = Arc::new(Semaphore::new(connect_concurrency));
    let ready = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    // `go` carries the instant submits start; `stop` ends every connection.
    let (go_tx, go_rx) = watch::channel::<Option<Instant>>(None);
    let (stop_tx, stop_rx) = watch::channel(false);

    note(&format!("ws: connecting {clients} clients ({} accounts)", accounts.len().min(clients)));
    let connect_started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..clients {
        let (base, accounts, http, handshakes) = (base.clone(), accounts.clone(), http.clone(), handshakes.clone());
        let (ready, finished, mut go_rx, mut stop_rx) =
            (ready.clone(), finished.clone(), go_rx.clone(), stop_rx.clone());
        let offset = spread.mul_f64(i as f64 / clients as f64);
        tasks.spawn(async move {
            let mut out = Outcome::default();
            let token = accounts[i % accounts.len()].1.clone();
            let ws = {
                let _permit = handshakes.acquire().await;
                ws_connect(&base, &token).await
            };
            let ws = match ws {
                Ok(ws) => ws,
                Err(e) => {
                    out.connect_error = Some(e.to_string());
                    ready.fetch_add(1, Ordering::SeqCst);
                    finished.fetch_add(1, Ordering::SeqCst);
                    return out;
                }
            };
            let (mut sink, mut stream) = ws.split();
            // welcome, snapshot
            let mut greeted = 0;
            while greeted < 2 {
                match tokio::time::timeout(Duration::from_secs(30), stream.next()).await {
                    Ok(Some(Ok(Message::Text(_)))) => greeted += 1,
                    Ok(Some(Ok(_))) => {}
                    _ => {
                        out.connect_error = Some("no welcome/snapshot".into());
                        ready.fetch_add(1, Ordering::SeqCst);
                        finished.fetch_add(1, Ordering::SeqCst);
                        return out;
                    }
                }
            }
            out.connected = true;
            ready.fetch_add(1, Ordering::SeqCst);
            let start = loop {
                if let Some(t) = *go_rx.borrow_and_update() {
                    break t;
                }
                if go_rx.changed().await.is_err() {
                    return out;
                }
            };
            tokio::time::sleep_until((start + offset).into()).await;
            let t_submit = Instant::now();
            let (job_tx, mut job_rx) = tokio::sync::oneshot::channel::<(u16, Option<String>)>();
            tokio::spawn(async move {
                let body = noop_request(&format!("ws client {i}"));
                let res = post_json(&http, &format!("{base}/api/generate/single"), &token, &body).await;
                let _ = job_tx.send(match res {
                    Ok((s, v)) => (s, v["job_ids"][0].as_str().map(str::to_owned)),
                    Err(_) => (0, None),
                });
            });
            let mut my_job: Option<String> = None;
            let mut answered = false;
            // Events read before the submit answer named the job: (job id, type, latency).
            let mut early: Vec<(String, String, f64, Instant)> = Vec::new();
            loop {
                tokio::select! {
                    res = &mut job_rx, if !answered => {
                        answered = true;
                        let (status, job) = res.unwrap_or((0, None));
                        out.submit_status = status;
                        my_job = job;
                        if my_job.is_none() {
                            break;
                        }
                        for (job, kind, lat, recv) in early.drain(..) {
                            if Some(&job) == my_job.as_ref() {
                                if kind == "job.succeeded" || kind == "job.failed" {
                                    out.submit_to_succeeded_ms = Some(ms(recv - t_submit));
                                    out.done = true;
                                }
                                out.events.push((kind, lat));
                            }
                        }
                        if out.done {
                            break;
                        }
                    }
                    msg = stream.next() => {
                        let recv = Instant::now();
                        let recv_wall = wall_ms(SystemTime::now());
                        match msg {
                            Some(Ok(Message::Text(text))) => {
                                let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
                                let (Some(kind), Some(job)) = (v["type"].as_str(), v["job_id"].as_str()) else { continue };
                                let lat = v["at"].as_str().and_then(rfc3339_ms).map_or(f64::NAN, |at| recv_wall - at);
                                match &my_job {
                                    None => early.push((job.to_owned(), kind.to_owned(), lat, recv)),
                                    Some(mine) if mine == job => {
                                        out.events.push((kind.to_owned(), lat));
                                        if kind == "job.succeeded" || kind == "job.failed" {
                                            out.submit_to_succeeded_ms = Some(ms(recv - t_submit));
                                            out.done = true;
                                            break;
                                        }
                                    }
                                    Some(_) => {}
                                }
                            }
                            Some(Ok(Message::Close(frame))) => {
                                out.close_code = Some(frame.map_or(1005, |f| u16::from(f.code)));
                                break;
                            }
                            Some(Ok(_)) => {}
                            _ => break,
                        }
                    }
                    _ = stop_rx.changed() => break,
                }
            }
            finished.fetch_add(1, Ordering::SeqCst);
            // Stay connected until everyone is done, still recording this job's late events
            // (one arriving after `job.succeeded` is late and out of order, not lost).
            if out.close_code.is_none() {
                loop {
                    tokio::select! {
                        _ = stop_rx.changed() => break,
                        msg = stream.next() => match msg {
                            Some(Ok(Message::Close(frame))) => {
                                out.close_code = Some(frame.map_or(1005, |f| u16::from(f.code)));
                                break;
                            }
                            Some(Ok(Message::Text(text))) => {
                                let recv_wall = wall_ms(SystemTime::now());
                                let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
                                if let (Some(kind), Some(job)) = (v["type"].as_str(), v["job_id"].as_str())
                                    && my_job.as_deref() == Some(job)
                                {
                                    let lat = v["at"].as_str().and_then(rfc3339_ms).map_or(f64::NAN, |at| recv_wall - at);
                                    out.events.push((kind.to_owned(), lat));
                                }
                            }
                            Some(Ok(_)) => {}
                            _ => break,
                        },
                    }
                }
                let _ = sink.send(Message::Close(None)).await;
            }
            out
        });
    }
    // Wait for every client to be connected (or failed).
    let connect_deadline = Instant::now() + Duration::from_secs(120);
    while ready.load(Ordering::SeqCst) < clients && Instant::now() < connect_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connect_secs = connect_started.elapsed().as_secs_f64();
    note(&format!(
        "ws: {} clients ready in {connect_secs:.1} s; submitting over {} ms",
        ready.load(Ordering::SeqCst),
        spread.as_millis()
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu = CpuWindow::start(&pids, postgres);
    let start = Instant::now() + Duration::from_millis(50);
    let _ = go_tx.send(Some(start));
    let deadline = start + spread + timeout;
    while finished.load(Ordering::SeqCst) < clients && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let run_secs = start.elapsed().as_secs_f64();
    let cpu = cpu.finish();
    // Grace for events that arrive after their job's `job.succeeded` (late, not lost).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _ = stop_tx.send(true);
    drop(go_rx);
    drop(stop_rx);

    let mut outcomes = Vec::with_capacity(clients);
    while let Some(o) = tasks.join_next().await {
        outcomes.push(o?);
    }
    let mut all: Vec<f64> = Vec::new();
    let mut by_type: HashMap<String, Vec<f64>> = HashMap::new();
    let mut e2e: Vec<f64> = Vec::new();
    let mut missing: HashMap<&str, usize> = HashMap::new();
    let mut closes: HashMap<String, usize> = HashMap::new();
    let mut statuses: HashMap<String, usize> = HashMap::new();
    let mut connect_errors: Vec<String> = Vec::new();
    let mut done = 0usize;
    // Jobs whose events arrived out of lifecycle order (e.g. `job.started` before `job.queued`).
    let mut out_of_order = 0usize;
    let rank = |k: &str| match k {
        "job.queued" => 0,
        "job.started" => 1,
        "job.progress" => 2,
        _ => 3,
    };
    for o in &outcomes {
        if o.events.windows(2).any(|w| rank(&w[0].0) > rank(&w[1].0)) {
            out_of_order += 1;
        }
        if let Some(e) = &o.connect_error {
            if connect_errors.len() < 5 {
                connect_errors.push(e.clone());
            }
            continue;
        }
        *statuses.entry(o.submit_status.to_string()).or_default() += 1;
        if let Some(c) = o.close_code {
            *closes.entry(c.to_string()).or_default() += 1;
        }
        if o.done {
            done += 1;
        }
        if let Some(t) = o.submit_to_succeeded_ms {
            e2e.push(t);
        }
        // Lost events: only jobs that were accepted can miss any.
        if o.submit_status == 202 {
            for kind in EXPECTED {
                if !o.events.iter().any(|(k, _)| k == kind) {
                    *missing.entry(kind).or_default() += 1;
                }
            }
        }
        for (kind, lat) in &o.events {
            if lat.is_finite() {
                all.push(*lat);
                by_type.entry(kind.clone()).or_default().push(*lat);
            }
        }
    }
    let per_type: serde_json::Map<String, Value> = by_type.iter_mut().map(|(k, v)| (k.clone(), summary(v))).collect();
    emit(&json!({
        "scenario": "ws",
        "clients": clients,
        "accounts": accounts.len().min(clients),
        "connected": outcomes.iter().filter(|o| o.connected).count(),
        "connect_errors": outcomes.iter().filter(|o| o.connect_error.is_some()).count(),
        "connect_error_examples": connect_errors,
        "connect_seconds": round3(connect_secs),
        "spread_ms": spread.as_millis() as u64,
        "run_seconds": round3(run_secs),
        "jobs_done": done,
        "submit_statuses": statuses,
        "missing_events": missing,
        "jobs_with_events_out_of_order": out_of_order,
        "close_codes": closes,
        "delivery": summary(&mut all),
        "delivery_by_type": per_type,
        "submit_to_succeeded": summary(&mut e2e),
        "cpu": cpu,
    }));
    Ok(())
}
