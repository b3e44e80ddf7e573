//! Shared helpers: flags, percentiles, CPU accounting, HTTP and WebSocket plumbing.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T> = std::result::Result<T, BoxError>;

/// `--key value` flags.
pub struct Flags(HashMap<String, String>);

impl Flags {
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut map = HashMap::new();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let key = arg.strip_prefix("--").ok_or_else(|| format!("unexpected argument `{arg}`"))?;
            let value = it.next().ok_or_else(|| format!("--{key} needs a value"))?;
            map.insert(key.to_owned(), value.clone());
        }
        Ok(Self(map))
    }

    pub fn str(&self, key: &str) -> Result<String> {
        self.0.get(key).cloned().ok_or_else(|| format!("--{key} is required").into())
    }

    pub fn opt(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }

    pub fn num<T: FromStr>(&self, key: &str, default: T) -> Result<T> {
        match self.0.get(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("--{key}: not a number: `{v}`").into()),
        }
    }
}

/// Percentiles of a sample in milliseconds (nearest-rank on the sorted sample).
pub fn summary(samples: &mut [f64]) -> Value {
    if samples.is_empty() {
        return json!({ "count": 0 });
    }
    samples.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
        round3(samples[rank - 1])
    };
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    json!({
        "count": samples.len(),
        "min_ms": round3(samples[0]),
        "p50_ms": pick(0.50),
        "p90_ms": pick(0.90),
        "p95_ms": pick(0.95),
        "p99_ms": pick(0.99),
        "p999_ms": pick(0.999),
        "max_ms": round3(samples[samples.len() - 1]),
        "mean_ms": round3(mean),
    })
}

pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Milliseconds since the Unix epoch on this machine's clock.
pub fn wall_ms(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
}

/// An RFC 3339 timestamp (the events' `at`) as epoch milliseconds.
pub fn rfc3339_ms(s: &str) -> Option<f64> {
    let t = chrono::DateTime::parse_from_rfc3339(s).ok()?;
    Some(t.timestamp_micros() as f64 / 1000.0)
}

// ------------------------------------------------------------------------------------------
// CPU accounting from /proc: server processes, PostgreSQL backends, this process, the machine.

const CLK_TCK: f64 = 100.0;

fn proc_cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the `(comm)`: state is field 3; utime/stime are fields 14/15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn postgres_ticks() -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0 };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| c.trim().starts_with("postgres"))
                .unwrap_or(false)
        })
        .filter_map(proc_cpu_ticks)
        .sum()
}

/// (busy, total) jiffies of all CPUs.
fn machine_ticks() -> (u64, u64) {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else { return (0, 0) };
    let Some(line) = stat.lines().next() else { return (0, 0) };
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// CPU used during a window by the server processes, PostgreSQL, this load generator and the
/// whole machine (what is left over is other work sharing the machine).
pub struct CpuWindow {
    pids: Vec<u32>,
    postgres: bool,
    server: u64,
    pg: u64,
    me: u64,
    machine: (u64, u64),
    started: std::time::Instant,
}

impl CpuWindow {
    pub fn start(pids: &[u32], postgres: bool) -> Self {
        Self {
            pids: pids.to_vec(),
            postgres,
            server: pids.iter().filter_map(|p| proc_cpu_ticks(*p)).sum(),
            pg: if postgres { postgres_ticks() } else { 0 },
            me: proc_cpu_ticks(std::process::id()).unwrap_or(0),
            machine: machine_ticks(),
            started: std::time::Instant::now(),
        }
    }

    pub fn finish(&self) -> Value {
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let server = self.pids.iter().filter_map(|p| proc_cpu_ticks(*p)).sum::<u64>().saturating_sub(self.server);
        let pg = if self.postgres { postgres_ticks().saturating_sub(self.pg) } else { 0 };
        let me = proc_cpu_ticks(std::process::id()).unwrap_or(0).saturating_sub(self.me);
        let (busy, total) = machine_ticks();
        let busy = busy.saturating_sub(self.machine.0) as f64;
        let total = (total.saturating_sub(self.machine.1) as f64).max(1.0);
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64;
        let c = |ticks: u64| round3(ticks as f64 / CLK_TCK / secs);
        json!({
            "window_s": round3(secs),
            "server_cores": c(server),
            "postgres_cores": if self.postgres { json!(c(pg)) } else { Value::Null },
            "loadgen_cores": c(me),
            "machine_cores": round3(busy / total * cores),
            "other_cores": round3((busy / total * cores - c(server) - c(pg) - c(me)).max(0.0)),
        })
    }
}

pub fn parse_pids(flags: &Flags) -> Vec<u32> {
    flags.opt("pids").map(|s| s.split(',').filter_map(|p| p.trim().parse().ok()).collect()).unwrap_or_default()
}

// ------------------------------------------------------------------------------------------
// HTTP and WebSocket.

pub fn http_client(pool: usize) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(pool)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// A noop-engine image request (64×64, one step, one image).
pub fn noop_request(prompt: &str) -> Value {
    json!({ "prompt": prompt, "engine": "noop", "width": 64, "height": 64, "num_inference_steps": 1 })
}

/// POSTs JSON with a bearer token (none when `token` is empty); returns (status, body).
pub async fn post_json(client: &reqwest::Client, url: &str, token: &str, body: &Value) -> Result<(u16, Value)> {
    let mut request = client.post(url).json(body);
    if !token.is_empty() {
        request = request.bearer_auth(token);
    }
    let resp = request.send().await?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await?;
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, value))
}

pub async fn get_json(client: &reqwest::Client, url: &str, token: &str) -> Result<(u16, Value)> {
    let resp = client.get(url).bearer_auth(token).send().await?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await?;
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, value))
}

/// Opens `/ws` with `Authorization: Bearer`.
pub async fn ws_connect(base: &str, token: &str) -> Result<Ws> {
    let url = format!("{}/ws", base.replacen("http", "ws", 1));
    let mut request = url.into_client_request()?;
    request.headers_mut().insert("authorization", format!("Bearer {token}").parse()?);
    let (ws, _) = tokio_tungstenite::connect_async(request).await?;
    Ok(ws)
}

/// Prints a JSON result on stdout.
pub fn emit(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

/// One line of progress on stderr.
pub fn note(msg: &str) {
    eprintln!("jobs-bench: {msg}");
}
