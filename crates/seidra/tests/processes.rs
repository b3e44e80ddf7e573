//! Separate processes, as in a cluster: `seidra serve` + `seidra worker` on PostgreSQL, with
//! events crossing processes through PostgreSQL NOTIFY or Redis; a worker killed with SIGKILL
//! mid-job loses nothing.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "test helpers panic on broken fixtures")]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use seidra_store::Backend;
use seidra_testkit::{TestDb, TestRedis, WsClient};
use serde_json::{Value, json};

const ADMIN_PASSWORD: &str = "process-admin-password";
const PASSWORD: &str = "a-long-enough-passphrase";

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn base_cmd(db_url: &str, data_dir: &std::path::Path, redis: Option<&TestRedis>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_seidra"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SEIDRA_DATABASE_URL", db_url)
        .env("SEIDRA_DATA_DIR", data_dir)
        .env("SEIDRA_SECRET_KEY", "processes-test-secret-key-0123456789abcdef")
        .env("SEIDRA_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("SEIDRA_ALLOW_REGISTRATION", "true")
        .env("SEIDRA_LOG_FORMAT", "json")
        .env("SEIDRA_QUEUE__LEASE_SECS", "3")
        .env("SEIDRA_QUEUE__POLL_INTERVAL_MS", "200")
        .env("SEIDRA_WORKER__GRACE_SECS", "2");
    if let Some(r) = redis {
        cmd.env("SEIDRA_REDIS_URL", &r.url).env("SEIDRA_REDIS_PREFIX", &r.prefix);
    }
    cmd
}

/// Starts `seidra serve` and returns it with its base URL.
fn serve(db_url: &str, data_dir: &std::path::Path, redis: Option<&TestRedis>) -> (Proc, String) {
    let mut child = base_cmd(db_url, data_dir, redis)
        .arg("serve")
        .env("SEIDRA_BIND", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.split("listening on http://").nth(1) {
                let _ = tx.send(addr.trim().to_owned());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(30)).expect("serve prints its address");
    (Proc(child), format!("http://{addr}"))
}

fn worker(db_url: &str, data_dir: &std::path::Path, redis: Option<&TestRedis>) -> Proc {
    let child = base_cmd(db_url, data_dir, redis)
        .args(["worker", "--concurrency", "1"])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn worker");
    Proc(child)
}

async fn post(client: &reqwest::Client, url: String, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut req = client.post(url).json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn get(client: &reqwest::Client, url: String, token: &str) -> Value {
    client.get(url).bearer_auth(token).send().await.expect("request").json().await.expect("json")
}

async fn register(client: &reqwest::Client, base: &str, name: &str) -> String {
    let (status, body) =
        post(client, format!("{base}/api/auth/register"), None, &json!({ "username": name, "password": PASSWORD }))
            .await;
    assert_eq!(status, 201, "{body}");
    body["access_token"].as_str().unwrap_or_default().to_owned()
}

async fn events_cross_processes(redis: Option<TestRedis>) -> anyhow::Result<()> {
    let db = TestDb::migrated(Backend::Postgres).await?;
    let dir = tempfile::tempdir()?;
    let (_api, base) = serve(&db.url, dir.path(), redis.as_ref());
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let _worker = Proc(
        base_cmd(&db.url, dir.path(), redis.as_ref())
            .args(["worker", "--concurrency", "1"])
            .env("SEIDRA_WORKER__METRICS_BIND", format!("127.0.0.1:{metrics_port}"))
            .stdout(Stdio::null())
            .spawn()?,
    );
    let client = seidra_testkit::http_client();
    let alice = register(&client, &base, "alice").await;
    let bob = register(&client, &base, "bob").await;
    let mut a = WsClient::connect(&base, &alice).await?;
    let mut b = WsClient::connect(&base, &bob).await?;
    a.expect("snapshot", Duration::from_secs(10), |_| true).await?;
    b.expect("snapshot", Duration::from_secs(10), |_| true).await?;

    let body = json!({ "prompt": "across processes", "width": 256, "height": 256, "num_inference_steps": 20, "num_images": 2 });
    let (status, resp) = post(&client, format!("{base}/api/generate/single"), Some(&alice), &body).await;
    assert_eq!(status, 202, "{resp}");
    let id = resp["job_ids"][0].as_str().unwrap_or_default().to_owned();
    let mut kinds = Vec::new();
    loop {
        let msg =
            a.next(Duration::from_secs(60)).await?.expect("events from the worker process reach the API's client");
        if msg["job_id"] != id.as_str() {
            continue;
        }
        kinds.push(msg["type"].as_str().unwrap_or_default().to_owned());
        if msg["type"] == "job.succeeded" {
            break;
        }
    }
    let mut first_two = kinds[..2].to_vec();
    if redis.is_some() {
        // Over Redis `job.queued` leaves right after the submit commits, so a worker that claims
        // at once may announce the start first (docs/RELIABILITY.md); both must still arrive.
        first_two.sort();
    }
    assert_eq!(first_two, ["job.queued", "job.started"], "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "job.queued").count(), 1, "{kinds:?}");
    assert!(kinds.contains(&"job.progress".to_owned()), "{kinds:?}");
    let leaked = b.drain(Duration::from_millis(500)).await?.into_iter().filter(|m| m["job_id"] == id.as_str()).count();
    assert_eq!(leaked, 0, "another user's client receives none of it");
    let job = get(&client, format!("{base}/api/jobs/{id}"), &alice).await;
    assert_eq!(job["outputs"].as_array().map(Vec::len), Some(2));
    let health = get(&client, format!("{base}/api/generation/health"), &alice).await;
    assert_eq!(health["workers"].as_array().map(Vec::len), Some(1), "{health}");
    // The worker process exports its own job metrics.
    let metrics = client.get(format!("http://127.0.0.1:{metrics_port}/metrics")).send().await?.text().await?;
    assert!(
        metrics.contains(r#"seidra_jobs_finished_total{job_type="image",engine="procedural",outcome="succeeded"} 1"#),
        "{metrics}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_and_worker_processes_over_postgres_notify() -> anyhow::Result<()> {
    events_cross_processes(None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_and_worker_processes_over_redis() -> anyhow::Result<()> {
    events_cross_processes(Some(TestRedis::new().await?)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_worker_loses_nothing() -> anyhow::Result<()> {
    let db = TestDb::migrated(Backend::Postgres).await?;
    let dir = tempfile::tempdir()?;
    let (_api, base) = serve(&db.url, dir.path(), None);
    let client = seidra_testkit::http_client();
    let alice = register(&client, &base, "alice").await;
    let mut first = worker(&db.url, dir.path(), None);

    // The procedural engine is fast: the largest job (a few seconds) gives time to kill mid-run.
    let body = json!({ "prompt": "survives a crash", "width": 2048, "height": 2048, "num_inference_steps": 150, "num_images": 8 });
    let (status, resp) = post(&client, format!("{base}/api/generate/single"), Some(&alice), &body).await;
    assert_eq!(status, 202, "{resp}");
    let id = resp["job_ids"][0].as_str().unwrap_or_default().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let job = get(&client, format!("{base}/api/jobs/{id}"), &alice).await;
        if job["status"] == "running" {
            break;
        }
        assert!(job["status"] == "queued" && tokio::time::Instant::now() < deadline, "job not caught running: {job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.0.kill()?; // SIGKILL: no deregistration, no release, the lease just stops being renewed.
    first.0.wait()?;

    let _second = worker(&db.url, dir.path(), None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    let job = loop {
        let job = get(&client, format!("{base}/api/jobs/{id}"), &alice).await;
        if job["status"] == "succeeded" || job["status"] == "failed" {
            break job;
        }
        assert!(tokio::time::Instant::now() < deadline, "job not finished after the crash: {job}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["attempt"], 2, "the crashed attempt is counted");
    assert_eq!(job["outputs"].as_array().map(Vec::len), Some(8), "one set of outputs");
    let owner = job["owner_id"].as_str().unwrap_or_default();
    let files = std::fs::read_dir(dir.path().join("media/jobs").join(owner).join(&id))?.count();
    assert_eq!(files, 8, "no orphaned files from the killed attempt");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_then_releases_unfinished_jobs() -> anyhow::Result<()> {
    let db = TestDb::migrated(Backend::Postgres).await?;
    let dir = tempfile::tempdir()?;
    let (_api, base) = serve(&db.url, dir.path(), None);
    let client = seidra_testkit::http_client();
    let alice = register(&client, &base, "alice").await;
    // Grace 0 s: the running job cannot finish in time, so it must go back to the queue.
    let mut w = Proc(
        base_cmd(&db.url, dir.path(), None)
            .args(["worker", "--concurrency", "1"])
            .env("SEIDRA_WORKER__GRACE_SECS", "0")
            .stdout(Stdio::null())
            .spawn()?,
    );
    let body =
        json!({ "prompt": "interrupted", "width": 2048, "height": 2048, "num_inference_steps": 150, "num_images": 8 });
    let (_, resp) = post(&client, format!("{base}/api/generate/single"), Some(&alice), &body).await;
    let id = resp["job_ids"][0].as_str().unwrap_or_default().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let job = get(&client, format!("{base}/api/jobs/{id}"), &alice).await;
        if job["status"] == "running" {
            break;
        }
        assert!(job["status"] == "queued" && tokio::time::Instant::now() < deadline, "not caught running: {job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = Command::new("kill").arg("-TERM").arg(w.0.id().to_string()).status();
    let status = w.0.wait()?;
    assert!(status.success(), "worker exits cleanly after SIGTERM: {status:?}");
    let job = get(&client, format!("{base}/api/jobs/{id}"), &alice).await;
    assert_eq!(job["status"], "queued", "released back to the queue: {job}");
    assert_eq!(job["attempt"], 0, "a release does not count as an attempt");
    let health = get(&client, format!("{base}/api/generation/health"), &alice).await;
    assert_eq!(health["workers"], json!([]), "the worker deregistered: {health}");
    // Another worker picks it up and finishes it.
    let _next = worker(&db.url, dir.path(), None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let job = get(&client, format!("{base}/api/jobs/{id}"), &alice).await;
        if job["status"] == "succeeded" {
            assert_eq!(job["attempt"], 1);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not finished: {job}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Workers are SIGKILLed again and again while 200 jobs run: every job still ends exactly once,
/// with exactly one set of outputs whose files exist, and the killed attempts are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_sigkills_while_200_jobs_run() -> anyhow::Result<()> {
    let db = TestDb::migrated(Backend::Postgres).await?;
    let dir = tempfile::tempdir()?;
    let chaos_cmd = |args: &[&str]| {
        let mut cmd = base_cmd(&db.url, dir.path(), None);
        cmd.args(args)
            .env("SEIDRA_QUEUE__MAX_ATTEMPTS", "50")
            .env("SEIDRA_QUEUE__MAX_QUEUED_PER_USER", "1000")
            .env("SEIDRA_QUEUE__MAX_RUNNING_PER_USER", "100")
            .env("SEIDRA_RATE_LIMIT__ENABLED", "false")
            .stdout(Stdio::null());
        cmd
    };
    let (_api, base) = serve(&db.url, dir.path(), None);
    let client = seidra_testkit::http_client();
    let alice = register(&client, &base, "alice").await;
    let spawn_worker = || Proc(chaos_cmd(&["worker", "--concurrency", "4"]).spawn().expect("spawn worker"));
    let mut workers = [spawn_worker(), spawn_worker()];

    let request = json!({ "prompt": "chaos", "width": 512, "height": 512, "num_inference_steps": 60, "num_images": 2 });
    let mut ids = Vec::new();
    for _ in 0..25 {
        let body = json!({ "requests": vec![request.clone(); 8] });
        let (status, resp) = post(&client, format!("{base}/api/generate/batch"), Some(&alice), &body).await;
        assert_eq!(status, 202, "{resp}");
        ids.extend(resp["job_ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()));
    }
    assert_eq!(ids.len(), 200);

    // Kill one worker (no release, no deregistration) every 400 ms and start a fresh one.
    for round in 0..12 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let victim = &mut workers[round % 2];
        victim.0.kill()?;
        victim.0.wait()?;
        *victim = spawn_worker();
    }

    let seidra_store::Db::Postgres(pool) = &db.db else { unreachable!("PostgreSQL test database") };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    loop {
        let open: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE finished_at IS NULL").fetch_one(pool).await?;
        if open == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{open} jobs still unfinished");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let by_status: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetch_all(pool).await?;
    assert_eq!(by_status, [("succeeded".to_owned(), 200)], "every job succeeded");
    let retried: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE attempt > 1").fetch_one(pool).await?;
    assert!(retried > 0, "the kills interrupted running jobs, and those attempts were counted");
    let wrong_sets: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT j.id FROM jobs j LEFT JOIN media m ON m.job_id = j.id \
         GROUP BY j.id HAVING COUNT(m.id) <> 2 OR COUNT(DISTINCT m.position) <> 2) bad",
    )
    .fetch_one(pool)
    .await?;
    assert_eq!(wrong_sets, 0, "each job has exactly one set of two outputs");
    let keys: Vec<String> = sqlx::query_scalar("SELECT storage_key FROM media").fetch_all(pool).await?;
    assert_eq!(keys.len(), 400);
    let on_disk = seidra_testkit::files_under(&dir.path().join("media"));
    for key in &keys {
        assert!(on_disk.contains(key), "the file of every output exists: {key}");
    }
    // Files of attempts killed between storing and committing are not media; the orphan
    // sweeper removes them. None of them may be visible as an output.
    let orphans = on_disk.iter().filter(|f| f.starts_with("jobs/") && !keys.contains(f)).count();
    eprintln!("retried jobs: {retried}; orphaned files from killed attempts: {orphans}");
    Ok(())
}
