//! `kafka`: consumer-group lag (latest offset − committed offset) summed over a topic's
//! partitions (or over every topic the group committed to), against `lagThreshold`. Polls use the
//! cluster's shared admin client and ask for the metadata of the needed topics only.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;

use crate::clients::kafka::{
    CommittedOffset, KafkaClient, KafkaEndpoint, KafkaSasl, PartitionInfo, PerPartition,
};
use crate::config::{MetricTargetKind, ScalerConfig};
use crate::error::ScalerError;
use crate::metrics::{MetricSpec, MetricTarget, MetricValue, normalized_metric_name};
use crate::params::{AUTH_PARAMS, METADATA_AUTH, METADATA_ENV, MetadataParser};
use crate::pools::{Lease, Pools};
use crate::scaler::Scaler;
use crate::tls::TlsSettings;

/// Backstop for one poll, above the client's own connect and request timeouts.
const POLL_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a group without a committed offset would start reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetResetPolicy {
    /// `latest` (default).
    Latest,
    /// `earliest`.
    Earliest,
}

/// SASL mechanisms KEDA accepts; only some can be spoken by this client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaslMechanism {
    /// `none` or absent.
    None,
    /// `plaintext`.
    Plaintext,
    /// `scram_sha256`.
    ScramSha256,
    /// `scram_sha512`.
    ScramSha512,
    /// `oauthbearer` (accepted by the parser, not supported by the client).
    OAuthBearer,
    /// `gssapi` (accepted by the parser, not supported by the client).
    Gssapi,
}

/// Parsed `kafka` trigger.
#[derive(Clone, Debug, PartialEq)]
pub struct KafkaMetadata {
    /// `bootstrapServers`.
    pub bootstrap_servers: Vec<String>,
    /// `consumerGroup`.
    pub group: String,
    /// `topic`; empty = every topic the group committed offsets for.
    pub topic: String,
    /// `partitionLimitation` (only with a topic).
    pub partition_limitation: Vec<i32>,
    /// `lagThreshold` (default 10, > 0).
    pub lag_threshold: i64,
    /// `activationLagThreshold` (default 0, ≥ 0).
    pub activation_lag_threshold: i64,
    /// `offsetResetPolicy`.
    pub offset_reset_policy: OffsetResetPolicy,
    /// `allowIdleConsumers`.
    pub allow_idle_consumers: bool,
    /// `excludePersistentLag`.
    pub exclude_persistent_lag: bool,
    /// `scaleToZeroOnInvalidOffset`.
    pub scale_to_zero_on_invalid_offset: bool,
    /// `limitToPartitionsWithLag`.
    pub limit_to_partitions_with_lag: bool,
    /// `ensureEvenDistributionOfPartitions`.
    pub ensure_even_distribution: bool,
    /// `sasl`.
    pub sasl: SaslMechanism,
    /// The cluster identity the scaler's client is pooled under.
    pub endpoint: KafkaEndpoint,
    /// From the trigger's `metricType`.
    pub metric_type: MetricTargetKind,
}

/// Parses a `kafka` trigger without any I/O.
#[allow(clippy::too_many_lines)]
pub fn parse(config: &ScalerConfig) -> Result<KafkaMetadata, ScalerError> {
    let metric_type = config.external_metric_type()?;
    let mut p = MetadataParser::new(config);
    let bootstrap: String = p.param("bootstrapServers").from(METADATA_ENV).required();
    let group: String = p.param("consumerGroup").from(METADATA_ENV).required();
    let topic: String = p
        .param("topic")
        .from(METADATA_ENV)
        .with_default(String::new());
    let limitation = p.param("partitionLimitation").optional::<String>();
    let lag_threshold = p.param("lagThreshold").with_default(10_i64);
    let activation_lag_threshold = p.param("activationLagThreshold").with_default(0_i64);
    let policy: String = p
        .param("offsetResetPolicy")
        .one_of(&["latest", "earliest"])
        .with_default("latest".to_owned());
    let allow_idle_consumers = p.param("allowIdleConsumers").with_default(false);
    let exclude_persistent_lag = p.param("excludePersistentLag").with_default(false);
    let scale_to_zero_on_invalid_offset = p.param("scaleToZeroOnInvalidOffset").with_default(false);
    let limit_to_partitions_with_lag = p.param("limitToPartitionsWithLag").with_default(false);
    let ensure_even_distribution = p
        .param("ensureEvenDistributionOfPartitions")
        .with_default(false);
    let full_metadata = p.param("fullMetadata").with_default(true);
    let version = p.param("version").optional::<String>();
    let tls: String = p
        .param("tls")
        .from(METADATA_AUTH)
        .one_of(&["enable", "disable"])
        .with_default("disable".to_owned());
    let unsafe_ssl = p.param("unsafeSsl").with_default(false);
    let ca = p.param("ca").from(AUTH_PARAMS).optional::<String>();
    let cert = p.param("cert").from(AUTH_PARAMS).optional::<String>();
    let key = p.param("key").from(AUTH_PARAMS).optional::<String>();
    let key_password = p
        .param("keyPassword")
        .from(AUTH_PARAMS)
        .optional::<String>();
    let sasl: String = p
        .param("sasl")
        .from(METADATA_AUTH)
        .one_of(&[
            "none",
            "plaintext",
            "scram_sha256",
            "scram_sha512",
            "oauthbearer",
            "gssapi",
        ])
        .with_default("none".to_owned());
    let username = p.param("username").from(AUTH_PARAMS).optional::<String>();
    let password = p.param("password").from(AUTH_PARAMS).optional::<String>();
    let token_provider: String = p
        .param("saslTokenProvider")
        .from(METADATA_AUTH)
        .one_of(&["bearer", "aws_msk_iam"])
        .with_default("bearer".to_owned());
    let _scopes = p.param("scopes").from(AUTH_PARAMS).optional::<String>();
    let token_uri = p
        .param("oauthTokenEndpointUri")
        .from(AUTH_PARAMS)
        .optional::<String>();
    let extensions = p
        .param("oauthExtensions")
        .from(AUTH_PARAMS)
        .optional::<String>();
    let keytab = p.param("keytab").from(AUTH_PARAMS).optional::<String>();
    let realm = p.param("realm").from(AUTH_PARAMS).optional::<String>();
    let kerberos_config = p
        .param("kerberosConfig")
        .from(AUTH_PARAMS)
        .optional::<String>();
    let _service = p
        .param("kerberosServiceName")
        .from(AUTH_PARAMS)
        .optional::<String>();
    let _disable_fast = p
        .param("kerberosDisableFAST")
        .from(AUTH_PARAMS)
        .with_default(false);
    let aws_region = p.param("awsRegion").optional::<String>();

    let bootstrap_servers: Vec<String> = bootstrap
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let partition_limitation = match (&limitation, topic.is_empty()) {
        (Some(raw), false) => parse_partition_limitation(raw).unwrap_or_else(|e| {
            p.error("partitionLimitation", e);
            Vec::new()
        }),
        _ => Vec::new(),
    };
    if lag_threshold <= 0 {
        p.error("lagThreshold", "\"lagThreshold\" must be positive number");
    }
    if activation_lag_threshold < 0 {
        p.error(
            "activationLagThreshold",
            "\"activationLagThreshold\" must be a non-negative number",
        );
    }
    if allow_idle_consumers && limit_to_partitions_with_lag {
        p.error(
            "allowIdleConsumers",
            "allowIdleConsumers and limitToPartitionsWithLag cannot be set simultaneously",
        );
    }
    if limit_to_partitions_with_lag && topic.is_empty() {
        p.error(
            "topic",
            "topic must be specified when using limitToPartitionsWithLag",
        );
    }
    if limit_to_partitions_with_lag && ensure_even_distribution {
        p.error(
            "ensureEvenDistributionOfPartitions",
            "limitToPartitionsWithLag and ensureEvenDistributionOfPartitions cannot be set simultaneously",
        );
    }
    if ensure_even_distribution && topic.is_empty() {
        p.error(
            "topic",
            "topic must be specified when using ensureEvenDistributionOfPartitions",
        );
    }
    if !full_metadata && topic.is_empty() {
        p.error(
            "topic",
            "topic must be specified when fullMetadata is false",
        );
    }
    if let Some(v) = &version
        && !is_kafka_version(v)
    {
        p.error("version", format!("invalid kafka version {v:?}"));
    }

    let tls = if tls == "enable" {
        if cert.is_some() && key.is_none() {
            p.error("key", "key must be provided with cert");
        }
        if key.is_some() && cert.is_none() {
            p.error("cert", "cert must be provided with key");
        }
        let settings = TlsSettings {
            cert,
            key,
            key_password,
            ca,
            unsafe_ssl,
        };
        if !p.has_errors()
            && let Err(e) = settings.validate()
        {
            p.error(e.parameter, e.message);
        }
        Some(settings)
    } else {
        None
    };

    let mechanism = match sasl.as_str() {
        "plaintext" => SaslMechanism::Plaintext,
        "scram_sha256" => SaslMechanism::ScramSha256,
        "scram_sha512" => SaslMechanism::ScramSha512,
        "oauthbearer" => SaslMechanism::OAuthBearer,
        "gssapi" => SaslMechanism::Gssapi,
        _ => SaslMechanism::None,
    };
    let credentials = || {
        (
            username.clone().unwrap_or_default(),
            password.clone().unwrap_or_default(),
        )
    };
    match mechanism {
        SaslMechanism::Plaintext | SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => {
            if username.is_none() {
                p.error("username", "no username given");
            }
            if password.is_none() {
                p.error("password", "no password given");
            }
        }
        SaslMechanism::OAuthBearer if token_provider == "aws_msk_iam" => {
            if tls.is_none() {
                p.error("tls", "TLS is required for AWS MSK authentication");
            }
            if aws_region.is_none() {
                p.error("awsRegion", "no awsRegion given");
            }
        }
        SaslMechanism::OAuthBearer => {
            if username.is_none() {
                p.error("username", "no username given");
            }
            if password.is_none() {
                p.error("password", "no password given");
            }
            if token_uri.is_none() {
                p.error("oauthTokenEndpointUri", "no oauth token endpoint uri given");
            }
            if let Some(ext) = &extensions
                && ext.split(',').any(|kv| kv.split('=').count() != 2)
            {
                p.error(
                    "oauthExtensions",
                    "invalid OAuthBearer extension, must be of format key=value",
                );
            }
        }
        SaslMechanism::Gssapi => {
            if username.is_none() {
                p.error("username", "no username given");
            }
            if password.is_some() == keytab.is_some() {
                p.error(
                    "keytab",
                    "exactly one of 'password' or 'keytab' must be provided for GSSAPI authentication",
                );
            }
            if realm.is_none() {
                p.error("realm", "no realm given");
            }
            if kerberos_config.is_none() {
                p.error(
                    "kerberosConfig",
                    "no Kerberos configuration file (kerberosConfig) given",
                );
            }
        }
        SaslMechanism::None => {}
    }
    let sasl_settings = match mechanism {
        SaslMechanism::Plaintext => {
            let (username, password) = credentials();
            KafkaSasl::Plain { username, password }
        }
        SaslMechanism::ScramSha256 => {
            let (username, password) = credentials();
            KafkaSasl::ScramSha256 { username, password }
        }
        SaslMechanism::ScramSha512 => {
            let (username, password) = credentials();
            KafkaSasl::ScramSha512 { username, password }
        }
        _ => KafkaSasl::None,
    };

    let report = p.finish()?;
    if !report.unmatched_metadata_keys.is_empty() {
        tracing::debug!(
            trigger = %config.trigger_label(),
            keys = ?report.unmatched_metadata_keys,
            "metadata keys not used by the kafka scaler"
        );
    }
    Ok(KafkaMetadata {
        endpoint: KafkaEndpoint {
            bootstrap_servers: bootstrap_servers.clone(),
            tls,
            sasl: sasl_settings,
        },
        bootstrap_servers,
        group,
        topic,
        partition_limitation,
        lag_threshold,
        activation_lag_threshold,
        offset_reset_policy: if policy == "earliest" {
            OffsetResetPolicy::Earliest
        } else {
            OffsetResetPolicy::Latest
        },
        allow_idle_consumers,
        exclude_persistent_lag,
        scale_to_zero_on_invalid_offset,
        limit_to_partitions_with_lag,
        ensure_even_distribution,
        sasl: mechanism,
        metric_type,
    })
}

/// `1,2,3-5` → `[1, 2, 3, 4, 5]`; whitespace around items and range ends is allowed.
pub fn parse_partition_limitation(raw: &str) -> Result<Vec<i32>, String> {
    if raw.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for item in raw.split(',') {
        let item = item.trim();
        if item.contains('-') {
            let bounds: Vec<&str> = item.split('-').map(str::trim).collect();
            let [a, b] = bounds.as_slice() else {
                return Err(format!("invalid partition limitation range: {item}"));
            };
            let (Ok(a), Ok(b)) = (a.parse::<i32>(), b.parse::<i32>()) else {
                return Err(format!("invalid partition limitation range: {item}"));
            };
            out.extend(a..=b);
        } else {
            let n = item
                .parse::<i32>()
                .map_err(|_| format!("invalid partition limitation: {item}"))?;
            out.push(n);
        }
    }
    Ok(out)
}

/// Kafka version strings as Sarama parses them: `x.y.z`, or `0.x.y.z` for the pre-1.0 releases.
fn is_kafka_version(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    let numeric = parts
        .iter()
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    numeric && (parts.len() == 3 || (parts.len() == 4 && parts.first() == Some(&"0")))
}

/// The smallest divisor `f` of `partitions` with `f × threshold ≥ lag` (else `partitions`).
pub fn next_factor_balancing_partitions(lag: i64, partitions: i64, threshold: i64) -> i64 {
    (1..=partitions)
        .filter(|f| partitions % f == 0)
        .find(|f| f.saturating_mul(threshold) >= lag)
        .unwrap_or(partitions)
}

/// Remembered committed offsets for `excludePersistentLag`.
pub type PreviousOffsets = HashMap<(String, i32), i64>;

/// Lag from one snapshot of offsets: `(metric lag, lag including persistent lag)`.
pub fn total_lag(
    meta: &KafkaMetadata,
    latest: &PerPartition<i64>,
    committed: &PerPartition<CommittedOffset>,
    previous: &mut PreviousOffsets,
) -> Result<(i64, i64), String> {
    let (mut total, mut with_persistent, mut with_lag, mut partitions) =
        (0_i64, 0_i64, 0_i64, 0_i64);
    for (topic, offsets) in latest {
        for (&partition, &latest_offset) in offsets {
            let (lag, lag_persistent) =
                partition_lag(meta, topic, partition, latest_offset, committed, previous)?;
            total += lag;
            with_persistent += lag_persistent;
            if lag > 0 {
                with_lag += 1;
            }
        }
        partitions += i64::try_from(offsets.len()).unwrap_or(i64::MAX);
    }
    if !meta.allow_idle_consumers
        || meta.limit_to_partitions_with_lag
        || meta.ensure_even_distribution
    {
        let mut upper_bound = partitions;
        if meta.ensure_even_distribution {
            total = next_factor_balancing_partitions(total, partitions, meta.lag_threshold)
                * meta.lag_threshold;
        }
        if meta.limit_to_partitions_with_lag {
            upper_bound = with_lag;
        }
        if total / meta.lag_threshold > upper_bound {
            total = upper_bound * meta.lag_threshold;
        }
    }
    Ok((total, with_persistent))
}

fn partition_lag(
    meta: &KafkaMetadata,
    topic: &str,
    partition: i32,
    latest: i64,
    committed: &PerPartition<CommittedOffset>,
    previous: &mut PreviousOffsets,
) -> Result<(i64, i64), String> {
    let Some(block) = committed.get(topic).and_then(|p| p.get(&partition)) else {
        return Err(format!(
            "error finding offset block for topic {topic} and partition {partition}"
        ));
    };
    if block.error_code != 0 {
        return Err(format!(
            "error finding offset block for topic {topic} and partition {partition}: {}",
            crate::clients::kafka::ResponseErrorText(block.error_code)
        ));
    }
    let consumer = block.offset;
    if consumer == -1 {
        let lag = match (
            meta.offset_reset_policy,
            meta.scale_to_zero_on_invalid_offset,
        ) {
            (_, true) => 0,
            (OffsetResetPolicy::Latest, false) => 1,
            (OffsetResetPolicy::Earliest, false) => latest,
        };
        tracing::debug!(topic, partition, lag, "no committed offset for the group");
        return Ok((lag, lag));
    }
    let lag = latest - consumer;
    if meta.exclude_persistent_lag {
        let key = (topic.to_owned(), partition);
        match previous.insert(key, consumer) {
            Some(before) if before == consumer => return Ok((0, lag)),
            _ => {}
        }
    }
    Ok((lag, lag))
}

/// The built scaler.
pub struct KafkaScaler {
    trigger: String,
    metric_name: String,
    metadata: KafkaMetadata,
    // `None` after `close()`.
    client: Mutex<Option<Lease<KafkaClient>>>,
    previous_offsets: Mutex<PreviousOffsets>,
}

impl KafkaScaler {
    /// Parses `config` and takes a share of the pooled client of its cluster, connecting if no
    /// scaler uses that cluster yet.
    pub async fn new(config: &ScalerConfig, pools: &Pools) -> Result<Self, ScalerError> {
        let metadata = parse(config)?;
        let trigger = config.trigger_label();
        if matches!(
            metadata.sasl,
            SaslMechanism::OAuthBearer | SaslMechanism::Gssapi
        ) {
            return Err(ScalerError::config(
                trigger,
                "sasl",
                format!(
                    "sasl mechanism {:?} is not supported by keda-rs yet (supported: plaintext, scram_sha256, scram_sha512)",
                    metadata.sasl
                ),
            ));
        }
        let lease = pools
            .kafka()
            .get_or_connect(&metadata.endpoint, || {
                KafkaClient::connect(&metadata.endpoint)
            })
            .await
            .map_err(|message| ScalerError::backend(trigger.clone(), message))?;
        let name = if metadata.topic.is_empty() {
            format!("kafka-{}-topics", metadata.group)
        } else {
            format!("kafka-{}", metadata.topic)
        };
        Ok(Self {
            metric_name: normalized_metric_name(config.trigger_index, &name),
            trigger,
            metadata,
            client: Mutex::new(Some(lease)),
            previous_offsets: Mutex::new(PreviousOffsets::new()),
        })
    }

    /// The parsed trigger.
    pub fn metadata(&self) -> &KafkaMetadata {
        &self.metadata
    }

    /// The partitions to measure: the topic's (within `partitionLimitation`), or those of every
    /// topic the group committed to.
    async fn partitions(
        &self,
        client: &KafkaClient,
    ) -> Result<Vec<(String, PartitionInfo)>, String> {
        let meta = &self.metadata;
        let topics: Vec<String> = if meta.topic.is_empty() {
            client
                .committed_offsets(&meta.group, None)
                .await
                .map_err(|e| format!("error listing consumer group offsets: {e}"))?
                .into_keys()
                .collect()
        } else {
            vec![meta.topic.clone()]
        };
        if topics.is_empty() {
            return Ok(Vec::new());
        }
        let described = client
            .metadata(&topics)
            .await
            .map_err(|e| format!("error describing topics: {e}"))?;
        if !meta.topic.is_empty() && described.len() != 1 {
            return Err(format!(
                "expected only 1 topic metadata, got {}",
                described.len()
            ));
        }
        let mut out = Vec::new();
        for topic in described {
            if topic.error_code != 0 {
                return Err(format!(
                    "error describing topics: topic {}: {}",
                    topic.name,
                    crate::clients::kafka::ResponseErrorText(topic.error_code)
                ));
            }
            let before = out.len();
            for p in topic.partitions {
                if meta.partition_limitation.is_empty()
                    || meta.partition_limitation.contains(&p.partition)
                {
                    out.push((topic.name.clone(), p));
                }
            }
            if out.len() == before {
                return Err(format!(
                    "expected at least one active partition within the topic '{}'",
                    topic.name
                ));
            }
        }
        Ok(out)
    }

    async fn lag(&self) -> Result<(i64, i64), ScalerError> {
        let client = self
            .client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| ScalerError::backend(&self.trigger, "scaler is closed"))?;
        let work = async {
            let partitions = self.partitions(&client).await?;
            if partitions.is_empty() {
                return Ok((0, 0));
            }
            let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            for (topic, p) in &partitions {
                by_topic.entry(topic.clone()).or_default().push(p.partition);
            }
            let (committed, latest) = tokio::join!(
                client.committed_offsets(&self.metadata.group, Some(&by_topic)),
                client.latest_offsets(&partitions)
            );
            let committed =
                committed.map_err(|e| format!("error listing consumer group offsets: {e}"))?;
            let latest = latest.map_err(|e| format!("error listing topic offsets: {e}"))?;
            let mut previous = self
                .previous_offsets
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            total_lag(&self.metadata, &latest, &committed, &mut previous)
        };
        tokio::time::timeout(POLL_TIMEOUT, work)
            .await
            .map_err(|_| {
                ScalerError::backend(
                    &self.trigger,
                    format!("no answer from the kafka cluster within {POLL_TIMEOUT:?}"),
                )
            })?
            .map_err(|e| ScalerError::backend(&self.trigger, e))
    }
}

#[async_trait]
impl Scaler for KafkaScaler {
    fn metric_specs(&self) -> Vec<MetricSpec> {
        #[allow(clippy::cast_precision_loss)]
        let target = self.metadata.lag_threshold as f64;
        vec![MetricSpec::external(
            self.metric_name.clone(),
            MetricTarget::new(self.metadata.metric_type, target),
        )]
    }

    async fn metrics_and_activity(
        &self,
        metric_name: &str,
    ) -> Result<(Vec<MetricValue>, bool), ScalerError> {
        let (lag, lag_with_persistent) = self.lag().await.inspect_err(|e| {
            tracing::warn!(trigger = %self.trigger, error = %e, "kafka poll failed");
        })?;
        #[allow(clippy::cast_precision_loss)]
        let value = MetricValue::new(metric_name, lag as f64);
        Ok((
            vec![value],
            lag_with_persistent > self.metadata.activation_lag_threshold,
        ))
    }

    async fn close(&self) {
        // Dropping the lease lets the pool close the client once no other scaler uses it.
        self.client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

impl std::fmt::Debug for KafkaScaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaScaler")
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
    Ok(Arc::new(KafkaScaler::new(config, pools).await?))
}
