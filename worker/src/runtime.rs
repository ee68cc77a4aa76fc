//! The worker's life: connect, consume, reconnect with backoff, drain.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};
use warren_kit::args::safe_url;
use warren_protocol::{JobId, WorkerId, now_ms};
use warren_store::{Store, StoreOptions};
use warren_topology::lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use warren_topology::lapin::types::FieldTable;
use warren_topology::{AmqpPool, Publisher, Topology, connect_pool_tls};

use crate::args::WorkerArgs;
use crate::task::Handler;
use crate::{Worker, control, handle, heartbeat};

/// What every job-handling task of one worker shares.
pub(crate) struct Runtime {
    pub(crate) id: WorkerId,
    pub(crate) hostname: String,
    pub(crate) args: WorkerArgs,
    pub(crate) store: Store,
    pub(crate) topology: Topology,
    pub(crate) tasks: BTreeMap<String, Handler>,
    pub(crate) started_at_ms: u64,
    publisher: Mutex<Publisher>,
    /// Jobs running here, with the token that stops each.
    running: Mutex<HashMap<JobId, CancellationToken>>,
    /// Set when the drain grace has run out: stopped jobs are requeued, not failed.
    aborting: AtomicBool,
    /// One permit per slot: deliveries beyond the slots wait here, in order, already in
    /// this process, so a finishing job's successor starts without a broker round trip.
    pub(crate) slots: tokio::sync::Semaphore,
    /// Set when shutdown begins: deliveries still waiting for a slot go back to the scheduler.
    draining: AtomicBool,
}

impl Runtime {
    /// Returns the current publisher (a clone: never hold the lock across an await).
    pub(crate) fn publisher(&self) -> Publisher {
        lock(&self.publisher).clone()
    }

    fn replace_publisher(&self, publisher: Publisher) {
        *lock(&self.publisher) = publisher;
    }

    /// Registers a running job; `None` if it already runs here (a duplicate delivery).
    pub(crate) fn start_job(&self, id: JobId) -> Option<CancellationToken> {
        let mut running = lock(&self.running);
        if running.contains_key(&id) {
            return None;
        }
        let token = CancellationToken::new();
        running.insert(id, token.clone());
        Some(token)
    }

    pub(crate) fn finish_job(&self, id: JobId) {
        lock(&self.running).remove(&id);
    }

    /// Stops a running job (client cancel).
    pub(crate) fn cancel_job(&self, id: JobId) -> bool {
        match lock(&self.running).get(&id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    pub(crate) fn running_ids(&self) -> Vec<JobId> {
        lock(&self.running).keys().copied().collect()
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub(crate) fn is_aborting(&self) -> bool {
        self.aborting.load(Ordering::SeqCst)
    }

    fn abort_all(&self) {
        self.aborting.store(true, Ordering::SeqCst);
        for token in lock(&self.running).values() {
            token.cancel();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave the maps inconsistent (single inserts
    // and removes), so a poisoned lock is still usable.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) async fn run(worker: Worker, shutdown: CancellationToken) -> anyhow::Result<()> {
    let Worker {
        id,
        hostname,
        mut args,
        tasks,
    } = worker;
    args.check()?;
    let common = &args.common;
    let store = Store::connect_args(
        &common.redis,
        &common.namespace,
        StoreOptions {
            result_ttl: common.result_ttl,
            ..Default::default()
        },
        &warren_store::RedisTls::from_args(&common.redis.tls)?,
    )
    .await
    .with_context(|| format!("connecting to redis at {}", common.redis.describe()))?;
    let pool = connect_pool_tls(&common.amqp.url, "warren-worker", 1, common.amqp.ca_pem()?)
        .await
        .with_context(|| format!("connecting to rabbitmq at {}", safe_url(&common.amqp.url)))?;
    let topology = Topology::configured(
        common.namespace.clone(),
        &common.amqp.queue_type,
        common.signing.key_text()?.as_deref(),
    )
    .map_err(anyhow::Error::msg)?;
    let publisher = open_publisher(&pool, &topology, &id).await?;
    let custom: Vec<String> = tasks.keys().cloned().collect();
    store
        .register_tasks(&custom)
        .await
        .context("registering tasks")?;

    let args_slots = usize::try_from(args.slots).unwrap_or(1);
    let rt = Arc::new(Runtime {
        id,
        hostname,
        args,
        store,
        topology,
        tasks,
        started_at_ms: now_ms(),
        publisher: Mutex::new(publisher),
        running: Mutex::new(HashMap::new()),
        aborting: AtomicBool::new(false),
        slots: tokio::sync::Semaphore::new(args_slots),
        draining: AtomicBool::new(false),
    });
    info!(worker_id = %rt.id, pool = %rt.args.tags, slots = rt.args.slots, "worker ready");
    warren_kit::metrics::serve_if_set(&rt.args.metrics, &shutdown).await?;
    crate::metrics::slots(&rt);

    let tracker = TaskTracker::new();
    let heartbeat_stop = CancellationToken::new();
    let heartbeats = tokio::spawn(heartbeat::run(rt.clone(), heartbeat_stop.clone()));

    let mut backoff = warren_kit::Backoff::default();
    loop {
        let started = std::time::Instant::now();
        match session(&rt, &pool, &tracker, &shutdown).await {
            Ok(()) => break,
            Err(error) => {
                if started.elapsed() > Duration::from_secs(30) {
                    // It had been working: this is a fresh outage, retry quickly at first.
                    backoff.reset();
                }
                let error = format!("{error:#}");
                if is_consumer_timeout(&error) {
                    warn!(
                        "RabbitMQ closed the channel because a job ran longer than its consumer_timeout; \
                         running jobs go on and finish once (the job record in Redis owns them), but \
                         raise the broker's setting above your longest job timeout to avoid this: \
                         `consumer_timeout = 86400000` in rabbitmq.conf, or at run time \
                         `rabbitmqctl eval 'application:set_env(rabbit, consumer_timeout, 86400000).'`"
                    );
                }
                warn!(error, retry_in = ?backoff.peek(), "worker lost its broker session");
                crate::metrics::amqp_reconnect();
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff.next_delay()) => {},
                }
                match open_publisher(&pool, &rt.topology, &rt.id).await {
                    Ok(publisher) => rt.replace_publisher(publisher),
                    Err(error) => warn!(
                        error = format!("{error:#}"),
                        "reopening the publisher failed"
                    ),
                }
            }
        }
    }

    drain(&rt, &tracker).await;
    heartbeat_stop.cancel();
    let _ = heartbeats.await;
    remove_own_queue(&rt).await;
    pool.close();
    info!(worker_id = %rt.id, "worker stopped");
    Ok(())
}

async fn open_publisher(
    pool: &AmqpPool,
    topology: &Topology,
    id: &WorkerId,
) -> anyhow::Result<Publisher> {
    let publisher = Publisher::open(pool, topology)
        .await
        .context("opening a publisher channel")?;
    warren_topology::declare_core(publisher.channel(), topology)
        .await
        .context("declaring the topology")?;
    warren_topology::declare_worker_queue(publisher.channel(), topology, id)
        .await
        .context("declaring the worker's queue")?;
    Ok(publisher)
}

/// One broker session: consume until shutdown (`Ok`) or until the connection fails (`Err`).
async fn session(
    rt: &Arc<Runtime>,
    pool: &AmqpPool,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let channel = Topology::channel(pool).await?;
    // Per-consumer prefetch (global = false): RabbitMQ 4.3 refuses global QoS. The slots
    // semaphore limits the jobs running at once; the prefetch lets a few more wait here, so
    // the next job is already local when one finishes (the scheduler sends at most slots +
    // its adaptive slack, and never beyond this worker's capacity).
    let prefetch = u16::try_from(rt.args.slots + PREFETCH_AHEAD).unwrap_or(u16::MAX);
    channel
        .basic_qos(prefetch, BasicQosOptions { global: false })
        .await
        .context("setting prefetch")?;
    let tag = format!("{}-jobs", rt.id);
    let mut consumer = channel
        .basic_consume(
            // Its own queue: the scheduler places each job on one worker, by capacity.
            rt.topology.worker_queue(&rt.id).into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .context("consuming the worker's queue")?;
    let control_stop = shutdown.child_token();
    let control = tokio::spawn(control::run(rt.clone(), pool.clone(), control_stop.clone()));

    let outcome = loop {
        tokio::select! {
            () = shutdown.cancelled() => {
                // No new deliveries; those already prefetched are in `tracker`, and those not
                // yet running go back to the scheduler.
                rt.draining.store(true, Ordering::SeqCst);
                let _ = channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default()).await;
                break Ok(());
            }
            next = consumer.next() => match next {
                Some(Ok(delivery)) => {
                    tracker.spawn(handle::delivery(rt.clone(), delivery));
                }
                Some(Err(error)) => break Err(anyhow::Error::new(error).context("pool queue consumer failed")),
                None => break Err(anyhow::anyhow!("pool queue consumer was cancelled by the broker")),
            }
        }
    };
    control_stop.cancel();
    let _ = control.await;
    outcome
}

/// Deliveries taken beyond the slots, waiting in this process for a free slot. Above the
/// scheduler's default slack cap (16): the scheduler decides how many wait here, and this only
/// bounds what a worker holds should a scheduler misbehave.
const PREFETCH_AHEAD: u32 = 32;

/// Tells whether a channel error is RabbitMQ's `consumer_timeout` (a delivery unacked for
/// longer than the broker allows). AMQP gives it only as text.
fn is_consumer_timeout(error: &str) -> bool {
    error.contains("PRECONDITION_FAILED")
        && error.contains("acknowledgement")
        && error.contains("timed out")
}

/// Deletes this worker's queue if nothing waits in it, so stopped workers leave nothing
/// behind. If jobs wait there (sent just before the drain), the queue stays until it
/// expires, and the scheduler's sweeper sends those jobs elsewhere once this worker's
/// heartbeats stop.
async fn remove_own_queue(rt: &Runtime) {
    let publisher = rt.publisher();
    let queue = rt.topology.worker_queue(&rt.id);
    let deleted = publisher
        .channel()
        .queue_delete(
            queue.as_str().into(),
            warren_topology::lapin::options::QueueDeleteOptions {
                if_empty: true,
                ..Default::default()
            },
        )
        .await;
    if let Err(error) = deleted {
        info!(%error, "kept this worker's queue (jobs wait in it; it expires by itself)");
    }
}

/// Lets running jobs finish within the grace period, then stops and requeues the rest.
async fn drain(rt: &Arc<Runtime>, tracker: &TaskTracker) {
    tracker.close();
    let grace = rt.args.shutdown.shutdown_grace;
    if !rt.running_ids().is_empty() {
        info!(
            running = rt.running_ids().len(),
            ?grace,
            "draining running jobs"
        );
    }
    if tokio::time::timeout(grace, tracker.wait()).await.is_ok() {
        return;
    }
    warn!(
        running = rt.running_ids().len(),
        "grace period over: stopping and requeueing the remaining jobs"
    );
    rt.abort_all();
    let bound = rt.args.kill_grace + Duration::from_secs(5);
    if tokio::time::timeout(bound, tracker.wait()).await.is_err() {
        warn!("some jobs did not stop in time; the broker will redeliver them");
    }
}

#[cfg(test)]
mod tests {
    use super::is_consumer_timeout;

    #[test]
    fn the_consumer_timeout_is_recognised_by_its_text() {
        // What lapin reports when RabbitMQ closes the channel (3.10 and later).
        let closed = "pool queue consumer failed: protocol error: AMQP soft error: \
            PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out. \
            Timeout value used: 1800000 ms. This timeout value can be configured, see \
            consumers doc guide to learn more";
        assert!(is_consumer_timeout(closed));
        assert!(!is_consumer_timeout("connection reset by peer"));
    }
}
