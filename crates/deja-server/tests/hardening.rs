#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Attacks and abuse from the red-team report, through the real server (a listener on
//! 127.0.0.1, the real model, the embedded store) in front of the mock upstream, which
//! records what reaches it. Requests whose exact bytes matter (`..`, `%2e%2e`, half a
//! request line) are written on a raw TCP socket, since an HTTP client would normalise
//! or complete them.

#[macro_use]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Served;
use deja_core::Embedder;
use deja_server::config::Config;
use deja_testkit::mock_upstream::MockUpstream;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const OPERATOR_KEY: &str = "sk-operator";
const ANTHROPIC_KEY: &str = "sk-ant-operator";
const ADMIN_TOKEN: &str = "hardening-admin-token";

struct Proxy {
    served: Served,
    /// `127.0.0.1:PORT`.
    addr: String,
    mock: MockUpstream,
    _dir: tempfile::TempDir,
}

impl Proxy {
    /// The proxy in front of the mock (as the OpenAI-compatible and the Anthropic
    /// upstream, each with an operator key), after `tweak`.
    async fn start(embedder: Arc<dyn Embedder>, tweak: impl FnOnce(&mut Config)) -> Proxy {
        let mock = MockUpstream::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut config = common::config(dir.path(), mock.base_url());
        config.upstream.api_key = Some(OPERATOR_KEY.into());
        config.anthropic.base_url = format!("http://{}", mock.addr());
        config.anthropic.api_key = Some(ANTHROPIC_KEY.into());
        tweak(&mut config);
        let served = Served::start(config, embedder).await;
        let addr = served.base.trim_start_matches("http://").to_string();
        Proxy {
            served,
            addr,
            mock,
            _dir: dir,
        }
    }

    /// Sends `head` (a request line and headers, without the blank line) as written, with
    /// `Connection: close`, and reads the whole answer.
    async fn raw(&self, head: &str) -> Raw {
        let mut s = TcpStream::connect(&self.addr).await.unwrap();
        let request = format!("{head}\r\nHost: {}\r\nConnection: close\r\n\r\n", self.addr);
        s.write_all(request.as_bytes()).await.unwrap();
        let mut bytes = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut bytes))
            .await
            .expect("the proxy answers within 10 s")
            .unwrap();
        Raw::parse(&bytes)
    }
}

/// An HTTP/1.1 answer read off a socket.
struct Raw {
    status: u16,
    /// Header lines, lowercased.
    head: String,
    body: Vec<u8>,
}

impl std::fmt::Debug for Raw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\n\n{}",
            self.head,
            String::from_utf8_lossy(&self.body)
        )
    }
}

/// What reached the mock upstream since its last reset: method, path, credentials.
fn forwarded(mock: &MockUpstream) -> Vec<String> {
    mock.state()
        .requests()
        .iter()
        .map(|r| {
            format!(
                "{} {} authorization={:?} x-api-key={:?}",
                r.method,
                r.path_and_query,
                r.headers.get("authorization"),
                r.headers.get("x-api-key")
            )
        })
        .collect()
}

impl Raw {
    fn parse(bytes: &[u8]) -> Raw {
        let split = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(bytes)));
        let head = String::from_utf8_lossy(&bytes[..split]).to_lowercase();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        Raw {
            status,
            head,
            body: bytes[split + 4..].to_vec(),
        }
    }

    /// The body as JSON (deja's own errors have a length, not chunks).
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("{e}: {} {}", self.head, String::from_utf8_lossy(&self.body))
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            (n.trim() == name).then(|| v.trim())
        })
    }
}

/// The OpenAI error shape with this type, or Anthropic's.
fn assert_error_shape(r: &Raw, anthropic: bool, kind: &str, what: &str) {
    let body = r.json();
    if anthropic {
        assert_eq!(body["type"], "error", "{what}: {body}");
        assert_eq!(body["error"]["type"], kind, "{what}: {body}");
    } else {
        assert_eq!(body["error"]["type"], kind, "{what}: {body}");
        assert!(body["error"]["message"].is_string(), "{what}: {body}");
    }
}

/// Finding #2: a path that climbs out of `/v1` (plainly, percent-encoded, with
/// backslashes, through Anthropic's `/v1/messages/...`) is a 400 from deja and nothing
/// reaches the upstream; a path outside `/v1` is a 404 from deja. Paths inside stay
/// forwarded, query and all, with dot segments resolved and double encoding kept.
#[tokio::test]
async fn passthrough_paths_cannot_leave_the_upstream_base() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    // (request target, answered in Anthropic's shape)
    let climbs = [
        ("/v1/%2e%2e/internal/x", false),
        ("/v1/%2E%2E/internal/x", false),
        ("/v1/../internal/x", false),
        ("/v1/.%2e/internal/x?q=1", false),
        ("/v1/models/../../internal/x", false),
        ("/v1/..%5cinternal", false),
        ("/v1/..\\internal", false),
        ("/v1/%2e%2e%2finternal", false),
        ("/v1/a%2fb/../../internal", false),
        ("/v1/messages/x/../../../X", true),
        ("/v1/messages/%2e%2e/%2e%2e/X", true),
    ];
    for (target, anthropic) in climbs {
        let r = p.raw(&format!("GET {target} HTTP/1.1")).await;
        assert_eq!(forwarded(&p.mock), Vec::<String>::new(), "{target}");
        assert_eq!(r.status, 400, "{target}: {r:?}");
        assert_error_shape(&r, anthropic, "invalid_request_error", target);
    }
    for target in ["/internal/x", "/v1beta/models", "/favicon.ico"] {
        let r = p.raw(&format!("GET {target} HTTP/1.1")).await;
        assert_eq!(forwarded(&p.mock), Vec::<String>::new(), "{target}");
        assert_eq!(r.status, 404, "{target}: {r:?}");
        assert_error_shape(&r, false, "invalid_request_error", target);
    }
    assert_eq!(p.mock.stats().total_calls, 0);

    // Inside the base: forwarded as resolved, with the operator's key and the query.
    for (target, forwarded, status) in [
        ("/v1/models?limit=2", "/v1/models?limit=2", 200),
        ("/v1/files/../models", "/v1/models", 200),
        ("/v1/%252e%252e/x", "/v1/%252e%252e/x", 404),
    ] {
        p.mock.reset();
        let r = p.raw(&format!("GET {target} HTTP/1.1")).await;
        assert_eq!(r.status, status, "{target}: {r:?}");
        let seen = p.mock.state().requests();
        assert_eq!(seen.len(), 1, "{target}");
        assert_eq!(seen[0].path_and_query, forwarded, "{target}");
        assert_eq!(
            seen[0].headers["authorization"],
            format!("Bearer {OPERATOR_KEY}")
        );
    }
    p.mock.reset();
    p.raw("POST /v1/messages/count_tokens HTTP/1.1\r\nContent-Length: 0")
        .await;
    let seen = p.mock.state().requests();
    assert_eq!(seen[0].path_and_query, "/v1/messages/count_tokens");
    assert_eq!(seen[0].headers["x-api-key"], ANTHROPIC_KEY);
}

/// Finding #9: deja's own paths, in every variant that misses their routes, are answered
/// by deja and never forwarded. Without an operator key the client's `Authorization`
/// (here the admin token) would go upstream as it is.
#[tokio::test]
async fn deja_paths_are_never_forwarded() {
    let p = Proxy::start(need_model!(), |c| {
        c.admin.token = Some(ADMIN_TOKEN.into());
        c.upstream.api_key = None;
    })
    .await;
    for target in [
        "/admin",
        "/admin/",
        "/admin//stats",
        "/admin/unknown",
        "/ADMIN/stats",
        "/Admin/",
        "/admin/stats/",
        "/metrics/",
        "/Metrics",
        "/health/",
        "/HEALTH",
        "/dashboard/x",
        "/dashboard.json",
    ] {
        for method in ["GET", "POST", "DELETE"] {
            let r = p
                .raw(&format!(
                    "{method} {target} HTTP/1.1\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: 0"
                ))
                .await;
            assert_eq!(
                forwarded(&p.mock),
                Vec::<String>::new(),
                "{method} {target}"
            );
            assert!(
                [401, 404, 405].contains(&r.status),
                "{method} {target}: {r:?}"
            );
            assert_error_shape(&r, false, "invalid_request_error", target);
        }
    }
    // The routes themselves still answer.
    assert_eq!(p.raw("GET /health HTTP/1.1").await.status, 200);
    let r = p
        .raw(&format!(
            "GET /admin/stats HTTP/1.1\r\nAuthorization: Bearer {ADMIN_TOKEN}"
        ))
        .await;
    assert_eq!(r.status, 200);
}

/// Finding #7: a connection that sends half a request line, or nothing, is closed within
/// the header timeout.
#[tokio::test]
async fn a_connection_without_a_complete_head_is_closed_by_the_header_timeout() {
    let p = Proxy::start(need_model!(), |c| c.limits.header_read_timeout_secs = 1).await;
    let mut half = TcpStream::connect(&p.addr).await.unwrap();
    half.write_all(b"GET /heal").await.unwrap();
    let mut silent = TcpStream::connect(&p.addr).await.unwrap();
    let started = Instant::now();
    for s in [&mut half, &mut silent] {
        assert_closed_within(s, Duration::from_secs(5)).await;
    }
    assert!(started.elapsed() >= Duration::from_millis(900));
}

/// Reads until the server closes the connection (EOF or reset), failing after `limit`.
async fn assert_closed_within(s: &mut TcpStream, limit: Duration) {
    let mut buf = Vec::new();
    match tokio::time::timeout(limit, s.read_to_end(&mut buf)).await {
        Ok(_) => {}
        Err(_) => panic!("still open after {limit:?}"),
    }
}

/// Finding #7: a keep-alive connection with no request in progress is closed after the
/// idle timeout.
#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_by_the_idle_timeout() {
    let p = Proxy::start(need_model!(), |c| c.limits.idle_timeout_secs = 1).await;
    let mut s = TcpStream::connect(&p.addr).await.unwrap();
    s.write_all(format!("GET /health HTTP/1.1\r\nHost: {}\r\n\r\n", p.addr).as_bytes())
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    assert_closed_within(&mut s, Duration::from_secs(5)).await;
}

/// Finding #7: a request body that stalls is answered 408 after the body timeout, and
/// nothing is forwarded.
#[tokio::test]
async fn a_stalled_body_is_answered_408() {
    let p = Proxy::start(need_model!(), |c| c.limits.body_read_timeout_secs = 1).await;
    for (path, anthropic) in [
        ("/v1/chat/completions", false),
        ("/v1/models", false),
        ("/v1/messages", true),
    ] {
        let mut s = TcpStream::connect(&p.addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{{\"model\":",
            p.addr
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let started = Instant::now();
        let mut bytes = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut bytes))
            .await
            .expect("answered within 10 s")
            .unwrap();
        let r = Raw::parse(&bytes);
        assert_eq!(r.status, 408, "{path}: {r:?}");
        assert_error_shape(&r, anthropic, "invalid_request_error", path);
        assert!(started.elapsed() >= Duration::from_millis(900));
    }
    assert_eq!(p.mock.stats().total_calls, 0);
}

/// Finding #7: at `max_connections`, a fresh client makes room by closing the connection
/// idle longest: `/health` answers at once while 8 silent connections fill the limit (the
/// header timeout is far off), and the oldest of them is closed.
#[tokio::test]
async fn at_the_connection_limit_a_fresh_client_closes_the_idlest_connection() {
    let p = Proxy::start(need_model!(), |c| c.limits.max_connections = Some(8)).await;
    let mut idle = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(&p.addr).await.unwrap();
        // Written, so the connection is surely accepted before the next one.
        s.write_all(b"GET /heal").await.unwrap();
        idle.push(s);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    let health = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
        .get(format!("{}/health", p.served.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_closed_within(&mut idle[0], Duration::from_secs(2)).await;
}

/// Finding #7: when every connection has a request in progress, a new one waits for a
/// free slot: the limit holds, and the requests in progress are not cut.
#[tokio::test]
async fn at_the_connection_limit_busy_connections_are_kept_and_a_new_one_waits() {
    let p = Proxy::start(need_model!(), |c| c.limits.max_connections = Some(2)).await;
    let slow = |question: &'static str| {
        let url = format!("{}/v1/chat/completions", p.served.base);
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(url)
                .header("x-mock-fault", "slow=1500")
                .json(&json!({"model": "m", "messages": [{"role": "user", "content": question}]}))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    let a = slow("what is the capital of France");
    let b = slow("what is the capital of Spain");
    // Both are in progress once the upstream has seen them.
    for _ in 0..200 {
        if p.mock.state().requests().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(p.mock.state().requests().len(), 2);
    let started = Instant::now();
    let health = reqwest::get(format!("{}/health", p.served.base))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "served at once: the limit is not enforced"
    );
    assert_eq!(a.await.unwrap(), 200);
    assert_eq!(b.await.unwrap(), 200);
}

/// The timeouts never cut a response in progress: a stream slower than every timeout, and
/// an upstream that takes longer than them to answer, both complete.
#[tokio::test]
async fn slow_streams_and_slow_answers_outlive_the_timeouts() {
    let p = Proxy::start(need_model!(), |c| {
        c.limits.header_read_timeout_secs = 1;
        c.limits.idle_timeout_secs = 1;
        c.limits.body_read_timeout_secs = 1;
    })
    .await;
    let client = reqwest::Client::new();
    let started = Instant::now();
    let r = client
        .post(format!("{}/v1/chat/completions", p.served.base))
        .header("x-mock-fault", "slow=300")
        .json(&json!({
            "model": "m",
            "stream": true,
            "messages": [{"role": "user", "content": "tell me about the quick brown fox"}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert!(started.elapsed() >= Duration::from_millis(1500));

    let started = Instant::now();
    let r = client
        .post(format!("{}/v1/chat/completions", p.served.base))
        .header("x-mock-fault", "slow=1800")
        .json(&json!({
            "model": "m",
            "messages": [{"role": "user", "content": "why is the sky blue"}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(body["choices"][0]["message"]["content"].is_string());
    assert!(started.elapsed() >= Duration::from_millis(1800));
}

/// Finding #13: a known path with the wrong method is a 405 with a body in the provider's
/// error shape and an `Allow` header.
#[tokio::test]
async fn a_wrong_method_is_a_405_with_a_body_and_allow() {
    let p = Proxy::start(need_model!(), |c| c.admin.token = Some(ADMIN_TOKEN.into())).await;
    for (head, allow, anthropic) in [
        ("GET /v1/chat/completions HTTP/1.1", "post", false),
        ("GET /v1/embeddings HTTP/1.1", "post", false),
        (
            "PUT /v1/messages HTTP/1.1\r\nContent-Length: 0",
            "post",
            true,
        ),
        ("POST /health HTTP/1.1\r\nContent-Length: 0", "get", false),
        ("POST /metrics HTTP/1.1\r\nContent-Length: 0", "get", false),
        (
            &format!("GET /admin/invalidate HTTP/1.1\r\nAuthorization: Bearer {ADMIN_TOKEN}"),
            "post",
            false,
        ),
    ] {
        let r = p.raw(head).await;
        assert_eq!(r.status, 405, "{head}: {r:?}");
        assert!(
            r.header("allow").is_some_and(|a| a.contains(allow)),
            "{head}: {r:?}"
        );
        assert_error_shape(&r, anthropic, "invalid_request_error", head);
    }
    assert_eq!(p.mock.stats().total_calls, 0);
}

/// Finding #13: `max-age` beyond 2^31 (here past u64) means 2^31 seconds, as in HTTP
/// caches: accepted, and a fresh entry is served.
#[tokio::test]
async fn an_overflowing_max_age_is_accepted_as_no_limit() {
    let p = Proxy::start(need_model!(), |_| {}).await;
    let client = reqwest::Client::new();
    let body = json!({
        "model": "m",
        "messages": [{"role": "user", "content": "how do I reset my password"}],
    });
    let ask = |cache_control: Option<&'static str>| {
        let mut rb = client
            .post(format!("{}/v1/chat/completions", p.served.base))
            .json(&body);
        if let Some(v) = cache_control {
            rb = rb.header("cache-control", v);
        }
        rb.send()
    };
    assert_eq!(ask(None).await.unwrap().status(), 200);
    for value in [
        "max-age=99999999999999999999",
        "max-age=2147483649",
        "max-age=\"18446744073709551616\"",
    ] {
        let r = ask(Some(value)).await.unwrap();
        assert_eq!(r.status(), 200, "{value}");
        assert_eq!(r.headers()["x-deja-cache"], "hit-exact", "{value}");
    }
    assert_eq!(
        ask(Some("max-age=-1")).await.unwrap().status(),
        400,
        "a sign is still malformed"
    );
    assert_eq!(p.mock.stats().chat_calls, 1);
}

/// Finding #13: `deja serve` refuses an admin token shorter than 16 characters, naming
/// the key.
#[tokio::test]
async fn a_short_admin_token_is_refused_at_start() {
    let _ = need_model!();
    let dir = tempfile::tempdir().unwrap();
    for token in ["x", "fifteen-chars-x"] {
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        config.admin.token = Some(token.into());
        let err = match deja_server::build_state(config).await {
            Ok(_) => panic!("{token:?} accepted"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.starts_with("admin.token"), "{token:?}: {err}");
        assert!(err.contains("16"), "{err}");
    }
}
