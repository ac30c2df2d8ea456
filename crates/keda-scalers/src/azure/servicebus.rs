//! `azure-servicebus`: active messages of a queue or a topic subscription (or the sum, max or
//! average over every queue / subscription whose name matches a regex), read from the Service Bus
//! management REST API (the Atom feed the SDKs' admin clients use) with the connection string's
//! Shared Access Signature.

use percent_encoding::utf8_percent_encode;
use quick_xml::events::Event;
use regex::Regex;

use super::{
    CloudParams, CloudSuffixes, ConnectionParams, PATH, QUERY, SasEndpoint, http_client,
    parse_connection_string, status_text,
};
use crate::ScalerMetadata;
use crate::config::{MetricTargetKind, ScalerConfig};
use crate::error::{BackendError, ConnectError, ScalerError};
use crate::http::{GetRequest, HttpClient, status_error};
use crate::kind::{Descriptor, Example, Reading, ScalerKind};
use crate::metrics::{MetricSpec, MetricTarget, normalized_metric_name};
use crate::params::{FromParams, MetadataParser, ParamInfo};
use crate::pools::{Lease, Pools};

const SUFFIXES: CloudSuffixes = CloudSuffixes {
    public: "servicebus.windows.net",
    us_government: "servicebus.usgovcloudapi.net",
    china: "servicebus.chinacloudapi.cn",
};
const API_VERSION: &str = "2021-05";
const PAGE: usize = 100;

const EXAMPLE: Example = Example::new(&[("queueName", "orders")], &["queueName", "connection"])
    .with_auth(&[(
        "connection",
        "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=v",
    )]);

/// `azure-servicebus`.
pub static DESCRIPTOR: Descriptor =
    Descriptor::new::<ServiceBusScaler>("azure-servicebus", EXAMPLE);

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
    pub endpoint: SasEndpoint,
    /// `cloud` / `endpointSuffix` resolved (used to build a namespace host from `namespace`).
    pub endpoint_suffix: String,
    /// From `metricType`.
    pub metric_type: MetricTargetKind,
}

/// The trigger's parameters, in the order they are read.
#[derive(ScalerMetadata)]
struct ServiceBusParams {
    #[param(name = "queueName")]
    queue: Option<String>,
    #[param(name = "topicName")]
    topic: Option<String>,
    #[param(name = "subscriptionName")]
    subscription: Option<String>,
    #[param(name = "messageCount", default = 5)]
    message_count: i64,
    #[param(name = "activationMessageCount")]
    activation_message_count: Option<i64>,
    #[param(flatten)]
    connection: ConnectionParams,
    /// Accepted (pod identity names the namespace); a connection string names its own.
    #[param(name = "namespace")]
    _namespace: Option<String>,
    #[param(name = "useRegex")]
    use_regex: Option<bool>,
    #[param(name = "operation", one_of = ["sum", "max", "avg"], default = "sum")]
    operation: String,
    #[param(flatten)]
    cloud: CloudParams,
}

/// Parses a trigger without I/O.
pub fn parse(config: &ScalerConfig) -> Result<ServiceBusMetadata, ScalerError> {
    let metric_type = config.external_metric_type()?;
    let mut p = MetadataParser::new(config);
    let ServiceBusParams {
        queue,
        topic,
        subscription,
        message_count,
        activation_message_count,
        connection: ConnectionParams { connection },
        _namespace: _,
        use_regex,
        operation,
        cloud,
    } = ServiceBusParams::from_params(&mut p);
    let activation_message_count = activation_message_count.unwrap_or(0);
    let use_regex = use_regex.unwrap_or(false);
    let operation = match operation.as_str() {
        "max" => Operation::Max,
        "avg" => Operation::Avg,
        _ => Operation::Sum,
    };

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
        cloud.suffix(&SUFFIXES).unwrap_or_else(|message| {
            p.error("cloud", message);
            String::new()
        })
    } else {
        cloud.suffix(&SUFFIXES).unwrap_or_default()
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

/// The management API of one namespace over the shared HTTP client.
#[derive(Debug)]
pub struct ServiceBusClient {
    endpoint: SasEndpoint,
    http: Lease<HttpClient>,
}

impl ServiceBusClient {
    /// No I/O: the HTTP client connects on first use.
    pub fn new(endpoint: SasEndpoint, http: Lease<HttpClient>) -> Self {
        Self { endpoint, http }
    }

    async fn get(&self, path_and_query: &str) -> Result<Option<Vec<EntityCount>>, BackendError> {
        let url = format!("{}/{path_and_query}", self.endpoint.base_url);
        let request = GetRequest {
            url: url.clone(),
            headers: vec![
                ("authorization".to_owned(), self.endpoint.authorization()),
                ("accept".to_owned(), "application/xml".to_owned()),
            ],
            basic_auth: None,
        };
        let response = self
            .http
            .get(&request)
            .await
            .map_err(|e| e.context(format!("request to {url} failed")))?;
        if response.status == 404 {
            return Ok(None);
        }
        if !(200..300).contains(&response.status) {
            let text = String::from_utf8_lossy(&response.body);
            return Err(status_error(
                response.status,
                format!(
                    "Service Bus answered {}: {}",
                    status_text(response.status),
                    text.chars().take(300).collect::<String>()
                ),
            ));
        }
        parse_entities(&response.body).map(Some)
    }

    /// `ActiveMessageCount` of queue `name`; `None` when it does not exist.
    pub async fn queue_active_count(&self, name: &str) -> Result<Option<i64>, BackendError> {
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
    ) -> Result<Option<i64>, BackendError> {
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
    pub async fn list_queues(&self) -> Result<Vec<EntityCount>, BackendError> {
        self.list("$Resources/Queues").await
    }

    /// Every subscription of `topic` with its active count (paged).
    pub async fn list_subscriptions(&self, topic: &str) -> Result<Vec<EntityCount>, BackendError> {
        self.list(&format!(
            "{}/Subscriptions",
            utf8_percent_encode(topic, PATH)
        ))
        .await
    }

    async fn list(&self, path: &str) -> Result<Vec<EntityCount>, BackendError> {
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
pub fn parse_entities(xml: &[u8]) -> Result<Vec<EntityCount>, BackendError> {
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
                    .map_err(|e| BackendError::protocol(format!("invalid Service Bus XML: {e}")))?
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
                        *active = text.parse().map_err(|e| {
                            BackendError::protocol(format!(
                                "invalid ActiveMessageCount {text:?}: {e}"
                            ))
                        })?;
                    }
                    _ => {}
                }
            }
            Ok(Event::Eof) => return Ok(entries),
            Ok(_) => {}
            Err(e) => {
                return Err(BackendError::protocol(format!(
                    "invalid Service Bus XML: {e}"
                )));
            }
        }
        buf.clear();
    }
}

/// A connected `azure-servicebus` trigger.
pub struct ServiceBusScaler {
    metadata: ServiceBusMetadata,
    client: ServiceBusClient,
}

impl ServiceBusScaler {
    async fn count(&self) -> Result<i64, BackendError> {
        let matching = |entities: Vec<EntityCount>, regex: &Regex| -> Vec<i64> {
            entities
                .into_iter()
                .filter(|e| regex.is_match(&e.name))
                .map(|e| e.active)
                .collect()
        };
        let client = &self.client;
        match (&self.metadata.entity, &self.metadata.regex) {
            (Entity::Queue(q), None) => client
                .queue_active_count(q)
                .await?
                .ok_or_else(|| BackendError::not_found(format!("queue {q} doesn't exist"))),
            (
                Entity::Subscription {
                    topic,
                    subscription,
                },
                None,
            ) => client
                .subscription_active_count(topic, subscription)
                .await?
                .ok_or_else(|| {
                    BackendError::not_found(format!(
                        "subscription {subscription} doesn't exist in topic {topic}"
                    ))
                }),
            (Entity::Queue(_), Some(regex)) => {
                let all = client.list_queues().await?;
                Ok(combine(self.metadata.operation, &matching(all, regex)))
            }
            (Entity::Subscription { topic, .. }, Some(regex)) => {
                let all = client.list_subscriptions(topic).await?;
                Ok(combine(self.metadata.operation, &matching(all, regex)))
            }
        }
    }
}

impl ScalerKind for ServiceBusScaler {
    type Metadata = ServiceBusMetadata;

    fn parse(config: &ScalerConfig) -> Result<ServiceBusMetadata, ScalerError> {
        parse(config)
    }

    fn params() -> Vec<ParamInfo> {
        ServiceBusParams::params()
    }

    fn metric_specs(
        metadata: &ServiceBusMetadata,
        config: &ScalerConfig,
    ) -> Option<Vec<MetricSpec>> {
        Some(vec![MetricSpec::external(
            metric_name(config.trigger_index, metadata),
            MetricTarget::count(metadata.metric_type, metadata.message_count),
        )])
    }

    /// Takes a share of the process's HTTP client (no I/O: it connects on first use).
    async fn connect(
        metadata: ServiceBusMetadata,
        _config: &ScalerConfig,
        pools: &Pools,
    ) -> Result<Self, ConnectError> {
        let http = http_client(pools).await?;
        let client = ServiceBusClient::new(metadata.endpoint.clone(), http);
        Ok(Self { metadata, client })
    }

    async fn read(&self, metric_name: &str) -> Result<Reading, BackendError> {
        let count = self.count().await?;
        Ok(Reading::count(
            metric_name,
            count,
            self.metadata.activation_message_count,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            fn entity_xml_parsing_never_panics(s in ".{0,200}") {
                let _ = parse_entities(s.as_bytes());
            }
        }
    }
}
