use warren_protocol::{JobId, JobState, Namespace, WorkerId};

/// Every Redis key of one namespace. Nobody else formats a key.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Names the keys of namespace `ns` (prefix `{ns}:`).
    pub fn new(ns: &Namespace) -> Self {
        Self {
            prefix: format!("{ns}:"),
        }
    }

    /// Returns the prefix every key starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The hash of one job.
    pub fn job(&self, id: JobId) -> String {
        format!("{}job:{id}", self.prefix)
    }

    /// The log stream of one job.
    pub fn job_log(&self, id: JobId) -> String {
        format!("{}job:{id}:log", self.prefix)
    }

    /// The lease of the worker running a job.
    pub fn lease(&self, id: JobId) -> String {
        format!("{}lease:{id}", self.prefix)
    }

    /// Pending jobs of one scheduling class: a sorted set of `id|priority|est_ms|arrival_ms`
    /// members scored by their key under the policy in force (so `ZRANK` is a job's place in
    /// its class).
    pub fn pending_class(&self, class_id: &str) -> String {
        format!("{}pending:{class_id}", self.prefix)
    }

    /// Hash of scheduling class id → the class (JSON), for every class with pending jobs.
    pub fn pending_classes(&self) -> String {
        format!("{}pending:classes", self.prefix)
    }

    /// Hash of job id → `class_id` and member, for every pending job (where to find it).
    pub fn pending_where(&self) -> String {
        format!("{}pending:where", self.prefix)
    }

    /// Sorted set of pending jobs with a `schedule_timeout_s`, scored by when they fail.
    pub fn pending_deadlines(&self) -> String {
        format!("{}pending:deadlines", self.prefix)
    }

    /// Hash of class id → its place among the waiting classes (0: its head goes next).
    pub fn pending_ranks(&self) -> String {
        format!("{}pending:ranks", self.prefix)
    }

    /// Hash of class id → why its first job waits.
    pub fn pending_reasons(&self) -> String {
        format!("{}pending:reasons", self.prefix)
    }

    /// The active scheduler's lease (value: its instance id).
    pub fn scheduler_leader(&self) -> String {
        format!("{}scheduler:leader", self.prefix)
    }

    /// The active scheduler's status document (JSON).
    pub fn scheduler_status(&self) -> String {
        format!("{}scheduler:status", self.prefix)
    }

    /// The policy an operator asked for (JSON), applied by the active scheduler.
    pub fn scheduler_policy(&self) -> String {
        format!("{}scheduler:policy", self.prefix)
    }

    /// Learned runtime estimates: task → milliseconds.
    pub fn runtime_estimates(&self) -> String {
        format!("{}scheduler:estimates", self.prefix)
    }

    /// Index of all jobs. Every index is a sorted set of job ids with score 0, so it sorts by
    /// id, and UUIDv7 ids sort by creation time: newest-first pages are `ZREVRANGEBYLEX`.
    pub fn index_all(&self) -> String {
        format!("{}jobs:all", self.prefix)
    }

    /// Index of jobs in one state.
    pub fn index_state(&self, state: JobState) -> String {
        format!("{}jobs:state:{state}", self.prefix)
    }

    /// Index of one tenant's jobs.
    pub fn index_tenant(&self, tenant: &str) -> String {
        format!("{}jobs:tenant:{tenant}", self.prefix)
    }

    /// Index of one queue's jobs.
    pub fn index_queue(&self, queue: &str) -> String {
        format!("{}jobs:queue:{queue}", self.prefix)
    }

    /// Index of the jobs of one task.
    pub fn index_task(&self, task: &str) -> String {
        format!("{}{}", self.prefix, Self::index_task_suffix(task))
    }

    /// Index of the jobs that require one resource tag.
    pub fn index_tag(&self, tag: &str) -> String {
        format!("{}{}", self.prefix, Self::index_tag_suffix(tag))
    }

    /// Index of the jobs labelled `key=value`. A key holding `=` shares its index with
    /// another split of the same text; listing re-checks the label on each record.
    pub fn index_label(&self, key: &str, value: &str) -> String {
        format!("{}{}", self.prefix, Self::index_label_suffix(key, value))
    }

    pub(crate) fn index_task_suffix(task: &str) -> String {
        format!("jobs:task:{task}")
    }

    pub(crate) fn index_tag_suffix(tag: &str) -> String {
        format!("jobs:tag:{tag}")
    }

    pub(crate) fn index_label_suffix(key: &str, value: &str) -> String {
        format!("jobs:label:{key}={value}")
    }

    /// Finished jobs by the time their record expires (ms), so their index entries can be
    /// pruned. Members are JSON `[id, tenant, queue]`, plus the job's task, tag and label
    /// indexes (key suffixes after the prefix) as a fourth element when it has any.
    pub fn index_expiring(&self) -> String {
        format!("{}jobs:expiring", self.prefix)
    }

    /// Idempotency key → job id.
    pub fn idempotency(&self, key: &str) -> String {
        format!("{}idem:{key}", self.prefix)
    }

    /// Idempotency key of a batch → its job ids, comma-separated in order.
    pub fn idempotency_batch(&self, key: &str) -> String {
        format!("{}idem-batch:{key}", self.prefix)
    }

    /// The last heartbeat of one worker (expires when the worker stops sending them).
    pub fn worker(&self, id: &WorkerId) -> String {
        format!("{}worker:{id}", self.prefix)
    }

    /// Sorted set of workers by last heartbeat time.
    pub fn workers(&self) -> String {
        format!("{}workers", self.prefix)
    }

    /// Set of task names some worker has registered.
    pub fn tasks(&self) -> String {
        format!("{}tasks", self.prefix)
    }

    /// Counter of jobs that reached a terminal state.
    pub fn stat(&self, state: JobState) -> String {
        format!("{}stats:{state}", self.prefix)
    }

    /// The pub/sub channel of job events.
    pub fn events_channel(&self) -> String {
        format!("{}events", self.prefix)
    }

    /// Samples of the terminal-state counters for the dashboard's charts, one sorted set per
    /// resolution (`1s`, `1m`), scored by the sample's time in that unit.
    pub fn series(&self, resolution: &str) -> String {
        format!("{}series:{resolution}", self.prefix)
    }

    /// The scheduler's own hash (whatever it chooses to publish there).
    pub fn scheduler(&self) -> String {
        format!("{}scheduler", self.prefix)
    }

    /// Dead letters by id (a job id, or a fresh id for a message with no job): entry JSON.
    pub fn dead_entries(&self) -> String {
        format!("{}dead:entries", self.prefix)
    }

    /// Index of every dead letter: score 0, members `<dead_ms:013>|<id>`, so the set sorts
    /// by the time the message died.
    pub fn dead_index(&self) -> String {
        format!("{}dead:all", self.prefix)
    }

    /// Index of one tenant's dead letters (members as in [`Keys::dead_index`]).
    pub fn dead_tenant(&self, tenant: &str) -> String {
        format!("{}{}{tenant}", self.prefix, DEAD_TENANT)
    }

    /// Prefix of the per-tenant dead-letter indexes, after the namespace prefix.
    pub(crate) fn dead_tenant_prefix(&self) -> String {
        format!("{}{}", self.prefix, DEAD_TENANT)
    }

    /// Jobs whose submission is in flight (records written, confirm not yet seen), scored by
    /// when they were written (ms).
    pub fn submitting(&self) -> String {
        format!("{}submitting", self.prefix)
    }

    /// Pub/sub channel on which the submitter says that submissions were confirmed (their
    /// jobs unmarked); the payload is how many. The scheduler looks at the jobs it holds.
    pub fn submitted_channel(&self) -> String {
        format!("{}submitted", self.prefix)
    }
}

const DEAD_TENANT: &str = "dead:tenant:";
