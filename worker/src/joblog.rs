//! Ships a command's output lines to the job's log in batches and keeps the tail of each
//! stream for the result.
//!
//! Once the store reports the log truncated (it reached its byte cap), lines are no longer
//! sent to Redis, but they are still received, so the readers keep draining the pipes and the
//! tails stay the true end of the output.

use std::time::Duration;

use tokio::sync::mpsc;
use warren_protocol::JobId;
use warren_store::{LogStream, Store};

/// Most bytes of stdout/stderr kept in the result (the head of the output is in the log).
const TAIL_BYTES: usize = 16 * 1024;
/// Log lines are written in batches of at most this many lines...
const LOG_BATCH: usize = 200;
/// ...or this many bytes...
const LOG_BATCH_BYTES: usize = 256 * 1024;
/// ...or this often.
const LOG_FLUSH: Duration = Duration::from_millis(100);

/// What the output came to.
#[derive(Debug, Default)]
pub(crate) struct Shipped {
    pub(crate) stdout_tail: String,
    pub(crate) stderr_tail: String,
    /// Lines were dropped from the log because it reached its byte cap.
    pub(crate) truncated: bool,
}

/// Writes lines to the job's log until every sender is gone.
pub(crate) async fn ship(
    job_id: JobId,
    store: Store,
    mut rx: mpsc::Receiver<(LogStream, String)>,
) -> Shipped {
    let mut tails = (Tail::default(), Tail::default());
    let mut batch = Batch::default();
    let mut truncated = false;
    let mut tick = tokio::time::interval(LOG_FLUSH);
    loop {
        tokio::select! {
            line = rx.recv() => match line {
                Some((stream, text)) => {
                    match stream {
                        LogStream::Stderr => tails.1.push(&text),
                        _ => tails.0.push(&text),
                    }
                    if !truncated {
                        batch.push(stream, text);
                        if batch.is_full() {
                            truncated = batch.flush(job_id, &store).await;
                        }
                    }
                }
                None => break,
            },
            _ = tick.tick() => {
                if !truncated {
                    truncated = batch.flush(job_id, &store).await;
                }
            }
        }
    }
    if !truncated {
        truncated = batch.flush(job_id, &store).await;
    }
    Shipped {
        stdout_tail: tails.0.text,
        stderr_tail: tails.1.text,
        truncated,
    }
}

#[derive(Default)]
struct Batch {
    lines: Vec<(LogStream, String)>,
    bytes: usize,
}

impl Batch {
    fn push(&mut self, stream: LogStream, line: String) {
        self.bytes += line.len() + 1;
        self.lines.push((stream, line));
    }

    fn is_full(&self) -> bool {
        self.lines.len() >= LOG_BATCH || self.bytes >= LOG_BATCH_BYTES
    }

    /// Writes the batch; returns `true` once the log is truncated.
    async fn flush(&mut self, job_id: JobId, store: &Store) -> bool {
        self.bytes = 0;
        let mut truncated = false;
        // Keep runs of one stream together so each run is one call.
        while !self.lines.is_empty() {
            let stream = self.lines[0].0;
            let run = self.lines.iter().take_while(|(s, _)| *s == stream).count();
            let lines: Vec<String> = self.lines.drain(..run).map(|(_, l)| l).collect();
            match store.append_log(job_id, stream, &lines).await {
                Ok(true) => {
                    truncated = true;
                    self.lines.clear();
                }
                Ok(false) => {}
                Err(error) => tracing::warn!(%job_id, %error, "could not write job log lines"),
            }
        }
        truncated
    }
}

/// The last [`TAIL_BYTES`] of an output.
#[derive(Default)]
struct Tail {
    text: String,
}

impl Tail {
    fn push(&mut self, line: &str) {
        self.text.push_str(line);
        self.text.push('\n');
        if self.text.len() > TAIL_BYTES {
            let mut cut = self.text.len() - TAIL_BYTES;
            while !self.text.is_char_boundary(cut) {
                cut += 1;
            }
            self.text.drain(..cut);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_keep_the_end() {
        let mut tail = Tail::default();
        for i in 0..10_000 {
            tail.push(&format!("line {i}"));
        }
        assert!(tail.text.len() <= TAIL_BYTES);
        assert!(tail.text.ends_with("line 9999\n"));
    }
}
