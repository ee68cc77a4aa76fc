//! What a `command` job may see and run: the program, resolved to an absolute path and checked
//! against the allow-list; a clean environment; a working directory of its own.
//!
//! The allow-list is resolved once, when the worker starts ([`Confinement::resolve`]): a bare
//! name becomes the absolute path it has on the exec path at that moment, so a file put
//! earlier on the path later, or a job naming `/tmp/x/echo`, does not pass an `echo` entry.

use std::ffi::OsString;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::unistd::{Gid, Uid, User};
use tokio::process::Command;
use warren_protocol::{JobId, is_reserved_env};

use crate::args::JobLimitArgs;
use crate::limits::{self, CgroupMode, CgroupRoot, JobCgroup, Plan};

/// Locale of commands when the worker does not pass one through.
const DEFAULT_LANG: &str = "C.UTF-8";

/// The worker's confinement settings, resolved at start.
#[derive(Clone, Default)]
pub struct Confinement {
    /// `*` on the allow-list.
    any_program: bool,
    /// The allow-list as absolute paths.
    programs: Vec<PathBuf>,
    /// Directories of the exec path, in order.
    exec_dirs: Vec<PathBuf>,
    /// The exec path as given: the commands' `PATH`.
    exec_path: String,
    /// Passed-through variables with the values the worker had at start.
    pass_env: Vec<(String, OsString)>,
    /// Directories a job's `cwd` may be in, canonical.
    allow_cwd: Vec<PathBuf>,
    /// Where each job's own directory is made.
    job_dir_root: PathBuf,
    /// Where jobs' cgroups are made, if they get one.
    cgroups: Option<Arc<CgroupRoot>>,
    /// `RLIMIT_NOFILE` and `RLIMIT_NPROC` of commands.
    nofile: Option<u64>,
    nproc: Option<u64>,
    /// The user commands run as, if not the worker's.
    run_as: Option<RunAs>,
}

/// The user `--run-as` names.
#[derive(Debug, Clone)]
struct RunAs {
    name: String,
    uid: Uid,
    gid: Gid,
}

/// Names the passed-through variables but never shows their values: they may be secrets.
impl std::fmt::Debug for Confinement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pass_env: Vec<&str> = self.pass_env.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Confinement")
            .field("any_program", &self.any_program)
            .field("programs", &self.programs)
            .field("exec_path", &self.exec_path)
            .field("pass_env", &pass_env)
            .field("allow_cwd", &self.allow_cwd)
            .field("job_dir_root", &self.job_dir_root)
            .field("cgroups", &self.cgroups)
            .field("nofile", &self.nofile)
            .field("nproc", &self.nproc)
            .field("run_as", &self.run_as)
            .finish_non_exhaustive()
    }
}

/// Who a command runs for: it finds these in `WARREN_JOB_ID`, `WARREN_ATTEMPT`,
/// `WARREN_TENANT`.
#[derive(Debug, Clone)]
pub(crate) struct JobIdentity {
    pub(crate) job_id: JobId,
    pub(crate) attempt: u32,
    pub(crate) tenant: String,
}

/// Settings [`Confinement::resolve`] needs (from `WorkerArgs`).
#[derive(Debug)]
pub(crate) struct ConfineSettings<'a> {
    pub(crate) allow_commands: &'a [String],
    pub(crate) exec_path: &'a str,
    pub(crate) pass_env: &'a [String],
    pub(crate) allow_cwd: &'a [PathBuf],
    pub(crate) job_dir_root: &'a Path,
    pub(crate) limits: &'a JobLimitArgs,
}

impl Confinement {
    /// Resolves the allow-list on the exec path, reads the passed-through variables and
    /// canonicalises the allowed directories.
    ///
    /// It reads the worker's own environment, which library code otherwise never does: the
    /// operator named these variables to pass them on (`--pass-env`).
    pub(crate) fn resolve(s: &ConfineSettings<'_>) -> anyhow::Result<Self> {
        let exec_dirs: Vec<PathBuf> = s
            .exec_path
            .split(':')
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .collect();
        anyhow::ensure!(
            exec_dirs.iter().all(|d| d.is_absolute()),
            "--exec-path must list absolute directories, got {:?}",
            s.exec_path
        );
        let mut me = Self {
            exec_dirs,
            exec_path: s.exec_path.to_owned(),
            job_dir_root: s.job_dir_root.to_owned(),
            ..Self::default()
        };
        for entry in s.allow_commands {
            if entry == "*" {
                me.any_program = true;
            } else if entry.starts_with('/') {
                me.programs.push(PathBuf::from(entry));
            } else if entry.contains('/') {
                anyhow::bail!("--allow-command {entry:?}: give a bare name or an absolute path");
            } else {
                let Some(path) = me.lookup(entry) else {
                    anyhow::bail!(
                        "--allow-command {entry:?} is not an executable on --exec-path {:?}",
                        s.exec_path
                    );
                };
                me.programs.push(path);
            }
        }
        for name in s.pass_env {
            anyhow::ensure!(
                name != "PATH" && !name.starts_with("WARREN_") && !name.contains('='),
                "--pass-env {name:?}: PATH comes from --exec-path and WARREN_* names are the \
                 worker's own (they hold its credentials)"
            );
            if let Some(value) = std::env::var_os(name) {
                me.pass_env.push((name.clone(), value));
            }
        }
        for dir in s.allow_cwd {
            let canonical = dir
                .canonicalize()
                .map_err(|e| anyhow::anyhow!("--allow-cwd {}: {e}", dir.display()))?;
            me.allow_cwd.push(canonical);
        }
        anyhow::ensure!(
            s.job_dir_root.is_absolute(),
            "--job-dir-root must be an absolute path"
        );
        me.nofile = (s.limits.nofile > 0).then_some(s.limits.nofile);
        me.nproc = (s.limits.nproc > 0).then_some(s.limits.nproc);
        if let Some(user) = &s.limits.run_as {
            let user = resolve_user(user)?;
            tracing::info!(user = %user.name, uid = %user.uid, gid = %user.gid, "commands run as another user");
            me.run_as = Some(user);
        }
        if s.limits.cgroup == CgroupMode::Auto {
            match CgroupRoot::detect() {
                Ok(root) => {
                    tracing::info!("commands get {}", root.describe());
                    me.cgroups = Some(Arc::new(root));
                }
                Err(why) => tracing::warn!(
                    "commands get no cgroup ({why}): memory is limited by RLIMIT_DATA only, and \
                     a process that calls setsid can outlive its job"
                ),
            }
        }
        Ok(me)
    }

    /// The rlimits of a command that asked for `mem_mb`.
    pub(crate) fn plan(&self, mem_mb: u64) -> Plan {
        Plan {
            data_bytes: limits::data_bytes(mem_mb),
            nofile: self.nofile,
            nproc: self.nproc,
        }
    }

    /// Makes the cgroup of one attempt, if jobs get one. Failing to is logged, not fatal: the
    /// job still has its rlimits and its process group.
    pub(crate) fn job_cgroup(&self, who: &JobIdentity, mem_mb: u64) -> Option<JobCgroup> {
        let root = self.cgroups.as_ref()?;
        let name = format!("warren-job-{}-{}-{:x}", who.job_id, who.attempt, nanos());
        let mem_bytes = limits::data_bytes(mem_mb);
        match root.create(&name, mem_bytes, self.nproc) {
            Ok(cgroup) => Some(cgroup),
            Err(error) => {
                tracing::warn!(job_id = %who.job_id, %error, "could not make the job's cgroup");
                None
            }
        }
    }

    /// Has `cmd` run as the `--run-as` user, if one is set. std then also clears the
    /// supplementary groups (it calls `setgroups(0)` when root sets a uid).
    pub(crate) fn apply_user(&self, cmd: &mut Command) {
        if let Some(user) = &self.run_as {
            cmd.uid(user.uid.as_raw()).gid(user.gid.as_raw());
        }
    }

    /// Finds a bare program name on the exec path: the first executable file.
    fn lookup(&self, name: &str) -> Option<PathBuf> {
        self.exec_dirs
            .iter()
            .map(|dir| dir.join(name))
            .find(|path| is_executable(path))
    }

    /// Returns the absolute path that will run for `program`, if the allow-list admits it.
    ///
    /// # Errors
    /// Says why not, for the job's pending reason.
    pub(crate) fn admit(&self, program: &str) -> Result<PathBuf, String> {
        let path = if program.starts_with('/') {
            PathBuf::from(program)
        } else if program.contains('/') {
            return Err(format!(
                "program {program:?} is a relative path: give a bare name or an absolute path"
            ));
        } else {
            match self.lookup(program) {
                Some(path) => path,
                None if self.any_program => PathBuf::from(program),
                None => {
                    return Err(format!(
                        "program {program:?} is not on this worker's exec path"
                    ));
                }
            }
        };
        if self.any_program || self.programs.contains(&path) {
            Ok(path)
        } else {
            Err(format!(
                "program {program:?} ({}) is not on this worker's allow-list",
                path.display()
            ))
        }
    }

    /// Checks a job's `cwd` against the allowed directories (after resolving symlinks).
    ///
    /// # Errors
    /// Says which directories are allowed.
    pub(crate) fn check_cwd(&self, cwd: &str) -> Result<PathBuf, String> {
        let refused = || {
            let allowed: Vec<String> = self
                .allow_cwd
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            if allowed.is_empty() {
                format!(
                    "cwd {cwd:?} is not allowed: this worker gives each job a fresh directory \
                     and allows no other (--allow-cwd)"
                )
            } else {
                format!(
                    "cwd {cwd:?} is not allowed: it must be inside one of {}",
                    allowed.join(", ")
                )
            }
        };
        let canonical = Path::new(cwd).canonicalize().map_err(|_| refused())?;
        if self.allow_cwd.iter().any(|dir| canonical.starts_with(dir)) {
            Ok(canonical)
        } else {
            Err(refused())
        }
    }

    /// Makes a fresh private directory for one attempt of a job.
    pub(crate) fn make_job_dir(&self, who: &JobIdentity) -> std::io::Result<PathBuf> {
        let dir = self.job_dir_root.join(format!(
            "warren-job-{}-{}-{:x}",
            who.job_id,
            who.attempt,
            nanos()
        ));
        // `create` (not `create_all`) fails on anything already there, a symlink included.
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        if let Some(user) = &self.run_as {
            nix::unistd::chown(&dir, Some(user.uid), Some(user.gid))?;
        }
        Ok(dir)
    }

    /// Gives `cmd` its whole environment: nothing of the worker's but the exec path,
    /// the passed-through names and fallbacks for `LANG` and `HOME`, then the job's own
    /// variables, then who it runs for (last, so nothing overrides them).
    pub(crate) fn apply_env(
        &self,
        cmd: &mut Command,
        job_env: &std::collections::BTreeMap<String, String>,
        who: &JobIdentity,
        workdir: &Path,
        fresh_dir: bool,
    ) {
        cmd.env_clear();
        cmd.env("PATH", &self.exec_path);
        cmd.env("LANG", DEFAULT_LANG);
        cmd.env("HOME", workdir);
        if fresh_dir {
            // Temporary files then go where they are removed with the job.
            cmd.env("TMPDIR", workdir);
        }
        for (name, value) in &self.pass_env {
            cmd.env(name, value);
        }
        // Validation refused these already; a message from elsewhere is checked again.
        for (name, value) in job_env.iter().filter(|(k, _)| !is_reserved_env(k)) {
            cmd.env(name, value);
        }
        cmd.env("WARREN_JOB_ID", who.job_id.to_string());
        cmd.env("WARREN_ATTEMPT", who.attempt.to_string());
        cmd.env("WARREN_TENANT", &who.tenant);
    }
}

fn nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}

/// Finds the `--run-as` user, and checks that the worker can become it.
fn resolve_user(user: &str) -> anyhow::Result<RunAs> {
    let found = match user.parse::<u32>() {
        Ok(uid) => User::from_uid(Uid::from_raw(uid)),
        Err(_) => User::from_name(user),
    }
    .map_err(|e| anyhow::anyhow!("--run-as {user:?}: looking the user up: {e}"))?
    .ok_or_else(|| anyhow::anyhow!("--run-as {user:?}: no such user on this machine"))?;
    let me = nix::unistd::geteuid();
    if me != found.uid {
        anyhow::ensure!(
            me.is_root(),
            "--run-as {user:?}: the worker runs as uid {me}, and only root can run commands as \
             another user; start the worker as root, or drop --run-as / WARREN_RUN_AS"
        );
        // Root without these (a container that drops them) would fail every job at spawn.
        anyhow::ensure!(
            can_switch_users(),
            "--run-as {user:?}: the worker runs as root but without the CAP_SETUID and \
             CAP_SETGID capabilities, so it cannot run commands as another user; grant them \
             (e.g. docker run --cap-add SETUID --cap-add SETGID), or drop --run-as / \
             WARREN_RUN_AS"
        );
    }
    Ok(RunAs {
        name: found.name,
        uid: found.uid,
        gid: found.gid,
    })
}

/// Whether this process holds CAP_SETUID and CAP_SETGID (bits 7 and 6 of `CapEff` in
/// `/proc/self/status`). Without `/proc` to tell, root is taken to hold them.
fn can_switch_users() -> bool {
    const SETUID_SETGID: u64 = (1 << 7) | (1 << 6);
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return true;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_none_or(|caps| caps & SETUID_SETGID == SETUID_SETGID)
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn confinement(allow: &[&str], allow_cwd: &[PathBuf]) -> Confinement {
        let allow: Vec<String> = allow.iter().map(|s| (*s).to_owned()).collect();
        Confinement::resolve(&ConfineSettings {
            allow_commands: &allow,
            exec_path: "/usr/bin:/bin",
            pass_env: &[],
            allow_cwd,
            job_dir_root: Path::new("/tmp"),
            limits: &JobLimitArgs::default(),
        })
        .unwrap()
    }

    #[test]
    fn names_are_resolved_once_and_match_only_their_path() {
        let c = confinement(&["echo"], &[]);
        let echo = c.admit("echo").unwrap();
        assert!(echo.is_absolute(), "{echo:?}");
        assert_eq!(c.admit(echo.to_str().unwrap()).unwrap(), echo);
        // A file named like an entry elsewhere is not that entry.
        assert!(c.admit("/tmp/x/echo").unwrap_err().contains("allow-list"));
        assert!(c.admit("./echo").is_err());
        assert!(c.admit("rm").is_err());
        let any = confinement(&["*"], &[]);
        assert!(any.admit("/tmp/x/echo").is_ok());
        assert!(any.admit("rm").is_ok());
    }

    #[test]
    fn debug_output_hides_passed_values() {
        let c = Confinement {
            pass_env: vec![("TOKEN".into(), "s3cret".into())],
            ..Confinement::default()
        };
        let shown = format!("{c:?}");
        assert!(
            shown.contains("TOKEN") && !shown.contains("s3cret"),
            "{shown}"
        );
    }

    #[test]
    fn unknown_names_fail_at_start() {
        let allow = vec!["no-such-program-warren".to_owned()];
        let err = Confinement::resolve(&ConfineSettings {
            allow_commands: &allow,
            exec_path: "/usr/bin:/bin",
            pass_env: &[],
            allow_cwd: &[],
            job_dir_root: Path::new("/tmp"),
            limits: &JobLimitArgs::default(),
        })
        .unwrap_err();
        assert!(err.to_string().contains("no-such-program-warren"), "{err}");
    }

    #[test]
    fn cwd_must_be_inside_an_allowed_directory() {
        let none = confinement(&[], &[]);
        assert!(none.check_cwd("/tmp").unwrap_err().contains("--allow-cwd"));
        let tmp = std::env::temp_dir();
        let c = confinement(&[], std::slice::from_ref(&tmp));
        assert!(c.check_cwd(tmp.to_str().unwrap()).is_ok());
        assert!(c.check_cwd("/etc").is_err());
        // `..` is resolved before the check, not compared as text.
        let escape = format!("{}/../etc", tmp.display());
        assert!(c.check_cwd(&escape).is_err());
    }
}
