//! `gcp-pubsub`: a Pub/Sub subscription's or topic's Cloud Monitoring metric (by default the
//! undelivered-message count), read with an MQL query through `projects.timeSeries.query`.

use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use regex::Regex;

use crate::clients::gcp::{MonitoringClient, SeriesValue, ServiceAccountKey};
use crate::config::{MetricTargetKind, ScalerConfig};
use crate::error::ScalerError;
use crate::metrics::{MetricSpec, MetricTarget, MetricValue, normalized_metric_name};
use crate::params::{AUTH_PARAMS, METADATA_ENV, MetadataParser, Source};
use crate::pools::{Lease, Pools};
use crate::scaler::Scaler;

static FULL_NAME: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^projects/([^/]+)/(subscriptions|topics)/(.+)$").ok());
static VALID_NAME: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$").ok());

/// Where the service-account JSON comes from (§1.12).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialsSource {
    /// authParams `GoogleApplicationCredentials` or `credentialsFromEnv`: the JSON itself.
    Json(String),
    /// `credentialsFromEnvFile`: a path to the JSON.
    File(String),
}

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

/// Parses a trigger without I/O (a `credentialsFromEnvFile` path is read at build).
pub fn parse(config: &ScalerConfig) -> Result<PubSubMetadata, ScalerError> {
    let metric_type = config.external_metric_type()?;
    let mut p = MetadataParser::new(config);
    let _: Option<String> = p
        .param("subscriptionSize")
        .deprecated("'subscriptionSize' was removed, use 'mode' and 'value' instead")
        .optional();
    let subscription: Option<String> = p.param("subscriptionName").from(METADATA_ENV).optional();
    let topic: Option<String> = p.param("topicName").from(METADATA_ENV).optional();
    let mode = p.param("mode").with_default("SubscriptionSize".to_owned());
    let value = p
        .param("value")
        .deprecated_announce("The 'value' setting of gcp-pubsub is deprecated; set the target through the trigger's defaults or a scalingModifiers formula")
        .with_default(10.0_f64);
    let activation_value = p.param("activationValue").with_default(0.0_f64);
    let aggregation: Option<String> = p.param("aggregation").optional();
    let time_horizon: Option<Duration> = p.param("timeHorizon").optional();
    let value_if_null: Option<f64> = p.param("valueIfNull").optional();
    let json: Option<String> = p
        .param("GoogleApplicationCredentials")
        .from(AUTH_PARAMS)
        .optional();
    let from_env: Option<String> = p
        .param("credentials")
        .from(&[Source::ResolvedEnv])
        .optional();
    let from_env_file: Option<String> = p
        .param("credentialsFromEnvFile")
        .optional()
        .and_then(|var: String| config.resolved_env.get(&var).cloned())
        .filter(|path| !path.trim().is_empty());

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
    let credentials = match (json, from_env, from_env_file) {
        (Some(json), _, _) => Some((
            "GoogleApplicationCredentials",
            CredentialsSource::Json(json),
        )),
        (None, Some(json), _) => Some(("credentialsFromEnv", CredentialsSource::Json(json))),
        (None, None, Some(path)) => Some((
            "credentialsFromEnvFile",
            CredentialsSource::File(path.trim().to_owned()),
        )),
        (None, None, None) => {
            p.error(
                "GoogleApplicationCredentials",
                "google application credentials not found",
            );
            None
        }
    };
    if let Some((parameter, CredentialsSource::Json(json))) = &credentials
        && let Err(message) = ServiceAccountKey::parse(json)
    {
        p.error(*parameter, message);
    }
    p.finish()?;
    let (Some((resource_type, resource_name)), Some((_, credentials))) = (resource, credentials)
    else {
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

/// The built scaler.
pub struct PubSubScaler {
    trigger: String,
    metric_name: String,
    metadata: PubSubMetadata,
    client: Mutex<Option<Lease<MonitoringClient>>>,
}

impl PubSubScaler {
    /// Parses `config`, reads a credentials file if one is named, and takes a share of the
    /// service account's pooled client (no network I/O).
    pub async fn new(config: &ScalerConfig, pools: &Pools) -> Result<Self, ScalerError> {
        let metadata = parse(config)?;
        let trigger = config.trigger_label();
        let key = match &metadata.credentials {
            CredentialsSource::Json(json) => ServiceAccountKey::parse(json),
            CredentialsSource::File(path) => match tokio::fs::read_to_string(path).await {
                Ok(json) => ServiceAccountKey::parse(&json),
                Err(e) => Err(format!("cannot read credentials file {path:?}: {e}")),
            },
        }
        .map_err(|m| {
            let parameter = match metadata.credentials {
                CredentialsSource::Json(_) => "GoogleApplicationCredentials",
                CredentialsSource::File(_) => "credentialsFromEnvFile",
            };
            ScalerError::config(trigger.clone(), parameter, m)
        })?;
        let lease = pools
            .gcp_monitoring()
            .get_or_connect(&key, || async {
                MonitoringClient::new(&key, pools.gcp_monitoring_endpoint())
            })
            .await
            .map_err(|m| ScalerError::backend(trigger.clone(), m))?;
        Ok(Self {
            metric_name: normalized_metric_name(
                config.trigger_index,
                &format!("gcp-ps-{}", metadata.resource_name),
            ),
            trigger,
            metadata,
            client: Mutex::new(Some(lease)),
        })
    }

    async fn read(&self) -> Result<f64, ScalerError> {
        let Some(client) = self
            .client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        else {
            return Err(ScalerError::backend(&self.trigger, "scaler is closed"));
        };
        let (project, query) = build_query(&self.metadata, client.project_id()).map_err(|m| {
            ScalerError::config(&self.trigger, self.metadata.resource_type.parameter(), m)
        })?;
        match client
            .query_first_value(&project, &query)
            .await
            .map_err(|m| ScalerError::backend(&self.trigger, m))?
        {
            SeriesValue::Value(v) => Ok(v),
            SeriesValue::NoPoints => Ok(-1.0),
            SeriesValue::NoSeries => self.metadata.value_if_null.ok_or_else(|| {
                ScalerError::backend(
                    &self.trigger,
                    format!("could not find stackdriver metric with query {query}"),
                )
            }),
        }
    }
}

#[async_trait]
impl Scaler for PubSubScaler {
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
        let value = self.read().await?;
        Ok((
            vec![MetricValue::new(metric_name, value)],
            value > self.metadata.activation_value,
        ))
    }

    async fn close(&self) {
        self.client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

impl std::fmt::Debug for PubSubScaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubSubScaler")
            .field("trigger", &self.trigger)
            .field("metric_name", &self.metric_name)
            .finish_non_exhaustive()
    }
}

/// Registry constructor.
pub(crate) async fn build(
    config: &ScalerConfig,
    pools: &Pools,
) -> Result<Arc<dyn Scaler>, ScalerError> {
    Ok(Arc::new(PubSubScaler::new(config, pools).await?))
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
