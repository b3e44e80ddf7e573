//! `seidra-loadgen`: the small measuring tools behind `bench/run.sh`, std only.
//!
//! * `http`: an HTTP/1.1 keep-alive load generator. With `--rate R` it is open-loop: request
//!   number `j` is due at `t0 + j / R`, connections take turns (`j mod C`), and latency is
//!   measured from the time the request was *due*, not from when it was sent, so a stalled
//!   server is not hidden by the generator waiting for it (the "coordinated omission"
//!   correction of wrk2). With `--rate 0` every connection sends back-to-back (closed loop).
//! * `startup`: spawns a server command, polls its readiness URL every 2 ms, reports the time
//!   from spawn to the first `200`, then idles and reads the process' resident memory.
//!
//! Both print one JSON object on stdout.

// Plain OS threads, no async runtime: the workspace's ban on `std::thread::sleep` (clippy.toml,
// meant for async code) does not apply, and sleeping until a request is due is the point.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::{Command, ExitCode, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage:
  seidra-loadgen http --url URL [--method GET|POST] [--header 'Name: value']... [--body TEXT | --body-env VAR]
                      [--bearer-env VAR]
                      [--connections N] [--rate REQ_PER_S | 0] [--duration S] [--warmup S] [--timeout S]
  seidra-loadgen startup --url READY_URL [--idle S] [--timeout S] [--log FILE] [--pid-file FILE] -- CMD [ARG]...";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("http") => http_cmd(&args[1..]),
        Some("startup") => startup_cmd(&args[1..]),
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("seidra-loadgen: {err}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Argument helpers

struct Args<'a> {
    rest: &'a [String],
}

impl<'a> Args<'a> {
    fn next_flag(&mut self) -> Option<&'a str> {
        let (first, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(first.as_str())
    }

    fn value(&mut self, flag: &str) -> Result<&'a str, String> {
        let (first, rest) = self.rest.split_first().ok_or_else(|| format!("{flag} needs a value"))?;
        self.rest = rest;
        Ok(first.as_str())
    }

    fn number(&mut self, flag: &str) -> Result<f64, String> {
        let raw = self.value(flag)?;
        raw.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| format!("{flag}: `{raw}` is not a non-negative number"))
    }
}

fn env_value(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))
}

fn secs(value: f64) -> Duration {
    Duration::from_secs_f64(value)
}

// ---------------------------------------------------------------------------------------------
// URL and HTTP/1.1 wire handling

struct Target {
    authority: String,
    addr: SocketAddr,
    path: String,
}

fn parse_url(url: &str) -> Result<Target, String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("only http:// URLs are supported, got `{url}`"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let host_port = if authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let addr = host_port
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve `{host_port}`: {e}"))?
        .next()
        .ok_or_else(|| format!("`{host_port}` resolves to no address"))?;
    Ok(Target { authority: authority.to_owned(), addr, path: path.to_owned() })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

/// One keep-alive connection with its read buffer.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    scratch: Box<[u8]>,
}

impl Conn {
    fn open(addr: SocketAddr, timeout: Duration) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Conn { stream, buf: Vec::with_capacity(16 * 1024), scratch: vec![0; 16 * 1024].into_boxed_slice() })
    }

    fn fill(&mut self) -> io::Result<()> {
        let n = self.stream.read(&mut self.scratch)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed by the server"));
        }
        self.buf.extend_from_slice(&self.scratch[..n]);
        Ok(())
    }

    /// Sends `request` and reads one full response; returns (status, server wants close).
    fn exchange(&mut self, request: &[u8]) -> io::Result<(u16, bool)> {
        self.stream.write_all(request)?;
        let header_end = loop {
            if let Some(pos) = find(&self.buf, b"\r\n\r\n") {
                break pos + 4;
            }
            self.fill()?;
        };
        let head = std::str::from_utf8(&self.buf[..header_end]).map_err(|_| invalid("non-UTF-8 response head"))?;
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| invalid("malformed status line"))?;
        let (mut length, mut chunked, mut close) = (None, false, false);
        for line in lines {
            if let Some((name, value)) = line.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length = Some(value.parse::<usize>().map_err(|_| invalid("bad content-length"))?);
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = value.to_ascii_lowercase().contains("chunked");
                } else if name.eq_ignore_ascii_case("connection") {
                    close = value.eq_ignore_ascii_case("close");
                }
            }
        }
        self.buf.drain(..header_end);
        if chunked {
            loop {
                let line_end = loop {
                    if let Some(pos) = find(&self.buf, b"\r\n") {
                        break pos;
                    }
                    self.fill()?;
                };
                let size_text = std::str::from_utf8(&self.buf[..line_end]).map_err(|_| invalid("bad chunk size"))?;
                let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                    .map_err(|_| invalid("bad chunk size"))?;
                self.buf.drain(..line_end + 2);
                if size == 0 {
                    // Trailers (if any) end with an empty line.
                    loop {
                        let end = loop {
                            if let Some(pos) = find(&self.buf, b"\r\n") {
                                break pos;
                            }
                            self.fill()?;
                        };
                        self.buf.drain(..end + 2);
                        if end == 0 {
                            break;
                        }
                    }
                    break;
                }
                while self.buf.len() < size + 2 {
                    self.fill()?;
                }
                self.buf.drain(..size + 2);
            }
        } else if let Some(len) = length {
            while self.buf.len() < len {
                self.fill()?;
            }
            self.buf.drain(..len);
        } else if close {
            loop {
                match self.fill() {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(e),
                }
            }
            self.buf.clear();
        }
        Ok((status, close))
    }
}

// ---------------------------------------------------------------------------------------------
// `http`

#[derive(Default)]
struct Tally {
    latencies_ns: Vec<u64>,
    status: BTreeMap<u16, u64>,
    io_errors: u64,
    dropped: u64,
    first_error: Option<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latencies_ns.extend(other.latencies_ns);
        for (code, n) in other.status {
            *self.status.entry(code).or_default() += n;
        }
        self.io_errors += other.io_errors;
        self.dropped += other.dropped;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

struct Plan {
    addr: SocketAddr,
    request: Vec<u8>,
    connections: usize,
    rate: f64,
    t0: Instant,
    measure_from: Instant,
    end: Instant,
    timeout: Duration,
}

fn run_connection(plan: &Plan, index: usize) -> Tally {
    let mut tally = Tally::default();
    let mut conn: Option<Conn> = Conn::open(plan.addr, plan.timeout).ok();
    let hard_stop = plan.end + Duration::from_secs(5);
    let now = Instant::now();
    if plan.t0 > now {
        thread::sleep(plan.t0 - now);
    }
    let mut k: u64 = 0;
    loop {
        // When this request is due (open loop) or simply now (closed loop).
        let due = if plan.rate > 0.0 {
            let j = index as f64 + k as f64 * plan.connections as f64;
            plan.t0 + secs(j / plan.rate)
        } else {
            Instant::now()
        };
        k += 1;
        if due >= plan.end {
            break;
        }
        let now = Instant::now();
        if now > hard_stop {
            // The server fell so far behind that the schedule cannot be finished.
            tally.dropped += 1;
            continue;
        }
        if due > now {
            thread::sleep(due - now);
        }
        let measured = due >= plan.measure_from;
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match Conn::open(plan.addr, plan.timeout) {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    if measured {
                        tally.io_errors += 1;
                    }
                    tally.first_error.get_or_insert_with(|| format!("connect: {e}"));
                    thread::sleep(Duration::from_millis(1));
                    continue;
                }
            },
        };
        match c.exchange(&plan.request) {
            Ok((status, close)) => {
                if measured {
                    tally.latencies_ns.push(u64::try_from(due.elapsed().as_nanos()).unwrap_or(u64::MAX));
                    *tally.status.entry(status).or_default() += 1;
                }
                if close {
                    conn = None;
                }
            }
            Err(e) => {
                if measured {
                    tally.io_errors += 1;
                }
                tally.first_error.get_or_insert_with(|| format!("request: {e}"));
                conn = None;
            }
        }
    }
    tally
}

fn http_cmd(raw: &[String]) -> Result<String, String> {
    let mut args = Args { rest: raw };
    let (mut url, mut method, mut headers, mut body) = (None, "GET".to_owned(), Vec::new(), None);
    let (mut connections, mut rate, mut duration, mut warmup, mut timeout) = (16.0, 0.0, 10.0, 2.0, 10.0);
    while let Some(flag) = args.next_flag() {
        match flag {
            "--url" => url = Some(args.value(flag)?.to_owned()),
            "--method" => method = args.value(flag)?.to_ascii_uppercase(),
            "--header" => headers.push(args.value(flag)?.to_owned()),
            "--body" => body = Some(args.value(flag)?.to_owned()),
            // Secrets from the environment, so they do not show in `ps`.
            "--body-env" => body = Some(env_value(args.value(flag)?)?),
            "--bearer-env" => headers.push(format!("Authorization: Bearer {}", env_value(args.value(flag)?)?)),
            "--connections" => connections = args.number(flag)?,
            "--rate" => rate = args.number(flag)?,
            "--duration" => duration = args.number(flag)?,
            "--warmup" => warmup = args.number(flag)?,
            "--timeout" => timeout = args.number(flag)?,
            other => return Err(format!("unknown flag `{other}`\n{USAGE}")),
        }
    }
    let url = url.ok_or("--url is required")?;
    let target = parse_url(&url)?;
    let connections = connections as usize;
    if connections == 0 || duration <= 0.0 {
        return Err("--connections and --duration must be positive".to_owned());
    }

    let mut request =
        format!("{method} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: seidra-loadgen\r\n", target.path, target.authority);
    for h in &headers {
        let _ = write!(request, "{h}\r\n");
    }
    if let Some(b) = &body {
        let _ = write!(request, "Content-Length: {}\r\n", b.len());
    }
    request.push_str("\r\n");
    if let Some(b) = &body {
        request.push_str(b);
    }

    // Give every connection time to open before the schedule starts.
    let t0 = Instant::now() + Duration::from_millis(200);
    let measure_from = t0 + secs(warmup);
    let plan = Plan {
        addr: target.addr,
        request: request.into_bytes(),
        connections,
        rate,
        t0,
        measure_from,
        end: measure_from + secs(duration),
        timeout: secs(timeout),
    };
    let mut total = Tally::default();
    thread::scope(|scope| {
        let handles: Vec<_> = (0..connections)
            .map(|i| {
                let plan = &plan;
                thread::Builder::new().stack_size(256 * 1024).spawn_scoped(scope, move || run_connection(plan, i))
            })
            .collect();
        for h in handles {
            match h {
                Ok(h) => match h.join() {
                    Ok(t) => total.merge(t),
                    Err(_) => {
                        total.first_error.get_or_insert_with(|| "a connection thread panicked".to_owned());
                    }
                },
                Err(e) => {
                    total.first_error.get_or_insert_with(|| format!("cannot spawn a thread: {e}"));
                }
            }
        }
    });

    let mut lat = std::mem::take(&mut total.latencies_ns);
    lat.sort_unstable();
    let ms = |ns: u64| ns as f64 / 1e6;
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * lat.len() as f64).ceil() as usize;
        ms(lat[rank.clamp(1, lat.len()) - 1])
    };
    let count = lat.len() as u64;
    let ok: u64 = total.status.iter().filter(|(c, _)| (200..300).contains(*c)).map(|(_, n)| n).sum();
    let mean = if lat.is_empty() { 0.0 } else { ms(lat.iter().sum::<u64>()) / lat.len() as f64 };
    let status = total.status.iter().map(|(c, n)| format!("\"{c}\":{n}")).collect::<Vec<_>>().join(",");
    let first_error = match &total.first_error {
        Some(e) => format!("\"{}\"", e.replace('\\', "\\\\").replace('"', "\\\"")),
        None => "null".to_owned(),
    };
    Ok(format!(
        "{{\"tool\":\"seidra-loadgen\",\"mode\":\"{}\",\"method\":\"{method}\",\"url\":\"{url}\",\"connections\":{connections},\
\"target_rps\":{rate},\"warmup_s\":{warmup},\"duration_s\":{duration},\"requests\":{count},\"ok\":{ok},\
\"non_2xx\":{},\"io_errors\":{},\"dropped\":{},\"achieved_rps\":{:.1},\"status\":{{{status}}},\
\"latency_ms\":{{\"min\":{:.3},\"mean\":{:.3},\"p50\":{:.3},\"p90\":{:.3},\"p99\":{:.3},\"p999\":{:.3},\"max\":{:.3}}},\
\"first_error\":{first_error}}}",
        if rate > 0.0 { "fixed-rate" } else { "closed-loop" },
        count - ok,
        total.io_errors,
        total.dropped,
        count as f64 / duration,
        pct(0.0),
        mean,
        pct(50.0),
        pct(90.0),
        pct(99.0),
        pct(99.9),
        pct(100.0),
    ))
}

// ---------------------------------------------------------------------------------------------
// `startup`

fn probe(target: &Target, request: &[u8]) -> Option<u16> {
    let mut conn = Conn::open(target.addr, Duration::from_millis(200)).ok()?;
    conn.stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    conn.exchange(request).ok().map(|(status, _)| status)
}

fn proc_status(pid: u32) -> BTreeMap<String, u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            let number = value.split_whitespace().next()?.parse::<u64>().ok()?;
            Some((name.to_owned(), number))
        })
        .collect()
}

fn startup_cmd(raw: &[String]) -> Result<String, String> {
    let mut args = Args { rest: raw };
    let (mut url, mut idle, mut timeout, mut log, mut pid_file) = (None, 3.0, 30.0, None, None);
    let mut command: Vec<String> = Vec::new();
    while let Some(flag) = args.next_flag() {
        match flag {
            "--url" => url = Some(args.value(flag)?.to_owned()),
            "--idle" => idle = args.number(flag)?,
            "--timeout" => timeout = args.number(flag)?,
            "--log" => log = Some(args.value(flag)?.to_owned()),
            "--pid-file" => pid_file = Some(args.value(flag)?.to_owned()),
            "--" => {
                command = args.rest.to_vec();
                break;
            }
            other => return Err(format!("unknown flag `{other}`\n{USAGE}")),
        }
    }
    let url = url.ok_or("--url is required")?;
    let target = parse_url(&url)?;
    let (program, program_args) = command.split_first().ok_or("a command is required after `--`")?;
    let request =
        format!("GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", target.path, target.authority).into_bytes();

    let (stdout, stderr) = match &log {
        Some(path) => {
            let file =
                std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| format!("{path}: {e}"))?;
            let clone = file.try_clone().map_err(|e| e.to_string())?;
            (Stdio::from(file), Stdio::from(clone))
        }
        None => (Stdio::null(), Stdio::null()),
    };

    let started = Instant::now();
    let mut child = Command::new(program)
        .args(program_args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot start `{program}`: {e}"))?;
    let pid = child.id();
    if let Some(path) = &pid_file {
        std::fs::write(path, format!("{pid}\n")).map_err(|e| format!("{path}: {e}"))?;
    }

    let (mut first_answer, mut ready, mut probes, mut failure) = (None, None, 0u64, None);
    while ready.is_none() {
        if let Ok(Some(status)) = child.try_wait() {
            failure = Some(format!("the server exited before it was ready ({status})"));
            break;
        }
        if started.elapsed() > secs(timeout) {
            failure = Some(format!("not ready after {timeout} s"));
            break;
        }
        probes += 1;
        if let Some(code) = probe(&target, &request) {
            first_answer.get_or_insert(started.elapsed());
            if code == 200 {
                ready = Some(started.elapsed());
                break;
            }
        }
        thread::sleep(Duration::from_millis(2));
    }

    let mut memory = BTreeMap::new();
    if failure.is_none() {
        thread::sleep(secs(idle));
        memory = proc_status(pid);
        if let Ok(Some(status)) = child.try_wait() {
            failure = Some(format!("the server exited while idle ({status})"));
        }
    }

    // Graceful stop (SIGTERM via kill(1): std only sends SIGKILL), then force.
    let stop_started = Instant::now();
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).stderr(Stdio::null()).status();
    let mut exit = None;
    while stop_started.elapsed() < Duration::from_secs(15) {
        if let Ok(Some(status)) = child.try_wait() {
            exit = Some(status);
            break;
        }
        thread::sleep(Duration::from_millis(5));
    }
    let shutdown = stop_started.elapsed();
    let forced = exit.is_none();
    if forced {
        let _ = child.kill();
        exit = child.wait().ok();
    }
    if let Some(path) = &pid_file {
        let _ = std::fs::remove_file(path);
    }
    if let Some(err) = failure {
        return Err(err);
    }
    let ms = |d: Option<Duration>| d.map_or("null".to_owned(), |d| format!("{:.1}", d.as_secs_f64() * 1e3));
    let kib = |name: &str| memory.get(name).map_or("null".to_owned(), u64::to_string);
    Ok(format!(
        "{{\"tool\":\"seidra-loadgen\",\"mode\":\"startup\",\"ready_ms\":{},\"first_answer_ms\":{},\"probes\":{probes},\
\"idle_s\":{idle},\"rss_kib\":{},\"hwm_kib\":{},\"threads\":{},\"shutdown_ms\":{},\"forced_kill\":{forced},\"exit_code\":{}}}",
        ms(ready),
        ms(first_answer),
        kib("VmRSS"),
        kib("VmHWM"),
        kib("Threads"),
        ms(Some(shutdown)),
        exit.and_then(|s| s.code()).map_or("null".to_owned(), |c| c.to_string()),
    ))
}
