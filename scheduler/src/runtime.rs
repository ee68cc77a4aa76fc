//! The scheduling loop: one task owns the window and the cluster view; admission, releases
//! and Redis writes run beside it and report back over a channel.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use warren_kit::args::safe_url;
use warren_protocol::{JobId, JobState, PoolName};
use warren_store::{JobEvent, Store, StoreOptions, Transition};
use warren_topology::lapin::options::{BasicConsumeOptions, BasicQosOptions};
use warren_topology::lapin::types::FieldTable;
use warren_topology::{AmqpPool, Publisher, Topology, TopologyOptions, connect_pool};

use crate::args::SchedulerArgs;
use crate::cluster::Cluster;
use crate::intake::{self, Admission, Pending};
use crate::policy::{self, JobNeeds};

/// How often the loop expires silent workers and retries parked jobs.
const TICK: Duration = Duration::from_millis(500);
/// In-flight jobs older than this are checked against Redis, in case an event was lost.
const RECONCILE_AFTER: Duration = Duration::from_secs(10);

enum Report {
    Admitted(Box<Pending>),
    /// A release failed: the job goes back to the window.
    ReleaseFailed(Box<Pending>),
    /// Redis says these in-flight jobs are no longer in flight.
    Settled(Vec<JobId>),
}

pub(crate) async fn run(args: SchedulerArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let common = &args.common;
    let store = Store::connect(
        &common.redis.url,
        &common.namespace,
        StoreOptions {
            result_ttl: common.result_ttl,
            ..Default::default()
        },
    )
    .await
    .with_context(|| format!("connecting to redis at {}", safe_url(&common.redis.url)))?;
    let pool = connect_pool(&common.amqp.url, "warren-scheduler", 1)
        .await
        .with_context(|| format!("connecting to rabbitmq at {}", safe_url(&common.amqp.url)))?;
    let topology = Topology::new(common.namespace.clone(), TopologyOptions::default());
    info!(namespace = %common.namespace, window = args.prefetch, policy = ?args.policy, "scheduler starting");

    let mut cluster = Cluster::new(args.credit_slack);
    for heartbeat in store.live_workers().await.context("reading live workers")? {
        cluster.heartbeat(heartbeat, false);
    }
    let mut backoff = Duration::from_millis(200);
    loop {
        let started = std::time::Instant::now();
        let mut session = Session::open(&args, &pool, &topology, &store).await;
        let result = match &mut session {
            Ok(session) => session.run(&mut cluster, &shutdown).await,
            Err(error) => Err(anyhow::anyhow!("{error:#}")),
        };
        match result {
            Ok(()) => break,
            Err(error) => {
                if started.elapsed() > Duration::from_secs(30) {
                    // It had been working: this is a fresh outage, retry quickly at first.
                    backoff = Duration::from_millis(200);
                }
                warn!(error = format!("{error:#}"), retry_in = ?backoff, "scheduler lost its session");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {},
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
    pool.close();
    info!("scheduler stopped");
    Ok(())
}

struct Session {
    store: Store,
    publisher: Publisher,
    pool: AmqpPool,
    prefetch: u16,
    /// Jobs that some pool could run, in policy order.
    window: VecDeque<Pending>,
    /// Jobs no live pool can run; looked at again when the pools change.
    parked: Vec<Pending>,
    declared: HashSet<PoolName>,
    seq: u64,
    reports_tx: mpsc::UnboundedSender<Report>,
    reports: mpsc::UnboundedReceiver<Report>,
}

impl Session {
    async fn open(
        args: &SchedulerArgs,
        pool: &AmqpPool,
        topology: &Topology,
        store: &Store,
    ) -> anyhow::Result<Self> {
        let publisher = Publisher::open(pool, topology).await?;
        warren_topology::declare_core(publisher.channel(), topology).await?;
        let (reports_tx, reports) = mpsc::unbounded_channel();
        Ok(Self {
            store: store.clone(),
            publisher,
            pool: pool.clone(),
            prefetch: args.prefetch,
            window: VecDeque::new(),
            parked: Vec::new(),
            declared: HashSet::new(),
            seq: 0,
            reports_tx,
            reports,
        })
    }

    async fn run(
        &mut self,
        cluster: &mut Cluster,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let topology = self.publisher.topology().clone();
        let channel = Topology::channel(&self.pool).await?;
        // The window: RabbitMQ stops delivering once `prefetch` messages are unacked.
        channel
            .basic_qos(self.prefetch, BasicQosOptions { global: false })
            .await
            .context("setting the window")?;
        let mut intake_consumer = channel
            .basic_consume(
                topology.intake_queue().into(),
                "scheduler-intake".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .context("consuming intake")?;
        let mut heartbeats = crate::heartbeats::stream(&self.pool, &topology).await?;
        let mut events = self.store.subscribe_events().await?.boxed();
        let stop = shutdown.child_token();
        let delay = tokio::spawn(crate::delay::run(
            self.pool.clone(),
            self.publisher.clone(),
            self.store.clone(),
            stop.clone(),
        ));
        let mut tick = tokio::time::interval(TICK);
        let mut ticks: u64 = 0;
        info!("scheduler consuming intake");

        let outcome = loop {
            tokio::select! {
                () = shutdown.cancelled() => break Ok(()),
                next = intake_consumer.next() => match next {
                    Some(Ok(delivery)) => {
                        self.seq += 1;
                        let (seq, publisher, store, tx) =
                            (self.seq, self.publisher.clone(), self.store.clone(), self.reports_tx.clone());
                        tokio::spawn(async move {
                            if let Admission::Admit(pending) = intake::admit(seq, delivery, &publisher, &store).await {
                                let _ = tx.send(Report::Admitted(pending));
                            }
                        });
                    }
                    Some(Err(error)) => break Err(anyhow::Error::new(error).context("intake consumer failed")),
                    None => break Err(anyhow::anyhow!("intake consumer cancelled by the broker")),
                },
                Some(report) = self.reports.recv() => self.on_report(report, cluster),
                next = heartbeats.next() => match next {
                    Some(Ok((heartbeat, offline))) => {
                        let pool = heartbeat.pool.clone();
                        if cluster.heartbeat(heartbeat, offline) {
                            self.declare(pool).await;
                            self.unpark();
                        }
                    }
                    Some(Err(error)) => break Err(error.context("heartbeat consumer failed")),
                    None => break Err(anyhow::anyhow!("heartbeat consumer ended")),
                },
                next = events.next() => match next {
                    Some(event) => {
                        on_event(&event, cluster);
                        self.forget_finished(&event);
                    }
                    None => break Err(anyhow::anyhow!("redis event subscription ended")),
                },
                _ = tick.tick() => {
                    ticks += 1;
                    if cluster.expire() || ticks.is_multiple_of(10) {
                        self.unpark();
                    }
                    self.park_unrunnable(cluster);
                    if ticks.is_multiple_of(10) {
                        self.reconcile(cluster);
                        debug!(window = self.window.len(), parked = self.parked.len(),
                            in_flight = cluster.in_flight_count(), workers = cluster.worker_count(), "scheduler state");
                    }
                }
            }
            self.release(cluster);
        };
        stop.cancel();
        let _ = delay.await;
        // Unacked window messages return to intake when the channel closes.
        let _ = channel.close(200, "scheduler stopping".into()).await;
        self.window.clear();
        self.parked.clear();
        outcome
    }

    fn on_report(&mut self, report: Report, cluster: &mut Cluster) {
        match report {
            Report::Admitted(pending) => self.enqueue(*pending),
            Report::ReleaseFailed(pending) => {
                cluster.settled(pending.envelope.job_id);
                self.enqueue(*pending);
            }
            Report::Settled(ids) => {
                for id in ids {
                    cluster.settled(id);
                }
            }
        }
    }

    /// Inserts a job in FIFO position (admissions finish out of order by a little).
    fn enqueue(&mut self, pending: Pending) {
        let at = self
            .window
            .iter()
            .rposition(|p| p.seq < pending.seq)
            .map_or(0, |i| i + 1);
        self.window.insert(at, pending);
    }

    fn unpark(&mut self) {
        if self.parked.is_empty() {
            return;
        }
        for pending in std::mem::take(&mut self.parked) {
            self.enqueue(pending);
        }
    }

    async fn declare(&mut self, pool: PoolName) {
        if self.declared.contains(&pool) {
            return;
        }
        let topology = self.publisher.topology().clone();
        match warren_topology::declare_pool(self.publisher.channel(), &topology, &pool).await {
            Ok(()) => {
                self.declared.insert(pool);
            }
            Err(error) => warn!(%pool, %error, "could not declare pool queue"),
        }
    }

    /// Releases jobs in window order while pools have credit.
    fn release(&mut self, cluster: &mut Cluster) {
        let mut pools = cluster.pools();
        let mut i = 0;
        while i < self.window.len() && pools.iter().any(|p| p.credit > 0) {
            let pending = &self.window[i];
            let needs = JobNeeds {
                requires: &pending.envelope.spec.requires,
                task: &pending.task,
            };
            match policy::choose(&pools, needs) {
                Ok(Some(view)) => {
                    let pool = view.pool.clone();
                    if let Some(view) = pools.iter_mut().find(|p| p.pool == pool) {
                        view.credit -= 1;
                    }
                    let Some(pending) = self.window.remove(i) else {
                        break;
                    };
                    cluster.released(pending.envelope.job_id, pool.clone());
                    self.spawn_release(pending, pool);
                }
                Ok(None) => i += 1,
                Err(policy::NoMatch(reason)) => {
                    let Some(mut pending) = self.window.remove(i) else {
                        break;
                    };
                    self.note_reason(&mut pending, reason);
                    self.parked.push(pending);
                }
            }
        }
    }

    /// Drops a job that finished while it waited here (cancelled, or failed by an operator),
    /// so it neither takes a pool's credit nor reaches a worker. Only jobs that finish
    /// straight from `queued` can be here, which keeps the scan rare.
    fn forget_finished(&mut self, event: &JobEvent) {
        if !event.state.is_terminal() || event.from != JobState::Queued {
            return;
        }
        let Ok(id) = event.id.parse::<JobId>() else {
            return;
        };
        let waiting = |p: &Pending| p.envelope.job_id == id;
        let found = match self.window.iter().position(waiting) {
            Some(at) => self.window.remove(at),
            None => self
                .parked
                .iter()
                .position(waiting)
                .map(|at| self.parked.swap_remove(at)),
        };
        if let Some(pending) = found {
            debug!(job_id = %id, state = %event.state, "dropping a job that finished while it waited");
            tokio::spawn(async move { intake::ack(&pending.delivery).await });
        }
    }

    /// Records why a job waits, once per distinct reason.
    fn note_reason(&self, pending: &mut Pending, reason: String) {
        if pending.reason.as_deref() == Some(reason.as_str()) {
            return;
        }
        let (store, id) = (self.store.clone(), pending.envelope.job_id);
        debug!(job_id = %id, %reason, "job waits");
        pending.reason = Some(reason.clone());
        tokio::spawn(async move {
            if let Err(error) = store.set_pending_reason(id, &reason).await {
                warn!(job_id = %id, %error, "could not record pending reason");
            }
        });
    }

    /// Parks every windowed job that no live pool can run, recording why. Runs on the tick
    /// rather than per event: it scans the whole window.
    fn park_unrunnable(&mut self, cluster: &Cluster) {
        let pools = cluster.pools();
        let mut kept = VecDeque::with_capacity(self.window.len());
        for mut pending in std::mem::take(&mut self.window) {
            let needs = JobNeeds {
                requires: &pending.envelope.spec.requires,
                task: &pending.task,
            };
            if pools.iter().any(|p| policy::can_host(p, needs)) {
                kept.push_back(pending);
                continue;
            }
            let reason = policy::explain(&pools, needs).0;
            self.note_reason(&mut pending, reason);
            self.parked.push(pending);
        }
        self.window = kept;
    }

    /// Publish to the pool (confirmed), then ack intake, then record `scheduled`. A crash
    /// between the steps at worst duplicates the message, which the worker's claim absorbs.
    fn spawn_release(&self, pending: Pending, pool: PoolName) {
        let (publisher, store, tx) = (
            self.publisher.clone(),
            self.store.clone(),
            self.reports_tx.clone(),
        );
        tokio::spawn(async move {
            let id = pending.envelope.job_id;
            let sent = async {
                publisher
                    .send_pool(&pool, &pending.envelope)
                    .await?
                    .confirmed()
                    .await
            }
            .await;
            if let Err(error) = sent {
                warn!(job_id = %id, %pool, %error, "release failed; job returns to the window");
                let _ = tx.send(Report::ReleaseFailed(Box::new(pending)));
                return;
            }
            intake::ack(&pending.delivery).await;
            let scheduled = Transition::new(id, JobState::Scheduled)
                .at_attempt(pending.envelope.attempt)
                .set("pool", &pool);
            if let Err(error) = store.transition(&scheduled).await {
                // The worker's claim moves it on regardless.
                debug!(job_id = %id, %error, "could not record scheduled");
            }
        });
    }

    /// Checks long-running in-flight jobs against Redis, in case a completion event was lost.
    fn reconcile(&self, cluster: &Cluster) {
        let overdue = cluster.overdue(RECONCILE_AFTER);
        if overdue.is_empty() {
            return;
        }
        let (store, tx) = (self.store.clone(), self.reports_tx.clone());
        tokio::spawn(async move {
            let Ok(states) = store.states(&overdue).await else {
                return;
            };
            let done: Vec<JobId> = overdue
                .into_iter()
                .zip(states)
                .filter(|(_, state)| {
                    !matches!(state, Some(JobState::Scheduled | JobState::Running))
                })
                .map(|(id, _)| id)
                .collect();
            if !done.is_empty() {
                let _ = tx.send(Report::Settled(done));
            }
        });
    }
}

/// Gives credit back when a released job leaves its pool's hands.
fn on_event(event: &JobEvent, cluster: &mut Cluster) {
    let leaves_pool =
        event.state.is_terminal() || matches!(event.state, JobState::Retrying | JobState::Queued);
    if leaves_pool && let Ok(id) = event.id.parse::<JobId>() {
        cluster.settled(id);
    }
}
