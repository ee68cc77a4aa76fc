//! The dead-letter queue's consumer: every message that reaches `{ns}.dead` (malformed
//! messages, invalid specs, jobs whose attempts ran out, poison jobs, messages a queue
//! rejected) is indexed in Redis with its reason (`GET /v1/dead`); a job RabbitMQ itself
//! dead-lettered, if it still lives, is marked `failed` with that reason (the services that
//! dead-letter settle their jobs themselves); only then is the message acked. The index is the
//! record; the queue stays empty, so it cannot grow without bound.

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use warren_protocol::{JobEnvelope, JobId, JobState, now_ms};
use warren_store::{DeadLetter, Store, Transition, TransitionOutcome};
use warren_topology::lapin::message::Delivery;
use warren_topology::lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use warren_topology::lapin::types::{AMQPValue, FieldTable};
use warren_topology::signing::check_message;
use warren_topology::{AmqpPool, Destination, REASON_HEADER, Topology, header_str, header_u64};

/// Consumes `{ns}.dead` until `stop` or until the channel fails.
pub(crate) async fn run(
    pool: AmqpPool,
    topology: Topology,
    store: Store,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let channel = Topology::channel(&pool).await?;
    channel
        .basic_qos(64, BasicQosOptions { global: false })
        .await?;
    let mut consumer = channel
        .basic_consume(
            topology.dead_queue().into(),
            "scheduler-dead".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            next = consumer.next() => {
                let Some(delivery) = next else { anyhow::bail!("dead-letter consumer cancelled") };
                let Ok(delivery) = delivery else { anyhow::bail!("dead-letter consumer failed") };
                index(&store, &topology, &delivery).await;
            }
        }
    }
}

/// Reads what a dead message says about itself.
pub(crate) fn describe(delivery: &Delivery, dead_ms: u64) -> DeadLetter {
    let envelope = JobEnvelope::from_bytes(&delivery.data).ok();
    let props = &delivery.properties;
    let job_id: Option<JobId> = envelope.as_ref().map(|e| e.job_id).or_else(|| {
        props
            .message_id()
            .as_ref()
            .and_then(|m| m.as_str().parse().ok())
    });
    let reason = header_str(props, REASON_HEADER)
        .map(str::to_owned)
        .or_else(|| death_reason(props))
        .unwrap_or_else(|| "dead-lettered with no reason given".to_owned());
    let tenant = envelope
        .as_ref()
        .map(|e| e.spec.tenant.clone())
        .or_else(|| header_str(props, "x-warren-tenant").map(str::to_owned));
    DeadLetter {
        // A message with no job gets an id of its own (UUIDv7, so it sorts by time too).
        id: job_id.unwrap_or_default().to_string(),
        job_id,
        reason,
        dead_ms,
        tenant,
        task: envelope.as_ref().map(|e| e.spec.task.clone()),
        attempt: envelope
            .as_ref()
            .map(|e| e.attempt)
            .or_else(|| header_u64(props, "x-warren-attempt").and_then(|a| u32::try_from(a).ok())),
        requeueable: job_id.is_some(),
    }
}

/// RabbitMQ's own dead-lettering (a reject without requeue, an expired message) says why in
/// the `x-death` header: `rejected from {ns}.intake`.
fn death_reason(props: &warren_topology::lapin::BasicProperties) -> Option<String> {
    let headers = props.headers().as_ref()?;
    let AMQPValue::FieldArray(deaths) = headers.inner().get("x-death")? else {
        return None;
    };
    let AMQPValue::FieldTable(first) = deaths.as_slice().first()? else {
        return None;
    };
    let text = |name: &str| match first.inner().get(name) {
        Some(AMQPValue::LongString(s)) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        Some(AMQPValue::ShortString(s)) => Some(s.as_str().to_owned()),
        _ => None,
    };
    Some(format!(
        "{} from {}",
        text("reason").unwrap_or_else(|| "dead-lettered".into()),
        text("queue").unwrap_or_else(|| "a queue".into())
    ))
}

/// Whether a dead message may end its job. A Warren service that dead-letters a message
/// has already settled its job (failed it, or left it alone because the message was forged),
/// so only RabbitMQ's own dead-lettering (`x-death`, no Warren reason) ends one here, and,
/// when messages are signed, only if the message is one Warren signed for a queue that
/// dead-letters: anyone who can publish to `{ns}.dead` must not be able to fail real jobs.
fn may_end_its_job(topology: &Topology, delivery: &Delivery) -> bool {
    let props = &delivery.properties;
    header_str(props, REASON_HEADER).is_none()
        && death_reason(props).is_some()
        && check_message(
            topology.signing(),
            props,
            &delivery.data,
            &[Destination::Intake, Destination::Delay],
        )
        .is_ok()
}

async fn index(store: &Store, topology: &Topology, delivery: &Delivery) {
    let mut entry = describe(delivery, now_ms());
    if let Some(id) = entry.job_id.filter(|_| may_end_its_job(topology, delivery)) {
        // A dead job does not stay live: it fails with the reason (a job already finished,
        // which is the usual case, keeps its state).
        let fail = Transition::new(id, JobState::Failed)
            .set("error", &entry.reason)
            .set("dead_reason", &entry.reason);
        match store.transition(&fail).await {
            // No record: nothing to run again (the message is kept for inspection).
            Ok(TransitionOutcome::Missing) => entry.requeueable = false,
            Ok(_) => {}
            Err(error) => {
                warn!(job_id = %id, %error, "could not fail a dead-lettered job; trying again");
                requeue_later(delivery).await;
                return;
            }
        }
    }
    match store.record_dead(&entry).await {
        Ok(()) => {
            info!(id = %entry.id, reason = %entry.reason, "dead letter indexed");
            let _ = delivery.ack(BasicAckOptions::default()).await;
        }
        Err(error) => {
            warn!(%error, "could not index a dead letter; trying again");
            requeue_later(delivery).await;
        }
    }
}

/// Not at once: while Redis is down, an immediate requeue would spin.
async fn requeue_later(delivery: &Delivery) {
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let _ = delivery
        .nack(BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await;
}
