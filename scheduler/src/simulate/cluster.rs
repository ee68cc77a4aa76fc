//! The simulated workers: `--slots N` (one worker, N slots, a core per slot) or `--worker
//! cpu=8,mem_mb=32000,gpus=1,slots=4,tags=gpu+cuda12,count=2` (repeatable).

use std::str::FromStr;

use warren_protocol::{Heartbeat, PoolName, WorkerId, WorkerResources};

use super::SimError;

/// Memory a worker has when its spec does not say: enough for any job that names none.
const DEFAULT_MEM_MB: u64 = 1 << 20;

/// One kind of simulated worker, `count` times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSpec {
    /// Cores (default: one per slot).
    pub cpu: u32,
    /// Memory in MiB.
    pub mem_mb: u64,
    /// GPUs.
    pub gpus: u32,
    /// Jobs at once.
    pub slots: u32,
    /// Its pool's tags, `+`-separated (default `cpu`).
    pub tags: String,
    /// How many such workers.
    pub count: u32,
}

impl WorkerSpec {
    /// One worker with `slots` slots and a core per slot: the seed documents' "N slots".
    pub fn slots(slots: u32) -> Self {
        Self {
            cpu: slots,
            mem_mb: DEFAULT_MEM_MB,
            gpus: 0,
            slots,
            tags: "cpu".to_owned(),
            count: 1,
        }
    }

    /// The heartbeats of these workers, named `{prefix}-{n}`.
    ///
    /// # Errors
    /// Fails when the tags are malformed.
    pub fn heartbeats(&self, prefix: &str) -> Result<Vec<Heartbeat>, SimError> {
        let pool = PoolName::parse_list(&self.tags).map_err(|e| SimError::WorkerSpec {
            spec: self.tags.clone(),
            message: e.to_string(),
        })?;
        Ok((0..self.count)
            .map(|n| Heartbeat {
                worker_id: WorkerId::from_raw(format!("{prefix}-{n}")),
                pool: pool.clone(),
                hostname: "simulated".into(),
                slots: self.slots,
                busy: 0,
                running: Vec::new(),
                resources: WorkerResources {
                    cpu: self.cpu,
                    mem_mb: self.mem_mb,
                    gpus: self.gpus,
                },
                allowed_commands: Vec::new(),
                tasks: Vec::new(),
                load1: 0.0,
                interval_ms: 1000,
                started_at_ms: 0,
                sent_at_ms: 0,
                draining: false,
            })
            .collect())
    }

    /// What the workers offer, in fair-share units (cores plus 4 per GPU, as
    /// [`crate::policy::class::usage_units`] charges jobs), all `count` of them.
    pub fn capacity_units(&self) -> f64 {
        f64::from(self.count) * (f64::from(self.cpu) + 4.0 * f64::from(self.gpus))
    }
}

impl FromStr for WorkerSpec {
    type Err = SimError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let bad = |message: String| SimError::WorkerSpec {
            spec: raw.to_owned(),
            message,
        };
        let mut cpu = None;
        let mut spec = Self::slots(1);
        for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((name, value)) = pair.split_once('=') else {
                return Err(bad(format!("{pair:?} is not name=value")));
            };
            let number = |value: &str| -> Result<u64, SimError> {
                value
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("{name}: {value:?} is not a whole number")))
            };
            let small = |value: &str| -> Result<u32, SimError> {
                u32::try_from(number(value)?).map_err(|_| bad(format!("{name} is too large")))
            };
            match name.trim() {
                "cpu" => cpu = Some(small(value)?),
                "mem_mb" => spec.mem_mb = number(value)?,
                "gpus" => spec.gpus = small(value)?,
                "slots" => spec.slots = small(value)?,
                "count" => spec.count = small(value)?,
                "tags" => spec.tags = value.trim().to_owned(),
                other => {
                    return Err(bad(format!(
                        "unknown setting {other:?} (expected cpu, mem_mb, gpus, slots, tags, count)"
                    )));
                }
            }
        }
        if spec.slots == 0 {
            return Err(bad("slots must be at least 1".into()));
        }
        // A worker whose cores are not given has one per slot, like `--slots N`.
        spec.cpu = cpu.unwrap_or(spec.slots);
        PoolName::parse_list(&spec.tags).map_err(|e| bad(e.to_string()))?;
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_with_defaults() {
        let spec: WorkerSpec = "cpu=8,mem_mb=32000,gpus=1,slots=4,tags=gpu+cuda12"
            .parse()
            .unwrap();
        assert_eq!(
            (spec.cpu, spec.mem_mb, spec.gpus, spec.slots),
            (8, 32000, 1, 4)
        );
        assert_eq!(spec.capacity_units(), 12.0);
        let hb = spec.heartbeats("w").unwrap();
        assert_eq!(hb[0].pool.to_string(), "cuda12+gpu");
        let plain: WorkerSpec = "slots=3,count=2".parse().unwrap();
        assert_eq!((plain.cpu, plain.count), (3, 2));
        assert_eq!(plain.heartbeats("w").unwrap().len(), 2);
        assert!("slots=0".parse::<WorkerSpec>().is_err());
        assert!("cores=2".parse::<WorkerSpec>().is_err());
        assert!("tags=GPU".parse::<WorkerSpec>().is_err());
    }
}
