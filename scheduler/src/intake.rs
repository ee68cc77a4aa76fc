//! Admission: what happens to an intake message before it joins the window.

use tracing::warn;
use warren_protocol::{JobEnvelope, JobState, Task};
use warren_store::{Store, Transition};
use warren_topology::Publisher;
use warren_topology::lapin::message::Delivery;
use warren_topology::lapin::options::{BasicAckOptions, BasicNackOptions};

/// A job in the window: its message stays unacked until the job is released to a pool, so a
/// scheduler crash hands it to the standby.
pub(crate) struct Pending {
    /// Arrival order (FIFO).
    pub(crate) seq: u64,
    pub(crate) envelope: JobEnvelope,
    pub(crate) task: Task,
    pub(crate) delivery: Delivery,
    /// The pending reason last written to Redis, so it is written once, not every tick.
    pub(crate) reason: Option<String>,
}

/// The verdict on an intake message.
pub(crate) enum Admission {
    /// Joins the window.
    Admit(Box<Pending>),
    /// Handled (dropped, dead-lettered or returned); nothing more to do.
    Done,
}

/// Parses and checks one intake message. Runs outside the scheduling loop (it reads Redis).
pub(crate) async fn admit(
    seq: u64,
    delivery: Delivery,
    publisher: &Publisher,
    store: &Store,
) -> Admission {
    let envelope = match JobEnvelope::from_bytes(&delivery.data) {
        Ok(envelope) => envelope,
        Err(reason) => {
            dead_letter(
                publisher,
                &delivery,
                &format!("malformed job message: {reason}"),
            )
            .await;
            return Admission::Done;
        }
    };
    let task = match envelope.spec.validate() {
        Ok(task) => task,
        Err(error) => {
            let reason = format!("invalid job spec: {error}");
            let fail = Transition::new(envelope.job_id, JobState::Failed).set("error", &reason);
            let _ = store.transition(&fail).await;
            dead_letter(publisher, &delivery, &reason).await;
            return Admission::Done;
        }
    };
    match store.state(envelope.job_id).await {
        Ok(Some(state)) if state.is_terminal() => {
            // Cancelled while it waited, or a duplicate of a finished job: drop it on sight.
            ack(&delivery).await;
            Admission::Done
        }
        Ok(Some(_)) => Admission::Admit(Box::new(Pending {
            seq,
            envelope,
            task,
            delivery,
            reason: None,
        })),
        Ok(None) => {
            dead_letter(
                publisher,
                &delivery,
                "job record missing in redis (expired or never written)",
            )
            .await;
            Admission::Done
        }
        Err(error) => {
            warn!(job_id = %envelope.job_id, %error, "cannot read job; returning it to intake");
            // Not at once: while Redis is down, an immediate requeue would spin.
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            let _ = delivery
                .nack(BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                })
                .await;
            Admission::Done
        }
    }
}

pub(crate) async fn ack(delivery: &Delivery) {
    if let Err(error) = delivery.ack(BasicAckOptions::default()).await {
        tracing::debug!(%error, "intake ack failed");
    }
}

async fn dead_letter(publisher: &Publisher, delivery: &Delivery, reason: &str) {
    publisher.dead_letter(delivery, reason).await;
}
