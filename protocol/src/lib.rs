//! Warren's wire vocabulary: job specs, ids, resource tags, pools, job states and their legal
//! transitions, the envelopes that travel through RabbitMQ, worker heartbeats and job events.
//!
//! This crate is pure: it does no I/O. Every service speaks through these types, so a change
//! here is a change of the wire format (see the golden files under `tests/golden/`).
//! It sits at the start of the flow: the submitter validates a [`JobSpec`] into a [`Task`],
//! wraps it in a [`JobEnvelope`], and every later hop (scheduler, worker) reads that envelope.

mod envelope;
mod heartbeat;
mod ids;
mod naming;
mod retry;
mod spec;
mod state;
mod tags;
mod task;
mod time;
mod unique;

pub mod policy;
pub use envelope::{ENVELOPE_SCHEMA_VERSION, JobEnvelope};
pub use heartbeat::{Heartbeat, WorkerResources, admits_program};
pub use ids::{JobId, WorkerId};
pub use naming::{NameError, Namespace};
pub use retry::{
    BackoffStrategy, MAX_BACKOFF_S, PERMANENT_EXIT_CODE, RetryBackoff, RetryOn, TEMPFAIL_EXIT_CODE,
    backoff, retry_on_default,
};
pub use spec::{
    DEFAULT_PRIORITY, JobSpec, MAX_ARGS_BYTES, MAX_ATTEMPTS, MAX_DELAY_S, MAX_LABELS, MAX_PRIORITY,
    MAX_REQUIRED_TAGS, MAX_SCHEDULE_TIMEOUT_S, MAX_TIMEOUT_S, Requirements, ValidationError,
};
pub use state::{JobState, ParseStateError};
pub use tags::{PoolName, ResourceTag, TagError};
pub use task::{
    BUILTIN_TASKS, CommandArgs, MAX_ARGV, MAX_COMMAND_BYTES, MAX_ENV, MAX_SHA256_BYTES,
    RESERVED_ENV, Task, is_reserved_env,
};
pub use time::now_ms;
