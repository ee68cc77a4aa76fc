//! The policy core: every pending job in one ordered queue per class, the heads of those
//! queues compared by the policy, and each chosen job placed on a worker with room for it.
//!
//! Choosing a job costs O(log n): within a class the order is a job's fixed key (a B-tree),
//! and across classes an ordered set holds each non-empty class once, keyed by what the
//! policy compares (score, fair-share ratio or turn). Only the classes of the tenant (or
//! queue) that was just served are re-keyed after a dispatch.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use warren_protocol::{JobId, WorkerId};

use super::class::{JobClass, PendingJob, usage_units};
use super::config::{Mode, PolicyConfig};
use super::limits::Buckets;
use super::reason::{Reason, no_match};
use super::workers::{Placed, WorkerState};

/// A total order on `f64` (NaN never occurs: every input is checked finite).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Ordered(f64);

impl Eq for Ordered {}

impl PartialOrd for Ordered {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ordered {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// A class's place among the others: what the policy compares, then its head's key.
type Rank = (Ordered, i64, usize);

/// How well a worker fits a job: unneeded tags, then negated free slots, cores and GPUs
/// (smaller is better).
type Fit = (usize, i64, i64, i64);

/// The parts of a status document: classes with their pending counts, tenants as (name,
/// usage, running, weight), workers, and running jobs per queue.
pub(super) type StatusParts<'a> = (
    Vec<(&'a JobClass, usize)>,
    Vec<(&'a str, f64, u32, f64)>,
    &'a BTreeMap<WorkerId, WorkerState>,
    BTreeMap<String, u32>,
);

/// A pending job's factors without its id, packed: 16 bytes a job instead of 40, which
/// matters at a million pending jobs.
#[derive(Debug, Clone, Copy)]
struct Factors {
    arrival_ms: u64,
    /// Estimated runtime in ms, saturated at ~49 days.
    est_ms: u32,
    priority: u8,
}

impl Factors {
    fn of(job: &PendingJob) -> Self {
        Self {
            arrival_ms: job.arrival_ms,
            est_ms: u32::try_from(job.est_ms).unwrap_or(u32::MAX),
            priority: job.priority,
        }
    }

    fn job(self, id: JobId) -> PendingJob {
        PendingJob {
            id,
            arrival_ms: self.arrival_ms,
            priority: self.priority,
            est_ms: u64::from(self.est_ms),
        }
    }
}

#[derive(Debug)]
struct ClassQueue {
    class: JobClass,
    /// (key, job) → the job's other factors (the id is in the key: kept once).
    jobs: BTreeMap<(i64, JobId), Factors>,
    rank: Option<Rank>,
}

#[derive(Debug, Default, Clone, Serialize)]
struct TenantState {
    /// Decayed resource-seconds charged to the tenant.
    usage: f64,
    running: u32,
    /// Last time it was served (round-robin).
    turn: u64,
    #[serde(skip)]
    classes: Vec<usize>,
}

#[derive(Debug, Default, Clone)]
struct QueueState {
    running: u32,
    turn: u64,
    classes: Vec<usize>,
}

#[derive(Debug, Clone)]
struct Running {
    worker: WorkerId,
    tenant: String,
    queue: String,
    units: f64,
    started_ms: u64,
    /// When it really started on the worker (its `running` event), once known: usage counts
    /// run time, not time spent waiting at the worker.
    ran_from_ms: Option<u64>,
    est_ms: u64,
}

/// A worker held for a job that cannot fit anywhere yet (backfill).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reservation {
    /// The job the worker is held for.
    pub job: JobId,
    /// The worker.
    pub worker: WorkerId,
    /// When the job is expected to fit there (ms).
    pub at_ms: u64,
}

/// A job to send to a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatch {
    /// The job.
    pub job: JobId,
    /// Where it goes.
    pub worker: WorkerId,
    /// Its class.
    pub class: JobClass,
    /// Its estimated runtime (ms).
    pub est_ms: u64,
    /// Its ordering factors (to put it back if the dispatch fails).
    pub factors: PendingJob,
    /// It went to a free slot rather than waiting there behind others (its start time then
    /// measures the dispatch round trip).
    pub to_free_slot: bool,
}

/// What one round decided.
#[derive(Debug, Default)]
pub struct Round {
    /// Jobs to send, in the order chosen.
    pub dispatches: Vec<Dispatch>,
    /// Heads of classes that could not go: the job, its class and why.
    pub waiting: Vec<(JobId, JobClass, Reason)>,
}

/// How a pending job stands, for "why is my job waiting?".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Standing {
    /// Jobs of its class ahead of it.
    pub ahead_in_class: usize,
    /// Classes whose heads come before its class's head.
    pub classes_ahead: usize,
    /// Its key (see `PolicyConfig`).
    pub key: i64,
    /// Its tenant's usage-to-weight ratio.
    pub tenant_ratio: f64,
}

/// The scheduler's state: pending jobs, workers and what runs where.
#[derive(Debug)]
pub struct Scheduler {
    config: PolicyConfig,
    classes: Vec<ClassQueue>,
    class_ids: HashMap<JobClass, usize>,
    order: BTreeSet<Rank>,
    tenants: HashMap<String, TenantState>,
    queues: HashMap<String, QueueState>,
    workers: BTreeMap<WorkerId, WorkerState>,
    /// Pending jobs in all. There is no index from job id to class: at a million pending jobs
    /// it would be a third of the memory; whoever removes a job names its class and factors
    /// (the Redis index keeps them).
    pending: usize,
    running: HashMap<JobId, Running>,
    buckets: Buckets,
    reservation: Option<Reservation>,
    turn: u64,
    decayed_at_ms: Option<u64>,
    /// Time from a decision to the job running at a worker with a free slot (ms, moving
    /// average): what an empty slot waits for its next job. Sizes each worker's slack.
    dispatch_rtt_ms: f64,
}

/// The dispatch round trip assumed before one is measured (ms).
const INITIAL_DISPATCH_RTT_MS: f64 = 2.0;

/// Weight of a new round-trip sample in the moving average.
const DISPATCH_RTT_ALPHA: f64 = 0.1;

/// How often usage decays (the decay itself is exact; this only bounds the re-keying).
const DECAY_EVERY_MS: u64 = 1000;

impl Scheduler {
    /// Starts empty under `config`.
    pub fn new(config: PolicyConfig) -> Self {
        Self {
            config,
            classes: Vec::new(),
            class_ids: HashMap::new(),
            order: BTreeSet::new(),
            tenants: HashMap::new(),
            queues: HashMap::new(),
            workers: BTreeMap::new(),
            pending: 0,
            running: HashMap::new(),
            buckets: Buckets::default(),
            reservation: None,
            turn: 0,
            decayed_at_ms: None,
            dispatch_rtt_ms: INITIAL_DISPATCH_RTT_MS,
        }
    }

    /// Counts one measured dispatch round trip: from the decision to the job's `running`
    /// event, for a job sent to a free slot (one that waited behind others measures the
    /// wait, not the trip).
    pub fn observe_dispatch_rtt(&mut self, rtt_ms: u64) {
        // A stall (a broker outage, a paused process) says nothing about the usual trip.
        let sample = (rtt_ms as f64).min(1000.0);
        self.dispatch_rtt_ms += DISPATCH_RTT_ALPHA * (sample - self.dispatch_rtt_ms);
    }

    /// The dispatch round trip in use (ms).
    pub fn dispatch_rtt_ms(&self) -> f64 {
        self.dispatch_rtt_ms
    }

    /// The policy in force.
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// Changes the policy; it applies at once to every job already waiting (each is keyed
    /// again from its factors: O(n log n), once per change).
    pub fn set_config(&mut self, config: PolicyConfig) {
        self.config = config;
        for queue in &mut self.classes {
            let jobs = std::mem::take(&mut queue.jobs);
            for ((_, id), factors) in jobs {
                let key = factors.job(id).key(&self.config);
                queue.jobs.insert((key, id), factors);
            }
        }
        self.rekey_all();
    }

    /// Adds a pending job; `false` if it is already pending (with these factors, in this
    /// class) or running.
    pub fn add(&mut self, class: &JobClass, job: PendingJob) -> bool {
        if self.running.contains_key(&job.id) {
            return false;
        }
        let idx = self.class_index(class);
        let key = job.key(&self.config);
        if self.classes[idx]
            .jobs
            .insert((key, job.id), Factors::of(&job))
            .is_some()
        {
            return false;
        }
        self.pending += 1;
        self.rerank(idx);
        true
    }

    /// Removes a pending job of `class` (cancelled, or failed while it waited); `true` if it
    /// was pending.
    pub fn remove(&mut self, class: &JobClass, job: &PendingJob) -> bool {
        let Some(&idx) = self.class_ids.get(class) else {
            return false;
        };
        let key = job.key(&self.config);
        if self.classes[idx].jobs.remove(&(key, job.id)).is_none() {
            return false;
        }
        self.pending -= 1;
        self.rerank(idx);
        true
    }

    /// Pending jobs.
    pub fn pending_count(&self) -> usize {
        self.pending
    }

    /// Running (dispatched, unfinished) jobs.
    pub fn running_count(&self) -> usize {
        self.running.len()
    }

    /// Where a running job was sent.
    pub fn running_on(&self, job: JobId) -> Option<&WorkerId> {
        self.running.get(&job).map(|r| &r.worker)
    }

    /// Records a worker's heartbeat; `true` if the worker is new or offers something new.
    pub fn upsert_worker(&mut self, heartbeat: warren_protocol::Heartbeat) -> bool {
        match self.workers.get_mut(&heartbeat.worker_id) {
            Some(state) => {
                let old = &state.heartbeat;
                let changed = state.suspended
                    || old.resources != heartbeat.resources
                    || old.slots != heartbeat.slots
                    || old.allowed_commands != heartbeat.allowed_commands
                    || old.tasks != heartbeat.tasks;
                state.heartbeat = heartbeat;
                state.suspended = false;
                changed
            }
            None => {
                self.workers
                    .insert(heartbeat.worker_id.clone(), WorkerState::new(heartbeat));
                true
            }
        }
    }

    /// Stops sending work to a silent worker but keeps what is placed there, so that if it
    /// comes back (its next heartbeat) its capacity is still accounted.
    pub fn suspend_worker(&mut self, worker: &WorkerId) {
        if let Some(state) = self.workers.get_mut(worker) {
            state.suspended = true;
        }
    }

    /// Forgets a worker; returns the jobs placed there, which are no longer counted.
    pub fn remove_worker(&mut self, worker: &WorkerId) -> Vec<JobId> {
        let Some(state) = self.workers.remove(worker) else {
            return Vec::new();
        };
        let jobs: Vec<JobId> = state.placed.keys().copied().collect();
        for job in &jobs {
            self.forget_running(*job);
        }
        jobs
    }

    /// The workers known.
    pub fn workers(&self) -> impl Iterator<Item = &WorkerState> {
        self.workers.values()
    }

    /// Counts a job that runs on `worker` without having been dispatched by this instance
    /// (a standby taking over); `false` if the worker is unknown.
    pub fn restore_running(
        &mut self,
        job: JobId,
        worker: &WorkerId,
        class: &JobClass,
        started_ms: u64,
        est_ms: u64,
    ) -> bool {
        if self.running.contains_key(&job) || !self.workers.contains_key(worker) {
            return false;
        }
        // Should it also be in the pending index, its dispatch finds it running and drops it.
        self.start(job, worker, class, started_ms, est_ms, false);
        true
    }

    /// Gives back what a finished job used, and corrects its tenant's usage by what it
    /// really ran. `false` if it was not running here.
    pub fn finished(&mut self, job: JobId, now_ms: u64) -> bool {
        let Some(run) = self.running.get(&job).cloned() else {
            return false;
        };
        let actual_ms = now_ms.saturating_sub(run.ran_from_ms.unwrap_or(run.started_ms));
        let correction = run.units * (actual_ms as f64 - run.est_ms as f64) / 1000.0;
        self.charge(&run.tenant, correction);
        self.forget_running(job);
        true
    }

    /// Jobs dispatched more than `age_ms` ago and not finished as far as this scheduler
    /// knows: candidates for a check against Redis, in case their end's event was lost.
    pub fn running_since(&self, now_ms: u64, age_ms: u64) -> Vec<JobId> {
        self.running
            .iter()
            .filter(|(_, run)| now_ms.saturating_sub(run.started_ms) > age_ms)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Records when a dispatched job really started running on its worker.
    pub fn started(&mut self, job: JobId, at_ms: u64) {
        if let Some(run) = self.running.get_mut(&job) {
            run.ran_from_ms = Some(at_ms);
        }
    }

    fn forget_running(&mut self, job: JobId) {
        let Some(run) = self.running.remove(&job) else {
            return;
        };
        if let Some(worker) = self.workers.get_mut(&run.worker) {
            worker.remove(job);
        }
        if let Some(tenant) = self.tenants.get_mut(&run.tenant) {
            tenant.running = tenant.running.saturating_sub(1);
        }
        if let Some(queue) = self.queues.get_mut(&run.queue) {
            queue.running = queue.running.saturating_sub(1);
        }
        if self.reservation.as_ref().is_some_and(|r| r.job == job) {
            self.reservation = None;
        }
    }

    /// Decides what to dispatch now: the best head first, each placed on the best-fitting
    /// worker with room, until no worker has room or no head can go.
    pub fn decide(&mut self, now_ms: u64) -> Round {
        self.decay(now_ms);
        let mut round = Round::default();
        self.reservation = None;
        let mut set_aside: Vec<Rank> = Vec::new();
        let (rtt_ms, cap) = (self.dispatch_rtt_ms, self.config.slack);
        for worker in self.workers.values_mut() {
            worker.adapt_slack(rtt_ms, cap, now_ms);
        }
        while self.workers.values().any(WorkerState::has_free_slot) {
            let Some(rank) = self.order.pop_first() else {
                break;
            };
            let idx = rank.2;
            self.classes[idx].rank = None;
            let Some((&(key, job), pending)) = self.classes[idx].jobs.first_key_value() else {
                continue;
            };
            let factors = pending.job(job);
            let est_ms = factors.est_ms;
            match self.place(idx, job, est_ms, now_ms) {
                Ok(worker) => {
                    let to_free_slot = self
                        .workers
                        .get(&worker)
                        .is_some_and(|w| w.free_slots() > 0);
                    self.classes[idx].jobs.remove(&(key, job));
                    self.pending -= 1;
                    let class = self.classes[idx].class.clone();
                    self.start(job, &worker, &class, now_ms, est_ms, true);
                    round.dispatches.push(Dispatch {
                        job,
                        worker,
                        class,
                        est_ms,
                        factors,
                        to_free_slot,
                    });
                    self.rerank(idx);
                }
                Err(reason) => {
                    round
                        .waiting
                        .push((job, self.classes[idx].class.clone(), reason));
                    set_aside.push(rank);
                }
            }
        }
        for rank in set_aside {
            self.classes[rank.2].rank = Some(rank);
            self.order.insert(rank);
        }
        round
    }

    /// Picks the worker for the head of class `idx`, or says why it must wait.
    fn place(
        &mut self,
        idx: usize,
        job: JobId,
        est_ms: u64,
        now_ms: u64,
    ) -> Result<WorkerId, Reason> {
        let class = &self.classes[idx].class;
        let limits = &self.config.limits;
        if let Some(cap) = limits.tenant_concurrency.get(&class.tenant)
            && self.tenants.get(&class.tenant).map_or(0, |t| t.running) >= *cap
        {
            return Err(Reason::ConcurrencyLimit(format!("tenant:{}", class.tenant)));
        }
        if let Some(cap) = limits.queue_concurrency.get(&class.queue)
            && self.queues.get(&class.queue).map_or(0, |q| q.running) >= *cap
        {
            return Err(Reason::ConcurrencyLimit(format!("queue:{}", class.queue)));
        }
        let task = class.task.task_name().to_owned();
        if let Some(limit) = self
            .buckets
            .blocked(limits, Some(&task), &class.queue, now_ms)
        {
            return Err(Reason::RateLimit(limit));
        }
        let reservation = self.reservation.clone();
        let backfill = self.config.backfill;
        let mut eligible = 0usize;
        let mut best: Option<(&WorkerState, Fit)> = None;
        let mut held_back = false;
        for worker in self.workers.values() {
            if !worker.eligible(class) {
                continue;
            }
            eligible += 1;
            if !worker.fits_now(&class.requires) {
                continue;
            }
            if let Some(r) = &reservation
                && r.worker == worker.heartbeat.worker_id
                && r.job != job
                && !(backfill && now_ms.saturating_add(est_ms) <= r.at_ms)
            {
                held_back = true;
                continue;
            }
            // Best fit: fewest tags the job does not need (keep GPU machines for GPU
            // work), then the most free slots, cores and GPUs.
            let fit = (
                worker.heartbeat.pool.unneeded_tags(&class.requires.tags),
                -worker.free_slots(),
                -worker.free_cpu(),
                -worker.free_gpus(),
            );
            if best.as_ref().is_none_or(|(_, b)| fit < *b) {
                best = Some((worker, fit));
            }
        }
        if let Some((worker, _)) = best {
            let id = worker.heartbeat.worker_id.clone();
            self.buckets.take(limits, Some(&task), &class.queue, now_ms);
            return Ok(id);
        }
        if eligible == 0 {
            return Err(no_match(self.workers.values(), class));
        }
        if let Some(r) = reservation {
            if held_back {
                return Err(Reason::ReservedFor(r.job));
            }
            return Err(Reason::WaitingForCapacity);
        }
        // The first job in policy order that cannot fit holds the worker where it will fit
        // soonest; later jobs may use that worker only if they end before then (backfill).
        let reserved = self
            .workers
            .values()
            .filter(|w| w.eligible(class))
            .map(|w| (w.expected_fit_ms(&class.requires, now_ms), w))
            .min_by_key(|(at, w)| (*at, w.heartbeat.worker_id.clone()));
        if let Some((at_ms, worker)) = reserved {
            self.reservation = Some(Reservation {
                job,
                worker: worker.heartbeat.worker_id.clone(),
                at_ms,
            });
        }
        Err(Reason::WaitingForCapacity)
    }

    fn start(
        &mut self,
        job: JobId,
        worker: &WorkerId,
        class: &JobClass,
        now_ms: u64,
        est_ms: u64,
        charge: bool,
    ) {
        let units = usage_units(&class.requires);
        if let Some(state) = self.workers.get_mut(worker) {
            state.place(
                job,
                Placed {
                    requires: class.requires.clone(),
                    started_ms: now_ms,
                    est_ms,
                },
            );
            // What it runs now sizes how much may wait behind it.
            state.adapt_slack(self.dispatch_rtt_ms, self.config.slack, now_ms);
        }
        self.running.insert(
            job,
            Running {
                worker: worker.clone(),
                tenant: class.tenant.clone(),
                queue: class.queue.clone(),
                units,
                started_ms: now_ms,
                ran_from_ms: None,
                est_ms,
            },
        );
        self.turn += 1;
        let turn = self.turn;
        let tenant = self.tenants.entry(class.tenant.clone()).or_default();
        tenant.running += 1;
        tenant.turn = turn;
        let queue = self.queues.entry(class.queue.clone()).or_default();
        queue.running += 1;
        queue.turn = turn;
        if charge {
            // Charged up front by the estimate, corrected when the job ends, so a tenant's
            // share reflects what it was just given.
            self.charge(&class.tenant, units * est_ms as f64 / 1000.0);
        }
        match self.config.mode {
            Mode::RoundRobinTenants => self.rerank_tenant(&class.tenant),
            Mode::RoundRobinQueues => self.rerank_queue(&class.queue),
            _ => {}
        }
    }

    fn charge(&mut self, tenant: &str, resource_seconds: f64) {
        let state = self.tenants.entry(tenant.to_owned()).or_default();
        state.usage = (state.usage + resource_seconds).max(0.0);
        if self.uses_usage() {
            self.rerank_tenant(tenant);
        }
    }

    fn uses_usage(&self) -> bool {
        self.config.mode == Mode::FairShare
            || (self.config.mode == Mode::Score && self.config.fair_weight_ms > 0.0)
    }

    /// Halves usage every half-life (applied at most once a second).
    fn decay(&mut self, now_ms: u64) {
        let Some(last) = self.decayed_at_ms else {
            self.decayed_at_ms = Some(now_ms);
            return;
        };
        let elapsed = now_ms.saturating_sub(last);
        if elapsed < DECAY_EVERY_MS {
            return;
        }
        self.decayed_at_ms = Some(now_ms);
        let factor = 0.5f64.powf(elapsed as f64 / 1000.0 / self.config.half_life_s as f64);
        for tenant in self.tenants.values_mut() {
            tenant.usage *= factor;
        }
        if self.uses_usage() {
            self.rekey_all();
        }
    }

    fn ratio(&self, tenant: &str) -> f64 {
        let usage = self.tenants.get(tenant).map_or(0.0, |t| t.usage);
        usage / self.config.tenant_weight(tenant)
    }

    fn class_index(&mut self, class: &JobClass) -> usize {
        if let Some(idx) = self.class_ids.get(class) {
            return *idx;
        }
        let idx = self.classes.len();
        self.classes.push(ClassQueue {
            class: class.clone(),
            jobs: BTreeMap::new(),
            rank: None,
        });
        self.class_ids.insert(class.clone(), idx);
        self.tenants
            .entry(class.tenant.clone())
            .or_default()
            .classes
            .push(idx);
        self.queues
            .entry(class.queue.clone())
            .or_default()
            .classes
            .push(idx);
        idx
    }

    fn rank_of(&self, idx: usize) -> Option<Rank> {
        let queue = &self.classes[idx];
        let (&(key, _), _) = queue.jobs.first_key_value()?;
        let tenant = &queue.class.tenant;
        let primary = match self.config.mode {
            Mode::Score => key as f64 + self.config.fair_weight_ms * self.ratio(tenant),
            Mode::FairShare => self.ratio(tenant),
            Mode::RoundRobinTenants => self.tenants.get(tenant).map_or(0, |t| t.turn) as f64,
            Mode::RoundRobinQueues => {
                self.queues.get(&queue.class.queue).map_or(0, |q| q.turn) as f64
            }
        };
        Some((Ordered(primary), key, idx))
    }

    fn rerank(&mut self, idx: usize) {
        if let Some(old) = self.classes[idx].rank.take() {
            self.order.remove(&old);
        }
        if let Some(rank) = self.rank_of(idx) {
            self.order.insert(rank);
            self.classes[idx].rank = Some(rank);
        }
    }

    fn rerank_tenant(&mut self, tenant: &str) {
        let classes = self
            .tenants
            .get(tenant)
            .map(|t| t.classes.clone())
            .unwrap_or_default();
        for idx in classes {
            if self.classes[idx].rank.is_some() {
                self.rerank(idx);
            }
        }
    }

    fn rerank_queue(&mut self, queue: &str) {
        let classes = self
            .queues
            .get(queue)
            .map(|q| q.classes.clone())
            .unwrap_or_default();
        for idx in classes {
            if self.classes[idx].rank.is_some() {
                self.rerank(idx);
            }
        }
    }

    fn rekey_all(&mut self) {
        for idx in 0..self.classes.len() {
            self.rerank(idx);
        }
    }

    /// Says why the head of each waiting class waits, for heads no round looked at (every
    /// worker was full before their turn). O(classes × workers): call it on a timer, not per
    /// decision.
    pub fn head_reasons(&self) -> Vec<(JobId, JobClass, Reason)> {
        let mut out = Vec::new();
        for queue in &self.classes {
            let Some((&(_, job), _)) = queue.jobs.first_key_value() else {
                continue;
            };
            let class = &queue.class;
            let reason = if !self.workers.values().any(|w| w.eligible(class)) {
                no_match(self.workers.values(), class)
            } else if let Some(cap) = self.config.limits.tenant_concurrency.get(&class.tenant)
                && self.tenants.get(&class.tenant).map_or(0, |t| t.running) >= *cap
            {
                Reason::ConcurrencyLimit(format!("tenant:{}", class.tenant))
            } else if let Some(cap) = self.config.limits.queue_concurrency.get(&class.queue)
                && self.queues.get(&class.queue).map_or(0, |q| q.running) >= *cap
            {
                Reason::ConcurrencyLimit(format!("queue:{}", class.queue))
            } else if self.config.mode == Mode::FairShare && self.over_share(&class.tenant) {
                Reason::TenantOverShare
            } else {
                Reason::WaitingForCapacity
            };
            out.push((job, class.clone(), reason));
        }
        out
    }

    /// Tells whether a tenant has used more than its weight's share, among tenants with
    /// usage or work.
    fn over_share(&self, tenant: &str) -> bool {
        let total_usage: f64 = self.tenants.values().map(|t| t.usage).sum();
        let total_weight: f64 = self
            .tenants
            .keys()
            .map(|t| self.config.tenant_weight(t))
            .sum();
        if total_usage <= 0.0 || total_weight <= 0.0 {
            return false;
        }
        let usage = self.tenants.get(tenant).map_or(0.0, |t| t.usage);
        usage / total_usage > self.config.tenant_weight(tenant) / total_weight
    }

    /// The waiting classes in the order the policy would serve their heads now (ties and
    /// capacity aside): what `class_rank` in a job's standing counts.
    pub fn class_order(&self) -> Vec<&JobClass> {
        self.order
            .iter()
            .map(|(_, _, idx)| &self.classes[*idx].class)
            .collect()
    }

    /// Tells how a pending job of `class` stands: what is ahead of it in its class and
    /// among classes.
    pub fn standing(&self, class: &JobClass, job: &PendingJob) -> Option<Standing> {
        let idx = *self.class_ids.get(class)?;
        let key = job.key(&self.config);
        let queue = &self.classes[idx];
        queue.jobs.get(&(key, job.id))?;
        let ahead_in_class = queue.jobs.range(..(key, job.id)).count();
        let classes_ahead = queue
            .rank
            .map_or(0, |rank| self.order.range(..rank).count());
        Some(Standing {
            ahead_in_class,
            classes_ahead,
            key,
            tenant_ratio: self.ratio(&queue.class.tenant),
        })
    }

    /// The current reservation, if a job holds one.
    pub fn reservation(&self) -> Option<&Reservation> {
        self.reservation.as_ref()
    }

    /// Milliseconds until a rate-limited job may start, if one waits for a token.
    pub fn next_token_ms(&self) -> Option<u64> {
        self.buckets.next_token_ms(&self.config.limits)
    }

    /// A summary for `GET /v1/scheduler` and the dashboard.
    pub fn status(&self) -> super::status::Status {
        super::status::Status::of(self)
    }

    pub(super) fn status_parts(&self) -> StatusParts<'_> {
        let classes = self
            .classes
            .iter()
            .filter(|q| !q.jobs.is_empty())
            .map(|q| (&q.class, q.jobs.len()))
            .collect();
        let tenants = self
            .tenants
            .iter()
            .map(|(name, t)| {
                (
                    name.as_str(),
                    t.usage,
                    t.running,
                    self.config.tenant_weight(name),
                )
            })
            .collect();
        let queues = self
            .queues
            .iter()
            .map(|(name, q)| (name.clone(), q.running))
            .collect();
        (classes, tenants, &self.workers, queues)
    }
}
