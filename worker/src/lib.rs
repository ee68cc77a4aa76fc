//! The Warren worker: consumes one pool queue, claims each job in Redis, runs it under its
//! timeout, stores the outcome and only then acks.
//!
//! It is both a library and a binary. The library lets an application register its own tasks
//! (`Worker::builder().task("name", handler)`) next to the built-ins (`command`, `noop`,
//! `sleep`, `echo`, `fail`, `sha256`). The worker does not decide order or placement (the
//! scheduler does) and does not accept jobs from clients (the submitter does); it sits at the
//! end of the flow: pool queue → claim → run → Redis → ack.

mod args;
mod builtins;
mod command;
mod confine;
mod control;
mod execute;
mod group_guard;
mod handle;
mod heartbeat;
mod joblog;
mod lease;
mod limits;
mod metrics;
mod output;
mod retry;
mod runtime;
mod task;

use std::collections::BTreeMap;
use std::future::Future;

use tokio_util::sync::CancellationToken;
use warren_protocol::WorkerId;

pub use args::{JobLimitArgs, WorkerArgs};
pub use confine::Confinement;
pub use limits::CgroupMode;
pub use task::{JobError, TaskContext, TaskFuture, TaskResult};

use crate::task::{Handler, handler};

/// Collects registered tasks before the worker starts.
#[derive(Default)]
pub struct WorkerBuilder {
    tasks: BTreeMap<String, Handler>,
}

impl std::fmt::Debug for WorkerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerBuilder")
            .field("tasks", &self.tasks.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl WorkerBuilder {
    /// Registers `handler` for jobs whose `task` is `name`.
    ///
    /// The worker advertises the name in its heartbeats, so the scheduler sends such jobs only
    /// to pools whose workers registered it, and the submitter accepts the name once any
    /// worker has.
    pub fn task<F, Fut>(mut self, name: impl Into<String>, handle: F) -> Self
    where
        F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = TaskResult> + Send + 'static,
    {
        self.tasks.insert(name.into(), handler(handle));
        self
    }

    /// Finishes the worker with its settings.
    pub fn build(self, args: WorkerArgs) -> Worker {
        let host = hostname();
        Worker {
            id: WorkerId::generate(&host),
            hostname: host,
            args,
            tasks: self.tasks,
        }
    }
}

/// A configured worker, ready to [`Worker::run`].
pub struct Worker {
    id: WorkerId,
    hostname: String,
    args: WorkerArgs,
    tasks: BTreeMap<String, Handler>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.id)
            .field("pool", &self.args.tags.to_string())
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// Starts registering tasks.
    pub fn builder() -> WorkerBuilder {
        WorkerBuilder::default()
    }

    /// Returns this worker's id.
    pub fn id(&self) -> &WorkerId {
        &self.id
    }

    /// Runs until `shutdown` is cancelled, then drains: stops consuming, lets running jobs
    /// finish within the grace period, requeues the rest.
    ///
    /// # Errors
    /// Fails when the settings are wrong or the first connection cannot be made; later
    /// connection losses are retried with backoff.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        runtime::run(self, shutdown).await
    }
}

/// Runs a worker with only the built-in tasks (what the `warren-worker` binary does).
///
/// # Errors
/// See [`Worker::run`].
pub async fn run(args: WorkerArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    Worker::builder().build(args).run(shutdown).await
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "worker".to_owned())
}
