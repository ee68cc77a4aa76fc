//! Resource limits of a `command` job: rlimits from its `requires` and the worker's settings,
//! and, when the worker may create one, a cgroup v2 per job that finds (and kills) every
//! descendant, including those that left the job's process group with `setsid`.
//!
//! Both are put in place between fork and exec (`pre_exec`), so nothing of the job ever runs
//! outside them. Without a usable cgroup v2 (not mounted, read-only in a container), jobs get
//! the rlimits only, and a process that calls `setsid` can outlive its job.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::resource::{Resource, setrlimit};
use nix::unistd::{getpid, getppid};
use tokio::process::Command;

/// Added to `requires.mem_mb` for the memory limits: the program's own code, its libraries
/// and the allocator's slack are not what the job asked for.
pub(crate) const MEM_HEADROOM_MB: u64 = 64;

/// Whether jobs get a cgroup each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum CgroupMode {
    /// When cgroup v2 is mounted and the worker's cgroup is writable; otherwise rlimits only
    /// (said once at start).
    #[default]
    Auto,
    /// Never.
    Off,
}

/// Where the worker makes its jobs' cgroups, found at start.
#[derive(Debug)]
pub(crate) struct CgroupRoot {
    /// The worker's own cgroup: jobs' cgroups are its children.
    dir: PathBuf,
    /// Whether children get the memory controller (`memory.max`).
    memory: bool,
    /// Whether children get the pids controller (`pids.max`).
    pids: bool,
}

impl CgroupRoot {
    /// Finds the worker's cgroup v2 and checks that a child can be made there; `Err` says
    /// why jobs will have none.
    pub(crate) fn detect() -> Result<Self, String> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("reading /proc/self/mountinfo: {e}"))?;
        // Fields: id parent major:minor root mount-point options... - fstype source options
        let mount = mountinfo
            .lines()
            .find_map(|line| {
                let (left, right) = line.split_once(" - ")?;
                (right.split_whitespace().next()? == "cgroup2")
                    .then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
            })
            .ok_or("no cgroup v2 file system is mounted")?;
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("reading /proc/self/cgroup: {e}"))?;
        let path = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .ok_or("this process is in no cgroup v2")?;
        let dir = mount.join(path.trim_start_matches('/'));
        let probe = dir.join(format!("warren-probe-{}", std::process::id()));
        std::fs::create_dir(&probe)
            .map_err(|e| format!("cannot create a cgroup in {}: {e}", dir.display()))?;
        let _ = std::fs::remove_dir(&probe);
        // Children get a controller only if it is enabled here; that fails while this cgroup
        // holds processes (other than at the root), and is then left as it is.
        let available = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
        for controller in ["memory", "pids"] {
            if available.split_whitespace().any(|c| c == controller) {
                let _ =
                    std::fs::write(dir.join("cgroup.subtree_control"), format!("+{controller}"));
            }
        }
        let enabled =
            std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
        let has = |c: &str| enabled.split_whitespace().any(|e| e == c);
        Ok(Self {
            memory: has("memory"),
            pids: has("pids"),
            dir,
        })
    }

    /// Describes what jobs get, for the start-up log.
    pub(crate) fn describe(&self) -> String {
        format!(
            "a cgroup per job in {} (memory.max: {}, pids.max: {})",
            self.dir.display(),
            if self.memory { "yes" } else { "no controller" },
            if self.pids { "yes" } else { "no controller" },
        )
    }

    /// Makes the cgroup of one attempt.
    pub(crate) fn create(
        &self,
        name: &str,
        mem_bytes: Option<u64>,
        pids: Option<u64>,
    ) -> std::io::Result<JobCgroup> {
        let dir = self.dir.join(name);
        std::fs::create_dir(&dir)?;
        let cgroup = JobCgroup {
            procs: Arc::new(
                OpenOptions::new()
                    .write(true)
                    .open(dir.join("cgroup.procs"))?,
            ),
            memory: self.memory,
            dir,
        };
        if self.memory
            && let Some(bytes) = mem_bytes
        {
            std::fs::write(cgroup.dir.join("memory.max"), bytes.to_string())?;
            // Swap would let the job past its limit, only slower.
            let _ = std::fs::write(cgroup.dir.join("memory.swap.max"), "0");
        }
        if self.pids
            && let Some(max) = pids
        {
            std::fs::write(cgroup.dir.join("pids.max"), max.to_string())?;
        }
        Ok(cgroup)
    }
}

/// One attempt's cgroup. [`JobCgroup::kill_and_remove`] it when the job is over.
#[derive(Debug)]
pub(crate) struct JobCgroup {
    dir: PathBuf,
    /// Opened by the worker, written by the child before exec: moving a process needs the
    /// opener's rights, which the job (perhaps another user) may not have.
    procs: Arc<File>,
    memory: bool,
}

impl JobCgroup {
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Kills every process in the cgroup, wherever it moved in the process tree.
    pub(crate) fn kill(&self) {
        if std::fs::write(self.dir.join("cgroup.kill"), "1").is_ok() {
            return;
        }
        // Before Linux 5.14: one by one (a fork in between is caught by the next round).
        for _ in 0..10 {
            let procs = std::fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default();
            let pids: Vec<i32> = procs.lines().filter_map(|l| l.parse().ok()).collect();
            if pids.is_empty() {
                return;
            }
            for pid in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }

    /// Whether the kernel killed a process of the job for passing `memory.max`.
    pub(crate) fn oom_killed(&self) -> bool {
        if !self.memory {
            return false;
        }
        std::fs::read_to_string(self.dir.join("memory.events"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.strip_prefix("oom_kill "))
            .any(|n| n.trim().parse::<u64>().is_ok_and(|n| n > 0))
    }

    /// Kills what is left and removes the cgroup (once its processes are gone: a killed
    /// process leaves the cgroup only when the kernel has reaped it).
    pub(crate) async fn kill_and_remove(self) {
        self.kill();
        for _ in 0..50 {
            match std::fs::remove_dir(&self.dir) {
                Ok(()) => return,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        tracing::warn!(dir = %self.dir.display(), "could not remove a job's cgroup");
    }
}

/// The limits one attempt runs under.
#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    /// `RLIMIT_DATA`, bytes.
    pub(crate) data_bytes: Option<u64>,
    /// `RLIMIT_NOFILE`.
    pub(crate) nofile: Option<u64>,
    /// `RLIMIT_NPROC` (counts every process of the user, not only the job's).
    pub(crate) nproc: Option<u64>,
}

impl Plan {
    /// Has `cmd` apply the rlimits and join `cgroup` in the child, before exec; the child
    /// then checks that the worker still lives (see [`crate::group_guard`]).
    pub(crate) fn install(&self, cmd: &mut Command, cgroup: Option<&JobCgroup>) {
        let plan = self.clone();
        let procs = cgroup.map(|c| c.procs.clone());
        let worker = getpid();
        let setup = move || -> std::io::Result<()> {
            // Only system calls here: between fork and exec, allocating could deadlock.
            if let Some(procs) = &procs {
                // "0" moves the writer, this child, before it runs anything of the job's.
                (&**procs).write_all(b"0")?;
            }
            // By now the child is in the guard's process group (std joins it before running
            // this) and in its cgroup. A worker that died before that point left a child the
            // guard's kill could miss: it is reparented, sees it here, and never runs the job.
            if getppid() != worker {
                return Err(std::io::Error::from_raw_os_error(Errno::ESRCH as i32));
            }
            let limits = [
                (Resource::RLIMIT_DATA, plan.data_bytes),
                (Resource::RLIMIT_NOFILE, plan.nofile),
                (Resource::RLIMIT_NPROC, plan.nproc),
            ];
            for (resource, limit) in limits {
                if let Some(limit) = limit {
                    setrlimit(resource, limit, limit).map_err(std::io::Error::from)?;
                }
            }
            Ok(())
        };
        // SAFETY: `setup` only makes system calls (write on an open file, getppid, setrlimit) and
        // touches no lock and no allocator, so it is safe to run in the forked child of a
        // multi-threaded process, as `pre_exec` requires.
        #[allow(unsafe_code)]
        unsafe {
            cmd.pre_exec(setup);
        }
    }
}

/// The data limit for a job that asks for `mem_mb` (0: none).
pub(crate) fn data_bytes(mem_mb: u64) -> Option<u64> {
    (mem_mb > 0).then(|| (mem_mb + MEM_HEADROOM_MB).saturating_mul(1024 * 1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_limits_have_headroom_and_zero_means_none() {
        assert_eq!(data_bytes(0), None);
        assert_eq!(data_bytes(100), Some(164 * 1024 * 1024));
    }
}
