use std::sync::Arc;

use deadpool_lapin::lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use deadpool_lapin::lapin::types::AMQPValue;
use deadpool_lapin::lapin::{self, BasicProperties, Channel};
use tokio::sync::oneshot;
use warren_protocol::{JobEnvelope, JobId, PoolName, WorkerId};

use crate::confirms::{Tracker, Verdict};
use crate::connect::{AmqpPool, open_channel};
use crate::error::TopologyError;
use crate::headers::{REASON_HEADER, job_properties};
use crate::names::{CANCEL_ROUTING_KEY, Topology};
use crate::signing::Destination;

/// A channel in confirm mode that publishes with `mandatory`, so that "sent" means "a queue
/// has it": the broker confirmed it, and did not return it as unroutable.
///
/// Clones share the channel and may publish concurrently: each publish still gets its own
/// verdict (see `confirms.rs` for why that takes more than awaiting lapin's confirm).
#[derive(Debug, Clone)]
pub struct Publisher {
    channel: Channel,
    topology: Topology,
    tracker: Arc<Tracker>,
}

/// A publish that was sent and waits for the broker's confirm.
#[derive(Debug)]
#[must_use = "a publish is only safe once confirmed"]
pub struct Pending {
    verdict: oneshot::Receiver<Verdict>,
    routing_key: String,
}

impl Pending {
    /// Waits for the broker's verdict.
    ///
    /// # Errors
    /// [`TopologyError::Nacked`] when the broker refused responsibility,
    /// [`TopologyError::Unroutable`] when no queue was bound for the routing key (RabbitMQ
    /// confirms such a message with an *ack* and returns it: it must not count as sent), or
    /// [`TopologyError::Channel`] when the channel died first.
    pub async fn confirmed(self) -> Result<(), TopologyError> {
        let routing_key = self.routing_key;
        let verdict = self.verdict.await.unwrap_or_else(|_| {
            // The tracker only drops a verdict if it panicked: the publish is not known safe.
            Verdict::Failed(lapin::Error::from(lapin::ErrorKind::IOError(Arc::new(
                std::io::Error::other("publisher confirm tracking stopped"),
            ))))
        });
        match verdict {
            Verdict::Sent => Ok(()),
            Verdict::Nacked => Err(TopologyError::Nacked { routing_key }),
            Verdict::Returned(reply) => Err(TopologyError::Unroutable { routing_key, reply }),
            Verdict::Failed(source) => Err(TopologyError::Channel {
                what: "waiting for a publisher confirm",
                source,
            }),
        }
    }
}

impl Publisher {
    /// Opens a channel on the pool and turns on publisher confirms.
    ///
    /// # Errors
    /// Returns the error of opening the channel or of `confirm.select`.
    pub async fn open(pool: &AmqpPool, topology: &Topology) -> Result<Self, TopologyError> {
        let channel = open_channel(pool).await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|source| TopologyError::Channel {
                what: "enabling publisher confirms",
                source,
            })?;
        Ok(Self {
            tracker: Tracker::start(channel.clone()),
            channel,
            topology: topology.clone(),
        })
    }

    /// Returns the underlying channel (to declare topology with it). Publish only through
    /// the publisher's methods: a `mandatory` message sent on the channel directly could be
    /// handed another publish's return, which then would not see it.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Returns the topology this publisher names things by.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Tells whether the channel is still open.
    pub fn is_connected(&self) -> bool {
        self.channel.status().connected()
    }

    /// Sends one message with `mandatory`; await [`Pending::confirmed`] for the verdict.
    ///
    /// # Errors
    /// Returns [`TopologyError::Publish`] when the frame cannot be sent.
    pub async fn send(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<Pending, TopologyError> {
        let headers = properties.headers().clone().unwrap_or_default();
        let verdict = self
            .tracker
            .send(headers, |headers| {
                self.channel.basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    body,
                    properties.with_headers(headers),
                )
            })
            .await
            .map_err(|source| TopologyError::Publish {
                exchange: exchange.to_owned(),
                routing_key: routing_key.to_owned(),
                source,
            })?;
        Ok(Pending {
            verdict,
            routing_key: routing_key.to_owned(),
        })
    }

    /// Publishes an empty transient message that no queue takes and waits for the broker's
    /// answer, which proves that a publish can be confirmed right now. A broker that blocks
    /// publishers (a memory or disk alarm) does not answer, so callers bound this with a
    /// timeout; an open channel alone says nothing about that.
    ///
    /// # Errors
    /// Returns [`TopologyError`] when the message cannot be sent or the channel dies first.
    pub async fn probe(&self) -> Result<(), TopologyError> {
        let properties = BasicProperties::default().with_delivery_mode(1);
        let pending = self
            .send("", &self.topology.probe_routing_key(), b"", properties)
            .await?;
        match pending.confirmed().await {
            // Returned as unroutable: the expected answer, and an answer is all we ask.
            Ok(()) | Err(TopologyError::Unroutable { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// A job message's properties, signed for `to` when the topology has keys.
    fn job_properties(
        &self,
        envelope: &JobEnvelope,
        body: &[u8],
        to: &Destination,
    ) -> BasicProperties {
        let properties = job_properties(envelope);
        match self.topology.signing() {
            Some(keys) => keys.sign_properties(properties, &envelope.job_id.to_string(), to, body),
            None => properties,
        }
    }

    /// Sends a job to intake (the scheduler's queue).
    ///
    /// # Errors
    /// See [`Publisher::send`].
    pub async fn send_intake(&self, envelope: &JobEnvelope) -> Result<Pending, TopologyError> {
        let body = envelope.to_bytes();
        self.send(
            &self.topology.intake_exchange(),
            self.topology.intake_routing_key(),
            &body,
            self.job_properties(envelope, &body, &Destination::Intake),
        )
        .await
    }

    /// Sends a job to a pool's queue.
    ///
    /// # Errors
    /// See [`Publisher::send`].
    pub async fn send_pool(
        &self,
        pool: &PoolName,
        envelope: &JobEnvelope,
    ) -> Result<Pending, TopologyError> {
        let body = envelope.to_bytes();
        self.send(
            &self.topology.work_exchange(),
            &pool.to_string(),
            &body,
            self.job_properties(envelope, &body, &Destination::Pool(pool.clone())),
        )
        .await
    }

    /// Sends a job to one worker's queue.
    ///
    /// # Errors
    /// See [`Publisher::send`].
    pub async fn send_worker(
        &self,
        worker: &WorkerId,
        envelope: &JobEnvelope,
    ) -> Result<Pending, TopologyError> {
        let body = envelope.to_bytes();
        self.send(
            &self.topology.work_exchange(),
            &self.topology.worker_routing_key(worker),
            &body,
            self.job_properties(envelope, &body, &Destination::Worker(worker.clone())),
        )
        .await
    }

    /// Sends a job to rung `rung` of the delay ladder (through the default exchange).
    ///
    /// # Errors
    /// See [`Publisher::send`].
    pub async fn send_delay(
        &self,
        rung: u32,
        envelope: &JobEnvelope,
    ) -> Result<Pending, TopologyError> {
        let body = envelope.to_bytes();
        self.send(
            "",
            &self.topology.delay_queue(rung),
            &body,
            self.job_properties(envelope, &body, &Destination::Delay),
        )
        .await
    }

    /// Sends a message to the dead-letter exchange with a header saying why.
    ///
    /// # Errors
    /// See [`Publisher::send`].
    pub async fn send_dead(
        &self,
        body: &[u8],
        properties: BasicProperties,
        reason: &str,
    ) -> Result<Pending, TopologyError> {
        let mut headers = properties.headers().clone().unwrap_or_default();
        headers.insert(REASON_HEADER.into(), AMQPValue::LongString(reason.into()));
        let properties = properties.with_headers(headers).with_delivery_mode(2);
        self.send(&self.topology.dead_exchange(), "", body, properties)
            .await
    }

    /// Moves a consumed message to the dead-letter exchange with `reason`, then acks it. If
    /// that publish fails, rejects the message without requeue, so the queue's own
    /// dead-letter exchange still keeps it (without the reason): never rejected into the void.
    pub async fn dead_letter(&self, delivery: &lapin::message::Delivery, reason: &str) {
        use lapin::options::{BasicAckOptions, BasicNackOptions};
        tracing::warn!(reason, "dead-lettering a message");
        let sent = async {
            self.send_dead(&delivery.data, delivery.properties.clone(), reason)
                .await?
                .confirmed()
                .await
        }
        .await;
        let settled = match sent {
            Ok(()) => delivery.ack(BasicAckOptions::default()).await,
            Err(error) => {
                tracing::warn!(%error, "could not dead-letter; rejecting to the queue's dead-letter exchange");
                delivery
                    .nack(BasicNackOptions {
                        requeue: false,
                        ..Default::default()
                    })
                    .await
            }
        };
        if let Err(error) = settled {
            // The channel is gone: the broker redelivers and the next attempt settles it.
            tracing::debug!(%error, "could not settle a dead-lettered message");
        }
    }

    /// Asks every worker to stop `job` (the one running it kills it). Best effort, like
    /// every event: the job is already cancelled in Redis, and a worker never records a
    /// result over a terminal state.
    ///
    /// # Errors
    /// Returns [`TopologyError::Publish`] when the frame cannot be sent.
    pub async fn broadcast_cancel(&self, job: JobId) -> Result<(), TopologyError> {
        let body = serde_json::json!({ "job_id": job }).to_string();
        let id = job.to_string();
        let mut props = event_properties().with_message_id(id.as_str().into());
        if let Some(keys) = self.topology.signing() {
            props = keys.sign_properties(props, &id, &Destination::Cancel, body.as_bytes());
        }
        self.emit_with(
            &self.topology.control_exchange(),
            CANCEL_ROUTING_KEY,
            body.as_bytes(),
            props,
        )
        .await
    }

    /// Publishes a transient event (heartbeat, control command) without waiting for its
    /// confirm: events are advisory and the next heartbeat supersedes a lost one.
    ///
    /// # Errors
    /// Returns [`TopologyError::Publish`] when the frame cannot be sent.
    pub async fn emit(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
    ) -> Result<(), TopologyError> {
        self.emit_with(exchange, routing_key, body, event_properties())
            .await
    }

    async fn emit_with(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        props: BasicProperties,
    ) -> Result<(), TopologyError> {
        let headers = props.headers().clone().unwrap_or_default();
        // The confirm is still tracked (and dropped once it comes): left to lapin, every
        // unawaited confirm would be kept until the channel closes.
        self.tracker
            .send_unconfirmed(headers, |headers| {
                self.channel.basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    BasicPublishOptions::default(),
                    body,
                    props.clone().with_headers(headers),
                )
            })
            .await
            .map_err(|source| TopologyError::Publish {
                exchange: exchange.to_owned(),
                routing_key: routing_key.to_owned(),
                source,
            })
    }
}

/// Properties of a transient event.
fn event_properties() -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(1)
        .with_content_type("application/json".into())
}
