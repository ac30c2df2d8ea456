//! The AMQP side of the rabbitmq scaler: one pooled lapin connection per broker identity (URI with
//! credentials and vhost, TLS material). KEDA opened an AMQP connection per ScaledObject; here every
//! trigger on one broker shares one connection and opens a short-lived channel per read.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ErrorKind};
use tokio::time::Instant;

use super::metadata::{RabbitMqMetadata, path_segment_escape};
use crate::error::BackendError;
use crate::pools::PooledClient;
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

/// A shared AMQP connection, re-established on the next read after the broker dropped it.
pub struct AmqpClient {
    endpoint: AmqpEndpoint,
    // A reconnect happens inside a read, so it must finish well within the read timeout.
    reconnect_timeout: Duration,
    connection: tokio::sync::Mutex<Slot>,
}

struct Slot {
    connection: Arc<Connection>,
    // While the broker is down, reads within `RECONNECT_BACKOFF` of a failed attempt share its
    // error instead of queueing up one connect each.
    last_failure: Option<(Instant, BackendError)>,
}

/// How long a failed reconnect answers for the reads after it.
const RECONNECT_BACKOFF: Duration = Duration::from_secs(2);

/// Bound on opening a connection (TCP, TLS and AMQP handshakes).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Name the broker shows for our connection (`rabbitmqctl list_connections client_properties`).
const CONNECTION_NAME: &str = "keda-rs";

impl PooledClient for AmqpClient {
    type Key = AmqpEndpoint;
    const KIND: &'static str = "rabbitmq";
}

impl AmqpClient {
    /// Connects to the broker; later reconnects get half of `read_timeout` at most.
    pub async fn connect(
        endpoint: &AmqpEndpoint,
        read_timeout: Duration,
    ) -> Result<Self, BackendError> {
        let connection = open(endpoint, CONNECT_TIMEOUT).await?;
        Ok(Self {
            endpoint: endpoint.clone(),
            reconnect_timeout: CONNECT_TIMEOUT.min(read_timeout / 2),
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

    async fn live_connection(&self) -> Result<Arc<Connection>, BackendError> {
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
        match open(&self.endpoint, self.reconnect_timeout).await {
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
    pub async fn message_count(&self, queue: &str) -> Result<u32, BackendError> {
        let connection = self.live_connection().await?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| backend_error(&e).context("error opening a channel"))?;
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
            Err(e) => Err(backend_error(&e).context(format!("error inspecting queue {queue:?}"))),
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

/// Classifies a lapin error: refused credentials or vhost access, a missing queue, a broken
/// connection, the rest.
fn backend_error(e: &lapin::Error) -> BackendError {
    let message = redact_userinfo(&e.to_string());
    match e.kind() {
        ErrorKind::ProtocolError(amqp) => match amqp.kind() {
            AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED)
            | AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED) => BackendError::auth(message),
            AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND) => BackendError::not_found(message),
            AMQPErrorKind::Hard(AMQPHardError::CONNECTIONFORCED) => BackendError::connect(message),
            _ => BackendError::protocol(message),
        },
        ErrorKind::AuthProviderError(_) => BackendError::auth(message),
        ErrorKind::IOError(_)
        | ErrorKind::RuntimeShutdownError(_)
        | ErrorKind::InvalidConnectionState(_)
        | ErrorKind::MissingHeartbeatError => BackendError::connect(message),
        _ => BackendError::protocol(message),
    }
}

async fn open(endpoint: &AmqpEndpoint, timeout: Duration) -> Result<Connection, BackendError> {
    let runtime = lapin::runtime::default_runtime()
        .map_err(|e| BackendError::connect(format!("error starting the AMQP runtime: {e}")))?;
    let identity = endpoint
        .tls
        .client_identity()
        .map_err(BackendError::connect)?
        .map(|id| OwnedIdentity::PKCS8 {
            pem: id.cert_pem,
            key: id.key_pem,
        });
    let cert_chain = endpoint
        .tls
        .ca_pem()
        .map_err(BackendError::connect)?
        .map(|pem| String::from_utf8_lossy(&pem).into_owned());
    let tls = OwnedTLSConfig {
        identity,
        cert_chain,
    };
    let properties = ConnectionProperties::default().with_connection_name(CONNECTION_NAME.into());
    let connect = Connection::connect_with_config(&endpoint.uri, properties, tls, runtime);
    let context = format!("error connecting to {}", endpoint.describe());
    match tokio::time::timeout(timeout, connect).await {
        Ok(result) => result.map_err(|e| backend_error(&e).context(context)),
        Err(_) => Err(BackendError::timeout(format!(
            "{context}: no answer within {timeout:?}"
        ))),
    }
}

/// The AMQP connection identity of a parsed trigger.
pub fn amqp_endpoint(meta: &RabbitMqMetadata) -> Result<AmqpEndpoint, String> {
    let mut url = url::Url::parse(&meta.host).map_err(|e| format!("invalid host URL: {e}"))?;
    if let Some(vhost) = &meta.vhost_name {
        url.set_path(&format!("/{}", path_segment_escape(vhost)));
    } else if url.path() == "/" {
        // An empty vhost means the default one, `/`.
        url.set_path("");
    }
    if let (Some(user), Some(password)) = (&meta.username, &meta.password) {
        url.set_username(user)
            .and_then(|()| url.set_password(Some(password)))
            .map_err(|()| "cannot set credentials on the host URL".to_owned())?;
    }
    let has_password = url.password().is_some_and(|p| !p.is_empty());
    let has_identity = meta.tls.cert.is_some() && meta.tls.key.is_some();
    if meta.tls_enabled && has_identity && !has_password {
        url.query_pairs_mut()
            .append_pair("auth_mechanism", "external");
    }
    Ok(AmqpEndpoint {
        uri: url.to_string(),
        tls: if meta.tls_enabled {
            meta.tls.clone()
        } else {
            TlsSettings::default()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::super::metadata::tests::ok;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn amqp_uris() {
        let m = ok(
            &[
                ("queueName", "q"),
                ("host", "amqp://h:5672/"),
                ("vhostName", "team/a"),
            ],
            &[("username", "u"), ("password", "p w")],
        );
        let e = amqp_endpoint(&m).unwrap();
        assert_eq!(e.uri, "amqp://u:p%20w@h:5672/team%2Fa");
        assert_eq!(e.describe(), "amqp://u:password@h:5672/team%2Fa");
        let m = ok(
            &[("queueName", "q"), ("host", "amqp://guest:guest@h/")],
            &[],
        );
        assert_eq!(amqp_endpoint(&m).unwrap().uri, "amqp://guest:guest@h");
    }

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

    proptest! {
        #[test]
        fn redaction_hides_any_password(user in "[a-z]{1,8}", password in "[a-zA-Z0-9]{6,12}") {
            let text = format!("GET http://{user}:{password}@h:1/api failed");
            let shown = redact_userinfo(&text);
            prop_assert!(!shown.contains(&password));
            let wanted = format!("{user}:password@h:1");
            prop_assert!(shown.contains(&wanted));
        }
    }
}
