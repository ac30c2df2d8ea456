//! The HTTP client shared by the HTTP-shaped scalers (prometheus, metrics-api). One client per
//! identity (TLS material, `unsafeSsl`, timeout), pooled like every backend client; per-request
//! credentials (bearer, basic, API keys, custom headers) go on each request, so scalers that differ
//! only in those still share connections. Each client also owns a short-lived response cache that
//! coalesces identical GETs (the prometheus scaler's N objects × one query → one request).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::tls::{TlsSettings, ensure_crypto_provider};

/// KEDA's default for `KEDA_HTTP_DEFAULT_TIMEOUT` (milliseconds).
const DEFAULT_TIMEOUT_MS: u64 = 3000;
/// KEDA's floor for a non-positive global timeout.
const NON_POSITIVE_TIMEOUT: Duration = Duration::from_millis(300);
/// Responses larger than this are refused rather than buffered.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The global HTTP timeout: env `KEDA_HTTP_DEFAULT_TIMEOUT` in ms (default 3000; ≤ 0 → 300 ms).
pub fn global_timeout() -> Duration {
    match std::env::var("KEDA_HTTP_DEFAULT_TIMEOUT") {
        Ok(raw) => match raw.trim().parse::<i64>() {
            Ok(ms) if ms > 0 => Duration::from_millis(ms.unsigned_abs()),
            Ok(_) => NON_POSITIVE_TIMEOUT,
            Err(_) => Duration::from_millis(DEFAULT_TIMEOUT_MS),
        },
        Err(_) => Duration::from_millis(DEFAULT_TIMEOUT_MS),
    }
}

/// A scaler's `timeout` parameter overrides the global one when it is positive.
pub fn effective_timeout(scaler_timeout: Option<Duration>) -> Duration {
    scaler_timeout
        .filter(|t| !t.is_zero())
        .unwrap_or_else(global_timeout)
}

/// What makes two HTTP clients interchangeable.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct HttpIdentity {
    /// Client certificate, CA and `unsafeSsl`.
    pub tls: TlsSettings,
    /// Request timeout.
    pub timeout: Duration,
}

/// A buffered response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// One GET, fully described (the cache key is derived from it).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GetRequest {
    /// The URL, query string included.
    pub url: String,
    /// Headers in the order they are sent (credentials included; never logged).
    pub headers: Vec<(String, String)>,
    /// Basic auth `(user, password)`.
    pub basic_auth: Option<(String, Option<String>)>,
}

type Shared = Arc<tokio::sync::OnceCell<(Instant, Result<HttpResponse, String>)>>;

/// A pooled client.
pub struct HttpClient {
    client: reqwest::Client,
    description: String,
    recent: Mutex<HashMap<GetRequest, Shared>>,
}

impl HttpClient {
    /// Builds a client for `identity`. Fails on unusable TLS material.
    pub fn build(identity: &HttpIdentity) -> Result<Self, String> {
        ensure_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(identity.timeout)
            .min_tls_version(min_tls_version())
            .danger_accept_invalid_certs(identity.tls.unsafe_ssl);
        if std::env::var("KEDA_HTTP_DISABLE_KEEP_ALIVE").is_ok_and(|v| v.trim() == "true") {
            builder = builder.pool_max_idle_per_host(0);
        }
        if let Some(ca) = identity.tls.ca_pem().map_err(|e| e.to_string())? {
            for cert in reqwest::Certificate::from_pem_bundle(&ca)
                .map_err(|e| format!("invalid ca: {e}"))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let Some(id) = identity.tls.client_identity().map_err(|e| e.to_string())? {
            let mut pem = id.cert_pem.clone();
            pem.push(b'\n');
            pem.extend_from_slice(&id.key_pem);
            let identity = reqwest::Identity::from_pem(&pem)
                .map_err(|e| format!("invalid client certificate or key: {e}"))?;
            builder = builder.identity(identity);
        }
        let client = builder
            .build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))?;
        Ok(Self {
            client,
            description: format!("{:?} timeout {:?}", identity.tls, identity.timeout),
            recent: Mutex::new(HashMap::new()),
        })
    }

    /// Sends `request` now.
    pub async fn get(&self, request: &GetRequest) -> Result<HttpResponse, String> {
        let mut builder = self.client.get(&request.url);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if let Some((user, password)) = &request.basic_auth {
            builder = builder.basic_auth(user, password.as_ref());
        }
        let response = builder.send().await.map_err(|e| describe(&e))?;
        let status = response.status().as_u16();
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BODY_BYTES as u64)
        {
            return Err(format!("response body larger than {MAX_BODY_BYTES} bytes"));
        }
        let body = response.bytes().await.map_err(|e| describe(&e))?;
        if body.len() > MAX_BODY_BYTES {
            return Err(format!("response body larger than {MAX_BODY_BYTES} bytes"));
        }
        Ok(HttpResponse {
            status,
            body: body.to_vec(),
        })
    }

    /// Sends `actual()`, unless a request with the same `key` is in flight or finished successfully
    /// less than `reuse_for` ago: then its response is shared. The key leaves out what varies
    /// without changing the answer (prometheus' `time=now`).
    pub async fn get_coalesced(
        &self,
        key: &GetRequest,
        reuse_for: Duration,
        actual: impl FnOnce() -> GetRequest,
    ) -> Result<HttpResponse, String> {
        let shared = {
            let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            let fresh = |cell: &Shared| match cell.get() {
                None => true,
                Some((at, Ok(_))) => now.duration_since(*at) < reuse_for,
                Some((_, Err(_))) => false,
            };
            match recent.get(key) {
                Some(cell) if fresh(cell) => Arc::clone(cell),
                _ => {
                    recent.retain(|_, cell| fresh(cell));
                    let cell: Shared = Arc::default();
                    recent.insert(key.clone(), Arc::clone(&cell));
                    cell
                }
            }
        };
        let (_, result) = shared
            .get_or_init(|| async {
                let request = actual();
                (Instant::now(), self.get(&request).await)
            })
            .await;
        result.clone()
    }

    /// What this client is (no secrets).
    pub fn description(&self) -> &str {
        &self.description
    }
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

/// The error with its causes (reqwest's top-level text alone hides e.g. certificate problems).
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `KEDA_HTTP_MIN_TLS_VERSION` (`TLS12` default; rustls has no TLS 1.0/1.1, so those mean 1.2).
fn min_tls_version() -> reqwest::tls::Version {
    match std::env::var("KEDA_HTTP_MIN_TLS_VERSION").as_deref() {
        Ok("TLS13") => reqwest::tls::Version::TLS_1_3,
        _ => reqwest::tls::Version::TLS_1_2,
    }
}
