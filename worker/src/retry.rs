//! Sending a failed attempt's successor into the delay ladder, through broker outages.

use std::time::Duration;

use tracing::warn;
use warren_protocol::{JobEnvelope, now_ms};
use warren_topology::delay::{NextHop, next_hop};

use crate::runtime::Runtime;

/// Longest backoff between attempts (a job's `retry_backoff.max_s` may go up to it).
const MAX_BACKOFF: Duration = Duration::from_secs(warren_protocol::MAX_BACKOFF_S);
/// Longest one try at sending a retry into the delay ladder may take.
const RETRY_SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends the next attempt into the delay ladder, trying again with backoff while RabbitMQ is
/// out of reach (issue 6, item 4: a retry must not turn into `failed` because the broker was
/// down). Each try takes the current publisher, which the session replaces once it has
/// reconnected. Gives up (`None`) only when shutdown has run out of grace.
pub(crate) async fn send(
    rt: &Runtime,
    envelope: &JobEnvelope,
    after: Option<Duration>,
) -> Option<u64> {
    let mut wait = Duration::from_millis(200);
    loop {
        // Bounded: a connection that hangs rather than fails must not hold the job for ever.
        // A confirm that came too late may leave a second copy in the ladder; the claim drops
        // whichever copy finds the attempt already running or finished (I3).
        let sent = tokio::time::timeout(RETRY_SEND_TIMEOUT, schedule_retry(rt, envelope, after))
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("no confirm within {RETRY_SEND_TIMEOUT:?}")));
        match sent {
            Ok(due) => return Some(due),
            Err(error) if rt.is_aborting() => {
                warn!(
                    error = format!("{error:#}"),
                    "could not schedule the retry before shutdown; the sweeper will return the job"
                );
                return None;
            }
            Err(error) => {
                warn!(error = format!("{error:#}"), retry_in = ?wait, "could not schedule the retry; trying again");
                tokio::time::sleep(wait).await;
                // Capped low so that a shutdown is noticed soon.
                wait = (wait * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// The wait after a failed attempt: the job's own `retry_backoff`, else the worker's
/// default (`WARREN_RETRY_BACKOFF`, `_BASE`, `_MAX`, `_JITTER`). `unit` is random in [0, 1).
fn backoff_for(rt: &Runtime, envelope: &JobEnvelope, unit: f64) -> Duration {
    match &envelope.spec.retry_backoff {
        Some(own) => own.delay(envelope.attempt, unit),
        None => warren_protocol::backoff(
            rt.args.retry_strategy,
            rt.args.retry_base,
            rt.args.retry_max,
            rt.args.retry_jitter,
            envelope.attempt,
            unit,
        ),
    }
}

/// Sends the next attempt into the delay ladder; returns when it is due.
async fn schedule_retry(
    rt: &Runtime,
    envelope: &JobEnvelope,
    after: Option<Duration>,
) -> anyhow::Result<u64> {
    let delay = after
        .unwrap_or_else(|| backoff_for(rt, envelope, rand::random::<f64>()))
        .min(MAX_BACKOFF);
    let due = now_ms() + delay.as_millis() as u64;
    let mut next = envelope.clone();
    next.attempt += 1;
    next.not_before_ms = Some(due);
    let publisher = rt.publisher();
    // Always through the ladder, never straight to intake, even for short delays: the
    // scheduler moves the job from `retrying` to `queued` as it takes it off the ladder, and
    // that must happen after this worker has recorded `retrying` (a rung takes at least 1 s).
    let rung = match next_hop(delay) {
        NextHop::Due => 0,
        NextHop::Rung(rung) => rung,
    };
    let pending = publisher.send_delay(rung, &next).await?;
    pending.confirmed().await?;
    Ok(due)
}
