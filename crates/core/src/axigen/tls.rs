//! TLS client configuration shared by the CLI client and the WebAdmin client.
//!
//! Both use rustls with the ring provider. With certificate checking on, the
//! platform's trust store decides (on Linux, the system CA bundle). With it
//! off, any certificate is accepted, but the handshake signatures are still
//! checked, so the peer must hold the key of the certificate it presents.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

/// Builds a client configuration that checks certificates against the
/// platform's trust store when `verify` is true and accepts any certificate
/// otherwise.
///
/// # Errors
///
/// Fails when the platform trust store cannot be loaded.
pub(crate) fn client_config(verify: bool) -> Result<ClientConfig, rustls::Error> {
    // NOTE: verification uses the platform's trust store only. A server whose
    // certificate comes from a private CA needs `tls_verify` off, because no
    // per-server CA certificate can be configured yet.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;

    let verifier: Arc<dyn ServerCertVerifier> = if verify {
        Arc::new(rustls_platform_verifier::Verifier::new(provider)?)
    } else {
        Arc::new(AcceptAnyCertificate { provider })
    };

    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// A verifier for servers whose certificate checking is turned off, typically
/// those with self-signed certificates.
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
