//! TLS material shared by scalers: the `cert` / `key` / `keyPassword` / `ca` auth parameters and
//! `unsafeSsl`, checked without I/O so `keda-rs validate` reports bad PEM as a config error.

use std::fmt;

use pkcs8::der::pem::LineEnding;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

const ENCRYPTED_PKCS8_BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
const ENCRYPTED_PKCS8_END: &str = "-----END ENCRYPTED PRIVATE KEY-----";

/// Client TLS settings of one backend identity. Equal settings share a pooled client.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct TlsSettings {
    /// Client certificate chain (PEM).
    pub cert: Option<String>,
    /// Client private key (PEM, possibly PKCS#8-encrypted).
    pub key: Option<String>,
    /// Password of an encrypted `key`.
    pub key_password: Option<String>,
    /// Extra trusted CA certificates (PEM).
    pub ca: Option<String>,
    /// Skip server certificate verification.
    pub unsafe_ssl: bool,
}

/// PEM material that cannot be used; names the auth parameter it came from.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TlsMaterialError {
    /// `cert`, `key`, `keyPassword` or `ca`.
    pub parameter: &'static str,
    /// What is wrong with it.
    pub message: String,
}

fn material_error(parameter: &'static str, message: impl Into<String>) -> TlsMaterialError {
    TlsMaterialError {
        parameter,
        message: message.into(),
    }
}

/// A client certificate chain and its (decrypted) key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// Certificate chain, PEM.
    pub cert_pem: Vec<u8>,
    /// Unencrypted private key, PEM.
    pub key_pem: Vec<u8>,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity").finish_non_exhaustive()
    }
}

impl TlsSettings {
    /// Checks every piece of material that would be used.
    pub fn validate(&self) -> Result<(), TlsMaterialError> {
        self.client_identity()?;
        self.ca_pem()?;
        Ok(())
    }

    /// The client identity when both `cert` and `key` are set (one without the other is ignored, as
    /// in KEDA). An encrypted PKCS#8 key is decrypted with `keyPassword`.
    pub fn client_identity(&self) -> Result<Option<ClientIdentity>, TlsMaterialError> {
        let (Some(cert), Some(key)) = (&self.cert, &self.key) else {
            return Ok(None);
        };
        let certs = CertificateDer::pem_slice_iter(cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| material_error("cert", format!("invalid certificate PEM: {e}")))?;
        if certs.is_empty() {
            return Err(material_error("cert", "no certificate found in PEM"));
        }
        let key_pem = if key.contains(ENCRYPTED_PKCS8_BEGIN) {
            let Some(password) = &self.key_password else {
                return Err(material_error(
                    "keyPassword",
                    "the key is encrypted but no keyPassword is given",
                ));
            };
            decrypt_pkcs8(key, password)?
        } else if key.contains("Proc-Type: 4,ENCRYPTED") {
            return Err(material_error(
                "key",
                "legacy PEM encryption is not supported; convert the key to encrypted PKCS#8 (openssl pkcs8 -topk8)",
            ));
        } else {
            key.as_bytes().to_vec()
        };
        let der = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| material_error("key", format!("invalid private key PEM: {e}")))?;
        // PEM parsing only decodes base64; loading the key checks it is a usable private key.
        rustls::crypto::ring::default_provider()
            .key_provider
            .load_private_key(der)
            .map_err(|e| material_error("key", format!("unusable private key: {e}")))?;
        Ok(Some(ClientIdentity {
            cert_pem: cert.as_bytes().to_vec(),
            key_pem,
        }))
    }

    /// The extra CA certificates, checked.
    pub fn ca_pem(&self) -> Result<Option<Vec<u8>>, TlsMaterialError> {
        let Some(ca) = &self.ca else {
            return Ok(None);
        };
        let certs = CertificateDer::pem_slice_iter(ca.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| material_error("ca", format!("invalid CA PEM: {e}")))?;
        if certs.is_empty() {
            return Err(material_error("ca", "no certificate found in CA PEM"));
        }
        Ok(Some(ca.as_bytes().to_vec()))
    }
}

fn decrypt_pkcs8(key: &str, password: &str) -> Result<Vec<u8>, TlsMaterialError> {
    let block = key
        .find(ENCRYPTED_PKCS8_BEGIN)
        .and_then(|start| {
            let rest = &key[start..];
            rest.find(ENCRYPTED_PKCS8_END)
                .map(|end| &rest[..end + ENCRYPTED_PKCS8_END.len()])
        })
        .ok_or_else(|| material_error("key", "unterminated ENCRYPTED PRIVATE KEY block"))?;
    let (_, der) = pkcs8::der::pem::decode_vec(block.as_bytes())
        .map_err(|e| material_error("key", format!("invalid encrypted key PEM: {e}")))?;
    let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice())
        .map_err(|e| material_error("key", format!("invalid encrypted PKCS#8 key: {e}")))?;
    let doc = info.decrypt(password).map_err(|e| {
        material_error(
            "keyPassword",
            format!("unable to decrypt the key with keyPassword: {e}"),
        )
    })?;
    let pem = doc
        .to_pem("PRIVATE KEY", LineEnding::LF)
        .map_err(|e| material_error("key", format!("unable to re-encode the key: {e}")))?;
    Ok(pem.as_bytes().to_vec())
}

/// Installs ring as the process-wide rustls provider unless one is installed already. rustls
/// refuses to pick one itself when several are compiled in, and the redis client asks for the
/// default.
pub fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing the race to another installer is fine: some provider is then installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Material is secret; print only which parts are present.
impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("cert", &self.cert.is_some())
            .field("key", &self.key.is_some())
            .field("key_password", &self.key_password.is_some())
            .field("ca", &self.ca.is_some())
            .field("unsafe_ssl", &self.unsafe_ssl)
            .finish()
    }
}

/// `unsafeSsl=true`: any server certificate is accepted; signatures are still checked so the
/// handshake itself stays sound.
#[derive(Debug)]
pub struct AcceptAnyServerCert(pub std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
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
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn cert_and_key_must_come_together() {
        let (cert, key) = self_signed();
        let only_cert = TlsSettings {
            cert: Some(cert.clone()),
            ..TlsSettings::default()
        };
        assert_eq!(only_cert.client_identity().unwrap(), None);
        let both = TlsSettings {
            cert: Some(cert),
            key: Some(key),
            ..TlsSettings::default()
        };
        assert!(both.client_identity().unwrap().is_some());
        both.validate().unwrap();
    }

    #[test]
    fn bad_material_names_the_parameter() {
        let (cert, key) = self_signed();
        let bad_cert = TlsSettings {
            cert: Some("not pem".into()),
            key: Some(key.clone()),
            ..TlsSettings::default()
        };
        assert_eq!(bad_cert.validate().unwrap_err().parameter, "cert");
        let bad_key = TlsSettings {
            cert: Some(cert.clone()),
            key: Some("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into()),
            ..TlsSettings::default()
        };
        assert_eq!(bad_key.validate().unwrap_err().parameter, "key");
        let bad_ca = TlsSettings {
            ca: Some("garbage".into()),
            ..TlsSettings::default()
        };
        assert_eq!(bad_ca.validate().unwrap_err().parameter, "ca");
        let good_ca = TlsSettings {
            ca: Some(cert),
            ..TlsSettings::default()
        };
        good_ca.validate().unwrap();
    }

    #[test]
    fn encrypted_pkcs8_key_is_decrypted_with_key_password() {
        use pkcs8::der::Decode;
        let (cert, key_pem) = self_signed();
        let (_, der) = pkcs8::der::pem::decode_vec(key_pem.as_bytes()).unwrap();
        let info = pkcs8::PrivateKeyInfo::from_der(&der).unwrap();
        // PBKDF2 as `openssl pkcs8 -topk8 -v2 aes-256-cbc` writes it (scrypt is very slow unoptimized).
        let params =
            pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(2048, b"saltsalt", &[7; 16])
                .unwrap();
        let encrypted = info
            .encrypt_with_params(params, "pw")
            .unwrap()
            .to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
            .unwrap()
            .to_string();
        let mut settings = TlsSettings {
            cert: Some(cert),
            key: Some(encrypted),
            ..TlsSettings::default()
        };
        assert_eq!(settings.validate().unwrap_err().parameter, "keyPassword");
        settings.key_password = Some("wrong".into());
        assert_eq!(settings.validate().unwrap_err().parameter, "keyPassword");
        settings.key_password = Some("pw".into());
        let identity = settings.client_identity().unwrap().unwrap();
        assert!(
            String::from_utf8(identity.key_pem)
                .unwrap()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
    }

    #[test]
    fn debug_hides_material() {
        let settings = TlsSettings {
            key: Some("SECRET".into()),
            key_password: Some("PW".into()),
            ..TlsSettings::default()
        };
        let printed = format!("{settings:?}");
        assert!(!printed.contains("SECRET"));
        assert!(!printed.contains("PW"));
    }
}
