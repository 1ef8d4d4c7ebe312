//! What the embedded store does after an I/O error.
//!
//! After one I/O error (a full disk, say) redb refuses every later transaction ("Previous
//! I/O error occurred") until the database is opened again, which repairs the file. So an
//! I/O error marks the database poisoned and the store degraded ([`deja_core::EntryStore::health`]).
//! The next operation re-opens the file (a failed attempt is retried after
//! [`REOPEN_RETRY`]), so reads go on while the disk stays full. While degraded, writes are
//! paused: one is attempted after [`WRITE_RETRY_MIN`], then after twice as long, up to
//! [`WRITE_RETRY_MAX`], and the others fail at once without touching the file, since each
//! failed attempt poisons the database again and the repair reads the whole file. `health`
//! makes such an attempt itself (a small write), so the store recovers without traffic too.
//! The store is degraded until a write that changes data succeeds: an empty commit does not
//! count, since it can succeed on a full disk.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use deja_core::{StoreError, StoreHealth};
use parking_lot::{MappedRwLockReadGuard, RwLockReadGuard};
use redb::{Database, ReadableTable};

use super::{backend, open_database, RedbStore, BACKEND, META, PROBES};

/// How long after a failed attempt to re-open the file it is tried again.
pub(super) const REOPEN_RETRY: Duration = Duration::from_secs(1);
/// How long after an I/O error a write is attempted again (then twice as long each time,
/// up to [`WRITE_RETRY_MAX`], while attempts fail).
pub(super) const WRITE_RETRY_MIN: Duration = Duration::from_secs(1);
/// The longest pause between two write attempts while the store is degraded.
pub(super) const WRITE_RETRY_MAX: Duration = Duration::from_secs(10);

/// What the store knows about its writes (see the module docs).
#[derive(Debug)]
pub(super) struct WriteHealth {
    /// The last I/O error, while no write has succeeded since.
    pub(super) last_error: Option<String>,
    /// While degraded: when a write may be attempted next, and the pause after that.
    pub(super) next_write: Instant,
    pub(super) write_retry: Duration,
    /// When the file may be re-opened next (after a failed attempt).
    pub(super) next_reopen: Instant,
}

/// Whether `e` is an I/O error (or redb's refusal after one), which poisons the database.
pub(super) fn is_io_error(e: &StoreError) -> bool {
    match e {
        StoreError::Backend { source, .. } => matches!(
            source.downcast_ref::<redb::Error>(),
            Some(redb::Error::Io(_) | redb::Error::PreviousIo)
        ),
        _ => false,
    }
}

impl RedbStore {
    /// The open database, re-opened first if an I/O error poisoned it. Callers hold the
    /// guard for the whole operation and call this once per operation (a second read lock
    /// could wait behind a re-opening writer).
    pub(super) fn db(&self) -> Result<MappedRwLockReadGuard<'_, Database>, StoreError> {
        if self.poisoned.load(Ordering::Acquire) {
            self.reopen();
        }
        RwLockReadGuard::try_map(self.db.read(), Option::as_ref).map_err(|_| StoreError::Backend {
            backend: BACKEND,
            source: format!(
                "{} is closed after an I/O error; re-opening it is retried",
                self.path.display()
            )
            .into(),
        })
    }

    /// Closes the poisoned database and opens the file again (redb repairs it), unless
    /// another operation is doing so or an attempt failed less than [`REOPEN_RETRY`] ago.
    fn reopen(&self) {
        if self.reopening.swap(true, Ordering::AcqRel) {
            return;
        }
        let due = Instant::now() >= self.health.lock().next_reopen;
        if due && self.poisoned.load(Ordering::Acquire) {
            // Waits for the operations still in the old database, then closes it, which
            // releases the file's lock.
            let old = self.db.write().take();
            drop(old);
            match open_database(&self.path, self.cache_bytes) {
                Ok(db) => {
                    self.hot.clear();
                    *self.db.write() = Some(db);
                    self.poisoned.store(false, Ordering::Release);
                    tracing::info!(path = %self.path.display(), "store re-opened after an I/O error");
                }
                Err(e) => {
                    self.health.lock().next_reopen = Instant::now() + REOPEN_RETRY;
                    tracing::warn!(error = %deja_core::ErrorChain(&e), path = %self.path.display(), "re-opening the store failed; retrying later");
                }
            }
        }
        self.reopening.store(false, Ordering::Release);
    }

    /// Notes an operation's failure: an I/O error poisons the database and degrades the
    /// store.
    pub(super) fn observe<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(e) = &result {
            // A write that failed may have failed after its commit: its changes are not
            // known, so no hot copy is trusted.
            self.hot.clear();
            if is_io_error(e) {
                let was_ok = {
                    let mut h = self.health.lock();
                    let was_ok = h.last_error.is_none();
                    if was_ok {
                        h.next_write = Instant::now() + h.write_retry;
                        h.write_retry = (h.write_retry * 2).min(WRITE_RETRY_MAX);
                    }
                    h.last_error = Some(deja_core::ErrorChain(e).to_string());
                    was_ok
                };
                self.poisoned.store(true, Ordering::Release);
                if was_ok {
                    tracing::warn!(error = %deja_core::ErrorChain(e), path = %self.path.display(), "store I/O error: degraded until a write succeeds again");
                }
            }
        }
        result
    }

    /// Whether a write may touch the file now: always while the store is not degraded;
    /// while it is, one attempt per pause (see the module docs), the others fail at once.
    pub(super) fn admit_write(&self) -> Result<(), StoreError> {
        let mut h = self.health.lock();
        let Some(last_error) = &h.last_error else {
            return Ok(());
        };
        let now = Instant::now();
        if now < h.next_write {
            return Err(StoreError::Backend {
                backend: BACKEND,
                source: format!(
                    "writes to {} are paused after an I/O error ({last_error}); the next attempt is in {} ms",
                    self.path.display(),
                    h.next_write.saturating_duration_since(now).as_millis()
                )
                .into(),
            });
        }
        h.next_write = now + h.write_retry;
        h.write_retry = (h.write_retry * 2).min(WRITE_RETRY_MAX);
        Ok(())
    }

    /// Notes a committed write that changed data: the store can write.
    pub(super) fn wrote(&self) {
        let mut h = self.health.lock();
        h.write_retry = WRITE_RETRY_MIN;
        if h.last_error.take().is_some() {
            tracing::info!(path = %self.path.display(), "store writes again");
        }
    }

    /// Writes a small row (the number of probes so far), to learn whether writes work.
    fn probe_sync(&self) -> Result<(), StoreError> {
        let db = self.db()?;
        let txn = self.begin_write(&db)?;
        {
            let mut meta = txn.open_table(META).map_err(backend)?;
            let n = meta.get(PROBES).map_err(backend)?.map_or(0, |g| g.value());
            meta.insert(PROBES, n.wrapping_add(1)).map_err(backend)?;
        }
        txn.commit().map_err(backend)?;
        self.wrote();
        Ok(())
    }

    /// Whether writes work, trying one (when a write attempt is due) while they did not.
    pub(super) fn health_sync(&self) -> StoreHealth {
        if self.health.lock().last_error.is_some() {
            // A failure is recorded like any other; a paused write changes nothing.
            let _ = self.observe(self.probe_sync());
        }
        match &self.health.lock().last_error {
            None => StoreHealth::Ok,
            Some(e) => StoreHealth::Degraded {
                last_error: e.clone(),
            },
        }
    }
}
