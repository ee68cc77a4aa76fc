//! Workers as capacity: what each has (from its heartbeat) and what the scheduler has placed
//! on it. A job's `requires` consumes cpu, memory and GPUs from the moment it is dispatched
//! until it finishes, so no worker is sent more than it has.

use std::collections::HashMap;

use warren_protocol::{Heartbeat, JobId, Requirements};

use super::class::JobClass;

/// A job dispatched to a worker and not finished yet.
#[derive(Debug, Clone)]
pub struct Placed {
    /// What it uses.
    pub requires: Requirements,
    /// When it was dispatched (ms).
    pub started_ms: u64,
    /// Its estimated runtime (ms).
    pub est_ms: u64,
}

impl Placed {
    /// When it is expected to end.
    pub fn expected_end_ms(&self) -> u64 {
        self.started_ms.saturating_add(self.est_ms)
    }
}

/// One worker: its last heartbeat and what runs (or waits) there.
#[derive(Debug, Clone)]
pub struct WorkerState {
    /// The last heartbeat (capacity, tags, allow-list, tasks).
    pub heartbeat: Heartbeat,
    /// Jobs placed there.
    pub placed: HashMap<JobId, Placed>,
    /// Silent for a while: sent nothing new, but its placements are kept in case it is only
    /// slow (a busy machine can miss heartbeats) and comes back.
    pub suspended: bool,
    /// Jobs it may be sent beyond its free slots (see [`WorkerState::adapt_slack`]).
    pub slack: u32,
    used_cpu: u64,
    used_mem: u64,
    used_gpus: u64,
}

impl WorkerState {
    /// Starts tracking a worker with nothing placed.
    pub fn new(heartbeat: Heartbeat) -> Self {
        Self {
            heartbeat,
            placed: HashMap::new(),
            suspended: false,
            slack: 0,
            used_cpu: 0,
            used_mem: 0,
            used_gpus: 0,
        }
    }

    /// Tells whether the worker could ever run jobs of `class` (tags, program or task, and
    /// resources within what the machine has).
    pub fn eligible(&self, class: &JobClass) -> bool {
        let have = &self.heartbeat.resources;
        !self.suspended
            && self.heartbeat.pool.covers(&class.requires.tags)
            && class.task.met_by(&self.heartbeat)
            && have.covers(&class.requires)
    }

    /// Tells whether a job of `class` fits now: free resources, and fewer jobs than its
    /// slots plus its slack.
    pub fn fits_now(&self, requires: &Requirements) -> bool {
        let limit = u64::from(self.heartbeat.slots) + u64::from(self.slack);
        (self.placed.len() as u64) < limit && self.resources_fit(requires)
    }

    /// Tells whether the worker has room for one more job of any kind.
    pub fn has_free_slot(&self) -> bool {
        !self.suspended
            && (self.placed.len() as u64) < u64::from(self.heartbeat.slots) + u64::from(self.slack)
    }

    /// Sets how many jobs may wait here beyond the free slots: twice the jobs expected to
    /// end within one dispatch round trip (`rtt_ms`, from the scheduler's decision to the
    /// job running), by the estimates of what runs here, at most `cap`. Short jobs then find
    /// their successor already at the worker; long ones get none (fewer than one in ten
    /// ends within a round trip), since a job waiting behind them would hold up the policy's
    /// order for a whole run, while an empty slot costs them only one round trip.
    pub fn adapt_slack(&mut self, rtt_ms: f64, cap: u32, now_ms: u64) {
        let placed = self.placed.len().max(1) as f64;
        let running_share = (f64::from(self.heartbeat.slots) / placed).min(1.0);
        let ending_per_ms: f64 = self
            .placed
            .values()
            .map(|p| {
                let expected = p.est_ms.max(now_ms.saturating_sub(p.started_ms)).max(1);
                1.0 / expected as f64
            })
            .sum::<f64>()
            * running_share;
        let wanted = 2.0 * ending_per_ms * rtt_ms;
        self.slack = if wanted < 0.1 {
            0
        } else {
            (wanted.ceil() as u32).min(cap)
        };
    }

    /// Free slots (may be negative while slack jobs wait there).
    pub fn free_slots(&self) -> i64 {
        i64::from(self.heartbeat.slots) - self.placed.len() as i64
    }

    /// Free cores.
    pub fn free_cpu(&self) -> i64 {
        i64::from(self.heartbeat.resources.cpu) - self.used_cpu as i64
    }

    /// Free GPUs.
    pub fn free_gpus(&self) -> i64 {
        i64::from(self.heartbeat.resources.gpus) - self.used_gpus as i64
    }

    /// Free memory (MiB).
    pub fn free_mem(&self) -> i64 {
        self.heartbeat.resources.mem_mb as i64 - self.used_mem as i64
    }

    /// Records a job placed here.
    pub fn place(&mut self, job: JobId, placed: Placed) {
        self.used_cpu += u64::from(placed.requires.cpu);
        self.used_mem += placed.requires.mem_mb;
        self.used_gpus += u64::from(placed.requires.gpus);
        if let Some(old) = self.placed.insert(job, placed) {
            self.release(&old);
        }
    }

    /// Forgets a finished job; returns it if it was here.
    pub fn remove(&mut self, job: JobId) -> Option<Placed> {
        let placed = self.placed.remove(&job)?;
        self.release(&placed);
        Some(placed)
    }

    fn release(&mut self, placed: &Placed) {
        self.used_cpu = self.used_cpu.saturating_sub(u64::from(placed.requires.cpu));
        self.used_mem = self.used_mem.saturating_sub(placed.requires.mem_mb);
        self.used_gpus = self
            .used_gpus
            .saturating_sub(u64::from(placed.requires.gpus));
    }

    /// When a job needing `requires` is expected to fit here, by the runtime estimates of
    /// what is placed: jobs are assumed to end in order of their expected end. A job
    /// overrunning its estimate counts as ending `now`.
    pub fn expected_fit_ms(&self, requires: &Requirements, now_ms: u64) -> u64 {
        if self.fits_now(requires) {
            return now_ms;
        }
        let mut ends: Vec<(u64, &Placed)> = self
            .placed
            .values()
            .map(|p| (p.expected_end_ms().max(now_ms), p))
            .collect();
        ends.sort_by_key(|(end, _)| *end);
        let mut probe = Self {
            heartbeat: self.heartbeat.clone(),
            placed: HashMap::new(),
            suspended: false,
            slack: 0,
            used_cpu: self.used_cpu,
            used_mem: self.used_mem,
            used_gpus: self.used_gpus,
        };
        let mut count = self.placed.len();
        for (end, placed) in ends {
            probe.release(placed);
            count -= 1;
            let slots_ok = (count as u64) < u64::from(self.heartbeat.slots);
            if slots_ok && probe.resources_fit(requires) {
                return end;
            }
        }
        now_ms
    }

    fn resources_fit(&self, requires: &Requirements) -> bool {
        let have = &self.heartbeat.resources;
        self.used_cpu + u64::from(requires.cpu) <= u64::from(have.cpu)
            && self.used_mem + requires.mem_mb <= have.mem_mb
            && self.used_gpus + u64::from(requires.gpus) <= u64::from(have.gpus)
    }
}
