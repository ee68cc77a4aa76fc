//! Kills a job's processes when the worker dies, even by `kill -9`.
//!
//! The usual tool, `prctl(PR_SET_PDEATHSIG)` in the child, only reaches the direct child,
//! not the processes it starts. Instead each job gets a guard: a tiny `/bin/sh` in a process group
//! of its own whose stdin is a pipe from the worker. The job joins the guard's process group,
//! so the group is known before the job exists, and the guard is armed (told the group, the
//! job's directory and cgroup) *before* the job is spawned: there is no moment in which a job
//! runs unguarded. If the worker releases the guard, it exits; if the pipe reaches end of file
//! without a release, the worker is gone (the kernel closes a dead process's pipes), and the
//! guard kills the job's cgroup and process group with SIGKILL and removes its directory.
//!
//! The child checks in `pre_exec`, after joining the group and the cgroup, that its parent is
//! still the worker (see [`crate::limits::Plan::install`]): a worker that dies between the fork
//! and the join would otherwise leave a process the guard's kill missed.
//!
//! The pipe's write end is close-on-exec (std makes every pipe so), so no job process holds
//! it open by inheritance and keeps the guard waiting.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::unistd::Pid;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin, Command};

/// Reads the group id, the job's own directory and its cgroup (each line empty when there is
/// none), then either a release line (exit) or end of file (the worker is gone: clean up).
///
/// The guard shares its process group with the job, so it ignores the worker's SIGTERM to the
/// group, and the clean-up runs in a new session (`setsid` forks, since the guard leads its
/// group): killing the group then does not end the clean-up half-way. `kill -KILL -PGID` is
/// the form dash's built-in accepts for a process group. The cgroup also reaches processes
/// that left the group; it is removed once they are reaped.
const SCRIPT: &str = r#"trap '' TERM INT HUP QUIT
read pgid || exit 0
read dir || exit 0
read cg || exit 0
if read release; then exit 0; fi
cleanup='if [ -n "$3" ]; then echo 1 > "$3/cgroup.kill"; fi
kill -KILL -"$1" 2>/dev/null
if [ -n "$2" ]; then rm -rf -- "$2"; fi
if [ -n "$3" ]; then
  for i in 1 2 3 4 5 6 7 8 9 10; do rmdir "$3" 2>/dev/null && break; sleep 1; done
fi'
if [ -x /usr/bin/setsid ]; then exec /usr/bin/setsid /bin/sh -c "$cleanup" guard "$pgid" "$dir" "$cg"; fi
if [ -n "$cg" ]; then echo 1 > "$cg/cgroup.kill"; fi
kill -KILL -"$pgid"
exit 0"#;

/// How long a released guard gets to exit before it is killed.
const RELEASE_WAIT: Duration = Duration::from_secs(2);

/// A running guard: [`GroupGuard::arm`] it, spawn the job in its group
/// ([`GroupGuard::pgid`]), [`GroupGuard::release`] it when the job is over. Dropping it
/// without release (the job's future was dropped) closes the pipe, and the guard kills the
/// group: the safe default.
#[derive(Debug)]
pub(crate) struct GroupGuard {
    child: Child,
    stdin: Option<ChildStdin>,
    /// The guard's own process group, which the job joins.
    pgid: Pid,
    armed: bool,
}

impl GroupGuard {
    /// Starts a guard, in a process group of its own that the job will join.
    pub(crate) fn spawn() -> std::io::Result<Self> {
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(SCRIPT)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Out of the worker's group, so a signal to that group (Ctrl-C) leaves it be.
            .process_group(0)
            .spawn()?;
        let stdin = child.stdin.take();
        let pgid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw)
            .ok_or_else(|| std::io::Error::other("the guard exited at once"))?;
        Ok(Self {
            child,
            stdin,
            pgid,
            armed: false,
        })
    }

    /// The process group the job must join (`Command::process_group`).
    pub(crate) fn pgid(&self) -> Pid {
        self.pgid
    }

    /// Tells the guard which directory and cgroup to remove, should the worker die; the group
    /// it kills is its own. Called before the job is spawned.
    pub(crate) async fn arm(
        &mut self,
        dir: Option<&Path>,
        cgroup: Option<&Path>,
    ) -> std::io::Result<()> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(std::io::Error::other("guard already released"));
        };
        let dir = dir.map(|d| d.display().to_string()).unwrap_or_default();
        let cgroup = cgroup.map(|d| d.display().to_string()).unwrap_or_default();
        if dir.contains('\n') || cgroup.contains('\n') {
            return Err(std::io::Error::other("job directory name holds a newline"));
        }
        stdin
            .write_all(format!("{}\n{dir}\n{cgroup}\n", self.pgid).as_bytes())
            .await?;
        stdin.flush().await?;
        self.armed = true;
        Ok(())
    }

    /// Lets the guard go without killing anything (the worker has killed the group itself).
    pub(crate) async fn release(mut self) {
        if let Some(mut stdin) = self.stdin.take()
            && self.armed
        {
            let _ = stdin.write_all(b"release\n").await;
            let _ = stdin.flush().await;
        }
        // Unarmed, the guard reads end of file for the group id and exits.
        if tokio::time::timeout(RELEASE_WAIT, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
    }
}
