//! `metrics-api`: a number read from any HTTP endpoint (`url`) at `valueLocation`, in one of four
//! response formats, against `targetValue`.

pub mod formats;
pub mod gjson;

use std::time::Duration;

use crate::ScalerMetadata;
use crate::auth_modes::AuthModes;
use crate::config::{MetricTargetKind, ScalerConfig};
use crate::error::{BackendError, ConnectError, ScalerError};
use crate::http::{GetRequest, HttpClient, HttpIdentity, status_error};
use crate::kind::{Descriptor, Example, Reading, ScalerKind};
use crate::metrics::{MetricSpec, MetricTarget, normalized_metric_name};
use crate::params::{FromParams, MetadataParser, ParamInfo};
use crate::pools::{Lease, Pools};
use formats::Format;

const EXAMPLE: Example = Example::new(
    &[
        ("url", "http://api.default.svc:8080/api/v1/stats"),
        ("valueLocation", "components.worker.tasks"),
        ("targetValue", "8"),
    ],
    &["url", "valueLocation", "targetValue"],
);

/// `metrics-api`.
pub static DESCRIPTOR: Descriptor = Descriptor::new::<MetricsApiScaler>("metrics-api", EXAMPLE);

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

/// The trigger's parameters, in KEDA's order.
#[derive(ScalerMetadata)]
struct MetricsApiParams {
    #[param(name = "url")]
    url: String,
    #[param(name = "valueLocation")]
    value_location: String,
    #[param(name = "targetValue")]
    target_value: Option<f64>,
    #[param(name = "activationTargetValue", default = "0")]
    activation_target_value: f64,
    #[param(name = "format", one_of = ["prometheus", "json", "xml", "yaml"], default = "json")]
    format: String,
    #[param(name = "unsafeSsl", default = false)]
    unsafe_ssl: bool,
    #[param(name = "aggregateFromKubeServiceEndpoints", default = false)]
    aggregate: bool,
    // Checked, but only matters with aggregation, which is refused.
    #[param(name = "aggregationType", one_of = ["average", "sum", "max", "min"], default = "average")]
    _aggregation_type: String,
    #[param(name = "timeout")]
    timeout: Option<Duration>,
    #[param(flatten)]
    auth: AuthModes,
}

/// Parses a metrics-api trigger without I/O.
pub fn parse(config: &ScalerConfig) -> Result<MetricsApiMetadata, ScalerError> {
    let metric_type = config.external_metric_type()?;
    let mut p = MetadataParser::new(config);
    let MetricsApiParams {
        url,
        value_location,
        target_value,
        activation_target_value,
        format,
        unsafe_ssl,
        aggregate,
        _aggregation_type: _,
        timeout,
        auth,
    } = MetricsApiParams::from_params(&mut p);
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

/// A connected metrics-api trigger.
pub struct MetricsApiScaler {
    metadata: MetricsApiMetadata,
    request: GetRequest,
    client: Lease<HttpClient>,
}

impl ScalerKind for MetricsApiScaler {
    type Metadata = MetricsApiMetadata;

    fn parse(config: &ScalerConfig) -> Result<MetricsApiMetadata, ScalerError> {
        parse(config)
    }

    fn params() -> Vec<ParamInfo> {
        MetricsApiParams::params()
    }

    fn metric_specs(
        metadata: &MetricsApiMetadata,
        config: &ScalerConfig,
    ) -> Option<Vec<MetricSpec>> {
        Some(vec![MetricSpec::external(
            normalized_metric_name(
                config.trigger_index,
                &format!("metric-api-{}", metadata.value_location),
            ),
            MetricTarget::new(metadata.metric_type, metadata.target_value),
        )])
    }

    /// Takes a share of the pooled HTTP client for the trigger's TLS material and timeout; the
    /// credentials go on the request.
    async fn connect(
        metadata: MetricsApiMetadata,
        _config: &ScalerConfig,
        pools: &Pools,
    ) -> Result<Self, ConnectError> {
        let mut request = GetRequest {
            url: metadata.url.clone(),
            headers: Vec::new(),
            basic_auth: None,
        };
        metadata
            .auth
            .apply_api_key_basic_bearer(&mut request)
            .map_err(|e| ConnectError::config("url", e))?;
        let identity = HttpIdentity::new(
            metadata.auth.client_tls(metadata.unsafe_ssl),
            metadata.timeout,
            &pools.settings().http,
        );
        let client = pools
            .lease(&identity, || async { HttpClient::build(&identity) })
            .await?;
        Ok(Self {
            metadata,
            request,
            client,
        })
    }

    async fn read(&self, metric_name: &str) -> Result<Reading, BackendError> {
        let context = "error requesting metrics endpoint";
        let response = self
            .client
            .get(&self.request)
            .await
            .map_err(|e| e.context(context))?;
        if response.status != 200 {
            return Err(status_error(
                response.status,
                format!(
                    "{context}: {}: api returned {}",
                    self.metadata.url, response.status
                ),
            ));
        }
        let value = formats::extract(
            self.metadata.format,
            &response.body,
            &self.metadata.value_location,
        )
        .map_err(|e| BackendError::protocol(format!("{context}: {e}")))?;
        Ok(Reading::value(
            metric_name,
            value,
            value > self.metadata.activation_target_value,
        ))
    }
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
