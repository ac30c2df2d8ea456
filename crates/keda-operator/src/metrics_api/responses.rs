//! Wire formats: discovery documents, `ExternalMetricValueList`, and `Status` error bodies.
//!
//! Discovery documents never change, so they are static strings; the per-request work is one
//! small JSON serialization of the list or the `Status`.

use std::time::SystemTime;

use serde::Serialize;

use super::ExternalMetricSample;
use super::quantity::milli_quantity;

/// `GET /apis`: the one group we serve.
pub(crate) const API_GROUP_LIST: &str = concat!(
    r#"{"kind":"APIGroupList","apiVersion":"v1","groups":[{"name":"external.metrics.k8s.io","#,
    r#""versions":[{"groupVersion":"external.metrics.k8s.io/v1beta1","version":"v1beta1"}],"#,
    r#""preferredVersion":{"groupVersion":"external.metrics.k8s.io/v1beta1","version":"v1beta1"}}]}"#
);

/// `GET /apis/external.metrics.k8s.io`.
pub(crate) const API_GROUP: &str = concat!(
    r#"{"kind":"APIGroup","apiVersion":"v1","name":"external.metrics.k8s.io","#,
    r#""versions":[{"groupVersion":"external.metrics.k8s.io/v1beta1","version":"v1beta1"}],"#,
    r#""preferredVersion":{"groupVersion":"external.metrics.k8s.io/v1beta1","version":"v1beta1"}}"#
);

/// `GET /apis/external.metrics.k8s.io/v1beta1`: the single placeholder resource KEDA's adapter
/// lists (`ListAllExternalMetrics`); the HPA never lists, it reads by name.
pub(crate) const API_RESOURCE_LIST: &str = concat!(
    r#"{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"external.metrics.k8s.io/v1beta1","#,
    r#""resources":[{"name":"externalmetrics","singularName":"","namespaced":true,"#,
    r#""kind":"ExternalMetricValueList","verbs":["get"]}]}"#
);

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExternalMetricValueList<'a> {
    kind: &'static str,
    api_version: &'static str,
    metadata: Empty,
    items: Vec<ExternalMetricValue<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExternalMetricValue<'a> {
    metric_name: &'a str,
    metric_labels: Empty,
    timestamp: String,
    value: String,
}

/// The `ExternalMetricValueList` body for `samples`.
pub(crate) fn metric_value_list(samples: &[ExternalMetricSample]) -> Vec<u8> {
    let list = ExternalMetricValueList {
        kind: "ExternalMetricValueList",
        api_version: super::GROUP_VERSION,
        metadata: Empty {},
        items: samples
            .iter()
            .map(|sample| ExternalMetricValue {
                metric_name: &sample.metric_name,
                metric_labels: Empty {},
                timestamp: rfc3339_seconds(sample.timestamp),
                value: milli_quantity(sample.value),
            })
            .collect(),
    };
    // Serializing plain strings and structs into a Vec cannot fail.
    serde_json::to_vec(&list).unwrap_or_default()
}

/// RFC 3339 in UTC, truncated to whole seconds (as KEDA sends timestamps). Times outside
/// jiff's range are clamped to it.
pub(crate) fn rfc3339_seconds(time: SystemTime) -> String {
    let timestamp = jiff::Timestamp::try_from(time).unwrap_or_else(|_| {
        if time < SystemTime::UNIX_EPOCH {
            jiff::Timestamp::MIN
        } else {
            jiff::Timestamp::MAX
        }
    });
    // Floor, not truncate toward zero: jiff gives pre-epoch times a negative fraction.
    let mut second = timestamp.as_second();
    if timestamp.subsec_nanosecond() < 0 {
        second -= 1;
    }
    jiff::Timestamp::from_second(second)
        .unwrap_or(timestamp)
        .to_string()
}

/// The `reason` of a failure `Status`, by HTTP code.
fn reason(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        _ => "InternalError",
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Status<'a> {
    kind: &'static str,
    api_version: &'static str,
    metadata: Empty,
    status: &'static str,
    message: &'a str,
    reason: &'static str,
    code: u16,
}

/// A Kubernetes failure `Status` body with `code` and `message`.
pub(crate) fn status(code: u16, message: &str) -> Vec<u8> {
    serde_json::to_vec(&Status {
        kind: "Status",
        api_version: "v1",
        metadata: Empty {},
        status: "Failure",
        message,
        reason: reason(code),
        code,
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::{Value, json};

    use super::*;

    fn parse(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).expect("valid JSON")
    }

    #[test]
    fn discovery_documents_are_valid_json() {
        let resources = parse(API_RESOURCE_LIST.as_bytes());
        assert_eq!(
            resources,
            json!({
                "kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": "external.metrics.k8s.io/v1beta1",
                "resources": [{"name": "externalmetrics", "singularName": "", "namespaced": true,
                               "kind": "ExternalMetricValueList", "verbs": ["get"]}]
            })
        );
        let group = parse(API_GROUP.as_bytes());
        assert_eq!(group["kind"], "APIGroup");
        assert_eq!(group["name"], "external.metrics.k8s.io");
        assert_eq!(
            group["preferredVersion"]["groupVersion"],
            "external.metrics.k8s.io/v1beta1"
        );
        let groups = parse(API_GROUP_LIST.as_bytes());
        assert_eq!(groups["kind"], "APIGroupList");
        assert_eq!(groups["groups"][0]["versions"][0]["version"], "v1beta1");
    }

    #[test]
    fn value_list_shape() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_999);
        let samples = [
            ExternalMetricSample {
                metric_name: "s0-redis-mylist".to_owned(),
                value: 2.5,
                timestamp: at,
            },
            ExternalMetricSample {
                metric_name: "s1-x".to_owned(),
                value: -1.0,
                timestamp: at,
            },
        ];
        assert_eq!(
            parse(&metric_value_list(&samples)),
            json!({
                "kind": "ExternalMetricValueList",
                "apiVersion": "external.metrics.k8s.io/v1beta1",
                "metadata": {},
                "items": [
                    {"metricName": "s0-redis-mylist", "metricLabels": {},
                     "timestamp": "2023-11-14T22:13:20Z", "value": "2500m"},
                    {"metricName": "s1-x", "metricLabels": {},
                     "timestamp": "2023-11-14T22:13:20Z", "value": "0"},
                ]
            })
        );
        assert_eq!(
            parse(&metric_value_list(&[])),
            json!({"kind": "ExternalMetricValueList",
                   "apiVersion": "external.metrics.k8s.io/v1beta1", "metadata": {}, "items": []})
        );
    }

    #[test]
    fn timestamps_truncate_and_clamp() {
        assert_eq!(
            rfc3339_seconds(SystemTime::UNIX_EPOCH),
            "1970-01-01T00:00:00Z"
        );
        let before = SystemTime::UNIX_EPOCH - Duration::from_millis(1500);
        assert_eq!(rfc3339_seconds(before), "1969-12-31T23:59:58Z");
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 40);
        assert_eq!(rfc3339_seconds(far), "9999-12-30T22:00:00Z");
    }

    #[test]
    fn status_bodies() {
        let cases = [
            (400, "scaledObject name is not specified", "BadRequest"),
            (401, "who?", "Unauthorized"),
            (403, "no", "Forbidden"),
            (404, "no matching metrics found", "NotFound"),
            (405, "GET only", "MethodNotAllowed"),
            (500, "metric:s0-x encountered error", "InternalError"),
        ];
        for (code, message, reason) in cases {
            assert_eq!(
                parse(&status(code, message)),
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": message, "reason": reason, "code": code})
            );
        }
        // Messages are escaped, not spliced.
        assert_eq!(parse(&status(500, "a\"b\n{"))["message"], "a\"b\n{");
    }
}
