//! `users`: registers (or signs in) `prefix0 … prefix{N-1}` concurrently and writes one line
//! `username token user_id` per account. Registration hashes with argon2id (tens of ms each),
//! so this runs once per server, before any measurement.

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use tokio::sync::Semaphore;

use crate::util::{Flags, Result, emit, http_client, note, post_json, round3};

pub async fn run(flags: &Flags) -> Result<()> {
    let base = flags.str("base")?;
    let count: usize = flags.num("count", 1)?;
    let prefix = flags.str("prefix")?;
    let password = flags.str("password")?;
    let out = flags.str("out")?;
    let concurrency: usize = flags.num("concurrency", 16)?;
    let client = http_client(concurrency)?;
    let limit = Arc::new(Semaphore::new(concurrency));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let (client, base, password, limit) = (client.clone(), base.clone(), password.clone(), limit.clone());
        let username = format!("{prefix}{i}");
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await?;
            let body = json!({ "username": username, "password": password });
            let (status, value) = post_json(&client, &format!("{base}/api/auth/register"), "", &body).await?;
            let value = match status {
                201 => value,
                409 => {
                    let (status, value) = post_json(&client, &format!("{base}/api/auth/login"), "", &body).await?;
                    if status != 200 {
                        return Err(format!("login {username}: HTTP {status}: {value}").into());
                    }
                    value
                }
                _ => return Err(format!("register {username}: HTTP {status}: {value}").into()),
            };
            let token = value["access_token"].as_str().unwrap_or_default().to_owned();
            let id = value["user"]["id"].as_str().unwrap_or_default().to_owned();
            Ok::<(usize, String, String, String), crate::util::BoxError>((i, username, token, id))
        });
    }
    let mut rows: Vec<(usize, String, String, String)> = Vec::with_capacity(count);
    while let Some(done) = tasks.join_next().await {
        rows.push(done??);
        if rows.len().is_multiple_of(250) {
            note(&format!("{} / {count} accounts ready", rows.len()));
        }
    }
    rows.sort_by_key(|r| r.0);
    let text: String = rows.iter().map(|(_, u, t, id)| format!("{u} {t} {id}\n")).collect();
    std::fs::write(&out, text)?;
    let secs = started.elapsed().as_secs_f64();
    emit(&json!({ "accounts": count, "seconds": round3(secs), "per_second": round3(count as f64 / secs) }));
    Ok(())
}

/// Reads a `users` file: (username, token, user_id) per line.
pub fn read_tokens(path: &str) -> Result<Vec<(String, String, String)>> {
    let text = std::fs::read_to_string(path)?;
    let rows: Vec<(String, String, String)> = text
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_owned(), it.next()?.to_owned(), it.next().unwrap_or_default().to_owned()))
        })
        .collect();
    if rows.is_empty() {
        return Err(format!("{path}: no accounts").into());
    }
    Ok(rows)
}
