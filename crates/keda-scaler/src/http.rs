//! The one HTTP client of every HTTP-shaped scaler and reader (prometheus, metrics-api, RabbitMQ
//! management, the cloud REST APIs, Vault). One client per identity (TLS material, `unsafeSsl`,
//! timeout, the process's HTTP settings), pooled like every backend client; per-request
//! credentials (bearer, basic, API keys, custom headers) go on each request, so scalers that differ
//! only in those still share connections. Each client also owns a short-lived response cache that
//! coalesces identical GETs (the prometheus scaler's N objects × one query → one request).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::BackendError;
use crate::pools::{Lease, PooledClient, Pools};
use crate::settings::{HttpSettings, MinTlsVersion};
use crate::tls::{TlsSettings, ensure_crypto_provider};

/// Responses larger than this are refused rather than buffered.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// What makes two HTTP clients interchangeable.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct HttpIdentity {
    /// Client certificate, CA and `unsafeSsl`.
    pub tls: TlsSettings,
    /// Request timeout.
    pub timeout: Duration,
    /// Minimum TLS version.
    pub min_tls_version: MinTlsVersion,
    /// No idle connections kept.
    pub disable_keep_alive: bool,
}

impl HttpIdentity {
    /// The identity for `tls` and a trigger's own `timeout` (if any) under the process's settings.
    pub fn new(
        tls: TlsSettings,
        trigger_timeout: Option<Duration>,
        settings: &HttpSettings,
    ) -> Self {
        Self {
            tls,
            timeout: settings.effective_timeout(trigger_timeout),
            min_tls_version: settings.min_tls_version,
            disable_keep_alive: settings.disable_keep_alive,
        }
    }
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

type Shared = Arc<tokio::sync::OnceCell<(Instant, Result<HttpResponse, BackendError>)>>;

/// A pooled client.
pub struct HttpClient {
    client: reqwest::Client,
    description: String,
    recent: Mutex<HashMap<GetRequest, Shared>>,
}

impl HttpClient {
    /// Builds a client for `identity`. Fails on unusable TLS material.
    pub fn build(identity: &HttpIdentity) -> Result<Self, BackendError> {
        ensure_crypto_provider();
        let min_tls_version = match identity.min_tls_version {
            MinTlsVersion::Tls12 => reqwest::tls::Version::TLS_1_2,
            MinTlsVersion::Tls13 => reqwest::tls::Version::TLS_1_3,
        };
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(identity.timeout)
            .min_tls_version(min_tls_version)
            .danger_accept_invalid_certs(identity.tls.unsafe_ssl);
        if identity.disable_keep_alive {
            builder = builder.pool_max_idle_per_host(0);
        }
        if let Some(ca) = identity.tls.ca_pem().map_err(BackendError::connect)? {
            for cert in reqwest::Certificate::from_pem_bundle(&ca)
                .map_err(|e| BackendError::connect(format!("invalid ca: {e}")))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let Some(id) = identity
            .tls
            .client_identity()
            .map_err(BackendError::connect)?
        {
            let mut pem = id.cert_pem.clone();
            pem.push(b'\n');
            pem.extend_from_slice(&id.key_pem);
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                BackendError::connect(format!("invalid client certificate or key: {e}"))
            })?;
            builder = builder.identity(identity);
        }
        let client = builder
            .build()
            .map_err(|e| BackendError::connect(format!("cannot build HTTP client: {e}")))?;
        Ok(Self {
            client,
            description: format!("{:?} timeout {:?}", identity.tls, identity.timeout),
            recent: Mutex::new(HashMap::new()),
        })
    }

    /// A share of the process's client for `tls` and a trigger's own `timeout` (if any), built
    /// on first use with the process's HTTP settings.
    pub async fn lease(
        pools: &Pools,
        tls: TlsSettings,
        trigger_timeout: Option<Duration>,
    ) -> Result<Lease<Self>, BackendError> {
        let identity = HttpIdentity::new(tls, trigger_timeout, &pools.settings().http);
        pools
            .lease(&identity, || async { Self::build(&identity) })
            .await
    }

    /// Sends `request` now.
    pub async fn get(&self, request: &GetRequest) -> Result<HttpResponse, BackendError> {
        let mut builder = self.client.get(&request.url);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if let Some((user, password)) = &request.basic_auth {
            builder = builder.basic_auth(user, password.as_ref());
        }
        buffered(builder).await
    }

    /// Sends `actual()`, unless a request with the same `key` is in flight or finished successfully
    /// less than `reuse_for` ago: then its response is shared. The key leaves out what varies
    /// without changing the answer (prometheus' `time=now`).
    pub async fn get_coalesced(
        &self,
        key: &GetRequest,
        reuse_for: Duration,
        actual: impl FnOnce() -> GetRequest,
    ) -> Result<HttpResponse, BackendError> {
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

impl PooledClient for HttpClient {
    type Key = HttpIdentity;
    const KIND: &'static str = "http";
}

/// Sends `builder` and buffers the answer, refusing bodies over [`MAX_BODY_BYTES`].
async fn buffered(builder: reqwest::RequestBuilder) -> Result<HttpResponse, BackendError> {
    let response = builder.send().await.map_err(|e| classify(&e))?;
    let status = response.status().as_u16();
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
    {
        return Err(too_large());
    }
    let body = response.bytes().await.map_err(|e| classify(&e))?;
    if body.len() > MAX_BODY_BYTES {
        return Err(too_large());
    }
    Ok(HttpResponse {
        status,
        body: body.to_vec(),
    })
}

fn too_large() -> BackendError {
    BackendError::protocol(format!("response body larger than {MAX_BODY_BYTES} bytes"))
}

/// The error with its causes (reqwest's top-level text alone hides e.g. certificate problems),
/// classified: timeouts, failed connects (TLS included) and the rest.
fn classify(e: &reqwest::Error) -> BackendError {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if e.is_timeout() {
        BackendError::timeout(text)
    } else if e.is_connect() {
        BackendError::connect(text)
    } else {
        BackendError::protocol(text)
    }
}

/// Maps an HTTP status that is not a success to the failure kind it means.
pub fn status_error(status: u16, message: impl fmt::Display) -> BackendError {
    match status {
        401 | 403 => BackendError::auth(message),
        404 => BackendError::not_found(message),
        _ => BackendError::protocol(message),
    }
}

// ---- Appended for the gcp-pubsub port (token exchange and `timeSeries:query` are POSTs); the
// core owner may fold this into the GET path above.

/// One POST, fully described. Never coalesced: POSTs are not assumed idempotent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostRequest {
    /// The URL, query string included.
    pub url: String,
    /// Headers in the order they are sent, `content-type` included (credentials included; never
    /// logged).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpClient {
    /// Sends `request` now.
    pub async fn post(&self, request: &PostRequest) -> Result<HttpResponse, BackendError> {
        let mut builder = self.client.post(&request.url);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        buffered(builder.body(request.body.clone())).await
    }
}
