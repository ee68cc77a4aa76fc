//! The delay ladder's exit: expired messages go one rung down, or back to intake when due.

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use warren_protocol::{JobEnvelope, JobState, now_ms};
use warren_store::{Store, Transition};
use warren_topology::delay::{NextHop, next_hop};
use warren_topology::lapin::message::Delivery;
use warren_topology::lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use warren_topology::lapin::types::FieldTable;
use warren_topology::signing::check_message;
use warren_topology::{AmqpPool, Destination, Publisher, Topology};

/// Consumes `{ns}.delay.expired` until `stop` or until the channel fails.
pub(crate) async fn run(
    pool: AmqpPool,
    publisher: Publisher,
    store: Store,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let topology = publisher.topology().clone();
    let channel = Topology::channel(&pool).await?;
    channel
        .basic_qos(256, BasicQosOptions { global: false })
        .await?;
    let mut consumer = channel
        .basic_consume(
            topology.delay_expired_queue().into(),
            "scheduler-delay".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            next = consumer.next() => {
                let Some(delivery) = next else { anyhow::bail!("delay consumer cancelled") };
                let (publisher, store) = (publisher.clone(), store.clone());
                // Concurrent, because a step may wait out the last second of its delay.
                tokio::spawn(async move { step(&publisher, &store, delivery).await });
            }
        }
    }
}

async fn step(
    publisher: &Publisher,
    store: &Store,
    delivery: Result<Delivery, warren_topology::lapin::Error>,
) {
    let Ok(delivery) = delivery else { return };
    if let Err(reason) = check_message(
        publisher.topology().signing(),
        &delivery.properties,
        &delivery.data,
        &[Destination::Delay],
    ) {
        publisher.dead_letter(&delivery, &reason).await;
        return;
    }
    let envelope = match JobEnvelope::from_bytes(&delivery.data) {
        Ok(envelope) => envelope,
        Err(reason) => {
            let reason = format!("malformed delayed message: {reason}");
            publisher.dead_letter(&delivery, &reason).await;
            return;
        }
    };
    let id = envelope.job_id;
    match store.state(id).await {
        Ok(Some(state)) if state.is_terminal() => {
            debug!(job_id = %id, %state, "delayed job already finished; dropping");
            let _ = delivery.ack(BasicAckOptions::default()).await;
            return;
        }
        Ok(None) => {
            warn!(job_id = %id, "delayed job has no record; dropping");
            let _ = delivery.ack(BasicAckOptions::default()).await;
            return;
        }
        Ok(Some(_)) => {}
        Err(error) => {
            warn!(job_id = %id, %error, "cannot read delayed job");
            requeue_later(&delivery).await;
            return;
        }
    }
    let due = envelope.not_before_ms.unwrap_or(0);
    let hop = next_hop(std::time::Duration::from_millis(
        due.saturating_sub(now_ms()),
    ));
    if hop == NextHop::Due {
        // Less than the smallest rung left: wait it out here (the message stays unacked).
        let left = due.saturating_sub(now_ms());
        tokio::time::sleep(std::time::Duration::from_millis(left)).await;
    }
    if hop == NextHop::Due {
        // Queued before it is published: a worker that claims it at once must not find it
        // still `retrying` (which the claim treats as a stale copy). If the publish below
        // fails, the message stays unacked and this step runs again.
        let t = Transition::new(id, JobState::Queued).at_attempt(envelope.attempt);
        if let Err(error) = store.transition(&t).await {
            warn!(job_id = %id, %error, "could not mark retried job queued");
            requeue_later(&delivery).await;
            return;
        }
        // A first attempt delayed on submit (already `queued`) said `delayed_until …`; from
        // now on the scheduler says why it waits.
        let _ = store.clear_pending_reason(id).await;
    }
    let sent = async {
        match hop {
            NextHop::Due => publisher.send_intake(&envelope).await?.confirmed().await,
            NextHop::Rung(rung) => {
                publisher
                    .send_delay(rung, &envelope)
                    .await?
                    .confirmed()
                    .await
            }
        }
    }
    .await;
    if let Err(error) = sent {
        warn!(job_id = %id, %error, "could not move a delayed job on");
        requeue_later(&delivery).await;
        return;
    }

    let _ = delivery.ack(BasicAckOptions::default()).await;
}

/// Hands a message back to the expired queue after a pause (not at once: while Redis or the
/// publish is failing, an immediate requeue would spin). Left unacked on a healthy channel,
/// it would never come back.
async fn requeue_later(delivery: &Delivery) {
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let _ = delivery
        .nack(BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await;
}
