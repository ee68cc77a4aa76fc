//! What the scheduler knows of the workers (from heartbeats) and of the jobs it has released
//! but that have not finished yet (its credit ledger).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use warren_protocol::{Heartbeat, JobId, PoolName, WorkerId};

use crate::policy::{PoolView, group};

struct Seen {
    heartbeat: Heartbeat,
    at: Instant,
}

/// Live workers and in-flight jobs.
pub(crate) struct Cluster {
    workers: HashMap<WorkerId, Seen>,
    /// Released jobs per pool, with when they were released.
    in_flight: HashMap<PoolName, HashMap<JobId, Instant>>,
    /// Where each in-flight job went.
    placed: HashMap<JobId, PoolName>,
    slack: i64,
    started: Instant,
}

/// How long after a start the workers' own busy counts limit credit.
const WARM_UP: Duration = Duration::from_secs(10);

impl Cluster {
    pub(crate) fn new(slack: u32) -> Self {
        Self {
            workers: HashMap::new(),
            in_flight: HashMap::new(),
            placed: HashMap::new(),
            slack: i64::from(slack),
            started: Instant::now(),
        }
    }

    /// Records a heartbeat; `true` when it changes what pools can run (a new worker or pool).
    pub(crate) fn heartbeat(&mut self, heartbeat: Heartbeat, offline: bool) -> bool {
        let id = heartbeat.worker_id.clone();
        if offline || heartbeat.draining {
            return self.workers.remove(&id).is_some();
        }
        let changed = match self.workers.get(&id) {
            None => true,
            Some(seen) => {
                seen.heartbeat.allowed_commands != heartbeat.allowed_commands
                    || seen.heartbeat.tasks != heartbeat.tasks
                    || seen.heartbeat.slots != heartbeat.slots
            }
        };
        self.workers.insert(
            id,
            Seen {
                heartbeat,
                at: Instant::now(),
            },
        );
        changed
    }

    /// Forgets workers that missed three heartbeats; `true` if any was forgotten.
    pub(crate) fn expire(&mut self) -> bool {
        let before = self.workers.len();
        self.workers.retain(|_, seen| {
            let interval = Duration::from_millis(seen.heartbeat.interval_ms.max(100));
            seen.at.elapsed() < interval * 3
        });
        self.workers.len() != before
    }

    /// Pools with their credit: each live worker's slots, plus slack, minus the jobs in
    /// flight: what this scheduler released and has not seen finish. Right after a (re)start
    /// the ledger is empty while the workers may still be busy with what the previous
    /// scheduler released, so for a warm-up period the busy count the workers report counts
    /// too, if it is higher. Not later: reported counts lag by up to a heartbeat, and would
    /// throttle releases after every burst.
    pub(crate) fn pools(&self) -> Vec<PoolView> {
        let mut pools: BTreeMap<PoolName, PoolView> =
            group(self.workers.values().map(|s| s.heartbeat.clone()));
        for view in pools.values_mut() {
            let slots: i64 = view.workers.iter().map(|w| i64::from(w.slots)).sum();
            let released = self.in_flight.get(&view.pool).map_or(0, HashMap::len) as i64;
            let busy = if self.started.elapsed() < WARM_UP {
                let reported: i64 = view.workers.iter().map(|w| i64::from(w.busy)).sum();
                released.max(reported)
            } else {
                released
            };
            view.credit = slots + self.slack - busy;
        }
        pools.into_values().collect()
    }

    /// Records a release to `pool`.
    pub(crate) fn released(&mut self, job: JobId, pool: PoolName) {
        self.in_flight
            .entry(pool.clone())
            .or_default()
            .insert(job, Instant::now());
        self.placed.insert(job, pool);
    }

    /// Gives the credit of a finished (or returned) job back; `true` if it was in flight.
    pub(crate) fn settled(&mut self, job: JobId) -> bool {
        let Some(pool) = self.placed.remove(&job) else {
            return false;
        };
        if let Some(jobs) = self.in_flight.get_mut(&pool) {
            jobs.remove(&job);
        }
        true
    }

    /// In-flight jobs released longer than `age` ago: candidates for a reconcile against
    /// Redis, in case their completion event was lost.
    pub(crate) fn overdue(&self, age: Duration) -> Vec<JobId> {
        self.in_flight
            .values()
            .flat_map(|jobs| jobs.iter())
            .filter(|(_, at)| at.elapsed() > age)
            .map(|(id, _)| *id)
            .collect()
    }

    pub(crate) fn in_flight_count(&self) -> usize {
        self.placed.len()
    }

    pub(crate) fn worker_count(&self) -> usize {
        self.workers.len()
    }
}

#[cfg(test)]
mod tests {
    use warren_protocol::WorkerResources;

    use super::*;

    fn hb(id: &str, pool: &str, slots: u32) -> Heartbeat {
        Heartbeat {
            worker_id: WorkerId::from_raw(id),
            pool: PoolName::parse_list(pool).unwrap(),
            hostname: "h".into(),
            slots,
            busy: 0,
            running: vec![],
            resources: WorkerResources::default(),
            allowed_commands: vec![],
            tasks: vec![],
            load1: 0.0,
            interval_ms: 1000,
            started_at_ms: 0,
            sent_at_ms: 0,
            draining: false,
        }
    }

    #[test]
    fn credit_is_slots_plus_slack_minus_in_flight() {
        let mut cluster = Cluster::new(2);
        assert!(cluster.heartbeat(hb("a", "cpu", 4), false));
        assert!(!cluster.heartbeat(hb("a", "cpu", 4), false));
        assert!(cluster.heartbeat(hb("b", "cpu", 2), false));
        assert_eq!(cluster.pools()[0].credit, 8);
        let job = JobId::new();
        cluster.released(job, PoolName::parse_list("cpu").unwrap());
        assert_eq!(cluster.pools()[0].credit, 7);
        assert!(cluster.settled(job));
        assert!(!cluster.settled(job));
        assert_eq!(cluster.pools()[0].credit, 8);
    }

    #[test]
    fn busy_workers_limit_credit_even_with_an_empty_ledger() {
        let mut cluster = Cluster::new(1);
        let mut busy = hb("a", "cpu", 4);
        busy.busy = 3;
        cluster.heartbeat(busy, false);
        assert_eq!(cluster.pools()[0].credit, 2);
    }

    #[test]
    fn offline_and_draining_workers_leave_their_pool() {
        let mut cluster = Cluster::new(0);
        cluster.heartbeat(hb("a", "cpu", 4), false);
        let mut draining = hb("a", "cpu", 4);
        draining.draining = true;
        assert!(cluster.heartbeat(draining, false));
        assert!(cluster.pools().is_empty());
    }
}
