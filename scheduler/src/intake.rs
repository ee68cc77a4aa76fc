//! Admission: an intake message becomes an entry of the durable pending index, and only then
//! is it acked. From there the policy orders it with every other pending job.

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use tracing::warn;
use warren_protocol::{JobEnvelope, JobId, JobSpec, JobState, Task};
use warren_store::{PendingEntry, Store, Transition};
use warren_topology::lapin::message::Delivery;
use warren_topology::lapin::options::{BasicAckOptions, BasicNackOptions};
use warren_topology::signing::check_message;
use warren_topology::{Destination, Publisher};

use crate::policy::{JobClass, PendingJob, PolicyConfig, TaskNeed};

/// A job admitted to the pending index.
#[derive(Debug, Clone)]
pub(crate) struct Admitted {
    pub(crate) class: JobClass,
    pub(crate) job: PendingJob,
    /// When it fails if still waiting (`schedule_timeout_s`), ms since the epoch.
    pub(crate) deadline_ms: Option<u64>,
}

/// Names a class in Redis: a digest of its JSON, stable across restarts and instances.
pub(crate) fn class_id(class: &JobClass) -> (String, String) {
    let json = serde_json::to_string(class).unwrap_or_default();
    let digest = Sha256::digest(json.as_bytes());
    let id: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    (id, json)
}

/// The pending index's member for a job: its ordering factors.
pub(crate) fn member(job: &PendingJob) -> String {
    format!(
        "{}|{}|{}|{}",
        job.id, job.priority, job.est_ms, job.arrival_ms
    )
}

/// Reads a member back (`None` if it is not one of ours).
pub(crate) fn parse_member(member: &str) -> Option<PendingJob> {
    let mut parts = member.split('|');
    let id: JobId = parts.next()?.parse().ok()?;
    let priority: u8 = parts.next()?.parse().ok()?;
    let est_ms: u64 = parts.next()?.parse().ok()?;
    let arrival_ms: u64 = parts.next()?.parse().ok()?;
    Some(PendingJob {
        id,
        arrival_ms,
        priority,
        est_ms,
    })
}

/// The index entry of an admitted job.
pub(crate) fn entry(
    admitted: &Admitted,
    config: &PolicyConfig,
) -> (PendingEntry, (String, String)) {
    let (class_id, class_json) = class_id(&admitted.class);
    (
        PendingEntry {
            job: admitted.job.id,
            class_id: class_id.clone(),
            member: member(&admitted.job),
            score: admitted.job.key(config),
            deadline_ms: admitted.deadline_ms,
        },
        (class_id, class_json),
    )
}

/// Learned runtimes per task, and the default for a task never seen finishing.
#[derive(Debug, Clone)]
pub(crate) struct Estimates {
    pub(crate) learned: HashMap<String, u64>,
    pub(crate) default_ms: u64,
}

impl Estimates {
    /// A job's estimate: its own, else the task's learned one, else the default.
    pub(crate) fn of(&self, spec: &JobSpec) -> u64 {
        spec.estimated_runtime_ms
            .or_else(|| self.learned.get(&spec.task).copied())
            .unwrap_or(self.default_ms)
    }

    /// Folds an observed runtime into the task's estimate (moving average, weight 1/5).
    pub(crate) fn observe(&mut self, task: &str, runtime_ms: u64) {
        let next = match self.learned.get(task) {
            Some(old) => (old * 4 + runtime_ms) / 5,
            None => runtime_ms,
        };
        self.learned.insert(task.to_owned(), next.max(1));
    }
}

/// Derives a job's class and ordering factors from its spec.
pub(crate) fn classify(
    id: JobId,
    spec: &JobSpec,
    task: &Task,
    arrival_ms: u64,
    estimates: &Estimates,
) -> Admitted {
    Admitted {
        class: JobClass {
            tenant: spec.tenant.clone(),
            queue: spec.queue.clone(),
            requires: spec.requires.clone(),
            task: TaskNeed::of(&spec.task, task),
        },
        job: PendingJob {
            id,
            arrival_ms,
            priority: spec.priority,
            est_ms: estimates.of(spec),
        },
        // From admission, not submission: a retry back from the delay ladder gets the whole
        // allowance again.
        deadline_ms: spec
            .schedule_timeout_s
            .map(|s| warren_protocol::now_ms().saturating_add(s.saturating_mul(1000))),
    }
}

/// Adds admitted jobs to the pending index.
pub(crate) async fn persist(
    store: &Store,
    admitted: &[Admitted],
    config: &PolicyConfig,
) -> Result<(), warren_store::StoreError> {
    let (entries, mut classes): (Vec<PendingEntry>, Vec<(String, String)>) =
        admitted.iter().map(|a| entry(a, config)).unzip();
    classes.sort();
    classes.dedup();
    store.pending_add(&classes, &entries).await
}

/// What admission made of a batch of intake messages, in delivery order.
#[derive(Debug, Default)]
pub(crate) struct Admission {
    /// Jobs to order now.
    pub(crate) ready: Vec<Admitted>,
    /// Jobs whose submission is still in flight (marked): in the index, but held back until
    /// the submitter confirms them, since it may yet refuse them (see [`crate::hold`]).
    pub(crate) held: Vec<Admitted>,
}

/// Parses and checks a batch of intake messages, adds them to the pending index in one
/// round trip, then acks them.
pub(crate) async fn admit(
    deliveries: Vec<Delivery>,
    publisher: &Publisher,
    store: &Store,
    estimates: &Estimates,
    config: &PolicyConfig,
) -> Admission {
    let mut parsed = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        if let Err(reason) = check_message(
            publisher.topology().signing(),
            &delivery.properties,
            &delivery.data,
            &[Destination::Intake],
        ) {
            // Not failed in Redis: a forged message must not be able to end a real job.
            publisher.dead_letter(&delivery, &reason).await;
            continue;
        }
        let envelope = match JobEnvelope::from_bytes(&delivery.data) {
            Ok(envelope) => envelope,
            Err(reason) => {
                publisher
                    .dead_letter(&delivery, &format!("malformed job message: {reason}"))
                    .await;
                continue;
            }
        };
        match envelope.spec.validate() {
            Ok(task) => parsed.push((delivery, envelope, task)),
            Err(error) => {
                let reason = format!("invalid job spec: {error}");
                let fail = Transition::new(envelope.job_id, JobState::Failed).set("error", &reason);
                let _ = store.transition(&fail).await;
                publisher.dead_letter(&delivery, &reason).await;
            }
        }
    }
    let ids: Vec<JobId> = parsed.iter().map(|(_, e, _)| e.job_id).collect();
    let states = match store.admission_states(&ids).await {
        Ok(states) => states,
        Err(error) => {
            requeue_later(parsed.into_iter().map(|(d, _, _)| d), &error.to_string()).await;
            return Admission::default();
        }
    };
    let mut admitted = Vec::new();
    let mut marked = Vec::new();
    let mut keep = Vec::new();
    for ((delivery, envelope, task), (state, submitting)) in parsed.into_iter().zip(states) {
        match state {
            None => {
                publisher
                    .dead_letter(
                        &delivery,
                        "job record missing in redis (expired or never written)",
                    )
                    .await;
            }
            // Cancelled while it waited, a duplicate of a finished job, or of a job a worker
            // holds (whose worker, should it die, the sweeper replaces): drop it on sight.
            Some(state) if state.is_terminal() || state == JobState::Running => {
                ack(&delivery).await;
            }
            Some(_) => {
                marked.push(submitting);
                admitted.push(classify(
                    envelope.job_id,
                    &envelope.spec,
                    &task,
                    envelope.created_at_ms,
                    estimates,
                ));
                keep.push(delivery);
            }
        }
    }
    if let Err(error) = persist(store, &admitted, config).await {
        requeue_later(keep.into_iter(), &error.to_string()).await;
        return Admission::default();
    }
    // Acked only now: until the index holds a job, its message is its only copy.
    for delivery in &keep {
        ack(delivery).await;
    }
    let mut admission = Admission::default();
    for (job, submitting) in admitted.into_iter().zip(marked) {
        if submitting {
            admission.held.push(job);
        } else {
            admission.ready.push(job);
        }
    }
    admission
}

async fn requeue_later(deliveries: impl Iterator<Item = Delivery>, error: &str) {
    warn!(%error, "cannot admit jobs now; returning them to intake");
    // Not at once: while Redis is down, an immediate requeue would spin.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    for delivery in deliveries {
        let _ = delivery
            .nack(BasicNackOptions {
                requeue: true,
                ..Default::default()
            })
            .await;
    }
}

pub(crate) async fn ack(delivery: &Delivery) {
    if let Err(error) = delivery.ack(BasicAckOptions::default()).await {
        tracing::debug!(%error, "intake ack failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_round_trip_and_class_ids_are_stable() {
        let job = PendingJob {
            id: JobId::new(),
            arrival_ms: 42,
            priority: 7,
            est_ms: 1500,
        };
        assert_eq!(parse_member(&member(&job)), Some(job));
        let class = JobClass {
            tenant: "t".into(),
            queue: "q".into(),
            requires: Default::default(),
            task: TaskNeed::Builtin("noop".into()),
        };
        assert_eq!(class_id(&class), class_id(&class.clone()));
        assert_eq!(class_id(&class).0.len(), 16);
    }
}
