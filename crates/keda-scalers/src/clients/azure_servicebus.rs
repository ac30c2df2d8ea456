//! Azure Service Bus management REST API (the Atom feed the SDKs' admin clients use): runtime
//! properties of a queue or a topic subscription, and entity listings for `useRegex`. Requests are
//! signed with a Shared Access Signature from the connection string.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use quick_xml::events::Event;

use crate::clients::rest::HttpClient;

/// `url.QueryEscape`: everything but unreserved characters.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// Entity paths keep `/` (hierarchical names).
const PATH: &AsciiSet = &QUERY.remove(b'/');
const API_VERSION: &str = "2021-05";
const PAGE: usize = 100;
const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// How requests are authorized.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum ServiceBusCredential {
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
impl fmt::Debug for ServiceBusCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SharedKey { name, .. } => write!(f, "SharedKey({name})"),
            Self::Signature(_) => f.write_str("Signature"),
        }
    }
}

/// One namespace and credential: the pooled client's identity.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ServiceBusEndpoint {
    /// `https://<namespace host>[:port]` (`http://` for `UseDevelopmentEmulator=true`).
    pub base_url: String,
    /// How to sign.
    pub credential: ServiceBusCredential,
}

impl fmt::Debug for ServiceBusEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceBusEndpoint")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// Parses a Service Bus connection string
/// (`Endpoint=sb://<host>/;SharedAccessKeyName=…;SharedAccessKey=…`, or `SharedAccessSignature=…`).
/// `UseDevelopmentEmulator=true` selects plain HTTP, as the SDKs do for the local emulator.
pub fn parse_connection_string(connection: &str) -> Result<ServiceBusEndpoint, String> {
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
        (_, _, Some(sig)) => ServiceBusCredential::Signature(sig),
        (Some(name), Some(key), None) => ServiceBusCredential::SharedKey { name, key },
        _ => {
            return Err(
                "connection string needs SharedAccessKeyName and SharedAccessKey, or SharedAccessSignature"
                    .to_owned(),
            );
        }
    };
    Ok(ServiceBusEndpoint {
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

/// A client for one namespace.
#[derive(Debug)]
pub struct ServiceBusClient {
    endpoint: ServiceBusEndpoint,
    http: HttpClient,
}

impl ServiceBusClient {
    /// No I/O: the HTTP client connects on first use.
    pub fn new(endpoint: &ServiceBusEndpoint) -> Result<Self, String> {
        Ok(Self {
            endpoint: endpoint.clone(),
            http: HttpClient::shared()?,
        })
    }

    fn authorization(&self) -> String {
        match &self.endpoint.credential {
            ServiceBusCredential::Signature(sig) => sig.clone(),
            ServiceBusCredential::SharedKey { name, key } => {
                let expiry = SystemTime::now()
                    .checked_add(TOKEN_LIFETIME)
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs());
                let resource = format!("{}/", self.endpoint.base_url).to_ascii_lowercase();
                sas_token(&resource, name, key, expiry)
            }
        }
    }

    async fn get(&self, path_and_query: &str) -> Result<Option<Vec<EntityCount>>, String> {
        let request = Request::get(format!("{}/{path_and_query}", self.endpoint.base_url))
            .header(http::header::AUTHORIZATION, self.authorization())
            .header(http::header::ACCEPT, "application/xml")
            .body(Full::new(Bytes::new()))
            .map_err(|e| format!("invalid request: {e}"))?;
        let (status, body) = self.http.send(request).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(format!(
                "Service Bus answered {status}: {}",
                text.chars().take(300).collect::<String>()
            ));
        }
        parse_entities(&body).map(Some)
    }

    /// `ActiveMessageCount` of queue `name`; `None` when it does not exist.
    pub async fn queue_active_count(&self, name: &str) -> Result<Option<i64>, String> {
        let path = format!(
            "{}?api-version={API_VERSION}",
            utf8_percent_encode(name, PATH)
        );
        Ok(self
            .get(&path)
            .await?
            .and_then(|e| e.first().map(|e| e.active)))
    }

    /// `ActiveMessageCount` of subscription `subscription` of `topic`; `None` when absent.
    pub async fn subscription_active_count(
        &self,
        topic: &str,
        subscription: &str,
    ) -> Result<Option<i64>, String> {
        let path = format!(
            "{}/Subscriptions/{}?api-version={API_VERSION}",
            utf8_percent_encode(topic, PATH),
            utf8_percent_encode(subscription, QUERY)
        );
        Ok(self
            .get(&path)
            .await?
            .and_then(|e| e.first().map(|e| e.active)))
    }

    /// Every queue with its active count (paged).
    pub async fn list_queues(&self) -> Result<Vec<EntityCount>, String> {
        self.list("$Resources/Queues").await
    }

    /// Every subscription of `topic` with its active count (paged).
    pub async fn list_subscriptions(&self, topic: &str) -> Result<Vec<EntityCount>, String> {
        self.list(&format!(
            "{}/Subscriptions",
            utf8_percent_encode(topic, PATH)
        ))
        .await
    }

    async fn list(&self, path: &str) -> Result<Vec<EntityCount>, String> {
        let mut all = Vec::new();
        loop {
            let page = self
                .get(&format!(
                    "{path}?api-version={API_VERSION}&$skip={}&$top={PAGE}",
                    all.len()
                ))
                .await?
                .unwrap_or_default();
            let n = page.len();
            all.extend(page);
            if n < PAGE {
                return Ok(all);
            }
        }
    }
}

/// One entity of an Atom answer: its `title` and `CountDetails/ActiveMessageCount`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntityCount {
    /// The entity name.
    pub name: String,
    /// Active messages.
    pub active: i64,
}

/// Reads every `<entry>` of an Atom entry or feed; element names are matched without their
/// namespace prefix (the service uses several).
pub fn parse_entities(xml: &[u8]) -> Result<Vec<EntityCount>, String> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut entries = Vec::new();
    let mut current: Option<(String, i64)> = None;
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => {
                let name = e.local_name().as_ref().to_vec();
                if name == b"entry" {
                    current = Some((String::new(), 0));
                }
                path.push(name);
            }
            Ok(Event::End(_)) => {
                if path.pop().as_deref() == Some(b"entry".as_slice())
                    && let Some((name, active)) = current.take()
                {
                    entries.push(EntityCount { name, active });
                }
            }
            Ok(Event::Text(t)) => {
                let text = t
                    .decode()
                    .map_err(|e| format!("invalid Service Bus XML: {e}"))?
                    .trim()
                    .to_owned();
                let Some((name, active)) = current.as_mut() else {
                    continue;
                };
                match path.last().map(Vec::as_slice) {
                    Some(b"title") if path.len() >= 2 && path[path.len() - 2] == b"entry" => {
                        *name = text;
                    }
                    Some(b"ActiveMessageCount")
                        if path.iter().any(|p| p.as_slice() == b"CountDetails") =>
                    {
                        *active = text
                            .parse()
                            .map_err(|e| format!("invalid ActiveMessageCount {text:?}: {e}"))?;
                    }
                    _ => {}
                }
            }
            Ok(Event::Eof) => return Ok(entries),
            Ok(_) => {}
            Err(e) => return Err(format!("invalid Service Bus XML: {e}")),
        }
        buf.clear();
    }
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
            ServiceBusCredential::SharedKey {
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

    #[test]
    fn parses_entry_and_feed() {
        let entry = br#"<entry xmlns="http://www.w3.org/2005/Atom"><title type="text">q1</title><content type="application/xml"><QueueDescription xmlns="http://schemas.microsoft.com/netservices/2010/10/servicebus/connect"><MessageCount>9</MessageCount><CountDetails xmlns:d2p1="http://schemas.microsoft.com/netservices/2011/06/servicebus"><d2p1:ActiveMessageCount>7</d2p1:ActiveMessageCount><d2p1:DeadLetterMessageCount>2</d2p1:DeadLetterMessageCount></CountDetails></QueueDescription></content></entry>"#;
        assert_eq!(
            parse_entities(entry).unwrap(),
            vec![EntityCount {
                name: "q1".into(),
                active: 7
            }]
        );
        let empty = br#"<feed xmlns="http://www.w3.org/2005/Atom"><title type="text">Queues</title></feed>"#;
        assert!(parse_entities(empty).unwrap().is_empty());
        assert!(parse_entities(b"<entry><title>q</title><CountDetails><ActiveMessageCount>x</ActiveMessageCount></CountDetails></entry>").is_err());
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

            #[test]
            fn entity_xml_parsing_never_panics(s in ".{0,200}") {
                let _ = parse_entities(s.as_bytes());
            }
        }
    }
}
