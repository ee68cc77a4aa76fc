//! The history behind the charts.
//!
//! Rates come from the terminal-state counters that the transition script increments
//! (`stats:{state}`): the services write them, whatever moved the job. Once a second the
//! dashboard samples them into two Redis series (per second, per minute; see
//! `warren_store::Resolution`), so the charts survive a dashboard restart and several
//! dashboards agree. A sample is the counters' value at a moment, so two dashboards writing
//! the same moment write the same thing. While no dashboard runs nothing is sampled; the first
//! sample after the gap spreads the jobs of the gap over it (rates are per elapsed unit).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use warren_protocol::now_ms;
use warren_store::{CounterSample, Resolution, Store};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::state::AppState;
use warren_kit::auth::Role;

/// How often the counters are sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Starts the sampler: it samples until shutdown.
pub(crate) fn spawn_sampler(state: &AppState) {
    let store = state.store().clone();
    let stop = state.stopping().clone();
    state.tracker().spawn(async move {
        let mut ticks = tokio::time::interval(SAMPLE_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut failing = false;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            match sample(&store).await {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("sampling counters again");
                }
                Ok(()) => {}
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(error = %crate::error::chain(&error), "cannot sample counters");
                }
                Err(_) => {}
            }
        }
    });
}

/// Records the counters now in both series.
async fn sample(store: &Store) -> Result<(), warren_store::StoreError> {
    let counters = store.terminal_counters().await?;
    let now = now_ms();
    for resolution in [Resolution::Second, Resolution::Minute] {
        let sample = CounterSample {
            at: now / resolution.unit_ms(),
            ..counters
        };
        store.record_sample(resolution, &sample).await?;
    }
    Ok(())
}

/// Jobs that finished during one unit of time (a rate per second or per minute).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Point {
    /// Start of the unit, ms since the epoch.
    pub(crate) at_ms: u64,
    pub(crate) succeeded: f64,
    pub(crate) failed: f64,
    pub(crate) timed_out: f64,
    pub(crate) cancelled: f64,
}

/// Turns consecutive samples into per-unit rates. A gap between samples spreads its jobs
/// over the gap; a counter that went down (Redis was emptied) counts as zero.
pub(crate) fn rates(samples: &[CounterSample], unit_ms: u64) -> Vec<Point> {
    samples
        .windows(2)
        .filter_map(|pair| {
            let [a, b] = pair else { return None };
            let units = b.at.checked_sub(a.at).filter(|u| *u > 0)? as f64;
            let per = |x: u64, y: u64| y.saturating_sub(x) as f64 / units;
            Some(Point {
                at_ms: b.at * unit_ms,
                succeeded: per(a.succeeded, b.succeeded),
                failed: per(a.failed, b.failed),
                timed_out: per(a.timed_out, b.timed_out),
                cancelled: per(a.cancelled, b.cancelled),
            })
        })
        .collect()
}

#[derive(Debug, Deserialize)]
pub(crate) struct SeriesQuery {
    resolution: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct SeriesResponse {
    resolution: &'static str,
    unit_ms: u64,
    points: Vec<Point>,
}

/// `GET /api/series?resolution=1s|1m`: jobs finished per second over the last 5 minutes, or
/// per minute over the last 24 hours.
pub(crate) async fn series(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<SeriesQuery>,
) -> Result<Json<SeriesResponse>, ApiError> {
    // Counts over every tenant, like the submitter's `GET /v1/stats`.
    caller.require(Role::Admin)?;
    let (resolution, name, span) = match query.resolution.as_deref().unwrap_or("1s") {
        "1s" => (Resolution::Second, "1s", 300),
        "1m" => (Resolution::Minute, "1m", 24 * 60),
        other => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("resolution must be 1s or 1m, not {other:?}"),
            ));
        }
    };
    let now = now_ms() / resolution.unit_ms();
    // One unit more than shown, so the first point has a predecessor.
    let samples = state
        .store()
        .read_samples(resolution, now.saturating_sub(span + 1))
        .await?;
    Ok(Json(SeriesResponse {
        resolution: name,
        unit_ms: resolution.unit_ms(),
        points: rates(&samples, resolution.unit_ms()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(at: u64, succeeded: u64, failed: u64) -> CounterSample {
        CounterSample {
            at,
            succeeded,
            failed,
            ..CounterSample::default()
        }
    }

    #[test]
    fn rates_are_differences_per_unit() {
        let points = rates(&[at(10, 5, 1), at(11, 8, 1), at(13, 12, 3)], 1000);
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].at_ms, 11_000);
        assert!((points[0].succeeded - 3.0).abs() < f64::EPSILON);
        // A two-second gap spreads its jobs over both seconds.
        assert!((points[1].succeeded - 2.0).abs() < f64::EPSILON);
        assert!((points[1].failed - 1.0).abs() < f64::EPSILON);
    }

    #[test]
    fn a_reset_counter_is_not_a_negative_rate() {
        let points = rates(&[at(1, 100, 0), at(2, 3, 0)], 1000);
        assert!(points[0].succeeded.abs() < f64::EPSILON);
    }

    #[test]
    fn too_few_samples_make_no_points() {
        assert!(rates(&[], 1000).is_empty());
        assert!(rates(&[at(1, 1, 1)], 1000).is_empty());
    }
}
