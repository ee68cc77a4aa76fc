//! The shutdown signal: one `CancellationToken` per process, cancelled by SIGINT or SIGTERM.

use tokio_util::sync::CancellationToken;

/// Spawns a task that cancels `token` on the first SIGINT or SIGTERM and exits the process with
/// code 130 on the second, for an operator who does not want to wait for the drain.
///
/// # Errors
/// Fails when the signal handlers cannot be installed.
pub fn spawn_signal_listener(token: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::info!("shutdown signal received, draining (send it again to exit at once)");
        token.cancel();
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::warn!("second shutdown signal, exiting now");
        #[expect(
            clippy::exit,
            reason = "a second signal means: stop now, skip the drain"
        )]
        std::process::exit(130);
    });
    Ok(())
}
