//! Runs one attempt of a claimed job and returns its outcome.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use warren_protocol::{JobEnvelope, Task};

use crate::builtins;
use crate::command::{self, RunEnv, RunLimits};
use crate::confine::JobIdentity;
use crate::runtime::Runtime;
use crate::task::{JobError, TaskContext, TaskResult};

/// Runs `task` for `envelope` under its timeout. `cancel` stops it early.
pub(crate) async fn attempt(
    rt: &Runtime,
    envelope: &JobEnvelope,
    task: Task,
    cancel: CancellationToken,
) -> TaskResult {
    let timeout = envelope
        .spec
        .timeout_s
        .map_or(rt.args.default_timeout, Duration::from_secs);
    if let Task::Command(args) = &task {
        // The runner owns its timeout: it must stop the process group, not drop a future.
        let env = RunEnv {
            limits: RunLimits {
                timeout,
                kill_grace: rt.args.kill_grace,
            },
            confinement: &rt.args.confinement,
            store: &rt.store,
            mem_mb: envelope.spec.requires.mem_mb,
        };
        let who = JobIdentity {
            job_id: envelope.job_id,
            attempt: envelope.attempt,
            tenant: envelope.spec.tenant.clone(),
        };
        let outcome = command::run(&who, args, env, cancel).await;
        return command::apply_retry_on(outcome, envelope.spec.retry_on.as_ref());
    }
    let run = run_in_process(rt, envelope, task, cancel.clone());
    match tokio::time::timeout(timeout, run).await {
        Ok(result) => result,
        Err(_) => {
            // Tell a cooperative handler to stop; its future has been dropped already.
            cancel.cancel();
            Err(JobError::TimedOut { result: None })
        }
    }
}

async fn run_in_process(
    rt: &Runtime,
    envelope: &JobEnvelope,
    task: Task,
    cancel: CancellationToken,
) -> TaskResult {
    match task {
        Task::Noop => Ok(serde_json::Value::Null),
        Task::Sleep { ms } => builtins::sleep(ms, cancel).await,
        Task::Echo(args) => builtins::echo(args),
        Task::Fail { message } => Err(JobError::retryable(message)),
        Task::Sha256 { bytes } => builtins::sha256(bytes, cancel).await,
        Task::Custom { name, args } => {
            let Some(handler) = rt.tasks.get(&name) else {
                return Err(JobError::permanent(format!(
                    "task {name:?} is not registered on this worker"
                )));
            };
            let ctx = TaskContext {
                job_id: envelope.job_id,
                attempt: envelope.attempt,
                args,
                labels: envelope.spec.labels.clone(),
                cancel: cancel.clone(),
                store: rt.store.clone(),
            };
            let work = handler(ctx);
            tokio::select! {
                result = work => result,
                () = cancel.cancelled() => Err(JobError::Cancelled),
            }
        }
        // Handled by the caller before this point.
        Task::Command(_) => Err(JobError::permanent("command jobs run in a process")),
    }
}

/// Whether `task` changes nothing outside this process until its outcome is recorded (which
/// needs the claim): such a task may start before its claim is confirmed.
pub(crate) fn side_effect_free(task: &Task) -> bool {
    matches!(
        task,
        Task::Noop | Task::Sleep { .. } | Task::Echo(_) | Task::Fail { .. } | Task::Sha256 { .. }
    )
}

/// Tells whether this worker may run `task` (allow-list, registered tasks).
pub(crate) fn can_run(rt: &Runtime, task: &Task) -> Result<(), String> {
    match task {
        // The program as resolved on this worker, not only its name (see `confine`).
        Task::Command(args) => match rt.args.confinement.admit(args.program()) {
            Ok(_) => Ok(()),
            // The scheduler routes by the names in heartbeats: a job it would send here again
            // is not bounced for ever but run, where `command::run` fails it with the reason.
            Err(_) if warren_protocol::admits_program(&rt.args.allow_commands, args.program()) => {
                Ok(())
            }
            Err(reason) => Err(reason),
        },
        Task::Custom { name, .. } if !rt.tasks.contains_key(name) => {
            Err(format!("task {name:?} is not registered on this worker"))
        }
        _ => Ok(()),
    }
}
