//! Dependencies going away under load: a private PostgreSQL server is stopped while
//! `seidra serve` + `seidra worker` run jobs, then started again. During the outage the API
//! answers 503 `database_unavailable`; afterwards everything recovers by itself and every job
//! ends exactly once with its outputs.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "test helpers panic on broken fixtures")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

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
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SEIDRA_DATABASE_URL", db_url)
        .env("SEIDRA_DATA_DIR", data_dir)
        .env("SEIDRA_SECRET_KEY", "outage-test-secret-key-0123456789abcdef")
        .env("SEIDRA_ADMIN_PASSWORD", "outage-admin-password")
        .env("SEIDRA_ALLOW_REGISTRATION", "true")
        .env("SEIDRA_LOG_FORMAT", "json")
        .env("SEIDRA_QUEUE__LEASE_SECS", "3")
        .env("SEIDRA_QUEUE__POLL_INTERVAL_MS", "200")
        .args(args);
    cmd
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
