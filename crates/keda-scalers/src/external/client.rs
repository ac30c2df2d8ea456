//! gRPC channels to external scalers (KEDA's `externalscaler.ExternalScaler` service), one pooled
//! client per scaler address and TLS settings. A tonic channel multiplexes every call over one HTTP/2
//! connection and reconnects by itself, so a thousand ScaledObjects on one external scaler share a
//! single connection.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tonic::transport::{Channel, Endpoint};

use crate::error::BackendError;
use crate::pools::PooledClient;
use crate::tls::{TlsMaterialError, TlsSettings};

/// Code generated from `proto/externalscaler.proto`.
#[allow(missing_docs, clippy::pedantic, clippy::nursery)]
pub mod proto {
    tonic::include_proto!("externalscaler");
}

use proto::external_scaler_client::ExternalScalerClient;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The identity of one external scaler connection.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ExternalEndpoint {
    /// `host:port` as given in `scalerAddress` (a `dns:///` prefix removed).
    pub address: String,
    /// `None` for plaintext.
    pub tls: Option<TlsSettings>,
}

impl fmt::Debug for ExternalEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalEndpoint")
            .field("address", &self.address)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl ExternalEndpoint {
    /// The URI tonic connects to; an error text when `address` is not `host:port`.
    pub fn uri(&self) -> Result<Uri, String> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let uri: Uri = format!("{scheme}://{}", self.address)
            .parse()
            .map_err(|e| format!("invalid scalerAddress {:?}: {e}", self.address))?;
        // The authority must be exactly host or host:port (no userinfo, no bad port).
        let well_formed = |host: &str| {
            let expected = match uri.port_u16() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_owned(),
            };
            uri.authority().is_some_and(|a| a.as_str() == expected)
        };
        match uri.host() {
            Some(host) if !host.is_empty() && uri.path() == "/" && well_formed(host) => Ok(uri),
            _ => Err(format!(
                "invalid scalerAddress {:?}: expected host:port",
                self.address
            )),
        }
    }
}

/// A shared channel to one external scaler.
#[derive(Clone)]
pub struct ExternalClient {
    channel: Channel,
}

impl fmt::Debug for ExternalClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalClient").finish_non_exhaustive()
    }
}

impl ExternalClient {
    /// A lazily connecting channel: the first call opens the connection, later calls reuse it and
    /// a broken connection is reopened on the next call (as gRPC clients do).
    pub fn connect(endpoint: &ExternalEndpoint) -> Result<Self, BackendError> {
        let uri = endpoint.uri().map_err(BackendError::connect)?;
        let builder = Endpoint::from(uri)
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        let channel = match &endpoint.tls {
            None => builder.connect_lazy(),
            Some(settings) => {
                let config = Arc::new(
                    client_config(settings).map_err(|e| BackendError::connect(e.message))?,
                );
                let connector = tower::service_fn(move |uri: Uri| {
                    let config = Arc::clone(&config);
                    async move { tls_connect(config, uri).await }
                });
                builder.connect_with_connector_lazy(connector)
            }
        };
        Ok(Self { channel })
    }

    /// A gRPC client over the shared channel (cheap: clones a handle).
    pub fn client(&self) -> ExternalScalerClient<Channel> {
        ExternalScalerClient::new(self.channel.clone())
    }
}

impl PooledClient for ExternalClient {
    type Key = ExternalEndpoint;
    const KIND: &'static str = "external";
}

/// The failure a gRPC status means, with KEDA's `<call> failed: <code>: <message>` text.
pub fn rpc_error(call: &str, status: &tonic::Status) -> BackendError {
    let message = format!("{call} failed: {:?}: {}", status.code(), status.message());
    match status.code() {
        tonic::Code::Unavailable => BackendError::connect(message),
        tonic::Code::DeadlineExceeded => BackendError::timeout(message),
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => BackendError::auth(message),
        tonic::Code::NotFound => BackendError::not_found(message),
        _ => BackendError::protocol(message),
    }
}

async fn tls_connect(
    config: Arc<rustls::ClientConfig>,
    uri: Uri,
) -> std::io::Result<TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>> {
    let host = uri
        .host()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
        .ok_or_else(|| std::io::Error::other("scalerAddress has no host"))?;
    let port = uri.port_u16().unwrap_or(443);
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from(host).map_err(std::io::Error::other)?;
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await?;
    Ok(TokioIo::new(stream))
}

/// System roots plus `caCert`; the client certificate when both halves are set; no verification
/// with `unsafeSsl`. HTTP/2 is negotiated by ALPN, as gRPC requires.
fn client_config(settings: &TlsSettings) -> Result<rustls::ClientConfig, TlsMaterialError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsMaterialError {
            parameter: "caCert",
            message: e.to_string(),
        })?;
    let builder = if settings.unsafe_ssl {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(crate::tls::AcceptAnyServerCert(provider)))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            // A broken system certificate must not make the others unusable.
            let _ = roots.add(cert);
        }
        if let Some(ca) = settings.ca_pem()? {
            for cert in CertificateDer::pem_slice_iter(&ca).flatten() {
                roots.add(cert).map_err(|e| TlsMaterialError {
                    parameter: "caCert",
                    message: format!("unusable CA certificate: {e}"),
                })?;
            }
        }
        builder.with_root_certificates(roots)
    };
    let mut config = match settings.client_identity()? {
        Some(identity) => {
            let certs = CertificateDer::pem_slice_iter(&identity.cert_pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TlsMaterialError {
                    parameter: "tlsClientCert",
                    message: e.to_string(),
                })?;
            let key =
                PrivateKeyDer::from_pem_slice(&identity.key_pem).map_err(|e| TlsMaterialError {
                    parameter: "tlsClientKey",
                    message: e.to_string(),
                })?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| TlsMaterialError {
                    parameter: "tlsClientCert",
                    message: e.to_string(),
                })?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}
