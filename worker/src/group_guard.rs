//! Kills a job's process group when the worker dies, even by `kill -9`.
//!
//! The usual tool, `prctl(PR_SET_PDEATHSIG)` in the child, only reaches the direct child,
//! not the processes it starts. Instead each job gets a guard: a tiny `/bin/sh` in a process group
//! of its own whose stdin is a pipe from the worker. The guard reads the job's process group
//! id, then waits. If the worker releases it, it exits; if the pipe reaches end of file
//! without a release, the worker is gone (the kernel closes a dead process's pipes), and the
//! guard kills the whole group with SIGKILL.
//!
//! The pipe's write end is close-on-exec (std makes every pipe so), so no job process holds
//! it open by inheritance and keeps the guard waiting.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::unistd::Pid;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin, Command};

/// Reads the group id and the job's own directory (an empty line when it has none), then
/// either a release line (exit) or end of file (kill the group, remove the directory).
/// `kill -KILL -PGID` is the form dash's built-in accepts for a process group.
/// With a cgroup (a third line, empty when none), it kills the cgroup too, which reaches the
/// processes that left the group, and removes it once they are reaped.
const SCRIPT: &str = r#"read pgid || exit 0
read dir || exit 0
read cg || exit 0
if read release; then exit 0; fi
kill -KILL -"$pgid" 2>/dev/null
if [ -n "$cg" ]; then echo 1 > "$cg/cgroup.kill"; fi
if [ -n "$dir" ]; then rm -rf -- "$dir"; fi
if [ -n "$cg" ]; then
  for i in 1 2 3 4 5 6 7 8 9 10; do rmdir "$cg" 2>/dev/null && break; sleep 1; done
fi
exit 0"#;

/// How long a released guard gets to exit before it is killed.
const RELEASE_WAIT: Duration = Duration::from_secs(2);

/// A running guard; [`GroupGuard::arm`] it with the job's group, [`GroupGuard::release`] it
/// when the job is over. Dropping it without release (the job's future was dropped) closes
/// the pipe, and the guard kills the group: the safe default.
#[derive(Debug)]
pub(crate) struct GroupGuard {
    child: Child,
    stdin: Option<ChildStdin>,
    armed: bool,
}

impl GroupGuard {
    /// Starts a guard (before the job, so no job runs unguarded once it is armed).
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
        Ok(Self {
            child,
            stdin,
            armed: false,
        })
    }

    /// Tells the guard which group to kill, and which directory to remove, should the
    /// worker die.
    pub(crate) async fn arm(
        &mut self,
        pgid: Pid,
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
            .write_all(format!("{pgid}\n{dir}\n{cgroup}\n").as_bytes())
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
