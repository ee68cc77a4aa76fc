//! One active session: the policy core in memory, fed by intake, heartbeats and job events,
//! its decisions sent out as dispatches. Everything it knows is rebuilt from Redis when it
//! opens, so a standby that takes over continues where the last one stopped.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use warren_protocol::{JobId, JobState, WorkerId, now_ms};
use warren_store::{JobEvent, Store, Transition, TransitionOutcome};
use warren_topology::lapin::message::Delivery;
use warren_topology::lapin::options::{BasicConsumeOptions, BasicQosOptions};
use warren_topology::lapin::types::FieldTable;
use warren_topology::{AmqpPool, Publisher, Topology};

use crate::args::SchedulerArgs;
use crate::dispatch::{self, Outcome};
use crate::intake::{self, Admitted, Estimates};
use crate::policy::{PolicyConfig, Reason, Scheduler};

/// How often the loop expires silent workers, renews the lease and writes its status.
const TICK: Duration = Duration::from_millis(500);
/// How often jobs of lost workers are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// Silence after which a worker gets no new work (or three heartbeat intervals, if longer).
const SUSPEND_AFTER: Duration = Duration::from_secs(2);
/// Silence after which a worker is forgotten (or ten heartbeat intervals, if longer).
const FORGET_AFTER: Duration = Duration::from_secs(10);
/// Dispatched jobs older than this are checked against Redis now and then.
const RECONCILE_AFTER_MS: u64 = 10_000;
/// Ticks between prunes of expired jobs' index entries (every 10 s).
const PRUNE_EVERY_TICKS: u64 = 20;
/// How long the status document outlives its writer.
const STATUS_TTL: Duration = Duration::from_secs(10);

pub(crate) enum Report {
    Admitted(Vec<Admitted>),
    Dispatched(Vec<Outcome>),
    Swept(Vec<Admitted>),
    Policy(Box<PolicyConfig>, String),
    /// Dispatched jobs that Redis says are no longer on their worker (their end's event was
    /// lost): their capacity comes back.
    Settled(Vec<JobId>),
    /// A pending job finished while it waited (cancelled, timed out): out of the order.
    Removed(crate::policy::JobClass, crate::policy::PendingJob),
}

pub(crate) struct Session {
    store: Store,
    publisher: Publisher,
    pool: AmqpPool,
    prefetch: u16,
    leader_ttl: Duration,
    lifecycle: crate::args::LifecycleArgs,
    instance: String,
    core: Scheduler,
    estimates: Estimates,
    /// What the admission task reads: estimates and policy as of the last change.
    shared: Arc<Mutex<(Estimates, PolicyConfig)>>,
    /// Why each class's first job waits, and whether it changed since the last write.
    class_reasons: HashMap<String, (String, bool)>,
    /// Dispatched jobs not yet ended, to learn runtimes and the dispatch round trip.
    dispatched: HashMap<JobId, Sent>,
    orders: mpsc::UnboundedSender<Vec<dispatch::Order>>,
    last_seen: HashMap<WorkerId, (Instant, Duration)>,
    declared: HashSet<WorkerId>,
    reasons: HashMap<JobId, String>,
    applied_policy: Option<String>,
    reports_tx: mpsc::UnboundedSender<Report>,
    reports: mpsc::UnboundedReceiver<Report>,
    /// Jobs whose submission is still in flight go here, to wait out of the order.
    held: mpsc::UnboundedSender<Vec<Admitted>>,
    /// The holding task's end of `held`, taken when the session runs.
    held_rx: Option<mpsc::UnboundedReceiver<Vec<Admitted>>>,
}

impl Session {
    pub(crate) async fn open(
        args: &SchedulerArgs,
        config: PolicyConfig,
        pool: &AmqpPool,
        topology: &Topology,
        store: &Store,
        instance: &str,
    ) -> anyhow::Result<Self> {
        let publisher = Publisher::open(pool, topology).await?;
        warren_topology::declare_core(publisher.channel(), topology).await?;
        let (reports_tx, reports) = mpsc::unbounded_channel();
        // Dispatch runs beside the loop for the whole session (its channel closes with it).
        let (orders, orders_rx) = mpsc::unbounded_channel();
        let (outcomes_tx, mut outcomes_rx) = mpsc::unbounded_channel();
        tokio::spawn(dispatch::run(
            orders_rx,
            store.clone(),
            publisher.clone(),
            outcomes_tx,
        ));
        let forward = reports_tx.clone();
        tokio::spawn(async move {
            while let Some(outcomes) = outcomes_rx.recv().await {
                if forward.send(Report::Dispatched(outcomes)).is_err() {
                    return;
                }
            }
        });
        let learned = store.runtime_estimates().await.unwrap_or_default();
        let estimates = Estimates {
            learned,
            default_ms: args.policy.default_runtime.as_millis() as u64,
        };
        let shared = Arc::new(Mutex::new((estimates.clone(), config.clone())));
        let (held, held_rx) = mpsc::unbounded_channel();
        let mut session = Self {
            store: store.clone(),
            publisher,
            pool: pool.clone(),
            prefetch: args.prefetch,
            leader_ttl: args.leader_ttl,
            lifecycle: args.lifecycle.clone(),
            instance: instance.to_owned(),
            core: Scheduler::new(config),
            estimates,
            shared,
            class_reasons: HashMap::new(),
            dispatched: HashMap::new(),
            orders,
            last_seen: HashMap::new(),
            declared: HashSet::new(),
            reasons: HashMap::new(),
            applied_policy: None,
            reports_tx,
            reports,
            held,
            held_rx: Some(held_rx),
        };
        session.rebuild().await?;
        Ok(session)
    }

    /// Loads workers, the pending index and what runs where from Redis.
    async fn rebuild(&mut self) -> anyhow::Result<()> {
        for heartbeat in self
            .store
            .live_workers()
            .await
            .context("reading live workers")?
        {
            self.on_heartbeat(heartbeat, false).await;
        }
        let classes = self
            .store
            .pending_classes()
            .await
            .context("reading the pending index")?;
        // Marked jobs wait out of the order, as admission would have left them. The set
        // holds only submissions in flight, so it is small.
        let submitting = self
            .store
            .submitting_ids()
            .await
            .context("reading the submissions in flight")?;
        let mut held = Vec::new();
        let mut loaded = 0usize;
        for (class_id, json) in classes {
            let Ok(class) = serde_json::from_str::<crate::policy::JobClass>(&json) else {
                warn!(%class_id, "ignoring a pending class that does not parse");
                continue;
            };
            let mut offset = 0;
            loop {
                let page = self.store.pending_page(&class_id, offset, 10_000).await?;
                if page.is_empty() {
                    break;
                }
                offset += page.len() as isize;
                for member in &page {
                    let Some(job) = intake::parse_member(member) else {
                        continue;
                    };
                    if submitting.contains(&job.id) {
                        held.push(Admitted {
                            class: class.clone(),
                            job,
                            deadline_ms: None,
                        });
                    } else {
                        loaded += usize::from(self.core.add(&class, job));
                    }
                }
            }
            if offset == 0 {
                let _ = self.store.pending_drop_class_if_empty(&class_id).await;
            }
        }
        let mut running = 0usize;
        for state in [JobState::Scheduled, JobState::Running] {
            let ids = self.store.ids_in_state(state, 100_000).await?;
            for page in ids.chunks(500) {
                let records = self.store.get_many(page).await?;
                for (id, record) in page.iter().copied().zip(records) {
                    let Some(record) = record else {
                        continue;
                    };
                    let (Some(worker), Ok(task)) = (record.worker.clone(), record.spec.validate())
                    else {
                        continue;
                    };
                    let admitted = intake::classify(
                        id,
                        &record.spec,
                        &task,
                        record.created_ms,
                        &self.estimates,
                    );
                    let worker = WorkerId::from_raw(worker);
                    let started = record.updated_ms;
                    if self.core.restore_running(
                        id,
                        &worker,
                        &admitted.class,
                        started,
                        admitted.job.est_ms,
                    ) {
                        running += 1;
                    }
                }
            }
        }
        let held_count = held.len();
        if !held.is_empty() {
            let _ = self.held.send(held);
        }
        info!(
            pending = loaded,
            held = held_count,
            running,
            workers = self.core.workers().count(),
            "scheduler state rebuilt from redis"
        );
        Ok(())
    }

    pub(crate) async fn run(&mut self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let topology = self.publisher.topology().clone();
        let channel = Topology::channel(&self.pool).await?;
        channel
            .basic_qos(self.prefetch, BasicQosOptions { global: false })
            .await
            .context("setting the intake prefetch")?;
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
        let mut delay = tokio::spawn(crate::delay::run(
            self.pool.clone(),
            self.publisher.clone(),
            self.store.clone(),
            stop.clone(),
        ));
        let mut dead = tokio::spawn(crate::dead::run(
            self.pool.clone(),
            topology.clone(),
            self.store.clone(),
            stop.clone(),
        ));
        let (admit_tx, admit_rx) = mpsc::unbounded_channel();
        let admission = tokio::spawn(admit_batches(
            admit_rx,
            self.publisher.clone(),
            self.store.clone(),
            self.shared.clone(),
            (self.reports_tx.clone(), self.held.clone()),
        ));
        if let Some(held_rx) = self.held_rx.take() {
            tokio::spawn(crate::hold::run(
                held_rx,
                self.store.clone(),
                self.reports_tx.clone(),
                stop.clone(),
            ));
        }
        let mut tick = tokio::time::interval(TICK);
        let mut ticks: u64 = 0;
        let mut last_sweep = Instant::now();
        info!("scheduler consuming intake");

        let outcome = loop {
            tokio::select! {
                () = shutdown.cancelled() => break Ok(()),
                next = intake_consumer.next() => match next {
                    Some(Ok(delivery)) => {
                        let _ = admit_tx.send(delivery);
                    }
                    Some(Err(error)) => break Err(anyhow::Error::new(error).context("intake consumer failed")),
                    None => break Err(anyhow::anyhow!("intake consumer cancelled by the broker")),
                },
                Some(report) = self.reports.recv() => self.on_report(report),
                next = heartbeats.next() => match next {
                    Some(Ok((heartbeat, offline))) => self.on_heartbeat(heartbeat, offline).await,
                    Some(Err(error)) => break Err(error.context("heartbeat consumer failed")),
                    None => break Err(anyhow::anyhow!("heartbeat consumer ended")),
                },
                next = events.next() => match next {
                    Some(event) => self.on_event(&event),
                    None => break Err(anyhow::anyhow!("redis event subscription ended")),
                },
                // The delay ladder's exit is part of the session: if it stops, so does the
                // session, and the reconnect starts both again.
                ended = &mut delay => {
                    if shutdown.is_cancelled() {
                        // It stopped because we are stopping.
                        break Ok(());
                    }
                    break Err(match ended {
                        Ok(Ok(())) => anyhow::anyhow!("the delay ladder's consumer stopped"),
                        Ok(Err(error)) => error.context("the delay ladder's consumer failed"),
                        Err(error) => anyhow::anyhow!("the delay ladder's task ended: {error}"),
                    });
                }
                // So is the dead-letter queue's consumer.
                ended = &mut dead => {
                    if shutdown.is_cancelled() {
                        break Ok(());
                    }
                    break Err(match ended {
                        Ok(Ok(())) => anyhow::anyhow!("the dead-letter consumer stopped"),
                        Ok(Err(error)) => error.context("the dead-letter consumer failed"),
                        Err(error) => anyhow::anyhow!("the dead-letter task ended: {error}"),
                    });
                }
                _ = tick.tick() => {
                    ticks += 1;
                    if ticks.is_multiple_of(PRUNE_EVERY_TICKS) {
                        self.spawn_prune();
                        self.spawn_reap_submits();
                        self.spawn_reconcile();
                    }
                    match self.store.lead(&self.instance, self.leader_ttl).await {
                        Ok(true) => {}
                        Ok(false) => break Err(anyhow::anyhow!("another scheduler took the leader lease")),
                        Err(error) => warn!(%error, "could not renew the leader lease"),
                    }
                    self.expire_workers();
                    self.spawn_deadline_check();
                    for (job, class, reason) in self.core.head_reasons() {
                        self.note_reason(job, &class, &reason);
                    }
                    self.flush_class_reasons();
                    if ticks.is_multiple_of(2) {
                        self.write_class_ranks();
                    }
                    self.write_status();
                    self.check_policy();
                    if last_sweep.elapsed() >= SWEEP_EVERY {
                        last_sweep = Instant::now();
                        self.spawn_sweep();
                        let store = self.store.clone();
                        let estimates: Vec<(String, u64)> =
                            self.estimates.learned.iter().map(|(t, ms)| (t.clone(), *ms)).collect();
                        tokio::spawn(async move { let _ = store.set_runtime_estimates(&estimates).await; });
                    }
                }
            }
            self.decide();
        };
        stop.cancel();
        drop(admit_tx);
        let _ = admission.await;
        if !delay.is_finished() {
            let _ = delay.await;
        }
        if !dead.is_finished() {
            let _ = dead.await;
        }
        let _ = channel.close(200, "scheduler stopping".into()).await;
        self.persist_estimates().await;
        outcome
    }

    fn on_report(&mut self, report: Report) {
        match report {
            Report::Admitted(jobs) => {
                for admitted in jobs {
                    self.core.add(&admitted.class, admitted.job);
                }
            }
            Report::Swept(jobs) => {
                for admitted in jobs {
                    self.core.add(&admitted.class, admitted.job);
                }
            }
            Report::Dispatched(outcomes) => {
                for outcome in outcomes {
                    self.on_outcome(outcome);
                }
            }
            Report::Settled(jobs) => {
                let now = now_ms();
                for job in jobs {
                    self.dispatched.remove(&job);
                    self.core.finished(job, now);
                }
            }
            Report::Removed(class, job) => {
                self.core.remove(&class, &job);
            }
            Report::Policy(config, json) => {
                info!(policy = %config.preset, "applying a new scheduling policy");
                self.core.set_config((*config).clone());
                self.applied_policy = Some(json);
                lock(&self.shared).1 = (*config).clone();
                tokio::spawn(rescore(self.store.clone(), *config));
            }
        }
    }

    fn on_outcome(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Gone(job) => {
                self.core.finished(job, now_ms());
                self.dispatched.remove(&job);
            }
            Outcome::Failed(dispatch) => {
                self.core.finished(dispatch.job, now_ms());
                self.dispatched.remove(&dispatch.job);
                // Back in the order it had; a short pause, so a broker outage does not spin.
                let tx = self.reports_tx.clone();
                let admitted = Admitted {
                    class: dispatch.class,
                    job: dispatch.factors,
                    deadline_ms: None,
                };
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let _ = tx.send(Report::Admitted(vec![admitted]));
                });
            }
        }
    }

    async fn on_heartbeat(&mut self, heartbeat: warren_protocol::Heartbeat, offline: bool) {
        let id = heartbeat.worker_id.clone();
        if offline || heartbeat.draining {
            self.last_seen.remove(&id);
            self.core.remove_worker(&id);
            return;
        }
        let interval = Duration::from_millis(heartbeat.interval_ms.max(100));
        self.last_seen
            .insert(id.clone(), (Instant::now(), interval));
        if !self.declared.contains(&id) {
            let topology = self.publisher.topology().clone();
            match warren_topology::declare_worker_queue(self.publisher.channel(), &topology, &id)
                .await
            {
                Ok(()) => {
                    self.declared.insert(id.clone());
                }
                Err(error) => {
                    warn!(worker = %id, %error, "could not declare a worker's queue");
                    return;
                }
            }
        }
        self.core.upsert_worker(heartbeat);
    }

    /// A worker that missed three heartbeats (and at least `SUSPEND_AFTER`) gets no new work
    /// but keeps its placements: a loaded machine can be late. One silent for `FORGET_AFTER`
    /// is forgotten; the sweeper returns its jobs to the index once their leases lapse.
    fn expire_workers(&mut self) {
        let mut forget = Vec::new();
        for (id, (at, interval)) in &self.last_seen {
            let silent = at.elapsed();
            if silent > FORGET_AFTER.max(*interval * 10) {
                forget.push(id.clone());
            } else if silent > SUSPEND_AFTER.max(*interval * 3) {
                self.core.suspend_worker(id);
            }
        }
        for id in forget {
            info!(worker = %id, "worker stopped sending heartbeats");
            self.last_seen.remove(&id);
            self.declared.remove(&id);
            self.core.remove_worker(&id);
        }
    }

    fn on_event(&mut self, event: &JobEvent) {
        let Ok(id) = event.id.parse::<JobId>() else {
            return;
        };
        if event.state == JobState::Running {
            self.core.started(id, event.at);
            if let Some(sent) = self.dispatched.get_mut(&id) {
                if std::mem::take(&mut sent.to_free_slot) {
                    // Both ends on this scheduler's clock: the worker's may differ.
                    self.core
                        .observe_dispatch_rtt(now_ms().saturating_sub(sent.decided_ms));
                }
                sent.since_ms = event.at;
            }
        }
        let leaves_worker = event.state.is_terminal()
            || event.state == JobState::Retrying
            || (event.state == JobState::Queued && event.from != JobState::Queued);
        if leaves_worker {
            if let Some(sent) = self.dispatched.remove(&id)
                && event.state == JobState::Succeeded
            {
                // Run time: from its `running` event (or its dispatch) to its end.
                self.estimates
                    .observe(&sent.task, event.at.saturating_sub(sent.since_ms));
                lock(&self.shared).0 = self.estimates.clone();
            }
            // The event's own time: it was stamped where the job ended.
            self.core.finished(id, event.at.max(1));
            if event.state == JobState::Queued {
                self.readmit_if_pending(id);
            }
        }
        if event.state.is_terminal() && event.from == JobState::Queued {
            // Cancelled (or failed by an operator, or by its schedule timeout) while it
            // waited: it must never start. The index knows its class and factors; should it
            // reach a dispatch first, the dispatch finds it finished and drops it.
            let (store, tx) = (self.store.clone(), self.reports_tx.clone());
            tokio::spawn(async move {
                let Ok(Some(place)) = store.pending_position(id).await else {
                    return;
                };
                let _ = store
                    .pending_remove(id, &place.class_id, &place.member)
                    .await;
                let class = place
                    .class_json
                    .as_deref()
                    .and_then(|json| serde_json::from_str(json).ok());
                if let (Some(class), Some(job)) = (class, intake::parse_member(&place.member)) {
                    let _ = tx.send(Report::Removed(class, job));
                }
            });
            self.reasons.remove(&id);
        }
    }

    /// A job handed back by its worker (a draining worker bounces what it has not started:
    /// it publishes the job to intake, then marks it `queued`) can reach admission while
    /// this scheduler still counts it as running there; the core then ignores it, and
    /// without this it would wait in the Redis index, in no one's memory, for ever. Once it
    /// has left its worker, whatever the index holds for it goes back into the order
    /// (adding a job already there is a no-op).
    fn readmit_if_pending(&self, id: JobId) {
        let (store, tx) = (self.store.clone(), self.reports_tx.clone());
        tokio::spawn(async move {
            let Ok(Some(place)) = store.pending_position(id).await else {
                return;
            };
            let class = place
                .class_json
                .as_deref()
                .and_then(|json| serde_json::from_str(json).ok());
            if let (Some(class), Some(job)) = (class, intake::parse_member(&place.member)) {
                let _ = tx.send(Report::Admitted(vec![Admitted {
                    class,
                    job,
                    deadline_ms: None,
                }]));
            }
        });
    }

    /// Runs a round of the policy and sends what it chose.
    fn decide(&mut self) {
        let round = self.core.decide(now_ms());
        let mut orders = Vec::with_capacity(round.dispatches.len());
        for dispatch in round.dispatches {
            let pool = self
                .core
                .workers()
                .find(|w| w.heartbeat.worker_id == dispatch.worker)
                .map(|w| w.heartbeat.pool.to_string())
                .unwrap_or_default();
            self.reasons.remove(&dispatch.job);
            let now = now_ms();
            self.dispatched.insert(
                dispatch.job,
                Sent {
                    task: dispatch.class.task.task_name().to_owned(),
                    since_ms: now,
                    decided_ms: now,
                    to_free_slot: dispatch.to_free_slot,
                },
            );
            orders.push((dispatch, pool));
        }
        if !orders.is_empty() {
            let _ = self.orders.send(orders);
        }
        for (job, class, reason) in round.waiting {
            self.note_reason(job, &class, &reason);
        }
    }

    /// Records why a class's first job waits: on the job (once per distinct reason) and on
    /// the class, which explains every job behind it.
    fn note_reason(&mut self, job: JobId, class: &crate::policy::JobClass, reason: &Reason) {
        let text = reason.to_string();
        let (class_id, _) = intake::class_id(class);
        match self.class_reasons.get_mut(&class_id) {
            Some(entry) if entry.0 == text => {}
            Some(entry) => *entry = (text.clone(), true),
            None => {
                self.class_reasons.insert(class_id, (text.clone(), true));
            }
        }
        if self.reasons.get(&job) == Some(&text) {
            return;
        }
        self.reasons.insert(job, text.clone());
        let store = self.store.clone();
        debug!(job_id = %job, reason = %text, "job waits");
        tokio::spawn(async move {
            if let Err(error) = store.set_pending_reason(job, &text).await {
                warn!(job_id = %job, %error, "could not record pending reason");
            }
        });
    }

    fn flush_class_reasons(&mut self) {
        let changed: Vec<(String, String)> = self
            .class_reasons
            .iter_mut()
            .filter(|(_, (_, dirty))| *dirty)
            .map(|(id, (text, dirty))| {
                *dirty = false;
                (id.clone(), text.clone())
            })
            .collect();
        if changed.is_empty() {
            return;
        }
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(error) = store.set_class_reasons(&changed).await {
                debug!(%error, "could not record class reasons");
            }
        });
    }

    /// Fails jobs that waited longer than their `schedule_timeout_s`. Only from `queued`: a
    /// job dispatched meanwhile runs. The failure's event removes it from the index.
    fn spawn_deadline_check(&self) {
        let store = self.store.clone();
        tokio::spawn(async move {
            let Ok(due) = store.due_deadlines(now_ms(), 100).await else {
                return;
            };
            for id in due {
                let reason = match store.pending_position(id).await {
                    Ok(Some(place)) => place.class_reason,
                    _ => None,
                };
                let error = format!(
                    "schedule_timeout: not placed within its schedule_timeout_s ({})",
                    reason.as_deref().unwrap_or("no reason recorded")
                );
                let fail = Transition::new(id, JobState::Failed)
                    .only_from(&[JobState::Queued])
                    .set("error", &error);
                match store.transition(&fail).await {
                    Ok(outcome) => {
                        if matches!(outcome, TransitionOutcome::Done(_)) {
                            info!(job_id = %id, "job failed: schedule timeout");
                        }
                        // Failed now, or no longer waiting: either way the deadline is done.
                        let _ = store.drop_deadline(id).await;
                    }
                    // Kept: the next check tries again.
                    Err(error) => debug!(job_id = %id, %error, "could not fail a timed-out job"),
                }
            }
        });
    }

    /// Publishes each waiting class's place in line, once a second, for job explanations.
    fn write_class_ranks(&self) {
        let ranks: Vec<(String, u64)> = self
            .core
            .class_order()
            .into_iter()
            .enumerate()
            .map(|(rank, class)| (intake::class_id(class).0, rank as u64))
            .collect();
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(error) = store.set_class_ranks(&ranks).await {
                debug!(%error, "could not record class ranks");
            }
        });
    }

    /// Checks jobs dispatched a while ago against Redis: job events travel by pub/sub, which
    /// can drop one (a resubscription), and a job whose end went unheard would hold its
    /// worker's capacity for ever.
    fn spawn_reconcile(&self) {
        let overdue = self.core.running_since(now_ms(), RECONCILE_AFTER_MS);
        if overdue.is_empty() {
            return;
        }
        let (store, tx) = (self.store.clone(), self.reports_tx.clone());
        tokio::spawn(async move {
            for page in overdue.chunks(500) {
                let Ok(states) = store.states(page).await else {
                    return;
                };
                let settled: Vec<JobId> = page
                    .iter()
                    .zip(states)
                    .filter(|(_, state)| {
                        !matches!(state, Some(JobState::Scheduled | JobState::Running))
                    })
                    .map(|(id, _)| *id)
                    .collect();
                if !settled.is_empty() {
                    let _ = tx.send(Report::Settled(settled));
                }
            }
        });
    }

    /// Drops the listing-index entries of jobs whose records expired, so listings and counts
    /// stay right without anyone calling `GET /v1/stats`.
    fn spawn_prune(&self) {
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(error) = store.prune_expired(10_000).await {
                debug!(%error, "could not prune expired jobs from the indexes");
            }
        });
    }

    /// Removes jobs of submissions that died between writing them and the broker's confirm
    /// (no client got a 202 for them), so they neither run nor linger as `queued`.
    fn spawn_reap_submits(&self) {
        let store = self.store.clone();
        let after = self.lifecycle.submit_reap_after.as_millis() as u64;
        tokio::spawn(async move {
            match store
                .reap_interrupted_submits(now_ms().saturating_sub(after), 1000)
                .await
            {
                Ok(removed) if !removed.is_empty() => {
                    warn!(
                        jobs = removed.len(),
                        first_job_id = %removed[0],
                        "removed jobs whose submission was interrupted (never confirmed)"
                    );
                }
                Ok(_) => {}
                Err(error) => debug!(%error, "could not reap interrupted submissions"),
            }
        });
    }

    fn spawn_sweep(&self) {
        let live: HashSet<WorkerId> = self.last_seen.keys().cloned().collect();
        let (store, tx, estimates) = (
            self.store.clone(),
            self.reports_tx.clone(),
            self.estimates.clone(),
        );
        let config = self.core.config().clone();
        let (publisher, max_takeovers) = (self.publisher.clone(), self.lifecycle.max_takeovers);
        tokio::spawn(async move {
            let limits = crate::sweep::Limits {
                publisher: &publisher,
                max_takeovers,
            };
            let back = crate::sweep::sweep(&store, &live, &estimates, &config, &limits).await;
            if !back.is_empty() {
                let _ = tx.send(Report::Swept(back));
            }
        });
    }

    fn write_status(&self) {
        let summary = self.core.status();
        crate::metrics::record_status(&summary);
        let mut status = serde_json::to_value(summary).unwrap_or_default();
        if let Some(object) = status.as_object_mut() {
            object.insert("instance".into(), self.instance.clone().into());
            object.insert("active".into(), true.into());
            object.insert("at_ms".into(), now_ms().into());
        }
        let store = self.store.clone();
        tokio::spawn(async move {
            let _ = store
                .set_scheduler_status(&status.to_string(), STATUS_TTL)
                .await;
        });
    }

    /// Applies a policy an operator asked for (through the API) since the last look.
    fn check_policy(&self) {
        let (store, tx, applied) = (
            self.store.clone(),
            self.reports_tx.clone(),
            self.applied_policy.clone(),
        );
        tokio::spawn(async move {
            let Ok(Some(json)) = store.desired_policy().await else {
                return;
            };
            if applied.as_deref() == Some(json.as_str()) {
                return;
            }
            match serde_json::from_str::<PolicyConfig>(&json) {
                Ok(config) if config.check().is_ok() => {
                    let _ = tx.send(Report::Policy(Box::new(config), json));
                }
                _ => warn!("ignoring a stored scheduling policy that does not check"),
            }
        });
    }

    async fn persist_estimates(&self) {
        let estimates: Vec<(String, u64)> = self
            .estimates
            .learned
            .iter()
            .map(|(task, ms)| (task.clone(), *ms))
            .collect();
        let _ = self.store.set_runtime_estimates(&estimates).await;
    }
}

/// A dispatched job the scheduler waits to hear the end of.
struct Sent {
    task: String,
    /// When it started running (its `running` event), or was dispatched until then (ms).
    since_ms: u64,
    /// When the scheduler chose it (ms, this scheduler's clock).
    decided_ms: u64,
    /// Sent to a free slot, its round trip not yet measured.
    to_free_slot: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain assignments under this lock cannot leave it inconsistent.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Admits intake messages in batches, one batch at a time, so jobs join the index in the
/// order RabbitMQ delivered them, with two Redis round trips per batch, not per job.
async fn admit_batches(
    mut deliveries: mpsc::UnboundedReceiver<Delivery>,
    publisher: Publisher,
    store: Store,
    shared: Arc<Mutex<(Estimates, PolicyConfig)>>,
    (reports, held): (
        mpsc::UnboundedSender<Report>,
        mpsc::UnboundedSender<Vec<Admitted>>,
    ),
) {
    const MAX_BATCH: usize = 512;
    while let Some(first) = deliveries.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match deliveries.try_recv() {
                Ok(delivery) => batch.push(delivery),
                Err(_) => break,
            }
        }
        let (estimates, config) = lock(&shared).clone();
        let admission = intake::admit(batch, &publisher, &store, &estimates, &config).await;
        if !admission.ready.is_empty() {
            let _ = reports.send(Report::Admitted(admission.ready));
        }
        if !admission.held.is_empty() {
            let _ = held.send(admission.held);
        }
    }
}

/// Re-keys the stored index after a policy change, so a job's place in its class reads
/// right (the in-memory order changed at once).
async fn rescore(store: Store, config: PolicyConfig) {
    let Ok(classes) = store.pending_classes().await else {
        return;
    };
    for class_id in classes.keys() {
        let mut offset = 0;
        loop {
            let Ok(page) = store.pending_page(class_id, offset, 10_000).await else {
                return;
            };
            if page.is_empty() {
                break;
            }
            offset += page.len() as isize;
            let scores: Vec<(String, i64)> = page
                .into_iter()
                .filter_map(|m| intake::parse_member(&m).map(|job| (m, job.key(&config))))
                .collect();
            let _ = store.pending_rescore(class_id, &scores).await;
        }
    }
}
