//! Live updates: one Redis subscription and one ticker per dashboard, fanned out to every
//! browser over server-sent events.
//!
//! The pump turns each job event (`{ns}:events`, published by the transition script) into a
//! `job` message, and once a second, while anyone watches, sends a `tick` with the overview
//! and the workers. Messages go through a bounded broadcast channel ([`LIVE_BUFFER`]): a
//! browser that falls behind loses the oldest messages and gets a `lagged` event instead, and
//! refetches what it shows. Nothing a browser does can slow the pump, let alone a service.
//!
//! Pub/sub is at-most-once, so after the subscription is (re)made the pump sends `resync`:
//! pages refetch rather than trust a stream that may have a hole.
//!
//! Each message says who may see it ([`Audience`]): a job event goes to the readers of its
//! tenant (and tenant-less tokens), a tick (every tenant's counts and workers) to admins, a
//! resync to everyone. Each stream drops what its caller may not see.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use serde_json::json;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_util::sync::CancellationToken;
use warren_store::Store;

use warren_kit::auth::Role;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::overview;
use crate::state::AppState;

#[cfg(doc)]
use crate::state::LIVE_BUFFER;

/// How often the overview and workers are pushed.
const TICK: Duration = Duration::from_secs(1);
/// Ticks between two reads of the latency percentiles.
const LATENCY_EVERY: u64 = 5;
/// Longest wait between attempts to resubscribe after Redis went away.
const MAX_BACKOFF: Duration = warren_kit::backoff::RECONNECT_BACKOFF_MAX;

/// Who may see a live message.
#[derive(Debug, Clone)]
pub(crate) enum Audience {
    /// Every reader (`resync`).
    Everyone,
    /// Readers who see this tenant's jobs (job events).
    Tenant(Arc<str>),
    /// Admin tokens only (ticks: every tenant's counts, every worker).
    Admins,
}

/// One message of the live stream, with who may see it. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct LiveMessage {
    audience: Audience,
    json: Arc<str>,
}

impl LiveMessage {
    fn new(audience: Audience, json: String) -> Self {
        Self {
            audience,
            json: Arc::from(json),
        }
    }

    fn for_caller(&self, caller: &Caller) -> bool {
        match &self.audience {
            Audience::Everyone => true,
            Audience::Tenant(tenant) => caller.sees(tenant),
            Audience::Admins => caller.is_admin(),
        }
    }
}

/// Starts the event pump and the ticker; both stop at shutdown.
pub(crate) fn spawn_pump(state: &AppState) {
    let (store, live, stop) = (
        state.store().clone(),
        state.live().clone(),
        state.stopping().clone(),
    );
    state
        .tracker()
        .spawn(pump_events(store.clone(), live.clone(), stop.clone()));
    state.tracker().spawn(tick(store, live, stop));
}

async fn pump_events(store: Store, live: broadcast::Sender<LiveMessage>, stop: CancellationToken) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let subscribed = tokio::select! {
            () = stop.cancelled() => return,
            subscribed = store.subscribe_events() => subscribed,
        };
        match subscribed {
            Ok(events) => {
                backoff = Duration::from_millis(500);
                let _ = live.send(LiveMessage::new(
                    Audience::Everyone,
                    json!({ "type": "resync" }).to_string(),
                ));
                let mut events = std::pin::pin!(events);
                loop {
                    let next = tokio::select! {
                        () = stop.cancelled() => return,
                        next = events.next() => next,
                    };
                    let Some(event) = next else { break };
                    metrics::counter!("warren_dashboard_job_events_total", "state" => event.state.as_str())
                        .increment(1);
                    // No receivers is fine: nobody is watching right now.
                    let audience = Audience::Tenant(Arc::from(event.tenant.as_str()));
                    let _ = live.send(LiveMessage::new(
                        audience,
                        json!({ "type": "job", "job": event }).to_string(),
                    ));
                }
                tracing::warn!("job event subscription ended; subscribing again");
            }
            Err(error) => {
                tracing::warn!(error = %crate::error::chain(&error), "cannot subscribe to job events");
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn tick(store: Store, live: broadcast::Sender<LiveMessage>, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut tick_count: u64 = 0;
    let mut latency = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if live.receiver_count() == 0 {
            continue;
        }
        // The percentiles read a page of records: refresh them every few ticks only.
        if tick_count.is_multiple_of(LATENCY_EVERY) {
            latency = crate::latency::recent(&store).await.ok();
        }
        tick_count += 1;
        match overview::snapshot(&store, latency.clone()).await {
            Ok((overview, workers)) => {
                let message = json!({ "type": "tick", "overview": overview, "workers": workers });
                let _ = live.send(LiveMessage::new(Audience::Admins, message.to_string()));
            }
            Err(error) => {
                tracing::debug!(error = %crate::error::chain(&error), "cannot read the overview");
            }
        }
    }
}

/// Counts the open live streams for `/metrics`; one lives inside each stream.
struct Watcher;

impl Watcher {
    fn new() -> Self {
        metrics::gauge!("warren_dashboard_sse_streams").increment(1.0);
        Self
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        metrics::gauge!("warren_dashboard_sse_streams").decrement(1.0);
    }
}

/// `GET /api/live`: the live stream (`data:` lines of JSON messages with a `type`: `job`,
/// `tick`, `resync`; plus `event: lagged` when this reader fell behind), with only what the
/// caller may see: job events of its tenant, ticks for admins.
pub(crate) async fn live(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    caller.require(Role::Read)?;
    let receiver = state.live().subscribe();
    let watcher = Watcher::new();
    let stream = BroadcastStream::new(receiver)
        .filter_map(move |item| {
            let _watching = &watcher;
            let event = match item {
                Ok(message) if message.for_caller(&caller) => {
                    Some(Event::default().data(&*message.json))
                }
                Ok(_) => None,
                Err(BroadcastStreamRecvError::Lagged(skipped)) => {
                    metrics::counter!("warren_dashboard_sse_lagged_total").increment(1);
                    Some(Event::default().event("lagged").data(skipped.to_string()))
                }
            };
            std::future::ready(event.map(Ok))
        })
        // Ends at shutdown, so the graceful drain is not held up by open streams.
        .take_until(state.stopping().clone().cancelled_owned());
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

#[cfg(test)]
mod tests {
    use warren_kit::auth::Principal;

    use super::*;

    #[test]
    fn each_reader_gets_what_its_token_may_see() {
        let reader = |tenant: Option<&str>, role| {
            Caller::of(Principal {
                name: "t".into(),
                roles: vec![role],
                tenant: tenant.map(str::to_owned),
            })
        };
        let a_reader = reader(Some("a"), Role::Read);
        let admin = reader(None, Role::Admin);
        let message = |audience| LiveMessage::new(audience, "{}".into());
        let job_of_a = message(Audience::Tenant(Arc::from("a")));
        let job_of_b = message(Audience::Tenant(Arc::from("b")));
        let tick = message(Audience::Admins);
        let resync = message(Audience::Everyone);
        assert!(job_of_a.for_caller(&a_reader) && !job_of_b.for_caller(&a_reader));
        assert!(!tick.for_caller(&a_reader) && resync.for_caller(&a_reader));
        for m in [&job_of_a, &job_of_b, &tick, &resync] {
            assert!(m.for_caller(&admin));
        }
        // A tenant-bound admin sees ticks (every tenant's counts, as the submitter's stats)
        // but only its tenant's job events.
        let a_admin = reader(Some("a"), Role::Admin);
        assert!(tick.for_caller(&a_admin) && !job_of_b.for_caller(&a_admin));
    }
}
