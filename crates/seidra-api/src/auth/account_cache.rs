//! A short-lived copy of the account rows that authenticated requests need.
//!
//! Every authenticated request must know its account (role, disabled flag). Reading it from
//! the database each time was a round trip per request — a large share of a cheap list
//! request. Rows are kept for [`ACCOUNT_CACHE_TTL`]; this process forgets a row at once when it
//! changes the account (password, role, disabled), so another replica, or the CLI, can act on a
//! stale copy for at most that long (docs/SECURITY.md).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use seidra_store::accounts::{self, User};
use seidra_store::{Db, StoreResult};
use uuid::Uuid;

/// How long a cached account row is trusted.
pub const ACCOUNT_CACHE_TTL: Duration = Duration::from_secs(1);

/// Rows kept at most; a full cache drops its expired rows, or everything, before adding one.
const MAX_ENTRIES: usize = 10_000;

/// See the module docs. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct AccountCache {
    rows: Arc<RwLock<HashMap<Uuid, (Instant, User)>>>,
}

impl std::fmt::Debug for AccountCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountCache").finish_non_exhaustive()
    }
}

impl AccountCache {
    /// The account, from memory when read less than [`ACCOUNT_CACHE_TTL`] ago.
    pub async fn get(&self, db: &Db, id: Uuid) -> StoreResult<User> {
        if let Some((at, user)) = self.rows.read().unwrap_or_else(PoisonError::into_inner).get(&id)
            && at.elapsed() < ACCOUNT_CACHE_TTL
        {
            return Ok(user.clone());
        }
        let read_at = Instant::now();
        let user = accounts::get_user(db, id).await?;
        let mut rows = self.rows.write().unwrap_or_else(PoisonError::into_inner);
        if rows.len() >= MAX_ENTRIES {
            rows.retain(|_, (at, _)| at.elapsed() < ACCOUNT_CACHE_TTL);
            if rows.len() >= MAX_ENTRIES {
                rows.clear();
            }
        }
        // The instant the read started: a change committed during the read is not trusted longer.
        rows.insert(id, (read_at, user.clone()));
        Ok(user)
    }

    /// Drops the cached row of an account this process just changed.
    pub fn forget(&self, id: Uuid) {
        self.rows.write().unwrap_or_else(PoisonError::into_inner).remove(&id);
    }
}
