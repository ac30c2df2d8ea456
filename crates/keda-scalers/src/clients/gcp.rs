//! Google Cloud access for the GCP scalers: service-account credentials (the JSON key file), an
//! OAuth2 access token from the documented JWT-bearer exchange at the key's `token_uri` (cached
//! until shortly before it expires), and Cloud Monitoring's `projects.timeSeries.query` REST call.
//!
//! Endpoints: the token endpoint is the key's own `token_uri`; the Cloud Monitoring base URL is
//! `https://monitoring.googleapis.com` unless the operator's environment sets
//! `KEDA_RS_GCP_MONITORING_ENDPOINT` or the process sets it on its [`crate::Pools`] (an internal
//! override, used by tests and private endpoints).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rustls::pki_types::PrivatePkcs8KeyDer;
use rustls::pki_types::pem::PemObject;
use serde::Deserialize;

use crate::clients::rest::HttpClient;

/// Unreserved characters stay as they are (project ids contain `-`).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Environment variable overriding the Cloud Monitoring base URL.
pub const MONITORING_ENDPOINT_ENV: &str = "KEDA_RS_GCP_MONITORING_ENDPOINT";
/// The public Cloud Monitoring endpoint.
pub const MONITORING_ENDPOINT: &str = "https://monitoring.googleapis.com";
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
const SCOPE: &str = "https://www.googleapis.com/auth/monitoring.read";
const TOKEN_LIFETIME: u64 = 3600;
/// A cached token is replaced this long before it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

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
    pub fn assertion(&self, scope: &str, now: u64) -> Result<String, String> {
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
        let key = self.signing_key()?;
        let mut signature = vec![0; key.public().modulus_len()];
        key.sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            signing_input.as_bytes(),
            &mut signature,
        )
        .map_err(|_| "signing the token request failed".to_owned())?;
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

/// A Cloud Monitoring client for one service account; shared through the pool.
pub struct MonitoringClient {
    key: ServiceAccountKey,
    http: HttpClient,
    endpoint: String,
    token: tokio::sync::Mutex<Option<(String, SystemTime)>>,
}

impl fmt::Debug for MonitoringClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoringClient")
            .field("key", &self.key)
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
    /// No I/O: the token is fetched on first use.
    pub fn new(key: &ServiceAccountKey, endpoint: &str) -> Result<Self, String> {
        Ok(Self {
            key: key.clone(),
            http: HttpClient::shared()?,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            token: tokio::sync::Mutex::new(None),
        })
    }

    /// The key's project.
    pub fn project_id(&self) -> &str {
        &self.key.project_id
    }

    async fn access_token(&self) -> Result<String, String> {
        let mut cached = self.token.lock().await;
        if let Some((token, expires)) = cached.as_ref()
            && SystemTime::now() + TOKEN_MARGIN < *expires
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
        let request = Request::post(self.key.token_uri())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("invalid token_uri: {e}"))?;
        let (status, body) = self.http.send(request).await?;
        if !status.is_success() {
            return Err(format!(
                "token exchange at {} answered {status}: {}",
                self.key.token_uri(),
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(300)
                    .collect::<String>()
            ));
        }
        let token: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| format!("invalid token response: {e}"))?;
        let lifetime = if token.expires_in == 0 {
            TOKEN_LIFETIME
        } else {
            token.expires_in
        };
        let expires = SystemTime::now() + Duration::from_secs(lifetime);
        *cached = Some((token.access_token.clone(), expires));
        Ok(token.access_token)
    }

    /// Runs an MQL `query` in `project` (page size 1) and reads the first value of the first
    /// point of the first series.
    pub async fn query_first_value(
        &self,
        project: &str,
        query: &str,
    ) -> Result<SeriesValue, String> {
        let token = self.access_token().await?;
        let body = serde_json::json!({"query": query, "pageSize": 1}).to_string();
        let url = format!(
            "{}/v3/projects/{}/timeSeries:query",
            self.endpoint,
            utf8_percent_encode(project, UNRESERVED)
        );
        let request = Request::post(&url)
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("invalid monitoring endpoint {url:?}: {e}"))?;
        let (status, body) = self.http.send(request).await?;
        if status == http::StatusCode::UNAUTHORIZED {
            // A revoked or expired token: fetch a fresh one next time.
            *self.token.lock().await = None;
        }
        if !status.is_success() {
            return Err(format!(
                "Cloud Monitoring answered {status}: {}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(300)
                    .collect::<String>()
            ));
        }
        parse_query_response(&body)
    }
}

/// Reads a `timeSeries:query` response.
pub fn parse_query_response(body: &[u8]) -> Result<SeriesValue, String> {
    let response: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| format!("invalid Cloud Monitoring response: {e}"))?;
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
            .ok_or_else(|| format!("invalid doubleValue {d}"));
    }
    if let Some(i) = value.get("int64Value") {
        // int64 travels as a JSON string.
        #[allow(clippy::cast_precision_loss)]
        return i
            .as_str()
            .and_then(|s| s.parse::<i64>().ok())
            .or_else(|| i.as_i64())
            .map(|v| SeriesValue::Value(v as f64))
            .ok_or_else(|| format!("invalid int64Value {i}"));
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
