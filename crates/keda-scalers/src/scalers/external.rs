//! `external` and `external-push`: a scaler that lives in another process and speaks KEDA's
//! `externalscaler.ExternalScaler` gRPC contract. Metric specs come from its `GetMetricSpec` (read
//! once when the scaler is built, since [`Scaler::metric_specs`] is pure), values from
//! `GetMetrics`, activity from `IsActive`. `external-push` also keeps a `StreamIsActive` stream open
//! and hands every pushed result to the operator, which polls the object at once on `true`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::task::JoinHandle;

use crate::clients::external::proto::{GetMetricsRequest, ScaledObjectRef};
use crate::clients::external::{ExternalClient, ExternalEndpoint};
use crate::config::{MetricTargetKind, ScalerConfig};
use crate::error::ScalerError;
use crate::metrics::{MetricSpec, MetricTarget, MetricValue, metric_name_with_index};
use crate::params::{AUTH_PARAMS, MetadataParser};
use crate::pools::{Lease, Pools};
use crate::scaler::{ActivitySink, Scaler};
use crate::tls::TlsSettings;

/// Backstop for one RPC.
const RPC_TIMEOUT: Duration = Duration::from_secs(10);
/// First delay before reopening a push stream; doubled after each failure up to the maximum.
const PUSH_RETRY_FIRST: Duration = Duration::from_secs(2);
const PUSH_RETRY_MAX: Duration = Duration::from_secs(60);

/// Parsed `external` / `external-push` trigger.
#[derive(Clone, Debug, PartialEq)]
pub struct ExternalMetadata {
    /// `scalerAddress` plus the TLS settings: the pooled channel's identity.
    pub endpoint: ExternalEndpoint,
    /// Every metadata key, `FromEnv` keys carrying the resolved value, as sent in `scalerMetadata`.
    pub scaler_metadata: BTreeMap<String, String>,
    /// From the trigger's `metricType`.
    pub metric_type: MetricTargetKind,
}

/// Parses a trigger without I/O.
pub fn parse(config: &ScalerConfig) -> Result<ExternalMetadata, ScalerError> {
    let metric_type = config.external_metric_type()?;
    let mut p = MetadataParser::new(config);
    let address: String = p.param("scalerAddress").required();
    let enable_tls: bool = p.param("enableTLS").with_default(false);
    let unsafe_ssl: bool = p.param("unsafeSsl").with_default(false);
    let ca: Option<String> = p.param("caCert").from(AUTH_PARAMS).optional();
    let cert: Option<String> = p.param("tlsClientCert").from(AUTH_PARAMS).optional();
    let key: Option<String> = p.param("tlsClientKey").from(AUTH_PARAMS).optional();
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

/// The built scaler (both trigger types; `push` only for `external-push`).
pub struct ExternalScaler {
    trigger: String,
    trigger_index: usize,
    object_ref: ScaledObjectRef,
    specs: Vec<MetricSpec>,
    // `None` after `close()`.
    client: Mutex<Option<Lease<ExternalClient>>>,
    push: Option<PushState>,
}

struct PushState {
    /// Set by a pushed `true`, consumed by the next poll: the push alone makes the trigger active
    /// for that poll, as KEDA requests a scale with `isActive=true` on a push.
    pushed_active: Arc<AtomicBool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl ExternalScaler {
    /// Parses `config`, takes a share of the pooled channel and asks the scaler for its metric
    /// specs. An unreachable scaler is a backend error, so the operator retries the build.
    pub async fn new(
        config: &ScalerConfig,
        pools: &Pools,
        push: bool,
    ) -> Result<Self, ScalerError> {
        let metadata = parse(config)?;
        let trigger = config.trigger_label();
        let lease = pools
            .external()
            .get_or_connect(&metadata.endpoint, || async {
                ExternalClient::connect(&metadata.endpoint)
            })
            .await
            .map_err(|message| ScalerError::backend(trigger.clone(), message))?;
        let object_ref = ScaledObjectRef {
            name: config.scalable_object_name.clone(),
            namespace: config.scalable_object_namespace.clone(),
            scaler_metadata: metadata.scaler_metadata.into_iter().collect(),
        };
        let response = rpc(&trigger, "GetMetricSpec", async {
            lease.client().get_metric_spec(object_ref.clone()).await
        })
        .await?;
        let specs = response
            .metric_specs
            .iter()
            .map(|spec| {
                #[allow(clippy::cast_precision_loss)]
                let target = if spec.target_size_float > 0.0 {
                    spec.target_size_float
                } else {
                    spec.target_size as f64
                };
                MetricSpec::external(
                    metric_name_with_index(config.trigger_index, &spec.metric_name),
                    MetricTarget::new(metadata.metric_type, target),
                )
            })
            .collect();
        Ok(Self {
            trigger,
            trigger_index: config.trigger_index,
            object_ref,
            specs,
            client: Mutex::new(Some(lease)),
            push: push.then(|| PushState {
                pushed_active: Arc::new(AtomicBool::new(false)),
                task: Mutex::new(None),
            }),
        })
    }

    fn lease(&self) -> Result<Lease<ExternalClient>, ScalerError> {
        self.client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| ScalerError::backend(&self.trigger, "scaler is closed"))
    }

    /// The name the external scaler knows: `s<index>-` removed, checked as KEDA checks it.
    fn remote_metric_name<'a>(&self, metric_name: &'a str) -> Result<&'a str, ScalerError> {
        let Some((prefix, rest)) = metric_name.split_once('-') else {
            return Err(ScalerError::backend(
                &self.trigger,
                format!("metric name without index prefix: {metric_name:?}"),
            ));
        };
        if prefix != format!("s{}", self.trigger_index) {
            return Err(ScalerError::backend(
                &self.trigger,
                format!("metric name contains incorrect index prefix: {metric_name:?}"),
            ));
        }
        Ok(rest)
    }

    fn stop_push(&self) {
        if let Some(push) = &self.push
            && let Some(task) = push
                .task
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
        {
            task.abort();
        }
    }
}

async fn rpc<T>(
    trigger: &str,
    call: &str,
    fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, ScalerError> {
    match tokio::time::timeout(RPC_TIMEOUT, fut).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(ScalerError::backend(
            trigger,
            format!("{call} failed: {:?}: {}", status.code(), status.message()),
        )),
        Err(_) => Err(ScalerError::backend(
            trigger,
            format!("{call} failed: no answer within {RPC_TIMEOUT:?}"),
        )),
    }
}

#[async_trait]
impl Scaler for ExternalScaler {
    fn metric_specs(&self) -> Vec<MetricSpec> {
        self.specs.clone()
    }

    async fn metrics_and_activity(
        &self,
        metric_name: &str,
    ) -> Result<(Vec<MetricValue>, bool), ScalerError> {
        let lease = self.lease()?;
        let remote_name = self.remote_metric_name(metric_name)?;
        let request = GetMetricsRequest {
            scaled_object_ref: Some(self.object_ref.clone()),
            metric_name: remote_name.to_owned(),
        };
        let metrics = rpc(&self.trigger, "GetMetrics", async {
            lease.client().get_metrics(request).await
        })
        .await?;
        let values = metrics
            .metric_values
            .iter()
            .map(|v| {
                #[allow(clippy::cast_precision_loss)]
                let value = if v.metric_value_float > 0.0 {
                    v.metric_value_float
                } else {
                    v.metric_value as f64
                };
                MetricValue::new(metric_name, value)
            })
            .collect();
        let active = rpc(&self.trigger, "IsActive", async {
            lease.client().is_active(self.object_ref.clone()).await
        })
        .await?
        .result;
        let pushed = self
            .push
            .as_ref()
            .is_some_and(|p| p.pushed_active.swap(false, Ordering::AcqRel));
        Ok((values, active || pushed))
    }

    async fn close(&self) {
        self.stop_push();
        self.client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    fn watch_activity(&self, sink: ActivitySink) {
        let Some(push) = &self.push else {
            return;
        };
        let Ok(lease) = self.lease() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(trigger = %self.trigger, "no async runtime; push stream not started");
            return;
        };
        let task = runtime.spawn(push_loop(
            self.trigger.clone(),
            lease,
            self.object_ref.clone(),
            Arc::clone(&push.pushed_active),
            sink,
        ));
        if let Some(old) = push
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(task)
        {
            old.abort();
        }
    }
}

/// Keeps `StreamIsActive` open: every result goes to `sink`. After a clean end the stream is
/// reopened 2 s later; after a failure the delay doubles up to a minute.
async fn push_loop(
    trigger: String,
    lease: Lease<ExternalClient>,
    object_ref: ScaledObjectRef,
    pushed_active: Arc<AtomicBool>,
    sink: ActivitySink,
) {
    let mut delay = PUSH_RETRY_FIRST;
    loop {
        let failure = match lease.client().stream_is_active(object_ref.clone()).await {
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

impl Drop for ExternalScaler {
    fn drop(&mut self) {
        self.stop_push();
    }
}

impl std::fmt::Debug for ExternalScaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalScaler")
            .field("trigger", &self.trigger)
            .field("specs", &self.specs)
            .field("push", &self.push.is_some())
            .finish_non_exhaustive()
    }
}

/// Registry constructor.
pub(crate) async fn build(
    config: &ScalerConfig,
    pools: &Pools,
    push: bool,
) -> Result<Arc<dyn Scaler>, ScalerError> {
    Ok(Arc::new(ExternalScaler::new(config, pools, push).await?))
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
