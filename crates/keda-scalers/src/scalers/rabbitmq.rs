//! `rabbitmq`: queue length or message rates of a RabbitMQ queue, read over AMQP (passive queue
//! declare: ready messages only) or from the management HTTP API (totals, unacknowledged excluded on
//! request, publish and deliver rates, regex matches aggregated).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use crate::clients::rabbitmq::{
    AmqpClient, AmqpEndpoint, HttpAuth, HttpClientKey, ManagementClient, redact_userinfo,
};
use crate::config::{MetricTargetKind, ScalerConfig};
use crate::error::ScalerError;
use crate::metrics::{MetricSpec, MetricTarget, MetricValue, normalized_metric_name};
use crate::params::{AUTH_PARAMS, METADATA_AUTH, METADATA_AUTH_ENV, MetadataParser, Source};
use crate::pools::{Lease, Pools};
use crate::scaler::Scaler;
use crate::tls::TlsSettings;

/// `username`/`password`: auth params, then `FromEnv`.
const AUTH_ENV: &[Source] = &[Source::AuthParams, Source::ResolvedEnv];

/// KEDA's default when neither `mode`, `value` nor `queueLength` is given.
const DEFAULT_QUEUE_LENGTH: f64 = 20.0;

/// Backstop for one AMQP poll (HTTP polls have their own request timeout).
const AMQP_POLL_TIMEOUT: Duration = Duration::from_secs(15);

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
    fn name(self) -> &'static str {
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
fn path_segment_escape(text: &str) -> String {
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

/// Parses a `rabbitmq` trigger without I/O.
#[allow(clippy::too_many_lines)]
pub fn parse(config: &ScalerConfig) -> Result<RabbitMqMetadata, ScalerError> {
    let metric_type = config.external_metric_type()?;
    let mut p = MetadataParser::new(config);
    let queue_name: String = p.param("queueName").required();
    let host: String = p.param("host").from(METADATA_AUTH_ENV).required();
    let protocol_raw: String = p
        .param("protocol")
        .from(METADATA_AUTH)
        .with_default("auto".to_owned());
    let mode_raw: Option<String> = p.param("mode").optional();
    let value: Option<f64> = p.param("value").optional();
    let queue_length: Option<f64> = p.param("queueLength").optional();
    let activation_value = p.param("activationValue").with_default(0.0_f64);
    let vhost_name: Option<String> = p.param("vhostName").from(METADATA_AUTH).optional();
    let use_regex = p.param("useRegex").with_default(false);
    let exclude_unacknowledged = p.param("excludeUnacknowledged").with_default(false);
    let page_size = p.param("pageSize").with_default(100_i64);
    let operation_raw: String = p.param("operation").with_default("sum".to_owned());
    let timeout: Option<Duration> = p.param("timeout").optional();
    let username: Option<String> = p.param("username").from(AUTH_ENV).optional();
    let password: Option<String> = p.param("password").from(AUTH_ENV).optional();
    let tls_raw: String = p
        .param("tls")
        .from(AUTH_PARAMS)
        .with_default("disable".to_owned());
    let ca: Option<String> = p.param("ca").from(AUTH_PARAMS).optional();
    let cert: Option<String> = p.param("cert").from(AUTH_PARAMS).optional();
    let key: Option<String> = p.param("key").from(AUTH_PARAMS).optional();
    let key_password: Option<String> = p.param("keyPassword").from(AUTH_PARAMS).optional();
    let unsafe_ssl = p.param("unsafeSsl").with_default(false);
    let workload_identity_resource: Option<String> = p
        .param("workloadIdentityResource")
        .from(AUTH_PARAMS)
        .optional();
    let token_uri: Option<String> = p.param("oauthTokenURI").from(AUTH_PARAMS).optional();
    let client_id: Option<String> = p.param("clientID").from(AUTH_PARAMS).optional();
    let client_secret: Option<String> = p.param("clientSecret").from(AUTH_PARAMS).optional();
    let scopes: Option<Vec<String>> = p
        .param("scopes")
        .alias("scope")
        .from(AUTH_PARAMS)
        .optional();
    let endpoint_params: Option<String> = p.param("endpointParams").from(AUTH_PARAMS).optional();

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

/// Splits a management URL path into `(vhost path, prefix)`: the last segment is the vhost (kept
/// escaped; `vhost_name` replaces it), the rest a path prefix; empty or `/` vhost → `/%2F`.
pub fn vhost_and_prefix(escaped_path: &str, vhost_name: Option<&str>) -> (String, String) {
    let (prefix, last) = escaped_path.rsplit_once('/').unwrap_or(("", escaped_path));
    let mut vhost = format!("/{last}");
    if let Some(name) = vhost_name {
        vhost = format!("/{}", query_escape(name));
    }
    if vhost == "/" || vhost == "//" {
        vhost = "/%2F".to_owned();
    }
    (vhost, prefix.trim_end_matches('/').to_owned())
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

/// The management request of a parsed trigger: URL without credentials, credentials.
#[derive(Clone, Debug, PartialEq)]
pub struct ManagementRequest {
    /// Full URL of the GET.
    pub url: String,
    /// Basic credentials from the host URL or `username`/`password`.
    pub auth: HttpAuth,
}

/// Builds the management-API request of a parsed trigger.
pub fn management_request(meta: &RabbitMqMetadata) -> Result<ManagementRequest, String> {
    let url = url::Url::parse(&meta.host).map_err(|e| format!("invalid host URL: {e}"))?;
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| "host URL has no host".to_owned())?;
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let (vhost, prefix) = vhost_and_prefix(url.path(), meta.vhost_name.as_deref());
    let base = format!("{}://{authority}{prefix}/api/queues{vhost}", url.scheme());
    let full = if meta.use_regex {
        format!(
            "{base}?page=1&use_regex=true&pagination=false&name={}&page_size={}",
            query_escape(&meta.queue_name),
            meta.page_size
        )
    } else {
        format!("{base}/{}", path_segment_escape(&meta.queue_name))
    };
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let auth = match (&meta.username, &meta.password) {
        (Some(u), Some(p)) => HttpAuth::Basic {
            username: u.clone(),
            password: p.clone(),
        },
        _ if !url.username().is_empty() => HttpAuth::Basic {
            username: decode(url.username()),
            password: decode(url.password().unwrap_or_default()),
        },
        _ => HttpAuth::None,
    };
    Ok(ManagementRequest { url: full, auth })
}

/// The numbers one poll yields.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QueueStats {
    /// Messages (ready + unacknowledged, or ready only with `excludeUnacknowledged`).
    pub messages: i64,
    /// Publish rate.
    pub publish_rate: f64,
    /// Deliver + get rate.
    pub deliver_get_rate: f64,
}

#[derive(Deserialize, Default)]
struct QueueInfo {
    #[serde(default)]
    messages: i64,
    #[serde(default)]
    messages_ready: i64,
    #[serde(default)]
    message_stats: MessageStats,
}

#[derive(Deserialize, Default)]
struct MessageStats {
    #[serde(default)]
    publish_details: RateDetails,
    #[serde(default)]
    deliver_get_details: RateDetails,
}

#[derive(Deserialize, Default)]
struct RateDetails {
    #[serde(default)]
    rate: f64,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RegexAnswer {
    Page {
        items: Vec<QueueInfo>,
        #[serde(default)]
        page_count: i64,
    },
    List(Vec<QueueInfo>),
}

impl QueueInfo {
    fn stats(&self, exclude_unacknowledged: bool) -> QueueStats {
        QueueStats {
            messages: if exclude_unacknowledged {
                self.messages_ready
            } else {
                self.messages
            },
            publish_rate: self.message_stats.publish_details.rate,
            deliver_get_rate: self.message_stats.deliver_get_details.rate,
        }
    }
}

/// Parses a single-queue answer.
pub fn parse_queue_answer(body: &[u8], exclude_unacknowledged: bool) -> Result<QueueStats, String> {
    let info: QueueInfo =
        serde_json::from_slice(body).map_err(|e| format!("error decoding the queue info: {e}"))?;
    Ok(info.stats(exclude_unacknowledged))
}

/// Parses a regex answer and aggregates the matches with `operation`.
pub fn parse_regex_answer(
    body: &[u8],
    exclude_unacknowledged: bool,
    operation: Operation,
) -> Result<QueueStats, String> {
    let answer: RegexAnswer =
        serde_json::from_slice(body).map_err(|e| format!("error decoding the queue list: {e}"))?;
    let items = match answer {
        RegexAnswer::Page { page_count, .. } if page_count > 1 => {
            return Err("regex matches more queues than can be recovered at once".to_owned());
        }
        RegexAnswer::Page { items, .. } | RegexAnswer::List(items) => items,
    };
    let stats: Vec<QueueStats> = items
        .iter()
        .map(|i| i.stats(exclude_unacknowledged))
        .collect();
    Ok(aggregate(&stats, operation))
}

/// Field-wise aggregation of matched queues; no matches → all zero.
pub fn aggregate(stats: &[QueueStats], operation: Operation) -> QueueStats {
    let Some(first) = stats.first() else {
        return QueueStats::default();
    };
    match operation {
        Operation::Sum | Operation::Avg => {
            let mut total = QueueStats::default();
            for s in stats {
                total.messages = total.messages.saturating_add(s.messages);
                total.publish_rate += s.publish_rate;
                total.deliver_get_rate += s.deliver_get_rate;
            }
            if operation == Operation::Avg {
                let n = i64::try_from(stats.len()).unwrap_or(i64::MAX);
                #[allow(clippy::cast_precision_loss)]
                let nf = stats.len() as f64;
                total.messages /= n;
                total.publish_rate /= nf;
                total.deliver_get_rate /= nf;
            }
            total
        }
        Operation::Max => stats.iter().fold(*first, |acc, s| QueueStats {
            messages: acc.messages.max(s.messages),
            publish_rate: acc.publish_rate.max(s.publish_rate),
            deliver_get_rate: acc.deliver_get_rate.max(s.deliver_get_rate),
        }),
    }
}

/// The metric value and activity of `stats` under `mode` (KEDA's per-mode table).
pub fn value_and_activity(mode: Mode, stats: QueueStats, activation: f64) -> (f64, bool) {
    #[allow(clippy::cast_precision_loss)]
    let m = stats.messages as f64;
    let p = stats.publish_rate;
    let d = stats.deliver_get_rate;
    match mode {
        Mode::QueueLength => (m, m > activation),
        Mode::MessageRate => (p, p > activation || m > activation),
        Mode::DeliverGetRate => (d, d > activation),
        Mode::PublishedToDeliveredRatio => {
            let ratio = if p > 0.0 && d == 0.0 {
                activation
            } else if p > 0.0 {
                p / d
            } else {
                0.0
            };
            (ratio, ratio > activation || (p > 0.0 && d == 0.0))
        }
        Mode::ExpectedQueueConsumptionTime => {
            let eta = if m == 0.0 {
                0.0
            } else if d == 0.0 {
                activation
            } else {
                (p - d) / d + m / d
            };
            (eta, eta > activation || (d == 0.0 && m > 0.0))
        }
    }
}

/// KEDA's global HTTP timeout: `KEDA_HTTP_DEFAULT_TIMEOUT` in ms (default 3000; ≤ 0 → 300 ms).
fn global_http_timeout() -> Duration {
    let ms = std::env::var("KEDA_HTTP_DEFAULT_TIMEOUT")
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(3000);
    Duration::from_millis(u64::try_from(ms).ok().filter(|ms| *ms > 0).unwrap_or(300))
}

enum Backend {
    Amqp(Lease<AmqpClient>),
    Http {
        client: Lease<ManagementClient>,
        request: ManagementRequest,
    },
}

impl Clone for Backend {
    fn clone(&self) -> Self {
        match self {
            Self::Amqp(lease) => Self::Amqp(lease.clone()),
            Self::Http { client, request } => Self::Http {
                client: client.clone(),
                request: request.clone(),
            },
        }
    }
}

/// The built `rabbitmq` scaler.
pub struct RabbitMqScaler {
    trigger: String,
    metric_name: String,
    metadata: RabbitMqMetadata,
    // `None` after `close()`.
    backend: Mutex<Option<Backend>>,
}

impl RabbitMqScaler {
    /// Parses `config` and takes a share of the pooled client: the broker's AMQP connection
    /// (connecting if nobody uses it yet) or the management HTTP client.
    pub async fn new(config: &ScalerConfig, pools: &Pools) -> Result<Self, ScalerError> {
        let metadata = parse(config)?;
        let trigger = config.trigger_label();
        if metadata.oauth.is_some() {
            return Err(ScalerError::config(
                trigger,
                "oauthTokenURI",
                "OAuth2 client credentials for the RabbitMQ management API are not supported by keda-rs yet",
            ));
        }
        if metadata.workload_identity_resource.is_some() {
            return Err(ScalerError::config(
                trigger,
                "workloadIdentityResource",
                "Azure workload identity for the RabbitMQ management API is not supported by keda-rs yet",
            ));
        }
        let backend = match metadata.protocol {
            Protocol::Amqp => {
                if metadata.tls.unsafe_ssl {
                    // lapin verifies broker certificates against the system roots plus `ca`.
                    tracing::warn!(
                        trigger = %trigger,
                        "unsafeSsl is not honoured on AMQP connections; add the broker's CA as `ca` instead"
                    );
                }
                let endpoint = amqp_endpoint(&metadata)
                    .map_err(|e| ScalerError::config(&trigger, "host", e))?;
                let lease = pools
                    .rabbitmq_amqp()
                    .get_or_connect(&endpoint, || AmqpClient::connect(&endpoint))
                    .await
                    .map_err(|e| {
                        ScalerError::backend(&trigger, format!("error inspecting RabbitMQ: {e}"))
                    })?;
                Backend::Amqp(lease)
            }
            Protocol::Http => {
                let request = management_request(&metadata)
                    .map_err(|e| ScalerError::config(&trigger, "host", e))?;
                // `unsafeSsl` always applies; certificates only with `tls: enable`, as in KEDA.
                let tls = if metadata.tls_enabled {
                    metadata.tls.clone()
                } else {
                    TlsSettings {
                        unsafe_ssl: metadata.tls.unsafe_ssl,
                        ..TlsSettings::default()
                    }
                };
                let key = HttpClientKey {
                    tls,
                    timeout: metadata
                        .timeout
                        .filter(|t| !t.is_zero())
                        .unwrap_or_else(global_http_timeout),
                };
                let client = pools
                    .rabbitmq_http()
                    .get_or_connect(&key, || async { ManagementClient::new(&key) })
                    .await
                    .map_err(|e| ScalerError::config(&trigger, "ca", e))?;
                Backend::Http { client, request }
            }
        };
        Ok(Self {
            metric_name: normalized_metric_name(
                config.trigger_index,
                &format!("rabbitmq-{}", query_escape(&metadata.queue_name)),
            ),
            trigger,
            metadata,
            backend: Mutex::new(Some(backend)),
        })
    }

    /// The parsed trigger.
    pub fn metadata(&self) -> &RabbitMqMetadata {
        &self.metadata
    }

    async fn stats(&self) -> Result<QueueStats, String> {
        let backend = self
            .backend
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match backend {
            None => Err("scaler is closed".to_owned()),
            Some(Backend::Amqp(client)) => {
                let count = tokio::time::timeout(
                    AMQP_POLL_TIMEOUT,
                    client.message_count(&self.metadata.queue_name),
                )
                .await
                .map_err(|_| {
                    format!(
                        "no answer from {} within {AMQP_POLL_TIMEOUT:?}",
                        client.description()
                    )
                })??;
                Ok(QueueStats {
                    messages: i64::from(count),
                    ..QueueStats::default()
                })
            }
            Some(Backend::Http { client, request }) => {
                let body = client
                    .get(&request.url, &request.auth, &request.url)
                    .await?;
                if self.metadata.use_regex {
                    parse_regex_answer(
                        &body,
                        self.metadata.exclude_unacknowledged,
                        self.metadata.operation,
                    )
                } else {
                    parse_queue_answer(&body, self.metadata.exclude_unacknowledged)
                }
            }
        }
    }
}

#[async_trait]
impl Scaler for RabbitMqScaler {
    fn metric_specs(&self) -> Vec<MetricSpec> {
        vec![MetricSpec::external(
            self.metric_name.clone(),
            MetricTarget::new(self.metadata.metric_type, self.metadata.value),
        )]
    }

    async fn metrics_and_activity(
        &self,
        metric_name: &str,
    ) -> Result<(Vec<MetricValue>, bool), ScalerError> {
        let stats = self.stats().await.map_err(|e| {
            let e = ScalerError::backend(
                &self.trigger,
                redact_userinfo(&format!("error inspecting RabbitMQ: {e}")),
            );
            tracing::warn!(trigger = %self.trigger, error = %e, "rabbitmq poll failed");
            e
        })?;
        let (value, active) =
            value_and_activity(self.metadata.mode, stats, self.metadata.activation_value);
        Ok((vec![MetricValue::new(metric_name, value)], active))
    }

    async fn close(&self) {
        self.backend
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

impl std::fmt::Debug for RabbitMqScaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitMqScaler")
            .field("trigger", &self.trigger)
            .field("metric_name", &self.metric_name)
            .field("metadata", &self.metadata)
            .finish_non_exhaustive()
    }
}

/// Registry constructor.
pub(crate) async fn build(
    config: &ScalerConfig,
    pools: &Pools,
) -> Result<Arc<dyn Scaler>, ScalerError> {
    Ok(Arc::new(RabbitMqScaler::new(config, pools).await?))
}

#[cfg(test)]
mod tests {
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

    fn ok(metadata: &[(&str, &str)], auth: &[(&str, &str)]) -> RabbitMqMetadata {
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

    #[test]
    fn metric_names() {
        for (index, queue, want) in [
            (0, "sample", "s0-rabbitmq-sample"),
            (1, "namespace/name", "s1-rabbitmq-namespace-2Fname"),
            (2, "a b", "s2-rabbitmq-a+b"),
        ] {
            let name = normalized_metric_name(index, &format!("rabbitmq-{}", query_escape(queue)));
            assert_eq!(name, want);
        }
    }

    #[test]
    fn vhost_and_prefix_examples() {
        for (path, vhost_name, vhost, prefix) in [
            ("/myVhost", None, "/myVhost", ""),
            ("/", None, "/%2F", ""),
            ("//", None, "/%2F", ""),
            ("/%2F", None, "/%2F", ""),
            ("", None, "/%2F", ""),
            ("/sub1/myVhost", None, "/myVhost", "/sub1"),
            ("/sub1/", Some("myVhost"), "/myVhost", "/sub1"),
            ("/sub1/sub2/%2FmyVhost", None, "/%2FmyVhost", "/sub1/sub2"),
            ("/sub1//", None, "/%2F", "/sub1"),
            ("/x", Some("/"), "/%2F", ""),
        ] {
            assert_eq!(
                vhost_and_prefix(path, vhost_name),
                (vhost.to_owned(), prefix.to_owned()),
                "{path:?} {vhost_name:?}"
            );
        }
    }

    #[test]
    fn management_urls_and_credentials() {
        let m = ok(
            &[
                ("queueName", "my queue"),
                ("host", "https://user:p%40ss@rabbit:15671/prefix/vh"),
            ],
            &[],
        );
        let r = management_request(&m).unwrap();
        assert_eq!(
            r.url,
            "https://rabbit:15671/prefix/api/queues/vh/my%20queue"
        );
        assert_eq!(
            r.auth,
            HttpAuth::Basic {
                username: "user".into(),
                password: "p@ss".into()
            }
        );
        let m = ok(
            &[
                ("queueName", "^q.*"),
                ("host", "http://rabbit:15672"),
                ("useRegex", "true"),
                ("pageSize", "7"),
            ],
            &[("username", "u"), ("password", "p")],
        );
        let r = management_request(&m).unwrap();
        assert_eq!(
            r.url,
            "http://rabbit:15672/api/queues/%2F?page=1&use_regex=true&pagination=false&name=%5Eq.%2A&page_size=7"
        );
        assert_eq!(
            r.auth,
            HttpAuth::Basic {
                username: "u".into(),
                password: "p".into()
            }
        );
    }

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
    fn value_and_activity_per_mode() {
        let s = |m: i64, p: f64, d: f64| QueueStats {
            messages: m,
            publish_rate: p,
            deliver_get_rate: d,
        };
        assert_eq!(
            value_and_activity(Mode::QueueLength, s(5, 9.0, 9.0), 5.0),
            (5.0, false)
        );
        assert_eq!(
            value_and_activity(Mode::QueueLength, s(6, 0.0, 0.0), 5.0),
            (6.0, true)
        );
        assert_eq!(
            value_and_activity(Mode::MessageRate, s(0, 2.5, 0.0), 1.0),
            (2.5, true)
        );
        assert_eq!(
            value_and_activity(Mode::MessageRate, s(3, 0.0, 0.0), 1.0),
            (0.0, true)
        );
        assert_eq!(
            value_and_activity(Mode::MessageRate, s(1, 1.0, 0.0), 1.0),
            (1.0, false)
        );
        assert_eq!(
            value_and_activity(Mode::DeliverGetRate, s(100, 0.0, 4.0), 1.0),
            (4.0, true)
        );
        assert_eq!(
            value_and_activity(Mode::PublishedToDeliveredRatio, s(0, 2.0, 0.0), 1.0),
            (1.0, true)
        );
        assert_eq!(
            value_and_activity(Mode::PublishedToDeliveredRatio, s(0, 3.0, 2.0), 1.0),
            (1.5, true)
        );
        assert_eq!(
            value_and_activity(Mode::PublishedToDeliveredRatio, s(0, 0.0, 2.0), 1.0),
            (0.0, false)
        );
        // KEDA's ETA cases (value 1, activationValue 1).
        let eta = |m, p, d| value_and_activity(Mode::ExpectedQueueConsumptionTime, s(m, p, d), 1.0);
        assert_eq!(eta(0, 0.0, 0.0), (0.0, false));
        assert_eq!(eta(0, 0.0, 2.0), (0.0, false));
        assert_eq!(eta(10, 3.0, 0.0), (1.0, true));
        assert_eq!(eta(10, 3.0, 2.0), (5.5, true));
        assert_eq!(eta(4, 0.0, 2.0), (1.0, false));
    }

    #[test]
    fn regex_answers_are_aggregated() {
        let body = br#"{"items":[
            {"messages":2,"messages_ready":1,"message_stats":{"publish_details":{"rate":1.5}}},
            {"messages":5,"messages_ready":5,"message_stats":{"deliver_get_details":{"rate":4.0}}},
            {"messages":9,"messages_ready":3}],"page_count":1}"#;
        let sum = parse_regex_answer(body, false, Operation::Sum).unwrap();
        assert_eq!(
            sum,
            QueueStats {
                messages: 16,
                publish_rate: 1.5,
                deliver_get_rate: 4.0
            }
        );
        assert_eq!(
            parse_regex_answer(body, true, Operation::Sum)
                .unwrap()
                .messages,
            9
        );
        let max = parse_regex_answer(body, false, Operation::Max).unwrap();
        assert_eq!(
            max,
            QueueStats {
                messages: 9,
                publish_rate: 1.5,
                deliver_get_rate: 4.0
            }
        );
        let avg = parse_regex_answer(body, false, Operation::Avg).unwrap();
        assert_eq!(avg.messages, 5);
        assert!((avg.publish_rate - 0.5).abs() < 1e-9);
        assert_eq!(
            parse_regex_answer(br#"{"items":[],"page_count":0}"#, false, Operation::Max).unwrap(),
            QueueStats::default()
        );
        let err = parse_regex_answer(br#"{"items":[],"page_count":2}"#, false, Operation::Sum)
            .unwrap_err();
        assert_eq!(
            err,
            "regex matches more queues than can be recovered at once"
        );
        assert!(parse_queue_answer(b"not json", false).is_err());
        assert_eq!(
            parse_queue_answer(b"{}", false).unwrap(),
            QueueStats::default()
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
