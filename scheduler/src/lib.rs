//! The Warren scheduler: it consumes intake with a bounded window, learns pools from worker
//! heartbeats, and releases each job to a pool that can run it, only as fast as that pool has
//! free slots (credit), so pool queues stay near empty and the order of release is the order
//! of execution. It also moves retrying jobs down the delay ladder and back to intake.
//!
//! It sits between the submitter (which fills intake) and the workers (which consume pool
//! queues). The placement rules are the pure [`policy`] module; this crate's other modules
//! are the I/O around it. It keeps no state that matters across restarts: the window is
//! unacked intake messages, which RabbitMQ hands to a standby (single active consumer).

mod args;
mod cluster;
mod delay;
mod heartbeats;
mod intake;
pub mod policy;
mod runtime;

pub use args::{Policy, SchedulerArgs};

use tokio_util::sync::CancellationToken;

/// Runs the scheduler until `shutdown` is cancelled.
///
/// # Errors
/// Fails when the settings are wrong or the first connection cannot be made; later
/// connection losses are retried with backoff.
pub async fn run(args: SchedulerArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    runtime::run(args, shutdown).await
}
