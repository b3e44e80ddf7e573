//! `mixed`: the studio's everyday API traffic, reads and writes together (issue 9).
//!
//! Each account gets a persona and a few finished noop jobs (so it has media) before the
//! measurement. Then every request picks an operation by weight (fixed per-connection seed):
//!
//! | op | request | weight |
//! |---|---|---|
//! | `list_media` | `GET /api/media?limit=50` | 25 |
//! | `list_jobs` | `GET /api/jobs?limit=20` | 15 |
//! | `get_media` | `GET /api/media/{id}` | 10 |
//! | `get_job` | `GET /api/jobs/{id}` | 10 |
//! | `search_media` | `GET /api/media?q=harbour&limit=20` | 5 |
//! | `notifications` | `GET /api/notifications?limit=20` | 5 |
//! | `submit` | `POST /api/generate/single` (noop engine) | 10 |
//! | `tag_media` | `PATCH /api/media/{id}` (add a tag, flip favourite) | 10 |
//! | `edit_persona` | `PUT /api/personas/{id}` (a new version) | 5 |
//! | `stats` | `GET /api/jobs/stats` | 5 |
//!
//! 25 % of the requests write. Two runs: closed loop (`--connections`, max throughput) and a
//! fixed `--rate` (open loop, latency from the scheduled time, like `list`). Reported: overall
//! and per-operation request rates, statuses and latency.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::users::read_tokens;
use crate::util::{
    CpuWindow, Flags, Result, emit, get_json, http_client, ms, noop_request, note, parse_pids, post_json, round3,
    summary,
};

const OPS: &[(&str, u32)] = &[
    ("list_media", 25),
    ("list_jobs", 15),
    ("get_media", 10),
    ("get_job", 10),
    ("search_media", 5),
    ("notifications", 5),
    ("submit", 10),
    ("tag_media", 10),
    ("edit_persona", 5),
    ("stats", 5),
];

/// One account's fixtures.
struct Account {
    token: String,
    persona: String,
    jobs: Vec<String>,
    media: Vec<String>,
}

/// xorshift64*: a fixed, cheap sequence per connection so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }

    fn op(&mut self) -> &'static str {
        let total: u32 = OPS.iter().map(|(_, w)| w).sum();
        let mut roll = (self.next() % u64::from(total)) as u32;
        for (name, weight) in OPS {
            if roll < *weight {
                return name;
            }
            roll -= weight;
        }
        OPS[0].0
    }
}

/// Sends one operation; returns its HTTP status (0 on a transport error).
async fn send(client: &reqwest::Client, base: &str, account: &Account, op: &str, rng: &mut Rng) -> u16 {
    let token = account.token.as_str();
    let request = match op {
        "list_media" => client.get(format!("{base}/api/media?limit=50")),
        "list_jobs" => client.get(format!("{base}/api/jobs?limit=20")),
        "get_media" => client.get(format!("{base}/api/media/{}", rng.pick(&account.media))),
        "get_job" => client.get(format!("{base}/api/jobs/{}", rng.pick(&account.jobs))),
        "search_media" => client.get(format!("{base}/api/media?q=harbour&limit=20")),
        "notifications" => client.get(format!("{base}/api/notifications?limit=20")),
        "stats" => client.get(format!("{base}/api/jobs/stats")),
        "submit" => client.post(format!("{base}/api/generate/single")).json(&noop_request("mixed harbour at dusk")),
        "tag_media" => {
            let tag = format!("t{}", rng.next() % 16);
            client
                .patch(format!("{base}/api/media/{}", rng.pick(&account.media)))
                .json(&json!({ "add_tags": [tag], "favorite": rng.next() % 2 == 0 }))
        }
        "edit_persona" => client
            .put(format!("{base}/api/personas/{}", account.persona))
            .json(&json!({ "name": "Mixed bench", "description": format!("edited {}", rng.next() % 1000) })),
        _ => return 0,
    };
    match request.bearer_auth(token).send().await {
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

/// Creates a persona and `jobs` finished noop jobs for one account.
async fn prepare(client: &reqwest::Client, base: &str, token: String, jobs: usize) -> Result<Account> {
    let (status, persona) =
        post_json(client, &format!("{base}/api/personas"), &token, &json!({ "name": "Mixed bench" })).await?;
    if status != 201 {
        return Err(format!("create persona: HTTP {status}: {persona}").into());
    }
    let persona = persona["id"].as_str().unwrap_or_default().to_owned();
    let requests: Vec<Value> = (0..jobs).map(|i| noop_request(&format!("harbour study {i}"))).collect();
    let (status, batch) =
        post_json(client, &format!("{base}/api/generate/batch"), &token, &json!({ "requests": requests })).await?;
    if status != 202 && status != 201 {
        return Err(format!("submit fixtures: HTTP {status}: {batch}").into());
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, page) = get_json(client, &format!("{base}/api/media?limit=50"), &token).await?;
        let media: Vec<String> =
            page["items"].as_array().into_iter().flatten().filter_map(|m| m["id"].as_str().map(str::to_owned)).collect();
        if media.len() >= jobs {
            let (_, page) = get_json(client, &format!("{base}/api/jobs?limit=50"), &token).await?;
            let jobs = page["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|j| j["id"].as_str().map(str::to_owned))
                .collect();
            return Ok(Account { token, persona, jobs, media });
        }
        if Instant::now() > deadline {
            return Err(format!("fixture jobs did not finish in 60 s ({} media)", media.len()).into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[derive(Default)]
struct Tally {
    latency: BTreeMap<&'static str, Vec<f64>>,
    statuses: BTreeMap<&'static str, BTreeMap<u16, usize>>,
}

impl Tally {
    fn add(&mut self, op: &'static str, status: u16, latency_ms: f64) {
        self.latency.entry(op).or_default().push(latency_ms);
        *self.statuses.entry(op).or_default().entry(status).or_default() += 1;
    }

    fn merge(&mut self, other: Tally) {
        for (op, l) in other.latency {
            self.latency.entry(op).or_default().extend(l);
        }
        for (op, s) in other.statuses {
            let mine = self.statuses.entry(op).or_default();
            for (k, v) in s {
                *mine.entry(k).or_default() += v;
            }
        }
    }

    /// Whether every request got the status its operation should answer.
    fn unexpected(&self) -> usize {
        self.statuses
            .iter()
            .map(|(op, s)| {
                let ok = if *op == "submit" { 202 } else { 200 };
                s.iter().filter(|(k, _)| **k != ok && **k != 201).map(|(_, v)| v).sum::<usize>()
            })
            .sum()
    }

    fn report(mut self, seconds: f64) -> Value {
        let mut all: Vec<f64> = self.latency.values().flatten().copied().collect();
        let unexpected = self.unexpected();
        let ops: serde_json::Map<String, Value> = self
            .latency
            .iter_mut()
            .map(|(op, l)| {
                let statuses: serde_json::Map<String, Value> =
                    self.statuses[op].iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
                let rate = round3(l.len() as f64 / seconds);
                ((*op).to_owned(), json!({ "requests_per_s": rate, "statuses": statuses, "latency": summary(l) }))
            })
            .collect();
        json!({
            "requests_per_s": round3(all.len() as f64 / seconds),
            "unexpected_statuses": unexpected,
            "latency": summary(&mut all),
            "ops": ops,
        })
    }
}

pub async fn run(flags: &Flags) -> Result<()> {
    let base = Arc::new(flags.str("base")?);
    let tokens = read_tokens(&flags.str("tokens")?)?;
    let duration = Duration::from_secs(flags.num("duration", 10)?);
    let warmup = Duration::from_secs(flags.num("warmup", 3)?);
    let connections: usize = flags.num("connections", 16)?;
    let rate: f64 = flags.num("rate", 300.0)?;
    let fixture_jobs: usize = flags.num("fixture-jobs", 8)?;
    let pids = parse_pids(flags);
    let postgres = flags.num("postgres", 0u8)? == 1;
    let client = http_client(connections.max(64))?;

    note(&format!("mixed: preparing {} accounts ({fixture_jobs} finished jobs each)", tokens.len()));
    let mut accounts = Vec::new();
    for (_, token, _) in tokens {
        accounts.push(Arc::new(prepare(&client, &base, token, fixture_jobs).await?));
    }
    if accounts.is_empty() {
        return Err("mixed: no accounts in --tokens".into());
    }

    // 1. Closed loop: each connection belongs to one account, round robin.
    note(&format!("mixed: max throughput, {connections} connections, {}+{} s", warmup.as_secs(), duration.as_secs()));
    let measure_from = Instant::now() + warmup;
    let end = measure_from + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..connections {
        let (client, base, account) = (client.clone(), base.clone(), accounts[c % accounts.len()].clone());
        tasks.spawn(async move {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (c as u64 + 1));
            let mut tally = Tally::default();
            loop {
                let start = Instant::now();
                if start >= end {
                    break;
                }
                let op = rng.op();
                let status = send(&client, &base, &account, op, &mut rng).await;
                let done = Instant::now();
                if start >= measure_from && done <= end {
                    tally.add(op, status, ms(done - start));
                }
            }
            tally
        });
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu = CpuWindow::start(&pids, postgres);
    let mut max = Tally::default();
    while let Some(t) = tasks.join_next().await {
        max.merge(t?);
    }
    let cpu_max = cpu.finish();

    // 2. Fixed rate, open loop: request i is due at t0 + i/rate; latency from that instant.
    tokio::time::sleep(Duration::from_secs(1)).await;
    note(&format!("mixed: fixed rate {rate}/s, {}+{} s", warmup.as_secs(), duration.as_secs()));
    let period = Duration::from_secs_f64(1.0 / rate);
    let n_warm = (rate * warmup.as_secs_f64()) as usize;
    let n_total = n_warm + (rate * duration.as_secs_f64()) as usize;
    let start = tokio::time::Instant::now() + Duration::from_millis(10);
    let in_flight = Arc::new(tokio::sync::Semaphore::new(256));
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut tasks = tokio::task::JoinSet::new();
    let mut cpu_fixed = None;
    for i in 0..n_total {
        if i == n_warm {
            cpu_fixed = Some(CpuWindow::start(&pids, postgres));
        }
        let scheduled = start + period.mul_f64(i as f64);
        tokio::time::sleep_until(scheduled).await;
        let op = rng.op();
        let mut op_rng = Rng(rng.next() | 1);
        let (client, base, account, in_flight) =
            (client.clone(), base.clone(), accounts[i % accounts.len()].clone(), in_flight.clone());
        let scheduled = scheduled.into_std();
        tasks.spawn(async move {
            let _permit = in_flight.acquire_owned().await;
            let status = send(&client, &base, &account, op, &mut op_rng).await;
            (i, op, status, ms(Instant::now() - scheduled))
        });
    }
    let mut fixed = Tally::default();
    while let Some(r) = tasks.join_next().await {
        let (i, op, status, latency) = r?;
        if i >= n_warm {
            fixed.add(op, status, latency);
        }
    }
    let cpu_fixed = cpu_fixed.map(|c| c.finish()).unwrap_or(Value::Null);

    let weights: serde_json::Map<String, Value> = OPS.iter().map(|(k, w)| ((*k).to_owned(), json!(w))).collect();
    let mut max_report = max.report(duration.as_secs_f64());
    max_report["connections"] = json!(connections);
    max_report["cpu"] = cpu_max;
    let mut fixed_report = fixed.report(duration.as_secs_f64());
    fixed_report["rate_per_s"] = json!(rate);
    fixed_report["cpu"] = cpu_fixed;
    emit(&json!({
        "scenario": "mixed",
        "accounts": accounts.len(),
        "weights": weights,
        "seconds": duration.as_secs(),
        "max": max_report,
        "fixed": fixed_report,
    }));
    Ok(())
}
