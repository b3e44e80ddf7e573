//! `latency`: submit → `job.started` seen on the WebSocket.
//!
//! One user, one WebSocket. Submits `POST /api/generate/single` (noop engine) on a fixed
//! schedule (`--rate` per second, open loop: a slow answer does not delay the next submit).
//! For each job: t0 = just before the request is sent; the sample is the time the job's
//! `job.started` event is read from the WebSocket minus t0. The first `--warmup` jobs are
//! not counted. The event may arrive before the HTTP answer naming the job does, so events
//! are recorded by job id and matched afterwards.
//!
//! Phases (from the events' server timestamps `at`, same machine clock):
//!   accept   t0 → `job.queued` at   (HTTP, auth, validation, insert, publish)
//!   claim    `job.queued` at → `job.started` at  (wake-up, claim UPDATE, worker publish)
//!   deliver  `job.started` at → received  (bus → WebSocket task → socket → client)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::time::sleep_until;
use tokio_tungstenite::tungstenite::Message;

use crate::util::{
    CpuWindow, Flags, Result, emit, http_client, ms, noop_request, note, parse_pids, post_json, rfc3339_ms, round3,
    summary, wall_ms, ws_connect,
};

/// What the WebSocket saw of one job.
#[derive(Default, Clone)]
struct Seen {
    /// Order of arrival on the socket (to spot `job.started` before `job.queued`).
    queued_seq: Option<u64>,
    started_seq: Option<u64>,
    queued_at: Option<f64>,
    started_at: Option<f64>,
    started_recv: Option<Instant>,
    started_recv_wall: Option<f64>,
}

struct Submitted {
    index: usize,
    job_id: Option<String>,
    t0: Instant,
    t0_wall: f64,
    response: Duration,
    status: u16,
}

pub async fn run(flags: &Flags) -> Result<()> {
    let base = flags.str("base")?;
    let token = flags.str("token")?;
    let rate: f64 = flags.num("rate", 50.0)?;
    let warmup: usize = flags.num("warmup", 100)?;
    let samples: usize = flags.num("samples", 600)?;
    let pids = parse_pids(flags);
    let postgres = flags.num("postgres", 0u8)? == 1;
    let total = warmup + samples;

    let client = http_client(64)?;
    let seen: Arc<Mutex<HashMap<String, Seen>>> = Arc::default();
    let ws = ws_connect(&base, &token).await?;
    let (_sink, mut stream) = ws.split();
    {
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut seq = 0u64;
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(text) = msg else { continue };
                seq += 1;
                let recv = Instant::now();
                let recv_wall = wall_ms(SystemTime::now());
                let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
                let (Some(kind), Some(job)) = (v["type"].as_str(), v["job_id"].as_str()) else { continue };
                let at = v["at"].as_str().and_then(rfc3339_ms);
                let mut map = seen.lock().unwrap_or_else(|p| p.into_inner());
                let entry = map.entry(job.to_owned()).or_default();
                match kind {
                    "job.queued" => {
                        entry.queued_at = at;
                        entry.queued_seq = Some(seq);
                    }
                    "job.started" if entry.started_recv.is_none() => {
                        entry.started_seq = Some(seq);
                        entry.started_at = at;
                        entry.started_recv = Some(recv);
                        entry.started_recv_wall = Some(recv_wall);
                    }
                    _ => {}
                }
            }
        });
    }
    // Let the welcome and snapshot pass.
    tokio::time::sleep(Duration::from_millis(200)).await;

    note(&format!("latency: {total} submits at {rate}/s ({warmup} warm-up)"));
    let period = Duration::from_secs_f64(1.0 / rate);
    let start = tokio::time::Instant::now() + Duration::from_millis(10);
    let mut tasks = tokio::task::JoinSet::new();
    let mut cpu: Option<CpuWindow> = None;
    for i in 0..total {
        if i == warmup {
            cpu = Some(CpuWindow::start(&pids, postgres));
        }
        sleep_until(start + period * u32::try_from(i).unwrap_or(u32::MAX)).await;
        let (client, base, token) = (client.clone(), base.clone(), token.clone());
        tasks.spawn(async move {
            let body = noop_request(&format!("latency probe {i}"));
            let t0_wall = wall_ms(SystemTime::now());
            let t0 = Instant::now();
            let res = post_json(&client, &format!("{base}/api/generate/single"), &token, &body).await;
            let response = t0.elapsed();
            let (status, job_id) = match res {
                Ok((status, v)) => (status, v["job_ids"][0].as_str().map(str::to_owned)),
                Err(_) => (0, None),
            };
            Submitted { index: i, job_id, t0, t0_wall, response, status }
        });
    }
    let submit_secs = (tokio::time::Instant::now() - start).as_secs_f64();
    let mut subs = Vec::with_capacity(total);
    while let Some(s) = tasks.join_next().await {
        subs.push(s?);
    }
    // Wait (≤ 10 s) until every job's `job.started` arrived.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let missing = {
            let map = seen.lock().unwrap_or_else(|p| p.into_inner());
            subs.iter()
                .filter(|s| s.job_id.as_ref().is_some_and(|id| map.get(id).is_none_or(|e| e.started_recv.is_none())))
                .count()
        };
        if missing == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu = cpu.map(|c| c.finish()).unwrap_or(Value::Null);

    subs.sort_by_key(|s| s.index);
    let map = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let (mut e2e, mut http, mut accept, mut claim, mut deliver) = (vec![], vec![], vec![], vec![], vec![]);
    let (mut errors, mut missing) = (0usize, 0usize);
    // Jobs whose `job.started` reached the client before their `job.queued` (all submits).
    let out_of_order = subs
        .iter()
        .filter_map(|s| s.job_id.as_ref().and_then(|id| map.get(id)))
        .filter(|e| matches!((e.queued_seq, e.started_seq), (Some(q), Some(st)) if st < q))
        .count();
    let missing_queued = subs
        .iter()
        .filter_map(|s| s.job_id.as_ref().and_then(|id| map.get(id)))
        .filter(|e| e.queued_seq.is_none())
        .count();
    for s in subs.iter().filter(|s| s.index >= warmup) {
        http.push(ms(s.response));
        let Some(id) = &s.job_id else {
            errors += 1;
            continue;
        };
        let Some(e) = map.get(id) else {
            missing += 1;
            continue;
        };
        let Some(recv) = e.started_recv else {
            missing += 1;
            continue;
        };
        e2e.push(ms(recv.saturating_duration_since(s.t0)));
        if let Some(q) = e.queued_at {
            accept.push(q - s.t0_wall);
            if let Some(st) = e.started_at {
                claim.push(st - q);
            }
        }
        if let (Some(st), Some(rw)) = (e.started_at, e.started_recv_wall) {
            deliver.push(rw - st);
        }
    }
    let statuses: HashMap<u16, usize> = subs.iter().fold(HashMap::new(), |mut m, s| {
        *m.entry(s.status).or_default() += 1;
        m
    });
    emit(&json!({
        "scenario": "latency",
        "rate_per_s": rate,
        "achieved_submit_rate_per_s": round3(total as f64 / submit_secs.max(1e-9)),
        "warmup": warmup,
        "samples": e2e.len(),
        "submit_errors": errors,
        "missing_started_events": missing,
        "missing_queued_events": missing_queued,
        "started_before_queued": out_of_order,
        "http_statuses": statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "submit_to_started": summary(&mut e2e),
        "http_submit": summary(&mut http),
        "phase_accept": summary(&mut accept),
        "phase_claim": summary(&mut claim),
        "phase_deliver": summary(&mut deliver),
        "cpu": cpu,
    }));
    Ok(())
}
