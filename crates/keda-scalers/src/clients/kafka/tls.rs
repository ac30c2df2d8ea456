//! rustls client configuration for `tls=enable`: the system roots plus `ca`, an optional client
//! identity (`cert`/`key`/`keyPassword`), and `unsafeSsl` (no server verification).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::tls::{TlsMaterialError, TlsSettings};

/// The client config for `settings`.
pub(crate) fn client_config(
    settings: &TlsSettings,
) -> Result<Arc<rustls::ClientConfig>, TlsMaterialError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let material =
        |parameter: &'static str, message: String| TlsMaterialError { parameter, message };
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| material("ca", e.to_string()))?;
    let builder = if settings.unsafe_ssl {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider)))
    } else {
        let mut roots = RootCertStore::empty();
        // Unreadable system roots only matter if the broker's certificate needs them.
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        if let Some(ca) = settings.ca_pem()? {
            for cert in CertificateDer::pem_slice_iter(&ca) {
                let cert = cert.map_err(|e| material("ca", format!("invalid CA PEM: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| material("ca", format!("unusable CA certificate: {e}")))?;
            }
        }
        builder.with_root_certificates(roots)
    };
    let config = match settings.client_identity()? {
        Some(identity) => {
            let certs = CertificateDer::pem_slice_iter(&identity.cert_pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| material("cert", format!("invalid certificate PEM: {e}")))?;
            let key = PrivateKeyDer::from_pem_slice(&identity.key_pem)
                .map_err(|e| material("key", format!("invalid private key PEM: {e}")))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| material("cert", format!("unusable client certificate: {e}")))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// `unsafeSsl=true`: any server certificate is accepted; signatures are still checked so the
/// handshake itself stays sound.
#[derive(Debug)]
struct AcceptAnyServer(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServer {
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
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
