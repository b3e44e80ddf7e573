//! Dependencies going away under load, with real processes:
//! - a private PostgreSQL server is stopped while `seidra serve` + `seidra worker` run jobs, then
//!   started again: the API answers 503 `database_unavailable`, then everything recovers;
//! - the data disk of `seidra up` (SQLite + local storage) fills up: writes get 507
//!   `storage_full`, jobs fail with `storage_full`, nothing is corrupt, and it recovers once
//!   space is freed;
//! - `seidra up` gets SIGTERM under load: every answered request is complete, WebSockets get a
//!   1001 close frame, the process exits 0 and leaves no job running;
//! - Redis stops under rate-limited traffic: the in-process limiter takes over (429s still
//!   happen), the fallback is counted, and the shared limiter is used again once Redis is back.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "test helpers panic on broken fixtures")]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::Digest;

const PASSWORD: &str = "a-long-enough-passphrase";

/// A PostgreSQL server of our own (initdb in a temporary directory), so it can be stopped.
struct PrivatePostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl PrivatePostgres {
    fn start() -> Self {
        let bin = std::env::var_os("SEIDRA_TEST_PG_BIN").map(PathBuf::from).unwrap_or_else(|| {
            // The newest installed server (Debian: /usr/lib/postgresql/<major>/bin).
            let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
                .map(|d| d.filter_map(Result::ok).map(|e| e.path().join("bin")).collect())
                .unwrap_or_default();
            found.sort();
            found.pop().expect("PostgreSQL server binaries (apt-get install postgresql, or set SEIDRA_TEST_PG_BIN)")
        });
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let pg = Self { bin, dir, port };
        if is_root() {
            // initdb refuses to run as root.
            run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(pg.dir.path()));
        }
        pg.as_postgres(&format!(
            "{}/initdb -D {}/data -U postgres -A trust --no-sync >{}/initdb.log 2>&1",
            pg.bin.display(),
            pg.dir.path().display(),
            pg.dir.path().display()
        ));
        pg.up();
        pg
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn up(&self) {
        let dir = self.dir.path().display();
        self.as_postgres(&format!(
            "{}/pg_ctl -D {dir}/data -l {dir}/pg.log -w -o '-p {} -k {dir} -c listen_addresses=127.0.0.1 -c fsync=off' start >/dev/null",
            self.bin.display(),
            self.port
        ));
    }

    /// A fast shutdown: every connection is cut, as in a crash or a failover.
    fn down(&self) {
        self.as_postgres(&format!(
            "{}/pg_ctl -D {}/data -m fast -w stop >/dev/null",
            self.bin.display(),
            self.dir.path().display()
        ));
    }

    fn as_postgres(&self, script: &str) {
        if is_root() {
            run(Command::new("su").args(["postgres", "-s", "/bin/sh", "-c", script]));
        } else {
            run(Command::new("/bin/sh").args(["-c", script]));
        }
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let dir = self.dir.path().display().to_string();
        let script = format!("{}/pg_ctl -D {dir}/data -m immediate stop >/dev/null 2>&1", self.bin.display());
        let _ = if is_root() {
            Command::new("su").args(["postgres", "-s", "/bin/sh", "-c", &script]).status()
        } else {
            Command::new("/bin/sh").args(["-c", &script]).status()
        };
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

fn run(cmd: &mut Command) {
    let status = cmd.status().expect("run a command");
    assert!(status.success(), "{cmd:?} failed: {status}");
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn seidra(db_url: &str, data_dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_seidra"));
    seidra_env(&mut cmd, data_dir).env("SEIDRA_DATABASE_URL", db_url).args(args);
    cmd
}

/// The environment of every `seidra` process here (SQLite in `data_dir` unless a test sets
/// `SEIDRA_DATABASE_URL`).
fn seidra_env<'a>(cmd: &'a mut Command, data_dir: &Path) -> &'a mut Command {
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SEIDRA_DATA_DIR", data_dir)
        .env("SEIDRA_SECRET_KEY", "outage-test-secret-key-0123456789abcdef")
        .env("SEIDRA_ADMIN_PASSWORD", "outage-admin-password")
        .env("SEIDRA_ALLOW_REGISTRATION", "true")
        .env("SEIDRA_LOG_FORMAT", "json")
        .env("SEIDRA_QUEUE__LEASE_SECS", "3")
        .env("SEIDRA_QUEUE__POLL_INTERVAL_MS", "200")
}

async fn status_of(client: &reqwest::Client, url: &str, token: &str) -> (u16, Value) {
    match client.get(url).bearer_auth(token).send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            (status, resp.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_mid_run_loses_nothing() -> anyhow::Result<()> {
    let pg = PrivatePostgres::start();
    let dir = tempfile::tempdir()?;
    run(seidra(&pg.url(), dir.path(), &["migrate", "up"]).stdout(Stdio::null()));
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let _api = Proc(
        seidra(&pg.url(), dir.path(), &["serve"])
            .env("SEIDRA_BIND", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let _worker = Proc(
        seidra(&pg.url(), dir.path(), &["worker", "--concurrency", "2"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = seidra_testkit::http_client();
    let mut ready = false;
    for _ in 0..150 {
        if client.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "seidra serve became ready");
    let resp: Value = client
        .post(format!("{base}/api/auth/register"))
        .json(&json!({ "username": "alice", "password": PASSWORD }))
        .send()
        .await?
        .json()
        .await?;
    let token = resp["access_token"].as_str().unwrap().to_owned();

    // 24 jobs of 2 images each, a few hundred milliseconds apiece: the outage hits some running,
    // some queued and some finished.
    let mut ids: Vec<String> = Vec::new();
    for i in 0..3 {
        let requests: Vec<Value> = (0..8)
            .map(|j| json!({ "prompt": format!("outage {i}-{j}"), "width": 512, "height": 512, "num_inference_steps": 30, "num_images": 2 }))
            .collect();
        let resp = client
            .post(format!("{base}/api/generate/batch"))
            .bearer_auth(&token)
            .json(&json!({ "requests": requests }))
            .send()
            .await?;
        assert_eq!(resp.status().as_u16(), 202);
        let body: Value = resp.json().await?;
        ids.extend(body["job_ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()));
    }
    // Wait until work is under way.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, stats) = status_of(&client, &format!("{base}/api/jobs/stats"), &token).await;
        if stats["by_status"]["succeeded"].as_i64().unwrap_or(0) >= 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no job finished before the outage: {stats}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    pg.down();
    // During the outage: a clear 503, never a 500 or a hang.
    let (status, body) = status_of(&client, &format!("{base}/api/jobs?limit=5"), &token).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("database_unavailable")),
        "the API during the outage: {body}"
    );
    let ready = client.get(format!("{base}/readyz")).send().await?.status().as_u16();
    assert_eq!(ready, 503, "readiness reports the outage");
    tokio::time::sleep(Duration::from_secs(2)).await;
    pg.up();

    // Everything recovers by itself; every job ends exactly once with its outputs.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let (status, page) = status_of(&client, &format!("{base}/api/jobs?limit=100"), &token).await;
        if status == 200 {
            let items = page["items"].as_array().unwrap();
            let done = items.iter().filter(|j| j["status"] == "succeeded" || j["status"] == "failed").count();
            if done == ids.len() {
                break;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "jobs did not all finish after the restart ({status}): {page}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut retried = 0;
    for id in &ids {
        let (status, job) = status_of(&client, &format!("{base}/api/jobs/{id}"), &token).await;
        assert_eq!((status, job["status"].as_str()), (200, Some("succeeded")), "{job}");
        assert_eq!(job["outputs"].as_array().map(Vec::len), Some(2), "exactly one set of outputs: {job}");
        retried += usize::from(job["attempt"].as_i64().unwrap_or(1) > 1);
    }
    let (_, media) = status_of(&client, &format!("{base}/api/media?limit=1"), &token).await;
    assert_eq!(media["total"].as_i64(), Some(i64::try_from(ids.len() * 2)?), "no duplicate media rows");
    eprintln!("{} jobs succeeded after the restart; {retried} needed another attempt", ids.len());
    Ok(())
}

// --- `seidra up` on SQLite: one process whose output is kept ------------------------------

/// A running `seidra up`: its base URL and everything it printed (JSON logs, panics).
struct Studio {
    child: Child,
    base: String,
    output: Arc<Mutex<String>>,
}

impl Studio {
    /// Spawns `cmd` (a `seidra up`, possibly behind `nsenter`) on an ephemeral port.
    fn start(mut cmd: Command) -> Studio {
        let mut child = cmd
            .env("SEIDRA_BIND", "127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn seidra up");
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let keep = |out: Arc<Mutex<String>>, line: &str| {
            let mut out = out.lock().unwrap();
            out.push_str(line);
            out.push('\n');
        };
        let (stdout, stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let out = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(addr.trim().to_owned());
                }
                keep(out.clone(), &line);
            }
        });
        let out = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                keep(out.clone(), &line);
            }
        });
        let Ok(addr) = rx.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("seidra up did not start:\n{}", output.lock().unwrap());
        };
        Studio { child, base: format!("http://{addr}"), output }
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    fn sigterm(&self) {
        run(Command::new("kill").args(["-TERM", &self.child.id().to_string()]));
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Waits for the process to exit, at most `limit`.
    async fn exited(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "seidra did not exit within {limit:?}:\n{}", tail(&self.output()));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn assert_no_panic(&self) {
        let out = self.output();
        assert!(!out.contains("panicked"), "the process panicked:\n{}", tail(&out));
    }
}

impl Drop for Studio {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- seidra output (last lines) ---\n{}", tail(&self.output()));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last lines of a process's output, for failure messages.
fn tail(out: &str) -> String {
    let lines: Vec<&str> = out.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

async fn register(client: &reqwest::Client, base: &str, name: &str) -> String {
    let resp = client
        .post(format!("{base}/api/auth/register"))
        .json(&json!({ "username": name, "password": PASSWORD }))
        .send()
        .await
        .expect("register");
    assert_eq!(resp.status().as_u16(), 201, "register {name}");
    let body: Value = resp.json().await.expect("json");
    body["access_token"].as_str().expect("access token").to_owned()
}

async fn post_json(client: &reqwest::Client, url: &str, token: &str, body: &Value) -> (u16, Value) {
    let resp = client.post(url).bearer_auth(token).json(body).send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Uploads one file as `multipart/form-data`.
async fn upload(client: &reqwest::Client, base: &str, token: &str, png: &[u8]) -> (u16, Value) {
    let boundary = "----seidra-outage-boundary-5Kq2";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"again.png\"\r\n\
         Content-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(png);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let resp = client
        .post(format!("{base}/api/media/uploads"))
        .bearer_auth(token)
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .await
        .expect("upload");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Absolute URL of an output's download link.
fn absolute(base: &str, url: &str) -> String {
    if url.starts_with('/') { format!("{base}{url}") } else { url.to_owned() }
}

async fn job(client: &reqwest::Client, base: &str, token: &str, id: &str) -> Value {
    let (status, job) = status_of(client, &format!("{base}/api/jobs/{id}"), token).await;
    assert_eq!(status, 200, "GET job {id}: {job}");
    job
}

/// Polls a job until `done` says so; the last state seen when `limit` passes.
async fn wait_job(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    id: &str,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let job = job(client, base, token, id).await;
        if done(&job) || Instant::now() >= deadline {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn finished(job: &Value) -> bool {
    job["status"] == "succeeded" || job["status"] == "failed" || job["status"] == "cancelled"
}

/// Opens the SQLite database of a stopped server and checks it is not corrupt.
async fn integrity_ok(db_path: &Path) -> anyhow::Result<sqlx::SqlitePool> {
    use sqlx::sqlite::SqliteConnectOptions;
    let pool = sqlx::SqlitePool::connect_with(SqliteConnectOptions::new().filename(db_path)).await?;
    let check: String = sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&pool).await?;
    assert_eq!(check, "ok", "PRAGMA integrity_check");
    Ok(pool)
}

// --- data disk full -----------------------------------------------------------------------

/// A small tmpfs that only the processes of a private user + mount namespace see. Rootless:
/// `unshare -rm` maps the caller to root in a new user namespace, where tmpfs may be mounted.
/// Nothing can stay mounted on the host: the mount lives as long as the namespace's processes,
/// and the holder exits when it is killed or the test process dies (its stdin closes).
struct SmallDisk {
    holder: Child,
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size_kib: u64) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let mut holder = Command::new("unshare")
            .args([
                "-rm",
                "sh",
                "-c",
                r#"mount -t tmpfs -o "size=$1k" tmpfs "$0" && echo mounted && exec cat >/dev/null"#,
            ])
            .arg(dir.path())
            .arg(size_kib.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("unshare (util-linux)");
        let mut line = String::new();
        let _ = BufReader::new(holder.stdout.take().unwrap()).read_line(&mut line);
        if line.trim() != "mounted" {
            let _ = holder.kill();
            let _ = holder.wait();
            let mut err = String::new();
            let _ = holder.stderr.take().unwrap().read_to_string(&mut err);
            panic!(
                "cannot mount a private tmpfs with `unshare -rm` ({}): this test needs unprivileged user \
                 namespaces (kernel.unprivileged_userns_clone=1; on Ubuntu also \
                 kernel.apparmor_restrict_unprivileged_userns=0) or root",
                err.trim()
            );
        }
        SmallDisk { holder, dir }
    }

    /// The mount point, as processes in the namespace see it.
    fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the tmpfs, as this (outside) process reaches it: through the holder's root.
    fn outside(&self, rel: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{}", self.holder.id(), self.dir.path().display())).join(rel)
    }

    /// `program` run inside the namespace.
    fn enter(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &self.holder.id().to_string(), "-U", "-m", "--"]).arg(program);
        cmd
    }

    /// Grows (or shrinks) the tmpfs. `--options-mode ignore`: inside a user namespace mount(8)
    /// must not resend the options it reads back (`uid=`/`gid=` of the outer namespace).
    fn resize(&self, size_kib: u64) {
        run(self
            .enter("mount")
            .args(["--options-mode", "ignore", "--options-source", "disable", "-o"])
            .arg(format!("remount,size={size_kib}k"))
            .arg(self.dir()));
    }

    /// Takes every byte left with a ballast file (the write ends with ENOSPC, as intended).
    fn fill(&self, name: &str) {
        let _ = self
            .enter("sh")
            .args(["-c", r#"cat /dev/zero > "$0""#])
            .arg(self.dir().join(name))
            .stderr(Stdio::null())
            .status();
    }

    /// Free space, KiB.
    fn free_kib(&self) -> u64 {
        let out = self.enter("df").args(["-k", "--output=avail"]).arg(self.dir()).output().expect("df");
        String::from_utf8_lossy(&out.stdout).lines().nth(1).and_then(|l| l.trim().parse().ok()).unwrap_or(0)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// A write answered while the disk may be full: success, or a 507 `storage_full` that names
/// the cause; never a 500.
fn assert_clear(what: &str, status: u16, body: &Value, ok: u16) -> bool {
    if status == 507 {
        assert_eq!(body["error"]["code"], "storage_full", "{what}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("disk is full"), "{what}: the message names the cause: {body}");
        return true;
    }
    assert_eq!(status, ok, "{what}: {body}");
    false
}

/// The disk of a laptop install (SQLite + local storage under `SEIDRA_DATA_DIR`) fills up while
/// jobs and uploads write to it: requests that need to write get 507 `storage_full`, jobs whose
/// outputs cannot be stored fail (or retry) with `storage_full`, reads keep working, nothing
/// panics; once space is freed it recovers by itself, and the database and files are consistent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_data_disk_fails_clearly_and_recovers() -> anyhow::Result<()> {
    let disk = SmallDisk::mount(12 * 1024);
    let mut cmd = disk.enter(env!("CARGO_BIN_EXE_seidra"));
    seidra_env(&mut cmd, disk.dir())
        .arg("up")
        .env("SEIDRA_QUEUE__MAX_ATTEMPTS", "2")
        .env("SEIDRA_RATE_LIMIT__ENABLED", "false");
    let mut studio = Studio::start(cmd);
    let base = studio.base.clone();
    let client = seidra_testkit::http_client();
    let token = register(&client, &base, "alice").await;
    let request =
        json!({ "prompt": "fills the disk", "width": 1024, "height": 1024, "num_inference_steps": 8, "num_images": 4 });
    let generate = format!("{base}/api/generate/single");

    // Jobs and uploads until the disk is full.
    let mut ids: Vec<String> = Vec::new();
    let mut sample: Option<Vec<u8>> = None;
    let mut full_seen = Vec::new();
    for round in 0..30 {
        let (status, body) = post_json(&client, &generate, &token, &request).await;
        if assert_clear("submit", status, &body, 202) {
            full_seen.push(format!("round {round}: submit answered 507"));
        } else {
            let id = body["job_ids"][0].as_str().unwrap().to_owned();
            let job = wait_job(&client, &base, &token, &id, Duration::from_secs(30), |j| {
                finished(j) || j["error"]["code"] == "storage_full"
            })
            .await;
            ids.push(id);
            match job["status"].as_str() {
                Some("succeeded") if sample.is_none() => {
                    let url = absolute(&base, job["outputs"][0]["url"].as_str().unwrap());
                    sample = Some(client.get(url).send().await?.bytes().await?.to_vec());
                }
                Some("succeeded") => {}
                _ if job["error"]["code"] == "storage_full" => {
                    let message = job["error"]["message"].as_str().unwrap_or_default();
                    assert!(message.contains("no space left"), "the job error names the cause: {job}");
                    full_seen.push(format!("round {round}: job {} {}", job["status"], job["error"]["code"]));
                }
                _ => full_seen.push(format!("round {round}: job not settled while full: {job}")),
            }
        }
        if let Some(png) = &sample {
            let (status, body) = upload(&client, &base, &token, png).await;
            if assert_clear("upload", status, &body, 201) {
                full_seen.push(format!("round {round}: upload answered 507"));
            }
        }
        if !full_seen.is_empty() {
            break;
        }
    }
    eprintln!("disk full after {} jobs: {full_seen:?}; {} KiB free", ids.len(), disk.free_kib());
    assert!(!full_seen.is_empty(), "the 12 MiB disk never filled up");

    // Take the last bytes too: every write now fails.
    disk.fill("ballast");
    let (status, body) = status_of(&client, &format!("{base}/api/jobs?limit=5"), &token).await;
    assert_eq!(status, 200, "reads keep working on a full disk: {body}");
    let healthz = client.get(format!("{base}/healthz")).send().await?.status().as_u16();
    assert_eq!(healthz, 200, "the process stays healthy");
    let small = seidra_testkit::fake_engines::png(64, 64, 7);
    let (status, body) = upload(&client, &base, &token, &small).await;
    assert!(assert_clear("upload on a full disk", status, &body, 0), "an upload on a full disk is refused with 507");
    let (status, body) = post_json(&client, &generate, &token, &request).await;
    let submitted_while_full = (!assert_clear("submit on a full disk", status, &body, 202))
        .then(|| body["job_ids"][0].as_str().unwrap().to_owned());
    if let Some(id) = &submitted_while_full {
        // The row fitted (SQLite reuses its WAL), the outputs cannot: the job must not succeed.
        let job = wait_job(&client, &base, &token, id, Duration::from_secs(8), finished).await;
        assert_ne!(job["status"], "succeeded", "nothing can be stored on a full disk: {job}");
        ids.push(id.clone());
    }

    // Free space (and grow the disk): it recovers by itself.
    run(disk.enter("rm").arg(disk.dir().join("ballast")));
    disk.resize(96 * 1024);
    let (status, body) = post_json(&client, &generate, &token, &request).await;
    assert_eq!(status, 202, "submits work again: {body}");
    let id = body["job_ids"][0].as_str().unwrap().to_owned();
    let job = wait_job(&client, &base, &token, &id, Duration::from_secs(60), finished).await;
    assert_eq!(job["status"], "succeeded", "a new job succeeds once space is back: {job}");
    ids.push(id);
    let (status, body) = upload(&client, &base, &token, sample.as_deref().unwrap_or(&small)).await;
    assert_eq!(status, 201, "uploads work again: {body}");
    // Every job settles: retried to success, or failed saying why.
    for id in &ids {
        let job = wait_job(&client, &base, &token, id, Duration::from_secs(60), finished).await;
        match job["status"].as_str() {
            Some("succeeded") => {}
            Some("failed") => {
                let code = job["error"]["code"].as_str().unwrap_or_default();
                assert!(
                    ["storage_full", "lease_expired", "max_attempts_exceeded"].contains(&code),
                    "a job failed for another reason than the full disk: {job}"
                );
            }
            _ => panic!("job {id} did not settle after the recovery: {job}"),
        }
    }

    studio.sigterm();
    let status = studio.exited(Duration::from_secs(40)).await;
    assert!(status.success(), "clean exit after the outage: {status:?}\n{}", tail(&studio.output()));
    studio.assert_no_panic();
    assert!(studio.output().contains("No space left on device"), "the logs name the cause");

    // No corruption; no media row without its whole object; no object without its row.
    // SQLite resolves the `/proc/<pid>/root` link to this process's own root: check a copy.
    let copy = tempfile::tempdir()?;
    for name in ["seidra.db", "seidra.db-wal"] {
        if disk.outside(name).exists() {
            std::fs::copy(disk.outside(name), copy.path().join(name))?;
        }
    }
    let pool = integrity_ok(&copy.path().join("seidra.db")).await?;
    let running: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE status = 'running'").fetch_one(&pool).await?;
    assert_eq!(running, 0, "no job left running");
    let rows: Vec<(String, i64, String)> =
        sqlx::query_as("SELECT storage_key, bytes, sha256 FROM media").fetch_all(&pool).await?;
    for (key, bytes, sha256) in &rows {
        let content = std::fs::read(disk.outside(&format!("media/{key}")))
            .unwrap_or_else(|e| panic!("the object of media row {key} is missing: {e}"));
        assert_eq!(i64::try_from(content.len())?, *bytes, "{key} is whole");
        assert_eq!(&hex(&sha2::Sha256::digest(&content)), sha256, "{key} is intact");
    }
    let media_root = disk.outside("media");
    let keys: Vec<&str> = rows.iter().map(|(k, _, _)| k.as_str()).collect();
    for file in seidra_testkit::files_under(&media_root) {
        if file.starts_with("jobs/") || file.starts_with("uploads/") {
            assert!(keys.contains(&file.as_str()), "an object without its media row: {file}");
        }
    }
    let in_flight = seidra_testkit::files_under(&media_root.join(".tmp"));
    assert!(in_flight.is_empty(), "half-written objects left behind: {in_flight:?}");
    eprintln!("{} media rows, all whole; {} jobs", rows.len(), ids.len());
    pool.close().await;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// --- SIGTERM under load ---------------------------------------------------------------------

/// What the load saw.
#[derive(Default, Debug)]
struct LoadReport {
    /// Requests answered with a complete, valid response.
    complete: usize,
    /// Requests that got no response after the signal (connection refused or closed unused).
    unanswered_after_signal: usize,
    /// Requests that got no response before the signal: must not happen.
    failed_before_signal: Vec<String>,
    /// Responses cut mid-body or invalid: must not happen.
    broken: Vec<String>,
}

/// One request of the load: `kind` 0 lists jobs, 1 lists media, 2 submits a job, 3 downloads a
/// finished output.
async fn one_request(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    kind: usize,
    download: &str,
    signalled: &AtomicBool,
    report: &Mutex<LoadReport>,
) {
    let small = json!({ "prompt": "load", "width": 256, "height": 256, "num_inference_steps": 2, "num_images": 1 });
    let (req, expected) = match kind {
        0 => (client.get(format!("{base}/api/jobs?limit=50")).bearer_auth(token), 200),
        1 => (client.get(format!("{base}/api/media?limit=50")).bearer_auth(token), 200),
        2 => (client.post(format!("{base}/api/generate/single")).bearer_auth(token).json(&small), 202),
        _ => (client.get(download), 200),
    };
    let resp = match req.send().await {
        Ok(resp) => resp,
        Err(err) => {
            let mut r = report.lock().unwrap();
            if signalled.load(Ordering::SeqCst) {
                r.unanswered_after_signal += 1;
            } else {
                r.failed_before_signal.push(format!("kind {kind}: {err:?}"));
            }
            return;
        }
    };
    let status = resp.status().as_u16();
    let declared = resp.content_length();
    let body = resp.bytes().await;
    let mut r = report.lock().unwrap();
    match body {
        Err(err) => r.broken.push(format!("kind {kind}, HTTP {status}: body cut: {err:?}")),
        Ok(_) if status != expected => r.broken.push(format!("kind {kind}: HTTP {status}")),
        Ok(body) if declared.is_some_and(|n| n != body.len() as u64) => {
            r.broken.push(format!("kind {kind}: {} of {declared:?} bytes", body.len()));
        }
        Ok(body) if kind == 3 && !body.starts_with(b"\x89PNG") => r.broken.push("download: not a PNG".to_owned()),
        Ok(body) if kind < 3 && serde_json::from_slice::<Value>(&body).is_err() => {
            r.broken.push(format!("kind {kind}: invalid JSON ({} bytes)", body.len()));
        }
        Ok(_) => r.complete += 1,
    }
}

/// `seidra up` receives SIGTERM while 16 clients list, submit and download and a WebSocket
/// listens: every answered request is complete, the socket gets a 1001 close frame, the
/// process exits 0 within the grace period, the job that was running goes back to the queue
/// (no lease left behind) and a restarted server finishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_drains_cleanly() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let up = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_seidra"));
        seidra_env(&mut cmd, dir.path())
            .arg("up")
            .env("SEIDRA_RATE_LIMIT__ENABLED", "false")
            .env("SEIDRA_QUEUE__MAX_QUEUED_PER_USER", "100000")
            .env("SEIDRA_WORKER__GRACE_SECS", "1")
            .env("SEIDRA_SHUTDOWN_GRACE_SECS", "10");
        cmd
    };
    let mut studio = Studio::start(up());
    let base = studio.base.clone();
    let client = seidra_testkit::http_client();
    let token = register(&client, &base, "alice").await;
    let generate = format!("{base}/api/generate/single");

    // A finished job whose output the load downloads (a larger body: slow to send).
    let (_, body) = post_json(
        &client,
        &generate,
        &token,
        &json!({ "prompt": "download me", "width": 2048, "height": 2048, "num_inference_steps": 2, "num_images": 1 }),
    )
    .await;
    let first =
        wait_job(&client, &base, &token, body["job_ids"][0].as_str().unwrap(), Duration::from_secs(60), finished).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    let download = absolute(&base, first["outputs"][0]["url"].as_str().unwrap());
    // A long job, running when the signal comes: it cannot finish within the worker's grace.
    let long =
        json!({ "prompt": "interrupted", "width": 2048, "height": 2048, "num_inference_steps": 150, "num_images": 8 });
    let (_, body) = post_json(&client, &generate, &token, &long).await;
    let long_id = body["job_ids"][0].as_str().unwrap().to_owned();
    let running =
        wait_job(&client, &base, &token, &long_id, Duration::from_secs(30), |j| j["status"] == "running").await;
    assert_eq!(running["status"], "running", "{running}");

    let mut ws = seidra_testkit::WsClient::connect(&base, &token).await?;
    ws.expect("snapshot", Duration::from_secs(10), |_| true).await?;
    let ws_task = tokio::spawn(async move {
        // Read everything until the close frame, so nothing piles up unread.
        loop {
            match ws.next(Duration::from_secs(30)).await {
                Ok(Some(msg)) if msg["type"] == "__close" => return Ok(msg["code"].as_u64()),
                Ok(Some(_)) => {}
                Ok(None) => return Err("the stream ended without a close frame (or timed out)".to_owned()),
                Err(err) => return Err(format!("the socket was cut: {err}")),
            }
        }
    });

    let stop = Arc::new(AtomicBool::new(false));
    let signalled = Arc::new(AtomicBool::new(false));
    let report = Arc::new(Mutex::new(LoadReport::default()));
    let sent = Arc::new(AtomicUsize::new(0));
    let mut load = tokio::task::JoinSet::new();
    for task in 0..16 {
        let (client, base, token, download) = (client.clone(), base.clone(), token.clone(), download.clone());
        let (stop, signalled, report, sent) = (stop.clone(), signalled.clone(), report.clone(), sent.clone());
        load.spawn(async move {
            let mut i = task;
            while !stop.load(Ordering::SeqCst) {
                one_request(&client, &base, &token, i % 4, &download, &signalled, &report).await;
                sent.fetch_add(1, Ordering::SeqCst);
                i += 1;
                if signalled.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    signalled.store(true, Ordering::SeqCst);
    let before_signal = sent.load(Ordering::SeqCst);
    let signal_at = Instant::now();
    studio.sigterm();
    let status = studio.exited(Duration::from_secs(20)).await;
    let took = signal_at.elapsed();
    stop.store(true, Ordering::SeqCst);
    while load.join_next().await.is_some() {}
    let report = std::mem::take(&mut *report.lock().unwrap());
    eprintln!("{before_signal} requests before SIGTERM; exit after {took:?}; {report:?}");
    assert!(status.success(), "exit status 0 after SIGTERM: {status:?}\n{}", tail(&studio.output()));
    assert!(took < Duration::from_secs(12), "exited within the grace period: {took:?}");
    studio.assert_no_panic();
    assert!(report.broken.is_empty(), "responses cut or invalid: {:?}", report.broken);
    assert!(
        report.failed_before_signal.is_empty(),
        "requests failed before the signal: {:?}",
        report.failed_before_signal
    );
    assert!(report.complete >= 50, "the load ran: {report:?}");
    let close = ws_task.await?;
    assert_eq!(close, Ok(Some(1001)), "the WebSocket got a 1001 going-away close frame");

    // No job is left running under a lease; the interrupted one went back to the queue.
    let pool = integrity_ok(&dir.path().join("seidra.db")).await?;
    let leased: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE status = 'running' OR lease_owner IS NOT NULL")
            .fetch_one(&pool)
            .await?;
    assert_eq!(leased, 0, "no job left running or leased by the stopped process");
    let live_workers: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM workers WHERE status IN ('active', 'draining')")
        .fetch_one(&pool)
        .await?;
    assert_eq!(live_workers, 0, "the embedded workers deregistered");
    pool.close().await;
    drop(studio);

    // A restarted server finishes the released job as its first attempt.
    let studio = Studio::start(up());
    let alice = client
        .post(format!("{}/api/auth/login", studio.base))
        .json(&json!({ "username": "alice", "password": PASSWORD }))
        .send()
        .await?
        .json::<Value>()
        .await?["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let job = wait_job(&client, &studio.base, &alice, &long_id, Duration::from_secs(120), finished).await;
    assert_eq!((job["status"].as_str(), job["attempt"].as_i64()), (Some("succeeded"), Some(1)), "{job}");
    studio.assert_no_panic();
    Ok(())
}

// --- Redis stopped under rate-limited traffic -------------------------------------------------

/// A Redis server of our own, so it can be stopped and started again on the same port.
struct PrivateRedis {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl PrivateRedis {
    async fn start() -> PrivateRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut redis = PrivateRedis { child: None, port, dir: tempfile::tempdir().unwrap() };
        redis.up().await;
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn up(&mut self) {
        let bin = std::env::var("SEIDRA_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned());
        let child = Command::new(&bin)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{bin} (apt-get install redis-server, or set SEIDRA_TEST_REDIS_SERVER): {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.conn().await.is_none() {
            assert!(Instant::now() < deadline, "the private Redis did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops it hard (SIGKILL): connections are cut, nothing is saved.
    fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn conn(&self) -> Option<redis::aio::MultiplexedConnection> {
        let client = redis::Client::open(self.url()).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await.ok()?;
        Some(conn)
    }

    /// The API rate-limit counters in Redis.
    async fn api_counters(&self) -> Vec<i64> {
        let mut conn = self.conn().await.expect("Redis is up");
        let keys: Vec<String> = redis::cmd("KEYS").arg("outage:rl:api:*").query_async(&mut conn).await.unwrap();
        let mut counts = Vec::new();
        for key in keys {
            let n: i64 = redis::cmd("GET").arg(&key).query_async(&mut conn).await.unwrap();
            counts.push(n);
        }
        counts
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.down();
    }
}

/// 25 quick `GET /api/jobs` as one user: their statuses.
async fn burst(client: &reqwest::Client, base: &str, token: &str) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..25 {
        statuses.push(status_of(client, &format!("{base}/api/jobs?limit=1"), token).await.0);
    }
    statuses
}

fn limited_after_20(statuses: &[u16]) -> bool {
    statuses[..20].iter().all(|s| *s == 200) && statuses[20..].iter().all(|s| *s == 429)
}

async fn backend_errors(client: &reqwest::Client, base: &str) -> f64 {
    let text = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find(|l| l.starts_with("seidra_rate_limit_backend_errors_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Redis is killed under rate-limited traffic: requests are still served and still limited
/// (the in-process window takes over), the fallback is counted, nothing crashes; once Redis
/// is back the shared counters are used again, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_falls_back_to_local_rate_limits() -> anyhow::Result<()> {
    let mut redis = PrivateRedis::start().await;
    let dir = tempfile::tempdir()?;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_seidra"));
    seidra_env(&mut cmd, dir.path())
        .arg("up")
        .env("SEIDRA_REDIS_URL", redis.url())
        .env("SEIDRA_REDIS_PREFIX", "outage:")
        .env("SEIDRA_RATE_LIMIT__API__REQUESTS", "20")
        .env("SEIDRA_RATE_LIMIT__API__WINDOW_SECS", "600");
    let mut studio = Studio::start(cmd);
    let base = studio.base.clone();
    let client = seidra_testkit::http_client();
    let tokens: Vec<String> = {
        let mut t = Vec::new();
        for name in ["alice", "bob", "carol", "dave"] {
            t.push(register(&client, &base, name).await);
        }
        t
    };

    // Redis up: the shared window, counted in Redis.
    let statuses = burst(&client, &base, &tokens[0]).await;
    assert!(limited_after_20(&statuses), "{statuses:?}");
    assert!(redis.api_counters().await.contains(&25), "counted in Redis");
    assert_eq!(backend_errors(&client, &base).await, 0.0);

    // Redis killed: still served, still limited, by this process's window.
    redis.down();
    let started = Instant::now();
    let statuses = burst(&client, &base, &tokens[1]).await;
    let took = started.elapsed();
    assert!(limited_after_20(&statuses), "the fallback window still limits: {statuses:?}");
    assert!(took < Duration::from_secs(15), "requests are not held up by the outage: 25 took {took:?}");
    let errors = backend_errors(&client, &base).await;
    assert!(errors >= 1.0, "the fallback is counted: {errors}");
    assert!(studio.is_running(), "the server survives the outage");
    let healthz = client.get(format!("{base}/healthz")).send().await?.status().as_u16();
    assert_eq!(healthz, 200);

    // Redis back (empty): the shared limiter is used again by itself.
    redis.up().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while redis.api_counters().await.is_empty() {
        assert!(Instant::now() < deadline, "the limiter never went back to Redis");
        let _ = status_of(&client, &format!("{base}/api/jobs?limit=1"), &tokens[2]).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let errors_before = backend_errors(&client, &base).await;
    let statuses = burst(&client, &base, &tokens[3]).await;
    assert!(limited_after_20(&statuses), "{statuses:?}");
    assert!(redis.api_counters().await.contains(&25), "counted in Redis again");
    assert_eq!(backend_errors(&client, &base).await, errors_before, "no fallback once Redis is back");
    studio.assert_no_panic();
    Ok(())
}
