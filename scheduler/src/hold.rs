//! Holding back jobs whose submission is still in flight.
//!
//! The submitter writes a job marked "submitting", publishes it, and unmarks it once the
//! broker confirmed the whole submission; only then does the client get its 202. Intake can
//! deliver the message before that, and a batch can still be refused after some of its
//! messages were confirmed (a later publish fails, Redis fails). So admission puts a marked
//! job in the pending index (its message is acked: the index is its copy now) but not in the
//! order: it waits here until its mark goes, and is ordered then; a submission refused after
//! all is withdrawn by the submitter (or, if it died, by the reaper), and its jobs are
//! dropped here when their records vanish. No refused job starts.
//!
//! The submitter says on a Redis channel when it unmarks jobs; a look every
//! [`LOOK_EVERY`] covers a message lost on the way (pub/sub is at most once).

use std::collections::HashMap;
use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::debug;
use warren_protocol::{JobId, JobState};
use warren_store::Store;

use crate::intake::{self, Admitted};
use crate::session::Report;

/// How often held jobs are looked at without news from the submitter.
const LOOK_EVERY: Duration = Duration::from_millis(100);
/// Jobs looked at per Redis round trip.
const PAGE: usize = 1000;

/// Holds jobs until their submission is confirmed, then reports them admitted.
pub(crate) async fn run(
    mut incoming: mpsc::UnboundedReceiver<Vec<Admitted>>,
    store: Store,
    reports: mpsc::UnboundedSender<Report>,
    stop: CancellationToken,
) {
    let mut held: HashMap<JobId, Admitted> = HashMap::new();
    let mut news = subscribe(&store).await;
    let mut look = tokio::time::interval(LOOK_EVERY);
    look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            jobs = incoming.recv() => match jobs {
                Some(jobs) => hold(&mut held, jobs),
                None => return,
            },
            item = next_news(&mut news) => {
                if item.is_none() {
                    // The subscription's connection ended; the ticks look until it is back.
                    news = None;
                }
            }
            _ = look.tick() => {
                if news.is_none() {
                    news = subscribe(&store).await;
                }
            }
        }
        // Whatever else arrived meanwhile is covered by this one look.
        while let Ok(jobs) = incoming.try_recv() {
            hold(&mut held, jobs);
        }
        if let Some(stream) = news.as_mut() {
            while let Some(Some(())) = stream.next().now_or_never() {}
        }
        if held.is_empty() {
            continue;
        }
        let released = look_at(&store, &mut held).await;
        metrics::gauge!("warren_scheduler_held_jobs").set(held.len() as f64);
        if !released.is_empty() && reports.send(Report::Admitted(released)).is_err() {
            return;
        }
    }
}

fn hold(held: &mut HashMap<JobId, Admitted>, jobs: Vec<Admitted>) {
    for job in jobs {
        held.insert(job.job.id, job);
    }
}

async fn subscribe(store: &Store) -> Option<BoxStream<'static, ()>> {
    match store.subscribe_submitted().await {
        Ok(stream) => Some(stream.boxed()),
        Err(error) => {
            debug!(%error, "cannot hear confirmed submissions now; looking every 100 ms");
            None
        }
    }
}

async fn next_news(news: &mut Option<BoxStream<'static, ()>>) -> Option<()> {
    match news {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

/// Looks at every held job: returns those whose mark went (to be ordered), drops those
/// whose submission was withdrawn or that ended meanwhile (cancelled), and keeps the rest.
async fn look_at(store: &Store, held: &mut HashMap<JobId, Admitted>) -> Vec<Admitted> {
    let ids: Vec<JobId> = held.keys().copied().collect();
    let mut released = Vec::new();
    for page in ids.chunks(PAGE) {
        let states = match store.admission_states(page).await {
            Ok(states) => states,
            Err(error) => {
                debug!(%error, "cannot look at held jobs now");
                break;
            }
        };
        for (id, (state, submitting)) in page.iter().zip(states) {
            match state {
                Some(JobState::Queued) if submitting => {}
                Some(JobState::Queued) => released.extend(held.remove(id)),
                // Withdrawn (refused, or reaped), or finished while held: out of the index
                // too (the withdrawal took it out already; a finished one may be there).
                None | Some(_) => {
                    if let Some(job) = held.remove(id) {
                        forget(store, &job).await;
                    }
                }
            }
        }
    }
    released
}

async fn forget(store: &Store, job: &Admitted) {
    let (class_id, _) = intake::class_id(&job.class);
    if let Err(error) = store
        .pending_remove(job.job.id, &class_id, &intake::member(&job.job))
        .await
    {
        debug!(job_id = %job.job.id, %error, "cannot drop a held job from the index");
    }
}
