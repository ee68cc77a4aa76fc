use clap::{Args, ValueEnum};
use warren_kit::CommonArgs;

/// How pending jobs are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Policy {
    /// First come, first served (within what each pool can run).
    Fifo,
}

/// Settings of the scheduler.
#[derive(Debug, Clone, Args)]
pub struct SchedulerArgs {
    /// Connections, namespace, result TTL.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Window: how many intake messages the scheduler holds (unacked) to choose from.
    #[arg(long, env = "WARREN_PREFETCH", default_value_t = 10_000, value_parser = clap::value_parser!(u16).range(1..))]
    pub prefetch: u16,
    /// Jobs released to a pool beyond its free slots, so a worker finishing a job finds the
    /// next one already waiting.
    #[arg(long, env = "WARREN_CREDIT_SLACK", default_value_t = 2)]
    pub credit_slack: u32,
    /// Ordering policy.
    #[arg(long, env = "WARREN_POLICY", value_enum, default_value = "fifo")]
    pub policy: Policy,
}
