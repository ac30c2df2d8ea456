//! `redis-streams`, `redis-cluster-streams` and `redis-sentinel-streams`: a stream's length, a
//! consumer group's pending entries, or a consumer group's lag. Connection parameters and the
//! pooled client are those of the list scaler, so a list and a stream trigger on one server share
//! one client.

use redis::Value;

use super::{
    ConnectionParams, RedisClient, RedisEndpoint, RedisTopology, backend_error, parse_endpoint,
};
use crate::ScalerMetadata;
use crate::config::{MetricTargetKind, ScalerConfig};
use crate::error::{BackendError, ConnectError, ScalerError};
use crate::kind::{Descriptor, Example, Reading, ScalerKind};
use crate::metrics::{MetricSpec, MetricTarget, normalized_metric_name};
use crate::params::{FromParams, MetadataParser, ParamInfo};
use crate::pools::{Lease, Pools};

const EXAMPLE: Example = Example::new(
    &[("address", "localhost:6379"), ("stream", "orders")],
    &["stream", "address"],
);
const CLUSTER_EXAMPLE: Example = Example::new(
    &[("addresses", "a:6379,b:6379"), ("stream", "orders")],
    // Any of address, addresses or hosts+ports will do, so none is required alone.
    &["stream"],
);
const SENTINEL_EXAMPLE: Example = Example::new(
    &[
        ("addresses", "a:26379"),
        ("sentinelMaster", "mymaster"),
        ("stream", "orders"),
    ],
    // Any of address, addresses or hosts+ports will do, so none is required alone.
    &["stream"],
);

/// `redis-streams`.
pub static DESCRIPTOR: Descriptor = Descriptor::new::<RedisStreamsScaler>("redis-streams", EXAMPLE);
/// `redis-cluster-streams`.
pub static CLUSTER_DESCRIPTOR: Descriptor =
    Descriptor::new::<RedisStreamsScaler>("redis-cluster-streams", CLUSTER_EXAMPLE);
/// `redis-sentinel-streams`.
pub static SENTINEL_DESCRIPTOR: Descriptor =
    Descriptor::new::<RedisStreamsScaler>("redis-sentinel-streams", SENTINEL_EXAMPLE);

/// What the trigger measures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamMode {
    /// No `consumerGroup`: `XLEN`, target `streamLength`.
    Length {
        /// `streamLength` (default 5).
        target: i64,
    },
    /// `consumerGroup` without `lagCount`: pending entries, target `pendingEntriesCount`.
    Pending {
        /// The consumer group.
        group: String,
        /// `pendingEntriesCount` (default 5).
        target: i64,
    },
    /// `consumerGroup` with a non-zero `lagCount`: the group's lag (redis ≥ 7).
    Lag {
        /// The consumer group.
        group: String,
        /// `lagCount`.
        target: i64,
    },
}

impl StreamMode {
    /// The mode's target value.
    pub fn target(&self) -> i64 {
        match self {
            Self::Length { target } | Self::Pending { target, .. } | Self::Lag { target, .. } => {
                *target
            }
        }
    }
}

/// Parsed trigger of a redis streams scaler.
#[derive(Clone, Debug, PartialEq)]
pub struct RedisStreamsMetadata {
    /// `stream`.
    pub stream: String,
    /// Selected from `consumerGroup` and `lagCount`.
    pub mode: StreamMode,
    /// `activationLagCount`: the activation threshold of every mode (default 0).
    pub activation_lag_count: i64,
    /// `databaseIndex` (default 0; ignored by the cluster variant).
    pub database_index: i64,
    /// The backend identity (shared with the list scaler's pool).
    pub endpoint: RedisEndpoint,
    /// From the trigger's `metricType`.
    pub metric_type: MetricTargetKind,
}

/// The parameters of the streams trigger types, in KEDA's order.
#[derive(Debug, ScalerMetadata)]
struct StreamsParams {
    #[param(name = "stream")]
    stream: String,
    #[param(name = "consumerGroup")]
    group: Option<String>,
    #[param(name = "pendingEntriesCount", default = 5)]
    pending: i64,
    #[param(name = "streamLength", default = 5)]
    length: i64,
    #[param(name = "lagCount")]
    lag: Option<i64>,
    #[param(name = "activationLagCount", default = 0)]
    activation_lag_count: i64,
    #[param(name = "databaseIndex")]
    database_index: Option<i64>,
    #[param(flatten)]
    connection: ConnectionParams,
}

/// Parses a redis streams trigger without I/O.
pub fn parse_with(
    config: &ScalerConfig,
    topology: RedisTopology,
) -> Result<RedisStreamsMetadata, ScalerError> {
    let metric_type = config.external_metric_type()?;
    let mut p = MetadataParser::new(config);
    let StreamsParams {
        stream,
        group,
        pending,
        length,
        lag,
        activation_lag_count,
        database_index,
        connection,
    } = StreamsParams::from_params(&mut p);
    let lag = lag.unwrap_or(0);
    let database_index = database_index.unwrap_or(0);
    let endpoint = parse_endpoint(&mut p, connection, topology, database_index);
    p.finish()?;
    let mode = match group {
        None => StreamMode::Length { target: length },
        Some(group) if lag == 0 => StreamMode::Pending {
            group,
            target: pending,
        },
        Some(group) => StreamMode::Lag { group, target: lag },
    };
    Ok(RedisStreamsMetadata {
        stream,
        mode,
        activation_lag_count,
        database_index,
        endpoint,
        metric_type,
    })
}

/// A connected redis streams trigger (any topology).
pub struct RedisStreamsScaler {
    metadata: RedisStreamsMetadata,
    client: Lease<RedisClient>,
}

impl RedisStreamsScaler {
    async fn xlen(&self, client: &RedisClient) -> Result<i64, BackendError> {
        client
            .query::<i64>(redis::cmd("XLEN").arg(&self.metadata.stream))
            .await
            .map_err(|e| backend_error(&e).context("error getting stream length"))
    }

    async fn pending(&self, client: &RedisClient, group: &str) -> Result<i64, BackendError> {
        // Summary form: [count, smallest id, greatest id, consumers].
        let reply: Value = client
            .query(redis::cmd("XPENDING").arg(&self.metadata.stream).arg(group))
            .await
            .map_err(|e| backend_error(&e).context("error getting pending entries count"))?;
        match reply {
            Value::Array(items) => match items.first() {
                Some(Value::Int(n)) => Ok(*n),
                other => Err(BackendError::protocol(format!(
                    "unexpected XPENDING reply element {other:?}"
                ))),
            },
            other => Err(BackendError::protocol(format!(
                "unexpected XPENDING reply {other:?}"
            ))),
        }
    }

    async fn lag(&self, client: &RedisClient, group: &str) -> Result<i64, BackendError> {
        let info = client
            .query::<Value>(redis::cmd("INFO").arg("server"))
            .await
            .map_err(|e| backend_error(&e).context("could not find Redis version"))?;
        let major = redis_major_version(&value_text(&info)).map_err(BackendError::protocol)?;
        if major < 7 {
            return Err(BackendError::protocol("redis version 7+ required for lag"));
        }
        let groups = client
            .query::<Value>(redis::cmd("XINFO").arg("GROUPS").arg(&self.metadata.stream))
            .await;
        match groups {
            Err(e) if is_no_such_key(&e) => Ok(0),
            Ok(reply) => match group_lag(&reply, group) {
                Some(lag) => Ok(lag),
                None => self.xlen(client).await,
            },
            // Group absent or any other XINFO failure: the whole stream counts as lag.
            Err(_) => self.xlen(client).await,
        }
    }
}

impl ScalerKind for RedisStreamsScaler {
    type Metadata = RedisStreamsMetadata;

    fn parse(config: &ScalerConfig) -> Result<RedisStreamsMetadata, ScalerError> {
        parse_with(config, RedisTopology::of_trigger_type(&config.trigger_type))
    }

    fn params() -> Vec<ParamInfo> {
        StreamsParams::params()
    }

    fn metric_specs(
        metadata: &RedisStreamsMetadata,
        config: &ScalerConfig,
    ) -> Option<Vec<MetricSpec>> {
        let name = normalized_metric_name(
            config.trigger_index,
            &format!("redis-streams-{}", metadata.stream),
        );
        Some(vec![MetricSpec::external(
            name,
            MetricTarget::count(metadata.metric_type, metadata.mode.target()),
        )])
    }

    /// Shares the list scaler's pool: a list and a stream trigger on one server use one client.
    async fn connect(
        metadata: RedisStreamsMetadata,
        _config: &ScalerConfig,
        pools: &Pools,
    ) -> Result<Self, ConnectError> {
        let client = pools
            .lease(&metadata.endpoint, || {
                RedisClient::connect(&metadata.endpoint)
            })
            .await?;
        Ok(Self { metadata, client })
    }

    async fn read(&self, metric_name: &str) -> Result<Reading, BackendError> {
        let client = &self.client;
        let value = match &self.metadata.mode {
            StreamMode::Length { .. } => self.xlen(client).await,
            StreamMode::Pending { group, .. } => self.pending(client, group).await,
            StreamMode::Lag { group, .. } => self.lag(client, group).await,
        }?;
        Ok(Reading::count(
            metric_name,
            value,
            self.metadata.activation_lag_count,
        ))
    }
}

fn is_no_such_key(e: &redis::RedisError) -> bool {
    e.to_string().contains("no such key")
}

/// All text of an INFO reply (a cluster client may answer with one entry per node).
fn value_text(value: &Value) -> String {
    match value {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) | Value::VerbatimString { text: s, .. } => s.clone(),
        Value::Array(items) | Value::Set(items) => items.iter().map(value_text).collect(),
        Value::Map(pairs) => pairs
            .iter()
            .map(|(k, v)| value_text(k) + "\n" + &value_text(v))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The major version from an `INFO` text, with KEDA's error texts.
pub fn redis_major_version(info: &str) -> Result<i64, String> {
    let version = info
        .lines()
        .find_map(|line| line.trim().strip_prefix("redis_version:"))
        .ok_or_else(|| "could not find Redis version number".to_owned())?;
    version
        .split('.')
        .next()
        .and_then(|major| major.trim().parse::<i64>().ok())
        .ok_or_else(|| "redis version could not be converted to number".to_owned())
}

/// The `lag` of `group` in an `XINFO GROUPS` reply; `None` when the group is not listed. An unknown
/// lag (nil) counts as 0.
fn group_lag(reply: &Value, group: &str) -> Option<i64> {
    let Value::Array(groups) = reply else {
        return None;
    };
    groups.iter().find_map(|entry| {
        let fields = fields_of(entry);
        let name = fields.iter().find(|(k, _)| k == "name").map(|(_, v)| v)?;
        if value_text(name) != group {
            return None;
        }
        Some(
            match fields.iter().find(|(k, _)| k == "lag").map(|(_, v)| v) {
                Some(Value::Int(n)) => *n,
                _ => 0,
            },
        )
    })
}

/// Field/value pairs of one XINFO entry (a flat array in RESP2, a map in RESP3).
fn fields_of(entry: &Value) -> Vec<(String, &Value)> {
    match entry {
        Value::Array(flat) => flat
            .chunks(2)
            .filter_map(|pair| match pair {
                [k, v] => Some((value_text(k), v)),
                _ => None,
            })
            .collect(),
        Value::Map(pairs) => pairs.iter().map(|(k, v)| (value_text(k), v)).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(metadata: &[(&str, &str)], env: &[(&str, &str)]) -> ScalerConfig {
        ScalerConfig::new("redis-streams", 0)
            .with_metadata(metadata.iter().copied())
            .with_resolved_env(env.iter().copied())
    }

    const ENV: &[(&str, &str)] = &[
        ("REDIS_ADDRESS", "localhost:6379"),
        ("REDIS_USERNAME", "u"),
        ("REDIS_PASSWORD", "pw"),
    ];

    const BASE: &[(&str, &str)] = &[
        ("stream", "my-stream"),
        ("consumerGroup", "my-group"),
        ("pendingEntriesCount", "5"),
        ("addressFromEnv", "REDIS_ADDRESS"),
        ("usernameFromEnv", "REDIS_USERNAME"),
        ("passwordFromEnv", "REDIS_PASSWORD"),
        ("databaseIndex", "0"),
        ("enableTLS", "true"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut m: Vec<_> = BASE
            .iter()
            .copied()
            .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
            .collect();
        m.extend(extra.iter().copied().filter(|(_, v)| !v.is_empty()));
        m
    }

    // KEDA's redis_streams_scaler_test.go table, as facts.

    #[test]
    fn pending_mode_with_env_credentials_and_tls() {
        let meta = parse_with(&cfg(BASE, ENV), RedisTopology::Single).unwrap();
        assert_eq!(meta.stream, "my-stream");
        assert_eq!(
            meta.mode,
            StreamMode::Pending {
                group: "my-group".into(),
                target: 5
            }
        );
        assert_eq!(meta.endpoint.password.as_deref(), Some("pw"));
        assert_eq!(meta.endpoint.username.as_deref(), Some("u"));
        assert!(meta.endpoint.tls.is_some());
    }

    #[test]
    fn lag_mode_when_lag_count_set() {
        let meta = parse_with(
            &cfg(
                &with(&[("lagCount", "5"), ("activationLagCount", "3")]),
                ENV,
            ),
            RedisTopology::Single,
        )
        .unwrap();
        assert_eq!(
            meta.mode,
            StreamMode::Lag {
                group: "my-group".into(),
                target: 5
            }
        );
        assert_eq!(meta.activation_lag_count, 3);
        // lagCount 0 means pending mode.
        let meta = parse_with(
            &cfg(&with(&[("lagCount", "0")]), ENV),
            RedisTopology::Single,
        )
        .unwrap();
        assert!(matches!(meta.mode, StreamMode::Pending { .. }));
    }

    #[test]
    fn length_mode_without_group() {
        let meta = parse_with(
            &cfg(&with(&[("consumerGroup", ""), ("streamLength", "12")]), ENV),
            RedisTopology::Single,
        )
        .unwrap();
        assert_eq!(meta.mode, StreamMode::Length { target: 12 });
        let meta = parse_with(
            &cfg(&with(&[("consumerGroup", "")]), ENV),
            RedisTopology::Single,
        )
        .unwrap();
        assert_eq!(meta.mode.target(), 5);
    }

    #[test]
    fn missing_address_and_half_host_port_are_rejected() {
        let no_address = with(&[("addressFromEnv", "")]);
        let err = parse_with(&cfg(&no_address, ENV), RedisTopology::Single).unwrap_err();
        assert!(err.is_config());
        let host_only = with(&[("addressFromEnv", ""), ("host", "h")]);
        assert!(parse_with(&cfg(&host_only, ENV), RedisTopology::Single).is_err());
        let port_only = with(&[("addressFromEnv", ""), ("port", "1")]);
        assert!(parse_with(&cfg(&port_only, ENV), RedisTopology::Single).is_err());
    }

    #[test]
    fn missing_stream_is_rejected() {
        let err =
            parse_with(&cfg(&with(&[("stream", "")]), ENV), RedisTopology::Single).unwrap_err();
        assert_eq!(err.parameter(), Some("stream"));
    }

    #[test]
    fn junk_numbers_and_tls_are_rejected() {
        for param in [
            "lagCount",
            "pendingEntriesCount",
            "streamLength",
            "databaseIndex",
            "activationLagCount",
        ] {
            let err = parse_with(&cfg(&with(&[(param, "junk")]), ENV), RedisTopology::Single)
                .unwrap_err();
            assert_eq!(err.parameter(), Some(param), "{err}");
        }
        let err = parse_with(
            &cfg(&with(&[("enableTLS", "no")]), ENV),
            RedisTopology::Single,
        )
        .unwrap_err();
        assert!(err.to_string().contains("enableTLS"), "{err}");
    }

    #[test]
    fn version_parsing() {
        assert_eq!(
            redis_major_version("# Server\r\nredis_version:7.0.15\r\n"),
            Ok(7)
        );
        assert_eq!(redis_major_version("redis_version:6.2.1"), Ok(6));
        assert_eq!(
            redis_major_version("# Server\n"),
            Err("could not find Redis version number".into())
        );
        assert_eq!(
            redis_major_version("redis_version:x.1"),
            Err("redis version could not be converted to number".into())
        );
    }

    #[test]
    fn group_lag_from_resp2_and_resp3_shapes() {
        let flat = Value::Array(vec![Value::Array(vec![
            Value::BulkString(b"name".to_vec()),
            Value::BulkString(b"g".to_vec()),
            Value::BulkString(b"lag".to_vec()),
            Value::Int(4),
        ])]);
        assert_eq!(group_lag(&flat, "g"), Some(4));
        assert_eq!(group_lag(&flat, "other"), None);
        let map = Value::Array(vec![Value::Map(vec![
            (
                Value::SimpleString("name".into()),
                Value::BulkString(b"g".to_vec()),
            ),
            (Value::SimpleString("lag".into()), Value::Nil),
        ])]);
        assert_eq!(group_lag(&map, "g"), Some(0));
    }
}
