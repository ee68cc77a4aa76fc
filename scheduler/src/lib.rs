//! The Warren scheduler. It moves every job from intake into a durable pending index in
//! Redis, orders all pending jobs by the policy in force, and dispatches each to a worker with
//! room for it (cpu, memory, GPUs and slots are accounted per worker), through that worker's
//! own queue. It also moves retrying jobs down the delay ladder and back to intake, and
//! sweeps jobs whose worker died back into the pending index.
//!
//! It sits between the submitter (which fills intake) and the workers (which consume their
//! queues). The decisions are the pure [`policy`] module, which the [`simulate`] module also
//! runs on a discrete-event clock; the other modules are the I/O around it. Its state that
//! matters is in Redis, so a standby that takes over (a Redis leader lease) rebuilds it.

mod args;
mod dead;
mod delay;
mod dispatch;
mod heartbeats;
mod hold;
mod intake;
mod metrics;
pub mod policy;
mod runtime;
mod session;
pub mod simulate;
mod sweep;

pub use args::{LifecycleArgs, PolicyArgs, SchedulerArgs};

use tokio_util::sync::CancellationToken;

/// Runs the scheduler until `shutdown` is cancelled.
///
/// # Errors
/// Fails when the settings are wrong or the first connection cannot be made; later
/// connection losses are retried with backoff.
pub async fn run(args: SchedulerArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    runtime::run(args, shutdown).await
}
