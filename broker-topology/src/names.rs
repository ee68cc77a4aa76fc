use std::time::Duration;

use warren_protocol::{Namespace, PoolName, WorkerId};

use crate::signing::SigningKeys;

/// Routing key on the control exchange that asks every worker to stop a job (the one
/// running it does); the body is `{"job_id": …}`.
pub const CANCEL_ROUTING_KEY: &str = "job.cancel";

/// How many rungs the delay ladder has: rung `k` holds a message for 2^k seconds, so the
/// longest single hop is 2^17 s (about 36 hours); longer delays take several hops.
pub const DELAY_RUNGS: u32 = 18;

/// What kind of queue every durable queue Warren owns is (`WARREN_QUEUE_TYPE`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QueueType {
    /// Classic queues: one node holds each queue (the fastest; a lost node loses its queues).
    #[default]
    Classic,
    /// Quorum queues: replicated with Raft on (by default) three nodes of a cluster; a
    /// publish is confirmed once a majority has it.
    Quorum,
}

impl QueueType {
    /// The `x-queue-type` argument's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Classic => "classic",
            Self::Quorum => "quorum",
        }
    }
}

impl std::str::FromStr for QueueType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "classic" => Ok(Self::Classic),
            "quorum" => Ok(Self::Quorum),
            other => Err(format!(
                "WARREN_QUEUE_TYPE must be `classic` or `quorum`, not `{other}`"
            )),
        }
    }
}

/// Settings that change how queues are declared.
#[derive(Debug, Clone, Default)]
pub struct TopologyOptions {
    /// Deletes queues that have had no consumer for this long (`x-expires`). Tests set it so
    /// that an aborted test leaves nothing behind; production leaves it unset.
    pub queue_expires: Option<Duration>,
    /// Classic or quorum queues.
    pub queue_type: QueueType,
}

impl TopologyOptions {
    /// The options of a service: `queue_type` is `WARREN_QUEUE_TYPE`'s value.
    ///
    /// # Errors
    /// A message naming WARREN_QUEUE_TYPE when it is neither `classic` nor `quorum`.
    pub fn of_queue_type(queue_type: &str) -> Result<Self, String> {
        Ok(Self {
            queue_type: queue_type.parse()?,
            ..Self::default()
        })
    }
}

/// Every AMQP name of one namespace.
#[derive(Debug, Clone)]
pub struct Topology {
    ns: Namespace,
    options: TopologyOptions,
    signing: Option<SigningKeys>,
}

impl Topology {
    /// Names the topology of namespace `ns`.
    pub fn new(ns: Namespace, options: TopologyOptions) -> Self {
        Self {
            ns,
            options,
            signing: None,
        }
    }

    /// Signs the job messages published with this topology, and has consumers refuse
    /// unsigned or forged ones (see [`crate::signing`]). `None` leaves messages unsigned.
    #[must_use]
    pub fn with_signing(mut self, keys: Option<SigningKeys>) -> Self {
        self.signing = keys;
        self
    }

    /// The topology a service declares: `queue_type` is `WARREN_QUEUE_TYPE`'s value,
    /// `keys` the signing keys' text (`WARREN_SIGNING_KEY`), if any.
    ///
    /// # Errors
    /// A message naming the setting that is wrong.
    pub fn configured(ns: Namespace, queue_type: &str, keys: Option<&str>) -> Result<Self, String> {
        Ok(Self::new(ns, TopologyOptions::of_queue_type(queue_type)?)
            .with_signing(crate::signing::from_config(keys)?))
    }

    /// The keys job messages are signed and checked with, if any.
    pub fn signing(&self) -> Option<&SigningKeys> {
        self.signing.as_ref()
    }

    /// Returns the namespace.
    pub fn namespace(&self) -> &Namespace {
        &self.ns
    }

    /// Returns the declaration options.
    pub fn options(&self) -> &TopologyOptions {
        &self.options
    }

    /// Direct exchange the submitter publishes new jobs to.
    pub fn intake_exchange(&self) -> String {
        format!("{}.intake", self.ns)
    }

    /// The queue the scheduler consumes (single active consumer, priorities).
    pub fn intake_queue(&self) -> String {
        format!("{}.intake", self.ns)
    }

    /// Routing key of intake messages.
    pub fn intake_routing_key(&self) -> &'static str {
        "job"
    }

    /// Direct exchange the scheduler releases jobs to; routing key = pool name.
    pub fn work_exchange(&self) -> String {
        format!("{}.work", self.ns)
    }

    /// The queue of one pool.
    pub fn pool_queue(&self, pool: &PoolName) -> String {
        format!("{}.pool.{pool}", self.ns)
    }

    /// The queue of one worker: the scheduler places each job on a worker (capacity is
    /// accounted per worker), so each worker has its own queue.
    pub fn worker_queue(&self, worker: &WorkerId) -> String {
        format!("{}.worker.{worker}", self.ns)
    }

    /// The routing key of one worker's queue on the work exchange (`@` never occurs in a
    /// pool name, so it cannot meet a pool's key).
    pub fn worker_routing_key(&self, worker: &WorkerId) -> String {
        format!("@{worker}")
    }

    /// Rung `k` of the delay ladder: holds messages 2^k seconds.
    pub fn delay_queue(&self, rung: u32) -> String {
        format!("{}.delay.{rung}", self.ns)
    }

    /// Fanout exchange every delay rung dead-letters into when its TTL expires.
    pub fn delay_expired_exchange(&self) -> String {
        format!("{}.delay.expired", self.ns)
    }

    /// The queue the scheduler consumes expired delays from.
    pub fn delay_expired_queue(&self) -> String {
        format!("{}.delay.expired", self.ns)
    }

    /// Fanout exchange for poison messages and jobs that cannot run.
    pub fn dead_exchange(&self) -> String {
        format!("{}.dead", self.ns)
    }

    /// The queue that keeps dead letters for inspection.
    pub fn dead_queue(&self) -> String {
        format!("{}.dead", self.ns)
    }

    /// Routing key of readiness probes, published to the default exchange: no queue of that
    /// name is ever declared, so the broker returns the probe and nobody consumes it.
    pub fn probe_routing_key(&self) -> String {
        format!("{}.readiness-probe", self.ns)
    }

    /// Topic exchange for worker heartbeats (`worker.heartbeat|online|offline`).
    pub fn events_exchange(&self) -> String {
        format!("{}.events", self.ns)
    }

    /// Topic exchange for commands to workers: `job.cancel` (every worker listens; the one
    /// running the job stops it) and `worker.<id>.…` for one worker.
    pub fn control_exchange(&self) -> String {
        format!("{}.control", self.ns)
    }
}
