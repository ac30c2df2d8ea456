//! The GCP family: `gcp-pubsub` ([`pubsub`]). This module holds what GCP scalers share: the
//! credentials parameters and the service-account key they name (the JSON key file), an OAuth2 access token from the documented
//! JWT-bearer exchange at the key's `token_uri` (cached per key until shortly before it expires, so
//! every scaler of one service account uses one token), and Cloud Monitoring's
//! `projects.timeSeries.query` call, all over the process's one HTTP client. The Cloud Monitoring
//! base URL is `https://monitoring.googleapis.com` unless the settings override the service
//! `gcp-monitoring` (private endpoints, tests).

pub mod pubsub;

use std::convert::Infallible;
use std::fmt;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rustls::pki_types::PrivatePkcs8KeyDer;
use rustls::pki_types::pem::PemObject;
use serde::Deserialize;
use tokio::time::Instant;

use crate::ScalerMetadata;
use crate::error::{BackendError, ConnectError};
use crate::http::{HttpClient, HttpIdentity, PostRequest, status_error};
use crate::params::MetadataParser;
use crate::pools::{KeyedPool, Lease, Pools};
use crate::tls::TlsSettings;

/// Unreserved characters stay as they are (project ids contain `-`).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The service name under which settings override the Cloud Monitoring base URL.
pub const MONITORING_SERVICE: &str = "gcp-monitoring";
/// The public Cloud Monitoring endpoint.
pub const MONITORING_ENDPOINT: &str = "https://monitoring.googleapis.com";
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
const SCOPE: &str = "https://www.googleapis.com/auth/monitoring.read";
const TOKEN_LIFETIME: u64 = 3600;
/// A cached token is replaced this long before it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// Where the service-account JSON comes from (§1.12).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialsSource {
    /// authParams `GoogleApplicationCredentials` or `credentialsFromEnv`: the JSON itself.
    Json(String),
    /// `credentialsFromEnvFile`: a path to the JSON.
    File(String),
}

impl CredentialsSource {
    /// The checked key: the JSON itself, or the file read now (a config error names the
    /// parameter).
    pub async fn key(&self) -> Result<ServiceAccountKey, ConnectError> {
        let (parameter, key) = match self {
            Self::Json(json) => (
                "GoogleApplicationCredentials",
                ServiceAccountKey::parse(json),
            ),
            Self::File(path) => (
                "credentialsFromEnvFile",
                match tokio::fs::read_to_string(path).await {
                    Ok(json) => ServiceAccountKey::parse(&json),
                    Err(e) => Err(format!("cannot read credentials file {path:?}: {e}")),
                },
            ),
        };
        key.map_err(|m| ConnectError::config(parameter, m))
    }
}

/// The `credentials` parameter, read only as `credentialsFromEnv`.
#[derive(Clone, Default, ScalerMetadata)]
pub struct CredentialsFromEnv {
    /// The key JSON from the target's env.
    #[param(name = "credentials", from = ENV)]
    pub json: Option<String>,
}

/// The credentials parameters every GCP trigger reads, in KEDA's order of preference.
#[derive(Clone, Default, ScalerMetadata)]
pub struct CredentialsParams {
    /// The key JSON from the TriggerAuthentication.
    #[param(name = "GoogleApplicationCredentials", from = AUTH_PARAMS)]
    pub application_credentials: Option<String>,
    /// `credentialsFromEnv`.
    #[param(flatten)]
    pub from_env: CredentialsFromEnv,
    /// `credentialsFromEnvFile`: the name of the env var holding the key file's path.
    #[param(name = "credentialsFromEnvFile")]
    pub from_env_file: Option<String>,
}

/// Secrets stay out of logs: only which parameters were given is printed.
impl fmt::Debug for CredentialsParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialsParams")
            .field(
                "application_credentials",
                &self.application_credentials.is_some(),
            )
            .field("from_env", &self.from_env.json.is_some())
            .field("from_env_file", &self.from_env_file)
            .finish()
    }
}

impl CredentialsParams {
    /// The first credentials given (`GoogleApplicationCredentials`, `credentialsFromEnv`, then
    /// the file named by `credentialsFromEnvFile`); given JSON must be a usable key. Problems go
    /// into `p`.
    pub fn resolve(self, p: &mut MetadataParser<'_>) -> Option<CredentialsSource> {
        let config = p.config();
        let from_env_file = self
            .from_env_file
            .and_then(|var| config.resolved_env.get(&var).cloned())
            .filter(|path| !path.trim().is_empty());
        let (parameter, source) = match (
            self.application_credentials,
            self.from_env.json,
            from_env_file,
        ) {
            (Some(json), _, _) => (
                "GoogleApplicationCredentials",
                CredentialsSource::Json(json),
            ),
            (None, Some(json), _) => ("credentialsFromEnv", CredentialsSource::Json(json)),
            (None, None, Some(path)) => (
                "credentialsFromEnvFile",
                CredentialsSource::File(path.trim().to_owned()),
            ),
            (None, None, None) => {
                p.error(
                    "GoogleApplicationCredentials",
                    "google application credentials not found",
                );
                return None;
            }
        };
        if let CredentialsSource::Json(json) = &source
            && let Err(message) = ServiceAccountKey::parse(json)
        {
            p.error(parameter, message);
        }
        Some(source)
    }
}

/// The fields of a service-account key the scalers use.
#[derive(Clone, Deserialize, PartialEq, Eq, Hash)]
pub struct ServiceAccountKey {
    /// The key's project: the default project of the resources.
    pub project_id: String,
    /// `…@….iam.gserviceaccount.com`.
    pub client_email: String,
    /// PKCS#8 PEM RSA key.
    pub private_key: String,
    /// Sent as the JWT `kid`.
    #[serde(default)]
    pub private_key_id: String,
    /// Where the JWT is exchanged for an access token.
    #[serde(default)]
    pub token_uri: String,
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("project_id", &self.project_id)
            .field("client_email", &self.client_email)
            .finish_non_exhaustive()
    }
}

impl ServiceAccountKey {
    /// Parses and checks a key file's JSON (the key must be a usable RSA key).
    pub fn parse(json: &str) -> Result<Self, String> {
        let key: Self =
            serde_json::from_str(json).map_err(|e| format!("invalid service account JSON: {e}"))?;
        if key.client_email.is_empty() || key.project_id.is_empty() {
            return Err("service account JSON needs client_email and project_id".to_owned());
        }
        key.signing_key()?;
        Ok(key)
    }

    fn signing_key(&self) -> Result<ring::signature::RsaKeyPair, String> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(self.private_key.as_bytes())
            .map_err(|e| format!("invalid private_key PEM in service account JSON: {e}"))?;
        ring::signature::RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
            .map_err(|e| format!("unusable private_key in service account JSON: {e}"))
    }

    /// A signed JWT-bearer assertion for `scope`, issued at `now` (seconds).
    pub fn assertion(&self, scope: &str, now: u64) -> Result<String, BackendError> {
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": self.private_key_id});
        let claims = serde_json::json!({
            "iss": self.client_email,
            "scope": scope,
            "aud": self.token_uri(),
            "iat": now,
            "exp": now + TOKEN_LIFETIME,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let key = self.signing_key().map_err(BackendError::auth)?;
        let mut signature = vec![0; key.public().modulus_len()];
        key.sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            signing_input.as_bytes(),
            &mut signature,
        )
        .map_err(|_| BackendError::auth("signing the token request failed"))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }

    fn token_uri(&self) -> &str {
        if self.token_uri.is_empty() {
            DEFAULT_TOKEN_URI
        } else {
            &self.token_uri
        }
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: u64,
}

/// The access token of one service account, fetched on first use and refreshed shortly before it
/// expires (or after the API refused it).
pub struct TokenSource {
    key: ServiceAccountKey,
    token: tokio::sync::Mutex<Option<(String, Instant)>>,
}

/// Token sources by key, alive while a scaler holds one. Process-wide rather than in [`Pools`]:
/// a token is credential state, not a connection, and must not count as a pooled client.
static TOKEN_SOURCES: LazyLock<KeyedPool<ServiceAccountKey, TokenSource, Infallible>> =
    LazyLock::new(KeyedPool::default);

impl TokenSource {
    /// The source every scaler of `key` shares.
    pub async fn shared(key: &ServiceAccountKey) -> Lease<Self, Infallible> {
        let source = TOKEN_SOURCES
            .get_or_connect(key, || async {
                Ok(Self {
                    key: key.clone(),
                    token: tokio::sync::Mutex::new(None),
                })
            })
            .await;
        match source {
            Ok(source) => source,
            Err(never) => match never {},
        }
    }

    /// A valid access token, exchanged at the key's `token_uri` if none is cached.
    async fn access_token(&self, http: &HttpClient) -> Result<String, BackendError> {
        let mut cached = self.token.lock().await;
        if let Some((token, expires)) = cached.as_ref()
            && Instant::now() + TOKEN_MARGIN < *expires
        {
            return Ok(token.clone());
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let assertion = self.key.assertion(SCOPE, now)?;
        let body = format!(
            "grant_type={}&assertion={}",
            utf8_percent_encode(
                "urn:ietf:params:oauth:grant-type:jwt-bearer",
                NON_ALPHANUMERIC
            ),
            assertion
        );
        let token_uri = self.key.token_uri();
        let response = http
            .post(&PostRequest {
                url: token_uri.to_owned(),
                headers: vec![(
                    "content-type".to_owned(),
                    "application/x-www-form-urlencoded".to_owned(),
                )],
                body: body.into_bytes(),
            })
            .await
            .map_err(|e| e.context(format!("request to {token_uri} failed")))?;
        if !is_success(response.status) {
            let message = format!(
                "token exchange at {token_uri} answered {}: {}",
                status_text(response.status),
                excerpt(&response.body)
            );
            // The OAuth endpoint refuses a grant with 400 (`invalid_grant`), not only 401/403.
            return Err(if (400..500).contains(&response.status) {
                BackendError::auth(message)
            } else {
                BackendError::protocol(message)
            });
        }
        let token: TokenResponse = serde_json::from_slice(&response.body)
            .map_err(|e| BackendError::protocol(format!("invalid token response: {e}")))?;
        let lifetime = if token.expires_in == 0 {
            TOKEN_LIFETIME
        } else {
            token.expires_in
        };
        let expires = Instant::now() + Duration::from_secs(lifetime);
        *cached = Some((token.access_token.clone(), expires));
        Ok(token.access_token)
    }

    async fn forget(&self) {
        *self.token.lock().await = None;
    }
}

/// Cloud Monitoring for one service account: the shared HTTP client, the account's token source
/// and the base URL.
pub struct MonitoringClient {
    http: Lease<HttpClient>,
    tokens: Lease<TokenSource, Infallible>,
    endpoint: String,
}

impl fmt::Debug for MonitoringClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoringClient")
            .field("key", &self.tokens.key)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// One point value of a time series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SeriesValue {
    /// No series at all.
    NoSeries,
    /// A series without points (KEDA reports −1).
    NoPoints,
    /// The first value of the first point.
    Value(f64),
}

impl MonitoringClient {
    /// No network I/O: the token is fetched on first use.
    pub async fn connect(key: &ServiceAccountKey, pools: &Pools) -> Result<Self, BackendError> {
        let identity = HttpIdentity::new(TlsSettings::default(), None, &pools.settings().http);
        let http = pools
            .lease(&identity, || async { HttpClient::build(&identity) })
            .await?;
        let endpoint = pools
            .settings()
            .endpoint(MONITORING_SERVICE)
            .unwrap_or(MONITORING_ENDPOINT)
            .trim_end_matches('/')
            .to_owned();
        Ok(Self {
            http,
            tokens: TokenSource::shared(key).await,
            endpoint,
        })
    }

    /// The key's project.
    pub fn project_id(&self) -> &str {
        &self.tokens.key.project_id
    }

    /// Runs an MQL `query` in `project` (page size 1) and reads the first value of the first
    /// point of the first series.
    pub async fn query_first_value(
        &self,
        project: &str,
        query: &str,
    ) -> Result<SeriesValue, BackendError> {
        let token = self.tokens.access_token(&self.http).await?;
        let url = format!(
            "{}/v3/projects/{}/timeSeries:query",
            self.endpoint,
            utf8_percent_encode(project, UNRESERVED)
        );
        let response = self
            .http
            .post(&PostRequest {
                url: url.clone(),
                headers: vec![
                    ("authorization".to_owned(), format!("Bearer {token}")),
                    ("content-type".to_owned(), "application/json".to_owned()),
                ],
                body: serde_json::json!({"query": query, "pageSize": 1})
                    .to_string()
                    .into_bytes(),
            })
            .await
            .map_err(|e| e.context(format!("request to {url} failed")))?;
        if response.status == 401 {
            // A revoked or expired token: fetch a fresh one next time.
            self.tokens.forget().await;
        }
        if !is_success(response.status) {
            return Err(status_error(
                response.status,
                format!(
                    "Cloud Monitoring answered {}: {}",
                    status_text(response.status),
                    excerpt(&response.body)
                ),
            ));
        }
        parse_query_response(&response.body)
    }
}

fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

/// `404 Not Found`: the code with its reason, as the status was printed before.
fn status_text(status: u16) -> String {
    http::StatusCode::from_u16(status).map_or_else(|_| status.to_string(), |s| s.to_string())
}

fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(300).collect()
}

/// Reads a `timeSeries:query` response.
pub fn parse_query_response(body: &[u8]) -> Result<SeriesValue, BackendError> {
    let response: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| BackendError::protocol(format!("invalid Cloud Monitoring response: {e}")))?;
    let Some(series) = response
        .get("timeSeriesData")
        .and_then(|d| d.as_array())
        .and_then(|d| d.first())
    else {
        return Ok(SeriesValue::NoSeries);
    };
    let Some(value) = series
        .get("pointData")
        .and_then(|p| p.as_array())
        .and_then(|p| p.first())
        .and_then(|p| p.get("values"))
        .and_then(|v| v.as_array())
        .and_then(|v| v.first())
    else {
        return Ok(SeriesValue::NoPoints);
    };
    if let Some(d) = value.get("doubleValue") {
        return d
            .as_f64()
            .or_else(|| d.as_str().and_then(|s| s.parse().ok()))
            .map(SeriesValue::Value)
            .ok_or_else(|| BackendError::protocol(format!("invalid doubleValue {d}")));
    }
    if let Some(i) = value.get("int64Value") {
        // int64 travels as a JSON string.
        return i
            .as_str()
            .and_then(|s| s.parse::<i64>().ok())
            .or_else(|| i.as_i64())
            .map(|v| SeriesValue::Value(crate::metrics::count_value(v)))
            .ok_or_else(|| BackendError::protocol(format!("invalid int64Value {i}")));
    }
    Ok(SeriesValue::NoPoints)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_responses() {
        assert_eq!(parse_query_response(b"{}").unwrap(), SeriesValue::NoSeries);
        assert_eq!(
            parse_query_response(br#"{"timeSeriesData":[{"labelValues":[]}]}"#).unwrap(),
            SeriesValue::NoPoints
        );
        assert_eq!(
            parse_query_response(
                br#"{"timeSeriesData":[{"pointData":[{"values":[{"int64Value":"42"}]}]}]}"#
            )
            .unwrap(),
            SeriesValue::Value(42.0)
        );
        assert_eq!(
            parse_query_response(br#"{"timeSeriesData":[{"pointData":[{"values":[{"doubleValue":2.5}]},{"values":[{"doubleValue":9}]}]}]}"#).unwrap(),
            SeriesValue::Value(2.5)
        );
        assert!(parse_query_response(b"not json").is_err());
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(ServiceAccountKey::parse("{}").is_err());
        assert!(
            ServiceAccountKey::parse(
                r#"{"project_id":"p","client_email":"a@b","private_key":"nope"}"#
            )
            .is_err()
        );
    }
}
