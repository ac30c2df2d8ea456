//! One connection to one broker: TCP (optionally TLS), API-version negotiation, SASL (the
//! exchanges [`super::sasl`] computes, sent here), and request/response round trips with Kafka's
//! length-prefixed framing. Requests on one connection are serialized; a broken connection is
//! dropped and re-opened by the next request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiVersionsRequest, RequestHeader, ResponseHeader, SaslAuthenticateRequest,
    SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use super::KafkaEndpoint;
use super::sasl::Authenticator;
use crate::error::{BackendError, BackendKind};

/// Upper bound on a response frame; Metadata for a few topics is tiny, this only stops garbage.
const MAX_FRAME: usize = 64 * 1024 * 1024;
/// Opening a connection (TCP, then TLS) gives up after this long.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// One request without a complete response after this long fails.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
const CLIENT_ID: &str = "keda-rs";

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// An open, authenticated connection.
struct Open {
    stream: Box<dyn Stream>,
    /// api key → (min, max) version the broker supports.
    versions: HashMap<i16, (i16, i16)>,
    correlation: i32,
}

impl Open {
    /// The highest version both sides support within `ours`.
    fn version_for<R: Request>(&self, ours: (i16, i16)) -> Result<i16, BackendError> {
        let min = ours.0.max(R::VERSIONS.min);
        let max = ours.1.min(R::VERSIONS.max);
        let Some(&(broker_min, broker_max)) = self.versions.get(&R::KEY) else {
            return Err(BackendError::protocol(format!(
                "the broker does not support API key {}",
                R::KEY
            )));
        };
        let chosen = max.min(broker_max);
        if chosen < min.max(broker_min) {
            return Err(BackendError::protocol(format!(
                "no common version for API key {}: client {min}..={max}, broker {broker_min}..={broker_max}",
                R::KEY
            )));
        }
        Ok(chosen)
    }

    /// One request/response round trip at `version`. Failures on the wire are `connect` (or
    /// `timeout`) errors: the stream is then unusable.
    async fn round_trip<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, BackendError> {
        self.correlation = self.correlation.wrapping_add(1);
        let correlation = self.correlation;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .and_then(|()| request.encode(&mut body, version))
            .map_err(|e| BackendError::protocol(format!("cannot encode request: {e}")))?;
        let len =
            u32::try_from(body.len()).map_err(|_| BackendError::protocol("request too large"))?;
        let exchange = async {
            self.stream.write_all(&len.to_be_bytes()).await?;
            self.stream.write_all(&body).await?;
            self.stream.flush().await?;
            let mut size = [0_u8; 4];
            self.stream.read_exact(&mut size).await?;
            let size = u32::from_be_bytes(size) as usize;
            if size > MAX_FRAME {
                return Err(std::io::Error::other(format!(
                    "response frame of {size} bytes"
                )));
            }
            let mut frame = vec![0_u8; size];
            self.stream.read_exact(&mut frame).await?;
            Ok(Bytes::from(frame))
        };
        let mut frame = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| BackendError::timeout(format!("no response within {REQUEST_TIMEOUT:?}")))?
            .map_err(BackendError::connect)?;
        let response_header =
            ResponseHeader::decode(&mut frame, R::Response::header_version(version)).map_err(
                |e| BackendError::protocol(format!("cannot decode response header: {e}")),
            )?;
        if response_header.correlation_id != correlation {
            return Err(BackendError::connect(format!(
                "response for correlation id {} while waiting for {correlation}",
                response_header.correlation_id
            )));
        }
        R::Response::decode(&mut frame, version)
            .map_err(|e| BackendError::protocol(format!("cannot decode response: {e}")))
    }

    /// Like [`Open::round_trip`], choosing the version from `ours`.
    async fn call<R: Request>(
        &mut self,
        request: &R,
        ours: (i16, i16),
    ) -> Result<R::Response, BackendError> {
        let version = self.version_for::<R>(ours)?;
        self.round_trip(request, version).await
    }

    /// Authenticates as `sasl` says: `SaslHandshake` (v1), then the `SaslAuthenticate` exchanges
    /// of the mechanism. A no-op without SASL.
    async fn authenticate(&mut self, sasl: &super::KafkaSasl) -> Result<(), BackendError> {
        let Some(mut authenticator) = Authenticator::new(sasl) else {
            return Ok(());
        };
        let mechanism = authenticator.mechanism();
        let handshake = self
            .call(
                &SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_static_str(mechanism)),
                (1, 1),
            )
            .await?;
        if handshake.error_code != 0 {
            let enabled: Vec<String> = handshake
                .mechanisms
                .iter()
                .map(ToString::to_string)
                .collect();
            return Err(BackendError::auth(format!(
                "the broker refused SASL mechanism {mechanism} (error code {}); it offers {enabled:?}",
                handshake.error_code
            )));
        }
        let mut message = authenticator.first_message();
        loop {
            let response = self
                .call(
                    &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(message)),
                    (0, 2),
                )
                .await?;
            if response.error_code != 0 {
                return Err(BackendError::auth(format!(
                    "SASL authentication failed: {}",
                    response
                        .error_message
                        .as_deref()
                        .unwrap_or("no message from the broker")
                )));
            }
            match authenticator.next_message(&response.auth_bytes)? {
                Some(next) => message = next,
                None => return Ok(()),
            }
        }
    }
}

/// A lazily (re)opened connection to one broker address.
pub(crate) struct BrokerConnection {
    address: String,
    endpoint: Arc<KafkaEndpoint>,
    tls: Option<Arc<rustls::ClientConfig>>,
    open: Mutex<Option<Open>>,
}

impl BrokerConnection {
    pub(crate) fn new(
        address: String,
        endpoint: Arc<KafkaEndpoint>,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Self {
        Self {
            address,
            endpoint,
            tls,
            open: Mutex::new(None),
        }
    }

    /// Sends `request` at the highest version within `versions` both sides support. A request on a
    /// reused connection that fails on the wire is retried once on a fresh connection (the broker
    /// may have restarted or closed an idle connection).
    pub(crate) async fn send<R: Request>(
        &self,
        request: &R,
        versions: (i16, i16),
    ) -> Result<R::Response, BackendError> {
        let mut guard = self.open.lock().await;
        for attempt in 0..2 {
            let reused = guard.is_some();
            let open = match guard.as_mut() {
                Some(open) => open,
                None => guard.insert(self.connect().await?),
            };
            let version = open.version_for::<R>(versions)?;
            match open.round_trip(request, version).await {
                Err(e) if matches!(e.kind, BackendKind::Connect | BackendKind::Timeout) => {
                    *guard = None;
                    if !(reused && attempt == 0) {
                        return Err(e.context(&self.address));
                    }
                    tracing::debug!(address = %self.address, error = %e, "kafka connection broken; reconnecting");
                }
                other => return other,
            }
        }
        Err(BackendError::connect(format!(
            "{}: connection lost",
            self.address
        )))
    }

    async fn connect(&self) -> Result<Open, BackendError> {
        let fail =
            |e: String| BackendError::connect(format!("cannot connect to {}: {e}", self.address));
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.address))
            .await
            .map_err(|_| fail(format!("timed out after {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| fail(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream> = match &self.tls {
            None => Box::new(tcp),
            Some(config) => {
                let host = self
                    .address
                    .rsplit_once(':')
                    .map_or(self.address.as_str(), |(h, _)| h)
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned();
                let name = rustls::pki_types::ServerName::try_from(host)
                    .map_err(|e| fail(format!("invalid TLS server name: {e}")))?;
                let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
                let tls = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp))
                    .await
                    .map_err(|_| fail("TLS handshake timed out".into()))?
                    .map_err(|e| fail(format!("TLS handshake failed: {e}")))?;
                Box::new(tls)
            }
        };
        let mut open = Open {
            stream,
            versions: HashMap::new(),
            correlation: 0,
        };
        // ApiVersions v0 is understood by every broker; it lists what the broker supports.
        let versions = open
            .round_trip(&ApiVersionsRequest::default(), 0)
            .await
            .map_err(|e| fail(format!("ApiVersions failed: {e}")))?;
        if versions.error_code != 0 {
            return Err(fail(format!(
                "ApiVersions failed with error code {}",
                versions.error_code
            )));
        }
        open.versions = versions
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        open.authenticate(&self.endpoint.sasl)
            .await
            .map_err(|e| match e.kind {
                BackendKind::Auth => e.context(&self.address),
                _ => fail(e.message),
            })?;
        tracing::debug!(address = %self.address, "kafka connection open");
        Ok(open)
    }
}
