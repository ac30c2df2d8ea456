//! TLS material: the rustls server configuration, self-signed serving certificates, and the
//! request-header settings the apiserver publishes for extension apiservers.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::identity::ClientAuthPolicy;
use super::{MetricsApiError, MetricsServerConfig};

/// A serving certificate (PEM, leaf first, optionally followed by intermediates) and its key.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsMaterial {
    /// PEM certificate chain.
    pub cert_pem: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: String,
}

impl fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Generates a CA and a serving certificate for Service `service` in `namespace`, valid for
/// `<svc>`, `<svc>.<ns>`, `<svc>.<ns>.svc` (the name the aggregator verifies),
/// `<svc>.<ns>.svc.cluster.local`, `localhost`, `127.0.0.1` and `::1`. Returns the serving
/// material and the CA certificate PEM for the APIService's `caBundle`.
///
/// # Errors
/// [`MetricsApiError::InvalidName`] unless both names are DNS labels; key generation or
/// signing failures.
pub fn self_signed(
    service: &str,
    namespace: &str,
) -> Result<(TlsMaterial, String), MetricsApiError> {
    for name in [service, namespace] {
        let valid = !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(MetricsApiError::InvalidName(name.to_owned()));
        }
    }

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name =
        common_name_dn(&format!("keda-rs-metrics-ca@{service}.{namespace}"));
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let svc = format!("{service}.{namespace}.svc");
    let mut params = CertificateParams::new(vec![
        service.to_owned(),
        format!("{service}.{namespace}"),
        svc.clone(),
        format!("{svc}.cluster.local"),
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ])?;
    params.distinguished_name = common_name_dn(&svc);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok((
        TlsMaterial {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        },
        ca_cert.pem(),
    ))
}

fn common_name_dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

/// The rustls configuration for `config` (ring provider, TLS 1.2/1.3, ALPN h2 and http/1.1)
/// and the authentication policy it implies. Client certificates are verified against the
/// request-header CA when one is set, but optional at the TLS layer so health probes work.
pub(crate) fn server_config(
    config: &MetricsServerConfig,
) -> Result<(rustls::ServerConfig, ClientAuthPolicy), MetricsApiError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = CertificateDer::pem_slice_iter(config.tls.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error("serving certificate", &e))?;
    if certs.is_empty() {
        return Err(MetricsApiError::Pem {
            what: "serving certificate",
            message: "no CERTIFICATE block".to_owned(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(config.tls.key_pem.as_bytes())
        .map_err(|e| pem_error("serving key", &e))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?;
    let (builder, policy) = match &config.client_ca_pem {
        Some(ca_pem) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
                let cert = cert.map_err(|e| pem_error("client CA", &e))?;
                roots.add(cert).map_err(tls_error)?;
            }
            if roots.is_empty() {
                return Err(MetricsApiError::Pem {
                    what: "client CA",
                    message: "no CERTIFICATE block".to_owned(),
                });
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| MetricsApiError::Tls(e.to_string()))?;
            let policy = ClientAuthPolicy::RequestHeader {
                allowed_names: config.allowed_names.clone(),
            };
            (builder.with_client_cert_verifier(verifier), policy)
        }
        None => (builder.with_no_client_auth(), ClientAuthPolicy::Open),
    };
    let mut server = builder.with_single_cert(certs, key).map_err(tls_error)?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((server, policy))
}

fn pem_error(what: &'static str, error: &rustls_pki_types::pem::Error) -> MetricsApiError {
    MetricsApiError::Pem {
        what,
        message: error.to_string(),
    }
}

fn tls_error(error: rustls::Error) -> MetricsApiError {
    MetricsApiError::Tls(error.to_string())
}

/// The request-header settings from ConfigMap `kube-system/extension-apiserver-authentication`,
/// which the apiserver publishes for extension apiservers (its `--requestheader-*` flags).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestHeaderAuth {
    /// `requestheader-client-ca-file`: the front-proxy CA; `None` when the apiserver has no
    /// front proxy configured (then the aggregator cannot authenticate to us at all).
    pub client_ca_pem: Option<String>,
    /// `requestheader-allowed-names`: accepted front-proxy CNs; empty accepts any.
    pub allowed_names: Vec<String>,
}

impl RequestHeaderAuth {
    /// The ConfigMap's namespace.
    pub const NAMESPACE: &'static str = "kube-system";
    /// The ConfigMap's name.
    pub const NAME: &'static str = "extension-apiserver-authentication";

    /// Parses the ConfigMap's `data`. `requestheader-allowed-names` is a JSON array of strings.
    /// We read the user from `X-Remote-User`, the apiserver's default (and KEDA's setup)
    /// `requestheader-username-headers`.
    ///
    /// # Errors
    /// `requestheader-allowed-names` is present but not a JSON array of strings.
    pub fn from_configmap_data(data: &BTreeMap<String, String>) -> Result<Self, MetricsApiError> {
        let client_ca_pem = data
            .get("requestheader-client-ca-file")
            .filter(|pem| !pem.trim().is_empty())
            .cloned();
        let allowed_names = match data.get("requestheader-allowed-names") {
            Some(raw) if !raw.trim().is_empty() => serde_json::from_str::<Vec<String>>(raw)
                .map_err(|e| {
                    MetricsApiError::RequestHeaderConfig(format!(
                        "requestheader-allowed-names is not a JSON array of strings: {e}"
                    ))
                })?,
            _ => Vec::new(),
        };
        Ok(Self {
            client_ca_pem,
            allowed_names,
        })
    }

    /// Reads the ConfigMap (needs `get` on it: KEDA binds the
    /// `extension-apiserver-authentication-reader` Role in kube-system).
    ///
    /// # Errors
    /// The ConfigMap cannot be read, or its data does not parse.
    pub async fn load(client: kube::Client) -> Result<Self, MetricsApiError> {
        let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
            kube::Api::namespaced(client, Self::NAMESPACE);
        let configmap = api.get(Self::NAME).await.map_err(|e| {
            MetricsApiError::RequestHeaderConfig(format!(
                "reading ConfigMap {}/{}: {e}",
                Self::NAMESPACE,
                Self::NAME
            ))
        })?;
        Self::from_configmap_data(&configmap.data.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics_api::identity::common_name;

    fn config(tls: TlsMaterial, client_ca_pem: Option<String>) -> MetricsServerConfig {
        MetricsServerConfig {
            bind: ([127, 0, 0, 1], 0).into(),
            tls,
            client_ca_pem,
            allowed_names: vec!["front-proxy-client".to_owned()],
        }
    }

    #[test]
    fn self_signed_material_builds_a_server_config() {
        let (tls, ca_pem) = self_signed("keda-operator-metrics-apiserver", "keda").expect("certs");
        assert!(tls.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(!format!("{tls:?}").contains("PRIVATE KEY"));
        let leaf = CertificateDer::from_pem_slice(tls.cert_pem.as_bytes()).expect("leaf");
        assert_eq!(
            common_name(leaf.as_ref()).as_deref(),
            Some("keda-operator-metrics-apiserver.keda.svc")
        );

        let (server, policy) = server_config(&config(tls.clone(), None)).expect("no client auth");
        assert_eq!(policy, ClientAuthPolicy::Open);
        assert_eq!(
            server.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );

        let (_, policy) = server_config(&config(tls, Some(ca_pem))).expect("client auth");
        assert_eq!(
            policy,
            ClientAuthPolicy::RequestHeader {
                allowed_names: vec!["front-proxy-client".to_owned()]
            }
        );
    }

    #[test]
    fn self_signed_rejects_names_that_are_not_dns_labels() {
        for (service, namespace) in [
            ("", "keda"),
            ("svc", ""),
            ("Svc", "ns"),
            ("a.b", "ns"),
            ("é", "ns"),
        ] {
            assert!(
                matches!(
                    self_signed(service, namespace),
                    Err(MetricsApiError::InvalidName(_))
                ),
                "{service:?}/{namespace:?}"
            );
        }
    }

    #[test]
    fn bad_material_is_an_error_not_a_panic() {
        let (tls, ca_pem) = self_signed("svc", "ns").expect("certs");
        let (other, _) = self_signed("svc", "ns").expect("certs");
        let cases = [
            config(
                TlsMaterial {
                    cert_pem: String::new(),
                    key_pem: tls.key_pem.clone(),
                },
                None,
            ),
            config(
                TlsMaterial {
                    cert_pem: tls.cert_pem.clone(),
                    key_pem: String::new(),
                },
                None,
            ),
            config(
                TlsMaterial {
                    cert_pem: "garbage".to_owned(),
                    key_pem: "garbage".to_owned(),
                },
                None,
            ),
            // Key of another certificate.
            config(
                TlsMaterial {
                    cert_pem: tls.cert_pem.clone(),
                    key_pem: other.key_pem,
                },
                None,
            ),
            config(tls.clone(), Some(String::new())),
            config(
                tls.clone(),
                Some("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_owned()),
            ),
        ];
        for case in cases {
            assert!(server_config(&case).is_err(), "{case:?}");
        }
        assert!(server_config(&config(tls, Some(ca_pem))).is_ok());
    }

    #[test]
    fn request_header_configmap() {
        let data: BTreeMap<String, String> = [
            ("client-ca-file", "ignored"),
            (
                "requestheader-client-ca-file",
                "-----BEGIN CERTIFICATE-----\n...",
            ),
            (
                "requestheader-allowed-names",
                r#"["front-proxy-client","aggregator"]"#,
            ),
            ("requestheader-username-headers", r#"["X-Remote-User"]"#),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let auth = RequestHeaderAuth::from_configmap_data(&data).expect("parses");
        assert_eq!(
            auth.client_ca_pem.as_deref(),
            Some("-----BEGIN CERTIFICATE-----\n...")
        );
        assert_eq!(auth.allowed_names, vec!["front-proxy-client", "aggregator"]);

        let mut data = data;
        data.insert("requestheader-allowed-names".to_owned(), "[]".to_owned());
        data.insert("requestheader-client-ca-file".to_owned(), "  ".to_owned());
        assert_eq!(
            RequestHeaderAuth::from_configmap_data(&data).expect("parses"),
            RequestHeaderAuth::default()
        );
        data.insert(
            "requestheader-allowed-names".to_owned(),
            "front-proxy-client".to_owned(),
        );
        assert!(RequestHeaderAuth::from_configmap_data(&data).is_err());
        assert_eq!(
            RequestHeaderAuth::from_configmap_data(&BTreeMap::new()).expect("empty"),
            RequestHeaderAuth::default()
        );
    }
}
