//! Connections: the accept loop, and what one connection may hold of the server
//! (`[limits]`).
//!
//! - **Connection limit** (`max_connections`): every open connection holds a permit. At
//!   the limit, a newly accepted connection makes room by closing the connection that has
//!   been idle (no request in progress) the longest, as nginx reuses keep-alive
//!   connections; so connections that send nothing, or sit between requests, never keep
//!   a fresh client out. Only when every connection has a request in progress does the
//!   new one wait for a permit, with deja accepting nothing further meanwhile (the rest
//!   wait in the kernel's listen backlog, not refused). Without a configured value the
//!   limit comes from the open-file limit ([`default_max_connections`]), so deja runs out
//!   of connections before it runs out of descriptors.
//! - **Header timeout** (`header_read_timeout_secs`): a new connection that has not sent
//!   a complete request head by then is closed (whether it sent nothing or half a line).
//! - **Idle timeout** (`idle_timeout_secs`): a connection with no request in progress
//!   (between keep-alive requests, or with half of its next request head) is closed after
//!   it. A request is in progress from its complete head until its response body is done,
//!   so a response waiting on a slow upstream or a long stream is never cut.
//! - **Body timeout** (`body_read_timeout_secs`): the longest pause while a request body
//!   arrives; the body then fails with [`BodyTimedOut`], which the routes answer with a 408
//!   ([`crate::routes::read_body`]).
//! - **Accept errors** (`EMFILE` when descriptors run out anyway) are logged and retried
//!   after a pause that doubles up to a second, so the loop never spins.
//! - **Shutdown**: when `shutdown` completes, deja stops accepting, asks every connection
//!   to finish gracefully (in-flight requests complete, idle ones close) and returns once
//!   all have closed.
//!
//! HTTP/1.1 and HTTP/2 (prior knowledge) are both served, as `axum::serve` does; the
//! timeouts are enforced here, outside hyper, so they apply the same to both.
//!
//! This module is not the router ([`crate::router`]) nor what a request may send
//! (`limits.max_body_bytes`, checked where bodies are read).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::config::LimitsConfig;

/// What one connection may hold of the server, from `[limits]`.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl ConnLimits {
    pub fn from_config(limits: &LimitsConfig) -> ConnLimits {
        ConnLimits {
            header_read_timeout: Duration::from_secs(limits.header_read_timeout_secs.max(1)),
            body_read_timeout: Duration::from_secs(limits.body_read_timeout_secs.max(1)),
            idle_timeout: Duration::from_secs(limits.idle_timeout_secs.max(1)),
            max_connections: limits
                .max_connections
                .unwrap_or_else(default_max_connections)
                .max(1),
        }
    }
}

/// Descriptors kept aside from client connections: the listener, the store's files, logs,
/// the model's files, Redis and Memcached connections.
const RESERVED_FDS: u64 = 64;
/// The most connections the derived default allows; an idle connection costs some 16 KiB
/// of buffers, so this bounds them near 128 MiB. Set `limits.max_connections` for more.
const MAX_DEFAULT_CONNECTIONS: u64 = 8_192;
/// The fewest connections the derived default allows.
const MIN_DEFAULT_CONNECTIONS: u64 = 8;

/// The connection limit when `limits.max_connections` is unset: half of the open-file
/// limit left after [`RESERVED_FDS`] (each client connection may hold a second descriptor
/// for its upstream call), between 8 and 8,192. With the common soft limit of 1,024 that
/// is 480; under `ulimit -n 256`, 96.
pub fn default_max_connections() -> usize {
    let nofile = open_file_limit().unwrap_or(1_024);
    (nofile.saturating_sub(RESERVED_FDS) / 2)
        .clamp(MIN_DEFAULT_CONNECTIONS, MAX_DEFAULT_CONNECTIONS) as usize
}

/// The soft limit on open descriptors (`RLIMIT_NOFILE`), if there is one.
#[cfg(unix)]
fn open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given, which outlives the call.
    let status = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    // `rlim_t` is u64 on Linux but not on every unix.
    #[allow(clippy::unnecessary_cast)]
    let soft = limit.rlim_cur as u64;
    (status == 0 && limit.rlim_cur != libc::RLIM_INFINITY).then_some(soft)
}

#[cfg(not(unix))]
fn open_file_limit() -> Option<u64> {
    None
}

/// Serves `service` on `listener` within `limits` until `shutdown` completes, then drains
/// (see the module doc).
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    // Closed (its receiver dropped) once `shutdown` completes.
    let (signal_tx, signal_rx) = watch::channel(());
    tokio::spawn(async move {
        shutdown.await;
        drop(signal_rx);
    });
    // Every connection task holds a receiver; the sender sees them all gone.
    let (close_tx, close_rx) = watch::channel(());
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let open = Arc::new(OpenConnections::default());
    let builder = Arc::new(Builder::new(TokioExecutor::new()));
    let mut pause = ACCEPT_PAUSE_MIN;
    'accept: loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    tracing::error!(error = %e, pause_ms = pause.as_millis() as u64, "accept error; pausing");
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = signal_tx.closed() => break,
                    }
                    pause = (pause * 2).min(ACCEPT_PAUSE_MAX);
                    continue;
                }
            },
            _ = signal_tx.closed() => break,
        };
        pause = ACCEPT_PAUSE_MIN;
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            // At the limit: ask the longest-idle connection to close, and again while
            // none is idle, until a permit is free.
            Err(_) => loop {
                open.evict_idlest();
                tokio::select! {
                    permit = permits.clone().acquire_owned() => match permit {
                        Ok(p) => break p,
                        // The semaphore is never closed.
                        Err(_) => break 'accept,
                    },
                    _ = tokio::time::sleep(EVICT_RETRY) => {}
                    _ = signal_tx.closed() => break 'accept,
                }
            },
        };
        // Small answers (exact hits) are written at once rather than held back by Nagle.
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let id = open.insert(activity.clone());
        let connection = Connection {
            builder: builder.clone(),
            limits,
            activity,
            signal: signal_tx.clone(),
            close: close_rx.clone(),
        };
        let service = service.clone();
        let open = open.clone();
        tokio::spawn(async move {
            connection.run(stream, service).await;
            open.remove(id);
            drop(permit);
        });
    }
    drop(close_rx);
    drop(listener);
    close_tx.closed().await;
}

/// How often a connection waiting at the limit looks again for an idle one to close.
const EVICT_RETRY: Duration = Duration::from_millis(50);
const ACCEPT_PAUSE_MIN: Duration = Duration::from_millis(10);
const ACCEPT_PAUSE_MAX: Duration = Duration::from_secs(1);

/// Errors of one connection that never got going; the next accept is unaffected.
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// The open connections' activity, so the one idle longest can make room at the limit.
#[derive(Default)]
struct OpenConnections {
    inner: parking_lot::Mutex<OpenInner>,
}

#[derive(Default)]
struct OpenInner {
    next_id: u64,
    by_id: std::collections::HashMap<u64, Arc<Activity>>,
}

impl OpenConnections {
    fn insert(&self, activity: Arc<Activity>) -> u64 {
        let mut inner = self.inner.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        inner.by_id.insert(id, activity);
        id
    }

    fn remove(&self, id: u64) {
        self.inner.lock().by_id.remove(&id);
    }

    /// Asks the connection idle longest (not already asked) to close; nothing when every
    /// connection has a request in progress. A scan of the open connections, only ever
    /// run at the limit.
    fn evict_idlest(&self) {
        let inner = self.inner.lock();
        let idlest = inner
            .by_id
            .values()
            .filter(|a| !a.evicting.load(Ordering::Acquire))
            .filter_map(|a| Some((a.idle_since()?, a)))
            .min_by_key(|(since, _)| *since);
        if let Some((_, activity)) = idlest {
            activity.evicting.store(true, Ordering::Release);
            activity.evict.notify_one();
        }
    }
}

/// One accepted connection's task.
struct Connection {
    builder: Arc<Builder<TokioExecutor>>,
    limits: ConnLimits,
    activity: Arc<Activity>,
    /// Closed when the server shuts down.
    signal: watch::Sender<()>,
    /// Held until the connection is done, so shutdown can wait for it.
    close: watch::Receiver<()>,
}

impl Connection {
    async fn run<S>(self, stream: tokio::net::TcpStream, service: S)
    where
        S: tower::Service<Request, Response = Response, Error = Infallible>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let activity = self.activity;
        let service = TowerToHyperService::new(Tracked {
            inner: service,
            activity: activity.clone(),
            body_read_timeout: self.limits.body_read_timeout,
        });
        let conn = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service);
        tokio::pin!(conn);
        let first_look = self
            .limits
            .header_read_timeout
            .min(self.limits.idle_timeout);
        let watchdog = tokio::time::sleep_until(activity.started + first_look);
        tokio::pin!(watchdog);
        let signal = self.signal.closed();
        tokio::pin!(signal);
        let mut draining = false;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    break;
                }
                _ = &mut watchdog => match activity.idle_deadline(&self.limits) {
                    // Nothing is in progress, so closing loses nothing.
                    Some(deadline) if deadline <= Instant::now() => {
                        tracing::debug!("closing a connection idle past its timeout");
                        break;
                    }
                    // Look again within the idle timeout at the latest: a request may
                    // start and end before the deadline, which then moves earlier.
                    Some(deadline) => watchdog
                        .as_mut()
                        .reset(deadline.min(Instant::now() + self.limits.idle_timeout)),
                    None => watchdog.as_mut().reset(Instant::now() + self.limits.idle_timeout),
                },
                _ = activity.evict.notified() => {
                    // A request may have started since the connection was chosen.
                    if activity.in_flight.load(Ordering::Acquire) == 0 {
                        tracing::debug!("closing an idle connection to make room for a new one");
                        break;
                    }
                    activity.evicting.store(false, Ordering::Release);
                }
                _ = &mut signal, if !draining => {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
        drop(self.close);
    }
}

/// Whether a connection has a request in progress, and since when it has had none.
struct Activity {
    started: Instant,
    /// Requests from their complete head until their response body is done.
    in_flight: AtomicUsize,
    /// Whether a complete request head has arrived (then the idle timeout applies, not
    /// the header timeout).
    served: AtomicBool,
    /// When the last request ended, in milliseconds after `started`.
    idle_since_ms: AtomicU64,
    /// Asked to close to make room at the connection limit.
    evict: tokio::sync::Notify,
    /// Set while an eviction request is pending, so the next one picks another connection.
    evicting: AtomicBool,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            idle_since_ms: AtomicU64::new(0),
            evict: tokio::sync::Notify::new(),
            evicting: AtomicBool::new(false),
        }
    }

    /// Since when no request has been in progress; `None` while one is.
    fn idle_since(&self) -> Option<Instant> {
        (self.in_flight.load(Ordering::Acquire) == 0).then(|| {
            self.started + Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire))
        })
    }

    /// When the connection may be closed for idleness; `None` while a request is in
    /// progress.
    fn idle_deadline(&self, limits: &ConnLimits) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(if self.served.load(Ordering::Acquire) {
            self.started
                + Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire))
                + limits.idle_timeout
        } else {
            self.started + limits.header_read_timeout
        })
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.served.store(true, Ordering::Release);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }
}

/// One request in progress; dropped when its response body is done (or abandoned).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        let ms = activity.started.elapsed().as_millis() as u64;
        activity.idle_since_ms.fetch_max(ms, Ordering::AcqRel);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The router, with each request's body under the body timeout and each request counted
/// in progress until its response body is done.
#[derive(Clone)]
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
    body_read_timeout: Duration,
}

impl<S> tower::Service<hyper::Request<Incoming>> for Tracked<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = TrackedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: hyper::Request<Incoming>) -> Self::Future {
        let in_flight = self.activity.begin();
        let timeout = self.body_read_timeout;
        let req = req.map(|body| Body::new(ReadTimeoutBody::new(body, timeout)));
        TrackedFuture {
            inner: self.inner.call(req),
            in_flight: Some(in_flight),
        }
    }
}

pin_project_lite::pin_project! {
    /// The router's future; hands the request's [`InFlight`] to the response body.
    struct TrackedFuture<F> {
        #[pin]
        inner: F,
        in_flight: Option<InFlight>,
    }
}

impl<F> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(response) = std::task::ready!(this.inner.poll(cx));
        let in_flight = this.in_flight.take();
        Poll::Ready(Ok(response.map(|body| {
            Body::new(InFlightBody {
                inner: body,
                _in_flight: in_flight,
            })
        })))
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request in progress until it is dropped.
    struct InFlightBody {
        #[pin]
        inner: Body,
        _in_flight: Option<InFlight>,
    }
}

impl HttpBody for InFlightBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body paused for longer than `limits.body_read_timeout_secs`.
#[derive(Debug, thiserror::Error)]
#[error("no request body data for {} s", .0.as_secs())]
pub struct BodyTimedOut(pub Duration);

pin_project_lite::pin_project! {
    /// A request body that fails with [`BodyTimedOut`] when no frame arrives for
    /// `timeout` while it is being read. The timer is armed only when a read has to wait,
    /// so a body that is already there costs none.
    struct ReadTimeoutBody {
        #[pin]
        inner: Incoming,
        timeout: Duration,
        sleep: Option<Pin<Box<Sleep>>>,
        armed: bool,
    }
}

impl ReadTimeoutBody {
    fn new(inner: Incoming, timeout: Duration) -> ReadTimeoutBody {
        ReadTimeoutBody {
            inner,
            timeout,
            sleep: None,
            armed: false,
        }
    }
}

impl HttpBody for ReadTimeoutBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(frame) => {
                *this.armed = false;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let deadline = Instant::now() + *this.timeout;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if !*this.armed {
                    sleep.as_mut().reset(deadline);
                    *this.armed = true;
                }
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(BodyTimedOut(*this.timeout).into()))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// At the limit the connection idle longest is asked to close, never one with a
    /// request in progress, and not the same one twice while its close is pending.
    #[test]
    fn eviction_picks_the_idlest_connection_without_a_request() {
        let opened_secs_ago = |secs| {
            Arc::new(Activity {
                started: Instant::now() - Duration::from_secs(secs),
                ..Activity::new()
            })
        };
        let open = OpenConnections::default();
        let oldest_busy = opened_secs_ago(30);
        let _request = oldest_busy.begin();
        let older_idle = opened_secs_ago(20);
        let newer_idle = opened_secs_ago(10);
        for a in [&oldest_busy, &older_idle, &newer_idle] {
            open.insert(a.clone());
        }
        let asked = |a: &Activity| a.evicting.load(Ordering::Acquire);
        open.evict_idlest();
        assert!(asked(&older_idle) && !asked(&newer_idle) && !asked(&oldest_busy));
        open.evict_idlest();
        assert!(asked(&newer_idle) && !asked(&oldest_busy));
        open.evict_idlest();
        assert!(
            !asked(&oldest_busy),
            "a connection with a request in progress"
        );
    }

    #[test]
    fn default_connection_limit_follows_the_open_file_limit() {
        let n = default_max_connections() as u64;
        assert!((MIN_DEFAULT_CONNECTIONS..=MAX_DEFAULT_CONNECTIONS).contains(&n));
        if let Some(nofile) = open_file_limit() {
            assert!(n * 2 + RESERVED_FDS <= nofile.max(2 * MIN_DEFAULT_CONNECTIONS + RESERVED_FDS));
        }
    }
}
