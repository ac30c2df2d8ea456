//! `azure-servicebus`: active messages of a queue or a topic subscription (or the sum, max or
//! average over every queue / subscription whose name matches a regex), read from the Service Bus
//! management REST API with the connection string's Shared Access Signature.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use regex::Regex;

use crate::clients::azure_servicebus::{
    EntityCount, ServiceBusClient, ServiceBusEndpoint, parse_connection_string,
};
use crate::config::{MetricTargetKind, ScalerConfig};
use crate::error::ScalerError;
use crate::metrics::{MetricSpec, MetricTarget, MetricValue, normalized_metric_name};
use crate::params::{MetadataParser, Source};
use crate::pools::{Lease, Pools};
use crate::scaler::Scaler;

const DEFAULT_SUFFIX: &str = "servicebus.windows.net";
/// `connection`: auth params, then `connectionFromEnv`; never plain metadata.
const AUTH_ENV: &[Source] = &[Source::AuthParams, Source::ResolvedEnv];

/// What is measured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entity {
    /// `queueName`.
    Queue(String),
    /// `topicName` + `subscriptionName`.
    Subscription {
        /// The topic.
        topic: String,
        /// The subscription (a regex with `useRegex`).
        subscription: String,
    },
}

/// How matching entities are combined with `useRegex`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Total.
    Sum,
    /// Largest.
    Max,
    /// Integer average (0 when nothing matches).
    Avg,
}

/// Parsed trigger.
#[derive(Clone, Debug)]
pub struct ServiceBusMetadata {
    /// Queue or subscription.
    pub entity: Entity,
    /// `messageCount` (default 5).
    pub message_count: i64,
    /// `activationMessageCount` (default 0).
    pub activation_message_count: i64,
    /// `useRegex`: the compiled, whole-name-anchored pattern.
    pub regex: Option<Regex>,
    /// `operation` (default sum).
    pub operation: Operation,
    /// Namespace and credential.
    pub endpoint: ServiceBusEndpoint,
    /// `cloud` / `endpointSuffix` resolved (used to build a namespace host from `namespace`).
    pub endpoint_suffix: String,
    /// From `metricType`.
    pub metric_type: MetricTargetKind,
}

/// The endpoint suffix for `cloud` (§1.13): empty → public.
pub fn cloud_suffix(cloud: Option<&str>, endpoint_suffix: Option<&str>) -> Result<String, String> {
    match cloud.map(str::to_ascii_lowercase).as_deref() {
        None | Some("azurepubliccloud") => Ok(DEFAULT_SUFFIX.to_owned()),
        Some("azureusgovernmentcloud") => Ok("servicebus.usgovcloudapi.net".to_owned()),
        Some("azurechinacloud") => Ok("servicebus.chinacloudapi.cn".to_owned()),
        Some("private") => endpoint_suffix
            .map(str::to_owned)
            .ok_or_else(|| "endpointSuffix must be provided for Private cloud type".to_owned()),
        Some(_) => Err(format!(
            "invalid cloud environment {}",
            cloud.unwrap_or_default()
        )),
    }
}

/// Parses a trigger without I/O.
pub fn parse(config: &ScalerConfig) -> Result<ServiceBusMetadata, ScalerError> {
    let metric_type = config.external_metric_type()?;
    let mut p = MetadataParser::new(config);
    let queue: Option<String> = p.param("queueName").optional();
    let topic: Option<String> = p.param("topicName").optional();
    let subscription: Option<String> = p.param("subscriptionName").optional();
    let message_count = p.param("messageCount").with_default(5_i64);
    let activation_message_count = p.param("activationMessageCount").with_default(0_i64);
    let connection: Option<String> = p.param("connection").from(AUTH_ENV).optional();
    let _namespace: Option<String> = p.param("namespace").optional();
    let use_regex = p.param("useRegex").with_default(false);
    let operation = match p
        .param("operation")
        .one_of(&["sum", "max", "avg"])
        .with_default("sum".to_owned())
        .as_str()
    {
        "max" => Operation::Max,
        "avg" => Operation::Avg,
        _ => Operation::Sum,
    };
    let cloud: Option<String> = p.param("cloud").optional();
    let suffix: Option<String> = p.param("endpointSuffix").optional();

    let entity = match (queue, topic, subscription) {
        (Some(q), None, None) => Some(Entity::Queue(q)),
        (None, Some(topic), Some(subscription)) => Some(Entity::Subscription {
            topic,
            subscription,
        }),
        (Some(_), None, Some(_)) => {
            p.error(
                "subscriptionName",
                "subscription name provided with queue name",
            );
            None
        }
        (Some(_), Some(_), _) => {
            p.error("topicName", "both topic and queue name metadata provided");
            None
        }
        (None, Some(_), None) => {
            p.error(
                "subscriptionName",
                "no subscription name provided with topic name",
            );
            None
        }
        (None, None, _) => {
            p.error("queueName", "no service bus entity type set");
            None
        }
    };
    let regex = match (&entity, use_regex) {
        (Some(Entity::Queue(q)), true) => compile(&mut p, "queueName", q),
        (Some(Entity::Subscription { subscription, .. }), true) => {
            compile(&mut p, "subscriptionName", subscription)
        }
        _ => None,
    };
    // Only the identity path builds a host from the cloud; a connection string names its own.
    let endpoint_suffix = if connection.is_none() {
        cloud_suffix(cloud.as_deref(), suffix.as_deref()).unwrap_or_else(|message| {
            p.error("cloud", message);
            String::new()
        })
    } else {
        cloud_suffix(cloud.as_deref(), suffix.as_deref()).unwrap_or_default()
    };
    let endpoint = match connection {
        None => {
            p.error("connection", "no connection setting given");
            None
        }
        Some(c) => match parse_connection_string(&c) {
            Ok(e) => Some(e),
            Err(message) => {
                p.error("connection", message);
                None
            }
        },
    };
    p.finish()?;
    let (Some(entity), Some(endpoint)) = (entity, endpoint) else {
        return Err(ScalerError::config(
            config.trigger_label(),
            "queueName",
            "no service bus entity type set",
        ));
    };
    Ok(ServiceBusMetadata {
        entity,
        message_count,
        activation_message_count,
        regex,
        operation,
        endpoint,
        endpoint_suffix,
        metric_type,
    })
}

fn compile(p: &mut MetadataParser<'_>, parameter: &'static str, pattern: &str) -> Option<Regex> {
    // Go keeps a name when the leftmost-longest match is the whole name, i.e. when the pattern
    // matches the whole name.
    match Regex::new(&format!("^(?:{pattern})$")) {
        Ok(r) => Some(r),
        Err(_) => {
            p.error(
                parameter,
                format!("{parameter} is not a valid regular expression"),
            );
            None
        }
    }
}

/// The metric name: the entity, or `queue-regex` / `topic-regex`.
pub fn metric_name(trigger_index: usize, metadata: &ServiceBusMetadata) -> String {
    let suffix = match (&metadata.entity, metadata.regex.is_some()) {
        (Entity::Queue(_), true) => "queue-regex".to_owned(),
        (Entity::Subscription { .. }, true) => "topic-regex".to_owned(),
        (Entity::Queue(q), false) => q.clone(),
        (Entity::Subscription { topic, .. }, false) => topic.clone(),
    };
    normalized_metric_name(trigger_index, &format!("azure-servicebus-{suffix}"))
}

/// Combines the counts of the matching entities.
pub fn combine(operation: Operation, counts: &[i64]) -> i64 {
    match operation {
        Operation::Sum => counts.iter().sum(),
        Operation::Max => counts.iter().copied().max().unwrap_or(0),
        Operation::Avg => {
            let n = i64::try_from(counts.len()).unwrap_or(i64::MAX);
            if n == 0 {
                0
            } else {
                counts.iter().sum::<i64>() / n
            }
        }
    }
}

/// The built scaler.
pub struct ServiceBusScaler {
    trigger: String,
    metric_name: String,
    metadata: ServiceBusMetadata,
    client: Mutex<Option<Lease<ServiceBusClient>>>,
}

impl ServiceBusScaler {
    /// Parses `config` and takes a share of the namespace's pooled client (no I/O).
    pub async fn new(config: &ScalerConfig, pools: &Pools) -> Result<Self, ScalerError> {
        let metadata = parse(config)?;
        let trigger = config.trigger_label();
        let lease = pools
            .azure_servicebus()
            .get_or_connect(&metadata.endpoint, || async {
                ServiceBusClient::new(&metadata.endpoint)
            })
            .await
            .map_err(|m| ScalerError::backend(trigger.clone(), m))?;
        Ok(Self {
            metric_name: metric_name(config.trigger_index, &metadata),
            trigger,
            metadata,
            client: Mutex::new(Some(lease)),
        })
    }

    async fn count(&self) -> Result<i64, ScalerError> {
        let Some(client) = self
            .client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        else {
            return Err(ScalerError::backend(&self.trigger, "scaler is closed"));
        };
        let backend = |m: String| ScalerError::backend(&self.trigger, m);
        let matching = |entities: Vec<EntityCount>, regex: &Regex| -> Vec<i64> {
            entities
                .into_iter()
                .filter(|e| regex.is_match(&e.name))
                .map(|e| e.active)
                .collect()
        };
        match (&self.metadata.entity, &self.metadata.regex) {
            (Entity::Queue(q), None) => client
                .queue_active_count(q)
                .await
                .map_err(backend)?
                .ok_or_else(|| backend(format!("queue {q} doesn't exist"))),
            (
                Entity::Subscription {
                    topic,
                    subscription,
                },
                None,
            ) => client
                .subscription_active_count(topic, subscription)
                .await
                .map_err(backend)?
                .ok_or_else(|| {
                    backend(format!(
                        "subscription {subscription} doesn't exist in topic {topic}"
                    ))
                }),
            (Entity::Queue(_), Some(regex)) => {
                let all = client.list_queues().await.map_err(backend)?;
                Ok(combine(self.metadata.operation, &matching(all, regex)))
            }
            (Entity::Subscription { topic, .. }, Some(regex)) => {
                let all = client.list_subscriptions(topic).await.map_err(backend)?;
                Ok(combine(self.metadata.operation, &matching(all, regex)))
            }
        }
    }
}

#[async_trait]
impl Scaler for ServiceBusScaler {
    fn metric_specs(&self) -> Vec<MetricSpec> {
        #[allow(clippy::cast_precision_loss)]
        let target = self.metadata.message_count as f64;
        vec![MetricSpec::external(
            self.metric_name.clone(),
            MetricTarget::new(self.metadata.metric_type, target),
        )]
    }

    async fn metrics_and_activity(
        &self,
        metric_name: &str,
    ) -> Result<(Vec<MetricValue>, bool), ScalerError> {
        let count = self.count().await?;
        #[allow(clippy::cast_precision_loss)]
        let value = MetricValue::new(metric_name, count as f64);
        Ok((vec![value], count > self.metadata.activation_message_count))
    }

    async fn close(&self) {
        self.client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

impl std::fmt::Debug for ServiceBusScaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceBusScaler")
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
    Ok(Arc::new(ServiceBusScaler::new(config, pools).await?))
}
