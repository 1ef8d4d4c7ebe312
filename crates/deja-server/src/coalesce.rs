//! Request coalescing: concurrent identical misses (same exact key) make one upstream
//! call. The first becomes the leader; the others wait until the leader is done (its
//! answer stored, or it failed or was cancelled) and then look up again, which is an exact
//! hit when the leader stored its answer.

use std::collections::HashMap;
use std::sync::Arc;

use deja_core::ExactKey;
use parking_lot::Mutex;
use tokio::sync::watch;

#[derive(Clone, Default)]
pub struct Inflight {
    map: Arc<Mutex<HashMap<ExactKey, watch::Receiver<()>>>>,
}

/// Held by the request that calls the upstream; dropping it (after storing, on failure,
/// or when the client goes away) wakes every waiter.
pub struct LeaderGuard {
    key: ExactKey,
    map: Arc<Mutex<HashMap<ExactKey, watch::Receiver<()>>>>,
    // Dropped after the map entry is removed (fields drop after `Drop::drop`), which
    // closes the channel and wakes the waiters.
    _done: watch::Sender<()>,
}

impl Drop for LeaderGuard {
    fn drop(&mut self) {
        self.map.lock().remove(&self.key);
    }
}

impl Inflight {
    /// Waits while another request is fetching this key. Returns whether it waited.
    pub async fn wait(&self, key: &ExactKey) -> bool {
        let rx = self.map.lock().get(key).cloned();
        match rx {
            Some(mut rx) => {
                // Err means the leader is gone, which is what we wait for.
                let _ = rx.changed().await;
                true
            }
            None => false,
        }
    }

    /// Becomes the leader for `key`, unless another request already is.
    pub fn lead(&self, key: ExactKey) -> Option<LeaderGuard> {
        let mut map = self.map.lock();
        if map.contains_key(&key) {
            return None;
        }
        let (tx, rx) = watch::channel(());
        map.insert(key, rx);
        Some(LeaderGuard {
            key,
            map: Arc::clone(&self.map),
            _done: tx,
        })
    }

    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_leader_and_waiters_wake_when_it_drops() {
        let inflight = Inflight::default();
        let key = ExactKey([7; 16]);
        let guard = inflight.lead(key).unwrap();
        assert!(inflight.lead(key).is_none());
        let waiter = {
            let inflight = inflight.clone();
            tokio::spawn(async move { inflight.wait(&key).await })
        };
        tokio::task::yield_now().await;
        drop(guard);
        assert!(waiter.await.unwrap());
        assert!(inflight.is_empty());
        assert!(inflight.lead(key).is_some());
    }

    #[tokio::test]
    async fn no_leader_means_no_wait() {
        let inflight = Inflight::default();
        assert!(!inflight.wait(&ExactKey([1; 16])).await);
    }
}
