//! rustls client configuration for `tls=enable`: the system roots plus `ca`, an optional client
//! identity (`cert`/`key`/`keyPassword`), and `unsafeSsl` (no server verification).

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

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
            .with_custom_certificate_verifier(Arc::new(crate::tls::AcceptAnyServerCert(provider)))
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
