//! Which durable deliveries are already in the history, for the ordered
//! worker's exactly-once check.
//!
//! SQLite calls block (an fsync can take milliseconds), so they run on
//! tokio's blocking pool, never on a runtime worker where they would stall
//! unrelated requests. The synchronous calls assert this in debug builds.

use std::cell::Cell;
use std::path::PathBuf;

use ulid::Ulid;

use crate::store::{Store, StoreError};

thread_local! {
    /// Set while a closure given to [`blocking`] runs on this thread.
    static IN_BLOCKING: Cell<bool> = const { Cell::new(false) };
}

/// True unless this thread is a tokio runtime worker (or blocking-pool code
/// not started through [`blocking`]).
pub fn off_runtime() -> bool {
    IN_BLOCKING.get() || tokio::runtime::Handle::try_current().is_err()
}

/// Runs `f` on the blocking pool.
async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R, tokio::task::JoinError> {
    tokio::task::spawn_blocking(move || {
        IN_BLOCKING.set(true);
        let result = f();
        IN_BLOCKING.set(false);
        result
    })
    .await
}

fn open_sync(db: &std::path::Path) -> Result<Store, StoreError> {
    debug_assert!(off_runtime(), "Store::open on a runtime worker");
    Store::open(db)
}

fn contains_sync(store: &Store, id: &Ulid) -> bool {
    debug_assert!(off_runtime(), "Store::contains on a runtime worker");
    // An unreadable row counts as new: delivering twice beats losing it.
    store.contains(id).unwrap_or(false)
}

/// The history, opened for lookups by id.
pub struct SeenIds {
    /// `None` once a lookup task failed; every id then counts as new.
    store: Option<Store>,
}

impl SeenIds {
    /// Opens the history at `db` off the runtime.
    pub async fn open(db: PathBuf) -> Result<Self, String> {
        match blocking(move || open_sync(&db)).await {
            Ok(Ok(store)) => Ok(Self { store: Some(store) }),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// True when an exchange with `id` is already stored.
    pub async fn contains(&mut self, id: Ulid) -> bool {
        let Some(store) = self.store.take() else {
            return false;
        };
        match blocking(move || {
            let found = contains_sync(&store, &id);
            (store, found)
        })
        .await
        {
            Ok((store, found)) => {
                self.store = Some(store);
                found
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn lookups_run_off_the_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("h.sqlite3");
        // On a current-thread runtime any blocking call here would run on
        // the runtime's only thread and trip the debug assertion.
        let mut seen = SeenIds::open(db.clone()).await.unwrap();
        let mut exchange = crate::export::fixtures::text_exchange();
        exchange.id = Ulid::generate();
        assert!(!seen.contains(exchange.id).await);
        Store::open(&db).unwrap().insert(&exchange).unwrap();
        assert!(seen.contains(exchange.id).await);
    }

    #[cfg(debug_assertions)]
    #[tokio::test(flavor = "current_thread")]
    #[should_panic(expected = "runtime worker")]
    async fn a_store_call_on_a_runtime_worker_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let _ = open_sync(&dir.path().join("h.sqlite3"));
    }
}
