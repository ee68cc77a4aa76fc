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
//!
//! With a certificate and key (`WARREN_TLS_CERT_FILE`, `WARREN_TLS_KEY_FILE`) connections are
//! HTTPS (rustls); the TLS handshake is bounded by the same idle timeout and counts against
//! the same cap, so a client that opens connections and never completes a handshake cannot
//! hold them.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::wire::ProblemIo;

/// How long to pause when `accept` fails (out of file descriptors, mostly), so the loop
/// does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Connection limits, and TLS when the API is served over HTTPS.
#[derive(Clone)]
pub(crate) struct Limits {
    pub(crate) idle_timeout: Duration,
    pub(crate) max_connections: usize,
    pub(crate) tls: Option<TlsAcceptor>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("idle_timeout", &self.idle_timeout)
            .field("max_connections", &self.max_connections)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// Reads a PEM certificate chain and private key into a TLS acceptor for HTTP/1.1, with
/// rustls' ring provider (the only one built in).
pub(crate) fn tls_acceptor(cert_file: &Path, key_file: &Path) -> anyhow::Result<TlsAcceptor> {
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .with_context(|| format!("reading the certificate chain {}", cert_file.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{} holds no PEM certificate",
        cert_file.display()
    );
    let key = PrivateKeyDer::from_pem_file(key_file)
        .with_context(|| format!("reading the private key {}", key_file.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| {
            format!(
                "the key {} does not fit the certificate {}",
                key_file.display(),
                cert_file.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
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
        let app = app.clone();
        let stop = shutdown.clone();
        let tls = limits.tls.clone();
        let idle_timeout = limits.idle_timeout;
        connections.spawn(async move {
            // Held until the connection is closed: it is what the cap counts.
            let _permit = permit;
            let Some(tls) = tls else {
                serve_connection(stream, app, idle_timeout, stop, peer).await;
                return;
            };
            let handshake = tokio::select! {
                done = tokio::time::timeout(idle_timeout, tls.accept(stream)) => done,
                () = stop.cancelled() => return,
            };
            match handshake {
                Ok(Ok(stream)) => serve_connection(stream, app, idle_timeout, stop, peer).await,
                Ok(Err(error)) => tracing::debug!(%peer, error = %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
    connections.close();
    connections.wait().await;
}

/// Serves HTTP/1.1 on one connection (plain or TLS) until it closes or `stop`.
async fn serve_connection<I>(
    io: I,
    app: Router,
    idle_timeout: Duration,
    stop: CancellationToken,
    peer: std::net::SocketAddr,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(idle_timeout)
        .serve_connection(
            TokioIo::new(ProblemIo::new(io)),
            TowerToHyperService::new(app),
        );
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
}
