//! Long-poll support: one Redis pub/sub subscription per process fans job events out to the
//! requests waiting on those jobs.
//!
//! A waiter registers *before* it reads the job, then sleeps until its job reaches a terminal
//! state. Registering first closes the race where the job finishes between the read and the
//! registration. Pub/sub is at-most-once, so whenever the subscription is (re)made every
//! waiter is woken to re-read its job: events missed while unsubscribed cannot strand one.

use std::collections::HashMap;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warren_protocol::JobId;
use warren_store::{JobEvent, Store};

use crate::problem::error_chain;

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = warren_kit::backoff::RECONNECT_BACKOFF_MAX;
/// A subscription that lived this long was healthy: the next failure starts a fresh backoff.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);

type Registry = HashMap<JobId, HashMap<u64, Arc<Notify>>>;

/// Every waiting request, by job. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct Waiters {
    hub: Arc<Hub>,
}

#[derive(Debug, Default)]
struct Hub {
    next_key: AtomicU64,
    // A std mutex: it is held only to insert, remove or wake, never across an await.
    registry: Mutex<Registry>,
}

impl Hub {
    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        // The map stays consistent even if a holder panicked: every operation on it is one
        // insert or remove.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One registered wait. Dropping it unregisters, so a request that times out, fails or whose
/// client goes away leaves nothing behind.
#[derive(Debug)]
pub(crate) struct Waiter {
    hub: Arc<Hub>,
    job: JobId,
    key: u64,
    notify: Arc<Notify>,
}

impl Waiter {
    /// Resolves when the job may have changed; the caller re-reads it. A wake-up that came
    /// before this call is kept, not lost.
    pub(crate) async fn changed(&self) {
        self.notify.notified().await;
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let mut registry = self.hub.registry();
        if let Some(waiters) = registry.get_mut(&self.job) {
            waiters.remove(&self.key);
            if waiters.is_empty() {
                registry.remove(&self.job);
            }
        }
    }
}

impl Waiters {
    /// Registers a wait on `job`.
    pub(crate) fn register(&self, job: JobId) -> Waiter {
        let key = self.hub.next_key.fetch_add(1, Ordering::Relaxed);
        let notify = Arc::new(Notify::new());
        self.hub
            .registry()
            .entry(job)
            .or_default()
            .insert(key, Arc::clone(&notify));
        Waiter {
            hub: Arc::clone(&self.hub),
            job,
            key,
            notify,
        }
    }

    /// Counts registered waits (for tests and leak checks).
    pub(crate) fn len(&self) -> usize {
        self.hub.registry().values().map(HashMap::len).sum()
    }

    /// Wakes the waiters of `job`.
    fn wake(&self, job: JobId) {
        if let Some(waiters) = self.hub.registry().get(&job) {
            // `notify_one` stores a permit when nobody is parked yet, so no wake-up is lost.
            waiters.values().for_each(|n| n.notify_one());
        }
    }

    /// Wakes every waiter, after events may have been missed.
    fn wake_all(&self) {
        for waiters in self.hub.registry().values() {
            waiters.values().for_each(|n| n.notify_one());
        }
    }

    fn on_event(&self, event: &JobEvent) {
        if !event.state.is_terminal() {
            return;
        }
        if let Ok(job) = event.id.parse() {
            self.wake(job);
        }
    }

    /// Spawns the one subscription of this process on `tracker`; it runs until `stop`.
    pub(crate) fn spawn_listener(
        &self,
        store: Store,
        tracker: &TaskTracker,
        stop: CancellationToken,
    ) {
        let waiters = self.clone();
        tracker.spawn(async move { waiters.listen(store, stop).await });
    }

    async fn listen(self, store: Store, stop: CancellationToken) {
        let mut backoff = MIN_BACKOFF;
        loop {
            let subscribed = tokio::select! {
                () = stop.cancelled() => return,
                subscribed = store.subscribe_events() => subscribed,
            };
            match subscribed {
                Ok(events) => {
                    let since = Instant::now();
                    tracing::debug!("subscribed to job events");
                    self.wake_all();
                    let mut events = pin!(events);
                    loop {
                        tokio::select! {
                            () = stop.cancelled() => return,
                            event = events.next() => match event {
                                Some(event) => self.on_event(&event),
                                None => break,
                            },
                        }
                    }
                    tracing::warn!("job event subscription ended, subscribing again");
                    if since.elapsed() >= HEALTHY_AFTER {
                        backoff = MIN_BACKOFF;
                    }
                }
                Err(error) => {
                    tracing::warn!(
                        error = %error_chain(&error),
                        retry_in = ?backoff,
                        "cannot subscribe to job events"
                    );
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

#[cfg(test)]
mod tests {
    use warren_protocol::JobState;

    use super::*;

    fn event(id: JobId, state: JobState) -> JobEvent {
        JobEvent {
            id: id.to_string(),
            state,
            from: JobState::Running,
            at: 0,
            pool: String::new(),
            worker: String::new(),
            attempt: 1,
            tenant: String::new(),
        }
    }

    #[tokio::test]
    async fn terminal_events_wake_only_their_job_and_are_not_lost() {
        let waiters = Waiters::default();
        let (a, b) = (JobId::new(), JobId::new());
        let wait_a = waiters.register(a);
        let wait_b = waiters.register(b);
        waiters.on_event(&event(a, JobState::Running));
        waiters.on_event(&event(a, JobState::Succeeded));
        // The wake-up came before anyone awaited it: it must still be delivered.
        tokio::time::timeout(Duration::from_secs(1), wait_a.changed())
            .await
            .unwrap();
        let woke_b = tokio::time::timeout(Duration::from_millis(20), wait_b.changed()).await;
        assert!(woke_b.is_err(), "b's job did not change");
        waiters.wake_all();
        tokio::time::timeout(Duration::from_secs(1), wait_b.changed())
            .await
            .unwrap();
    }

    #[test]
    fn dropped_waiters_leave_nothing_behind() {
        let waiters = Waiters::default();
        let job = JobId::new();
        let first = waiters.register(job);
        let second = waiters.register(job);
        assert_eq!(waiters.len(), 2);
        drop(first);
        assert_eq!(waiters.len(), 1);
        drop(second);
        assert_eq!(waiters.len(), 0);
        assert!(waiters.hub.registry().is_empty());
    }
}
