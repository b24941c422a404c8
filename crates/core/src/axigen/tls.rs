//! TLS client configuration shared by the CLI client and the WebAdmin client.
//!
//! Both use rustls with the ring provider. A server with certificate
//! fingerprints set accepts only a certificate whose SHA-256 fingerprint is
//! one of them, which suits the self-signed certificates that Axigen
//! servers often present. Otherwise, with certificate checking on, the
//! platform's trust store decides (on Linux, the system CA bundle), and with
//! it off, any certificate is accepted. In every case the handshake
//! signatures are checked, so the peer must hold the key of the certificate
//! it presents.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use crate::model::ServerEndpoint;

/// Builds the client configuration for one server's TLS connections: pinned
/// fingerprints when the endpoint has any, else the platform's trust store
/// when `tls_verify` is on, else any certificate.
///
/// # Errors
///
/// Fails when the platform trust store cannot be loaded.
pub(crate) fn client_config(endpoint: &ServerEndpoint) -> Result<ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;

    let verifier: Arc<dyn ServerCertVerifier> = if !endpoint.tls_fingerprints.is_empty() {
        Arc::new(CertificateCheck {
            provider,
            fingerprints: Some(endpoint.tls_fingerprints.clone()),
        })
    } else if endpoint.tls_verify {
        Arc::new(TrustStoreCheck {
            inner: rustls_platform_verifier::Verifier::new(provider)?,
        })
    } else {
        Arc::new(CertificateCheck {
            provider,
            fingerprints: None,
        })
    };

    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// Returns the SHA-256 fingerprint of a DER certificate as lower-case hex.
pub fn fingerprint(certificate_der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, certificate_der);
    digest
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Describes a rejected certificate with what to do about it: a pin that
/// does not match, a certificate the trust store rejects (with its
/// fingerprint, for pinning), or another reason as rustls names it.
pub(crate) fn describe_certificate_error(reason: &rustls::CertificateError) -> String {
    if let rustls::CertificateError::Other(other) = reason {
        if let Some(mismatch) = other.0.downcast_ref::<FingerprintMismatch>() {
            return mismatch.to_string();
        }
        if let Some(untrusted) = other.0.downcast_ref::<Untrusted>() {
            return untrusted.to_string();
        }
    }
    format!("{reason:?}")
}

/// Describes a failed CLI TLS handshake from the I/O error that carries it.
pub(crate) fn describe_handshake_error(error: &std::io::Error) -> String {
    let rejected = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rejected {
        Some(rustls::Error::InvalidCertificate(reason)) => {
            format!(
                "invalid certificate: {}",
                describe_certificate_error(reason)
            )
        }
        _ => format!(
            "{error}; check that this port expects TLS, or set cli_tls to false if it does not"
        ),
    }
}

/// Returns a reason that the trust store gave, in plain words.
fn plain_reason(reason: &rustls::CertificateError) -> String {
    use rustls::CertificateError as Reason;
    match reason {
        Reason::UnknownIssuer => "it is not signed by a CA that this machine trusts".to_owned(),
        Reason::Expired | Reason::ExpiredContext { .. } => "it has expired".to_owned(),
        Reason::NotValidYet | Reason::NotValidYetContext { .. } => "it is not valid yet".to_owned(),
        Reason::NotValidForName | Reason::NotValidForNameContext { .. } => {
            "it is not valid for this host name".to_owned()
        }
        Reason::Revoked => "it has been revoked".to_owned(),
        other => format!("{other:?}"),
    }
}

/// A verifier that skips the trust store: it accepts a certificate whose
/// fingerprint is pinned, or any certificate when none is pinned (checking
/// turned off).
#[derive(Debug)]
struct CertificateCheck {
    provider: Arc<CryptoProvider>,
    fingerprints: Option<Vec<String>>,
}

impl ServerCertVerifier for CertificateCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(fingerprints) = &self.fingerprints else {
            return Ok(ServerCertVerified::assertion());
        };
        let presented = fingerprint(end_entity);
        if fingerprints.contains(&presented) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(Arc::new(
                    FingerprintMismatch { presented },
                ))),
            ))
        }
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

/// A presented certificate that is not one of the pinned ones.
#[derive(Debug, thiserror::Error)]
#[error(
    "the certificate's SHA-256 fingerprint {presented} is not one of the fingerprints set for \
     this server; if the certificate was replaced, set its new fingerprint in tls_fingerprints \
     (PATCH /update_server)"
)]
struct FingerprintMismatch {
    presented: String,
}

/// A certificate that the trust store rejected, with the fingerprint that
/// lets the user pin it instead.
#[derive(Debug, thiserror::Error)]
#[error(
    "the certificate is not trusted: {reason}. Its SHA-256 fingerprint is {fingerprint}: after \
     checking that fingerprint on the Axigen host, set it in tls_fingerprints, or set tls_verify \
     to false to accept any certificate"
)]
struct Untrusted {
    reason: String,
    fingerprint: String,
}

/// The platform's trust store, with the fingerprint of a rejected
/// certificate added to the error.
#[derive(Debug)]
struct TrustStoreCheck {
    inner: rustls_platform_verifier::Verifier,
}

impl ServerCertVerifier for TrustStoreCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|error| match error {
                rustls::Error::InvalidCertificate(reason) => rustls::Error::InvalidCertificate(
                    rustls::CertificateError::Other(rustls::OtherError(Arc::new(Untrusted {
                        reason: plain_reason(&reason),
                        fingerprint: fingerprint(end_entity),
                    }))),
                ),
                other => other,
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, signature)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, signature)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }

    fn root_hint_subjects(&self) -> Option<&[rustls::DistinguishedName]> {
        self.inner.root_hint_subjects()
    }
}
