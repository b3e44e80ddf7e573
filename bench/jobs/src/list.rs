//! `list`: `GET /api/jobs?limit=50` (the newest page of the caller's jobs, with the total).
//!
//! 1. Max throughput: `--connections` closed-loop clients for `--warmup` + `--duration`
//!    seconds; requests completed inside the measured window count.
//! 2. Fixed rate: `--rate` requests per second on a fixed schedule (open loop) for
//!    `--warmup` plus `--duration` seconds. Latency is measured from each request's
//!    *scheduled* time, so a stall shows up in every request it delays (no coordinated
//!    omission). At most `--max-in-flight` (256) requests run at once; one that cannot start
//!    within `--give-up-secs` (10) of its slot is abandoned and counted with the time it
//!    waited, so an overloaded server ends the run in bounded time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::util::{CpuWindow, Flags, Result, emit, http_client, ms, note, parse_pids, round3, summary};

async fn get(client: &reqwest::Client, url: &str, token: &str) -> u16 {
    match client.get(url).bearer_auth(token).send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            // Read the whole body: the server's work includes producing it.
            match resp.bytes().await {
                Ok(_) => status,
                Err(_) => 0,
            }
        }
        Err(_) => 0,
    }
}

pub async fn run(flags: &Flags) -> Result<()> {
    let base = flags.str("base")?;
    let token = flags.str("token")?;
    let duration = Duration::from_secs(flags.num("duration", 10)?);
    let warmup = Duration::from_secs(flags.num("warmup", 3)?);
    let connections: usize = flags.num("connections", 16)?;
    let rate: f64 = flags.num("rate", 1000.0)?;
    let path = flags.opt("path").unwrap_or_else(|| "/api/jobs?limit=50".to_owned());
    let pids = parse_pids(flags);
    let postgres = flags.num("postgres", 0u8)? == 1;
    let url = Arc::new(format!("{base}{path}"));
    let token = Arc::new(token);

    // Sanity: one request, and the size of the page.
    let client = http_client(connections.max(64))?;
    let resp = client.get(url.as_str()).bearer_auth(token.as_str()).send().await?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await?;
    let page: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if status != 200 {
        return Err(format!("GET {path}: HTTP {status}: {page}").into());
    }
    let total = page["total"].as_i64().unwrap_or(-1);
    let items = page["items"].as_array().map_or(0, Vec::len);
    note(&format!("list: {path} → {items} items of {total}, {} bytes", body.len()));

    // 1. Closed loop.
    note(&format!("list: max throughput, {connections} connections, {}+{} s", warmup.as_secs(), duration.as_secs()));
    let t0 = Instant::now();
    let measure_from = t0 + warmup;
    let end = measure_from + duration;
    let mut cpu_max: Option<CpuWindow> = None;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        tasks.spawn(async move {
            let mut lat = Vec::new();
            let mut statuses: HashMap<u16, usize> = HashMap::new();
            loop {
                let start = Instant::now();
                if start >= end {
                    break;
                }
                let status = get(&client, &url, &token).await;
                let done = Instant::now();
                if start >= measure_from && done <= end {
                    lat.push(ms(done - start));
                    *statuses.entry(status).or_default() += 1;
                }
            }
            (lat, statuses)
        });
    }
    tokio::time::sleep_until(measure_from.into()).await;
    cpu_max.get_or_insert_with(|| CpuWindow::start(&pids, postgres));
    let mut lat_max = Vec::new();
    let mut st_max: HashMap<u16, usize> = HashMap::new();
    while let Some(r) = tasks.join_next().await {
        let (l, s) = r?;
        lat_max.extend(l);
        for (k, v) in s {
            *st_max.entry(k).or_default() += v;
        }
    }
    let cpu_max = cpu_max.map(|c| c.finish()).unwrap_or(Value::Null);
    let ok_max = st_max.get(&200).copied().unwrap_or(0);
    let rps_max = ok_max as f64 / duration.as_secs_f64();

    // 2. Fixed rate.
    tokio::time::sleep(Duration::from_secs(1)).await;
    note(&format!("list: fixed rate {rate}/s, {}+{} s", warmup.as_secs(), duration.as_secs()));
    let period = Duration::from_secs_f64(1.0 / rate);
    let n_warm = (rate * warmup.as_secs_f64()) as usize;
    let n_total = n_warm + (rate * duration.as_secs_f64()) as usize;
    let start = tokio::time::Instant::now() + Duration::from_millis(10);
    let mut tasks = tokio::task::JoinSet::new();
    let mut cpu_fixed: Option<CpuWindow> = None;
    let mut late_max = Duration::ZERO;
    // At most `--max-in-flight` requests at once (the rest wait, and their wait counts), and a
    // request that could not even start within `--give-up-secs` of its slot is abandoned:
    // an overloaded server then ends the run in bounded time instead of building a backlog.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(flags.num("max-in-flight", 256)?));
    let give_up = Duration::from_secs(flags.num("give-up-secs", 10)?);
    for i in 0..n_total {
        if i == n_warm {
            cpu_fixed = Some(CpuWindow::start(&pids, postgres));
        }
        let scheduled = start + period.mul_f64(i as f64);
        tokio::time::sleep_until(scheduled).await;
        late_max = late_max.max(tokio::time::Instant::now().saturating_duration_since(scheduled));
        let (client, url, token, in_flight) = (client.clone(), url.clone(), token.clone(), in_flight.clone());
        let scheduled = scheduled.into_std();
        tasks.spawn(async move {
            let _permit = in_flight.acquire_owned().await;
            let sent = Instant::now();
            if sent - scheduled > give_up {
                return (i, None, ms(sent - scheduled), 0.0);
            }
            let status = get(&client, &url, &token).await;
            let done = Instant::now();
            (i, Some(status), ms(done - scheduled), ms(done - sent))
        });
    }
    let send_secs = (tokio::time::Instant::now() - start).as_secs_f64();
    let mut lat_fixed = Vec::new();
    let mut service = Vec::new();
    let mut st_fixed: HashMap<u16, usize> = HashMap::new();
    let mut abandoned = 0usize;
    while let Some(r) = tasks.join_next().await {
        let (i, status, lat, svc) = r?;
        if i >= n_warm {
            // An abandoned request counts with the time it had waited (a lower bound).
            lat_fixed.push(lat);
            match status {
                Some(status) => {
                    service.push(svc);
                    *st_fixed.entry(status).or_default() += 1;
                }
                None => abandoned += 1,
            }
        }
    }
    let cpu_fixed = cpu_fixed.map(|c| c.finish()).unwrap_or(Value::Null);
    let statuses = |m: &HashMap<u16, usize>| -> serde_json::Map<String, Value> {
        m.iter().map(|(k, v)| (k.to_string(), json!(v))).collect()
    };
    emit(&json!({
        "scenario": "list",
        "path": path,
        "total_jobs": total,
        "page_items": items,
        "page_bytes": body.len(),
        "max": {
            "connections": connections,
            "seconds": duration.as_secs(),
            "requests_per_s": round3(rps_max),
            "statuses": statuses(&st_max),
            "latency": summary(&mut lat_max),
            "cpu": cpu_max,
        },
        "fixed": {
            "rate_per_s": rate,
            "seconds": duration.as_secs(),
            "achieved_rate_per_s": round3(n_total as f64 / send_secs.max(1e-9)),
            "max_schedule_lag_ms": round3(ms(late_max)),
            "abandoned": abandoned,
            "statuses": statuses(&st_fixed),
            "latency": summary(&mut lat_fixed),
            "service_time": summary(&mut service),
            "cpu": cpu_fixed,
        },
    }));
    Ok(())
}
