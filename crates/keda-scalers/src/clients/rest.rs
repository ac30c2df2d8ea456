//! The HTTPS client the cloud REST scalers (azure-servicebus, gcp-pubsub) share (KEDA keeps one transport per TLS mode): system roots,
//! HTTP/1.1 with keep-alive, and the `KEDA_HTTP_DEFAULT_TIMEOUT` deadline per request.

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A response: status and the whole body.
pub type HttpResponse = (StatusCode, Bytes);

/// The shared client.
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

/// `KEDA_HTTP_DEFAULT_TIMEOUT` in ms (default 3000); a value ≤ 0 means 300 ms, as in KEDA.
pub fn default_timeout() -> Duration {
    match std::env::var("KEDA_HTTP_DEFAULT_TIMEOUT")
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
    {
        Some(ms) if ms > 0 => Duration::from_millis(ms.unsigned_abs()),
        Some(_) => Duration::from_millis(300),
        None => Duration::from_millis(3000),
    }
}

impl HttpClient {
    /// The process-wide client.
    pub fn shared() -> Result<Self, String> {
        static SHARED: OnceLock<Result<HttpClient, String>> = OnceLock::new();
        SHARED.get_or_init(Self::build).clone()
    }

    fn build() -> Result<Self, String> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| format!("cannot load the system's root certificates: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Ok(Self {
            inner,
            timeout: default_timeout(),
        })
    }

    /// Sends `request` and reads the whole body, within the timeout.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Result<HttpResponse, String> {
        let uri = request.uri().clone();
        let call = async {
            let response = self
                .inner
                .request(request)
                .await
                .map_err(|e| format!("request to {uri} failed: {e}"))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("reading the response of {uri} failed: {e}"))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| format!("request to {uri} timed out after {:?}", self.timeout))?
    }
}
