use serde::{Deserialize, Serialize};

use crate::ids::{JobId, WorkerId};
use crate::spec::Requirements;
use crate::tags::PoolName;
use crate::task::Task;

/// Resources one worker offers to each job it runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct WorkerResources {
    /// CPU cores.
    pub cpu: u32,
    /// Memory in MiB.
    pub mem_mb: u64,
    /// GPUs.
    pub gpus: u32,
}

impl WorkerResources {
    /// Tells whether these resources cover what `req` asks for.
    pub fn covers(&self, req: &Requirements) -> bool {
        self.cpu >= req.cpu && self.mem_mb >= req.mem_mb && self.gpus >= req.gpus
    }
}

/// What a worker announces every few seconds (routing key `worker.heartbeat`) and when it
/// joins (`worker.online`) or leaves (`worker.offline`).
///
/// It is how the scheduler learns pools: which exist, how many slots they have, what each
/// worker can run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Heartbeat {
    /// The worker.
    pub worker_id: WorkerId,
    /// The pool it consumes.
    #[cfg_attr(feature = "utoipa", schema(value_type = String))]
    pub pool: PoolName,
    /// Host it runs on.
    pub hostname: String,
    /// Jobs it runs at once (its prefetch).
    pub slots: u32,
    /// Jobs it runs now.
    pub busy: u32,
    /// The ids of those jobs.
    #[serde(default)]
    pub running: Vec<JobId>,
    /// Resources it offers each job.
    pub resources: WorkerResources,
    /// Programs `command` jobs may run here; `*` admits any.
    #[serde(default)]
    pub allowed_commands: Vec<String>,
    /// Tasks registered through the worker library, beyond the built-ins.
    #[serde(default)]
    pub tasks: Vec<String>,
    /// One-minute load average of its host.
    #[serde(default)]
    pub load1: f64,
    /// How often it sends heartbeats, so readers know when one is overdue.
    pub interval_ms: u64,
    /// When it started (ms since the epoch).
    pub started_at_ms: u64,
    /// When this heartbeat was sent (ms since the epoch).
    pub sent_at_ms: u64,
    /// Set when it is shutting down and takes no new work.
    #[serde(default)]
    pub draining: bool,
}

impl Heartbeat {
    /// Tells whether this worker may run `program` as a `command` job.
    ///
    /// An entry matches only the very same string: a name (`python3`) admits that name,
    /// an absolute path (`/usr/bin/python3`) admits that path; `*` admits everything. A name
    /// never admits a path that merely ends in it (`/tmp/x/python3`). The worker is stricter
    /// still: it resolves bare names to absolute paths and compares those.
    pub fn admits_program(&self, program: &str) -> bool {
        admits_program(&self.allowed_commands, program)
    }

    /// Tells whether this worker can run `task` at all (program allow-list, registered tasks).
    pub fn can_run(&self, task: &Task) -> bool {
        match task {
            Task::Command(args) => self.admits_program(args.program()),
            Task::Custom { name, .. } => self.tasks.iter().any(|t| t == name),
            _ => true,
        }
    }
}

/// Tells whether an allow-list admits `program` (see [`Heartbeat::admits_program`]).
pub fn admits_program(allowed: &[String], program: &str) -> bool {
    allowed.iter().any(|entry| entry == "*" || entry == program)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heartbeat(allowed: &[&str], tasks: &[&str]) -> Heartbeat {
        Heartbeat {
            worker_id: WorkerId::from_raw("w1"),
            pool: PoolName::parse_list("cpu").unwrap(),
            hostname: "h".into(),
            slots: 2,
            busy: 0,
            running: vec![],
            resources: WorkerResources {
                cpu: 4,
                mem_mb: 1024,
                gpus: 0,
            },
            allowed_commands: allowed.iter().map(|s| s.to_string()).collect(),
            tasks: tasks.iter().map(|s| s.to_string()).collect(),
            load1: 0.0,
            interval_ms: 2000,
            started_at_ms: 1,
            sent_at_ms: 2,
            draining: false,
        }
    }

    #[test]
    fn allow_lists_match_names_and_paths() {
        let hb = heartbeat(&["echo", "/opt/bin/render"], &[]);
        assert!(hb.admits_program("echo"));
        // A name admits neither a path ending in it nor the path it resolves to here.
        assert!(!hb.admits_program("/bin/echo"));
        assert!(!hb.admits_program("/tmp/x/echo"));
        assert!(hb.admits_program("/opt/bin/render"));
        assert!(!hb.admits_program("/opt/bin/render2"));
        assert!(!hb.admits_program("render"));
        assert!(!hb.admits_program("rm"));
        assert!(heartbeat(&["*"], &[]).admits_program("anything"));
        assert!(!heartbeat(&[], &[]).admits_program("echo"));
    }

    #[test]
    fn workers_run_builtins_and_their_own_tasks() {
        let hb = heartbeat(&[], &["render"]);
        assert!(hb.can_run(&Task::Noop));
        let custom = |name: &str| Task::Custom {
            name: name.into(),
            args: serde_json::Value::Null,
        };
        assert!(hb.can_run(&custom("render")));
        assert!(!hb.can_run(&custom("other")));
    }

    #[test]
    fn resources_cover_requests() {
        let have = WorkerResources {
            cpu: 4,
            mem_mb: 1024,
            gpus: 1,
        };
        let mut req = Requirements {
            cpu: 4,
            mem_mb: 1024,
            gpus: 1,
            ..Default::default()
        };
        assert!(have.covers(&req));
        req.gpus = 2;
        assert!(!have.covers(&req));
    }

    #[test]
    fn heartbeats_round_trip() {
        let hb = heartbeat(&["echo"], &["t"]);
        let json = serde_json::to_string(&hb).unwrap();
        assert_eq!(serde_json::from_str::<Heartbeat>(&json).unwrap(), hb);
    }
}
