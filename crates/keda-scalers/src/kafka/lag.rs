//! `kafka`: consumer-group lag (latest offset − committed offset) summed over a topic's
//! partitions (or over every topic the group committed to), against `lagThreshold`. Polls use the
//! cluster's shared admin client and ask for the metadata of the needed topics only.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::{
    CommittedOffset, KafkaClient, KafkaEndpoint, KafkaSasl, PartitionInfo, PerPartition,
    broker_error,
};
use crate::ScalerMetadata;
use crate::config::{MetricTargetKind, ScalerConfig};
use crate::error::{BackendError, ConnectError, ScalerError};
use crate::kind::{Descriptor, Example, Reading, ScalerKind};
use crate::metrics::{MetricSpec, MetricTarget, normalized_metric_name};
use crate::params::{FromParams, MetadataParser, ParamInfo};
use crate::pools::{Lease, Pools};
use crate::tls::TlsSettings;

const EXAMPLE: Example = Example::new(
    &[
        ("bootstrapServers", "kafka:9092"),
        ("consumerGroup", "workers"),
        ("topic", "orders"),
    ],
    &["bootstrapServers", "consumerGroup"],
);

/// `kafka`. A read may open a connection (10 s) and wait for a request (15 s), longer than the
/// default read timeout, so it gets 30 s.
pub static DESCRIPTOR: Descriptor =
    Descriptor::new::<KafkaScaler>("kafka", EXAMPLE).with_read_timeout(Duration::from_secs(30));

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

/// The parameters of a `kafka` trigger, in KEDA's order.
#[derive(ScalerMetadata)]
struct KafkaParams {
    #[param(name = "bootstrapServers", from = METADATA_ENV)]
    bootstrap_servers: String,
    #[param(name = "consumerGroup", from = METADATA_ENV)]
    group: String,
    #[param(name = "topic", from = METADATA_ENV)]
    topic: Option<String>,
    #[param(name = "partitionLimitation")]
    partition_limitation: Option<String>,
    #[param(name = "lagThreshold", default = 10)]
    lag_threshold: i64,
    #[param(name = "activationLagThreshold", default = 0)]
    activation_lag_threshold: i64,
    #[param(name = "offsetResetPolicy", one_of = ["latest", "earliest"], default = "latest")]
    offset_reset_policy: String,
    #[param(name = "allowIdleConsumers", default = false)]
    allow_idle_consumers: bool,
    #[param(name = "excludePersistentLag", default = false)]
    exclude_persistent_lag: bool,
    #[param(name = "scaleToZeroOnInvalidOffset", default = false)]
    scale_to_zero_on_invalid_offset: bool,
    #[param(name = "limitToPartitionsWithLag", default = false)]
    limit_to_partitions_with_lag: bool,
    #[param(name = "ensureEvenDistributionOfPartitions", default = false)]
    ensure_even_distribution: bool,
    #[param(name = "fullMetadata", default = true)]
    full_metadata: bool,
    #[param(name = "version")]
    version: Option<String>,
    #[param(flatten)]
    tls: KafkaTlsParams,
    #[param(flatten)]
    sasl: KafkaSaslParams,
}

/// `tls` and the client certificate it uses.
#[derive(ScalerMetadata)]
struct KafkaTlsParams {
    #[param(name = "tls", from = METADATA_AUTH, one_of = ["enable", "disable"], default = "disable")]
    tls: String,
    #[param(name = "unsafeSsl", default = false)]
    unsafe_ssl: bool,
    #[param(name = "ca", from = AUTH_PARAMS)]
    ca: Option<String>,
    #[param(name = "cert", from = AUTH_PARAMS)]
    cert: Option<String>,
    #[param(name = "key", from = AUTH_PARAMS)]
    key: Option<String>,
    #[param(name = "keyPassword", from = AUTH_PARAMS)]
    key_password: Option<String>,
}

impl KafkaTlsParams {
    /// The TLS settings when `tls=enable`; problems are recorded on `p`.
    fn settings(self, p: &mut MetadataParser<'_>) -> Option<TlsSettings> {
        if self.tls != "enable" {
            return None;
        }
        if self.cert.is_some() && self.key.is_none() {
            p.error("key", "key must be provided with cert");
        }
        if self.key.is_some() && self.cert.is_none() {
            p.error("cert", "cert must be provided with key");
        }
        let settings = TlsSettings {
            cert: self.cert,
            key: self.key,
            key_password: self.key_password,
            ca: self.ca,
            unsafe_ssl: self.unsafe_ssl,
        };
        // Decoding the PEMs only makes sense once everything else is in order.
        if !p.has_errors()
            && let Err(e) = settings.validate()
        {
            p.error(e.parameter, e.message);
        }
        Some(settings)
    }
}

/// `sasl` and the credentials of every mechanism KEDA accepts (most are only validated: the client
/// speaks PLAIN and SCRAM). No `Debug`, here and in the TLS group: they hold secrets.
#[derive(ScalerMetadata)]
struct KafkaSaslParams {
    #[param(
        name = "sasl",
        from = METADATA_AUTH,
        one_of = ["none", "plaintext", "scram_sha256", "scram_sha512", "oauthbearer", "gssapi"]
    )]
    sasl: Option<String>,
    #[param(name = "username", from = AUTH_PARAMS)]
    username: Option<String>,
    #[param(name = "password", from = AUTH_PARAMS)]
    password: Option<String>,
    #[param(name = "saslTokenProvider", from = METADATA_AUTH, one_of = ["bearer", "aws_msk_iam"])]
    token_provider: Option<String>,
    #[param(name = "scopes", from = AUTH_PARAMS)]
    _scopes: Option<String>,
    #[param(name = "oauthTokenEndpointUri", from = AUTH_PARAMS)]
    token_uri: Option<String>,
    #[param(name = "oauthExtensions", from = AUTH_PARAMS)]
    extensions: Option<String>,
    #[param(name = "keytab", from = AUTH_PARAMS)]
    keytab: Option<String>,
    #[param(name = "realm", from = AUTH_PARAMS)]
    realm: Option<String>,
    #[param(name = "kerberosConfig", from = AUTH_PARAMS)]
    kerberos_config: Option<String>,
    #[param(name = "kerberosServiceName", from = AUTH_PARAMS)]
    _kerberos_service_name: Option<String>,
    #[param(name = "kerberosDisableFAST", from = AUTH_PARAMS, default = false)]
    _kerberos_disable_fast: bool,
    #[param(name = "awsRegion")]
    aws_region: Option<String>,
}

impl KafkaSaslParams {
    /// The mechanism and the client's SASL settings; a mechanism's missing or malformed
    /// credentials are recorded on `p`.
    fn resolve(self, p: &mut MetadataParser<'_>, tls_enabled: bool) -> (SaslMechanism, KafkaSasl) {
        let mechanism = match self.sasl.as_deref() {
            Some("plaintext") => SaslMechanism::Plaintext,
            Some("scram_sha256") => SaslMechanism::ScramSha256,
            Some("scram_sha512") => SaslMechanism::ScramSha512,
            Some("oauthbearer") => SaslMechanism::OAuthBearer,
            Some("gssapi") => SaslMechanism::Gssapi,
            _ => SaslMechanism::None,
        };
        match mechanism {
            SaslMechanism::Plaintext | SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => {
                if self.username.is_none() {
                    p.error("username", "no username given");
                }
                if self.password.is_none() {
                    p.error("password", "no password given");
                }
            }
            SaslMechanism::OAuthBearer if self.token_provider.as_deref() == Some("aws_msk_iam") => {
                if !tls_enabled {
                    p.error("tls", "TLS is required for AWS MSK authentication");
                }
                if self.aws_region.is_none() {
                    p.error("awsRegion", "no awsRegion given");
                }
            }
            SaslMechanism::OAuthBearer => {
                if self.username.is_none() {
                    p.error("username", "no username given");
                }
                if self.password.is_none() {
                    p.error("password", "no password given");
                }
                if self.token_uri.is_none() {
                    p.error("oauthTokenEndpointUri", "no oauth token endpoint uri given");
                }
                if let Some(ext) = &self.extensions
                    && ext.split(',').any(|kv| kv.split('=').count() != 2)
                {
                    p.error(
                        "oauthExtensions",
                        "invalid OAuthBearer extension, must be of format key=value",
                    );
                }
            }
            SaslMechanism::Gssapi => {
                if self.username.is_none() {
                    p.error("username", "no username given");
                }
                if self.password.is_some() == self.keytab.is_some() {
                    p.error(
                        "keytab",
                        "exactly one of 'password' or 'keytab' must be provided for GSSAPI authentication",
                    );
                }
                if self.realm.is_none() {
                    p.error("realm", "no realm given");
                }
                if self.kerberos_config.is_none() {
                    p.error(
                        "kerberosConfig",
                        "no Kerberos configuration file (kerberosConfig) given",
                    );
                }
            }
            SaslMechanism::None => {}
        }
        let username = self.username.unwrap_or_default();
        let password = self.password.unwrap_or_default();
        let settings = match mechanism {
            SaslMechanism::Plaintext => KafkaSasl::Plain { username, password },
            SaslMechanism::ScramSha256 => KafkaSasl::ScramSha256 { username, password },
            SaslMechanism::ScramSha512 => KafkaSasl::ScramSha512 { username, password },
            _ => KafkaSasl::None,
        };
        (mechanism, settings)
    }
}

/// Parses a `kafka` trigger without any I/O.
pub fn parse(config: &ScalerConfig) -> Result<KafkaMetadata, ScalerError> {
    let metric_type = config.external_metric_type()?;
    let mut p = MetadataParser::new(config);
    let KafkaParams {
        bootstrap_servers: bootstrap,
        group,
        topic,
        partition_limitation: limitation,
        lag_threshold,
        activation_lag_threshold,
        offset_reset_policy: policy,
        allow_idle_consumers,
        exclude_persistent_lag,
        scale_to_zero_on_invalid_offset,
        limit_to_partitions_with_lag,
        ensure_even_distribution,
        full_metadata,
        version,
        tls,
        sasl,
    } = KafkaParams::from_params(&mut p);
    let topic = topic.unwrap_or_default();

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
    let tls = tls.settings(&mut p);
    let (mechanism, sasl_settings) = sasl.resolve(&mut p, tls.is_some());

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
            // A range wider than any real topic would only exhaust memory.
            if i64::from(b) - i64::from(a) > 1_000_000 {
                return Err(format!("invalid partition limitation range: {item}"));
            }
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
) -> Result<(i64, i64), BackendError> {
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
) -> Result<(i64, i64), BackendError> {
    let Some(block) = committed.get(topic).and_then(|p| p.get(&partition)) else {
        return Err(BackendError::protocol(format!(
            "error finding offset block for topic {topic} and partition {partition}"
        )));
    };
    if block.error_code != 0 {
        return Err(broker_error(
            format!("error finding offset block for topic {topic} and partition {partition}"),
            block.error_code,
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

/// A connected `kafka` trigger.
pub struct KafkaScaler {
    metadata: KafkaMetadata,
    client: Lease<KafkaClient>,
    previous_offsets: Mutex<PreviousOffsets>,
}

impl KafkaScaler {
    /// The partitions to measure: the topic's (within `partitionLimitation`), or those of every
    /// topic the group committed to.
    async fn partitions(&self) -> Result<Vec<(String, PartitionInfo)>, BackendError> {
        let meta = &self.metadata;
        let client = &self.client;
        let topics: Vec<String> = if meta.topic.is_empty() {
            client
                .committed_offsets(&meta.group, None)
                .await
                .map_err(|e| e.context("error listing consumer group offsets"))?
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
            .map_err(|e| e.context("error describing topics"))?;
        if !meta.topic.is_empty() && described.len() != 1 {
            return Err(BackendError::protocol(format!(
                "expected only 1 topic metadata, got {}",
                described.len()
            )));
        }
        let mut out = Vec::new();
        for topic in described {
            if topic.error_code != 0 {
                return Err(broker_error(
                    format!("error describing topics: topic {}", topic.name),
                    topic.error_code,
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
                return Err(BackendError::not_found(format!(
                    "expected at least one active partition within the topic '{}'",
                    topic.name
                )));
            }
        }
        Ok(out)
    }

    /// `(metric lag, lag including persistent lag)`.
    async fn lag(&self) -> Result<(i64, i64), BackendError> {
        let partitions = self.partitions().await?;
        if partitions.is_empty() {
            return Ok((0, 0));
        }
        let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (topic, p) in &partitions {
            by_topic.entry(topic.clone()).or_default().push(p.partition);
        }
        let (committed, latest) = tokio::join!(
            self.client
                .committed_offsets(&self.metadata.group, Some(&by_topic)),
            self.client.latest_offsets(&partitions)
        );
        let committed = committed.map_err(|e| e.context("error listing consumer group offsets"))?;
        let latest = latest.map_err(|e| e.context("error listing topic offsets"))?;
        let mut previous = self
            .previous_offsets
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        total_lag(&self.metadata, &latest, &committed, &mut previous)
    }
}

impl ScalerKind for KafkaScaler {
    type Metadata = KafkaMetadata;

    fn parse(config: &ScalerConfig) -> Result<KafkaMetadata, ScalerError> {
        parse(config)
    }

    fn params() -> Vec<ParamInfo> {
        KafkaParams::params()
    }

    fn metric_specs(metadata: &KafkaMetadata, config: &ScalerConfig) -> Option<Vec<MetricSpec>> {
        let name = if metadata.topic.is_empty() {
            format!("kafka-{}-topics", metadata.group)
        } else {
            format!("kafka-{}", metadata.topic)
        };
        Some(vec![MetricSpec::external(
            normalized_metric_name(config.trigger_index, &name),
            MetricTarget::count(metadata.metric_type, metadata.lag_threshold),
        )])
    }

    /// Takes a share of the pooled client of the cluster, connecting if no scaler uses that
    /// cluster yet.
    async fn connect(
        metadata: KafkaMetadata,
        _config: &ScalerConfig,
        pools: &Pools,
    ) -> Result<Self, ConnectError> {
        if matches!(
            metadata.sasl,
            SaslMechanism::OAuthBearer | SaslMechanism::Gssapi
        ) {
            return Err(ConnectError::config(
                "sasl",
                format!(
                    "sasl mechanism {:?} is not supported by keda-rs yet (supported: plaintext, scram_sha256, scram_sha512)",
                    metadata.sasl
                ),
            ));
        }
        let client = pools
            .lease(&metadata.endpoint, || {
                KafkaClient::connect(&metadata.endpoint)
            })
            .await?;
        Ok(Self {
            metadata,
            client,
            previous_offsets: Mutex::new(PreviousOffsets::new()),
        })
    }

    /// The metric is the (capped) lag; activity counts persistent lag too, so a stuck consumer
    /// stays active while `excludePersistentLag` hides its lag from the HPA.
    async fn read(&self, metric_name: &str) -> Result<Reading, BackendError> {
        let (lag, lag_with_persistent) = self.lag().await?;
        let mut reading = Reading::count(metric_name, lag, self.metadata.activation_lag_threshold);
        reading.active = lag_with_persistent > self.metadata.activation_lag_threshold;
        Ok(reading)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(metadata: &[(&str, &str)], auth: &[(&str, &str)]) -> ScalerConfig {
        ScalerConfig::new("kafka", 0)
            .with_metadata(metadata.iter().copied())
            .with_auth_params(auth.iter().copied())
    }

    fn meta(extra: &[(&str, &str)]) -> Result<KafkaMetadata, ScalerError> {
        let mut m = vec![
            ("bootstrapServers", "foobar:9092"),
            ("consumerGroup", "my-group"),
            ("topic", "my-topic"),
        ];
        m.extend_from_slice(extra);
        parse(&cfg(&m, &[]))
    }

    fn rejected(extra: &[(&str, &str)], parameter: &str) -> ScalerError {
        let err = meta(extra).unwrap_err();
        assert!(err.is_config(), "{err}");
        crate::testing::assert_config_error_names(&err, parameter);
        err
    }

    // The cases of KEDA's kafka_scaler_test.go table, as facts.

    #[test]
    fn required_parameters() {
        let err = parse(&cfg(&[], &[])).unwrap_err();
        assert_eq!(err.parameter(), Some("bootstrapServers"));
        assert!(err.message().contains("consumerGroup"));
        let err = parse(&cfg(&[("bootstrapServers", "a:1")], &[])).unwrap_err();
        assert_eq!(err.parameter(), Some("consumerGroup"));
    }

    #[test]
    fn defaults() {
        let m = parse(&cfg(
            &[("bootstrapServers", "a:1, b:2"), ("consumerGroup", "g")],
            &[],
        ))
        .unwrap();
        assert_eq!(m.bootstrap_servers, ["a:1", "b:2"]);
        assert_eq!(m.topic, "");
        assert_eq!(m.lag_threshold, 10);
        assert_eq!(m.activation_lag_threshold, 0);
        assert_eq!(m.offset_reset_policy, OffsetResetPolicy::Latest);
        assert!(!m.allow_idle_consumers && !m.exclude_persistent_lag);
        assert!(!m.scale_to_zero_on_invalid_offset && !m.limit_to_partitions_with_lag);
        assert_eq!(m.endpoint.tls, None);
        assert_eq!(m.endpoint.sasl, KafkaSasl::None);
    }

    #[test]
    fn partition_limitation_without_topic_is_dropped() {
        let m = parse(&cfg(
            &[
                ("bootstrapServers", "a:1"),
                ("consumerGroup", "g"),
                ("partitionLimitation", "1,2,3"),
            ],
            &[],
        ))
        .unwrap();
        assert!(m.partition_limitation.is_empty());
    }

    #[test]
    fn partition_limitation_ranges() {
        let m = meta(&[("partitionLimitation", "1-4,8,10-12")]).unwrap();
        assert_eq!(m.partition_limitation, [1, 2, 3, 4, 8, 10, 11, 12]);
        let m = meta(&[("partitionLimitation", " 1 - 4 ")]).unwrap();
        assert_eq!(m.partition_limitation, [1, 2, 3, 4]);
        let m = meta(&[("partitionLimitation", "   ")]).unwrap();
        assert!(m.partition_limitation.is_empty());
        let err = rejected(&[("partitionLimitation", "a,b,c,d")], "partitionLimitation");
        assert!(err.message().contains("invalid partition limitation: a"));
        let err = rejected(&[("partitionLimitation", "1-2-3")], "partitionLimitation");
        assert!(
            err.message()
                .contains("invalid partition limitation range: 1-2-3")
        );
    }

    #[test]
    fn thresholds() {
        for bad in ["-1", "0"] {
            let err = rejected(&[("lagThreshold", bad)], "lagThreshold");
            assert!(
                err.message()
                    .contains("\"lagThreshold\" must be positive number")
            );
        }
        rejected(
            &[("activationLagThreshold", "AA")],
            "activationLagThreshold",
        );
        let err = rejected(
            &[("activationLagThreshold", "-1")],
            "activationLagThreshold",
        );
        assert!(err.message().contains("must be a non-negative number"));
        assert_eq!(
            meta(&[("activationLagThreshold", "0")])
                .unwrap()
                .activation_lag_threshold,
            0
        );
    }

    #[test]
    fn enums_and_bools() {
        rejected(&[("offsetResetPolicy", "foo")], "offsetResetPolicy");
        assert_eq!(
            meta(&[("offsetResetPolicy", "earliest")])
                .unwrap()
                .offset_reset_policy,
            OffsetResetPolicy::Earliest
        );
        rejected(&[("allowIdleConsumers", "notvalid")], "allowIdleConsumers");
        rejected(&[("tls", "yes")], "tls");
        rejected(&[("sasl", "kerberos")], "sasl");
    }

    #[test]
    fn version_strings() {
        rejected(&[("version", "1.2.3.4")], "version");
        rejected(&[("version", "latest")], "version");
        for ok in ["1.0.0", "2.8.0", "0.10.2.1", "3.9.0"] {
            meta(&[("version", ok)]).unwrap();
        }
    }

    #[test]
    fn conflicting_options() {
        let err = rejected(
            &[
                ("allowIdleConsumers", "true"),
                ("limitToPartitionsWithLag", "true"),
            ],
            "allowIdleConsumers",
        );
        assert!(err.message().contains("cannot be set simultaneously"));
        let no_topic = |extra: &[(&str, &str)]| {
            let mut m = vec![("bootstrapServers", "a:1"), ("consumerGroup", "g")];
            m.extend_from_slice(extra);
            parse(&cfg(&m, &[])).unwrap_err()
        };
        assert!(
            no_topic(&[("limitToPartitionsWithLag", "true")])
                .message()
                .contains("topic must be specified when using limitToPartitionsWithLag")
        );
        assert!(
            no_topic(&[("fullMetadata", "false")])
                .message()
                .contains("topic must be specified when fullMetadata is false")
        );
        assert!(
            no_topic(&[("ensureEvenDistributionOfPartitions", "true")])
                .message()
                .contains("topic must be specified when using ensureEvenDistributionOfPartitions")
        );
        rejected(
            &[
                ("limitToPartitionsWithLag", "true"),
                ("ensureEvenDistributionOfPartitions", "true"),
            ],
            "ensureEvenDistributionOfPartitions",
        );
    }

    fn with_auth(auth: &[(&str, &str)]) -> Result<KafkaMetadata, ScalerError> {
        parse(&cfg(
            &[
                ("bootstrapServers", "a:1"),
                ("consumerGroup", "g"),
                ("topic", "t"),
            ],
            auth,
        ))
    }

    fn pem() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn sasl_needs_credentials() {
        let err = with_auth(&[("sasl", "plaintext"), ("username", "admin")]).unwrap_err();
        assert_eq!(err.parameter(), Some("password"));
        assert!(err.message().contains("no password given"));
        let err = with_auth(&[("sasl", "scram_sha256"), ("password", "pw")]).unwrap_err();
        assert_eq!(err.parameter(), Some("username"));
        let m = with_auth(&[
            ("sasl", "scram_sha512 "),
            ("username", "u"),
            ("password", "p"),
        ])
        .unwrap();
        assert_eq!(
            m.endpoint.sasl,
            KafkaSasl::ScramSha512 {
                username: "u".into(),
                password: "p".into()
            }
        );
        // username/password are read from auth params only.
        let err = parse(&cfg(
            &[
                ("bootstrapServers", "a:1"),
                ("consumerGroup", "g"),
                ("sasl", "plaintext"),
                ("username", "u"),
                ("password", "p"),
            ],
            &[],
        ))
        .unwrap_err();
        assert_eq!(err.parameter(), Some("username"));
    }

    #[test]
    fn oauthbearer_and_gssapi_rules() {
        with_auth(&[
            ("sasl", "oauthbearer"),
            ("username", "client"),
            ("password", "secret"),
            ("oauthTokenEndpointUri", "https://idp/token"),
        ])
        .unwrap();
        let err = with_auth(&[
            ("sasl", "oauthbearer"),
            ("username", "client"),
            ("password", "secret"),
            ("oauthTokenEndpointUri", ""),
        ])
        .unwrap_err();
        assert_eq!(err.parameter(), Some("oauthTokenEndpointUri"));
        let err = with_auth(&[
            ("sasl", "oauthbearer"),
            ("username", "c"),
            ("password", "s"),
            ("oauthTokenEndpointUri", "https://idp/token"),
            ("oauthExtensions", "a=b,c"),
        ])
        .unwrap_err();
        assert_eq!(err.parameter(), Some("oauthExtensions"));
        let err = with_auth(&[
            ("sasl", "oauthbearer"),
            ("saslTokenProvider", "aws_msk_iam"),
        ])
        .unwrap_err();
        assert!(
            err.message()
                .contains("TLS is required for AWS MSK authentication")
        );
        assert!(err.message().contains("no awsRegion given"));
        let gssapi = |extra: &[(&str, &str)]| {
            let mut auth = vec![
                ("sasl", "gssapi"),
                ("username", "u"),
                ("realm", "R"),
                ("kerberosConfig", "[libdefaults]"),
            ];
            auth.extend_from_slice(extra);
            with_auth(&auth)
        };
        gssapi(&[("password", "p")]).unwrap();
        gssapi(&[("keytab", "k")]).unwrap();
        assert_eq!(
            gssapi(&[("password", "p"), ("keytab", "k")])
                .unwrap_err()
                .parameter(),
            Some("keytab")
        );
        assert_eq!(gssapi(&[]).unwrap_err().parameter(), Some("keytab"));
    }

    #[test]
    fn tls_rules() {
        let (cert, key) = pem();
        let err = with_auth(&[("tls", "enable"), ("ca", &cert), ("key", &key)]).unwrap_err();
        assert_eq!(err.parameter(), Some("cert"));
        assert!(err.message().contains("cert must be provided with key"));
        let err = with_auth(&[("tls", "enable"), ("cert", &cert)]).unwrap_err();
        assert_eq!(err.parameter(), Some("key"));
        let m = with_auth(&[("tls", "enable"), ("ca", &cert)]).unwrap();
        assert!(m.endpoint.tls.unwrap().ca.is_some());
        let m = with_auth(&[("tls", "enable"), ("cert", &cert), ("key", &key)]).unwrap();
        assert!(m.endpoint.tls.unwrap().cert.is_some());
        let err = with_auth(&[("tls", "enable"), ("ca", "junk")]).unwrap_err();
        assert_eq!(err.parameter(), Some("ca"));
        assert_eq!(
            with_auth(&[("tls", "disable"), ("ca", "junk")])
                .unwrap()
                .endpoint
                .tls,
            None
        );
    }

    #[test]
    fn metadata_wins_over_auth_params_for_sasl_and_tls() {
        let m = parse(&cfg(
            &[
                ("bootstrapServers", "a:1"),
                ("consumerGroup", "g"),
                ("sasl", "none"),
                ("tls", "disable"),
            ],
            &[("sasl", "plaintext"), ("tls", "enable")],
        ))
        .unwrap();
        assert_eq!(m.endpoint.sasl, KafkaSasl::None);
        assert_eq!(m.endpoint.tls, None);
    }

    #[test]
    fn from_env() {
        let config = ScalerConfig::new("kafka", 0)
            .with_metadata([
                ("bootstrapServersFromEnv", "BROKERS"),
                ("consumerGroupFromEnv", "GROUP"),
            ])
            .with_resolved_env([("BROKERS", "k:9092"), ("GROUP", "workers")]);
        let m = parse(&config).unwrap();
        assert_eq!(m.bootstrap_servers, ["k:9092"]);
        assert_eq!(m.group, "workers");
    }

    #[tokio::test]
    async fn unsupported_mechanisms_fail_at_build_naming_sasl() {
        let config = cfg(
            &[("bootstrapServers", "127.0.0.1:1"), ("consumerGroup", "g")],
            &[
                ("sasl", "gssapi"),
                ("username", "u"),
                ("password", "p"),
                ("realm", "R"),
                ("kerberosConfig", "[libdefaults]"),
            ],
        );
        let err = DESCRIPTOR.build(&config, &Pools::new()).await.unwrap_err();
        assert!(err.is_config(), "{err}");
        assert_eq!(err.parameter(), Some("sasl"));
        assert!(err.message().contains("not supported"));
    }

    #[test]
    fn seed_trigger_parses() {
        // The kafka trigger of seed 003 (tests/fixtures/seeds), unchanged.
        let m = parse(&cfg(
            &[
                ("bootstrapServers", "kafka.messaging.svc:9092"),
                ("consumerGroup", "order-processors"),
                ("topic", "orders"),
                ("lagThreshold", "100"),
                ("offsetResetPolicy", "latest"),
            ],
            &[],
        ))
        .unwrap();
        assert_eq!(m.lag_threshold, 100);
        assert_eq!(m.endpoint.bootstrap_servers, ["kafka.messaging.svc:9092"]);
    }

    #[test]
    fn next_factor_examples() {
        for (lag, expected) in [
            (10, 1),
            (20, 2),
            (40, 4),
            (50, 5),
            (99, 10),
            (100, 10),
            (101, 20),
        ] {
            assert_eq!(
                next_factor_balancing_partitions(lag, 100, 10),
                expected,
                "lag {lag}"
            );
        }
        assert_eq!(next_factor_balancing_partitions(1000, 3, 10), 3);
    }

    fn offsets(entries: &[(i32, i64)]) -> PerPartition<i64> {
        let mut out = PerPartition::new();
        out.insert("t".to_owned(), entries.iter().copied().collect());
        out
    }

    fn committed(entries: &[(i32, i64)]) -> PerPartition<CommittedOffset> {
        let mut out = PerPartition::new();
        out.insert(
            "t".to_owned(),
            entries
                .iter()
                .map(|&(p, offset)| {
                    (
                        p,
                        CommittedOffset {
                            offset,
                            error_code: 0,
                        },
                    )
                })
                .collect(),
        );
        out
    }

    #[test]
    fn lag_math() {
        let m = meta(&[]).unwrap();
        let mut previous = PreviousOffsets::new();
        let latest = offsets(&[(0, 100), (1, 10)]);
        // 90 + 0 = 90 > 2 partitions × 10 → 20.
        assert_eq!(
            total_lag(&m, &latest, &committed(&[(0, 10), (1, 10)]), &mut previous),
            Ok((20, 90))
        );
        let idle = meta(&[("allowIdleConsumers", "true")]).unwrap();
        assert_eq!(
            total_lag(
                &idle,
                &latest,
                &committed(&[(0, 10), (1, 10)]),
                &mut previous
            ),
            Ok((90, 90))
        );
        let err = total_lag(&m, &latest, &committed(&[(0, 10)]), &mut previous).unwrap_err();
        assert!(
            err.message
                .contains("error finding offset block for topic t and partition 1")
        );
        let mut failed = committed(&[(0, 10), (1, 10)]);
        if let Some(p) = failed.get_mut("t").and_then(|t| t.get_mut(&1)) {
            p.error_code = 3;
        }
        assert!(total_lag(&m, &latest, &failed, &mut previous).is_err());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn partition_limitation_never_panics(raw in ".{0,40}") {
                let _ = parse_partition_limitation(&raw);
            }

            #[test]
            fn partition_limitation_roundtrips_lists(parts in proptest::collection::vec(0..1000_i32, 1..10)) {
                let raw = parts.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
                prop_assert_eq!(parse_partition_limitation(&raw).unwrap(), parts);
            }

            #[test]
            fn capped_lag_never_exceeds_partitions_times_threshold(
                lags in proptest::collection::vec(0..10_000_i64, 1..20),
                threshold in 1..100_i64,
            ) {
                let m = meta(&[("lagThreshold", &threshold.to_string())]).unwrap();
                let latest: Vec<(i32, i64)> = lags.iter().enumerate().map(|(i, l)| (i32::try_from(i).unwrap(), *l)).collect();
                let zero: Vec<(i32, i64)> = latest.iter().map(|(p, _)| (*p, 0)).collect();
                let (lag, with_persistent) = total_lag(&m, &offsets(&latest), &committed(&zero), &mut PreviousOffsets::new()).unwrap();
                let partitions = i64::try_from(lags.len()).unwrap();
                prop_assert_eq!(with_persistent, lags.iter().sum::<i64>());
                prop_assert!(lag <= with_persistent.max(partitions * threshold));
                prop_assert!(lag / threshold <= partitions);
            }
        }
    }
}

#[cfg(test)]
mod parse_properties {
    use super::*;
    use proptest::collection::btree_map;
    use proptest::prelude::*;

    /// Parameter names the kafka scaler reads, so generated maps hit real code paths.
    const KNOWN: &[&str] = &[
        "bootstrapServers",
        "consumerGroup",
        "topic",
        "partitionLimitation",
        "lagThreshold",
        "activationLagThreshold",
        "offsetResetPolicy",
        "allowIdleConsumers",
        "excludePersistentLag",
        "scaleToZeroOnInvalidOffset",
        "limitToPartitionsWithLag",
        "ensureEvenDistributionOfPartitions",
        "fullMetadata",
        "version",
        "tls",
        "unsafeSsl",
        "ca",
        "cert",
        "key",
        "keyPassword",
        "sasl",
        "username",
        "password",
        "saslTokenProvider",
        "oauthTokenEndpointUri",
        "oauthExtensions",
        "keytab",
        "realm",
        "kerberosConfig",
        "awsRegion",
    ];

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => proptest::sample::select(KNOWN).prop_map(str::to_owned),
            1 => ".{0,12}",
        ]
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            "[ ,:=0-9a-z._-]{0,24}",
            ".{0,30}",
            proptest::sample::select(
                &[
                    "true",
                    "false",
                    "enable",
                    "disable",
                    "plaintext",
                    "scram_sha256",
                    "oauthbearer",
                    "gssapi",
                    "aws_msk_iam",
                    "earliest",
                    "1-3,5",
                    "0-2147483647",
                    "-5--1",
                ][..]
            )
            .prop_map(str::to_owned),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn parsing_never_panics_and_errors_are_config_errors(
            metadata in btree_map(key(), value(), 0..12),
            auth in btree_map(key(), value(), 0..6),
        ) {
            let mut config = ScalerConfig::new("kafka", 0);
            config.metadata = metadata;
            config.auth_params = auth;
            if let Err(e) = parse(&config) {
                prop_assert!(e.is_config());
                prop_assert!(e.parameter().is_some_and(|p| !p.is_empty()));
            }
        }
    }
}
