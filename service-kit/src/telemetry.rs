//! Tracing set-up, called once from each binary's `main`.

use tracing_subscriber::EnvFilter;

use crate::args::{LogFormat, TelemetryArgs};

/// Installs the global tracing subscriber. `RUST_LOG` wins over the default
/// `info,lapin=warn`.
pub fn init(args: &TelemetryArgs) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,lapin=warn,amq_protocol=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // `try_init` so a second call (tests, `warren up`) keeps the first subscriber.
    let _ = match args.log_format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
