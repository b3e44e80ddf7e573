//! argon2id password hashing on a small dedicated thread pool.
//!
//! Each hash needs a 19 MiB block. On tokio's blocking pool (up to 512 threads) a login burst
//! hashed hundreds of passwords at once, and glibc kept each thread's arena afterwards: the
//! process sat at ~1 GiB RSS after the burst. A fixed pool of one thread per core bounds both
//! the CPU given to hashing and the memory (one block per thread, in that thread's arena, reused
//! by the next hash); a bounded queue in front of it turns an overload into a clear 503.

use std::sync::OnceLock;
use std::sync::mpsc::{self, SyncSender, TrySendError};

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::error::ApiError;

/// A PHC string of a password nobody knows, verified when the username does not exist so that
/// a failed login takes the same time either way.
static DUMMY_HASH: OnceLock<String> = OnceLock::new();

/// Hashes waiting for a thread before new ones are refused (per pool thread).
const QUEUE_PER_THREAD: usize = 64;

type Task = Box<dyn FnOnce() + Send>;

/// The hashing threads' queue.
fn pool() -> &'static SyncSender<Task> {
    static POOL: OnceLock<SyncSender<Task>> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
        let (tx, rx) = mpsc::sync_channel::<Task>(threads * QUEUE_PER_THREAD);
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new().name(format!("seidra-argon2-{i}")).spawn(move || {
                loop {
                    // The lock is held only while taking the next task.
                    let task = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(poisoned) => poisoned.into_inner().recv(),
                    };
                    match task {
                        Ok(task) => task(),
                        Err(_) => break,
                    }
                }
            });
            if let Err(err) = spawned {
                tracing::error!(%err, "cannot start a password hashing thread");
            }
        }
        tx
    })
}

/// Runs `work` on the hashing pool and waits for its answer.
async fn on_pool<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task: Task = Box::new(move || {
        let _ = tx.send(work());
    });
    match pool().try_send(task) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            metrics::counter!("seidra_password_hash_rejections_total").increment(1);
            return Err(ApiError::unavailable(
                "password_hashing_busy",
                "too many sign-ins and password changes at once; retry in a few seconds",
            ));
        }
        Err(TrySendError::Disconnected(_)) => return Err(ApiError::internal("the password hashing threads stopped")),
    }
    rx.await.map_err(|_| ApiError::internal("a password hashing thread dropped its task"))
}

/// Hashes a password with argon2id (default parameters: 19 MiB, t=2, p=1).
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    on_pool(move || hash_password_blocking(&password)).await?
}

/// Blocking variant for CLI use.
pub fn hash_password_blocking(password: &str) -> Result<String, ApiError> {
    Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(ApiError::internal)
}

/// Checks a password against a stored hash; `None` hash = unknown user (still does the work).
pub async fn verify_password(password: String, hash: Option<String>) -> Result<bool, ApiError> {
    on_pool(move || {
        let hash = match hash {
            Some(h) => h,
            None => {
                DUMMY_HASH.get_or_init(|| hash_password_blocking("not-a-real-password-000").unwrap_or_default()).clone()
            }
        };
        Argon2::default().verify_password(password.as_bytes(), hash.as_str()).is_ok()
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_concurrent_hashes_all_complete_on_the_pool() {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..12 {
            tasks.spawn(async move {
                let password = format!("correct horse {i}");
                let hash = hash_password(password.clone()).await.unwrap();
                assert!(verify_password(password, Some(hash.clone())).await.unwrap());
                assert!(!verify_password("wrong".into(), Some(hash)).await.unwrap());
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        assert!(!verify_password("x".into(), None).await.unwrap(), "unknown users still fail");
    }
}
