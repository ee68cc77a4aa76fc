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

async fn pump_events(store: Store, live: broadcast::Sender<Arc<str>>, stop: CancellationToken) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let subscribed = tokio::select! {
            () = stop.cancelled() => return,
            subscribed = store.subscribe_events() => subscribed,
        };
        match subscribed {
            Ok(events) => {
                backoff = Duration::from_millis(500);
                let _ = live.send(Arc::from(json!({ "type": "resync" }).to_string()));
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
                    let _ = live.send(Arc::from(
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

async fn tick(store: Store, live: broadcast::Sender<Arc<str>>, stop: CancellationToken) {
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
                let _ = live.send(Arc::from(message.to_string()));
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
/// `tick`, `resync`; plus `event: lagged` when this reader fell behind).
pub(crate) async fn live(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = state.live().subscribe();
    let watcher = Watcher::new();
    let stream = BroadcastStream::new(receiver)
        .map(move |item| {
            let _watching = &watcher;
            let event = match item {
                Ok(message) => Event::default().data(&*message),
                Err(BroadcastStreamRecvError::Lagged(skipped)) => {
                    metrics::counter!("warren_dashboard_sse_lagged_total").increment(1);
                    Event::default().event("lagged").data(skipped.to_string())
                }
            };
            Ok(event)
        })
        // Ends at shutdown, so the graceful drain is not held up by open streams.
        .take_until(state.stopping().clone().cancelled_owned());
    Sse::new(stream).keep_alive(KeepAlive::default())
}
