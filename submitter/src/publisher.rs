//! The publisher channel, reopened lazily when it dies (broker restart, channel error), so the
//! service heals without a restart.

use std::time::Duration;

use tokio::sync::Mutex;
use warren_topology::lapin::types::ShortString;
use warren_topology::{AmqpPool, Publisher, Topology, TopologyError};

/// How long opening a channel may take before the request gives up with 503.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// Holds the current publisher and replaces it when it is broken.
///
/// A tokio mutex, because reopening awaits; it is held only to check or replace the channel,
/// never while publishing, so concurrent requests publish on the same channel in parallel.
#[derive(Debug)]
pub(crate) struct PublisherSlot {
    pool: AmqpPool,
    topology: Topology,
    current: Mutex<Current>,
}

#[derive(Debug)]
struct Current {
    /// `None` after a discard, until the next request opens a channel.
    publisher: Option<Publisher>,
    /// Bumped on every reopen, so a stale lease cannot discard a newer channel.
    generation: u64,
}

/// A publisher handed out by [`PublisherSlot::get`], with the generation to report it broken.
#[derive(Debug, Clone)]
pub(crate) struct Lease {
    pub(crate) publisher: Publisher,
    generation: u64,
}

impl PublisherSlot {
    /// `host:port` of the RabbitMQ node the newest connection went to.
    pub(crate) fn node(&self) -> Option<String> {
        warren_topology::current_node(&self.pool)
    }

    /// Wraps an already opened publisher.
    pub(crate) fn new(pool: AmqpPool, topology: Topology, publisher: Publisher) -> Self {
        Self {
            pool,
            topology,
            current: Mutex::new(Current {
                publisher: Some(publisher),
                generation: 0,
            }),
        }
    }

    /// Returns a connected publisher, opening a new channel if the current one is closed.
    ///
    /// # Errors
    /// Returns [`TopologyError`] when no channel can be opened (the broker is down).
    pub(crate) async fn get(&self) -> Result<Lease, TopologyError> {
        let mut current = self.current.lock().await;
        if let Some(publisher) = &current.publisher
            && publisher.is_connected()
        {
            return Ok(Lease {
                publisher: publisher.clone(),
                generation: current.generation,
            });
        }
        let generation = current.generation + 1;
        let publisher =
            tokio::time::timeout(OPEN_TIMEOUT, Publisher::open(&self.pool, &self.topology))
                .await
                .map_err(|_| TopologyError::Connect {
                    message: format!(
                        "opening a publisher channel took longer than {OPEN_TIMEOUT:?}"
                    ),
                })??;
        tracing::info!(generation, "opened a new publisher channel");
        current.publisher = Some(publisher.clone());
        current.generation = generation;
        Ok(Lease {
            publisher,
            generation,
        })
    }

    /// Drops the publisher of `lease` after a publish on it failed in a way that may have left
    /// the channel unusable (a confirm that never came), so the next request opens a new one.
    /// A publisher that was replaced meanwhile is left alone.
    pub(crate) async fn discard(&self, lease: &Lease) {
        let mut current = self.current.lock().await;
        if current.generation != lease.generation {
            return;
        }
        let Some(broken) = current.publisher.take() else {
            return;
        };
        drop(current);
        let broken = broken.channel().clone();
        // Closing is a courtesy to the broker; a dead channel fails fast or times out.
        let close = broken.close(200, ShortString::from("reopening publisher"));
        let _ = tokio::time::timeout(Duration::from_secs(1), close).await;
        tracing::warn!(
            generation = lease.generation,
            "discarded the publisher channel"
        );
    }
}
