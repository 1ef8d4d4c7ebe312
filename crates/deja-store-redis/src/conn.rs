//! Connections: to a standalone Redis (reconnecting on failure) or to a Redis Cluster
//! through any of its nodes, and the URLs that name them (redacted for messages).

use std::time::Duration;

use deja_core::StoreError;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, Value};

/// A connection to a standalone server (reconnecting on failure) or to a cluster.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> redis::RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// An error while parsing or opening a Redis URL.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UrlError(String);

/// The URL with any password replaced, so it can be logged.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

/// The node URLs of a `redis+cluster://host:port,host:port` (or `rediss+cluster://`) URL.
fn cluster_nodes(url: &str) -> Option<Vec<String>> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("redis+cluster://") {
        ("redis", rest)
    } else {
        ("rediss", url.strip_prefix("rediss+cluster://")?)
    };
    // Credentials, if any, apply to every node.
    let (auth, hosts) = match rest.rfind('@') {
        Some(at) => (&rest[..=at], &rest[at + 1..]),
        None => ("", rest),
    };
    let hosts = hosts.trim_end_matches('/');
    let nodes: Vec<String> = hosts
        .split(',')
        .filter(|h| !h.is_empty())
        .map(|h| format!("{scheme}://{auth}{h}"))
        .collect();
    (!nodes.is_empty()).then_some(nodes)
}

/// Connects to `redis://HOST:PORT[/DB]` (or `rediss://`), or to a cluster through any of
/// its nodes: `redis+cluster://HOST:PORT,HOST:PORT`.
pub(crate) async fn open_conn(
    url: &str,
    connection_timeout: Duration,
    response_timeout: Duration,
) -> Result<Conn, StoreError> {
    let display_url = redact(url);
    let open_err = |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
        path: display_url.clone(),
        source: e,
    };
    if let Some(nodes) = cluster_nodes(url) {
        let client = redis::cluster::ClusterClientBuilder::new(nodes)
            .connection_timeout(connection_timeout)
            .response_timeout(response_timeout)
            // A dead shard fails the command quickly (the request bypasses) instead of
            // being retried for seconds.
            .retries(2)
            .max_retry_wait(200)
            .build()
            .map_err(|e| open_err(Box::new(e)))?;
        Ok(Conn::Cluster(
            client
                .get_async_connection()
                .await
                .map_err(|e| open_err(Box::new(e)))?,
        ))
    } else if url.starts_with("redis://") || url.starts_with("rediss://") {
        let client = redis::Client::open(url).map_err(|e| open_err(Box::new(e)))?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(response_timeout)
            .set_connection_timeout(connection_timeout)
            // Reconnection is retried in the background on the next command; a short
            // backoff lets a returning Redis be used again within a second.
            .set_number_of_retries(2)
            .set_factor(50)
            .set_max_delay(500);
        Ok(Conn::Single(
            ConnectionManager::new_with_config(client, config)
                .await
                .map_err(|e| open_err(Box::new(e)))?,
        ))
    } else {
        Err(open_err(Box::new(UrlError(
            "expected redis://HOST:PORT, rediss://HOST:PORT or redis+cluster://HOST:PORT,HOST:PORT"
                .into(),
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_list_every_node() {
        let cases: &[(&str, Option<&[&str]>)] = &[
            (
                "redis+cluster://127.0.0.1:7000,127.0.0.1:7001",
                Some(&["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]),
            ),
            (
                "rediss+cluster://u:pw@h1:1,h2:2/",
                Some(&["rediss://u:pw@h1:1", "rediss://u:pw@h2:2"]),
            ),
            ("redis+cluster://", None),
            ("redis://127.0.0.1:6379", None),
        ];
        for (url, want) in cases {
            let got = cluster_nodes(url);
            let want = want.map(|w| w.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            assert_eq!(got, want, "{url}");
        }
    }

    #[test]
    fn urls_are_redacted_for_messages() {
        let cases = [
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("redis://:secret@h:1/0", "redis://***@h:1/0"),
            ("redis+cluster://u:p@a:1,b:2", "redis+cluster://***@a:1,b:2"),
        ];
        for (url, want) in cases {
            assert_eq!(redact(url), want);
        }
    }
}
