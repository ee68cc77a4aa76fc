//! Warnings in a 202: whether some live worker could run an accepted job right now.
//!
//! This is advice, not admission control: workers join and leave, so a job nobody can run
//! today is still accepted (it waits, and the scheduler records why in its pending reason).
//! The check reads the worker registry (heartbeats in Redis) through a cache of a second, so
//! a burst of submissions costs one registry read, not one each.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use warren_protocol::{Heartbeat, JobSpec, Task};
use warren_store::{Store, StoreError};

/// How long the list of live workers is trusted before it is read again.
const WORKERS_TTL: Duration = Duration::from_secs(1);
/// How fresh a read must be to warn from it.
const RECHECK_AGE: Duration = Duration::from_millis(100);

/// Something the client should know about an accepted job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub(crate) struct Warning {
    /// Stable, machine-readable: `no_live_worker`.
    pub(crate) code: &'static str,
    /// What is missing, for a human.
    pub(crate) message: String,
}

/// Says why no live worker could run `spec` (whose task is `task`), or nothing if one can.
///
/// The checks go from coarse to fine (any worker, tags, resources, task), and the message
/// names the first one that rules out every worker, so it points at what to change.
pub(crate) fn warnings(spec: &JobSpec, task: &Task, workers: &[Heartbeat]) -> Vec<Warning> {
    let warn = |message: String| {
        vec![Warning {
            code: "no_live_worker",
            message: format!("{message}; the job waits until such a worker joins"),
        }]
    };
    let live: Vec<&Heartbeat> = workers.iter().filter(|w| !w.draining).collect();
    if live.is_empty() {
        return warn("no worker is running".to_owned());
    }
    let req = &spec.requires;
    let tagged: Vec<&Heartbeat> = live
        .iter()
        .copied()
        .filter(|w| w.pool.covers(&req.tags))
        .collect();
    if tagged.is_empty() {
        let tags: Vec<&str> = req.tags.iter().map(|t| t.as_str()).collect();
        return warn(format!("no live worker offers the tags {}", tags.join(",")));
    }
    let sized: Vec<&Heartbeat> = tagged
        .into_iter()
        .filter(|w| w.resources.covers(req))
        .collect();
    if sized.is_empty() {
        return warn(format!(
            "no live worker with those tags offers cpu {}, mem_mb {}, gpus {}",
            req.cpu, req.mem_mb, req.gpus
        ));
    }
    if sized.iter().any(|w| w.can_run(task)) {
        return Vec::new();
    }
    match task {
        Task::Command(args) => warn(format!(
            "no live worker with those tags admits the program {:?} (their allow-lists, \
             --allow-command, do not name it)",
            args.program()
        )),
        Task::Custom { name, .. } => warn(format!(
            "no live worker with those tags has the task {name:?} registered"
        )),
        _ => warn("no live worker with those tags can run it".to_owned()),
    }
}

/// The live workers, read at most once per [`WORKERS_TTL`].
#[derive(Default)]
pub(crate) struct WorkerCache {
    // A std mutex: held only to copy an `Arc` in or out.
    cached: Mutex<Option<(Instant, Arc<Vec<Heartbeat>>)>>,
}

impl WorkerCache {
    /// Says why no live worker could run this job right now (nothing if one can).
    ///
    /// A warning is only given from a read at most [`RECHECK_AGE`] old, so a worker that
    /// has just joined is not reported missing; at most one such re-read happens per
    /// `RECHECK_AGE`, however many unplaceable jobs arrive (a batch of 1000 costs one).
    ///
    /// # Errors
    /// Returns [`StoreError`] when the registry cannot be read.
    pub(crate) async fn warnings(
        &self,
        store: &Store,
        spec: &JobSpec,
        task: &Task,
    ) -> Result<Vec<Warning>, StoreError> {
        let workers = self.live(store, WORKERS_TTL).await?;
        let found = warnings(spec, task, &workers);
        if found.is_empty() {
            return Ok(found);
        }
        let workers = self.live(store, RECHECK_AGE).await?;
        Ok(warnings(spec, task, &workers))
    }

    /// Returns the live workers, from the cache if it is younger than `max_age`.
    async fn live(
        &self,
        store: &Store,
        max_age: Duration,
    ) -> Result<Arc<Vec<Heartbeat>>, StoreError> {
        {
            let cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((read_at, workers)) = cached.as_ref()
                && read_at.elapsed() < max_age
            {
                return Ok(Arc::clone(workers));
            }
        }
        let workers = Arc::new(store.live_workers().await?);
        let mut cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        *cached = Some((Instant::now(), Arc::clone(&workers)));
        Ok(workers)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use warren_protocol::{PoolName, WorkerId, WorkerResources};

    use super::*;

    fn worker(tags: &str, allowed: &[&str], tasks: &[&str]) -> Heartbeat {
        serde_json::from_value(json!({
            "worker_id": WorkerId::from_raw("w"),
            "pool": PoolName::parse_list(tags).unwrap(),
            "hostname": "h",
            "slots": 2,
            "busy": 0,
            "resources": WorkerResources { cpu: 2, mem_mb: 1024, gpus: 0 },
            "allowed_commands": allowed,
            "tasks": tasks,
            "interval_ms": 1000,
            "started_at_ms": 1,
            "sent_at_ms": 2,
        }))
        .unwrap()
    }

    fn check(spec: serde_json::Value, workers: &[Heartbeat]) -> Option<String> {
        let spec: JobSpec = serde_json::from_value(spec).unwrap();
        let task = spec.validate().unwrap();
        warnings(&spec, &task, workers)
            .into_iter()
            .next()
            .map(|w| w.message)
    }

    #[test]
    fn a_job_some_worker_can_run_has_no_warning() {
        let workers = [worker("cpu", &["echo"], &["render"])];
        assert_eq!(check(json!({"task": "noop"}), &workers), None);
        assert_eq!(
            check(
                json!({"task": "command", "args": {"argv": ["echo", "hi"]}}),
                &workers
            ),
            None
        );
        assert_eq!(check(json!({"task": "render"}), &workers), None);
    }

    #[test]
    fn the_first_missing_thing_is_named() {
        let workers = [worker("cpu", &["echo"], &[])];
        let none = check(json!({"task": "noop"}), &[]).unwrap();
        assert!(none.contains("no worker is running"), "{none}");
        let tags = check(
            json!({"task": "noop", "requires": {"tags": ["gpu"]}}),
            &workers,
        )
        .unwrap();
        assert!(tags.contains("tags gpu"), "{tags}");
        let size = check(json!({"task": "noop", "requires": {"cpu": 8}}), &workers).unwrap();
        assert!(size.contains("cpu 8"), "{size}");
        let program = check(
            json!({"task": "command", "args": {"argv": ["rm", "-rf"]}}),
            &workers,
        )
        .unwrap();
        assert!(program.contains("\"rm\""), "{program}");
        let task = check(json!({"task": "word_count"}), &workers).unwrap();
        assert!(task.contains("\"word_count\" registered"), "{task}");
    }

    #[test]
    fn draining_workers_do_not_count() {
        let mut draining = worker("cpu", &[], &[]);
        draining.draining = true;
        assert!(check(json!({"task": "noop"}), &[draining]).is_some());
    }
}
