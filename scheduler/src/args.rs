use std::collections::BTreeMap;
use std::time::Duration;

use clap::Args;
use warren_kit::{CommonArgs, MetricsArgs};

use crate::policy::config::{Rate, parse_pairs, parse_rates};
use crate::policy::{Limits, PolicyConfig, Preset};

/// How pending jobs are ordered and placed (shared by the scheduler and `warren up`).
#[derive(Debug, Clone, Args)]
pub struct PolicyArgs {
    /// Ordering policy: fifo, priority (with aging), sjf (with aging), fair (weighted fair
    /// share across tenants), round-robin (across tenants) or round-robin-queues.
    #[arg(long, env = "WARREN_POLICY", default_value = "fifo")]
    pub policy: Preset,
    /// How much waiting one priority level is worth (the aging bound); default: the preset's.
    #[arg(long, env = "WARREN_PRIORITY_WEIGHT", value_parser = humantime::parse_duration)]
    pub priority_weight: Option<Duration>,
    /// Milliseconds of key per millisecond of estimated runtime; default: the preset's.
    #[arg(long, env = "WARREN_SIZE_WEIGHT")]
    pub size_weight: Option<f64>,
    /// Milliseconds of key per unit of usage-to-weight ratio (policy `fifo|priority|sjf`
    /// with fair share mixed in); default: the preset's.
    #[arg(long, env = "WARREN_FAIR_WEIGHT")]
    pub fair_weight: Option<f64>,
    /// Half-life of recorded usage for fair share.
    #[arg(long, env = "WARREN_FAIR_HALF_LIFE", default_value = "1h", value_parser = humantime::parse_duration)]
    pub fair_half_life: Duration,
    /// Tenant weights for fair share: `team-a=2,team-b=1` (others: 1).
    #[arg(long, env = "WARREN_TENANT_WEIGHTS", default_value = "", value_parser = parse_pairs::<f64>)]
    pub tenant_weights: BTreeMap<String, f64>,
    /// Most running jobs per tenant: `team-a=10,team-b=4`.
    #[arg(long, env = "WARREN_TENANT_LIMITS", default_value = "", value_parser = parse_pairs::<u32>)]
    pub tenant_limits: BTreeMap<String, u32>,
    /// Most running jobs per queue: `render=8`.
    #[arg(long, env = "WARREN_QUEUE_LIMITS", default_value = "", value_parser = parse_pairs::<u32>)]
    pub queue_limits: BTreeMap<String, u32>,
    /// Start rates per task: `sleep=10/s,render=0.5/s:3` (N/s, optional burst).
    #[arg(long, env = "WARREN_TASK_RATES", default_value = "", value_parser = parse_rates)]
    pub task_rates: BTreeMap<String, Rate>,
    /// Start rates per queue, as `--task-rates`.
    #[arg(long, env = "WARREN_QUEUE_RATES", default_value = "", value_parser = parse_rates)]
    pub queue_rates: BTreeMap<String, Rate>,
    /// Do not let smaller jobs run ahead of a waiting large job's reservation.
    #[arg(long, env = "WARREN_NO_BACKFILL")]
    pub no_backfill: bool,
    /// The most jobs a worker is sent beyond its free slots, so a finishing job finds the
    /// next one already there (never beyond its cpu, memory or GPUs). Each worker's slack
    /// adapts below this to the dispatch round trip and its jobs' runtimes; 0 sends none.
    #[arg(long, env = "WARREN_CREDIT_SLACK", default_value_t = 16)]
    pub credit_slack: u32,
    /// Runtime assumed for a job that gives no estimate, of a task never seen finishing.
    #[arg(long, env = "WARREN_DEFAULT_RUNTIME", default_value = "60s", value_parser = humantime::parse_duration)]
    pub default_runtime: Duration,
}

impl Default for PolicyArgs {
    /// The command line's defaults (for tests and embedders that build settings in code).
    fn default() -> Self {
        Self {
            policy: Preset::Fifo,
            priority_weight: None,
            size_weight: None,
            fair_weight: None,
            fair_half_life: Duration::from_secs(3600),
            tenant_weights: BTreeMap::new(),
            tenant_limits: BTreeMap::new(),
            queue_limits: BTreeMap::new(),
            task_rates: BTreeMap::new(),
            queue_rates: BTreeMap::new(),
            no_backfill: false,
            credit_slack: 16,
            default_runtime: Duration::from_secs(60),
        }
    }
}

impl PolicyArgs {
    /// Builds the policy these settings describe.
    ///
    /// # Errors
    /// Names the setting to fix.
    pub fn config(&self) -> anyhow::Result<PolicyConfig> {
        let mut config = PolicyConfig::preset(self.policy);
        if let Some(weight) = self.priority_weight {
            config.priority_weight_ms = weight.as_millis() as u64;
        }
        if let Some(weight) = self.size_weight {
            config.size_weight = weight;
        }
        if let Some(weight) = self.fair_weight {
            config.fair_weight_ms = weight;
        }
        config.half_life_s = self.fair_half_life.as_secs().max(1);
        config.tenant_weights = self.tenant_weights.clone();
        config.backfill = !self.no_backfill;
        config.slack = self.credit_slack;
        config.limits = Limits {
            tenant_concurrency: self.tenant_limits.clone(),
            queue_concurrency: self.queue_limits.clone(),
            task_rate: self.task_rates.clone(),
            queue_rate: self.queue_rates.clone(),
        };
        config
            .check()
            .map_err(|e| anyhow::anyhow!("scheduler policy: {e}"))?;
        Ok(config)
    }
}

/// Settings of the scheduler.
#[derive(Debug, Clone, Args)]
pub struct SchedulerArgs {
    /// Connections, namespace, result TTL.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Policy, weights, limits.
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Intake messages taken at once on their way into the pending index (in flight, not a
    /// window: every pending job is ordered, wherever it is).
    #[arg(long, env = "WARREN_PREFETCH", default_value_t = 512, value_parser = clap::value_parser!(u16).range(1..))]
    pub prefetch: u16,
    /// How long the active scheduler's lease lasts; a standby takes over this long after the
    /// active one dies.
    #[arg(long, env = "WARREN_LEADER_TTL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub leader_ttl: Duration,
    /// Where to serve Prometheus metrics (`WARREN_METRICS_ADDR`; off when unset).
    #[command(flatten)]
    pub metrics: MetricsArgs,
    /// Poison jobs and interrupted submissions.
    #[command(flatten)]
    pub lifecycle: LifecycleArgs,
}

/// How the scheduler ends jobs that cannot end by themselves.
#[derive(Debug, Clone, Args)]
pub struct LifecycleArgs {
    /// Times a job may lose its worker (a crash, a kill) and be sent elsewhere; one more and
    /// it is a poison job: `failed` and dead-lettered.
    #[arg(long, env = "WARREN_MAX_TAKEOVERS", default_value_t = 5)]
    pub max_takeovers: u32,
    /// How long a submission may stay between writing its jobs and the broker's confirm
    /// before its jobs count as never submitted (the submitter died half-way) and are removed.
    #[arg(long, env = "WARREN_SUBMIT_REAP_AFTER", default_value = "2m", value_parser = humantime::parse_duration)]
    pub submit_reap_after: Duration,
}

impl Default for LifecycleArgs {
    /// The command line's defaults.
    fn default() -> Self {
        Self {
            max_takeovers: 5,
            submit_reap_after: Duration::from_secs(120),
        }
    }
}
