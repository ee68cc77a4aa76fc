//! What a task is to the worker: a handler that gets a context and returns a result or a
//! classified error.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use warren_protocol::JobId;
use warren_store::{LogStream, Store};

/// How a job attempt went wrong. The worker turns it into a retry, a failure or a timeout;
/// no string matching decides.
#[derive(Debug, Clone, PartialEq)]
pub enum JobError {
    /// Worth another attempt (if the job has attempts left), optionally after `after`.
    Retryable {
        /// What went wrong.
        message: String,
        /// Wait this long before the next attempt instead of the default backoff.
        after: Option<Duration>,
        /// Partial result to keep (a command's exit code and output).
        result: Option<Value>,
    },
    /// Will fail again: no retry.
    Permanent {
        /// What went wrong.
        message: String,
        /// Partial result to keep.
        result: Option<Value>,
    },
    /// Ran past its timeout and was stopped.
    TimedOut {
        /// Partial result to keep.
        result: Option<Value>,
    },
    /// Cancelled by a client while running.
    Cancelled,
}

impl JobError {
    /// A failure worth retrying.
    pub fn retryable(message: impl fmt::Display) -> Self {
        Self::Retryable {
            message: message.to_string(),
            after: None,
            result: None,
        }
    }

    /// A failure that will not go away by retrying.
    pub fn permanent(message: impl fmt::Display) -> Self {
        Self::Permanent {
            message: message.to_string(),
            result: None,
        }
    }

    /// Returns the message stored as the job's `error`.
    pub fn message(&self) -> String {
        match self {
            Self::Retryable { message, .. } | Self::Permanent { message, .. } => message.clone(),
            Self::TimedOut { .. } => "timed out".to_owned(),
            Self::Cancelled => "cancelled".to_owned(),
        }
    }
}

/// The result of one attempt.
pub type TaskResult = Result<Value, JobError>;

/// Everything a handler gets about the job it runs.
#[derive(Clone)]
pub struct TaskContext {
    /// The job.
    pub job_id: JobId,
    /// This attempt, from 1.
    pub attempt: u32,
    /// The job's arguments.
    pub args: Value,
    /// The job's labels.
    pub labels: BTreeMap<String, String>,
    /// Cancelled when the job is cancelled, times out, or the worker must stop: long
    /// handlers should watch it.
    pub cancel: CancellationToken,
    pub(crate) store: Store,
}

impl fmt::Debug for TaskContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskContext")
            .field("job_id", &self.job_id)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl TaskContext {
    /// Appends lines to the job's log, where `warren logs` and the API show them.
    pub async fn log(&self, lines: &[String]) {
        if let Err(error) = self
            .store
            .append_log(self.job_id, LogStream::Worker, lines)
            .await
        {
            tracing::warn!(job_id = %self.job_id, %error, "could not append to job log");
        }
    }
}

/// A boxed future returned by a handler.
pub type TaskFuture = Pin<Box<dyn Future<Output = TaskResult> + Send + 'static>>;

/// A registered task handler.
pub(crate) type Handler = Arc<dyn Fn(TaskContext) -> TaskFuture + Send + Sync>;

/// Boxes a closure returning a future into a [`Handler`].
pub(crate) fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = TaskResult> + Send + 'static,
{
    Arc::new(move |ctx| Box::pin(f(ctx)))
}
