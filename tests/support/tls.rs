//! The test certificate for `localhost` (tests/data/tls-test-localhost.*, signed by the test
//! CA in tests/data/tls-test-ca.pem) as a server-side acceptor, for fakes that speak TLS.

use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// The test CA's PEM file (what a client must trust to accept the fakes).
pub const CA_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tls-test-ca.pem");

/// A TLS acceptor presenting the `localhost` test certificate.
pub fn acceptor() -> TlsAcceptor {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/");
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(format!("{data}tls-test-localhost.pem"))
            .unwrap()
            .map(Result::unwrap)
            .collect();
    let key = PrivateKeyDer::from_pem_file(format!("{data}tls-test-localhost.key")).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}
