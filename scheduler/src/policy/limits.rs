//! Token buckets for start-rate limits.

use std::collections::HashMap;

use super::config::{Limits, Rate};

#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    at_ms: u64,
}

/// Rate-limit state per task and per queue.
#[derive(Debug, Default, Clone)]
pub(crate) struct Buckets {
    tasks: HashMap<String, Bucket>,
    queues: HashMap<String, Bucket>,
}

fn refill(bucket: &mut Bucket, rate: &Rate, now_ms: u64) {
    let elapsed_s = now_ms.saturating_sub(bucket.at_ms) as f64 / 1000.0;
    bucket.tokens = (bucket.tokens + elapsed_s * rate.per_s).min(f64::from(rate.burst));
    bucket.at_ms = now_ms;
}

fn bucket<'b>(
    map: &'b mut HashMap<String, Bucket>,
    name: &str,
    rate: &Rate,
    now_ms: u64,
) -> &'b mut Bucket {
    let bucket = map.entry(name.to_owned()).or_insert(Bucket {
        tokens: f64::from(rate.burst),
        at_ms: now_ms,
    });
    refill(bucket, rate, now_ms);
    bucket
}

impl Buckets {
    /// Returns the name of the limit that has no token for a start now, if any.
    pub(crate) fn blocked(
        &mut self,
        limits: &Limits,
        task: Option<&str>,
        queue: &str,
        now_ms: u64,
    ) -> Option<String> {
        if let Some(task) = task
            && let Some(rate) = limits.task_rate.get(task)
            && bucket(&mut self.tasks, task, rate, now_ms).tokens < 1.0
        {
            return Some(format!("task:{task}"));
        }
        if let Some(rate) = limits.queue_rate.get(queue)
            && bucket(&mut self.queues, queue, rate, now_ms).tokens < 1.0
        {
            return Some(format!("queue:{queue}"));
        }
        None
    }

    /// Takes one token from each bucket that applies.
    pub(crate) fn take(&mut self, limits: &Limits, task: Option<&str>, queue: &str, now_ms: u64) {
        if let Some(task) = task
            && let Some(rate) = limits.task_rate.get(task)
        {
            bucket(&mut self.tasks, task, rate, now_ms).tokens -= 1.0;
        }
        if let Some(rate) = limits.queue_rate.get(queue) {
            bucket(&mut self.queues, queue, rate, now_ms).tokens -= 1.0;
        }
    }

    /// Milliseconds until the next token of a blocked bucket, for a timely retry.
    pub(crate) fn next_token_ms(&self, limits: &Limits) -> Option<u64> {
        let wait = |map: &HashMap<String, Bucket>, rates: &std::collections::BTreeMap<String, Rate>| {
            map.iter()
                .filter(|(_, b)| b.tokens < 1.0)
                .filter_map(|(name, b)| {
                    let rate = rates.get(name)?;
                    Some(((1.0 - b.tokens) / rate.per_s * 1000.0).ceil() as u64)
                })
                .min()
        };
        [wait(&self.tasks, &limits.task_rate), wait(&self.queues, &limits.queue_rate)]
            .into_iter()
            .flatten()
            .min()
    }
}
