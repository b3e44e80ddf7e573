//! The `seidra` binary as a user runs it: configuration checks, migrations, the all-in-one
//! studio start, and the account CLI, on SQLite and PostgreSQL.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "test helpers panic on broken fixtures")]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use seidra_store::Backend;
use seidra_testkit::{TestDb, dual_test};

/// The schema version this binary migrates to.
fn latest() -> i64 {
    seidra_store::migrate::latest_version(Backend::Sqlite)
}

/// How many migrations this binary has.
fn count() -> usize {
    seidra_store::migrate::known_versions(Backend::Sqlite).len()
}

/// The version before the latest.
fn previous() -> i64 {
    let versions = seidra_store::migrate::known_versions(Backend::Sqlite);
    versions[versions.len() - 2]
}

fn seidra() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_seidra"));
    cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).env("SEIDRA_LOG_FORMAT", "json");
    cmd
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output { status, stdout, stderr } = cmd.output().expect("run seidra");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

#[test]
fn version_and_openapi() {
    let (code, out, _) = run(seidra().arg("--version"));
    assert_eq!(code, 0);
    assert!(out.starts_with("seidra ") && out.contains(env!("CARGO_PKG_VERSION")), "{out}");
    let (code, out, _) = run(seidra().arg("openapi"));
    assert_eq!(code, 0);
    let spec: serde_json::Value = serde_json::from_str(&out).expect("openapi prints JSON");
    assert!(spec["paths"]["/api/auth/login"]["post"].is_object());
    assert_eq!(spec["info"]["version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn config_check_explains_bad_values() {
    let dir = tempfile::tempdir().unwrap();
    let ok = run(seidra()
        .arg("config")
        .arg("check")
        .env("SEIDRA_DATA_DIR", dir.path())
        .env("SEIDRA_SECRET_KEY", "k".repeat(40)));
    assert_eq!(ok.0, 0, "{ok:?}");
    assert!(ok.1.contains("bind = \"127.0.0.1:8080\""), "{}", ok.1);
    assert!(
        ok.1.contains("secret_key = \"********\"") && !ok.1.contains(&"k".repeat(40)),
        "secrets are masked: {}",
        ok.1
    );

    let cases: [(&[(&str, &str)], &str); 6] = [
        (&[("SEIDRA_BIND", "not-an-address")], "SEIDRA_BIND"),
        (&[("SEIDRA_ENV", "production")], "SEIDRA_SECRET_KEY is required"),
        (&[("SEIDRA_ENV", "production"), ("SEIDRA_SECRET_KEY", "short")], "at least 32"),
        (&[("SEIDRA_DATABASE_URL", "mysql://x")], "SEIDRA_DATABASE_URL"),
        (&[("SEIDRA_BINDD", "x")], "SEIDRA_BINDD is not a SEIDRA setting"),
        (&[("SEIDRA_LOG_LEVEL", "info,=[")], "SEIDRA_LOG_LEVEL"),
    ];
    for (vars, expected) in cases {
        let mut cmd = seidra();
        cmd.args(["config", "check"]);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let (code, out, err) = run(&mut cmd);
        assert_ne!(code, 0, "{vars:?} should fail: {out}");
        assert!(err.contains(expected), "{vars:?}: expected `{expected}` in: {err}");
    }

    let file = dir.path().join("seidra.toml");
    std::fs::write(&file, "bind = \"0.0.0.0:9999\"\nallow_registrationn = true\n").unwrap();
    let (code, _, err) = run(seidra().args(["config", "check", "--config"]).arg(&file));
    assert_ne!(code, 0);
    assert!(err.contains("allow_registrationn") && err.contains("seidra.toml"), "{err}");
    std::fs::write(&file, "bind = \"0.0.0.0:9999\"\n").unwrap();
    let (code, out, _) = run(seidra().args(["config", "check"]).env("SEIDRA_CONFIG", &file));
    assert_eq!(code, 0);
    assert!(out.contains("0.0.0.0:9999"));
    // Environment beats the file.
    let (_, out, _) =
        run(seidra().args(["config", "check"]).env("SEIDRA_CONFIG", &file).env("SEIDRA_BIND", "127.0.0.1:7777"));
    assert!(out.contains("127.0.0.1:7777"), "{out}");
}

fn db_cmd(url: &str, data_dir: &std::path::Path) -> Command {
    let mut cmd = seidra();
    cmd.env("SEIDRA_DATABASE_URL", url).env("SEIDRA_DATA_DIR", data_dir);
    cmd
}

async fn migrate_commands(backend: Backend) -> anyhow::Result<()> {
    let t = TestDb::empty(backend).await?;
    let dir = tempfile::tempdir()?;
    let (code, out, _) = run(db_cmd(&t.url, dir.path()).args(["migrate", "status"]));
    assert_eq!(code, 0);
    assert!(out.contains("current version: 0") && out.contains(&format!("{} pending", count())), "{out}");

    // serve refuses a database behind the binary and says what to do.
    let (code, _, err) = run(db_cmd(&t.url, dir.path()).arg("serve"));
    assert_ne!(code, 0);
    assert!(err.contains("seidra migrate up"), "{err}");
    let (code, _, err) = run(db_cmd(&t.url, dir.path())
        .env("SEIDRA_ENV", "production")
        .env("SEIDRA_SECRET_KEY", "k".repeat(40))
        .arg("serve"));
    assert_ne!(code, 0);
    assert!(err.contains("migration Job"), "{err}");

    let (code, out, _) = run(db_cmd(&t.url, dir.path()).args(["migrate", "up"]));
    assert_eq!(code, 0);
    assert!(out.contains(&format!("migrations: upgrade successful, version {}", latest())), "{out}");
    let (_, out, _) = run(db_cmd(&t.url, dir.path()).args(["migrate", "status"]));
    assert!(
        out.contains(&format!("current version: {}", latest())) && out.contains("0 pending") && out.contains("applied"),
        "{out}"
    );

    let (code, out, _) = run(db_cmd(&t.url, dir.path()).args(["migrate", "down", "1"]));
    assert_eq!(code, 0);
    assert!(out.contains(&format!("downgrade successful, version {}", previous())), "{out}");
    let (_, out, _) = run(db_cmd(&t.url, dir.path()).args(["migrate", "status"]));
    assert!(out.contains(&format!("pending  {:>4}", latest())) && out.contains("1 pending"), "{out}");
    let (code, _, err) = run(db_cmd(&t.url, dir.path()).args(["migrate", "down", "99"]));
    assert_ne!(code, 0);
    assert!(err.contains(&format!("only {} applied", count() - 1)), "{err}");
    let (code, _, _) = run(db_cmd(&t.url, dir.path()).args(["migrate", "up"]));
    assert_eq!(code, 0);
    Ok(())
}

async fn account_cli(backend: Backend) -> anyhow::Result<()> {
    let t = TestDb::migrated(backend).await?;
    let dir = tempfile::tempdir()?;
    let mut child = db_cmd(&t.url, dir.path())
        .args(["user", "create", "jane", "--role", "admin", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    child.stdin.take().expect("stdin").write_all(b"jane-has-a-long-password\n")?;
    let out = child.wait_with_output()?;
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("created admin `jane`"));

    let (code, out, _) = run(db_cmd(&t.url, dir.path()).args(["user", "create", "kim"]));
    assert_eq!(code, 0);
    assert!(out.contains("password: "), "a generated password is printed once: {out}");
    let (code, _, err) = run(db_cmd(&t.url, dir.path()).args(["user", "create", "kim"]));
    assert_ne!(code, 0);
    assert!(err.contains("already taken"), "{err}");
    let (code, _, err) = run(db_cmd(&t.url, dir.path()).args(["user", "create", "Bad Name"]));
    assert_ne!(code, 0);
    assert!(err.contains("username"), "{err}");

    let (_, out, _) = run(db_cmd(&t.url, dir.path()).args(["user", "list"]));
    assert!(out.contains("jane") && out.contains("kim") && out.contains("2 user(s)"), "{out}");
    let (code, out, _) = run(db_cmd(&t.url, dir.path()).args(["user", "disable", "kim"]));
    assert_eq!((code, out.contains("now disabled")), (0, true));
    let (code, out, _) = run(db_cmd(&t.url, dir.path()).args(["user", "set-role", "kim", "admin"]));
    assert_eq!((code, out.contains("now admin")), (0, true));
    let (code, _, err) = run(db_cmd(&t.url, dir.path()).args(["user", "set-role", "jane", "user"]));
    assert_ne!(code, 0, "jane is the last enabled admin");
    assert!(err.contains("last enabled admin"), "{err}");
    let (code, out, _) = run(db_cmd(&t.url, dir.path()).args(["user", "set-password", "kim"]));
    assert_eq!((code, out.contains("password: ")), (0, true));

    let (code, out, _) =
        run(db_cmd(&t.url, dir.path()).args(["apikey", "create", "jane", "--name", "ci", "--scopes", "read,admin"]));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("token (shown once): sk_"), "{out}");
    let id = out.split('(').nth(1).and_then(|s| s.split(')').next()).unwrap_or_default().to_owned();
    let (_, out, _) = run(db_cmd(&t.url, dir.path()).args(["apikey", "list", "jane"]));
    assert!(out.contains(&id) && out.contains("active"), "{out}");
    let (code, _, _) = run(db_cmd(&t.url, dir.path()).args(["apikey", "revoke", "jane", &id]));
    assert_eq!(code, 0);
    let (_, out, _) = run(db_cmd(&t.url, dir.path()).args(["apikey", "list", "jane"]));
    assert!(out.contains("revoked"), "{out}");
    let (code, _, err) =
        run(db_cmd(&t.url, dir.path()).args(["apikey", "create", "jane", "--name", "x", "--scopes", "root"]));
    assert_ne!(code, 0);
    assert!(err.contains("unknown scope"), "{err}");
    Ok(())
}

dual_test!(migrate_commands, account_cli);

/// Reads the child's stdout until the banner is complete; returns the listen address and the banner.
fn wait_for_banner(child: &mut Child) -> (String, String) {
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut banner = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            banner.push_str(&line);
            banner.push('\n');
            if line.contains("(shown only this once")
                || line.contains("SEIDRA_ADMIN_PASSWORD")
                || line.contains("sign in with your account")
            {
                let _ = tx.send(banner.clone());
            }
        }
    });
    let banner = rx.recv_timeout(Duration::from_secs(30)).expect("banner within 30 s");
    let addr = banner
        .lines()
        .find_map(|l| l.split("listening on http://").nth(1))
        .map(str::to_owned)
        .expect("listen address in banner");
    (addr, banner)
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "seidra did not stop within 15 s of SIGTERM");
        #[expect(clippy::disallowed_methods, reason = "plain test thread polling a child process")]
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_on_an_empty_data_dir_serves_and_stops_on_sigterm() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut child = seidra()
        .arg("up")
        .env("SEIDRA_DATA_DIR", dir.path())
        .env("SEIDRA_BIND", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .spawn()?;
    let (addr, banner) = wait_for_banner(&mut child);
    assert!(banner.contains(&format!("migrations: upgrade successful, version {}", latest())), "{banner}");
    assert!(banner.contains("admin account created: username `admin`"), "{banner}");
    let password = banner.split("password `").nth(1).and_then(|s| s.split('`').next()).unwrap_or_default().to_owned();
    assert!(password.len() >= 16);

    let client = seidra_testkit::http_client();
    let ready = client.get(format!("http://{addr}/readyz")).send().await?;
    assert_eq!(ready.status().as_u16(), 200);
    let login = client
        .post(format!("http://{addr}/api/auth/login"))
        .json(&serde_json::json!({ "username": "admin", "password": password }))
        .send()
        .await?;
    assert_eq!(login.status().as_u16(), 200);

    // The generated key is kept in the data dir, readable by the owner only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("secret.key"))?.permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(terminate(&mut child).success());

    // Second start: same key, no new admin, the password is not printed again.
    let mut child = seidra()
        .arg("up")
        .env("SEIDRA_DATA_DIR", dir.path())
        .env("SEIDRA_BIND", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .spawn()?;
    let (addr, banner) = wait_for_banner(&mut child);
    assert!(!banner.contains(&password), "{banner}");
    let login = client
        .post(format!("http://{addr}/api/auth/login"))
        .json(&serde_json::json!({ "username": "admin", "password": password }))
        .send()
        .await?;
    assert_eq!(login.status().as_u16(), 200);
    assert!(terminate(&mut child).success());
    Ok(())
}

/// `SEIDRA_METRICS_ENABLED=false`: no recorder, `/metrics` is a 404 with its code, the API works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_turned_off() -> anyhow::Result<()> {
    let client = seidra_testkit::http_client();
    for enabled in [true, false] {
        let dir = tempfile::tempdir()?;
        let mut child = seidra()
            .arg("up")
            .env("SEIDRA_DATA_DIR", dir.path())
            .env("SEIDRA_BIND", "127.0.0.1:0")
            .env("SEIDRA_METRICS_ENABLED", enabled.to_string())
            .stdout(Stdio::piped())
            .spawn()?;
        let (addr, _) = wait_for_banner(&mut child);
        let ready = client.get(format!("http://{addr}/readyz")).send().await?;
        assert_eq!(ready.status().as_u16(), 200);
        let metrics = client.get(format!("http://{addr}/metrics")).send().await?;
        let status = metrics.status().as_u16();
        let body = metrics.text().await?;
        if enabled {
            assert_eq!(status, 200, "{body}");
            assert!(body.contains("seidra_http_requests_total{"), "the readiness request is counted: {body}");
        } else {
            assert_eq!(status, 404, "{body}");
            let err: serde_json::Value = serde_json::from_str(&body)?;
            assert_eq!(err["error"]["code"], "metrics_disabled", "{body}");
        }
        assert!(terminate(&mut child).success());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrate_up_processes_on_postgres() -> anyhow::Result<()> {
    let t = TestDb::empty(Backend::Postgres).await?;
    let dir = tempfile::tempdir()?;
    let children: Vec<Child> = (0..3)
        .map(|_| {
            db_cmd(&t.url, dir.path()).args(["migrate", "up"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()
        })
        .collect::<Result<_, _>>()?;
    for child in children {
        let out = child.wait_with_output()?;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(&format!("version {}", latest())), "{stdout}");
    }
    let status = seidra_store::migrate::status(&t.db).await?;
    assert!(status.at_head() && status.failed.is_empty());
    Ok(())
}
