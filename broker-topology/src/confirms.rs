//! Tells each publish its own verdict, even when the broker confirms many at once.
//!
//! RabbitMQ sends `basic.return` for an unroutable `mandatory` message just before the
//! `basic.ack` that confirms it, and it often confirms several messages with one
//! `multiple` ack. lapin then hands each returned message to *some* confirm of that ack (it
//! iterates a hash map), not necessarily the one it belongs to: under concurrent publishing an
//! unroutable message could be reported as sent and a delivered one as unroutable, breaking
//! "sent means a queue has it" (invariant I2). So this module does not trust lapin's
//! attribution. Every publish carries a sequence number in a header; one task per publisher
//! collects every confirm, and before it hands out verdicts it makes sure it has seen every
//! confirm of the same ack, then matches returned messages to their publishes by that number.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use deadpool_lapin::lapin::message::BasicReturnMessage;
use deadpool_lapin::lapin::options::ExchangeDeclareOptions;
use deadpool_lapin::lapin::types::{AMQPValue, FieldTable};
use deadpool_lapin::lapin::{self, Channel, ExchangeKind, PublisherConfirm};
use futures_util::{FutureExt, StreamExt, stream::FuturesUnordered};
use tokio::sync::{Mutex, mpsc, oneshot};

/// Header carrying the publisher's sequence number of a message, so a returned message can
/// be told apart from the others confirmed with it.
pub(crate) const PUBLISH_SEQ_HEADER: &str = "x-warren-publish-seq";

/// An exchange every AMQP 0-9-1 broker must have; a passive declare of it is a harmless round
/// trip on the publishing channel.
const BARRIER_EXCHANGE: &str = "amq.direct";

/// What the broker said about one publish.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Confirmed and routed.
    Sent,
    /// Nacked: the broker did not take responsibility.
    Nacked,
    /// Returned as unroutable, with the broker's reply text.
    Returned(String),
    /// The channel failed before the confirm came.
    Failed(lapin::Error),
}

/// One sent message, handed to the tracker.
struct Sent {
    seq: u64,
    confirm: PublisherConfirm,
    /// Where to send the verdict; `None` for fire-and-forget events.
    verdict: Option<oneshot::Sender<Verdict>>,
}

/// The sending half of a publisher's confirm tracking. Cheap to share between clones.
pub(crate) struct Tracker {
    /// Held while a frame goes out and its confirm is registered, so that the tracker can
    /// wait for a publish that is half-way (sent, not yet registered). Holds the next number.
    next_seq: Mutex<u64>,
    sent: mpsc::UnboundedSender<Sent>,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker").finish_non_exhaustive()
    }
}

impl Tracker {
    /// Starts tracking the confirms of `channel` (already in confirm mode).
    ///
    /// The tracking task needs no shutdown signal: it ends by itself once every handle on the
    /// tracker has been dropped and every outstanding confirm has come in (or the channel
    /// died, which fails them all).
    pub(crate) fn start(channel: Channel) -> Arc<Self> {
        let (sent, receiver) = mpsc::unbounded_channel();
        let tracker = Arc::new(Self {
            next_seq: Mutex::new(0),
            sent,
        });
        tokio::spawn(track(channel, Arc::downgrade(&tracker), receiver));
        tracker
    }

    /// Publishes through `publish` (given the headers to send, stamped with a sequence
    /// number) and returns the receiver of the broker's verdict.
    pub(crate) async fn send<F, Fut>(
        &self,
        headers: FieldTable,
        publish: F,
    ) -> Result<oneshot::Receiver<Verdict>, lapin::Error>
    where
        F: FnOnce(FieldTable) -> Fut,
        Fut: Future<Output = Result<PublisherConfirm, lapin::Error>>,
    {
        let (verdict, receiver) = oneshot::channel();
        self.register(headers, Some(verdict), publish).await?;
        Ok(receiver)
    }

    /// Publishes like [`Tracker::send`] but nobody waits for the verdict; the confirm is
    /// still collected, since lapin keeps every unawaited confirm until the channel closes.
    pub(crate) async fn send_unconfirmed<F, Fut>(
        &self,
        headers: FieldTable,
        publish: F,
    ) -> Result<(), lapin::Error>
    where
        F: FnOnce(FieldTable) -> Fut,
        Fut: Future<Output = Result<PublisherConfirm, lapin::Error>>,
    {
        self.register(headers, None, publish).await
    }

    async fn register<F, Fut>(
        &self,
        mut headers: FieldTable,
        verdict: Option<oneshot::Sender<Verdict>>,
        publish: F,
    ) -> Result<(), lapin::Error>
    where
        F: FnOnce(FieldTable) -> Fut,
        Fut: Future<Output = Result<PublisherConfirm, lapin::Error>>,
    {
        let mut next_seq = self.next_seq.lock().await;
        let seq = *next_seq;
        *next_seq += 1;
        headers.insert(
            PUBLISH_SEQ_HEADER.into(),
            AMQPValue::LongLongInt(i64::try_from(seq).unwrap_or(i64::MAX)),
        );
        let confirm = publish(headers).await?;
        // The tracking task outlives every handle on the tracker; should it have panicked,
        // the dropped verdict sender makes the caller report the publish as failed.
        let _ = self.sent.send(Sent {
            seq,
            confirm,
            verdict,
        });
        drop(next_seq);
        Ok(())
    }
}

/// Reads the sequence number of a returned message.
fn seq_of(headers: Option<&FieldTable>) -> Option<u64> {
    match headers?.inner().get(PUBLISH_SEQ_HEADER)? {
        AMQPValue::LongLongInt(v) => u64::try_from(*v).ok(),
        _ => None,
    }
}

/// What the broker answered for one publish: nacked or not, and the returned message lapin
/// attached to it, which may belong to another publish of the same ack.
struct Answer {
    nacked: bool,
    returned: Option<BasicReturnMessage>,
}

/// A confirm that came in, and where its verdict goes.
type Settled = (u64, Option<oneshot::Sender<Verdict>>, lapin::Result<Answer>);

fn wait(sent: Sent) -> impl Future<Output = Settled> {
    let Sent {
        seq,
        confirm,
        verdict,
    } = sent;
    async move {
        let answer = confirm.await.map(|confirmation| Answer {
            nacked: confirmation.is_nack(),
            returned: confirmation.take_message(),
        });
        (seq, verdict, answer)
    }
}

async fn track(
    channel: Channel,
    tracker: std::sync::Weak<Tracker>,
    mut incoming: mpsc::UnboundedReceiver<Sent>,
) {
    let mut in_flight = FuturesUnordered::new();
    let mut returned: HashMap<u64, String> = HashMap::new();
    let mut open = true;
    loop {
        let mut settled = Vec::new();
        tokio::select! {
            next = incoming.recv(), if open => {
                match next {
                    Some(sent) => in_flight.push(wait(sent)),
                    None => open = false,
                }
                continue;
            }
            Some(done) = in_flight.next(), if !in_flight.is_empty() => settled.push(done),
            else => return,
        }
        // Whatever the broker confirmed with the same ack has been resolved by lapin before
        // it reads the next frame. A round trip on the channel proves that frame has been read;
        // the lock proves no publish is sent but not yet registered.
        drain(&mut in_flight, &mut settled);
        let barrier = channel
            .exchange_declare(
                BARRIER_EXCHANGE.into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    passive: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        if let Err(error) = barrier {
            // The channel is gone: every outstanding confirm fails with it.
            tracing::debug!(%error, "publisher channel closed while settling confirms");
        }
        let alive = tracker.upgrade();
        let registering = match &alive {
            Some(alive) => Some(alive.next_seq.lock().await),
            None => None,
        };
        while let Ok(sent) = incoming.try_recv() {
            in_flight.push(wait(sent));
        }
        drop(registering);
        drop(alive);
        drain(&mut in_flight, &mut settled);

        let mut verdicts = Vec::with_capacity(settled.len());
        for (seq, tx, result) in settled {
            let verdict = match result {
                Err(error) => Verdict::Failed(error),
                Ok(Answer {
                    nacked,
                    returned: message,
                }) => {
                    if let Some(message) = message {
                        let owner = seq_of(message.delivery.properties.headers().as_ref());
                        if let Some(owner) = owner {
                            returned.insert(owner, message.reply_text.to_string());
                        }
                    }
                    if nacked {
                        Verdict::Nacked
                    } else {
                        Verdict::Sent
                    }
                }
            };
            verdicts.push((seq, tx, verdict));
        }
        for (seq, tx, verdict) in verdicts {
            let verdict = match (returned.remove(&seq), verdict) {
                (Some(reply), Verdict::Sent) => Verdict::Returned(reply),
                (_, verdict) => verdict,
            };
            if let Some(tx) = tx {
                // The caller may have stopped waiting; nothing to do then.
                let _ = tx.send(verdict);
            }
        }
    }
}

/// Takes every confirm that has already come in, without waiting.
fn drain<F>(in_flight: &mut FuturesUnordered<F>, settled: &mut Vec<F::Output>)
where
    F: Future,
{
    while let Some(Some(done)) = in_flight.next().now_or_never() {
        settled.push(done);
    }
}
