//! The Azure family: `azure-servicebus` ([`servicebus`]). This module holds what Azure scalers
//! share: the `connection` and `cloud` / `endpointSuffix` parameter groups, Shared Access
//! Signature auth from a connection string (`Endpoint=sb://…;SharedAccessKeyName=…;
//! SharedAccessKey=…`, as Service Bus and Event Hubs use), the endpoint suffix of each Azure cloud,
//! and the lease of the one shared HTTP client (credentials go on each request, so every namespace
//! shares its connections).

pub mod servicebus;

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::ScalerMetadata;
use crate::error::BackendError;
use crate::http::{HttpClient, HttpIdentity};
use crate::pools::{Lease, Pools};
use crate::tls::TlsSettings;

/// `url.QueryEscape`: everything but unreserved characters.
pub const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// Entity paths keep `/` (hierarchical names).
pub const PATH: &AsciiSet = &QUERY.remove(b'/');
const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// The `connection` parameter (a connection string): from auth params, then `connectionFromEnv`.
#[derive(Clone, Default, ScalerMetadata)]
pub struct ConnectionParams {
    /// The connection string, unparsed.
    #[param(name = "connection", from = AUTH_ENV)]
    pub connection: Option<String>,
}

/// The connection string holds a key: only whether one was given is printed.
impl fmt::Debug for ConnectionParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionParams")
            .field(
                "connection",
                &self.connection.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// The cloud a namespace lives in: `cloud` (a named Azure cloud or `Private`) and, for `Private`,
/// `endpointSuffix`.
#[derive(Clone, Debug, Default, ScalerMetadata)]
pub struct CloudParams {
    /// `cloud` (default: the public cloud).
    #[param(name = "cloud")]
    pub cloud: Option<String>,
    /// `endpointSuffix` (`Private` cloud only).
    #[param(name = "endpointSuffix")]
    pub endpoint_suffix: Option<String>,
}

impl CloudParams {
    /// The endpoint suffix of the service in this cloud (see [`cloud_suffix`]).
    pub fn suffix(&self, suffixes: &CloudSuffixes) -> Result<String, String> {
        cloud_suffix(
            suffixes,
            self.cloud.as_deref(),
            self.endpoint_suffix.as_deref(),
        )
    }
}

/// How requests are authorized.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum SasCredential {
    /// `SharedAccessKeyName` + `SharedAccessKey`: a SAS token is signed per request.
    SharedKey {
        /// The policy name.
        name: String,
        /// The base64 key text, used as is as the HMAC key (as Azure does).
        key: String,
    },
    /// A ready-made `SharedAccessSignature sr=…` token.
    Signature(String),
}

/// Secrets stay out of logs: only the kind and the key name are printed.
impl fmt::Debug for SasCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SharedKey { name, .. } => write!(f, "SharedKey({name})"),
            Self::Signature(_) => f.write_str("Signature"),
        }
    }
}

/// One namespace and its credential, from a connection string.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SasEndpoint {
    /// `https://<namespace host>[:port]` (`http://` for `UseDevelopmentEmulator=true`).
    pub base_url: String,
    /// How to sign.
    pub credential: SasCredential,
}

impl fmt::Debug for SasEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SasEndpoint")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl SasEndpoint {
    /// The `Authorization` header value: the given signature, or one signed now for the
    /// namespace, valid for an hour.
    pub fn authorization(&self) -> String {
        match &self.credential {
            SasCredential::Signature(sig) => sig.clone(),
            SasCredential::SharedKey { name, key } => {
                let expiry = SystemTime::now()
                    .checked_add(TOKEN_LIFETIME)
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs());
                let resource = format!("{}/", self.base_url).to_ascii_lowercase();
                sas_token(&resource, name, key, expiry)
            }
        }
    }
}

/// Parses a connection string
/// (`Endpoint=sb://<host>/;SharedAccessKeyName=…;SharedAccessKey=…`, or `SharedAccessSignature=…`).
/// `UseDevelopmentEmulator=true` selects plain HTTP, as the SDKs do for the local emulator.
pub fn parse_connection_string(connection: &str) -> Result<SasEndpoint, String> {
    let mut endpoint = None;
    let mut key_name = None;
    let mut key = None;
    let mut signature = None;
    let mut emulator = false;
    for part in connection
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let Some((name, value)) = part.split_once('=') else {
            return Err("connection string: every part must be Key=Value".to_owned());
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "endpoint" => endpoint = Some(value.trim().to_owned()),
            "sharedaccesskeyname" => key_name = Some(value.trim().to_owned()),
            "sharedaccesskey" => key = Some(value.trim().to_owned()),
            "sharedaccesssignature" => signature = Some(value.trim().to_owned()),
            "usedevelopmentemulator" => emulator = value.trim().eq_ignore_ascii_case("true"),
            _ => {}
        }
    }
    let endpoint = endpoint.ok_or("connection string has no Endpoint")?;
    let host = endpoint
        .split_once("://")
        .map_or(endpoint.as_str(), |(_, rest)| rest)
        .trim_end_matches('/');
    if host.is_empty() || host.contains('/') {
        return Err(format!(
            "connection string Endpoint {endpoint:?} is not sb://<host>/"
        ));
    }
    let scheme = if emulator { "http" } else { "https" };
    let credential = match (key_name, key, signature) {
        (_, _, Some(sig)) => SasCredential::Signature(sig),
        (Some(name), Some(key), None) => SasCredential::SharedKey { name, key },
        _ => {
            return Err(
                "connection string needs SharedAccessKeyName and SharedAccessKey, or SharedAccessSignature"
                    .to_owned(),
            );
        }
    };
    Ok(SasEndpoint {
        base_url: format!("{scheme}://{host}"),
        credential,
    })
}

/// A SAS token for `resource` valid until `expiry` (seconds since the epoch).
pub fn sas_token(resource: &str, key_name: &str, key: &str, expiry: u64) -> String {
    let encoded = utf8_percent_encode(resource, QUERY).to_string();
    let hmac_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
    let signature = ring::hmac::sign(&hmac_key, format!("{encoded}\n{expiry}").as_bytes());
    let signature = STANDARD.encode(signature.as_ref());
    format!(
        "SharedAccessSignature sr={encoded}&sig={}&se={expiry}&skn={}",
        utf8_percent_encode(&signature, QUERY),
        utf8_percent_encode(key_name, QUERY)
    )
}

/// A service's endpoint suffix in each named Azure cloud.
#[derive(Clone, Copy, Debug)]
pub struct CloudSuffixes {
    /// `AzurePublicCloud` (also the default).
    pub public: &'static str,
    /// `AzureUSGovernmentCloud`.
    pub us_government: &'static str,
    /// `AzureChinaCloud`.
    pub china: &'static str,
}

/// The endpoint suffix for `cloud` (§1.13): empty → public; `Private` takes `endpointSuffix`.
pub fn cloud_suffix(
    suffixes: &CloudSuffixes,
    cloud: Option<&str>,
    endpoint_suffix: Option<&str>,
) -> Result<String, String> {
    match cloud.map(str::to_ascii_lowercase).as_deref() {
        None | Some("azurepubliccloud") => Ok(suffixes.public.to_owned()),
        Some("azureusgovernmentcloud") => Ok(suffixes.us_government.to_owned()),
        Some("azurechinacloud") => Ok(suffixes.china.to_owned()),
        Some("private") => endpoint_suffix
            .map(str::to_owned)
            .ok_or_else(|| "endpointSuffix must be provided for Private cloud type".to_owned()),
        Some(_) => Err(format!(
            "invalid cloud environment {}",
            cloud.unwrap_or_default()
        )),
    }
}

/// A share of the process's HTTP client with default TLS (system roots).
pub async fn http_client(pools: &Pools) -> Result<Lease<HttpClient>, BackendError> {
    let identity = HttpIdentity::new(TlsSettings::default(), None, &pools.settings().http);
    pools
        .lease(&identity, || async { HttpClient::build(&identity) })
        .await
}

/// `404 Not Found`: the code with its reason, as Go prints a status.
pub fn status_text(status: u16) -> String {
    http::StatusCode::from_u16(status).map_or_else(|_| status.to_string(), |s| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings() {
        let e = parse_connection_string(
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey=abc=",
        )
        .unwrap();
        assert_eq!(e.base_url, "https://ns.servicebus.windows.net");
        assert_eq!(
            e.credential,
            SasCredential::SharedKey {
                name: "Root".into(),
                key: "abc=".into()
            }
        );
        let e = parse_connection_string(
            "Endpoint=sb://127.0.0.1:5300;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true;",
        )
        .unwrap();
        assert_eq!(e.base_url, "http://127.0.0.1:5300");
        assert!(parse_connection_string("SharedAccessKeyName=k;SharedAccessKey=v").is_err());
        assert!(parse_connection_string("Endpoint=sb://ns/;SharedAccessKeyName=k").is_err());
        assert!(parse_connection_string("garbage").is_err());
    }

    #[test]
    fn sas_token_shape() {
        let t = sas_token(
            "https://ns.servicebus.windows.net/",
            "Root",
            "key",
            1_700_000_000,
        );
        assert!(t.starts_with(
            "SharedAccessSignature sr=https%3A%2F%2Fns.servicebus.windows.net%2F&sig="
        ));
        assert!(t.ends_with("&se=1700000000&skn=Root"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn connection_string_parsing_never_panics(s in "(([A-Za-z]{0,24}=[ -~]{0,30});?){0,5}") {
                if let Ok(e) = parse_connection_string(&s) {
                    prop_assert!(e.base_url.starts_with("http"));
                }
            }
        }
    }
}
