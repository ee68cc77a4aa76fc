//! TLS both ways: a private `redis-server` that speaks only TLS (`rediss://`, its certificate
//! signed by a CA made for the test), and the submitter serving HTTPS with a certificate
//! from the same CA. `/readyz` over HTTPS answering `ready` proves both: it pings Redis.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_util::sync::CancellationToken;
use warren_kit::testkit::{TestNamespace, TestPki, wait_until};
use warren_store::{RedisTls, Store, StoreOptions};

use crate::support::{Harness, TIMEOUT, args};

/// A private `redis-server` with only a TLS port; killed when dropped.
struct TlsRedis {
    port: u16,
    _child: Child,
}

impl TlsRedis {
    async fn start(pki: &TestPki) -> Self {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let arg = |p: &Path| p.display().to_string();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .args(["--tls-cert-file", &arg(&pki.cert)])
            .args(["--tls-key-file", &arg(&pki.key)])
            .args(["--tls-ca-cert-file", &arg(&pki.ca)])
            .args(["--tls-auth-clients", "no"])
            .args(["--bind", "127.0.0.1", "--dir", &arg(pki.dir())])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server on PATH (Debian's is built with TLS)");
        Self {
            port,
            _child: child,
        }
    }

    fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }
}

fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// `GET path` over HTTPS, trusting only `ca`; the raw response.
pub(crate) async fn https_get(port: u16, ca: &[u8], path: &str) -> String {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(ca.to_vec())).unwrap();
    let config = ClientConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("the TLS handshake with the submitter");
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    // A peer that closes without close_notify is an error to rustls; the bytes are there.
    let _ = tls.read_to_string(&mut response).await;
    response
}

#[tokio::test]
async fn rediss_and_https_work_with_a_private_ca() {
    let pki = TestPki::new("rediss");
    let redis = TlsRedis::start(&pki).await;
    let with_ca = RedisTls::from_files(Some(&pki.ca), None, None).unwrap();
    let ns = TestNamespace::new("tls");
    let store = wait_until("the TLS redis-server to answer", TIMEOUT, || async {
        Store::connect_tls(&redis.url(), ns.ns(), StoreOptions::default(), &with_ca)
            .await
            .ok()
    })
    .await;
    store.ping().await.unwrap();
    // Without the CA, Redis' certificate is not trusted. (One plain connection: the store's
    // connection manager would retry for seconds before giving up.)
    let untrusted = tokio::time::timeout(TIMEOUT, async {
        redis::Client::open(redis.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
    })
    .await
    .expect("a refused handshake fails promptly");
    let Err(error) = untrusted else {
        panic!("a certificate from an unknown CA was accepted");
    };
    assert!(
        format!("{error:?}").to_lowercase().contains("certificate"),
        "{error:?}"
    );

    let mut submitter = args(&ns, redis.url());
    submitter.common.redis.tls.ca_file = Some(pki.ca.clone());
    submitter.security.tls_cert_file = Some(pki.cert.clone());
    submitter.security.tls_key_file = Some(pki.key.clone());
    let h = Harness::with_args(ns, submitter).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(warren_submitter::serve(
        listener,
        h.state.clone(),
        shutdown.child_token(),
    ));

    let health = tokio::time::timeout(TIMEOUT, https_get(port, &pki.ca_der, "/healthz"))
        .await
        .unwrap();
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let ready = tokio::time::timeout(TIMEOUT, https_get(port, &pki.ca_der, "/readyz"))
        .await
        .unwrap();
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    assert!(ready.contains("\"ready\""), "{ready}");
    // Plain HTTP to the HTTPS port gets no answer from the API.
    let mut plain = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer)).await;
    assert!(
        !String::from_utf8_lossy(&answer).contains("200 OK"),
        "plain HTTP was served on the HTTPS port"
    );

    shutdown.cancel();
    tokio::time::timeout(TIMEOUT, server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    drop(store);
    h.finish().await;
    drop(redis);
}
