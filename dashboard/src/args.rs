//! The dashboard's settings.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use warren_kit::args::CommonArgs;
use warren_kit::auth::AuthArgs;

/// Settings of the dashboard.
#[derive(Debug, Clone, Args)]
pub struct DashboardArgs {
    /// Address the dashboard listens on (port 0 picks a free one).
    #[arg(long, env = "WARREN_HTTP_ADDR", default_value = "127.0.0.1:8081")]
    pub http_addr: SocketAddr,
    /// Longest a plain request may take (live streams are bounded by shutdown instead).
    #[arg(long, env = "WARREN_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// Tokens: the submitter's tokens file (`WARREN_TOKENS_FILE`), or `WARREN_NO_AUTH=true`.
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Connections, namespace and result TTL shared with the other services.
    #[command(flatten)]
    pub common: CommonArgs,
}
