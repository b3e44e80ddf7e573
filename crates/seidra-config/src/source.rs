//! Loading settings from their layers and explaining what is wrong with them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};

use crate::{Environment, Settings};

/// Environment variables that belong to SEIDRA but are not settings.
const NON_SETTING_VARS: &[&str] = &["SEIDRA_CONFIG"];
/// Prefixes of variables used by tooling (tests, benchmarks, the migration CronJob).
const IGNORED_PREFIXES: &[&str] = &["SEIDRA_TEST_", "SEIDRA_BENCH_", "SEIDRA_MIGRATE_"];
/// Minimum length of a production secret key, bytes.
pub const MIN_SECRET_KEY_BYTES: usize = 32;

/// One or more reasons the configuration cannot be used; each names where the value came from.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    /// Each problem, as a full sentence naming the variable or file.
    pub problems: Vec<String>,
}

/// Settings plus what the loader noticed along the way.
#[derive(Debug, Clone)]
pub struct LoadedSettings {
    /// The effective settings.
    pub settings: Settings,
    /// The TOML file that was read, if any.
    pub file: Option<PathBuf>,
    /// `SEIDRA_*` variables that match no setting (likely typos).
    pub unknown_env: Vec<String>,
}

/// Loads settings from the file named by `file` or `SEIDRA_CONFIG`, then the environment.
pub fn load(file: Option<&Path>) -> Result<LoadedSettings, ConfigError> {
    let from_env = std::env::var_os("SEIDRA_CONFIG").map(PathBuf::from);
    let file = file.map(Path::to_path_buf).or(from_env);
    load_from(file.as_deref(), std::env::vars())
}

/// Loads settings from an optional file and the given environment (used by `load` and tests).
pub fn load_from(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<LoadedSettings, ConfigError> {
    let known = known_env_names();
    let mut unknown_env = Vec::new();
    let mut present = BTreeSet::new();
    for (name, _) in env {
        let Some(rest) = name.strip_prefix("SEIDRA_") else { continue };
        if NON_SETTING_VARS.contains(&name.as_str()) || IGNORED_PREFIXES.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let key = rest.to_ascii_lowercase();
        if known.contains(&key) || is_remote_engine_key(&key) {
            present.insert(key);
        } else {
            unknown_env.push(name);
        }
    }
    unknown_env.sort();

    let mut figment = Figment::new();
    if let Some(path) = file {
        if !path.is_file() {
            return Err(ConfigError {
                problems: vec![format!("configuration file {} does not exist or is not a file", path.display())],
            });
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    let env_provider = Env::prefixed("SEIDRA_")
        .filter(move |key| present.contains(key.as_str().to_ascii_lowercase().as_str()))
        .split("__");
    figment = figment.merge(env_provider);

    let settings: Settings =
        figment.extract().map_err(|err| ConfigError { problems: err.into_iter().map(|e| describe(&e)).collect() })?;
    let problems = validate(&settings);
    if !problems.is_empty() {
        return Err(ConfigError { problems });
    }
    Ok(LoadedSettings { settings, file: file.map(Path::to_path_buf), unknown_env })
}

/// Names where a bad value came from: `SEIDRA_X__Y: …` for the environment, `file: key `x.y`: …`.
fn describe(err: &figment::Error) -> String {
    let key = err.path.join(".");
    match err.metadata.as_ref().and_then(|m| m.source.as_ref()) {
        Some(figment::Source::File(path)) if key.is_empty() => format!("{}: {}", path.display(), err.kind),
        Some(figment::Source::File(path)) => format!("{}: key `{key}`: {}", path.display(), err.kind),
        _ if err.metadata.as_ref().is_some_and(|m| m.name.contains("environment")) => {
            format!("SEIDRA_{}: {}", err.path.join("__").to_ascii_uppercase(), err.kind)
        }
        _ => err.to_string(),
    }
}

/// Checks rules that span fields or that serde cannot express.
fn validate(s: &Settings) -> Vec<String> {
    let mut problems = Vec::new();
    if s.env == Environment::Production {
        match &s.secret_key {
            None => problems.push(
                "SEIDRA_SECRET_KEY is required when SEIDRA_ENV=production (at least 32 bytes, e.g. `openssl rand -hex 32`)"
                    .to_owned(),
            ),
            Some(key) if key.expose().len() < MIN_SECRET_KEY_BYTES => problems.push(format!(
                "SEIDRA_SECRET_KEY is {} bytes long; production requires at least {MIN_SECRET_KEY_BYTES}",
                key.expose().len()
            )),
            Some(_) => {}
        }
    } else if let Some(key) = &s.secret_key
        && key.expose().len() < MIN_SECRET_KEY_BYTES
    {
        problems.push(format!(
            "SEIDRA_SECRET_KEY is {} bytes long; it must be at least {MIN_SECRET_KEY_BYTES} (or unset to generate one)",
            key.expose().len()
        ));
    }
    let url = s.effective_database_url();
    if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        problems.push(format!(
            "SEIDRA_DATABASE_URL must start with sqlite:, postgres:// or postgresql:// (got scheme `{}`)",
            url.split(':').next().unwrap_or_default()
        ));
    }
    if let Some(redis) = &s.redis_url
        && !redis.expose().is_empty()
        && !(redis.expose().starts_with("redis://") || redis.expose().starts_with("rediss://"))
    {
        problems.push("SEIDRA_REDIS_URL must start with redis:// or rediss://".to_owned());
    }
    for proxy in &s.trusted_proxies {
        if proxy.parse::<ipnet::IpNet>().is_err() && proxy.parse::<std::net::IpAddr>().is_err() {
            problems.push(format!("SEIDRA_TRUSTED_PROXIES: `{proxy}` is not an IP address or CIDR range"));
        }
    }
    for origin in &s.cors_origins {
        let valid = (origin.starts_with("http://") || origin.starts_with("https://"))
            && !origin.ends_with('/')
            && origin.split("://").nth(1).is_some_and(|host| !host.is_empty() && !host.contains('/'));
        if !valid && origin != "*" {
            problems.push(format!(
                "SEIDRA_CORS_ORIGINS: `{origin}` is not an origin (expected scheme://host[:port], no path)"
            ));
        }
    }
    if s.cors_origins.iter().any(|o| o == "*") && s.env == Environment::Production {
        problems.push("SEIDRA_CORS_ORIGINS: `*` is not allowed in production".to_owned());
    }
    if s.admin_username.trim().is_empty() {
        problems.push("SEIDRA_ADMIN_USERNAME must not be empty".to_owned());
    }
    if let Some(pw) = &s.admin_password
        && pw.expose().chars().count() < 12
    {
        problems.push("SEIDRA_ADMIN_PASSWORD must be at least 12 characters".to_owned());
    }
    if s.access_token_ttl_secs < 30 {
        problems.push("SEIDRA_ACCESS_TOKEN_TTL_SECS must be at least 30".to_owned());
    }
    if s.refresh_token_ttl_secs <= s.access_token_ttl_secs {
        problems.push("SEIDRA_REFRESH_TOKEN_TTL_SECS must be longer than SEIDRA_ACCESS_TOKEN_TTL_SECS".to_owned());
    }
    if s.database.max_connections < 2 {
        problems.push("SEIDRA_DATABASE__MAX_CONNECTIONS must be at least 2".to_owned());
    }
    for (name, policy) in [("AUTH", s.rate_limit.auth), ("API", s.rate_limit.api)] {
        if policy.requests == 0 || policy.window_secs == 0 {
            problems.push(format!("SEIDRA_RATE_LIMIT__{name}__REQUESTS and __WINDOW_SECS must be greater than 0"));
        }
    }
    if s.queue.lease_secs < 3 {
        problems.push("SEIDRA_QUEUE__LEASE_SECS must be at least 3".to_owned());
    }
    if s.queue.max_attempts == 0 {
        problems.push("SEIDRA_QUEUE__MAX_ATTEMPTS must be at least 1".to_owned());
    }
    if s.queue.max_queued_per_user == 0 || s.queue.max_running_per_user == 0 {
        problems.push("SEIDRA_QUEUE__MAX_QUEUED_PER_USER and __MAX_RUNNING_PER_USER must be at least 1".to_owned());
    }
    if !s.engines.procedural && !s.engines.noop && !s.engines.candle.enabled && s.engines.remote.is_empty() {
        problems.push(
            "no engine enabled: set SEIDRA_ENGINES__PROCEDURAL=true (or __NOOP, __CANDLE__ENABLED, or configure [[engines.remote]])"
                .to_owned(),
        );
    }
    validate_remote_engines(s, &mut problems);
    for entry in &s.webhooks.allow_private {
        let host_like = entry.contains(char::is_alphabetic)
            && entry.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if entry.parse::<ipnet::IpNet>().is_err() && entry.parse::<std::net::IpAddr>().is_err() && !host_like {
            problems.push(format!(
                "SEIDRA_WEBHOOKS__ALLOW_PRIVATE: `{entry}` is not an IP address, CIDR range or host name"
            ));
        }
    }
    if s.webhooks.max_attempts == 0 || s.webhooks.timeout_secs == 0 {
        problems.push("SEIDRA_WEBHOOKS__MAX_ATTEMPTS and __TIMEOUT_SECS must be at least 1".to_owned());
    }
    if s.worker.concurrency == 0 {
        problems.push("SEIDRA_WORKER__CONCURRENCY must be at least 1".to_owned());
    }
    validate_storage(s, &mut problems);
    problems
}

/// The S3 section matters only with `backend = "s3"`; then every required field must be set.
fn validate_storage(s: &Settings, problems: &mut Vec<String>) {
    if s.storage.orphan_grace_minutes < 10 {
        problems.push(
            "SEIDRA_STORAGE__ORPHAN_GRACE_MINUTES must be at least 10 (objects being written must not be swept)"
                .to_owned(),
        );
    }
    if s.storage.backend != crate::StorageBackend::S3 {
        return;
    }
    let s3 = &s.s3;
    let url_ok = |u: &str| {
        (u.starts_with("http://") || u.starts_with("https://")) && u.split("://").nth(1).is_some_and(|h| !h.is_empty())
    };
    if s3.endpoint.trim().is_empty() {
        problems.push("SEIDRA_S3__ENDPOINT is required when SEIDRA_STORAGE__BACKEND=s3".to_owned());
    } else if !url_ok(s3.endpoint.trim()) {
        problems.push("SEIDRA_S3__ENDPOINT must be an http:// or https:// URL".to_owned());
    }
    if let Some(public) = s3.public_endpoint.as_deref().filter(|p| !p.trim().is_empty())
        && !url_ok(public.trim())
    {
        problems.push("SEIDRA_S3__PUBLIC_ENDPOINT must be an http:// or https:// URL".to_owned());
    }
    if s3.bucket.trim().is_empty() {
        problems.push("SEIDRA_S3__BUCKET is required when SEIDRA_STORAGE__BACKEND=s3".to_owned());
    }
    if s3.region.trim().is_empty() {
        problems.push("SEIDRA_S3__REGION must not be empty (use us-east-1 for most self-hosted servers)".to_owned());
    }
    if s3.access_key_id.trim().is_empty() {
        problems.push("SEIDRA_S3__ACCESS_KEY_ID is required when SEIDRA_STORAGE__BACKEND=s3".to_owned());
    }
    if s3.secret_access_key.as_ref().is_none_or(|k| k.expose().is_empty()) {
        problems.push("SEIDRA_S3__SECRET_ACCESS_KEY is required when SEIDRA_STORAGE__BACKEND=s3".to_owned());
    }
    if s3.timeout_secs == 0 {
        problems.push("SEIDRA_S3__TIMEOUT_SECS must be at least 1".to_owned());
    }
}

/// Fields of one `[[engines.remote]]` entry, as env suffixes.
const REMOTE_ENGINE_FIELDS: &[&str] =
    &["name", "kind", "url", "api_key", "models", "max_concurrency", "timeout_secs", "workflow"];

/// `engines__remote__<index>__<field>`: the env form of a remote engine list entry.
fn is_remote_engine_key(key: &str) -> bool {
    let Some(rest) = key.strip_prefix("engines__remote__") else { return false };
    let Some((index, field)) = rest.split_once("__") else { return false };
    !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()) && REMOTE_ENGINE_FIELDS.contains(&field)
}

/// Each remote engine: a unique name, an http(s) URL, at least one model, sane limits.
fn validate_remote_engines(s: &Settings, problems: &mut Vec<String>) {
    let e = &s.engines;
    if !e.remote.is_empty() {
        if e.breaker_failures == 0 {
            problems.push("SEIDRA_ENGINES__BREAKER_FAILURES must be at least 1".to_owned());
        }
        if e.health_interval_secs == 0 {
            problems.push("SEIDRA_ENGINES__HEALTH_INTERVAL_SECS must be at least 1".to_owned());
        }
    }
    let mut seen = BTreeSet::new();
    for (i, r) in e.remote.iter().enumerate() {
        let key = |field: &str| {
            format!("SEIDRA_ENGINES__REMOTE__{i}__{} (engines.remote[{i}].{field})", field.to_ascii_uppercase())
        };
        let name_ok = !r.name.is_empty()
            && r.name.len() <= 64
            && r.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !name_ok {
            problems.push(format!("{}: `{}` must be 1–64 characters of a-z, 0-9, - and _", key("name"), r.name));
        } else if ["procedural", "noop", "internal"].contains(&r.name.as_str()) || !seen.insert(r.name.clone()) {
            problems.push(format!("{}: the engine name `{}` is already used", key("name"), r.name));
        }
        let url = r.url.trim();
        let url_ok = (url.starts_with("http://") || url.starts_with("https://"))
            && url.split("://").nth(1).is_some_and(|h| !h.is_empty() && !h.starts_with('/'));
        if !url_ok {
            problems.push(format!("{}: `{url}` is not an http:// or https:// URL", key("url")));
        }
        if r.models.is_empty() || r.models.iter().any(|m| m.trim().is_empty()) {
            problems.push(format!("{}: list at least one model name (the first is the default)", key("models")));
        }
        if r.max_concurrency == 0 {
            problems.push(format!("{} must be at least 1", key("max_concurrency")));
        }
        if r.timeout_secs == 0 {
            problems.push(format!("{} must be at least 1", key("timeout_secs")));
        }
        if let Some(path) = &r.workflow {
            if r.kind != crate::RemoteEngineKind::Comfyui {
                problems.push(format!("{}: only ComfyUI engines take a workflow", key("workflow")));
            }
            match std::fs::read(path) {
                Err(err) => problems.push(format!("{}: cannot read {}: {err}", key("workflow"), path.display())),
                Ok(bytes) => {
                    if let Err(err) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&bytes) {
                        problems.push(format!(
                            "{}: {} is not an API-format workflow (a JSON object of nodes): {err}",
                            key("workflow"),
                            path.display()
                        ));
                    }
                }
            }
        }
    }
}

/// Every setting key as its lower-case env suffix (`bind`, `rate_limit__auth__requests`…).
fn known_env_names() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Ok(value) = serde_json::to_value(Settings::default()) {
        collect_keys(&value, "", &mut out);
    }
    out
}

fn collect_keys(value: &serde_json::Value, prefix: &str, out: &mut BTreeSet<String>) {
    if let serde_json::Value::Object(map) = value {
        for (key, child) in map {
            let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}__{key}") };
            out.insert(path.clone());
            collect_keys(child, &path, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn defaults_and_unknown_vars() {
        let loaded = load_from(None, env(&[("SEIDRA_BINDD", "x"), ("SEIDRA_TEST_DATABASE_URL", "y")]));
        let loaded = loaded.map_err(|e| e.to_string());
        assert!(loaded.is_ok(), "{loaded:?}");
        if let Ok(loaded) = loaded {
            assert_eq!(loaded.unknown_env, vec!["SEIDRA_BINDD".to_owned()]);
            assert_eq!(loaded.settings.bind.to_string(), "127.0.0.1:8080");
            assert!(loaded.settings.effective_database_url().starts_with("sqlite://"));
        }
    }

    #[test]
    fn file_layer_and_typos() {
        let dir = tempfile::tempdir().map_err(|e| e.to_string());
        let Ok(dir) = dir else { panic!("tempdir") };
        let path = dir.path().join("seidra.toml");
        std::fs::write(&path, "bind = \"0.0.0.0:9000\"\n[rate_limit.auth]\nrequests = 3\n").ok();
        let loaded = load_from(Some(&path), Vec::new()).map_err(|e| e.to_string());
        assert_eq!(loaded.as_ref().map(|l| l.settings.bind.port()), Ok(9000));
        assert_eq!(loaded.map(|l| l.settings.rate_limit.auth.requests), Ok(3));

        std::fs::write(&path, "bindd = \"0.0.0.0:9000\"\n").ok();
        let err = load_from(Some(&path), Vec::new()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("bindd"), "{err}");
        assert!(err.contains("seidra.toml"), "{err}");
    }

    #[test]
    fn s3_settings_name_their_variables() {
        let mut settings = Settings::default();
        settings.storage.backend = crate::StorageBackend::S3;
        let problems = validate(&settings).join("\n");
        for var in
            ["SEIDRA_S3__ENDPOINT", "SEIDRA_S3__BUCKET", "SEIDRA_S3__ACCESS_KEY_ID", "SEIDRA_S3__SECRET_ACCESS_KEY"]
        {
            assert!(problems.contains(var), "{var} missing from: {problems}");
        }
        settings.s3.endpoint = "http://seaweedfs:8333".into();
        settings.s3.bucket = "media".into();
        settings.s3.access_key_id = "K".into();
        settings.s3.secret_access_key = Some(crate::Secret::new("S".to_owned()));
        assert!(validate(&settings).is_empty(), "{:?}", validate(&settings));
        settings.s3.endpoint = "seaweedfs:8333".into();
        assert!(validate(&settings).join("").contains("SEIDRA_S3__ENDPOINT must be"));
        // The S3 section is ignored by the local backend, and every S3 key is a known variable.
        settings.storage.backend = crate::StorageBackend::Local;
        assert!(validate(&settings).is_empty());
        let known = known_env_names();
        for key in ["storage__backend", "s3__bucket", "s3__secret_access_key", "s3__public_endpoint"] {
            assert!(known.contains(key), "{key}");
        }
    }

    /// Runs `f` with the variables set in the real environment (figment's jail restores it).
    #[allow(clippy::result_large_err, reason = "figment's Jail API returns figment::Error")]
    fn with_env<T>(vars: &[(String, String)], f: impl FnOnce() -> T) -> T {
        let mut out = None;
        figment::Jail::expect_with(|jail| {
            for (k, v) in vars {
                jail.set_env(k, v);
            }
            out = Some(f());
            Ok(())
        });
        out.unwrap_or_else(|| panic!("jail"))
    }

    #[test]
    fn remote_engines_from_toml_and_env() {
        let dir = tempfile::tempdir().map_err(|e| e.to_string());
        let Ok(dir) = dir else { panic!("tempdir") };
        let path = dir.path().join("seidra.toml");
        std::fs::write(
            &path,
            "[[engines.remote]]\nname = \"gpu-1\"\nkind = \"comfyui\"\nurl = \"http://gpu-1:8188\"\nmodels = [\"sdxl\", \"flux\"]\napi_key = \"sk-toml\"\n",
        )
        .ok();
        let loaded = load_from(Some(&path), Vec::new()).map_err(|e| e.to_string());
        let Ok(loaded) = loaded else { panic!("{loaded:?}") };
        let remote = &loaded.settings.engines.remote;
        assert_eq!(remote.len(), 1);
        assert_eq!((remote[0].name.as_str(), remote[0].kind), ("gpu-1", crate::RemoteEngineKind::Comfyui));
        assert_eq!(remote[0].models, vec!["sdxl".to_owned(), "flux".to_owned()]);
        assert_eq!((remote[0].max_concurrency, remote[0].timeout_secs), (2, 600));
        // The key never prints.
        let shown = serde_json::to_string(&loaded.settings).unwrap_or_default();
        assert!(!shown.contains("sk-toml") && shown.contains("********"), "{shown}");

        let vars = env(&[
            ("SEIDRA_ENGINES__REMOTE__1__NAME", "openai"),
            ("SEIDRA_ENGINES__REMOTE__1__KIND", "openai"),
            ("SEIDRA_ENGINES__REMOTE__1__URL", "https://api.example"),
            ("SEIDRA_ENGINES__REMOTE__1__MODELS", "gpt-image-1"),
            ("SEIDRA_ENGINES__REMOTE__0__NAME", "forge"),
            ("SEIDRA_ENGINES__REMOTE__0__KIND", "a1111"),
            ("SEIDRA_ENGINES__REMOTE__0__URL", "http://forge:7860"),
            ("SEIDRA_ENGINES__REMOTE__0__MODELS", "sd15, sdxl"),
            ("SEIDRA_ENGINES__REMOTE__0__MAX_CONCURRENCY", "4"),
        ]);
        let loaded = with_env(&vars, || load_from(None, vars.clone()).map_err(|e| e.to_string()));
        let Ok(loaded) = loaded else { panic!("{loaded:?}") };
        assert!(loaded.unknown_env.is_empty(), "{:?}", loaded.unknown_env);
        let names: Vec<_> =
            loaded.settings.engines.remote.iter().map(|r| (r.name.clone(), r.max_concurrency)).collect();
        assert_eq!(names, vec![("forge".to_owned(), 4), ("openai".to_owned(), 2)]);
        assert_eq!(loaded.settings.engines.remote[0].models, vec!["sd15".to_owned(), "sdxl".to_owned()]);

        // Errors name the key.
        let bad = env(&[
            ("SEIDRA_ENGINES__REMOTE__0__NAME", "Bad Name"),
            ("SEIDRA_ENGINES__REMOTE__0__KIND", "comfyui"),
            ("SEIDRA_ENGINES__REMOTE__0__URL", "gpu:8188"),
            ("SEIDRA_ENGINES__REMOTE__0__MODELS", "sdxl"),
        ]);
        let err = with_env(&bad, || load_from(None, bad.clone()).err().map(|e| e.to_string()).unwrap_or_default());
        assert!(err.contains("SEIDRA_ENGINES__REMOTE__0__NAME"), "{err}");
        assert!(err.contains("SEIDRA_ENGINES__REMOTE__0__URL"), "{err}");
        let bad = env(&[("SEIDRA_ENGINES__REMOTE__0__NAME", "x"), ("SEIDRA_ENGINES__REMOTE__0__KIND", "dalle")]);
        let err = with_env(&bad, || load_from(None, bad.clone()).err().map(|e| e.to_string()).unwrap_or_default());
        assert!(err.contains("SEIDRA_ENGINES__REMOTE: entry 0: unknown variant `dalle`"), "{err}");
    }

    #[test]
    fn production_rules() {
        let settings = Settings { env: Environment::Production, ..Settings::default() };
        let problems = validate(&settings);
        assert!(problems.iter().any(|p| p.contains("SEIDRA_SECRET_KEY is required")), "{problems:?}");
        let settings = Settings {
            trusted_proxies: vec!["10.0.0.0/8".into(), "nope".into()],
            cors_origins: vec!["https://studio.example".into(), "studio.example".into()],
            ..Settings::default()
        };
        let problems = validate(&settings);
        assert_eq!(problems.len(), 2, "{problems:?}");
    }
}
