//! RabbitMQ clients: one AMQP connection per broker identity (URI with credentials and vhost, TLS
//! material) and one HTTP client per TLS/timeout setting for the management API. KEDA opened an
//! AMQP connection per ScaledObject; here every trigger on one broker shares one connection and
//! opens a short-lived channel per poll.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lapin::options::QueueDeclareOptions;
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};

use crate::tls::TlsSettings;

/// What identifies one AMQP connection.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AmqpEndpoint {
    /// `amqp(s)://user:pass@host:port/vhost[?auth_mechanism=external]`, credentials included.
    pub uri: String,
    /// Client TLS material for `amqps`.
    pub tls: TlsSettings,
}

impl AmqpEndpoint {
    /// The URI with its password replaced, for logs and errors.
    pub fn describe(&self) -> String {
        redact_userinfo(&self.uri)
    }
}

impl fmt::Debug for AmqpEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpEndpoint")
            .field("uri", &self.describe())
            .field("tls", &self.tls)
            .finish()
    }
}

/// Replaces the password of any `user:pass@` in `text` with `password`, as KEDA does in its errors.
pub fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(scheme_end) = rest.find("://") {
        let (head, tail) = rest.split_at(scheme_end + 3);
        out.push_str(head);
        let authority_end = tail.find(['/', '?', '#', ' ']).unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                let user = userinfo.split(':').next().unwrap_or_default();
                if userinfo.contains(':') {
                    out.push_str(user);
                    out.push_str(":password");
                } else {
                    out.push_str(userinfo);
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

/// A shared AMQP connection, re-established on the next poll after the broker dropped it.
pub struct AmqpClient {
    endpoint: AmqpEndpoint,
    connection: tokio::sync::Mutex<Slot>,
}

struct Slot {
    connection: Arc<Connection>,
    // While the broker is down, polls within `RECONNECT_BACKOFF` of a failed attempt share its
    // error instead of queueing up one connect each.
    last_failure: Option<(Instant, String)>,
}

/// How long a failed reconnect answers for the polls after it.
const RECONNECT_BACKOFF: Duration = Duration::from_secs(2);

/// Bound on opening a connection (TCP, TLS and AMQP handshakes).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Name the broker shows for our connection (`rabbitmqctl list_connections client_properties`).
const CONNECTION_NAME: &str = "keda-rs";

impl AmqpClient {
    /// Connects to the broker.
    pub async fn connect(endpoint: &AmqpEndpoint) -> Result<Self, String> {
        let connection = open(endpoint).await?;
        Ok(Self {
            endpoint: endpoint.clone(),
            connection: tokio::sync::Mutex::new(Slot {
                connection: Arc::new(connection),
                last_failure: None,
            }),
        })
    }

    /// The broker, without secrets.
    pub fn description(&self) -> String {
        self.endpoint.describe()
    }

    async fn live_connection(&self) -> Result<Arc<Connection>, String> {
        let mut slot = self.connection.lock().await;
        if slot.connection.status().connected() {
            return Ok(Arc::clone(&slot.connection));
        }
        if let Some((at, error)) = &slot.last_failure
            && at.elapsed() < RECONNECT_BACKOFF
        {
            return Err(error.clone());
        }
        tracing::info!(broker = %self.description(), "reconnecting to RabbitMQ");
        match open(&self.endpoint).await {
            Ok(connection) => {
                slot.connection = Arc::new(connection);
                slot.last_failure = None;
                Ok(Arc::clone(&slot.connection))
            }
            Err(e) => {
                slot.last_failure = Some((Instant::now(), e.clone()));
                Err(e)
            }
        }
    }

    /// Ready messages of `queue`, from a passive declare (fails when the queue does not exist).
    pub async fn message_count(&self, queue: &str) -> Result<u32, String> {
        let connection = self.live_connection().await?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| format!("error opening a channel: {e}"))?;
        let declared = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        match declared {
            Ok(q) => {
                // A failed close only leaks a channel the broker reaps with the connection.
                let _ = channel.close(200, "".into()).await;
                Ok(q.message_count())
            }
            // The broker closes the channel itself on a failed passive declare.
            Err(e) => Err(format!("error inspecting queue {queue:?}: {e}")),
        }
    }
}

impl fmt::Debug for AmqpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpClient")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

async fn open(endpoint: &AmqpEndpoint) -> Result<Connection, String> {
    let runtime = lapin::runtime::default_runtime()
        .map_err(|e| format!("error starting the AMQP runtime: {e}"))?;
    let identity = endpoint
        .tls
        .client_identity()
        .map_err(|e| e.to_string())?
        .map(|id| OwnedIdentity::PKCS8 {
            pem: id.cert_pem,
            key: id.key_pem,
        });
    let cert_chain = endpoint
        .tls
        .ca_pem()
        .map_err(|e| e.to_string())?
        .map(|pem| String::from_utf8_lossy(&pem).into_owned());
    let tls = OwnedTLSConfig {
        identity,
        cert_chain,
    };
    let properties = ConnectionProperties::default().with_connection_name(CONNECTION_NAME.into());
    let connect = Connection::connect_with_config(&endpoint.uri, properties, tls, runtime);
    match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(result) => {
            result.map_err(|e| format!("error connecting to {}: {e}", endpoint.describe()))
        }
        Err(_) => Err(format!(
            "error connecting to {}: no answer within {CONNECT_TIMEOUT:?}",
            endpoint.describe()
        )),
    }
}

/// What identifies one management-API HTTP client. Credentials travel per request, so every
/// trigger with the same TLS material and timeout shares one client (and its keep-alive pool).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HttpClientKey {
    /// Client TLS material and `unsafeSsl`.
    pub tls: TlsSettings,
    /// Request timeout.
    pub timeout: Duration,
}

/// A management-API HTTP client.
#[derive(Debug)]
pub struct ManagementClient {
    http: reqwest::Client,
}

impl ManagementClient {
    /// Builds the client (no I/O).
    pub fn new(key: &HttpClientKey) -> Result<Self, String> {
        crate::tls::ensure_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .timeout(key.timeout)
            .danger_accept_invalid_certs(key.tls.unsafe_ssl);
        if let Some(ca) = key.tls.ca_pem().map_err(|e| e.to_string())? {
            for cert in reqwest::Certificate::from_pem_bundle(&ca)
                .map_err(|e| format!("invalid CA PEM: {e}"))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let Some(id) = key.tls.client_identity().map_err(|e| e.to_string())? {
            let mut pem = id.cert_pem;
            pem.push(b'\n');
            pem.extend_from_slice(&id.key_pem);
            let identity = reqwest::Identity::from_pem(&pem)
                .map_err(|e| format!("invalid client certificate: {e}"))?;
            builder = builder.identity(identity);
        }
        let http = builder
            .build()
            .map_err(|e| format!("error building the HTTP client: {e}"))?;
        Ok(Self { http })
    }

    /// GETs `url` (no userinfo) with optional basic auth or bearer token and returns the body of a
    /// 200 answer. `shown_url` is what errors print.
    pub async fn get(
        &self,
        url: &str,
        auth: &HttpAuth,
        shown_url: &str,
    ) -> Result<Vec<u8>, String> {
        let mut request = self.http.get(url);
        request = match auth {
            HttpAuth::None => request,
            HttpAuth::Basic { username, password } => request.basic_auth(username, Some(password)),
            HttpAuth::Bearer(token) => request.bearer_auth(token),
        };
        let response = request
            .send()
            .await
            .map_err(|e| format!("error requesting {shown_url}: {}", error_chain(&e)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("error reading the answer from {shown_url}: {e}"))?;
        if status != reqwest::StatusCode::OK {
            return Err(format!(
                "error requesting RabbitMQ API status: {status}, response: {}, from: {shown_url}",
                String::from_utf8_lossy(&body)
            ));
        }
        Ok(body.to_vec())
    }

    /// POSTs a form and returns the body of a 2xx answer (OAuth2 token requests).
    pub async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Result<Vec<u8>, String> {
        let mut request = self.http.post(url).form(form);
        if let Some((user, password)) = basic {
            request = request.basic_auth(user, Some(password));
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("error requesting {url}: {}", error_chain(&e)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("error reading the answer from {url}: {e}"))?;
        if !status.is_success() {
            return Err(format!(
                "token request to {url} failed: {status}, response: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        Ok(body.to_vec())
    }
}

/// Credentials of one management-API request.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum HttpAuth {
    /// No credentials.
    None,
    /// HTTP basic auth.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// `Authorization: Bearer`.
    Bearer(String),
}

impl fmt::Debug for HttpAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Basic { username, .. } => write!(f, "Basic({username})"),
            Self::Bearer(_) => f.write_str("Bearer"),
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_passwords_are_redacted() {
        assert_eq!(
            redact_userinfo("error from http://guest:secret@host:15672/api/queues"),
            "error from http://guest:password@host:15672/api/queues"
        );
        assert_eq!(
            redact_userinfo("amqp://u:p@h/v and amqps://x:y@z"),
            "amqp://u:password@h/v and amqps://x:password@z"
        );
        assert_eq!(redact_userinfo("http://host/x"), "http://host/x");
        assert_eq!(redact_userinfo("amqp://user@h"), "amqp://user@h");
        assert_eq!(redact_userinfo("no url"), "no url");
    }
}
