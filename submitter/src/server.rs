//! The accept loop: HTTP/1.1 connections with a cap on how many are open and a timeout on
//! idle and slow ones.
//!
//! `axum::serve` offers neither, and 20,000 idle connections made the API unreachable. So
//! connections are served by hyper directly: a semaphore permit is taken *before* each
//! accept (at the cap, new clients wait in the kernel's backlog instead of costing a task
//! and a file descriptor), and hyper's header read timeout closes a connection that has not
//! sent a complete request head in time, which covers both a kept-alive connection left idle
//! and a client trickling its headers. A request in progress (a long-poll included) is not
//! affected: the request timeout bounds that.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long to pause when `accept` fails (out of file descriptors, mostly), so the loop
/// does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Connection limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) idle_timeout: Duration,
    pub(crate) max_connections: usize,
}

/// Serves `app` on `listener` until `shutdown`; then stops accepting, lets every connection
/// finish its request in progress, and returns once all are closed.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_closed) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(error = %error, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %error, "cannot set TCP_NODELAY");
        }
        let service = TowerToHyperService::new(app.clone());
        let stop = shutdown.clone();
        connections.spawn(async move {
            // Held until the connection is closed: it is what the cap counts.
            let _permit = permit;
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.idle_timeout)
                .serve_connection(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            let served = tokio::select! {
                served = connection.as_mut() => served,
                () = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = served {
                // Timeouts and clients that go away: routine, not worth more than debug.
                tracing::debug!(%peer, error = %error, "connection ended");
            }
        });
    }
    connections.close();
    connections.wait().await;
}
