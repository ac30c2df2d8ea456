//! `prometheus`: the value of an instant PromQL query against `threshold`. Identical queries (same
//! server, query, parameters, headers and credentials) from many objects are coalesced: while one
//! is in flight, or for [`QUERY_REUSE`] after it answered, others share its response.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::ScalerMetadata;
use crate::auth_modes::AuthModes;
use crate::config::{MetricTargetKind, ScalerConfig};
use crate::error::{BackendError, ConnectError, ScalerError};
use crate::http::{GetRequest, HttpClient, HttpIdentity, status_error};
use crate::kind::{Descriptor, Example, Reading, ScalerKind};
use crate::metrics::{MetricSpec, MetricTarget, metric_name_with_index};
use crate::params::{FromParams, MetadataParser, ParamInfo};
use crate::pools::{Lease, Pools};

const EXAMPLE: Example = Example::new(
    &[
        ("serverAddress", "http://prometheus.monitoring.svc:9090"),
        ("query", "sum(rate(http_requests_total[2m]))"),
        ("threshold", "10"),
    ],
    &["serverAddress", "query", "threshold"],
);

/// `prometheus`.
pub static DESCRIPTOR: Descriptor = Descriptor::new::<PrometheusScaler>("prometheus", EXAMPLE);

/// How long a successful answer serves identical queries. Well under any scrape interval, so the
/// value is as fresh as the data behind it; with polls spread over a 30 s interval it turns a
/// thousand requests per interval into about six.
pub const QUERY_REUSE: Duration = Duration::from_secs(5);

/// Parsed prometheus trigger.
#[derive(Clone, Debug, PartialEq)]
pub struct PrometheusMetadata {
    /// `serverAddress`.
    pub server_address: String,
    /// `query`.
    pub query: String,
    /// `threshold`.
    pub threshold: f64,
    /// `activationThreshold` (default 0).
    pub activation_threshold: f64,
    /// `queryParameters`.
    pub query_parameters: BTreeMap<String, String>,
    /// `namespace`.
    pub namespace: Option<String>,
    /// `customHeaders`.
    pub custom_headers: BTreeMap<String, String>,
    /// `ignoreNullValues` (default true).
    pub ignore_null_values: bool,
    /// `unsafeSsl`.
    pub unsafe_ssl: bool,
    /// `timeout`.
    pub timeout: Option<Duration>,
    /// `authModes` block.
    pub auth: AuthModes,
    /// From the trigger's `metricType`.
    pub metric_type: MetricTargetKind,
}

/// The trigger's parameters, in the order they are read.
#[derive(ScalerMetadata)]
struct PrometheusParams {
    #[param(name = "serverAddress")]
    server_address: String,
    #[param(name = "query")]
    query: String,
    #[param(name = "threshold")]
    threshold: f64,
    #[param(name = "activationThreshold")]
    activation_threshold: Option<f64>,
    #[param(name = "queryParameters")]
    query_parameters: Option<BTreeMap<String, String>>,
    #[param(name = "namespace")]
    namespace: Option<String>,
    #[param(name = "customHeaders")]
    custom_headers: Option<BTreeMap<String, String>>,
    #[param(name = "ignoreNullValues", default = true)]
    ignore_null_values: bool,
    #[param(name = "unsafeSsl")]
    unsafe_ssl: Option<bool>,
    #[param(name = "timeout")]
    timeout: Option<Duration>,
    // Accepted for compatibility; cloud signing transports are not built.
    #[param(name = "awsRegion", from = METADATA_AUTH)]
    _aws_region: Option<String>,
    #[param(name = "identityOwner")]
    _identity_owner: Option<String>,
    #[param(name = "metricName")]
    _metric_name: Option<String>,
    #[param(flatten)]
    auth: AuthModes,
}

/// Parses a prometheus trigger without I/O.
pub fn parse(config: &ScalerConfig) -> Result<PrometheusMetadata, ScalerError> {
    let metric_type = config.external_metric_type()?;
    let mut p = MetadataParser::new(config);
    let params = PrometheusParams::from_params(&mut p);
    let server_address = params.server_address;
    if !server_address.is_empty() && url::Url::parse(&server_address).is_err() {
        p.error(
            "serverAddress",
            format!("serverAddress {server_address:?} is not a valid URL"),
        );
    }
    p.finish()?;
    Ok(PrometheusMetadata {
        server_address,
        query: params.query,
        threshold: params.threshold,
        activation_threshold: params.activation_threshold.unwrap_or(0.0),
        query_parameters: params.query_parameters.unwrap_or_default(),
        namespace: params.namespace,
        custom_headers: params.custom_headers.unwrap_or_default(),
        ignore_null_values: params.ignore_null_values,
        unsafe_ssl: params.unsafe_ssl.unwrap_or(false),
        timeout: params.timeout,
        auth: params.auth,
        metric_type,
    })
}

/// Reads the query's value from a `/api/v1/query` response body, following KEDA's rules for empty,
/// null, NaN/Inf and multi-element results.
pub fn parse_query_response(
    body: &[u8],
    query: &str,
    ignore_null: bool,
) -> Result<f64, BackendError> {
    let json: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        BackendError::protocol(format!("prometheus query api returned invalid JSON: {e}"))
    })?;
    let empty = Vec::new();
    let results = json
        .get("data")
        .and_then(|d| d.get("result"))
        .and_then(serde_json::Value::as_array)
        .unwrap_or(&empty);
    let first = match results.as_slice() {
        [] if ignore_null => return Ok(0.0),
        [] => {
            return Err(BackendError::protocol(format!(
                "prometheus metrics {query:?} the result is empty"
            )));
        }
        [one] => one,
        _ => {
            return Err(BackendError::protocol(format!(
                "prometheus query {query} returned multiple elements"
            )));
        }
    };
    let values = first
        .get("value")
        .and_then(serde_json::Value::as_array)
        .unwrap_or(&empty);
    match values.as_slice() {
        [] if ignore_null => Ok(0.0),
        [] => Err(BackendError::protocol(format!(
            "prometheus metrics {query:?} the value list is empty"
        ))),
        [_] => Err(BackendError::protocol(format!(
            "prometheus query {query} didn't return enough values"
        ))),
        [_, serde_json::Value::Null, ..] => Ok(-1.0),
        [_, serde_json::Value::String(text), ..] => {
            let v = parse_go_float(text).ok_or_else(|| {
                BackendError::protocol(format!(
                    "prometheus query {query} returned a non-number {text:?}"
                ))
            })?;
            if v.is_finite() {
                Ok(v)
            } else if ignore_null {
                Ok(0.0)
            } else {
                Err(BackendError::protocol(format!(
                    "prometheus query returns {text}"
                )))
            }
        }
        [_, other, ..] => Err(BackendError::protocol(format!(
            "prometheus query {query} returned a value that is not a string: {other}"
        ))),
    }
}

/// Go's `strconv.ParseFloat` spellings that matter here: decimal/exponent numbers, `NaN`, `±Inf`.
fn parse_go_float(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        t if t
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) =>
        {
            t.parse().ok()
        }
        _ => None,
    }
}

/// A connected prometheus trigger.
pub struct PrometheusScaler {
    metadata: PrometheusMetadata,
    // The request without `time`: identical requests from any scaler share one response.
    request_key: GetRequest,
    client: Lease<HttpClient>,
}

impl ScalerKind for PrometheusScaler {
    type Metadata = PrometheusMetadata;

    fn parse(config: &ScalerConfig) -> Result<PrometheusMetadata, ScalerError> {
        parse(config)
    }

    fn params() -> Vec<ParamInfo> {
        PrometheusParams::params()
    }

    fn metric_specs(
        metadata: &PrometheusMetadata,
        config: &ScalerConfig,
    ) -> Option<Vec<MetricSpec>> {
        Some(vec![MetricSpec::external(
            metric_name_with_index(config.trigger_index, "prometheus"),
            MetricTarget::new(metadata.metric_type, metadata.threshold),
        )])
    }

    /// Takes a share of the pooled HTTP client for the trigger's TLS material and timeout.
    async fn connect(
        metadata: PrometheusMetadata,
        _config: &ScalerConfig,
        pools: &Pools,
    ) -> Result<Self, ConnectError> {
        let identity = HttpIdentity::new(
            metadata.auth.client_tls(metadata.unsafe_ssl),
            metadata.timeout,
            &pools.settings().http,
        );
        let client = pools
            .lease(&identity, || async { HttpClient::build(&identity) })
            .await?;
        let request_key = request_key(&metadata);
        Ok(Self {
            metadata,
            request_key,
            client,
        })
    }

    async fn read(&self, metric_name: &str) -> Result<Reading, BackendError> {
        let response = self
            .client
            .get_coalesced(&self.request_key, QUERY_REUSE, || {
                let mut actual = self.request_key.clone();
                actual.url = with_time(&actual.url);
                actual
            })
            .await?;
        if !(200..300).contains(&response.status) {
            return Err(status_error(
                response.status,
                format!(
                    "prometheus query api returned error. status: {} response: {}",
                    response.status,
                    String::from_utf8_lossy(&response.body)
                        .chars()
                        .take(200)
                        .collect::<String>()
                ),
            ));
        }
        let value = parse_query_response(
            &response.body,
            &self.metadata.query,
            self.metadata.ignore_null_values,
        )?;
        Ok(Reading::value(
            metric_name,
            value,
            value > self.metadata.activation_threshold,
        ))
    }
}

/// `<server>/api/v1/query?query=…[&namespace=…][&k=v…]`, headers and credentials; no `time`.
fn request_key(m: &PrometheusMetadata) -> GetRequest {
    let escaped: String = url::form_urlencoded::byte_serialize(m.query.as_bytes()).collect();
    let mut url = format!(
        "{}/api/v1/query?query={escaped}",
        m.server_address.trim_end_matches('/')
    );
    if let Some(ns) = &m.namespace {
        // Not escaped, as KEDA does.
        url.push_str(&format!("&namespace={ns}"));
    }
    for (k, v) in &m.query_parameters {
        let k: String = url::form_urlencoded::byte_serialize(k.as_bytes()).collect();
        let v: String = url::form_urlencoded::byte_serialize(v.as_bytes()).collect();
        url.push_str(&format!("&{k}={v}"));
    }
    let mut request = GetRequest {
        url,
        headers: m
            .custom_headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        basic_auth: None,
    };
    m.auth.apply_first_of_bearer_basic_custom(&mut request);
    request
}

/// Adds `time=<now, RFC 3339 UTC>` right after the query, as KEDA sends it.
fn with_time(url: &str) -> String {
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    match url.split_once('&') {
        Some((head, tail)) => format!("{head}&time={now}&{tail}"),
        None => format!("{url}&time={now}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str =
        "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUJ1\n-----END CERTIFICATE-----";

    fn cfg(metadata: &[(&str, &str)], auth: &[(&str, &str)]) -> ScalerConfig {
        ScalerConfig::new("prometheus", 0)
            .with_metadata(metadata.iter().copied())
            .with_auth_params(auth.iter().copied())
    }

    const BASE: &[(&str, &str)] = &[
        ("serverAddress", "http://localhost:9090"),
        ("threshold", "100"),
        ("query", "up"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut m: Vec<_> = BASE
            .iter()
            .copied()
            .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
            .collect();
        m.extend(extra.iter().copied());
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

    // KEDA's prometheus_scaler_test.go table, as facts.

    #[test]
    fn metadata_table() {
        let m = parse(&cfg(BASE, &[])).unwrap();
        assert_eq!(m.threshold, 100.0);
        assert!(m.ignore_null_values);
        assert_eq!(m.activation_threshold, 0.0);
        rejects(&with(&[("serverAddress", "")]), &[], "serverAddress");
        rejects(
            &[("serverAddress", "http://x"), ("query", "up")],
            &[],
            "threshold",
        );
        rejects(&with(&[("threshold", "one")]), &[], "threshold");
        rejects(
            &with(&[("activationThreshold", "one")]),
            &[],
            "activationThreshold",
        );
        rejects(&with(&[("query", "")]), &[], "query");
        rejects(
            &with(&[("ignoreNullValues", "xxxx")]),
            &[],
            "ignoreNullValues",
        );
        rejects(
            &with(&[("customHeaders", "key1=value1,key2")]),
            &[],
            "customHeaders",
        );
        rejects(
            &with(&[("queryParameters", "key1=value1,key2")]),
            &[],
            "queryParameters",
        );
        let m = parse(&cfg(&with(&[("timeout", "1000")]), &[])).unwrap();
        assert_eq!(m.timeout, Some(Duration::from_secs(1)));
        rejects(&with(&[("timeout", "-1")]), &[], "timeout");
        rejects(&with(&[("timeout", "a")]), &[], "timeout");
        let m = parse(&cfg(
            &with(&[("customHeaders", "a=1, b = 2"), ("queryParameters", "x=y")]),
            &[],
        ))
        .unwrap();
        assert_eq!(m.custom_headers.get("b").map(String::as_str), Some("2"));
        assert_eq!(m.query_parameters.get("x").map(String::as_str), Some("y"));
    }

    #[test]
    fn auth_modes_table() {
        rejects(&with(&[("authModes", "bearer")]), &[], "bearerToken");
        rejects(
            &with(&[("authModes", "basic")]),
            &[("password", "p")],
            "username",
        );
        rejects(&with(&[("authModes", "tls")]), &[("key", "k")], "cert");
        rejects(&with(&[("authModes", "tls")]), &[("cert", CERT)], "key");
        rejects(&with(&[("authModes", "nope")]), &[], "authModes");
        rejects(
            &with(&[("authModes", "bearer,basic")]),
            &[("bearerToken", "t"), ("username", "u")],
            "authModes",
        );
        let m = parse(&cfg(
            &with(&[("authModes", "bearer")]),
            &[("bearerToken", "t")],
        ))
        .unwrap();
        assert!(m.auth.has("bearer"));
        let m = parse(&cfg(&with(&[("authModes", "basic")]), &[("username", "u")])).unwrap();
        assert_eq!(m.auth.username.as_deref(), Some("u"));
        // Custom header and value with trailing newlines (from Secrets) are trimmed.
        let m = parse(&cfg(
            &with(&[("authModes", "custom")]),
            &[("customAuthHeader", "X-Org\n"), ("customAuthValue", "v1\n")],
        ))
        .unwrap();
        assert_eq!(m.auth.custom_header.as_deref(), Some("X-Org"));
        assert_eq!(m.auth.custom_value.as_deref(), Some("v1"));
        rejects(
            &with(&[("authModes", "custom")]),
            &[("customAuthHeader", "h")],
            "customAuthHeader",
        );
        // authModes from authParams too.
        let err = parse(&cfg(BASE, &[("authModes", "bearer")])).unwrap_err();
        assert!(err.message().contains("bearer token=<empty>"), "{err}");
        assert!(
            !format!(
                "{:?}",
                parse(&cfg(
                    &with(&[("authModes", "bearer")]),
                    &[("bearerToken", "s3cr3t")]
                ))
                .unwrap()
            )
            .contains("s3cr3t")
        );
    }

    #[test]
    fn tutorial_triggers_parse_unchanged() {
        parse(&cfg(
            &[
                ("serverAddress", "http://prometheus.monitoring.svc:9090"),
                ("metricName", "orders_per_second"),
                ("threshold", "10"),
                (
                    "query",
                    "sum(rate(http_requests_total{job=\"order-service\"}[2m]))",
                ),
            ],
            &[],
        ))
        .unwrap();
    }

    #[test]
    fn request_shape() {
        let m = parse(&cfg(
            &with(&[
                ("query", "sum(rate(x{a=\"b c\"}[1m]))"),
                ("namespace", "team-a"),
                ("queryParameters", "dedup=true"),
                ("customHeaders", "X-Scope-OrgID=tenant"),
                ("authModes", "bearer"),
            ]),
            &[("bearerToken", "tok")],
        ))
        .unwrap();
        let r = request_key(&m);
        assert_eq!(
            r.url,
            "http://localhost:9090/api/v1/query?query=sum%28rate%28x%7Ba%3D%22b+c%22%7D%5B1m%5D%29%29&namespace=team-a&dedup=true"
        );
        assert_eq!(
            r.headers,
            [
                ("X-Scope-OrgID".to_owned(), "tenant".to_owned()),
                ("Authorization".to_owned(), "Bearer tok".to_owned())
            ]
        );
        let timed = with_time(&r.url);
        assert!(
            timed.contains("&time=20") && timed.contains("Z&namespace=team-a"),
            "{timed}"
        );
    }

    #[test]
    fn response_rules() {
        let ok = |body: &str, ignore: bool| parse_query_response(body.as_bytes(), "q", ignore);
        let vector = |v: &str| {
            format!(
                r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1700000000.1,{v}]}}]}}}}"#
            )
        };
        assert_eq!(ok(&vector("\"12.5\""), true), Ok(12.5));
        assert_eq!(ok(&vector("\"12.5\""), false), Ok(12.5));
        assert_eq!(ok(r#"{"data":{"result":[]}}"#, true), Ok(0.0));
        assert!(
            ok(r#"{"data":{"result":[]}}"#, false)
                .unwrap_err()
                .message
                .contains("the result is empty")
        );
        assert_eq!(ok("{}", true), Ok(0.0));
        assert!(ok("{}", false).is_err());
        assert!(ok("not json", true).is_err());
        let two = r#"{"data":{"result":[{"value":[1,"1"]},{"value":[1,"2"]}]}}"#;
        assert!(
            ok(two, true)
                .unwrap_err()
                .message
                .contains("returned multiple elements")
        );
        assert_eq!(ok(r#"{"data":{"result":[{"value":[]}]}}"#, true), Ok(0.0));
        assert!(
            ok(r#"{"data":{"result":[{"value":[]}]}}"#, false)
                .unwrap_err()
                .message
                .contains("the value list is empty")
        );
        assert!(
            ok(r#"{"data":{"result":[{"value":[1]}]}}"#, true)
                .unwrap_err()
                .message
                .contains("didn't return enough values")
        );
        assert!(ok(&vector("\"abc\""), true).is_err());
        for special in ["NaN", "+Inf", "-Inf"] {
            assert_eq!(ok(&vector(&format!("\"{special}\"")), true), Ok(0.0));
            assert_eq!(
                ok(&vector(&format!("\"{special}\"")), false),
                Err(BackendError::protocol(format!(
                    "prometheus query returns {special}"
                )))
            );
        }
        assert_eq!(ok(&vector("null"), true), Ok(-1.0));
        assert_eq!(ok(&vector("null"), false), Ok(-1.0));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn response_parser_never_panics(body in proptest::collection::vec(any::<u8>(), 0..200), ignore in any::<bool>()) {
                let _ = parse_query_response(&body, "q", ignore);
            }

            #[test]
            fn finite_values_round_trip(v in proptest::num::f64::NORMAL | proptest::num::f64::ZERO) {
                let body = format!(r#"{{"data":{{"result":[{{"value":[1,"{v}"]}}]}}}}"#);
                prop_assert_eq!(parse_query_response(body.as_bytes(), "q", false), Ok(v));
            }
        }
    }
}
