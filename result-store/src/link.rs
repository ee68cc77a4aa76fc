//! Where the store's connections go: one Redis URL, or the primary that Redis Sentinel
//! names, followed across failovers by a task of the store's own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::sentinel::{SentinelClient, SentinelServerType};

use crate::error::StoreError;

/// How often the Sentinel-following task asks who the primary is. A failover (Sentinel's
/// `down-after-milliseconds` plus its election) takes seconds; this adds at most half a
/// second to it.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(500);

/// The longest a submission waits for a replica to acknowledge its record (`WAIT`) before
/// it is answered anyway: a replica that lags this much is already a failing one.
pub const REPLICA_WAIT: Duration = Duration::from_millis(250);

/// One connection to the current primary.
#[derive(Clone)]
pub(crate) struct Conn {
    pub(crate) client: redis::Client,
    pub(crate) manager: ConnectionManager,
}

/// The store's connection, swapped for one to the new primary after a failover.
pub(crate) struct Link {
    current: RwLock<Conn>,
    /// Whether the primary has replicas (Sentinel only): submissions then `WAIT` for one.
    replicated: AtomicBool,
}

impl Link {
    pub(crate) fn current(&self) -> Conn {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The current primary's connection manager alone: every command takes it, so it does
    /// not clone the client (its connection info) as [`Link::current`] does.
    pub(crate) fn manager(&self) -> ConnectionManager {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .manager
            .clone()
    }

    pub(crate) fn replicated(&self) -> bool {
        self.replicated.load(Ordering::Relaxed)
    }
}

pub(crate) async fn manager(client: &redis::Client) -> Result<ConnectionManager, StoreError> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(Duration::from_secs(10)));
    client
        .get_connection_manager_with_config(config)
        .await
        .map_err(StoreError::Connect)
}

/// A link to one fixed client.
pub(crate) async fn fixed(client: redis::Client) -> Result<Arc<Link>, StoreError> {
    let manager = manager(&client).await?;
    Ok(Arc::new(Link {
        current: RwLock::new(Conn { client, manager }),
        replicated: AtomicBool::new(false),
    }))
}

/// A link to the primary the Sentinels name, and the task that follows it.
pub(crate) async fn sentinel(sentinels: &[String], master: &str) -> Result<Arc<Link>, StoreError> {
    let urls: Vec<String> = sentinels.iter().map(|s| format!("redis://{s}")).collect();
    let mut sentinel = SentinelClient::build(urls, master, None, SentinelServerType::Master)
        .map_err(StoreError::Connect)?;
    let client = sentinel
        .async_get_client()
        .await
        .map_err(StoreError::Connect)?;
    let manager = manager(&client).await?;
    let link = Arc::new(Link {
        current: RwLock::new(Conn {
            client,
            manager: manager.clone(),
        }),
        replicated: AtomicBool::new(has_replicas(manager).await),
    });
    tracing::info!(
        primary = %addr(&link.current().client),
        replicated = link.replicated(),
        "connected to the Redis primary Sentinel names"
    );
    tokio::spawn(follow(Arc::downgrade(&link), sentinel));
    Ok(link)
}

fn addr(client: &redis::Client) -> String {
    client.get_connection_info().addr().to_string()
}

/// Whether the primary has a connected replica (`INFO replication`).
async fn has_replicas(mut conn: ConnectionManager) -> bool {
    let info: Result<String, _> = redis::cmd("INFO")
        .arg("replication")
        .query_async(&mut conn)
        .await;
    info.ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("connected_slaves:"))
                .and_then(|n| n.trim().parse::<u32>().ok())
        })
        .is_some_and(|n| n > 0)
}

/// Asks the Sentinels every [`FOLLOW_INTERVAL`] who the primary is, and moves the link there
/// when it changed. Ends with the last store that uses the link.
async fn follow(link: Weak<Link>, mut sentinel: SentinelClient) {
    loop {
        tokio::time::sleep(FOLLOW_INTERVAL).await;
        let Some(link) = link.upgrade() else { return };
        let named = tokio::time::timeout(Duration::from_secs(2), sentinel.async_get_client()).await;
        let Ok(Ok(client)) = named else {
            tracing::debug!("no Sentinel named a primary this round");
            continue;
        };
        let current = link.current();
        if addr(&client) != addr(&current.client) {
            match tokio::time::timeout(Duration::from_secs(5), manager(&client)).await {
                Ok(Ok(manager)) => {
                    tracing::warn!(
                        from = %addr(&current.client),
                        to = %addr(&client),
                        "Redis failover: following the new primary"
                    );
                    *link.current.write().unwrap_or_else(PoisonError::into_inner) =
                        Conn { client, manager };
                }
                _ => continue,
            }
        }
        let replicated = has_replicas(link.current().manager).await;
        link.replicated.store(replicated, Ordering::Relaxed);
    }
}
