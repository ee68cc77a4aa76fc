use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use deadpool_lapin::lapin;
use lapin::tcp::OwnedTLSConfig;

use crate::error::TopologyError;

/// A pool of RabbitMQ connections (deadpool). Channels are opened per use-case from a
/// pooled connection: one for publishing with confirms, one per consumer.
pub type AmqpPool = managed::Pool<AmqpManager>;

/// Opens and recycles the pool's connections. deadpool-lapin's own manager cannot pass lapin
/// a TLS configuration, so a private CA for `amqps://` would be out of reach with it.
pub struct AmqpManager {
    url: String,
    name: String,
    tls: OwnedTLSConfig,
}

impl std::fmt::Debug for AmqpManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL carries the password.
        f.debug_struct("AmqpManager")
            .field("name", &self.name)
            .field("ca", &self.tls.cert_chain.is_some())
            .finish_non_exhaustive()
    }
}

impl managed::Manager for AmqpManager {
    type Type = lapin::Connection;
    type Error = lapin::Error;

    async fn create(&self) -> Result<lapin::Connection, lapin::Error> {
        let properties =
            lapin::ConnectionProperties::default().with_connection_name(self.name.clone().into());
        let runtime = lapin::runtime::default_runtime()?;
        lapin::Connection::connect_with_config(&self.url, properties, self.tls.clone(), runtime)
            .await
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
    let manager = AmqpManager {
        url: url.to_owned(),
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

impl crate::Topology {
    /// Opens a channel on a pooled connection.
    ///
    /// # Errors
    /// Returns [`TopologyError::Connect`] or [`TopologyError::OpenChannel`].
    pub async fn channel(pool: &AmqpPool) -> Result<lapin::Channel, TopologyError> {
        open_channel(pool).await
    }
}
