//! Request coalescing: concurrent identical misses (same exact key) make one upstream
//! call.
//!
//! The first request to miss becomes the leader ([`Inflight::lead`]) and calls the
//! upstream; identical requests arriving meanwhile wait for it ([`Inflight::wait`]). What a
//! waiter does next depends on how the leader ended:
//!
//! - **The upstream answered with an error** (status ≥ 400, streamed request or not): the
//!   leader publishes it ([`LeaderGuard::fail`]) and every waiter returns the same status,
//!   headers (`retry-after` and the like) and body at once, without calling the upstream.
//!   An error is shared with the requests that were waiting for it, never stored.
//! - **Anything else** (the answer was stored, or it was not storable, the stream broke
//!   off, the leader's client went away): the waiters look up again, which is an exact hit
//!   when the answer was stored; on a miss each goes upstream on its own.
//! - **The wait bound passed** (`[cache] coalesce_wait_ms`): the waiter goes upstream on
//!   its own. It is a backstop: the leader's recording of a stream runs at the upstream's
//!   pace, not its client's (see `routes::completion`), so only a slow upstream (or a
//!   stalled client on an answer beyond the recording's buffer) reaches it.
//!
//! A request waits at most once. After its wait it never waits for another leader, so when
//! a leader fails without a shareable error the waiters proceed in parallel (one of them
//! may become the next leader, for requests that arrive later), never one after another.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use deja_core::ExactKey;
use parking_lot::Mutex;
use tokio::sync::watch;

/// An upstream error response, shared by a leader with its waiters.
#[derive(Debug, Clone)]
pub struct SharedError {
    pub status: StatusCode,
    /// The headers the leader returned (the upstream's, `retry-after` included, and
    /// deja's own).
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// What a leader has published so far.
#[derive(Debug, Clone, Default)]
enum Published {
    /// Still fetching (or storing).
    #[default]
    Running,
    /// The upstream answered with an error; waiters return it.
    Failed(Arc<SharedError>),
}

type Map = Arc<Mutex<HashMap<ExactKey, watch::Receiver<Published>>>>;

#[derive(Clone, Default)]
pub struct Inflight {
    map: Map,
}

/// Held by the request that calls the upstream; dropping it (after storing, on failure,
/// or when the client goes away) wakes every waiter.
pub struct LeaderGuard {
    key: ExactKey,
    map: Map,
    // Dropped after the map entry is removed (fields drop after `Drop::drop`), which
    // closes the channel and wakes the waiters.
    done: watch::Sender<Published>,
}

impl LeaderGuard {
    /// Shares an upstream error with every request waiting for this leader (and with
    /// those that start waiting before the guard is dropped).
    pub fn fail(&self, error: SharedError) {
        self.done.send_replace(Published::Failed(Arc::new(error)));
    }
}

impl Drop for LeaderGuard {
    fn drop(&mut self) {
        self.map.lock().remove(&self.key);
    }
}

/// How a wait for a leader ended.
#[derive(Debug)]
pub enum Waited {
    /// Nobody was fetching this key.
    NoLeader,
    /// The leader is done without an error to share: look up again.
    Done,
    /// The leader's upstream call failed with this error response.
    Failed(Arc<SharedError>),
    /// The leader took longer than the bound.
    TimedOut,
}

impl Inflight {
    /// Waits, at most `bound`, while another request is fetching this key.
    pub async fn wait(&self, key: &ExactKey, bound: Duration) -> Waited {
        let rx = self.map.lock().get(key).cloned();
        let Some(mut rx) = rx else {
            return Waited::NoLeader;
        };
        // `wait_for` fails when the leader is gone (the channel closed), which also ends
        // the wait; what it published last is still readable.
        let finished =
            tokio::time::timeout(bound, rx.wait_for(|p| !matches!(p, Published::Running)))
                .await
                .is_ok();
        if !finished {
            return Waited::TimedOut;
        }
        let published = rx.borrow().clone();
        match published {
            Published::Failed(e) => Waited::Failed(e),
            Published::Running => Waited::Done,
        }
    }

    /// Becomes the leader for `key`, unless another request already is.
    pub fn lead(&self, key: ExactKey) -> Option<LeaderGuard> {
        let mut map = self.map.lock();
        if map.contains_key(&key) {
            return None;
        }
        let (tx, rx) = watch::channel(Published::Running);
        map.insert(key, rx);
        Some(LeaderGuard {
            key,
            map: Arc::clone(&self.map),
            done: tx,
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

    const LONG: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn one_leader_and_waiters_wake_when_it_drops() {
        let inflight = Inflight::default();
        let key = ExactKey([7; 16]);
        let guard = inflight.lead(key).unwrap();
        assert!(inflight.lead(key).is_none());
        let waiter = {
            let inflight = inflight.clone();
            tokio::spawn(async move { inflight.wait(&key, LONG).await })
        };
        tokio::task::yield_now().await;
        drop(guard);
        assert!(matches!(waiter.await.unwrap(), Waited::Done));
        assert!(inflight.is_empty());
        assert!(inflight.lead(key).is_some());
    }

    #[tokio::test]
    async fn no_leader_means_no_wait() {
        let inflight = Inflight::default();
        assert!(matches!(
            inflight.wait(&ExactKey([1; 16]), LONG).await,
            Waited::NoLeader
        ));
    }

    #[tokio::test]
    async fn a_failure_reaches_every_waiter_even_late_ones() {
        let inflight = Inflight::default();
        let key = ExactKey([2; 16]);
        let guard = inflight.lead(key).unwrap();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let inflight = inflight.clone();
                tokio::spawn(async move { inflight.wait(&key, LONG).await })
            })
            .collect();
        tokio::task::yield_now().await;
        guard.fail(SharedError {
            status: StatusCode::TOO_MANY_REQUESTS,
            headers: HeaderMap::new(),
            body: Bytes::from_static(b"slow down"),
        });
        // Arrives after the failure was published, before the guard is dropped.
        let late = inflight.wait(&key, LONG).await;
        drop(guard);
        for w in waiters {
            match w.await.unwrap() {
                Waited::Failed(e) => assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS),
                other => panic!("expected the shared error, got {other:?}"),
            }
        }
        assert!(matches!(late, Waited::Failed(_)));
    }

    #[tokio::test]
    async fn a_wait_ends_at_its_bound() {
        let inflight = Inflight::default();
        let key = ExactKey([3; 16]);
        let _guard = inflight.lead(key).unwrap();
        let waited = inflight.wait(&key, Duration::from_millis(20)).await;
        assert!(matches!(waited, Waited::TimedOut));
    }
}
