//! What each subcommand does. Kept thin: the libraries do the work.

use std::io::BufRead;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use seidra_api::accounts::{self as account_ops, Actor};
use seidra_api::startup::{AdminBootstrap, build_state, ensure_admin, open_bus, open_db, open_storage};
use seidra_config::{LoadedSettings, Settings};
use seidra_core::{ApiKeyScope, Role};
use seidra_store::{Db, accounts, api_keys, migrate};
use seidra_worker::{EngineRegistry, Worker, WorkerConfig, WorkerDeps};
use tokio_util::sync::CancellationToken;

use crate::cli::{ApiKeyAction, Cli, Command, ConfigAction, MigrateAction, UserAction};
use crate::logging::{self, Target};

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Config { action: ConfigAction::Check } = cli.command {
        return Ok(config_check(&cli));
    }
    if let Command::Openapi = cli.command {
        println!("{}", serde_json::to_string_pretty(&seidra_api::openapi::spec())?);
        return Ok(ExitCode::SUCCESS);
    }
    let loaded = seidra_config::load(cli.config.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let target = match cli.command {
        Command::Up | Command::Serve | Command::Worker { .. } | Command::Migrate { .. } => Target::Stdout,
        _ => Target::Stderr,
    };
    logging::init(&loaded.settings, target)?;
    for name in &loaded.unknown_env {
        tracing::warn!(variable = %name, "unknown SEIDRA_* variable ignored (see `seidra config check`)");
    }
    let LoadedSettings { settings, .. } = loaded;
    match cli.command {
        Command::Up => serve(settings, true).await,
        Command::Serve => serve(settings, false).await,
        Command::Worker { concurrency } => worker(settings, concurrency).await,
        Command::Migrate { action } => migrate_cmd(settings, action).await,
        Command::User { action } => user_cmd(settings, action).await,
        Command::Apikey { action } => apikey_cmd(settings, action).await,
        Command::Openapi | Command::Config { .. } => Ok(ExitCode::SUCCESS),
    }
}

fn config_check(cli: &Cli) -> ExitCode {
    let loaded = match seidra_config::load(cli.config.as_deref()) {
        Ok(l) => l,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::FAILURE;
        }
    };
    let mut problems = Vec::new();
    if let Err(err) = logging::filter(&loaded.settings) {
        problems.push(err.to_string());
    }
    for name in &loaded.unknown_env {
        problems.push(format!("{name} is not a SEIDRA setting (typo?)"));
    }
    println!("# effective configuration (secrets masked)");
    if let Some(file) = &loaded.file {
        println!("# file: {}", file.display());
    }
    println!("# database: {}", mask_url(&loaded.settings.effective_database_url()));
    match toml::to_string_pretty(&loaded.settings) {
        Ok(text) => println!("{text}"),
        Err(err) => problems.push(format!("cannot print the configuration: {err}")),
    }
    if problems.is_empty() {
        eprintln!("configuration OK");
        ExitCode::SUCCESS
    } else {
        eprintln!("invalid configuration:");
        for p in problems {
            eprintln!("  - {p}");
        }
        ExitCode::FAILURE
    }
}

/// Hides the password in `scheme://user:password@host…`.
fn mask_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let creds = &url[scheme_end + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:********{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Opens the database and refuses to go on unless the schema is at this binary's head.
async fn open_migrated(settings: &Settings) -> anyhow::Result<Db> {
    let db = open_db(settings).await?;
    let status = migrate::status(&db).await.context("cannot read the migration status")?;
    status.ensure_not_ahead()?;
    if !status.at_head() {
        anyhow::bail!(
            "the database schema is at version {} but this binary needs {}; run `seidra migrate up` first",
            status.current,
            status.latest
        );
    }
    Ok(db)
}

async fn serve(settings: Settings, all_in_one: bool) -> anyhow::Result<ExitCode> {
    let db = open_db(&settings).await?;
    let status = migrate::status(&db).await.context("cannot read the migration status")?;
    status.ensure_not_ahead()?;
    if all_in_one {
        if !status.at_head() {
            let version = migrate::up(&db).await.context("applying migrations failed")?;
            tracing::info!(version, "migrations: upgrade successful, version {version}");
        }
    } else if !status.at_head() {
        let hint = if settings.is_production() {
            "the migration Job (`seidra migrate up`, Helm hook `ultimate-migrate`) must run before `serve`"
        } else {
            "run `seidra migrate up` (or use `seidra up`, which applies them)"
        };
        anyhow::bail!(
            "the database schema is at version {} but this binary needs {}: {hint}",
            status.current,
            status.latest
        );
    }
    let bootstrap = ensure_admin(&db, &settings).await?;
    let bind = settings.bind;
    let grace = Duration::from_secs(settings.shutdown_grace_secs);
    let embedded_workers = if all_in_one { settings.worker.embedded } else { 0 };
    let state = build_state(settings, db.clone()).await?;
    let router = seidra_api::router(state.clone());
    let listener = tokio::net::TcpListener::bind(bind).await.with_context(|| format!("cannot listen on {bind}"))?;
    let addr = listener.local_addr()?;

    // In-process workers share the API's database pool, event bus, storage and engines.
    let stop_workers = CancellationToken::new();
    let mut worker_tasks = tokio::task::JoinSet::new();
    for i in 0..embedded_workers {
        let deps = WorkerDeps {
            db: db.clone(),
            storage: state.storage.clone(),
            bus: state.bus.clone(),
            engines: state.engines.clone(),
            signer: state.signer.clone(),
            media: state.settings.media.clone(),
            models: state.models.clone(),
        };
        let worker = Worker::new(deps, worker_config(&state.settings, format!("embedded-{i}"), None));
        worker_tasks.spawn(worker.run(stop_workers.clone()));
    }

    print_banner(addr, &bootstrap, all_in_one);
    tracing::info!(%addr, embedded_workers, "listening");
    // The state's token: WebSocket sessions watch it and close with 1001 when it fires.
    let signal = state.shutdown.clone();
    let signal_watch = signal.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        signal_watch.cancel();
    });
    let http_stop = signal.clone();
    seidra_api::serve(listener, router, async move { http_stop.cancelled().await }, grace).await?;
    // Upgraded connections are not tracked by the HTTP server: wait for the WebSockets to send
    // their close frames, or the process exit would cut them.
    if tokio::time::timeout(Duration::from_secs(2), state.ws_sessions.closed()).await.is_err() {
        tracing::warn!(open = state.ws_sessions.len(), "WebSocket sessions did not close in time");
    }
    stop_workers.cancel();
    while let Some(result) = worker_tasks.join_next().await {
        match result {
            Ok(Err(err)) => tracing::error!(error = %err, "worker ended with an error"),
            Err(err) => tracing::error!(error = %err, "worker task panicked"),
            Ok(Ok(())) => {}
        }
    }
    tracing::info!("shutting down");
    db.close().await;
    Ok(ExitCode::SUCCESS)
}

/// Worker settings from the configuration (`concurrency` overrides the configured value).
fn worker_config(settings: &Settings, name: String, concurrency: Option<u32>) -> WorkerConfig {
    WorkerConfig {
        name,
        concurrency: usize::try_from(concurrency.unwrap_or(settings.worker.concurrency)).unwrap_or(1),
        lease: Duration::from_secs(settings.queue.lease_secs),
        poll_interval: Duration::from_millis(settings.queue.poll_interval_ms),
        max_running_per_owner: i64::from(settings.queue.max_running_per_user),
        grace: Duration::from_secs(settings.worker.grace_secs),
        retention_days: settings.queue.retention_days,
        maintenance: true,
        orphan_grace: Duration::from_secs(settings.storage.orphan_grace_minutes * 60),
        webhooks: seidra_notify::webhooks::DeliveryConfig::from_settings(&settings.webhooks)
            .map_err(|err| tracing::error!(%err, "webhook deliveries disabled in this worker"))
            .ok(),
    }
}

fn print_banner(addr: std::net::SocketAddr, bootstrap: &AdminBootstrap, all_in_one: bool) {
    let role = if all_in_one { "studio (all-in-one)" } else { "API server" };
    println!("SEIDRA Ultimate {} {role} listening on http://{addr}", seidra_core::VERSION);
    println!("  API docs: http://{addr}/api/docs   health: http://{addr}/api/system/health");
    match bootstrap {
        AdminBootstrap::Existing => {
            println!(
                "  sign in with your account (first-boot admin password was shown once; reset with `seidra user set-password`)"
            );
        }
        AdminBootstrap::CreatedFromEnv { username } => {
            println!("  admin account `{username}` created with the password from SEIDRA_ADMIN_PASSWORD");
        }
        AdminBootstrap::CreatedGenerated { username, password } => {
            println!("  admin account created: username `{username}`, password `{password}`");
            println!("  (shown only this once; change it after signing in)");
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; draining");
}

async fn worker(settings: Settings, concurrency: Option<u32>) -> anyhow::Result<ExitCode> {
    if settings.worker.metrics_bind.is_some() {
        // Before the engines: remote engines record their first health check at once.
        seidra_api::metrics::init(&settings);
    }
    let db = open_migrated(&settings).await?;
    let bus = open_bus(&settings, &db).await?;
    let storage = open_storage(&settings).await?;
    let deps = WorkerDeps {
        db: db.clone(),
        storage: storage.clone(),
        bus,
        engines: EngineRegistry::from_config(&settings),
        signer: seidra_storage::DownloadSigner::new(seidra_api::startup::url_signer(&settings)?, storage),
        media: settings.media.clone(),
        models: seidra_worker::model_tasks::ModelDownloads::from_settings(&settings).map_err(anyhow::Error::msg)?,
    };
    let name =
        format!("{}:{}", std::fs::read_to_string("/etc/hostname").unwrap_or_default().trim(), std::process::id());
    let worker = Worker::new(deps, worker_config(&settings, name, concurrency));
    let stop = CancellationToken::new();
    let stop_on_signal = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        stop_on_signal.cancel();
    });
    if let Some(addr) = settings.worker.metrics_bind {
        seidra_api::metrics::init(&settings);
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
        tracing::info!(%addr, "worker metrics listening");
        let stop_http = stop.clone();
        tokio::spawn(seidra_api::serve(
            listener,
            seidra_api::worker_router(),
            async move { stop_http.cancelled().await },
            Duration::from_secs(1),
        ));
    }
    worker.run(stop).await?;
    db.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn migrate_cmd(settings: Settings, action: MigrateAction) -> anyhow::Result<ExitCode> {
    let db = open_db(&settings).await?;
    match action {
        MigrateAction::Up => {
            let before = migrate::status(&db).await?;
            let version = migrate::up(&db).await.context("migration failed")?;
            if before.at_head() {
                tracing::info!(version, "migrations: already up to date, version {version}");
            } else {
                tracing::info!(version, "migrations: upgrade successful, version {version}");
            }
        }
        MigrateAction::Down { steps } => {
            let reverted = migrate::down(&db, steps).await.context("migration rollback failed")?;
            let version = migrate::status(&db).await?.current;
            tracing::info!(?reverted, version, "migrations: downgrade successful, version {version}");
        }
        MigrateAction::Status => {
            let status = migrate::status(&db).await?;
            println!("backend: {}", db.backend().as_str());
            println!("current version: {} (latest known to this binary: {})", status.current, status.latest);
            for m in &status.migrations {
                match &m.applied_at {
                    Some(at) => println!("  applied  {:>4}  {:<24} {at}", m.version, m.description),
                    None => println!("  pending  {:>4}  {}", m.version, m.description),
                }
            }
            for v in &status.unknown_applied {
                println!("  unknown  {v:>4}  (applied by a newer binary)");
            }
            let pending = status.pending().count();
            println!("{pending} pending");
        }
    }
    db.close().await;
    Ok(ExitCode::SUCCESS)
}

fn parse_role(raw: &str) -> anyhow::Result<Role> {
    Role::parse(raw).ok_or_else(|| anyhow::anyhow!("role must be `user` or `admin`, not `{raw}`"))
}

fn read_password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("cannot read the password from stdin")?;
        let pw = line.trim_end_matches(['\r', '\n']).to_owned();
        anyhow::ensure!(!pw.is_empty(), "no password on stdin");
        return Ok((pw, false));
    }
    let pw = seidra_api::auth::tokens::random_password(20).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((pw, true))
}

async fn find_user(db: &Db, username: &str) -> anyhow::Result<accounts::User> {
    accounts::get_user_by_username(db, username).await.map_err(|e| match e {
        seidra_store::StoreError::NotFound => anyhow::anyhow!("no user named `{username}`"),
        other => other.into(),
    })
}

async fn user_cmd(settings: Settings, action: UserAction) -> anyhow::Result<ExitCode> {
    let db = open_migrated(&settings).await?;
    let actor = Actor::default();
    match action {
        UserAction::Create { username, role, password_stdin } => {
            let role = parse_role(&role)?;
            let (password, generated) = read_password(password_stdin)?;
            let user = account_ops::create_user(&db, &actor, &username, &password, role).await?;
            println!("created {} `{}` ({})", user.role, user.username, user.id);
            if generated {
                println!("password: {password}");
            }
        }
        UserAction::List => {
            let (users, total) = accounts::list_users(&db, 10_000, 0).await?;
            println!("{:<36}  {:<24} {:<6} {:<9} last login", "id", "username", "role", "status");
            for u in users {
                let status = if u.disabled { "disabled" } else { "active" };
                let last = u.last_login_at.map_or_else(|| "never".to_owned(), |t| t.to_rfc3339());
                println!("{:<36}  {:<24} {:<6} {:<9} {last}", u.id, u.username, u.role.as_str(), status);
            }
            println!("{total} user(s)");
        }
        UserAction::SetPassword { username, password_stdin } => {
            let user = find_user(&db, &username).await?;
            let (password, generated) = read_password(password_stdin)?;
            account_ops::set_password(&db, &actor, &user, &password, "password").await?;
            println!("password of `{username}` changed; all their sessions were signed out");
            if generated {
                println!("password: {password}");
            }
        }
        UserAction::Disable { username, enable } => {
            let user = find_user(&db, &username).await?;
            let user = account_ops::set_disabled(&db, &actor, &user, !enable).await?;
            println!("`{}` is now {}", user.username, if user.disabled { "disabled" } else { "enabled" });
        }
        UserAction::SetRole { username, role } => {
            let user = find_user(&db, &username).await?;
            let user = account_ops::set_role(&db, &actor, &user, parse_role(&role)?).await?;
            println!("`{}` is now {}", user.username, user.role);
        }
    }
    db.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn apikey_cmd(settings: Settings, action: ApiKeyAction) -> anyhow::Result<ExitCode> {
    let db = open_migrated(&settings).await?;
    let actor = Actor::default();
    match action {
        ApiKeyAction::Create { username, name, scopes, expires_in_days } => {
            let user = find_user(&db, &username).await?;
            let scopes = scopes
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    ApiKeyScope::parse(s).ok_or_else(|| anyhow::anyhow!("unknown scope `{s}` (read, generate, admin)"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let (key, token) = account_ops::create_api_key(&db, &actor, &user, &name, &scopes, expires_in_days).await?;
            println!(
                "created API key `{}` ({}) for `{username}` with scopes {}",
                key.name,
                key.id,
                ApiKeyScope::join(&key.scopes)
            );
            println!("token (shown once): {token}");
        }
        ApiKeyAction::List { username } => {
            let user = find_user(&db, &username).await?;
            for k in api_keys::list_for_user(&db, user.id).await? {
                let state = if k.revoked_at.is_some() { "revoked" } else { "active" };
                let used =
                    k.last_used_at.map_or_else(|| "never used".to_owned(), |t| format!("last used {}", t.to_rfc3339()));
                println!("{}  {:<24} {:<16} {state:<8} {used}", k.id, k.name, ApiKeyScope::join(&k.scopes));
            }
        }
        ApiKeyAction::Revoke { username, id } => {
            let user = find_user(&db, &username).await?;
            let id = uuid::Uuid::parse_str(&id).map_err(|_| anyhow::anyhow!("`{id}` is not a key id"))?;
            account_ops::revoke_api_key(&db, &actor, user.id, id).await?;
            println!("API key {id} revoked");
        }
    }
    db.close().await;
    Ok(ExitCode::SUCCESS)
}
