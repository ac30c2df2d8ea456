//! `beanstalkd`: the jobs of a tube (`stats-tube`): ready plus reserved, plus delayed with
//! `includeDelayed`. A tube beanstalkd does not know counts as empty. One TCP connection per
//! server and dial timeout, shared by every trigger on that server; requests on it are serialized
//! (the protocol answers in order) and a failed exchange drops the connection so the next read
//! dials again.

use std::collections::BTreeMap;
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use crate::ScalerMetadata;
use crate::config::{MetricTargetKind, ScalerConfig};
use crate::error::{BackendError, BackendKind, ConnectError, ScalerError};
use crate::kind::{Descriptor, Example, Reading, ScalerKind};
use crate::metrics::{MetricSpec, MetricTarget, normalized_metric_name};
use crate::params::{FromParams, MetadataParser, ParamInfo};
use crate::pools::{Lease, PooledClient, Pools};

/// `beanstalkd`.
pub static DESCRIPTOR: Descriptor = Descriptor::new::<BeanstalkdScaler>(
    "beanstalkd",
    Example::new(
        &[
            ("server", "beanstalkd:11300"),
            ("tube", "jobs"),
            ("value", "5"),
        ],
        &["server", "tube", "value"],
    ),
);

/// Beanstalkd refuses longer tube names; a longer answer than this is not a stats map.
const MAX_TUBE_NAME: usize = 200;
const MAX_STATS_BYTES: usize = 64 * 1024;

/// The trigger's parameters, in KEDA's order.
#[derive(Debug, ScalerMetadata)]
struct BeanstalkdParams {
    #[param(name = "server")]
    server: String,
    #[param(name = "tube")]
    tube: String,
    #[param(name = "value")]
    value: f64,
    #[param(name = "activationValue")]
    activation_value: Option<f64>,
    #[param(name = "includeDelayed")]
    include_delayed: Option<bool>,
    // KEDA's duration rule reads the bare default "30" as 30 ms; it bounds the dial only.
    #[param(name = "timeout", default = "30")]
    timeout: Duration,
}

/// A parsed `beanstalkd` trigger.
#[derive(Clone, Debug, PartialEq)]
pub struct BeanstalkdMetadata {
    /// Which connection.
    pub endpoint: BeanstalkdEndpoint,
    /// `tube`.
    pub tube: String,
    /// `value`: the target.
    pub value: f64,
    /// `activationValue` (default 0).
    pub activation_value: f64,
    /// `includeDelayed` (default false).
    pub include_delayed: bool,
    /// From the trigger's `metricType`.
    pub metric_type: MetricTargetKind,
}

/// What makes two connections interchangeable.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BeanstalkdEndpoint {
    /// `server`: `host:port`.
    pub server: String,
    /// Dial timeout (`timeout`).
    pub timeout: Duration,
}

/// Parses a `beanstalkd` trigger without I/O.
pub fn parse(config: &ScalerConfig) -> Result<BeanstalkdMetadata, ScalerError> {
    let metric_type = config.external_metric_type()?;
    let mut p = MetadataParser::new(config);
    let params = BeanstalkdParams::from_params(&mut p);
    // A tube name goes on the command line: anything beanstalkd would refuse (or that would end
    // the command early) is refused here, naming the parameter.
    if !params.tube.is_empty() && !is_tube_name(&params.tube) {
        p.error(
            "tube",
            format!(
                "invalid tube name {:?}: up to {MAX_TUBE_NAME} letters, digits and -+/;.$_() not starting with -",
                params.tube
            ),
        );
    }
    p.finish()?;
    Ok(BeanstalkdMetadata {
        endpoint: BeanstalkdEndpoint {
            server: params.server,
            timeout: params.timeout,
        },
        tube: params.tube,
        value: params.value,
        activation_value: params.activation_value.unwrap_or(0.0),
        include_delayed: params.include_delayed.unwrap_or(false),
        metric_type,
    })
}

fn is_tube_name(name: &str) -> bool {
    name.len() <= MAX_TUBE_NAME
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-+/;.$_()".contains(c))
}

/// Go's `url.QueryEscape` for the characters a tube name may hold.
const QUERY_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// One connection to a beanstalkd server.
pub struct BeanstalkdClient {
    endpoint: BeanstalkdEndpoint,
    // `None` after a failed exchange: the next request dials again.
    stream: Mutex<Option<BufStream<TcpStream>>>,
}

impl PooledClient for BeanstalkdClient {
    type Key = BeanstalkdEndpoint;
    const KIND: &'static str = "beanstalkd";
}

impl BeanstalkdClient {
    /// Dials `endpoint` within its timeout.
    pub async fn connect(endpoint: &BeanstalkdEndpoint) -> Result<Self, BackendError> {
        let stream = dial(endpoint).await?;
        Ok(Self {
            endpoint: endpoint.clone(),
            stream: Mutex::new(Some(stream)),
        })
    }

    /// `stats-tube <tube>`: the tube's statistics, or `None` when beanstalkd does not know it.
    pub async fn tube_stats(
        &self,
        tube: &str,
    ) -> Result<Option<BTreeMap<String, i64>>, BackendError> {
        let mut guard = self.stream.lock().await;
        let (mut stream, reused) = match guard.take() {
            Some(stream) => (stream, true),
            None => (dial(&self.endpoint).await?, false),
        };
        let mut answer = exchange(&mut stream, tube).await;
        // A kept connection may have been closed by a restarted server since: one fresh dial.
        if reused && matches!(&answer, Err(e) if e.kind == BackendKind::Connect) {
            stream = dial(&self.endpoint).await?;
            answer = exchange(&mut stream, tube).await;
        }
        // Keep the connection only after a complete, understood exchange.
        if answer.is_ok() {
            *guard = Some(stream);
        }
        answer
    }
}

async fn dial(endpoint: &BeanstalkdEndpoint) -> Result<BufStream<TcpStream>, BackendError> {
    match tokio::time::timeout(endpoint.timeout, TcpStream::connect(&endpoint.server)).await {
        Ok(Ok(stream)) => Ok(BufStream::new(stream)),
        Ok(Err(e)) => Err(BackendError::connect(format!(
            "error connecting to beanstalkd {}: {e}",
            endpoint.server
        ))),
        Err(_) => Err(BackendError::connect(format!(
            "error connecting to beanstalkd {}: no connection within {:?}",
            endpoint.server, endpoint.timeout
        ))),
    }
}

async fn exchange(
    stream: &mut BufStream<TcpStream>,
    tube: &str,
) -> Result<Option<BTreeMap<String, i64>>, BackendError> {
    let io = |e: std::io::Error| {
        BackendError::connect(format!("error interacting with beanstalkd: {e}"))
    };
    stream
        .write_all(format!("stats-tube {tube}\r\n").as_bytes())
        .await
        .map_err(io)?;
    stream.flush().await.map_err(io)?;
    let mut line = String::new();
    if stream.read_line(&mut line).await.map_err(io)? == 0 {
        return Err(BackendError::connect(
            "error interacting with beanstalkd: connection closed",
        ));
    }
    let line = line.trim_end();
    if line == "NOT_FOUND" {
        return Ok(None);
    }
    let Some(length) = line
        .strip_prefix("OK ")
        .and_then(|n| n.parse::<usize>().ok())
    else {
        return Err(BackendError::protocol(format!(
            "error retrieving stats from beanstalkd: unexpected reply {line:?}"
        )));
    };
    if length > MAX_STATS_BYTES {
        return Err(BackendError::protocol(format!(
            "error retrieving stats from beanstalkd: {length} bytes of stats"
        )));
    }
    // The body and its trailing CRLF.
    let mut body = vec![0; length + 2];
    stream.read_exact(&mut body).await.map_err(io)?;
    body.truncate(length);
    parse_stats(&body).map(Some)
}

/// The integer fields of a `stats-tube` YAML map (the tube's `name` and other text are skipped).
pub fn parse_stats(body: &[u8]) -> Result<BTreeMap<String, i64>, BackendError> {
    let map: BTreeMap<String, serde_yaml::Value> = serde_yaml::from_slice(body).map_err(|e| {
        BackendError::protocol(format!("error decoding stats from beanstalkd: {e}"))
    })?;
    Ok(map
        .into_iter()
        .filter_map(|(k, v)| v.as_i64().map(|n| (k, n)))
        .collect())
}

/// The jobs the trigger counts.
pub fn jobs(stats: &BTreeMap<String, i64>, include_delayed: bool) -> i64 {
    let field = |name: &str| stats.get(name).copied().unwrap_or(0);
    let mut total = field("current-jobs-ready").saturating_add(field("current-jobs-reserved"));
    if include_delayed {
        total = total.saturating_add(field("current-jobs-delayed"));
    }
    total
}

/// A connected `beanstalkd` trigger.
pub struct BeanstalkdScaler {
    metadata: BeanstalkdMetadata,
    client: Lease<BeanstalkdClient>,
}

impl ScalerKind for BeanstalkdScaler {
    type Metadata = BeanstalkdMetadata;

    fn parse(config: &ScalerConfig) -> Result<BeanstalkdMetadata, ScalerError> {
        parse(config)
    }

    fn params() -> Vec<ParamInfo> {
        BeanstalkdParams::params()
    }

    fn metric_specs(
        metadata: &BeanstalkdMetadata,
        config: &ScalerConfig,
    ) -> Option<Vec<MetricSpec>> {
        let tube = utf8_percent_encode(&metadata.tube, QUERY_ESCAPE).to_string();
        Some(vec![MetricSpec::external(
            normalized_metric_name(config.trigger_index, &format!("beanstalkd-{tube}")),
            MetricTarget::new(metadata.metric_type, metadata.value),
        )])
    }

    async fn connect(
        metadata: BeanstalkdMetadata,
        _config: &ScalerConfig,
        pools: &Pools,
    ) -> Result<Self, ConnectError> {
        let client = pools
            .lease(&metadata.endpoint, || {
                BeanstalkdClient::connect(&metadata.endpoint)
            })
            .await?;
        Ok(Self { metadata, client })
    }

    async fn read(&self, metric_name: &str) -> Result<Reading, BackendError> {
        let stats = self.client.tube_stats(&self.metadata.tube).await?;
        let total = stats.map_or(0, |s| jobs(&s, self.metadata.include_delayed));
        Ok(Reading::count_over(
            metric_name,
            total,
            self.metadata.activation_value,
        ))
    }
}

#[cfg(test)]
mod tests;
