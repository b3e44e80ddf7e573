//! `throughput`: how many noop jobs per second the queue and workers complete.
//!
//! `--clients` users (one HTTP client each, closed loop) submit `POST /api/generate/batch`
//! with `--batch` requests each until `--jobs` jobs are queued. Each user also holds one
//! WebSocket, on which its `job.succeeded` / `job.failed` events are counted: the run ends at
//! the event that completes the last accepted job. jobs/s = accepted / (that moment − the
//! first submit). `--model` picks the noop engine's model: `noop` (a tiny PNG per job, so the
//! library path — storage, media row, thumbnails — is included) or `empty` (no output: the
//! queue, workers and events alone). As a fallback against lost events (and to cross-check the count),
//! `GET /api/jobs/stats?all=true` is read every `--poll-ms` (default 2 s; it scans the whole
//! table, so polling it fast would itself load a 2-core machine).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::users::read_tokens;
use crate::util::{
    CpuWindow, Flags, Result, emit, get_json, http_client, noop_request, note, parse_pids, post_json, round3,
    ws_connect,
};

fn finished(stats: &Value) -> (i64, i64, i64) {
    let n = |k: &str| stats["by_status"][k].as_i64().unwrap_or(0);
    (n("succeeded"), n("failed") + n("cancelled"), n("queued") + n("running") + n("retrying"))
}

pub async fn run(flags: &Flags) -> Result<()> {
    let base = flags.str("base")?;
    let accounts = read_tokens(&flags.str("tokens")?)?;
    let admin = flags.str("admin-token")?;
    let clients: usize = flags.num("clients", 8)?;
    let jobs: usize = flags.num("jobs", 10_000)?;
    let batch: usize = flags.num("batch", 8)?;
    // `noop`: an 8×8 PNG per job (storage, media row, thumbnails); `empty`: no output at all.
    let model = Arc::new(flags.opt("model").unwrap_or_else(|| "noop".to_owned()));
    let timeout = Duration::from_secs(flags.num("timeout", 180)?);
    let poll = Duration::from_millis(flags.num("poll-ms", 2000)?);
    let pids = parse_pids(flags);
    let postgres = flags.num("postgres", 0u8)? == 1;
    if accounts.len() < clients {
        return Err(format!("{clients} clients need {clients} accounts; the file has {}", accounts.len()).into());
    }

    let client = http_client(clients + 4)?;
    let stats_url = format!("{base}/api/jobs/stats?all=true");
    let (status, before) = get_json(&client, &stats_url, &admin).await?;
    if status != 200 {
        return Err(format!("stats: HTTP {status}: {before}").into());
    }
    let (succ0, fail0, _) = finished(&before);

    // One WebSocket per user, counting its finished jobs.
    let done_events = Arc::new(AtomicUsize::new(0));
    let notify = Arc::new(tokio::sync::Notify::new());
    let closes = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::new();
    for (_, token, _) in accounts.iter().take(clients) {
        let ws = ws_connect(&base, token).await?;
        let (sink, mut stream) = ws.split();
        let (done_events, notify, closes) = (done_events.clone(), notify.clone(), closes.clone());
        readers.push(tokio::spawn(async move {
            let _keep_open = sink;
            while let Some(Ok(msg)) = stream.next().await {
                match msg {
                    Message::Text(text) => {
                        // Cheap pre-filter: most messages are job.queued/started/progress.
                        if !(text.contains("\"job.succeeded\"") || text.contains("\"job.failed\"")) {
                            continue;
                        }
                        let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
                        if matches!(v["type"].as_str(), Some("job.succeeded" | "job.failed")) {
                            done_events.fetch_add(1, Ordering::SeqCst);
                            notify.notify_one();
                        }
                    }
                    Message::Close(_) => {
                        closes.fetch_add(1, Ordering::SeqCst);
                        notify.notify_one();
                        break;
                    }
                    _ => {}
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    note(&format!("throughput: {jobs} jobs, {clients} clients, batches of {batch}"));
    let next = Arc::new(AtomicUsize::new(0));
    let cpu = CpuWindow::start(&pids, postgres);
    let t0 = Instant::now();
    let mut submitters = tokio::task::JoinSet::new();
    for (c, (_, token, _)) in accounts.iter().take(clients).enumerate() {
        let (client, base, token, next, model) =
            (client.clone(), base.clone(), token.clone(), next.clone(), model.clone());
        submitters.spawn(async move {
            let mut statuses: HashMap<u16, usize> = HashMap::new();
            let mut accepted = 0usize;
            loop {
                let from = next.fetch_add(batch, Ordering::Relaxed);
                if from >= jobs {
                    break;
                }
                let n = batch.min(jobs - from);
                let requests: Vec<Value> = (0..n)
                    .map(|k| {
                        let mut r = noop_request(&format!("throughput c{c} j{}", from + k));
                        r["model_name"] = json!(model.as_str());
                        r
                    })
                    .collect();
                let res =
                    post_json(&client, &format!("{base}/api/generate/batch"), &token, &json!({ "requests": requests }))
                        .await;
                let status = match res {
                    Ok((s, v)) => {
                        if s == 202 {
                            accepted += v["job_ids"].as_array().map_or(0, Vec::len);
                        }
                        s
                    }
                    Err(_) => 0,
                };
                *statuses.entry(status).or_default() += 1;
            }
            (statuses, accepted)
        });
    }
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    let mut accepted = 0usize;
    while let Some(done) = submitters.join_next().await {
        let (s, a) = done?;
        for (k, v) in s {
            *statuses.entry(k).or_default() += v;
        }
        accepted += a;
    }
    let submit_secs = t0.elapsed().as_secs_f64();
    note(&format!("throughput: {accepted} jobs accepted in {submit_secs:.2} s; waiting for them to finish"));

    // Wait for the last finished-event (or, as a fallback, for the stats to show it).
    let mut end: Option<(Duration, &'static str)> = None;
    let mut last_poll = Instant::now();
    let mut poll_errors = 0usize;
    while end.is_none() && t0.elapsed() < timeout {
        if done_events.load(Ordering::SeqCst) >= accepted {
            end = Some((t0.elapsed(), "websocket"));
            break;
        }
        if last_poll.elapsed() >= poll {
            last_poll = Instant::now();
            match get_json(&client, &stats_url, &admin).await {
                Ok((200, v)) => {
                    let (s, f, _) = finished(&v);
                    if (s - succ0) + (f - fail0) >= accepted as i64 {
                        end = Some((t0.elapsed(), "stats"));
                        break;
                    }
                }
                _ => poll_errors += 1,
            }
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), notify.notified()).await;
    }
    let cpu = cpu.finish();
    let elapsed = t0.elapsed().as_secs_f64();
    let (_, last) = get_json(&client, &stats_url, &admin).await?;
    for r in readers {
        r.abort();
    }
    let (s, f, open) = finished(&last);
    let secs = end.map(|(d, _)| d.as_secs_f64());
    let succeeded = s - succ0;
    emit(&json!({
        "scenario": "throughput",
        "clients": clients,
        "batch": batch,
        "jobs": jobs,
        "model": model.as_str(),
        "accepted": accepted,
        "http_statuses": statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "submit_seconds": round3(submit_secs),
        "submit_jobs_per_s": round3(accepted as f64 / submit_secs.max(1e-9)),
        "completed": end.is_some(),
        "end_seen_by": end.map(|(_, by)| by),
        "seconds": secs.map(round3),
        "jobs_per_s": secs.map(|t| round3(accepted as f64 / t.max(1e-9))),
        // When the run timed out: the rate of what did finish (a lower bound).
        "partial_jobs_per_s": if end.is_none() { json!(round3(succeeded as f64 / elapsed.max(1e-9))) } else { Value::Null },
        "finished_events_seen": done_events.load(Ordering::SeqCst),
        "websocket_closes": closes.load(Ordering::SeqCst),
        "succeeded": succeeded,
        "failed_or_cancelled": f - fail0,
        "still_open_at_end": open,
        "stats_poll_errors": poll_errors,
        "average_queue_wait_secs": last["average_queue_wait_secs"],
        "average_run_secs": last["average_run_secs"],
        "cpu": cpu,
    }));
    Ok(())
}
