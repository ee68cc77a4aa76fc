use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use deadpool_lapin::lapin;
use lapin::tcp::OwnedTLSConfig;
use rand::seq::SliceRandom;

use crate::error::TopologyError;

/// How long one node may take to accept a connection before the next one is tried: a node
/// cut off by the network would otherwise hold the whole pool until TCP gives up.
const NODE_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The node URLs of a comma-separated list (a RabbitMQ cluster), blanks dropped.
pub fn node_urls(urls: &str) -> Vec<String> {
    urls.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `host:port` of a node URL, without scheme, credentials or vhost: safe to show anywhere.
pub fn node_label(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    host.split(['/', '?']).next().unwrap_or(host).to_owned()
}

/// A pool of RabbitMQ connections (deadpool). Channels are opened per use-case from a
/// pooled connection: one for publishing with confirms, one per consumer.
pub type AmqpPool = managed::Pool<AmqpManager>;

/// Opens and recycles the pool's connections. deadpool-lapin's own manager cannot pass lapin
/// a TLS configuration, so a private CA for `amqps://` would be out of reach with it.
pub struct AmqpManager {
    /// The cluster's nodes, shuffled once so that services spread over them.
    urls: Vec<String>,
    /// The node tried first: the last one that accepted a connection.
    next: AtomicUsize,
    /// [`node_label`] of the node of the newest connection.
    current: Mutex<Option<String>>,
    name: String,
    tls: OwnedTLSConfig,
}

impl AmqpManager {
    /// `host:port` of the node the newest connection went to (`None` before the first).
    pub fn current_node(&self) -> Option<String> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    async fn connect_one(&self, url: &str) -> Result<lapin::Connection, lapin::Error> {
        let properties =
            lapin::ConnectionProperties::default().with_connection_name(self.name.clone().into());
        let runtime = lapin::runtime::default_runtime()?;
        let connect =
            lapin::Connection::connect_with_config(url, properties, self.tls.clone(), runtime);
        match tokio::time::timeout(NODE_CONNECT_TIMEOUT, connect).await {
            Ok(result) => result,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {NODE_CONNECT_TIMEOUT:?}"),
            )
            .into()),
        }
    }
}

impl std::fmt::Debug for AmqpManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL carries the password.
        f.debug_struct("AmqpManager")
            .field("name", &self.name)
            .field(
                "nodes",
                &self.urls.iter().map(|u| node_label(u)).collect::<Vec<_>>(),
            )
            .field("ca", &self.tls.cert_chain.is_some())
            .finish_non_exhaustive()
    }
}

impl managed::Manager for AmqpManager {
    type Type = lapin::Connection;
    type Error = lapin::Error;

    /// Connects to the first node that answers, starting from the last one that did, so a
    /// lost node costs one refused (or timed-out) attempt and the pool moves on. The callers'
    /// own reconnect loops supply the backoff between rounds.
    async fn create(&self) -> Result<lapin::Connection, lapin::Error> {
        let count = self.urls.len();
        let start = self.next.load(Ordering::Relaxed);
        let mut last = None;
        for step in 0..count {
            let index = (start + step) % count;
            let label = node_label(&self.urls[index]);
            match self.connect_one(&self.urls[index]).await {
                Ok(conn) => {
                    self.next.store(index, Ordering::Relaxed);
                    let mut current = self
                        .current
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if current.as_deref() != Some(label.as_str()) {
                        tracing::info!(node = %label, "connected to RabbitMQ node");
                    }
                    *current = Some(label);
                    return Ok(conn);
                }
                Err(e) => {
                    if count > 1 {
                        tracing::warn!(node = %label, error = %e, "RabbitMQ node unavailable; trying the next");
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "no RabbitMQ URL given").into()
        }))
    }

    async fn recycle(
        &self,
        conn: &mut lapin::Connection,
        _: &Metrics,
    ) -> RecycleResult<lapin::Error> {
        if conn.status().connected() {
            Ok(())
        } else {
            Err(RecycleError::message(format!(
                "the RabbitMQ connection is not connected: {:?}",
                conn.status()
            )))
        }
    }
}

/// Builds a connection pool and checks that RabbitMQ answers.
///
/// `url` may name several nodes of one cluster, separated by commas: each connection goes
/// to a live one (see [`AmqpManager`]).
///
/// `name` shows in the management UI's connection list (`warren-worker`, …).
///
/// # Errors
/// Returns [`TopologyError::Connect`] when RabbitMQ cannot be reached; the message never
/// contains the URL, so callers add a redacted one as context.
pub async fn connect_pool(url: &str, name: &str, size: usize) -> Result<AmqpPool, TopologyError> {
    connect_pool_tls(url, name, size, None).await
}

/// Like [`connect_pool`], trusting only `ca_pem` (PEM, one or more CA certificates) for an
/// `amqps://` URL instead of the system's roots.
///
/// # Errors
/// See [`connect_pool`]; an untrusted certificate is a [`TopologyError::Connect`] too.
pub async fn connect_pool_tls(
    url: &str,
    name: &str,
    size: usize,
    ca_pem: Option<String>,
) -> Result<AmqpPool, TopologyError> {
    let mut urls = node_urls(url);
    if urls.is_empty() {
        return Err(TopologyError::Connect {
            message: "no RabbitMQ URL given (WARREN_AMQP_URL is empty)".to_owned(),
        });
    }
    urls.shuffle(&mut rand::rng());
    let manager = AmqpManager {
        urls,
        next: AtomicUsize::new(0),
        current: Mutex::new(None),
        name: name.to_owned(),
        tls: OwnedTLSConfig {
            identity: None,
            cert_chain: ca_pem,
        },
    };
    let pool = managed::Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| TopologyError::Connect {
            message: e.to_string(),
        })?;
    // Fail fast at startup rather than at the first request.
    drop(pool.get().await.map_err(|e| TopologyError::Connect {
        message: e.to_string(),
    })?);
    Ok(pool)
}

/// Opens a channel on a pooled connection.
///
/// # Errors
/// Returns [`TopologyError::Connect`] or [`TopologyError::OpenChannel`].
pub(crate) async fn open_channel(pool: &AmqpPool) -> Result<lapin::Channel, TopologyError> {
    let conn = pool.get().await.map_err(|e| TopologyError::Connect {
        message: e.to_string(),
    })?;
    conn.create_channel()
        .await
        .map_err(TopologyError::OpenChannel)
}

/// `host:port` of the RabbitMQ node `pool`'s newest connection went to.
pub fn current_node(pool: &AmqpPool) -> Option<String> {
    pool.manager().current_node()
}

impl crate::Topology {
    /// Opens a channel on a pooled connection.
    ///
    /// # Errors
    /// Returns [`TopologyError::Connect`] or [`TopologyError::OpenChannel`].
    pub async fn channel(pool: &AmqpPool) -> Result<lapin::Channel, TopologyError> {
        open_channel(pool).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_names_every_node_and_labels_hide_credentials() {
        let urls = node_urls(" amqp://u:p1@a:5672/%2f, ,amqps://u:p2@b:5671/vh?heartbeat=5,");
        assert_eq!(
            urls,
            [
                "amqp://u:p1@a:5672/%2f",
                "amqps://u:p2@b:5671/vh?heartbeat=5"
            ]
        );
        assert_eq!(node_label(&urls[0]), "a:5672");
        assert_eq!(node_label(&urls[1]), "b:5671");
        assert_eq!(node_label("amqp://h"), "h");
        assert_eq!(node_label("amqp://u:p@ss@h:1/x"), "h:1");
        assert!(node_urls(" , ").is_empty());
    }

    #[tokio::test]
    async fn an_empty_list_is_refused_with_a_message() {
        let err = connect_pool(" ", "t", 1).await.unwrap_err().to_string();
        assert!(err.contains("WARREN_AMQP_URL"), "{err}");
    }
}
