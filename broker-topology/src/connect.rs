use deadpool_lapin::{Config, Pool, PoolConfig, Runtime, lapin};

use crate::error::TopologyError;

/// A pool of RabbitMQ connections (deadpool-lapin). Channels are opened per use-case from a
/// pooled connection: one for publishing with confirms, one per consumer.
pub type AmqpPool = Pool;

/// Builds a connection pool and checks that RabbitMQ answers.
///
/// `name` shows in the management UI's connection list (`warren-worker`, …).
///
/// # Errors
/// Returns [`TopologyError::Connect`] when RabbitMQ cannot be reached; the message never
/// contains the URL, so callers add a redacted one as context.
pub async fn connect_pool(url: &str, name: &str, size: usize) -> Result<AmqpPool, TopologyError> {
    let cfg = Config {
        url: Some(url.to_owned()),
        pool: Some(PoolConfig::new(size.max(1))),
    };
    let name = name.to_owned();
    let pool = cfg
        .create_pool(
            move || {
                lapin::ConnectionProperties::default().with_connection_name(name.clone().into())
            },
            Runtime::Tokio1,
        )
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
