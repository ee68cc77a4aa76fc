//! A certificate authority made for one test, for the TLS tests (HTTPS, `rediss://`,
//! `amqps://`): nothing is read from or trusted on the machine.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

/// PEM files of a fresh CA, of a server certificate it signed for `localhost` and
/// `127.0.0.1`, and of that certificate's key, in a directory removed on drop.
#[derive(Debug)]
pub struct TestPki {
    dir: PathBuf,
    /// The CA's certificate (PEM): what a client trusts.
    pub ca: PathBuf,
    /// The CA's certificate (DER), for a client configured in code.
    pub ca_der: Vec<u8>,
    /// The server's certificate (PEM).
    pub cert: PathBuf,
    /// The server's private key (PEM, PKCS#8).
    pub key: PathBuf,
}

impl TestPki {
    /// Makes the CA and the server certificate; `name` goes into the directory's name.
    ///
    /// # Panics
    /// When the files cannot be written.
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "warren-pki-{name}-{}-{}",
            std::process::id(),
            super::random_suffix()
        ));
        std::fs::create_dir_all(&dir).expect("creating the PKI directory");
        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).expect("parameters without names");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("a key"))
            .expect("a self-signed CA");
        let server_key = KeyPair::generate().expect("a key");
        let server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("valid names")
            .signed_by(&server_key, &ca)
            .expect("a certificate signed by the CA");
        let write = |file: &str, text: String| {
            let path = dir.join(file);
            std::fs::write(&path, text).expect("writing a PEM file");
            path
        };
        Self {
            ca: write("ca.pem", ca.pem()),
            ca_der: ca.der().to_vec(),
            cert: write("server.pem", server.pem()),
            key: write("server.key", server_key.serialize_pem()),
            dir,
        }
    }

    /// The directory that holds the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
