use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use warren_kit::{CommonArgs, MetricsArgs, ShutdownArgs};
use warren_protocol::{PoolName, WorkerResources};

use crate::confine::{ConfineSettings, Confinement};
use crate::limits::CgroupMode;

/// Settings of one worker process.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Connections, namespace, result TTL.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Drain grace period.
    #[command(flatten)]
    pub shutdown: ShutdownArgs,
    /// Tags this worker offers (comma-separated); they name its pool.
    #[arg(long, env = "WARREN_TAGS", default_value = "cpu", value_parser = PoolName::parse_list)]
    pub tags: PoolName,
    /// Jobs run at once (the consumer prefetch).
    #[arg(long, env = "WARREN_SLOTS", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub slots: u32,
    /// CPU cores this worker has for jobs (default: the machine's, capped by its cgroup's CPU
    /// quota, rounded up). Jobs' `requires.cpu`
    /// add up against it: the scheduler never places more here.
    #[arg(long, env = "WARREN_CPU", default_value_t = machine_cpus())]
    pub cpu: u32,
    /// Memory (MiB) this worker has for jobs (default: the machine's, capped by its cgroup's
    /// memory limit). Jobs'
    /// `requires.mem_mb` add up against it.
    #[arg(long, env = "WARREN_MEM_MB", default_value_t = machine_mem_mb())]
    pub mem_mb: u64,
    /// GPUs this worker has. Jobs' `requires.gpus` add up against it: a 1-GPU worker runs one
    /// 1-GPU job at a time.
    #[arg(long, env = "WARREN_GPUS", default_value_t = 0)]
    pub gpus: u32,
    /// Programs `command` jobs may run (comma-separated names or absolute paths; `*` = any).
    /// Empty: no `command` jobs at all.
    #[arg(
        long = "allow-command",
        env = "WARREN_ALLOW_COMMANDS",
        value_delimiter = ','
    )]
    pub allow_commands: Vec<String>,
    /// How often to send heartbeats.
    #[arg(long, env = "WARREN_HEARTBEAT_INTERVAL", default_value = "2s", value_parser = humantime_duration)]
    pub heartbeat_interval: Duration,
    /// How long a claim on a job lasts unless renewed; a dead worker's jobs are taken over
    /// after this.
    #[arg(long, env = "WARREN_LEASE_TTL", default_value = "15s", value_parser = humantime_duration)]
    pub lease_ttl: Duration,
    /// Timeout of jobs that do not set `timeout_s`.
    #[arg(long, env = "WARREN_DEFAULT_TIMEOUT", default_value = "1h", value_parser = humantime_duration)]
    pub default_timeout: Duration,
    /// Between SIGTERM and SIGKILL when a job's process group is stopped.
    #[arg(long, env = "WARREN_KILL_GRACE", default_value = "5s", value_parser = humantime_duration)]
    pub kill_grace: Duration,
    /// First retry delay of jobs that give no `retry_backoff`; doubles with each attempt
    /// under the `exponential` strategy.
    #[arg(long, env = "WARREN_RETRY_BASE", default_value = "1s", value_parser = humantime_duration)]
    pub retry_base: Duration,
    /// How the retry delay of jobs without a `retry_backoff` grows: `exponential` or `fixed`.
    #[arg(long, env = "WARREN_RETRY_BACKOFF", default_value = "exponential", value_parser = parse_strategy)]
    pub retry_strategy: warren_protocol::BackoffStrategy,
    /// Longest retry delay of jobs without a `retry_backoff`.
    #[arg(long, env = "WARREN_RETRY_MAX", default_value = "1h", value_parser = humantime_duration)]
    pub retry_max: Duration,
    /// Spread the retry delays of jobs without a `retry_backoff` (each drawn between half of
    /// it and all of it).
    #[arg(long, env = "WARREN_RETRY_JITTER", default_value_t = false, action = clap::ArgAction::Set)]
    pub retry_jitter: bool,
    /// Variables of the worker's own environment that commands get too (comma-separated
    /// names; `PATH` and `WARREN_*` are refused). Commands get no other variable of the
    /// worker's: see `docs/confinement.md`.
    #[arg(long = "pass-env", env = "WARREN_PASS_ENV", value_delimiter = ',')]
    pub pass_env: Vec<String>,
    /// The `PATH` of commands, and where bare program names (on the allow-list and in
    /// jobs) are looked up, once at start for the allow-list.
    #[arg(
        long,
        env = "WARREN_EXEC_PATH",
        default_value = "/usr/local/bin:/usr/bin:/bin"
    )]
    pub exec_path: String,
    /// Directories a job's `cwd` may be in (comma-separated absolute paths; symlinks are
    /// resolved first). None by default: every job runs in a fresh private directory.
    #[arg(long = "allow-cwd", env = "WARREN_ALLOW_CWD", value_delimiter = ',')]
    pub allow_cwd: Vec<PathBuf>,
    /// Where each job's fresh directory is made (and removed when the attempt ends).
    #[arg(long, env = "WARREN_JOB_DIR_ROOT", default_value = "/tmp")]
    pub job_dir_root: PathBuf,
    /// Resource limits of commands and the user they run as.
    #[command(flatten)]
    pub limits: JobLimitArgs,
    /// Not a flag: the allow-list, pass-through variables and directories resolved by
    /// [`WorkerArgs::check`] when the worker starts. Leave it at its default.
    #[arg(skip)]
    pub confinement: Confinement,
    /// Where to serve Prometheus metrics (`WARREN_METRICS_ADDR`; off when unset).
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

/// How `command` jobs are limited, beyond their `requires` (see `docs/confinement.md`).
#[derive(Debug, Clone, clap::Args)]
pub struct JobLimitArgs {
    /// Run commands as this user (a name or a uid), with its primary group and no
    /// supplementary groups. The worker must run as root to switch; it refuses to start
    /// otherwise.
    #[arg(long = "run-as", env = "WARREN_RUN_AS")]
    pub run_as: Option<String>,
    /// Whether each job gets a cgroup v2 (memory.max, every descendant killed at its end):
    /// `auto` when the worker may make one, `off` never.
    #[arg(
        long = "cgroup",
        env = "WARREN_CGROUP",
        value_enum,
        default_value = "auto"
    )]
    pub cgroup: CgroupMode,
    /// Most open files of each command process (`RLIMIT_NOFILE`); 0 leaves the worker's.
    #[arg(long = "job-nofile", env = "WARREN_JOB_NOFILE", default_value_t = 1024)]
    pub nofile: u64,
    /// Most processes of the commands' user (`RLIMIT_NPROC`, counted per user, so mostly
    /// useful with --run-as); 0 leaves the worker's.
    #[arg(long = "job-nproc", env = "WARREN_JOB_NPROC", default_value_t = 0)]
    pub nproc: u64,
}

impl Default for JobLimitArgs {
    fn default() -> Self {
        Self {
            run_as: None,
            cgroup: CgroupMode::Auto,
            nofile: 1024,
            nproc: 0,
        }
    }
}

/// Where this process's cgroup (v2) files are: `/sys/fs/cgroup` plus the path of
/// `/proc/self/cgroup`'s `0::` line (just `/sys/fs/cgroup` inside a container with its own
/// cgroup namespace).
fn own_cgroup_dir() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/')))
}

/// The cores a cgroup v2 `cpu.max` (`"QUOTA PERIOD"` or `"max PERIOD"`) allows, rounded
/// up: a 1.5-core quota runs two 1-core jobs at 75 %, which beats leaving half a core idle.
fn cpus_from_cpu_max(text: &str) -> Option<u32> {
    let mut words = text.split_whitespace();
    let quota: u64 = words.next()?.parse().ok()?;
    let period: u64 = words.next().map_or(Some(100_000), |p| p.parse().ok())?;
    if period == 0 {
        return None;
    }
    u32::try_from(quota.div_ceil(period).max(1)).ok()
}

/// MiB a cgroup v2 `memory.max` (bytes, or `max`) allows.
fn mem_mb_from_memory_max(text: &str) -> Option<u64> {
    text.trim()
        .parse::<u64>()
        .ok()
        .map(|bytes| bytes / (1024 * 1024))
}

/// The limits of this cgroup and of every cgroup above it: the tightest one is what applies.
fn cgroup_limit<T: Ord>(file: &str, parse: impl Fn(&str) -> Option<T>) -> Option<T> {
    let mut dir = own_cgroup_dir()?;
    let mut tightest: Option<T> = None;
    loop {
        if let Some(limit) = std::fs::read_to_string(dir.join(file))
            .ok()
            .and_then(|t| parse(&t))
        {
            tightest = Some(match tightest {
                Some(t) => t.min(limit),
                None => limit,
            });
        }
        if dir == Path::new("/sys/fs/cgroup") || !dir.pop() {
            break;
        }
    }
    tightest
}

/// The cores this worker may use, as the default capacity: the machine's (or the CPUs it is
/// pinned to), capped by a CPU quota (`docker run --cpus`, compose `cpus:`). The standard
/// library already applies cgroup quotas, rounding down; reading `cpu.max` too rounds a
/// fractional quota up.
fn machine_cpus() -> u32 {
    let machine = std::thread::available_parallelism()
        .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX));
    cgroup_limit("cpu.max", cpus_from_cpu_max).map_or(machine, |quota| quota.min(machine))
}

/// The memory (MiB) this worker may use, as the default capacity: the machine's (from
/// /proc/meminfo), capped by a cgroup (v2, else v1) memory limit (`docker run --memory`, compose
/// `mem_limit:`).
fn machine_mem_mb() -> u64 {
    let machine = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb / 1024)
        })
        .unwrap_or(1024);
    let limit = cgroup_limit("memory.max", mem_mb_from_memory_max).or_else(cgroup_v1_mem_mb);
    limit.map_or(machine, |limit| limit.min(machine))
}

/// The memory limit (MiB) under cgroup v1, where Docker mounts the container's own memory
/// cgroup at `/sys/fs/cgroup/memory`; "no limit" there is a huge number, which the machine's
/// memory then caps.
fn cgroup_v1_mem_mb() -> Option<u64> {
    let text = std::fs::read_to_string("/sys/fs/cgroup/memory/memory.limit_in_bytes").ok()?;
    mem_mb_from_memory_max(&text)
}

fn humantime_duration(raw: &str) -> Result<Duration, humantime::DurationError> {
    humantime::parse_duration(raw)
}

impl WorkerArgs {
    /// Returns the worker's capacity for jobs.
    pub fn resources(&self) -> WorkerResources {
        WorkerResources {
            cpu: self.cpu,
            mem_mb: self.mem_mb,
            gpus: self.gpus,
        }
    }

    /// Checks settings that clap cannot, normalises an empty allow-list
    /// (`WARREN_ALLOW_COMMANDS=""` means no programs, not one empty name) and resolves the
    /// confinement: allow-list entries to absolute paths on `--exec-path`, `--pass-env`
    /// values, `--allow-cwd` directories.
    ///
    /// # Errors
    /// Says which setting to fix.
    pub fn check(&mut self) -> anyhow::Result<()> {
        if self.allow_commands.iter().all(|e| e.trim().is_empty()) {
            self.allow_commands.clear();
        }
        anyhow::ensure!(
            self.lease_ttl >= Duration::from_millis(300),
            "--lease-ttl must be at least 300ms"
        );
        anyhow::ensure!(
            !self.heartbeat_interval.is_zero(),
            "--heartbeat-interval must be positive"
        );
        for entry in &self.allow_commands {
            anyhow::ensure!(
                !entry.trim().is_empty(),
                "--allow-command has an empty entry; remove the stray comma"
            );
        }
        // An empty variable (`WARREN_PASS_ENV=""`) means none, as for the allow-list.
        self.pass_env.retain(|name| !name.trim().is_empty());
        self.allow_cwd.retain(|dir| !dir.as_os_str().is_empty());
        self.confinement = Confinement::resolve(&ConfineSettings {
            allow_commands: &self.allow_commands,
            exec_path: &self.exec_path,
            pass_env: &self.pass_env,
            allow_cwd: &self.allow_cwd,
            job_dir_root: &self.job_dir_root,
            limits: &self.limits,
        })?;
        Ok(())
    }
}

fn parse_strategy(raw: &str) -> Result<warren_protocol::BackoffStrategy, String> {
    match raw {
        "exponential" => Ok(warren_protocol::BackoffStrategy::Exponential),
        "fixed" => Ok(warren_protocol::BackoffStrategy::Fixed),
        other => Err(format!("{other:?}: give `exponential` or `fixed`")),
    }
}

#[cfg(test)]
mod cgroup_tests {
    use super::*;

    #[test]
    fn cpu_max_rounds_a_quota_up_and_ignores_max() {
        assert_eq!(cpus_from_cpu_max("200000 100000\n"), Some(2));
        assert_eq!(cpus_from_cpu_max("150000 100000"), Some(2));
        assert_eq!(cpus_from_cpu_max("10000 100000"), Some(1));
        assert_eq!(cpus_from_cpu_max("max 100000\n"), None);
        assert_eq!(cpus_from_cpu_max("100000 0"), None);
    }

    #[test]
    fn memory_max_is_in_bytes_or_max() {
        assert_eq!(mem_mb_from_memory_max("536870912\n"), Some(512));
        assert_eq!(mem_mb_from_memory_max("max\n"), None);
    }

    #[test]
    fn defaults_are_at_least_one_and_within_the_machine() {
        let cpus = machine_cpus();
        assert!(cpus >= 1);
        let machine = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        assert!(cpus as usize <= machine);
        assert!(machine_mem_mb() >= 1);
    }
}
