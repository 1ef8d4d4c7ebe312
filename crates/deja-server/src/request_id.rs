//! A request id on every request: taken from the client's `x-request-id` when it sends a
//! usable one, otherwise made here. It is returned in `x-deja-request-id` (the upstream's
//! own `x-request-id`, when it sends one, passes through untouched) and every log line
//! written while the request is handled carries it ([`crate::logging`] reads it from here).
//!
//! The id lives in a task-local while the request's future runs, not in a `tracing` span:
//! a span per request cost about 3 µs of formatting and bookkeeping at the default log
//! level, 7% of exact-hit throughput, and a task-local costs almost nothing. Work a
//! request spawns (storing its answer, recording a stream) takes the id along with
//! [`carry`].

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::response::Response;
use tokio::task::futures::TaskLocalFuture;
use tower::Service;

tokio::task_local! {
    /// The id of the request whose future is running, if any.
    static CURRENT: Option<HeaderValue>;
}

/// The id of the request being handled by the running task, if any.
pub fn current() -> Option<HeaderValue> {
    CURRENT.try_with(Option::clone).ok().flatten()
}

/// Runs `f` as if it were handling the request with id `id` (for tests of what reads it).
#[cfg(test)]
pub(crate) fn with_id<R>(id: &'static str, f: impl FnOnce() -> R) -> R {
    CURRENT.sync_scope(Some(HeaderValue::from_static(id)), f)
}

/// `fut`, run with the running request's id: for work a request spawns, so its log
/// lines carry the id too.
pub fn carry<F: Future>(fut: F) -> TaskLocalFuture<Option<HeaderValue>, F> {
    CURRENT.scope(current(), fut)
}

/// The response header with the id.
pub const RESPONSE_HEADER: &str = "x-deja-request-id";

/// The request header a client may set to choose the id.
const REQUEST_HEADER: &str = "x-request-id";

/// Longest client-chosen id accepted; longer ones are replaced, not truncated.
const MAX_LEN: usize = 128;

/// Gives every request to the wrapped service (the proxy's router) an id: see the module
/// docs. A plain tower service wrapped around the whole router, rather than
/// `axum::middleware::from_fn` layered onto every route, which clones and boxes the route
/// on each request: on exact hits that cost several percent of throughput.
#[derive(Clone, Debug)]
pub struct RequestIds<S> {
    inner: S,
}

impl<S> RequestIds<S> {
    pub fn new(inner: S) -> RequestIds<S> {
        RequestIds { inner }
    }
}

impl<S> Service<Request> for RequestIds<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = WithId<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let id = req
            .headers()
            .get(REQUEST_HEADER)
            .filter(|v| usable(v.as_bytes()))
            .cloned()
            .unwrap_or_else(new_id);
        let inner = CURRENT.sync_scope(Some(id.clone()), || self.inner.call(req));
        WithId {
            inner: CURRENT.scope(Some(id.clone()), inner),
            id: Some(id),
        }
    }
}

pin_project_lite::pin_project! {
    /// The wrapped service's response future, run with the request's id; it adds the id
    /// header to the response.
    pub struct WithId<F> {
        #[pin]
        inner: TaskLocalFuture<Option<HeaderValue>, F>,
        id: Option<HeaderValue>,
    }
}

impl<F> Future for WithId<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(mut resp) = ready!(this.inner.poll(cx));
        if let Some(id) = this.id.take() {
            resp.headers_mut().insert(RESPONSE_HEADER, id);
        }
        Poll::Ready(Ok(resp))
    }
}

/// Whether a client's id can be used as it is: non-empty, bounded, and made of visible
/// ASCII without quotes or backslashes, so it cannot forge log fields or headers.
fn usable(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .iter()
            .all(|&b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

/// A new id: 16 random hex digits.
fn new_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let n = rand::random::<u64>();
    let mut digits = [0u8; 16];
    for (i, d) in digits.iter_mut().enumerate() {
        *d = HEX[((n >> (60 - 4 * i)) & 0xf) as usize];
    }
    // Hex digits are always a valid header value; the fallback is never taken.
    HeaderValue::from_bytes(&digits).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_used_only_when_safe() {
        assert!(usable(b"req-123_ABC.x"));
        assert!(usable("a".repeat(MAX_LEN).as_bytes()));
        for bad in ["", "has space", "quote\"d", "back\\slash", "new\nline", "é"] {
            assert!(!usable(bad.as_bytes()), "{bad:?}");
        }
        assert!(!usable("a".repeat(MAX_LEN + 1).as_bytes()));
    }

    #[tokio::test]
    async fn the_id_is_current_in_the_request_and_in_what_it_carries() {
        assert!(current().is_none());
        let id = HeaderValue::from_static("req-7");
        let seen = CURRENT
            .scope(Some(id.clone()), async {
                let here = current();
                let spawned = tokio::spawn(carry(async { current() })).await.unwrap();
                let bare = tokio::spawn(async { current() }).await.unwrap();
                (here, spawned, bare)
            })
            .await;
        assert_eq!(seen, (Some(id.clone()), Some(id), None));
        assert!(current().is_none());
    }

    #[test]
    fn new_ids_are_sixteen_hex_digits_and_differ() {
        let (a, b) = (new_id(), new_id());
        assert_eq!(a.len(), 16);
        assert!(a.as_bytes().iter().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
