//! Per-tenant rate limit on submissions: a token bucket per tenant, in this process.
//!
//! Each replica of the submitter keeps its own buckets, so N replicas behind a balancer let
//! a tenant through at up to N times the rate. A bucket holds one second's worth of jobs
//! (at least one), so a tenant may burst that much after a quiet spell.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::problem::ApiError;
use crate::state::AppState;

/// Buckets kept before full ones (tenants that have been quiet) are dropped.
const MAX_BUCKETS: usize = 10_000;

/// A rate such as `100/s` or `600/m`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    per_second: f64,
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let (count, unit) = raw
            .split_once('/')
            .ok_or_else(|| format!("{raw:?} is not a rate like 100/s or 600/m"))?;
        let count: f64 = count
            .trim()
            .parse()
            .map_err(|_| format!("{count:?} is not a number"))?;
        let seconds = match unit.trim() {
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            other => return Err(format!("unit {other:?} must be s, m or h")),
        };
        if !(count.is_finite() && count > 0.0) {
            return Err("the rate must be above zero".into());
        }
        Ok(Self {
            per_second: count / seconds,
        })
    }
}

/// One token bucket per tenant.
#[derive(Debug)]
pub(crate) struct TenantLimiter {
    rate: Rate,
    burst: f64,
    // A std mutex: held for a map lookup and some arithmetic, never across an await.
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl TenantLimiter {
    pub(crate) fn new(rate: Rate) -> Self {
        Self {
            rate,
            burst: rate.per_second.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `jobs` tokens from `tenant`'s bucket, or says how long to wait. A batch larger
    /// than the bucket passes when the bucket is full (and empties it), so that no batch
    /// is refused forever.
    pub(crate) fn take(&self, tenant: &str, jobs: usize, now: Instant) -> Result<(), Duration> {
        let cost = (jobs as f64).min(self.burst);
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(tenant) {
            let (rate, burst) = (self.rate.per_second, self.burst);
            buckets.retain(|_, b| b.refilled(now, rate, burst) < burst);
        }
        let bucket = buckets.entry(tenant.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let tokens = bucket.refilled(now, self.rate.per_second, self.burst);
        bucket.at = now;
        if tokens >= cost {
            bucket.tokens = tokens - cost;
            return Ok(());
        }
        bucket.tokens = tokens;
        Err(Duration::from_secs_f64(
            (cost - tokens) / self.rate.per_second,
        ))
    }
}

impl Bucket {
    fn refilled(&self, now: Instant, rate: f64, burst: f64) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * rate).min(burst)
    }
}

/// Charges a batch to its tenants (one job, one token); the first tenant over its limit
/// refuses the whole batch.
pub(crate) fn charge_batch<'a>(
    state: &AppState,
    tenants: impl Iterator<Item = &'a str>,
) -> Result<(), ApiError> {
    let mut per_tenant: HashMap<&str, usize> = HashMap::new();
    for tenant in tenants {
        *per_tenant.entry(tenant).or_default() += 1;
    }
    for (tenant, jobs) in per_tenant {
        state.charge_submissions(tenant, jobs)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        assert_eq!("100/s".parse::<Rate>().unwrap().per_second, 100.0);
        assert_eq!("60/m".parse::<Rate>().unwrap().per_second, 1.0);
        assert!("0/s".parse::<Rate>().is_err());
        assert!("10".parse::<Rate>().is_err());
        assert!("10/d".parse::<Rate>().is_err());
    }

    #[test]
    fn buckets_refill_per_tenant() {
        let limiter = TenantLimiter::new("2/s".parse().unwrap());
        let t0 = Instant::now();
        assert!(limiter.take("a", 1, t0).is_ok());
        assert!(limiter.take("a", 1, t0).is_ok());
        let wait = limiter.take("a", 1, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        assert!(
            limiter.take("b", 1, t0).is_ok(),
            "tenants do not share a bucket"
        );
        assert!(
            limiter
                .take("a", 1, t0 + Duration::from_millis(500))
                .is_ok()
        );
        // A batch larger than the bucket passes once it is full again.
        assert!(limiter.take("a", 50, t0 + Duration::from_secs(2)).is_ok());
        assert!(limiter.take("a", 1, t0 + Duration::from_secs(2)).is_err());
    }
}
