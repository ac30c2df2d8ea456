//! Parsing of a `rabbitmq` trigger: the broker (`host`, `protocol`, vhost, credentials, TLS), what
//! is measured (`mode`, `value`, regex matches and their `operation`) and KEDA's validation rules
//! and messages, without I/O.

use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::amqp::redact_userinfo;
use crate::ScalerMetadata;
use crate::config::{MetricTargetKind, ScalerConfig};
use crate::error::ScalerError;
use crate::params::{FromParams, MetadataParser, ParamInfo};
use crate::tls::TlsSettings;

/// KEDA's default when neither `mode`, `value` nor `queueLength` is given.
const DEFAULT_QUEUE_LENGTH: f64 = 20.0;

/// How the broker is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// AMQP 0-9-1: passive queue declare.
    Amqp,
    /// The management plugin's HTTP API.
    Http,
}

/// `mode`: what the metric is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Messages in the queue.
    QueueLength,
    /// Publish rate (msg/s).
    MessageRate,
    /// Deliver + get rate (msg/s).
    DeliverGetRate,
    /// Publish rate over deliver rate.
    PublishedToDeliveredRatio,
    /// Seconds to drain the queue at the current rates.
    ExpectedQueueConsumptionTime,
}

const MODES: &[(&str, Mode)] = &[
    ("QueueLength", Mode::QueueLength),
    ("MessageRate", Mode::MessageRate),
    ("DeliverGetRate", Mode::DeliverGetRate),
    ("PublishedToDeliveredRatio", Mode::PublishedToDeliveredRatio),
    (
        "ExpectedQueueConsumptionTime",
        Mode::ExpectedQueueConsumptionTime,
    ),
];

impl Mode {
    pub(super) fn name(self) -> &'static str {
        MODES
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("QueueLength", |(n, _)| n)
    }
}

/// `operation`: how regex matches are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Field-wise sum.
    Sum,
    /// Field-wise average (integer division for counts).
    Avg,
    /// Field-wise maximum.
    Max,
}

/// OAuth2 client-credentials settings (`oauthTokenURI`, `clientID`, `clientSecret`, `scopes`,
/// `endpointParams`).
#[derive(Clone, PartialEq)]
pub struct OAuthSettings {
    /// Token endpoint.
    pub token_uri: String,
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
    /// Requested scopes (blank ones dropped).
    pub scopes: Vec<String>,
    /// Extra form parameters of the token request.
    pub endpoint_params: Vec<(String, String)>,
}

impl std::fmt::Debug for OAuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthSettings")
            .field("token_uri", &self.token_uri)
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// Parsed `rabbitmq` trigger.
#[derive(Clone, PartialEq)]
pub struct RabbitMqMetadata {
    /// `queueName` (a regex with `useRegex`).
    pub queue_name: String,
    /// `host`, with credentials as given.
    pub host: String,
    /// Resolved from `protocol` (auto → from the host's scheme).
    pub protocol: Protocol,
    /// Resolved mode.
    pub mode: Mode,
    /// Target value.
    pub value: f64,
    /// `activationValue`.
    pub activation_value: f64,
    /// `vhostName`, replacing the host's vhost.
    pub vhost_name: Option<String>,
    /// `useRegex`.
    pub use_regex: bool,
    /// `excludeUnacknowledged`.
    pub exclude_unacknowledged: bool,
    /// `pageSize`.
    pub page_size: i64,
    /// `operation`.
    pub operation: Operation,
    /// `timeout`, HTTP only.
    pub timeout: Option<Duration>,
    /// `username`, replacing the host's.
    pub username: Option<String>,
    /// `password`, replacing the host's.
    pub password: Option<String>,
    /// `tls=enable`.
    pub tls_enabled: bool,
    /// `ca`, `cert`, `key`, `keyPassword`, `unsafeSsl`.
    pub tls: TlsSettings,
    /// OAuth2 client credentials, HTTP only.
    pub oauth: Option<OAuthSettings>,
    /// `workloadIdentityResource`, HTTP only.
    pub workload_identity_resource: Option<String>,
    /// From `metricType`.
    pub metric_type: MetricTargetKind,
}

impl std::fmt::Debug for RabbitMqMetadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitMqMetadata")
            .field("queue_name", &self.queue_name)
            .field("host", &redact_userinfo(&self.host))
            .field("protocol", &self.protocol)
            .field("mode", &self.mode)
            .field("value", &self.value)
            .field("activation_value", &self.activation_value)
            .field("vhost_name", &self.vhost_name)
            .field("use_regex", &self.use_regex)
            .field("exclude_unacknowledged", &self.exclude_unacknowledged)
            .field("operation", &self.operation)
            .finish_non_exhaustive()
    }
}

/// Go's `url.QueryEscape`: unreserved characters kept, space as `+`, the rest `%XX`.
pub fn query_escape(text: &str) -> String {
    const QUERY: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    utf8_percent_encode(text, QUERY)
        .to_string()
        .replace("%20", "+")
}

/// Escapes one path segment: like [`query_escape`] but a space is `%20` (KEDA's `+` would name a
/// different queue in a path).
pub(super) fn path_segment_escape(text: &str) -> String {
    query_escape(text).replace('+', "%20")
}

/// The scheme of `host`, as Go's `url.Parse` would find it.
fn host_scheme(host: &str) -> Result<String, String> {
    let Some((scheme, _)) = host.split_once(':') else {
        return Ok(String::new());
    };
    let valid = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if valid {
        Ok(scheme.to_ascii_lowercase())
    } else if scheme.chars().any(|c| c == '/' || c == '?' || c == '#') {
        // A colon later in the path: no scheme at all.
        Ok(String::new())
    } else {
        Err(format!(
            "first path segment in URL cannot contain colon: {scheme:?}"
        ))
    }
}

/// The trigger's parameters before the credentials, in the order they are read.
#[derive(ScalerMetadata)]
struct TriggerParams {
    #[param(name = "queueName")]
    queue_name: String,
    #[param(name = "host", from = METADATA_AUTH_ENV)]
    host: String,
    #[param(name = "protocol", from = METADATA_AUTH, default = "auto")]
    protocol: String,
    #[param(name = "mode")]
    mode: Option<String>,
    #[param(name = "value")]
    value: Option<f64>,
    #[param(name = "queueLength")]
    queue_length: Option<f64>,
    #[param(name = "activationValue")]
    activation_value: Option<f64>,
    #[param(name = "vhostName", from = METADATA_AUTH)]
    vhost_name: Option<String>,
    #[param(name = "useRegex")]
    use_regex: Option<bool>,
    #[param(name = "excludeUnacknowledged")]
    exclude_unacknowledged: Option<bool>,
    #[param(name = "pageSize", default = 100)]
    page_size: i64,
    #[param(name = "operation", default = "sum")]
    operation: String,
    #[param(name = "timeout")]
    timeout: Option<Duration>,
}

/// `username`/`password`: from auth params, then `FromEnv`; read between the two other groups.
#[derive(ScalerMetadata)]
struct CredentialParams {
    #[param(name = "username", from = AUTH_ENV)]
    username: Option<String>,
    #[param(name = "password", from = AUTH_ENV)]
    password: Option<String>,
}

/// TLS, workload identity and OAuth2 parameters, read after the credentials.
#[derive(ScalerMetadata)]
struct SecurityParams {
    #[param(name = "tls", from = AUTH_PARAMS, default = "disable")]
    tls: String,
    #[param(name = "ca", from = AUTH_PARAMS)]
    ca: Option<String>,
    #[param(name = "cert", from = AUTH_PARAMS)]
    cert: Option<String>,
    #[param(name = "key", from = AUTH_PARAMS)]
    key: Option<String>,
    #[param(name = "keyPassword", from = AUTH_PARAMS)]
    key_password: Option<String>,
    #[param(name = "unsafeSsl")]
    unsafe_ssl: Option<bool>,
    #[param(name = "workloadIdentityResource", from = AUTH_PARAMS)]
    workload_identity_resource: Option<String>,
    #[param(name = "oauthTokenURI", from = AUTH_PARAMS)]
    token_uri: Option<String>,
    #[param(name = "clientID", from = AUTH_PARAMS)]
    client_id: Option<String>,
    #[param(name = "clientSecret", from = AUTH_PARAMS)]
    client_secret: Option<String>,
    #[param(name = "scopes", alias = "scope", from = AUTH_PARAMS)]
    scopes: Option<Vec<String>>,
    #[param(name = "endpointParams", from = AUTH_PARAMS)]
    endpoint_params: Option<String>,
}

/// The `rabbitmq` parameter table, in the order [`parse`] reads it.
pub fn params() -> Vec<ParamInfo> {
    let mut params = TriggerParams::params();
    params.extend(CredentialParams::params());
    params.extend(SecurityParams::params());
    params
}

/// Parses a `rabbitmq` trigger without I/O.
#[allow(clippy::too_many_lines)]
pub fn parse(config: &ScalerConfig) -> Result<RabbitMqMetadata, ScalerError> {
    let metric_type = config.external_metric_type()?;
    let mut p = MetadataParser::new(config);
    let TriggerParams {
        queue_name,
        host,
        protocol: protocol_raw,
        mode: mode_raw,
        value,
        queue_length,
        activation_value,
        vhost_name,
        use_regex,
        exclude_unacknowledged,
        page_size,
        operation: operation_raw,
        timeout,
    } = TriggerParams::from_params(&mut p);
    let activation_value = activation_value.unwrap_or(0.0);
    let use_regex = use_regex.unwrap_or(false);
    let exclude_unacknowledged = exclude_unacknowledged.unwrap_or(false);
    let CredentialParams { username, password } = CredentialParams::from_params(&mut p);
    let SecurityParams {
        tls: tls_raw,
        ca,
        cert,
        key,
        key_password,
        unsafe_ssl,
        workload_identity_resource,
        token_uri,
        client_id,
        client_secret,
        scopes,
        endpoint_params,
    } = SecurityParams::from_params(&mut p);
    let unsafe_ssl = unsafe_ssl.unwrap_or(false);

    let protocol = match protocol_raw.as_str() {
        "amqp" => Some(Protocol::Amqp),
        "http" => Some(Protocol::Http),
        "auto" => {
            if host.is_empty() {
                None
            } else {
                match host_scheme(&host) {
                    Ok(s) if s == "amqp" || s == "amqps" => Some(Protocol::Amqp),
                    Ok(s) if s == "http" || s == "https" => Some(Protocol::Http),
                    Ok(s) => {
                        p.error("host", format!("unknown host URL scheme: `{s}`"));
                        None
                    }
                    Err(e) => {
                        p.error("host", format!("can't parse host to find protocol: {e}"));
                        None
                    }
                }
            }
        }
        other => {
            p.error(
                "protocol",
                format!("the protocol has to be either `amqp`, `http`, or `auto` but is `{other}`"),
            );
            None
        }
    };

    let tls_enabled = match tls_raw.as_str() {
        "enable" => true,
        "disable" => false,
        other => {
            p.error("tls", format!("incorrect value for TLS given: {other}"));
            false
        }
    };
    if tls_enabled && cert.is_some() != key.is_some() {
        p.error(
            if cert.is_some() { "key" } else { "cert" },
            "both key and certificate must be provided",
        );
    }
    let tls = TlsSettings {
        cert,
        key,
        key_password,
        ca,
        unsafe_ssl,
    };
    if tls_enabled && let Err(e) = tls.validate() {
        p.error(e.parameter, e.message);
    }
    if page_size < 1 {
        p.error("pageSize", "pageSize should be 1 or greater");
    }
    if username.is_some() != password.is_some() {
        p.error(
            if username.is_some() {
                "password"
            } else {
                "username"
            },
            "username and password must be given together",
        );
    }
    if protocol == Some(Protocol::Amqp) && workload_identity_resource.is_some() {
        p.error(
            "workloadIdentityResource",
            "workload identity is not supported for the AMQP protocol at the moment",
        );
    }

    let oauth_given = token_uri.is_some() || client_id.is_some() || client_secret.is_some();
    let mut oauth = None;
    if oauth_given {
        const OAUTH_INCOMPLETE: &str = "OAuth2 requires tokenUrl clientId and clientSecret to be configured in TriggerAuthentication";
        if protocol == Some(Protocol::Amqp) {
            p.error(
                "oauthTokenURI",
                "OAuth2 is not supported for the AMQP protocol",
            );
        } else if username.is_some() && password.is_some() {
            p.error(
                "oauthTokenURI",
                "OAuth2 cannot be combined with username and password",
            );
        } else if workload_identity_resource.is_some() {
            p.error(
                "oauthTokenURI",
                "OAuth2 cannot be combined with workload identity",
            );
        }
        match (token_uri, client_id, client_secret) {
            (Some(token_uri), Some(client_id), Some(client_secret)) => {
                let endpoint_params = match endpoint_params {
                    Some(raw) => url::form_urlencoded::parse(raw.as_bytes())
                        .map(|(k, v)| (k.into_owned(), v.into_owned()))
                        .collect(),
                    None => Vec::new(),
                };
                oauth = Some(OAuthSettings {
                    token_uri,
                    client_id,
                    client_secret,
                    scopes: scopes
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|s| !s.trim().is_empty())
                        .collect(),
                    endpoint_params,
                });
            }
            (None, _, _) => p.error("oauthTokenURI", OAUTH_INCOMPLETE),
            (_, None, _) => p.error("clientID", OAUTH_INCOMPLETE),
            (_, _, None) => p.error("clientSecret", OAUTH_INCOMPLETE),
        }
    }

    if protocol == Some(Protocol::Amqp) {
        if use_regex {
            p.error(
                "useRegex",
                "configure useRegex=true only with HTTP protocol",
            );
        }
        if exclude_unacknowledged {
            p.error(
                "excludeUnacknowledged",
                "configure excludeUnacknowledged=true only with HTTP protocol",
            );
        }
        if let Some(t) = timeout {
            p.error(
                "timeout",
                format!("AMQP protocol doesn't support custom timeouts: {t:?}"),
            );
        }
    }

    // `value` of 0 counts as not given, as in KEDA.
    let value = value.filter(|v| *v != 0.0);
    let (mode, target) = match (queue_length, mode_raw.as_deref(), value) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            p.error(
                "queueLength",
                "queueLength is deprecated; use mode and value",
            );
            (Mode::QueueLength, DEFAULT_QUEUE_LENGTH)
        }
        (Some(length), None, None) => (Mode::QueueLength, length),
        (None, None, None) => (Mode::QueueLength, DEFAULT_QUEUE_LENGTH),
        (None, None, Some(v)) => {
            p.error("mode", "mode must be specified");
            (Mode::QueueLength, v)
        }
        (None, Some(m), value) => {
            let mode = MODES
                .iter()
                .find(|(name, _)| *name == m)
                .map(|(_, mode)| *mode);
            let mode = mode.unwrap_or_else(|| {
                let names: Vec<&str> = MODES.iter().map(|(n, _)| *n).collect();
                p.error(
                    "mode",
                    format!("trigger mode {m} must be one of {}", names.join(", ")),
                );
                Mode::QueueLength
            });
            let v = value.unwrap_or_else(|| {
                if !config.as_metric_source {
                    p.error("value", "value must be specified");
                }
                DEFAULT_QUEUE_LENGTH
            });
            (mode, v)
        }
    };
    if mode != Mode::QueueLength && protocol == Some(Protocol::Amqp) {
        p.error(
            "mode",
            format!(
                "protocol amqp not supported; must be HTTP to use trigger mode {}",
                mode.name()
            ),
        );
    }
    let operation = match operation_raw.as_str() {
        "sum" => Operation::Sum,
        "avg" => Operation::Avg,
        "max" => Operation::Max,
        other => {
            // Only matters when matches are aggregated.
            if use_regex {
                p.error(
                    "operation",
                    format!("operation {other} must be one of sum, avg, max"),
                );
            }
            Operation::Sum
        }
    };

    p.finish()?;
    Ok(RabbitMqMetadata {
        queue_name,
        host,
        protocol: protocol.unwrap_or(Protocol::Amqp),
        mode,
        value: target,
        activation_value,
        vhost_name,
        use_regex,
        exclude_unacknowledged,
        page_size,
        operation,
        timeout,
        username,
        password,
        tls_enabled,
        tls,
        oauth,
        workload_identity_resource,
        metric_type,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::amqp::amqp_endpoint;
    use super::super::management::management_request;
    use super::*;
    use proptest::prelude::*;

    const HTTP: &str = "http://guest:guest@localhost:15672/";
    const AMQP: &str = "amqp://guest:guest@localhost:5672/";

    fn cfg(metadata: &[(&str, &str)], auth: &[(&str, &str)]) -> ScalerConfig {
        ScalerConfig::new("rabbitmq", 0)
            .with_metadata(metadata.iter().copied())
            .with_auth_params(auth.iter().copied())
            .with_resolved_env([("RABBITMQ_HOST", AMQP), ("USER", "u"), ("PASS", "p")])
    }

    pub(in crate::rabbitmq) fn ok(
        metadata: &[(&str, &str)],
        auth: &[(&str, &str)],
    ) -> RabbitMqMetadata {
        parse(&cfg(metadata, auth)).unwrap_or_else(|e| panic!("{metadata:?} {auth:?}: {e}"))
    }

    /// Rejected, with a config error naming `parameter` and containing `message`.
    fn rejected(metadata: &[(&str, &str)], auth: &[(&str, &str)], parameter: &str, message: &str) {
        let err = parse(&cfg(metadata, auth)).expect_err(&format!("{metadata:?} was accepted"));
        assert!(err.is_config());
        assert_eq!(err.parameter(), Some(parameter), "{err}");
        assert!(err.message().contains(message), "{err}");
        assert!(err.to_string().starts_with("rabbitmq trigger 0: "), "{err}");
    }

    // KEDA's rabbitmq_scaler_test.go metadata table, as facts.

    #[test]
    fn accepted_cases() {
        let m = ok(
            &[
                ("queueLength", "10"),
                ("queueName", "sample"),
                ("hostFromEnv", "RABBITMQ_HOST"),
            ],
            &[],
        );
        assert_eq!(
            (m.mode, m.value, m.protocol),
            (Mode::QueueLength, 10.0, Protocol::Amqp)
        );
        let m = ok(
            &[("queueName", "sample"), ("host", HTTP)],
            &[("protocol", "http")],
        );
        assert_eq!(m.protocol, Protocol::Http);
        for host in ["http://", "https://"] {
            assert_eq!(
                ok(&[("queueName", "q"), ("host", host)], &[]).protocol,
                Protocol::Http
            );
        }
        let m = ok(
            &[
                ("queueName", "q"),
                ("host", AMQP),
                ("mode", "QueueLength"),
                ("value", "20"),
            ],
            &[],
        );
        assert_eq!((m.mode, m.value), (Mode::QueueLength, 20.0));
        for mode in ["MessageRate", "DeliverGetRate"] {
            for host in ["http://h/", "https://h/"] {
                let m = ok(
                    &[
                        ("queueName", "q"),
                        ("host", host),
                        ("mode", mode),
                        ("value", "5"),
                    ],
                    &[],
                );
                assert_eq!(m.mode.name(), mode);
            }
        }
        let m = ok(
            &[("queueName", "q"), ("host", HTTP), ("timeout", "1000")],
            &[],
        );
        assert_eq!(m.timeout, Some(Duration::from_secs(1)));
        // tls=enable with a CA only.
        let ca = test_ca();
        let m = ok(
            &[("queueName", "q"), ("host", "amqps://h/")],
            &[("tls", "enable"), ("ca", &ca)],
        );
        assert!(m.tls_enabled);
        // Defaults.
        let m = ok(&[("queueName", "q"), ("host", AMQP)], &[]);
        assert_eq!(
            (m.mode, m.value, m.activation_value),
            (Mode::QueueLength, 20.0, 0.0)
        );
        assert_eq!(
            (m.page_size, m.operation, m.use_regex),
            (100, Operation::Sum, false)
        );
    }

    fn test_ca() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem()
    }

    #[test]
    fn rejected_cases() {
        rejected(
            &[("queueLength", "AA"), ("queueName", "q"), ("host", AMQP)],
            &[],
            "queueLength",
            "unable to set param \"queueLength\"",
        );
        rejected(
            &[("queueName", "q")],
            &[],
            "host",
            "missing required parameter \"host\"",
        );
        rejected(
            &[("host", AMQP)],
            &[],
            "queueName",
            "missing required parameter \"queueName\"",
        );
        rejected(
            &[("queueName", "q"), ("host", "something://")],
            &[],
            "host",
            "unknown host URL scheme: `something`",
        );
        rejected(
            &[("queueName", "q"), ("host", AMQP), ("protocol", "smtp")],
            &[],
            "protocol",
            "the protocol has to be either `amqp`, `http`, or `auto` but is `smtp`",
        );
        for extra in [
            &[("queueLength", "10"), ("mode", "QueueLength")][..],
            &[("queueLength", "10"), ("value", "10")][..],
            &[
                ("queueLength", "10"),
                ("mode", "QueueLength"),
                ("value", "10"),
            ][..],
        ] {
            let mut m = vec![("queueName", "q"), ("host", AMQP)];
            m.extend_from_slice(extra);
            rejected(
                &m,
                &[],
                "queueLength",
                "queueLength is deprecated; use mode and value",
            );
        }
        rejected(
            &[("queueName", "q"), ("host", AMQP), ("mode", "QueueLength")],
            &[],
            "value",
            "value must be specified",
        );
        rejected(
            &[("queueName", "q"), ("host", AMQP), ("value", "10")],
            &[],
            "mode",
            "mode must be specified",
        );
        rejected(
            &[
                ("queueName", "q"),
                ("host", AMQP),
                ("mode", "Feelings"),
                ("value", "1"),
            ],
            &[],
            "mode",
            "trigger mode Feelings must be one of",
        );
        rejected(
            &[
                ("queueName", "q"),
                ("host", AMQP),
                ("mode", "QueueLength"),
                ("value", "lots"),
            ],
            &[],
            "value",
            "unable to set param \"value\"",
        );
        for mode in ["MessageRate", "DeliverGetRate"] {
            for host in ["amqp://h/", "amqps://h/"] {
                rejected(
                    &[
                        ("queueName", "q"),
                        ("host", host),
                        ("mode", mode),
                        ("value", "5"),
                    ],
                    &[],
                    "mode",
                    &format!(
                        "protocol amqp not supported; must be HTTP to use trigger mode {mode}"
                    ),
                );
            }
        }
        rejected(
            &[
                ("queueName", "q"),
                ("host", "amqps://h/"),
                ("useRegex", "true"),
            ],
            &[],
            "useRegex",
            "configure useRegex=true only with HTTP protocol",
        );
        rejected(
            &[
                ("queueName", "q"),
                ("host", AMQP),
                ("excludeUnacknowledged", "true"),
            ],
            &[],
            "excludeUnacknowledged",
            "configure excludeUnacknowledged=true only with HTTP protocol",
        );
        for bad in ["-10", "error"] {
            rejected(
                &[("queueName", "q"), ("host", HTTP), ("timeout", bad)],
                &[],
                "timeout",
                "unable to set param \"timeout\"",
            );
        }
        rejected(
            &[("queueName", "q"), ("host", AMQP), ("timeout", "10")],
            &[],
            "timeout",
            "AMQP protocol doesn't support custom timeouts",
        );
        rejected(
            &[("queueName", "q"), ("host", HTTP), ("pageSize", "-1")],
            &[],
            "pageSize",
            "pageSize should be 1 or greater",
        );
        rejected(
            &[("queueName", "q"), ("host", HTTP), ("pageSize", "a")],
            &[],
            "pageSize",
            "unable to set param \"pageSize\"",
        );
        rejected(
            &[("queueName", "q"), ("host", HTTP), ("unsafeSsl", "random")],
            &[],
            "unsafeSsl",
            "unable to set param \"unsafeSsl\"",
        );
        rejected(
            &[("queueName", "q"), ("host", AMQP)],
            &[("tls", "yes")],
            "tls",
            "incorrect value for TLS given: yes",
        );
        let ca = test_ca();
        rejected(
            &[("queueName", "q"), ("host", "amqps://h/")],
            &[("tls", "enable"), ("ca", &ca), ("key", "k")],
            "cert",
            "both key and certificate must be provided",
        );
        rejected(
            &[("queueName", "q"), ("host", AMQP)],
            &[("username", "u")],
            "password",
            "username and password must be given together",
        );
        rejected(
            &[
                ("queueName", "q"),
                ("host", AMQP),
                ("passwordFromEnv", "PASS"),
            ],
            &[],
            "username",
            "username and password must be given together",
        );
        rejected(
            &[("queueName", "q"), ("host", AMQP)],
            &[("workloadIdentityResource", "api://x")],
            "workloadIdentityResource",
            "workload identity is not supported for the AMQP protocol",
        );
        let oauth = [
            ("oauthTokenURI", "https://t/token"),
            ("clientID", "c"),
            ("clientSecret", "s"),
        ];
        rejected(
            &[("queueName", "q"), ("host", AMQP)],
            &oauth,
            "oauthTokenURI",
            "OAuth2 is not supported for the AMQP protocol",
        );
        let mut with_basic = oauth.to_vec();
        with_basic.extend([("username", "u"), ("password", "p")]);
        rejected(
            &[("queueName", "q"), ("host", HTTP)],
            &with_basic,
            "oauthTokenURI",
            "cannot be combined with username and password",
        );
        let mut with_wi = oauth.to_vec();
        with_wi.push(("workloadIdentityResource", "api://x"));
        rejected(
            &[("queueName", "q"), ("host", HTTP)],
            &with_wi,
            "oauthTokenURI",
            "cannot be combined with workload identity",
        );
        for missing in 0..3 {
            let partial: Vec<_> = oauth
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != missing)
                .map(|(_, kv)| *kv)
                .collect();
            rejected(
                &[("queueName", "q"), ("host", HTTP)],
                &partial,
                oauth[missing].0,
                "OAuth2 requires tokenUrl clientId and clientSecret",
            );
        }
        rejected(
            &[
                ("queueName", "q"),
                ("host", HTTP),
                ("useRegex", "true"),
                ("operation", "median"),
            ],
            &[],
            "operation",
            "operation median must be one of",
        );
        // Without regex the operation is not checked.
        ok(
            &[("queueName", "q"), ("host", HTTP), ("operation", "median")],
            &[],
        );
    }

    #[test]
    fn credentials_come_from_auth_params_or_env() {
        let m = ok(
            &[
                ("queueName", "q"),
                ("host", AMQP),
                ("usernameFromEnv", "USER"),
                ("passwordFromEnv", "PASS"),
            ],
            &[],
        );
        assert_eq!(
            (m.username.as_deref(), m.password.as_deref()),
            (Some("u"), Some("p"))
        );
        // Plain metadata is not a source for credentials.
        let m = ok(
            &[
                ("queueName", "q"),
                ("host", AMQP),
                ("username", "x"),
                ("password", "y"),
            ],
            &[],
        );
        assert_eq!(m.username, None);
        let m = ok(&[("queueName", "q")], &[("host", HTTP), ("vhostName", "v")]);
        assert_eq!(
            (m.protocol, m.vhost_name.as_deref()),
            (Protocol::Http, Some("v"))
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(meta in proptest::collection::btree_map(
            prop::sample::select(vec!["queueName", "host", "protocol", "mode", "value", "queueLength",
                "activationValue", "vhostName", "useRegex", "excludeUnacknowledged", "pageSize",
                "operation", "timeout", "unsafeSsl"]),
            ".{0,24}", 0..10)) {
            let config = ScalerConfig::new("rabbitmq", 0).with_metadata(meta);
            if let Ok(m) = parse(&config) {
                let _ = management_request(&m);
                let _ = amqp_endpoint(&m);
            }
        }

        #[test]
        fn query_escape_roundtrips(text in ".{0,40}") {
            let escaped = query_escape(&text);
            let decoded: String = url::form_urlencoded::parse(format!("x={escaped}").as_bytes())
                .next().map(|(_, v)| v.into_owned()).unwrap_or_default();
            prop_assert_eq!(decoded, text);
        }
    }
}
