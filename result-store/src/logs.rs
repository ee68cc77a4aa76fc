use std::collections::HashMap;

use serde::Serialize;
use warren_protocol::JobId;

use crate::scripts::APPEND_LOG;
use crate::{Store, StoreError};

/// Which output a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
    /// A note from the worker itself (started, killed on timeout, …).
    Worker,
}

impl LogStream {
    fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
            Self::Worker => "worker",
        }
    }

    fn parse(raw: &str) -> Self {
        match raw {
            "stdout" => Self::Stdout,
            "stderr" => Self::Stderr,
            _ => Self::Worker,
        }
    }
}

/// One stored log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct LogLine {
    /// Stream entry id; pass it back as `after` to read on.
    pub id: String,
    /// Where it came from.
    pub stream: LogStream,
    /// The text, without its newline.
    pub line: String,
}

impl Store {
    /// Appends lines to a job's log. The log is capped in lines (the oldest go first) and in
    /// bytes ([`StoreOptions::log_max_bytes`](crate::StoreOptions), newlines counted): once a
    /// line would pass the byte cap, it and every later line are dropped, one note in the log
    /// says so, and the job record gets `log_truncated` and `log_cap_bytes`. The log of a
    /// finished job expires with the job, even when its first line comes after the end.
    ///
    /// Returns `true` when the log is truncated (lines were dropped, now or before), so a
    /// writer can stop sending.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn append_log(
        &self,
        id: JobId,
        stream: LogStream,
        lines: &[String],
    ) -> Result<bool, StoreError> {
        if lines.is_empty() {
            return Ok(false);
        }
        let mut conn = self.conn();
        let mut invocation = APPEND_LOG.prepare_invoke();
        invocation
            .key(self.keys.job_log(id))
            .key(self.keys.job(id))
            .arg(self.options.log_max_lines)
            .arg(self.options.result_ttl.as_secs().max(1))
            .arg(stream.as_str())
            .arg(self.options.log_max_bytes);
        for line in lines {
            invocation.arg(line);
        }
        let truncated: i64 = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(|e| StoreError::redis("appending to a job log", e))?;
        Ok(truncated == 1)
    }

    /// Reads up to `count` log lines after entry `after` (from the start when `None`).
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn read_log(
        &self,
        id: JobId,
        after: Option<&str>,
        count: usize,
    ) -> Result<Vec<LogLine>, StoreError> {
        let start = after.map_or_else(|| "-".to_owned(), |a| format!("({a}"));
        let mut conn = self.conn();
        let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
            .arg(self.keys.job_log(id))
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut conn)
            .await
            .map_err(|e| StoreError::redis("reading a job log", e))?;
        Ok(entries
            .into_iter()
            .map(|(entry_id, mut fields)| LogLine {
                id: entry_id,
                stream: LogStream::parse(fields.get("s").map_or("", String::as_str)),
                line: fields.remove("l").unwrap_or_default(),
            })
            .collect())
    }
}
