//! `gcp-pubsub`: a Pub/Sub subscription's or topic's Cloud Monitoring metric (by default the
//! undelivered-message count), read with an MQL query through `projects.timeSeries.query`.

use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;

pub use super::CredentialsSource;
use super::{CredentialsParams, MonitoringClient, SeriesValue};
use crate::ScalerMetadata;
use crate::config::{MetricTargetKind, ScalerConfig};
use crate::error::{BackendError, ConnectError, ScalerError};
use crate::kind::{Descriptor, Example, Reading, ScalerKind};
use crate::metrics::{MetricSpec, MetricTarget, normalized_metric_name};
use crate::params::{FromParams, MetadataParser, ParamInfo};
use crate::pools::Pools;

// A syntactically valid key is needed for the example to parse; this one is never used to sign.
const EXAMPLE: Example = Example::new(
    &[("subscriptionName", "orders")],
    &["subscriptionName", "GoogleApplicationCredentials"],
)
.with_auth(&[("GoogleApplicationCredentials", EXAMPLE_KEY)]);
const EXAMPLE_KEY: &str = include_str!("example_key.json");

/// `gcp-pubsub`.
pub static DESCRIPTOR: Descriptor = Descriptor::new::<PubSubScaler>("gcp-pubsub", EXAMPLE);

static FULL_NAME: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^projects/([^/]+)/(subscriptions|topics)/(.+)$").ok());
static VALID_NAME: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$").ok());

/// Subscription or topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceType {
    /// `subscriptionName`.
    Subscription,
    /// `topicName`.
    Topic,
}

impl ResourceType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Subscription => "subscription",
            Self::Topic => "topic",
        }
    }

    fn parameter(self) -> &'static str {
        match self {
            Self::Subscription => "subscriptionName",
            Self::Topic => "topicName",
        }
    }
}

/// Parsed trigger.
#[derive(Clone, Debug, PartialEq)]
pub struct PubSubMetadata {
    /// Subscription or topic.
    pub resource_type: ResourceType,
    /// The name as given (a plain id or `projects/<p>/<type>s/<id>`).
    pub resource_name: String,
    /// `mode` (default `SubscriptionSize`).
    pub mode: String,
    /// `value` (default 10).
    pub value: f64,
    /// `activationValue` (default 0).
    pub activation_value: f64,
    /// `aggregation`, checked.
    pub aggregation: Option<String>,
    /// `timeHorizon`.
    pub time_horizon: Option<Duration>,
    /// `valueIfNull`.
    pub value_if_null: Option<f64>,
    /// Credentials.
    pub credentials: CredentialsSource,
    /// From `metricType`.
    pub metric_type: MetricTargetKind,
}

/// The trigger's parameters, in the order they are read.
#[derive(ScalerMetadata)]
struct PubSubParams {
    #[param(
        name = "subscriptionSize",
        deprecated = "'subscriptionSize' was removed, use 'mode' and 'value' instead"
    )]
    _subscription_size: Option<String>,
    #[param(name = "subscriptionName", from = METADATA_ENV)]
    subscription: Option<String>,
    #[param(name = "topicName", from = METADATA_ENV)]
    topic: Option<String>,
    #[param(name = "mode", default = "SubscriptionSize")]
    mode: String,
    #[param(
        name = "value",
        default = "10",
        deprecated_announce = "The 'value' setting of gcp-pubsub is deprecated; set the target through the trigger's defaults or a scalingModifiers formula"
    )]
    value: f64,
    #[param(name = "activationValue", default = "0")]
    activation_value: f64,
    #[param(name = "aggregation")]
    aggregation: Option<String>,
    #[param(name = "timeHorizon")]
    time_horizon: Option<Duration>,
    #[param(name = "valueIfNull")]
    value_if_null: Option<f64>,
    #[param(flatten)]
    credentials: CredentialsParams,
}

/// Parses a trigger without I/O (a `credentialsFromEnvFile` path is read at build).
pub fn parse(config: &ScalerConfig) -> Result<PubSubMetadata, ScalerError> {
    let metric_type = config.external_metric_type()?;
    let mut p = MetadataParser::new(config);
    let PubSubParams {
        _subscription_size: _,
        subscription,
        topic,
        mode,
        value,
        activation_value,
        aggregation,
        time_horizon,
        value_if_null,
        credentials,
    } = PubSubParams::from_params(&mut p);

    let resource = match (subscription, topic) {
        (Some(s), None) => Some((ResourceType::Subscription, s)),
        (None, Some(t)) => Some((ResourceType::Topic, t)),
        _ => {
            p.error(
                "subscriptionName",
                "exactly one of subscription or topic name must be given",
            );
            None
        }
    };
    if let Some(a) = &aggregation
        && let Err(message) = aggregation_stage(a)
    {
        p.error("aggregation", message);
    }
    let credentials = credentials.resolve(&mut p);
    p.finish()?;
    let (Some((resource_type, resource_name)), Some(credentials)) = (resource, credentials) else {
        return Err(ScalerError::config(
            config.trigger_label(),
            "subscriptionName",
            "exactly one of subscription or topic name must be given",
        ));
    };
    Ok(PubSubMetadata {
        resource_type,
        resource_name,
        mode,
        value,
        activation_value,
        aggregation,
        time_horizon,
        value_if_null,
        credentials,
        metric_type,
    })
}

/// `SubscriptionSize` → `num_undelivered_messages`, otherwise CamelCase → snake_case.
pub fn metric_suffix(mode: &str) -> String {
    if mode == "SubscriptionSize" {
        return "num_undelivered_messages".to_owned();
    }
    let chars: Vec<char> = mode.chars().collect();
    let mut out = String::with_capacity(mode.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_lower) {
                out.push('_');
            }
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// The MQL stage for `aggregation`.
pub fn aggregation_stage(aggregation: &str) -> Result<String, String> {
    let function = match aggregation {
        "mean" | "median" | "variance" | "stddev" | "sum" | "count" => {
            format!("{aggregation}(value)")
        }
        other => match other.strip_prefix("percentile").map(str::parse::<u8>) {
            Some(Ok(n)) if n <= 100 => format!("percentile(value, {n})"),
            _ => return Err(format!("unsupported aggregation function: {aggregation}")),
        },
    };
    Ok(format!(
        " | align delta(3m) | every 3m | group_by [], {function}"
    ))
}

/// Go's `time.Duration` text (`2m0s`, `1h30m0s`, `45s`, `1.5s`), as KEDA prints the horizon.
pub fn go_duration(d: Duration) -> String {
    let total = d.as_secs();
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    let millis = d.subsec_millis();
    let secs = if millis == 0 {
        format!("{s}s")
    } else {
        format!("{s}.{}s", format!("{millis:03}").trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => secs,
        (0, m) => format!("{m}m{secs}"),
        (h, m) => format!("{h}h{m}m{secs}"),
    }
}

/// The project and id a query is about, and the MQL text.
pub fn build_query(
    metadata: &PubSubMetadata,
    default_project: &str,
) -> Result<(String, String), String> {
    let type_name = metadata.resource_type.as_str();
    let (project, id) = match FULL_NAME
        .as_ref()
        .and_then(|r| r.captures(&metadata.resource_name))
    {
        Some(c) => (
            c.get(1).map_or("", |m| m.as_str()).to_owned(),
            c.get(3).map_or("", |m| m.as_str()).to_owned(),
        ),
        None => (default_project.to_owned(), metadata.resource_name.clone()),
    };
    let valid = VALID_NAME.as_ref().is_some_and(|r| r.is_match(&id)) && !id.starts_with("goog");
    if !valid {
        return Err(format!("invalid Pub/Sub resource name {id:?}"));
    }
    let metric = format!(
        "pubsub.googleapis.com/{type_name}/{}",
        metric_suffix(&metadata.mode)
    );
    let horizon = match (metadata.time_horizon, &metadata.aggregation) {
        (Some(h), _) if !h.is_zero() => h,
        (_, Some(_)) => Duration::from_secs(300),
        _ => Duration::from_secs(120),
    };
    let mut query = format!(
        "fetch pubsub_{type_name} | metric '{metric}' | filter (resource.project_id == '{project}' && resource.{type_name}_id == '{id}') | within {}",
        go_duration(horizon)
    );
    if let Some(a) = &metadata.aggregation {
        query.push_str(&aggregation_stage(a)?);
    }
    Ok((project, query))
}

/// A connected `gcp-pubsub` trigger.
pub struct PubSubScaler {
    metadata: PubSubMetadata,
    project: String,
    query: String,
    client: MonitoringClient,
}

impl ScalerKind for PubSubScaler {
    type Metadata = PubSubMetadata;

    fn parse(config: &ScalerConfig) -> Result<PubSubMetadata, ScalerError> {
        parse(config)
    }

    fn params() -> Vec<ParamInfo> {
        PubSubParams::params()
    }

    fn metric_specs(metadata: &PubSubMetadata, config: &ScalerConfig) -> Option<Vec<MetricSpec>> {
        Some(vec![MetricSpec::external(
            normalized_metric_name(
                config.trigger_index,
                &format!("gcp-ps-{}", metadata.resource_name),
            ),
            MetricTarget::new(metadata.metric_type, metadata.value),
        )])
    }

    /// Reads a credentials file if one is named, builds the query (a bad resource name is a
    /// config error: the key's project is its default) and takes a share of the HTTP client and
    /// of the service account's token (no network I/O).
    async fn connect(
        metadata: PubSubMetadata,
        _config: &ScalerConfig,
        pools: &Pools,
    ) -> Result<Self, ConnectError> {
        let key = metadata.credentials.key().await?;
        let (project, query) = build_query(&metadata, &key.project_id)
            .map_err(|m| ConnectError::config(metadata.resource_type.parameter(), m))?;
        let client = MonitoringClient::connect(&key, pools).await?;
        Ok(Self {
            metadata,
            project,
            query,
            client,
        })
    }

    async fn read(&self, metric_name: &str) -> Result<Reading, BackendError> {
        let value = match self
            .client
            .query_first_value(&self.project, &self.query)
            .await?
        {
            SeriesValue::Value(v) => v,
            SeriesValue::NoPoints => -1.0,
            SeriesValue::NoSeries => self.metadata.value_if_null.ok_or_else(|| {
                BackendError::not_found(format!(
                    "could not find stackdriver metric with query {}",
                    self.query
                ))
            })?,
        };
        Ok(Reading::value(
            metric_name,
            value,
            value > self.metadata.activation_value,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_modes() {
        assert_eq!(
            metric_suffix("SubscriptionSize"),
            "num_undelivered_messages"
        );
        assert_eq!(
            metric_suffix("OldestUnackedMessageAge"),
            "oldest_unacked_message_age"
        );
        assert_eq!(metric_suffix("MessageSizes"), "message_sizes");
        assert_eq!(metric_suffix("AckLatencies"), "ack_latencies");
        assert_eq!(metric_suffix("ByteCost"), "byte_cost");
        assert_eq!(metric_suffix("SendRequestCount"), "send_request_count");
        assert_eq!(metric_suffix("Num2Messages"), "num2_messages");
        assert_eq!(metric_suffix("HTTPStatus"), "http_status");
    }

    #[test]
    fn aggregations() {
        assert_eq!(
            aggregation_stage("sum").unwrap(),
            " | align delta(3m) | every 3m | group_by [], sum(value)"
        );
        assert_eq!(
            aggregation_stage("percentile99").unwrap(),
            " | align delta(3m) | every 3m | group_by [], percentile(value, 99)"
        );
        for bad in ["max", "percentile101", "percentile", "Sum"] {
            assert_eq!(
                aggregation_stage(bad).unwrap_err(),
                format!("unsupported aggregation function: {bad}")
            );
        }
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::from_secs(120)), "2m0s");
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
        assert_eq!(go_duration(Duration::from_secs(45)), "45s");
        assert_eq!(go_duration(Duration::from_secs(5400)), "1h30m0s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
    }

    mod properties {
        use super::*;
        use proptest::collection::btree_map;
        use proptest::prelude::*;

        const KEYS: &[&str] = &[
            "subscriptionName",
            "topicName",
            "mode",
            "value",
            "activationValue",
            "aggregation",
            "timeHorizon",
            "valueIfNull",
            "credentialsFromEnv",
            "credentialsFromEnvFile",
            "subscriptionSize",
            "subscriptionNameFromEnv",
        ];

        proptest! {
            #[test]
            fn parsing_never_panics(
                metadata in btree_map(proptest::sample::select(KEYS).prop_map(str::to_owned), ".{0,30}", 0..8),
                creds in ".{0,60}",
            ) {
                let mut config = ScalerConfig::new("gcp-pubsub", 0)
                    .with_auth_params([("GoogleApplicationCredentials", creds)]);
                config.metadata = metadata;
                if let Err(e) = parse(&config) {
                    prop_assert!(e.is_config());
                }
            }

            #[test]
            fn snake_case_is_lowercase(mode in "[A-Za-z0-9]{0,30}") {
                let out = metric_suffix(&mode);
                prop_assert!(!out.chars().any(char::is_uppercase));
            }
        }
    }
}
