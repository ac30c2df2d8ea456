//! `metrics-api`: a number read from any HTTP endpoint (`url`) at `valueLocation`, in one of four
//! response formats, against `targetValue`.

pub mod formats;
pub mod gjson;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;

use crate::auth_modes::AuthModes;
use crate::clients::http::{GetRequest, HttpClient, HttpIdentity, effective_timeout};
use crate::config::{MetricTargetKind, ScalerConfig};
use crate::error::ScalerError;
use crate::metrics::{MetricSpec, MetricTarget, MetricValue, normalized_metric_name};
use crate::params::MetadataParser;
use crate::pools::{Lease, Pools};
use crate::scaler::Scaler;
use formats::Format;

/// Parsed metrics-api trigger.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricsApiMetadata {
    /// `url`.
    pub url: String,
    /// `valueLocation`.
    pub value_location: String,
    /// `targetValue`.
    pub target_value: f64,
    /// `activationTargetValue` (default 0).
    pub activation_target_value: f64,
    /// `format` (default json).
    pub format: Format,
    /// `unsafeSsl`.
    pub unsafe_ssl: bool,
    /// `timeout`.
    pub timeout: Option<Duration>,
    /// `authModes` block.
    pub auth: AuthModes,
    /// From the trigger's `metricType`.
    pub metric_type: MetricTargetKind,
}

/// Parses a metrics-api trigger without I/O.
pub fn parse(config: &ScalerConfig) -> Result<MetricsApiMetadata, ScalerError> {
    let metric_type = config.external_metric_type()?;
    let mut p = MetadataParser::new(config);
    let url: String = p.param("url").required();
    let value_location: String = p.param("valueLocation").required();
    let target_value = p.param("targetValue").optional::<f64>();
    let activation_target_value = p.param("activationTargetValue").with_default(0.0_f64);
    let format: String = p
        .param("format")
        .one_of(&["prometheus", "json", "xml", "yaml"])
        .with_default("json".to_owned());
    let unsafe_ssl = p.param("unsafeSsl").with_default(false);
    let aggregate = p
        .param("aggregateFromKubeServiceEndpoints")
        .with_default(false);
    let _: String = p
        .param("aggregationType")
        .one_of(&["average", "sum", "max", "min"])
        .with_default("average".to_owned());
    let timeout = p.param("timeout").optional::<Duration>();
    let auth = AuthModes::parse(&mut p);
    if target_value.is_none_or(|v| v == 0.0) && !config.as_metric_source && !p.has_errors() {
        p.error("targetValue", "no targetValue given in metadata");
    }
    if aggregate {
        p.error(
            "aggregateFromKubeServiceEndpoints",
            "aggregating over the service's endpoints is not supported by keda-rs yet",
        );
    }
    if !url.is_empty() && url::Url::parse(&url).is_err() {
        p.error("url", format!("url {url:?} is not a valid URL"));
    }
    p.finish()?;
    Ok(MetricsApiMetadata {
        url,
        value_location,
        target_value: target_value.unwrap_or_default(),
        activation_target_value,
        format: Format::from_param(&format),
        unsafe_ssl,
        timeout,
        auth,
        metric_type,
    })
}

/// The built scaler.
pub struct MetricsApiScaler {
    trigger: String,
    metric_name: String,
    metadata: MetricsApiMetadata,
    request: GetRequest,
    client: Mutex<Option<Lease<HttpClient>>>,
}

impl MetricsApiScaler {
    /// Parses `config` and takes a share of the pooled HTTP client for its TLS/timeout identity.
    pub async fn new(config: &ScalerConfig, pools: &Pools) -> Result<Self, ScalerError> {
        let metadata = parse(config)?;
        let trigger = config.trigger_label();
        let mut request = GetRequest {
            url: metadata.url.clone(),
            headers: Vec::new(),
            basic_auth: None,
        };
        metadata
            .auth
            .apply_api_key_basic_bearer(&mut request)
            .map_err(|e| ScalerError::config(trigger.clone(), "url", e))?;
        let identity = HttpIdentity {
            tls: metadata.auth.client_tls(metadata.unsafe_ssl),
            timeout: effective_timeout(metadata.timeout),
        };
        let lease = pools
            .http()
            .get_or_connect(&identity, || async { HttpClient::build(&identity) })
            .await
            .map_err(|message| ScalerError::backend(trigger.clone(), message))?;
        Ok(Self {
            metric_name: normalized_metric_name(
                config.trigger_index,
                &format!("metric-api-{}", metadata.value_location),
            ),
            trigger,
            metadata,
            request,
            client: Mutex::new(Some(lease)),
        })
    }

    /// The parsed trigger.
    pub fn metadata(&self) -> &MetricsApiMetadata {
        &self.metadata
    }

    async fn value(&self) -> Result<f64, ScalerError> {
        let failed = |e: String| {
            ScalerError::backend(
                &self.trigger,
                format!("error requesting metrics endpoint: {e}"),
            )
        };
        let client = self
            .client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| ScalerError::backend(&self.trigger, "scaler is closed"))?;
        let response = client.get(&self.request).await.map_err(failed)?;
        if response.status != 200 {
            return Err(failed(format!(
                "{}: api returned {}",
                self.metadata.url, response.status
            )));
        }
        formats::extract(
            self.metadata.format,
            &response.body,
            &self.metadata.value_location,
        )
        .map_err(failed)
    }
}

#[async_trait]
impl Scaler for MetricsApiScaler {
    fn metric_specs(&self) -> Vec<MetricSpec> {
        vec![MetricSpec::external(
            self.metric_name.clone(),
            MetricTarget::new(self.metadata.metric_type, self.metadata.target_value),
        )]
    }

    async fn metrics_and_activity(
        &self,
        metric_name: &str,
    ) -> Result<(Vec<MetricValue>, bool), ScalerError> {
        let value = self.value().await.inspect_err(|e| {
            tracing::warn!(trigger = %self.trigger, error = %e, "metrics-api poll failed");
        })?;
        Ok((
            vec![MetricValue::new(metric_name, value)],
            value > self.metadata.activation_target_value,
        ))
    }

    async fn close(&self) {
        self.client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

impl std::fmt::Debug for MetricsApiScaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsApiScaler")
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
    Ok(Arc::new(MetricsApiScaler::new(config, pools).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----";

    fn cfg(metadata: &[(&str, &str)], auth: &[(&str, &str)]) -> ScalerConfig {
        ScalerConfig::new("metrics-api", 1)
            .with_metadata(metadata.iter().copied())
            .with_auth_params(auth.iter().copied())
    }

    const BASE: &[(&str, &str)] = &[
        ("url", "http://dummy:1230/api/v1/"),
        ("valueLocation", "metric.test"),
        ("targetValue", "42"),
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

    fn rejects(metadata: &[(&str, &str)], auth: &[(&str, &str)], param: &str) {
        let err = parse(&cfg(metadata, auth)).unwrap_err();
        assert!(err.is_config());
        assert!(
            err.parameter() == Some(param) || err.to_string().contains(&format!("\"{param}\"")),
            "expected {param}: {err}"
        );
    }

    // KEDA's metrics_api_scaler_test.go table, as facts.

    #[test]
    fn metadata_table() {
        let m = parse(&cfg(BASE, &[])).unwrap();
        assert_eq!(m.target_value, 42.0);
        assert_eq!(m.format, Format::Json);
        rejects(&with(&[("targetValue", "aa")]), &[], "targetValue");
        rejects(
            &with(&[("activationTargetValue", "aa")]),
            &[],
            "activationTargetValue",
        );
        rejects(&with(&[("valueLocation", "")]), &[], "valueLocation");
        rejects(&with(&[("url", "")]), &[], "url");
        rejects(&with(&[("targetValue", "")]), &[], "targetValue");
        assert_eq!(
            parse(&cfg(&with(&[("targetValue", "")]), &[]))
                .unwrap_err()
                .message(),
            "no targetValue given in metadata"
        );
        let mut source = cfg(&with(&[("targetValue", "")]), &[]);
        source.as_metric_source = true;
        parse(&source).unwrap();
        assert_eq!(
            parse(&cfg(&with(&[("timeout", "1000")]), &[]))
                .unwrap()
                .timeout,
            Some(Duration::from_secs(1))
        );
        rejects(&with(&[("timeout", "-1")]), &[], "timeout");
        rejects(&with(&[("timeout", "a")]), &[], "timeout");
        rejects(&with(&[("unsafeSsl", "yes")]), &[], "unsafeSsl");
        rejects(&with(&[("format", "csv")]), &[], "format");
        rejects(
            &with(&[("aggregationType", "median")]),
            &[],
            "aggregationType",
        );
        rejects(
            &with(&[("aggregateFromKubeServiceEndpoints", "true")]),
            &[],
            "aggregateFromKubeServiceEndpoints",
        );
        for f in ["json", "xml", "yaml", "prometheus"] {
            let m = parse(&cfg(&with(&[("format", f)]), &[])).unwrap();
            assert_eq!(m.format, Format::from_param(f));
        }
    }

    #[test]
    fn auth_table() {
        rejects(&with(&[("authMode", "tls")]), &[("cert", CERT)], "key");
        rejects(&with(&[("authMode", "tls")]), &[("key", "k")], "cert");
        let m = parse(&cfg(&with(&[("authMode", "apiKey")]), &[("apiKey", "k")])).unwrap();
        assert!(m.auth.has("apiKey") && !m.auth.api_key_in_query);
        let m = parse(&cfg(
            &with(&[
                ("authMode", "apiKey"),
                ("method", "query"),
                ("keyParamName", "key"),
            ]),
            &[("apiKey", "k")],
        ))
        .unwrap();
        assert!(m.auth.api_key_in_query);
        assert_eq!(m.auth.key_param_name.as_deref(), Some("key"));
        rejects(&with(&[("authMode", "apiKey")]), &[], "apiKey");
        let m = parse(&cfg(&with(&[("authMode", "bearer")]), &[("token", "t")])).unwrap();
        assert_eq!(m.auth.bearer_token.as_deref(), Some("t"));
        rejects(&with(&[("authMode", "bearer")]), &[], "bearerToken");
        rejects(
            &with(&[("authMode", "apiKey"), ("method", "cookie")]),
            &[("apiKey", "k")],
            "method",
        );
    }

    #[test]
    fn tutorial_triggers_parse_unchanged() {
        // From the seed tutorials: a Dynatrace query URL with quotes and parentheses, API key in a
        // custom header.
        let url = "https://tenant.example.com/api/v2/metrics/query?metricSelector=builtin:service.requestCount.total:filter(and(in(\"dt.entity.service\",entitySelector(\"type(service),entityName(~\"greeting-service~\")\")))):splitBy():sum:timeshift(-3m):rollup(avg,3m):last";
        let m = parse(&cfg(
            &[
                ("targetValue", "100"),
                ("url", url),
                ("valueLocation", "result.0.data.0.values.0"),
                ("authMode", "apiKey"),
                ("keyParamName", "Authorization"),
            ],
            &[("apiKey", "Api-Token x")],
        ))
        .unwrap();
        assert_eq!(m.auth.key_param_name.as_deref(), Some("Authorization"));
        parse(&cfg(
            &[
                ("targetValue", "8"),
                ("url", "http://api:3232/api/v1/stats"),
                ("valueLocation", "components.worker.tasks"),
            ],
            &[],
        ))
        .unwrap();
    }

    #[test]
    fn metric_name_is_normalized() {
        assert_eq!(
            normalized_metric_name(1, "metric-api-metric.test"),
            "s1-metric-api-metric-test"
        );
    }
}
