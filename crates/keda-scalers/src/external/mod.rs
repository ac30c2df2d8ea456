//! `external` and `external-push`: a scaler that lives in another process and speaks KEDA's
//! `externalscaler.ExternalScaler` gRPC contract. Metric specs come from its `GetMetricSpec` (asked
//! once when the scaler connects, since only the remote scaler knows them), values from
//! `GetMetrics`, activity from `IsActive`. `external-push` also keeps a `StreamIsActive` stream open
//! and hands every pushed result to the operator, which polls the object at once on `true`.

pub mod client;
#[cfg(any(test, feature = "testing"))]
pub mod test_peer;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::task::JoinHandle;

pub use client::proto;
use client::{ExternalClient, ExternalEndpoint, rpc_error};
use proto::{GetMetricsRequest, ScaledObjectRef};

use crate::ScalerMetadata;
use crate::config::{MetricTargetKind, ScalerConfig};
use crate::error::{BackendError, ConnectError, ScalerError};
use crate::kind::{ActivitySink, Descriptor, Example, Reading, ScalerKind};
use crate::metrics::{MetricSpec, MetricTarget, MetricValue, metric_name_with_index};
use crate::params::{FromParams, MetadataParser, ParamInfo};
use crate::pools::{Lease, Pools};
use crate::tls::TlsSettings;

/// First delay before reopening a push stream; doubled after each failure up to the maximum.
const PUSH_RETRY_FIRST: Duration = Duration::from_secs(2);
const PUSH_RETRY_MAX: Duration = Duration::from_secs(60);

const EXAMPLE: Example = Example::new(&[("scalerAddress", "my-scaler:9090")], &["scalerAddress"]);

/// `external`.
pub static DESCRIPTOR: Descriptor = Descriptor::new::<ExternalScaler>("external", EXAMPLE);
/// `external-push`.
pub static PUSH_DESCRIPTOR: Descriptor =
    Descriptor::new::<ExternalScaler>("external-push", EXAMPLE);

/// Parsed `external` / `external-push` trigger.
#[derive(Clone, Debug, PartialEq)]
pub struct ExternalMetadata {
    /// `scalerAddress` plus the TLS settings: the pooled channel's identity.
    pub endpoint: ExternalEndpoint,
    /// Every metadata key, `FromEnv` keys carrying the resolved value, as sent in `scalerMetadata`.
    pub scaler_metadata: BTreeMap<String, String>,
    /// From the trigger's `metricType`.
    pub metric_type: MetricTargetKind,
    /// `external-push`: keep a `StreamIsActive` stream open.
    pub push: bool,
}

/// The parameters of both trigger types, in the order they are read.
#[derive(ScalerMetadata)]
struct ExternalParams {
    #[param(name = "scalerAddress")]
    address: String,
    #[param(name = "enableTLS")]
    enable_tls: Option<bool>,
    #[param(name = "unsafeSsl")]
    unsafe_ssl: Option<bool>,
    #[param(name = "caCert", from = AUTH_PARAMS)]
    ca: Option<String>,
    #[param(name = "tlsClientCert", from = AUTH_PARAMS)]
    cert: Option<String>,
    #[param(name = "tlsClientKey", from = AUTH_PARAMS)]
    key: Option<String>,
}

/// Parses a trigger without I/O.
pub fn parse(config: &ScalerConfig) -> Result<ExternalMetadata, ScalerError> {
    let metric_type = config.external_metric_type()?;
    let mut p = MetadataParser::new(config);
    let ExternalParams {
        address,
        enable_tls,
        unsafe_ssl,
        ca,
        cert,
        key,
    } = ExternalParams::from_params(&mut p);
    let enable_tls = enable_tls.unwrap_or(false);
    let unsafe_ssl = unsafe_ssl.unwrap_or(false);
    let use_tls = enable_tls || ca.is_some() || (cert.is_some() && key.is_some());
    let tls = use_tls.then_some(TlsSettings {
        cert,
        key,
        key_password: None,
        ca,
        unsafe_ssl,
    });
    if let Some(settings) = &tls
        && let Err(e) = settings.validate()
    {
        let parameter = match e.parameter {
            "ca" => "caCert",
            "cert" => "tlsClientCert",
            _ => "tlsClientKey",
        };
        p.error(parameter, e.message);
    }
    // gRPC targets may carry the resolver scheme; the DNS resolver is what a plain host:port uses.
    let address = address
        .strip_prefix("dns:///")
        .unwrap_or(&address)
        .to_owned();
    let endpoint = ExternalEndpoint { address, tls };
    if !p.has_errors()
        && let Err(message) = endpoint.uri()
    {
        p.error("scalerAddress", message);
    }
    p.finish()?;
    Ok(ExternalMetadata {
        endpoint,
        scaler_metadata: scaler_metadata(config),
        metric_type,
        push: config.trigger_type == "external-push",
    })
}

/// The metadata forwarded to the external scaler: every key as given, except that a `…FromEnv`
/// key carries the resolved value under the same key (and is dropped when that value is empty).
fn scaler_metadata(config: &ScalerConfig) -> BTreeMap<String, String> {
    config
        .metadata
        .iter()
        .filter_map(|(key, value)| {
            if key.ends_with("FromEnv") {
                config
                    .resolved_env
                    .get(value)
                    .filter(|v| !v.is_empty())
                    .map(|v| (key.clone(), v.clone()))
            } else {
                Some((key.clone(), value.clone()))
            }
        })
        .collect()
}

/// A connected `external` / `external-push` trigger.
pub struct ExternalScaler {
    trigger: String,
    trigger_index: usize,
    object_ref: ScaledObjectRef,
    specs: Vec<MetricSpec>,
    client: Lease<ExternalClient>,
    push: Option<PushState>,
}

struct PushState {
    /// Set by a pushed `true`, consumed by the next poll: the push alone makes the trigger active
    /// for that poll, as KEDA requests a scale with `isActive=true` on a push.
    pushed_active: Arc<AtomicBool>,
    task: Mutex<Option<PushTask>>,
}

/// The stream task; aborted when replaced or when the scaler is dropped (closed).
struct PushTask(JoinHandle<()>);

impl Drop for PushTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl ExternalScaler {
    /// The name the external scaler knows: `s<index>-` removed, checked as KEDA checks it.
    fn remote_metric_name<'a>(&self, metric_name: &'a str) -> Result<&'a str, BackendError> {
        let Some((prefix, rest)) = metric_name.split_once('-') else {
            return Err(BackendError::protocol(format!(
                "metric name without index prefix: {metric_name:?}"
            )));
        };
        if prefix != format!("s{}", self.trigger_index) {
            return Err(BackendError::protocol(format!(
                "metric name contains incorrect index prefix: {metric_name:?}"
            )));
        }
        Ok(rest)
    }
}

impl ScalerKind for ExternalScaler {
    type Metadata = ExternalMetadata;

    fn parse(config: &ScalerConfig) -> Result<ExternalMetadata, ScalerError> {
        parse(config)
    }

    fn params() -> Vec<ParamInfo> {
        ExternalParams::params()
    }

    /// Only the remote scaler knows its metrics: see [`ScalerKind::backend_metric_specs`].
    fn metric_specs(
        _metadata: &ExternalMetadata,
        _config: &ScalerConfig,
    ) -> Option<Vec<MetricSpec>> {
        None
    }

    /// Takes a share of the pooled channel and asks the scaler for its metric specs. An
    /// unreachable scaler is a backend error, so the operator retries the build.
    async fn connect(
        metadata: ExternalMetadata,
        config: &ScalerConfig,
        pools: &Pools,
    ) -> Result<Self, ConnectError> {
        let client = pools
            .lease(&metadata.endpoint, || async {
                ExternalClient::connect(&metadata.endpoint)
            })
            .await?;
        let object_ref = ScaledObjectRef {
            name: config.scalable_object_name.clone(),
            namespace: config.scalable_object_namespace.clone(),
            scaler_metadata: metadata.scaler_metadata.into_iter().collect(),
        };
        // Building is not bounded by the wrapper; the process read timeout bounds this call too.
        let timeout = pools.settings().read_timeout;
        let response =
            tokio::time::timeout(timeout, client.client().get_metric_spec(object_ref.clone()))
                .await
                .map_err(|_| {
                    BackendError::timeout(format!(
                        "GetMetricSpec failed: no answer within {timeout:?}"
                    ))
                })?
                .map_err(|status| rpc_error("GetMetricSpec", &status))?
                .into_inner();
        let specs = response
            .metric_specs
            .iter()
            .map(|spec| {
                let target = if spec.target_size_float > 0.0 {
                    MetricTarget::new(metadata.metric_type, spec.target_size_float)
                } else {
                    MetricTarget::count(metadata.metric_type, spec.target_size)
                };
                MetricSpec::external(
                    metric_name_with_index(config.trigger_index, &spec.metric_name),
                    target,
                )
            })
            .collect();
        Ok(Self {
            trigger: config.trigger_label(),
            trigger_index: config.trigger_index,
            object_ref,
            specs,
            client,
            push: metadata.push.then(|| PushState {
                pushed_active: Arc::new(AtomicBool::new(false)),
                task: Mutex::new(None),
            }),
        })
    }

    async fn read(&self, metric_name: &str) -> Result<Reading, BackendError> {
        let remote_name = self.remote_metric_name(metric_name)?;
        let request = GetMetricsRequest {
            scaled_object_ref: Some(self.object_ref.clone()),
            metric_name: remote_name.to_owned(),
        };
        let metrics = self
            .client
            .client()
            .get_metrics(request)
            .await
            .map_err(|status| rpc_error("GetMetrics", &status))?
            .into_inner();
        // `metricValueFloat` wins when > 0, otherwise the integer `metricValue`.
        let values = metrics
            .metric_values
            .iter()
            .flat_map(|v| {
                if v.metric_value_float > 0.0 {
                    vec![MetricValue::new(metric_name, v.metric_value_float)]
                } else {
                    Reading::count(metric_name, v.metric_value, 0).values
                }
            })
            .collect();
        let active = self
            .client
            .client()
            .is_active(self.object_ref.clone())
            .await
            .map_err(|status| rpc_error("IsActive", &status))?
            .into_inner()
            .result;
        let pushed = self
            .push
            .as_ref()
            .is_some_and(|p| p.pushed_active.swap(false, Ordering::AcqRel));
        Ok(Reading::new(values, active || pushed))
    }

    fn backend_metric_specs(&self) -> Vec<MetricSpec> {
        self.specs.clone()
    }

    fn watch_activity(&self, sink: ActivitySink) {
        let Some(push) = &self.push else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(trigger = %self.trigger, "no async runtime; push stream not started");
            return;
        };
        let task = PushTask(runtime.spawn(push_loop(
            self.trigger.clone(),
            self.client.clone(),
            self.object_ref.clone(),
            Arc::clone(&push.pushed_active),
            sink,
        )));
        // Dropping the previous task aborts it.
        let previous = push
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(task);
        drop(previous);
    }
}

/// Keeps `StreamIsActive` open: every result goes to `sink`. After a clean end the stream is
/// reopened 2 s later; after a failure the delay doubles up to a minute.
async fn push_loop(
    trigger: String,
    client: Lease<ExternalClient>,
    object_ref: ScaledObjectRef,
    pushed_active: Arc<AtomicBool>,
    sink: ActivitySink,
) {
    let mut delay = PUSH_RETRY_FIRST;
    loop {
        let failure = match client.client().stream_is_active(object_ref.clone()).await {
            Ok(response) => {
                let mut stream = response.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(message)) => {
                            if message.result {
                                pushed_active.store(true, Ordering::Release);
                            }
                            sink(message.result);
                        }
                        Ok(None) => break None,
                        Err(status) => break Some(status),
                    }
                }
            }
            Err(status) => Some(status),
        };
        match failure {
            None => {
                tracing::debug!(%trigger, "StreamIsActive ended; reopening");
                delay = PUSH_RETRY_FIRST;
                tokio::time::sleep(delay).await;
            }
            Some(status) => {
                tracing::warn!(%trigger, code = ?status.code(), message = status.message(), retry_in = ?delay, "StreamIsActive failed");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(PUSH_RETRY_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(metadata: &[(&str, &str)], auth: &[(&str, &str)]) -> ScalerConfig {
        ScalerConfig::new("external", 0)
            .with_metadata(metadata.iter().copied())
            .with_auth_params(auth.iter().copied())
    }

    // KEDA's external_scaler_test.go table, as facts.

    #[test]
    fn missing_scaler_address_is_rejected() {
        let err = parse(&config(&[("metricName", "m")], &[])).unwrap_err();
        assert!(err.is_config());
        assert_eq!(err.parameter(), Some("scalerAddress"));
        assert!(
            err.message()
                .contains("missing required parameter \"scalerAddress\" in [triggerMetadata]")
        );
    }

    #[test]
    fn address_and_arbitrary_keys_are_accepted_and_forwarded() {
        let cfg = config(
            &[
                ("scalerAddress", "myservice:9090"),
                ("test1", "7"),
                ("test2", "SomeValue"),
            ],
            &[],
        );
        let m = parse(&cfg).unwrap();
        assert_eq!(m.endpoint.address, "myservice:9090");
        assert!(m.endpoint.tls.is_none());
        assert_eq!(
            m.scaler_metadata.get("test1").map(String::as_str),
            Some("7")
        );
        assert_eq!(
            m.scaler_metadata.get("scalerAddress").map(String::as_str),
            Some("myservice:9090")
        );
    }

    #[test]
    fn enable_tls_and_ca_switch_tls_on() {
        let m = parse(&config(
            &[("scalerAddress", "svc:9090"), ("enableTLS", "true")],
            &[],
        ))
        .unwrap();
        assert!(m.endpoint.tls.is_some());
        let m = parse(&config(
            &[
                ("scalerAddress", "svc:9090"),
                ("unsafeSsl", "true"),
                ("enableTLS", "true"),
            ],
            &[],
        ))
        .unwrap();
        assert!(m.endpoint.tls.as_ref().is_some_and(|t| t.unsafe_ssl));
        // Different TLS settings are a different pooled identity.
        let plain = parse(&config(&[("scalerAddress", "svc:9090")], &[])).unwrap();
        assert_ne!(plain.endpoint, m.endpoint);
    }

    #[test]
    fn bad_tls_material_names_the_auth_parameter() {
        let err = parse(&config(
            &[("scalerAddress", "svc:9090")],
            &[("caCert", "not a pem")],
        ))
        .unwrap_err();
        assert_eq!(err.parameter(), Some("caCert"));
        let err = parse(&config(
            &[("scalerAddress", "svc:9090")],
            &[("tlsClientCert", "junk"), ("tlsClientKey", "junk")],
        ))
        .unwrap_err();
        assert_eq!(err.parameter(), Some("tlsClientCert"));
    }

    #[test]
    fn bad_booleans_are_rejected() {
        for key in ["enableTLS", "unsafeSsl"] {
            let err =
                parse(&config(&[("scalerAddress", "svc:9090"), (key, "yes")], &[])).unwrap_err();
            assert_eq!(err.parameter(), Some(key));
        }
    }

    #[test]
    fn address_must_be_host_and_port() {
        for bad in ["svc:9090/path", "http://svc:9090", "svc:notaport", ":9090"] {
            let err = parse(&config(&[("scalerAddress", bad)], &[])).unwrap_err();
            assert_eq!(err.parameter(), Some("scalerAddress"), "{bad}");
        }
        let m = parse(&config(&[("scalerAddress", "dns:///svc.ns:9090")], &[])).unwrap();
        assert_eq!(m.endpoint.address, "svc.ns:9090");
    }

    #[test]
    fn from_env_keys_carry_the_resolved_value_or_are_dropped() {
        let cfg = config(
            &[
                ("scalerAddress", "svc:9090"),
                ("queueFromEnv", "QUEUE"),
                ("missingFromEnv", "NOPE"),
                ("emptyFromEnv", "EMPTY"),
            ],
            &[],
        )
        .with_resolved_env([("QUEUE", "orders"), ("EMPTY", "")]);
        let m = parse(&cfg).unwrap();
        assert_eq!(
            m.scaler_metadata.get("queueFromEnv").map(String::as_str),
            Some("orders")
        );
        assert!(!m.scaler_metadata.contains_key("missingFromEnv"));
        assert!(!m.scaler_metadata.contains_key("emptyFromEnv"));
    }

    #[test]
    fn utilization_is_refused() {
        let mut cfg = config(&[("scalerAddress", "svc:9090")], &[]);
        cfg.metric_type = MetricTargetKind::Utilization;
        assert_eq!(parse(&cfg).unwrap_err().parameter(), Some("metricType"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_address_parses_or_is_a_config_error(address in ".{0,40}") {
                match parse(&config(&[("scalerAddress", &address)], &[])) {
                    Ok(m) => prop_assert!(m.endpoint.uri().is_ok()),
                    Err(e) => prop_assert!(e.is_config()),
                }
            }
        }
    }
}
