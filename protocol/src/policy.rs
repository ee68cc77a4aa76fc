//! What the operator chooses for the scheduler: the ordering policy, its weights, tenant
//! weights and limits. Here, not in the scheduler, because the API validates a policy change
//! before the scheduler applies it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The named policies. Each is a preset of [`PolicyConfig`]'s weights and ordering mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// First come, first served.
    Fifo,
    /// Higher priority first, with aging: waiting earns priority, so no job starves.
    Priority,
    /// Shortest estimated runtime first, with aging.
    Sjf,
    /// Weighted fair share across tenants (decayed resource-seconds against weights).
    Fair,
    /// Tenants take turns, one job each.
    RoundRobin,
    /// Queues take turns, one job each.
    RoundRobinQueues,
}

impl Preset {
    /// Every preset.
    pub const ALL: [Self; 6] = [
        Self::Fifo,
        Self::Priority,
        Self::Sjf,
        Self::Fair,
        Self::RoundRobin,
        Self::RoundRobinQueues,
    ];
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Fifo => "fifo",
            Self::Priority => "priority",
            Self::Sjf => "sjf",
            Self::Fair => "fair",
            Self::RoundRobin => "round-robin",
            Self::RoundRobinQueues => "round-robin-queues",
        };
        f.write_str(name)
    }
}

impl FromStr for Preset {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.to_string().eq_ignore_ascii_case(raw.trim()))
            .ok_or_else(|| {
                format!(
                    "unknown policy {raw:?} (expected fifo, priority, sjf, fair, round-robin or round-robin-queues)"
                )
            })
    }
}

/// How the heads of the per-(tenant, class) queues are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// By score: the job's key plus the fair-share term.
    Score,
    /// The tenant furthest below its share first, then by key.
    FairShare,
    /// Tenants in turn, then by key.
    RoundRobinTenants,
    /// Queue names in turn, then by key.
    RoundRobinQueues,
}

/// A token bucket: at most `per_s` starts a second on average, bursts of `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    /// Tokens added per second.
    pub per_s: f64,
    /// Bucket size.
    pub burst: u32,
}

/// Global limits the scheduler enforces, because it is the one place that dispatches.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// At most this many running jobs per tenant.
    pub tenant_concurrency: BTreeMap<String, u32>,
    /// At most this many running jobs per queue.
    pub queue_concurrency: BTreeMap<String, u32>,
    /// Start rates per task name.
    pub task_rate: BTreeMap<String, Rate>,
    /// Start rates per queue.
    pub queue_rate: BTreeMap<String, Rate>,
}

/// The whole policy: a preset's weights, overridable one by one.
///
/// A job's *key* is fixed while it waits: `arrival − priority × priority_weight_ms +
/// size_weight × estimated runtime` (milliseconds; smaller runs first). Age needs no term of
/// its own: every waiting job ages at the same rate, so arrival time already orders by age,
/// and `priority_weight_ms` reads as "one priority level is worth this much waiting" (the
/// aging bound). Fair share is a property of the tenant, not the job, so it enters when the
/// heads of the tenants' queues are compared (see [`Mode`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// The preset these settings started from.
    pub preset: Preset,
    /// How heads are compared across tenants.
    pub mode: Mode,
    /// Milliseconds of waiting one priority level is worth (0: priority ignored).
    pub priority_weight_ms: u64,
    /// Milliseconds of key per millisecond of estimated runtime (0: size ignored).
    pub size_weight: f64,
    /// Milliseconds of key per unit of the tenant's usage-to-weight ratio (mode `score`).
    pub fair_weight_ms: f64,
    /// Half-life of recorded usage, in seconds.
    pub half_life_s: u64,
    /// Tenant weights for fair share (absent: 1).
    pub tenant_weights: BTreeMap<String, f64>,
    /// Whether smaller jobs may run ahead of a reserved large job where they end in time.
    pub backfill: bool,
    /// The most jobs a worker is sent beyond its free slots, so a finishing job finds the
    /// next one waiting there (never beyond its cpu, memory or GPUs). The scheduler sizes
    /// each worker's slack below this from the dispatch round trip and the runtimes of what
    /// runs there; 0 sends nothing ahead.
    pub slack: u32,
    /// Concurrency caps and rate limits.
    pub limits: Limits,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self::preset(Preset::Fifo)
    }
}

/// One priority level is worth this much waiting under `priority` (the aging bound).
pub const DEFAULT_PRIORITY_WEIGHT_MS: u64 = 60_000;

impl PolicyConfig {
    /// Returns the settings of a named policy.
    pub fn preset(preset: Preset) -> Self {
        let base = Self {
            preset,
            mode: Mode::Score,
            priority_weight_ms: 0,
            size_weight: 0.0,
            fair_weight_ms: 0.0,
            half_life_s: 3600,
            tenant_weights: BTreeMap::new(),
            backfill: true,
            slack: 16,
            limits: Limits::default(),
        };
        match preset {
            Preset::Fifo => base,
            Preset::Priority => Self {
                priority_weight_ms: DEFAULT_PRIORITY_WEIGHT_MS,
                ..base
            },
            Preset::Sjf => Self {
                size_weight: 1.0,
                ..base
            },
            Preset::Fair => Self {
                mode: Mode::FairShare,
                priority_weight_ms: DEFAULT_PRIORITY_WEIGHT_MS,
                ..base
            },
            Preset::RoundRobin => Self {
                mode: Mode::RoundRobinTenants,
                ..base
            },
            Preset::RoundRobinQueues => Self {
                mode: Mode::RoundRobinQueues,
                ..base
            },
        }
    }

    /// Builds a policy from a preset named in `changes` (`"preset"`, default fifo) with any of
    /// its other fields overriding the preset's: what `PUT /v1/scheduler/policy` takes.
    ///
    /// # Errors
    /// Says which field is wrong.
    pub fn from_changes(changes: &serde_json::Value) -> Result<Self, String> {
        let serde_json::Value::Object(fields) = changes else {
            return Err("the policy must be a JSON object".into());
        };
        let preset = match fields.get("preset") {
            None => Preset::Fifo,
            Some(serde_json::Value::String(name)) => name.parse()?,
            Some(_) => return Err("preset must be a string".into()),
        };
        let mut merged = serde_json::to_value(Self::preset(preset)).map_err(|e| e.to_string())?;
        if let serde_json::Value::Object(base) = &mut merged {
            for (name, value) in fields {
                base.insert(name.clone(), value.clone());
            }
        }
        let config: Self = serde_json::from_value(merged).map_err(|e| e.to_string())?;
        config.check()?;
        Ok(config)
    }

    /// Returns a tenant's weight (1 when not configured; never zero or negative).
    pub fn tenant_weight(&self, tenant: &str) -> f64 {
        self.tenant_weights
            .get(tenant)
            .copied()
            .filter(|w| *w > 0.0 && w.is_finite())
            .unwrap_or(1.0)
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// Names the setting to fix.
    pub fn check(&self) -> Result<(), String> {
        if !(self.size_weight.is_finite() && self.size_weight >= 0.0) {
            return Err("size_weight must be a finite number ≥ 0".into());
        }
        if !(self.fair_weight_ms.is_finite() && self.fair_weight_ms >= 0.0) {
            return Err("fair_weight_ms must be a finite number ≥ 0".into());
        }
        if self.half_life_s == 0 {
            return Err("half_life_s must be at least 1".into());
        }
        for (tenant, weight) in &self.tenant_weights {
            if !(weight.is_finite() && *weight > 0.0) {
                return Err(format!("tenant_weights.{tenant} must be a number > 0"));
            }
        }
        for (name, rate) in self.limits.task_rate.iter().chain(&self.limits.queue_rate) {
            if !(rate.per_s.is_finite() && rate.per_s > 0.0) || rate.burst == 0 {
                return Err(format!(
                    "rate limit {name}: per_s must be > 0 and burst at least 1"
                ));
            }
        }
        Ok(())
    }
}

/// Parses `name=value` pairs separated by commas (`a=2,b=1`).
///
/// # Errors
/// Says which pair is malformed.
pub fn parse_pairs<T: FromStr>(raw: &str) -> Result<BTreeMap<String, T>, String> {
    let mut out = BTreeMap::new();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, value)) = pair.split_once('=') else {
            return Err(format!("{pair:?} is not name=value"));
        };
        let value = value
            .trim()
            .parse()
            .map_err(|_| format!("{pair:?}: {value:?} is not a valid value"))?;
        out.insert(name.trim().to_owned(), value);
    }
    Ok(out)
}

/// Parses rate limits: `name=N/s` or `name=N/s:burst` pairs separated by commas.
///
/// # Errors
/// Says which pair is malformed.
pub fn parse_rates(raw: &str) -> Result<BTreeMap<String, Rate>, String> {
    let mut out = BTreeMap::new();
    for (name, spec) in parse_pairs::<String>(raw)? {
        let (rate, burst) = spec.split_once(':').unwrap_or((spec.as_str(), ""));
        let per_s: f64 = rate
            .trim_end_matches("/s")
            .parse()
            .map_err(|_| format!("{name}={spec}: expected N/s or N/s:burst"))?;
        let burst: u32 = if burst.is_empty() {
            per_s.ceil().max(1.0) as u32
        } else {
            burst
                .parse()
                .map_err(|_| format!("{name}={spec}: burst must be a whole number"))?
        };
        out.insert(name, Rate { per_s, burst });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse_and_check() {
        for name in [
            "fifo",
            "priority",
            "sjf",
            "fair",
            "round-robin",
            "round-robin-queues",
        ] {
            let preset: Preset = name.parse().unwrap();
            assert_eq!(preset.to_string(), name);
            PolicyConfig::preset(preset).check().unwrap();
        }
        assert!("lifo".parse::<Preset>().unwrap_err().contains("fifo"));
    }

    #[test]
    fn pairs_and_rates_parse() {
        let weights: BTreeMap<String, f64> = parse_pairs("a=1, b=2.5").unwrap();
        assert_eq!(weights["b"], 2.5);
        assert!(parse_pairs::<f64>("a").is_err());
        let rates = parse_rates("sleep=10/s,render=0.5/s:3").unwrap();
        assert_eq!(rates["sleep"].burst, 10);
        assert_eq!(rates["render"].burst, 3);
        assert!(parse_rates("x=fast").is_err());
    }

    #[test]
    fn changes_start_from_the_named_preset() {
        let config =
            PolicyConfig::from_changes(&serde_json::json!({"preset": "fair", "slack": 0})).unwrap();
        assert_eq!(config.mode, Mode::FairShare);
        assert_eq!(config.slack, 0);
        assert!(PolicyConfig::from_changes(&serde_json::json!({"bogus": 1})).is_err());
        assert!(PolicyConfig::from_changes(&serde_json::json!({"preset": "lifo"})).is_err());
        assert!(PolicyConfig::from_changes(&serde_json::json!([])).is_err());
    }

    #[test]
    fn bad_weights_are_refused() {
        let mut config = PolicyConfig::preset(Preset::Fair);
        config.tenant_weights.insert("a".into(), 0.0);
        assert!(config.check().unwrap_err().contains("tenant_weights.a"));
    }
}
