//! The self-signed certificate a simulated server presents on its TLS
//! listeners (implicit-TLS CLI and HTTPS WebAdmin).

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// A certificate for `localhost` and `127.0.0.1`, with the acceptor that
/// serves it.
#[derive(Clone)]
pub(crate) struct TlsIdentity {
    pub(crate) certificate_der: Vec<u8>,
    pub(crate) certificate_pem: String,
    pub(crate) acceptor: TlsAcceptor,
}

impl TlsIdentity {
    /// Generates a new ECDSA P-256 key and self-signed certificate.
    pub(crate) fn generate() -> std::io::Result<Self> {
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let generated = rcgen::generate_simple_self_signed(names)
            .map_err(|e| std::io::Error::other(format!("failed to generate a certificate: {e}")))?;
        let certificate_der = generated.cert.der().to_vec();
        let certificate_pem = generated.cert.pem();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            generated.signing_key.serialize_der(),
        ));

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|builder| {
                builder
                    .with_no_client_auth()
                    .with_single_cert(vec![CertificateDer::from(certificate_der.clone())], key)
            })
            .map_err(|e| {
                std::io::Error::other(format!("failed to build the TLS configuration: {e}"))
            })?;

        Ok(Self {
            certificate_der,
            certificate_pem,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }
}
