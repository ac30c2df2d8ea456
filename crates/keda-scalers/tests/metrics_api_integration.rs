//! The metrics-api scaler against an HTTP endpoint the test serves (the scaler's protocol peer):
//! every format, values in several states, strict activation, the credentials each auth mode puts
//! on the wire, HTTP errors, and the shared compliance check.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use keda_scalers::testing::{ComplianceCase, check_live, check_parsing};
use keda_scalers::{Pools, Registry, Scaler, ScalerConfig, ScalerError};
use test_cluster::http_peer::HttpPeer;

fn config(metadata: &[(&str, &str)]) -> ScalerConfig {
    ScalerConfig::new("metrics-api", 0).with_metadata(metadata.iter().copied())
}

async fn build(config: &ScalerConfig, pools: &Pools) -> Result<Arc<Scaler>, ScalerError> {
    Registry::builtin().build(config, pools).await
}

async fn poll(scaler: &Scaler) -> Result<(f64, bool), ScalerError> {
    let name = scaler.metric_specs()[0]
        .external_metric_name()
        .unwrap()
        .to_owned();
    let (values, active) = scaler.metrics_and_activity(&name).await?;
    assert_eq!(values.len(), 1);
    assert_eq!(values[0].metric_name, name);
    Ok((values[0].value, active))
}

struct FormatCase {
    format: &'static str,
    content_type: &'static str,
    location: &'static str,
    body: fn(u32) -> String,
}

const FORMATS: &[FormatCase] = &[
    FormatCase {
        format: "json",
        content_type: "application/json",
        location: "components.0.tasks",
        body: |n| format!(r#"{{"components":[{{"id":"w","tasks":{n}}}],"other":1}}"#),
    },
    FormatCase {
        format: "yaml",
        content_type: "application/yaml",
        location: "components.0.tasks",
        body: |n| format!("components:\n  - id: w\n    tasks: \"{n}\"\nother: 1\n"),
    },
    FormatCase {
        format: "xml",
        content_type: "application/xml",
        location: "stats.queue.depth",
        body: |n| {
            format!(
                "<?xml version=\"1.0\"?><stats><queue name=\"a\"><depth>{n}</depth></queue></stats>"
            )
        },
    },
    FormatCase {
        format: "prometheus",
        content_type: "text/plain; version=0.0.4",
        location: "queue_depth{queue=\"b\"}",
        body: |n| {
            format!(
                "# HELP queue_depth d\n# TYPE queue_depth gauge\nqueue_depth{{queue=\"a\"}} 99\nqueue_depth{{queue=\"b\",pod=\"x\"}} {n}\n"
            )
        },
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_in_several_states_with_strict_activation() {
    let peer = HttpPeer::start();
    let pools = Pools::new();
    let mut kept = Vec::new();
    for case in FORMATS {
        let path = format!("/{}", case.format);
        let url = format!("{}{path}", peer.url());
        let cfg = |activation: &str| {
            config(&[
                ("url", &url),
                ("format", case.format),
                ("valueLocation", case.location),
                ("targetValue", "4"),
                ("activationTargetValue", activation),
            ])
        };
        let scaler = build(&cfg("5"), &pools).await.unwrap();
        for (n, active) in [(0, false), (5, false), (6, true), (42, true)] {
            peer.set(&path, case.content_type, &(case.body)(n));
            assert_eq!(
                poll(scaler.as_ref()).await.unwrap(),
                (f64::from(n), active),
                "format {} value {n}",
                case.format
            );
        }
        kept.push(scaler);
    }
    assert_eq!(pools.live_clients(), 1, "one HTTP client for every format");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_name_and_target() {
    let peer = HttpPeer::start();
    let pools = Pools::new();
    let mut cfg = config(&[
        ("url", &format!("{}/stats", peer.url())),
        ("valueLocation", "metric.test"),
        ("targetValue", "2.5"),
    ]);
    cfg.trigger_index = 1;
    let scaler = build(&cfg, &pools).await.unwrap();
    let spec = &scaler.metric_specs()[0];
    assert_eq!(
        spec.external_metric_name(),
        Some("s1-metric-api-metric-test")
    );
    assert_eq!(spec.target().quantity(), "2500m");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_values_and_http_errors() {
    let peer = HttpPeer::start();
    peer.set(
        "/v",
        "application/json",
        r#"{"count":2.43,"components":[{"str":"64","wrong":"NaN"}]}"#,
    );
    let pools = Pools::new();
    let url = format!("{}/v", peer.url());
    let at = |location: &str| {
        config(&[
            ("url", &url),
            ("valueLocation", location),
            ("targetValue", "1"),
        ])
    };
    let s = build(&at("count"), &pools).await.unwrap();
    assert_eq!(poll(s.as_ref()).await.unwrap(), (2.43, true));
    let s = build(&at("components.0.str"), &pools).await.unwrap();
    assert_eq!(poll(s.as_ref()).await.unwrap(), (64.0, true));
    let s = build(&at("components.0.wrong"), &pools).await.unwrap();
    let err = poll(s.as_ref()).await.unwrap_err();
    assert!(err.is_backend());
    assert!(
        err.to_string().contains("error requesting metrics endpoint: valueLocation \"components.0.wrong\" points to a string that is not parseable as a Quantity"),
        "{err}"
    );
    peer.set_status("/v", 500, "text/plain", "boom");
    let s = build(&at("count"), &pools).await.unwrap();
    let err = poll(s.as_ref()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("{url}: api returned 500")),
        "{err}"
    );
    // Nothing listening.
    let closed = config(&[
        ("url", "http://127.0.0.1:1/x"),
        ("valueLocation", "count"),
        ("targetValue", "1"),
        ("timeout", "500ms"),
    ]);
    let s = build(&closed, &pools).await.unwrap();
    assert!(poll(s.as_ref()).await.unwrap_err().is_backend());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_on_the_wire() {
    let peer = HttpPeer::start();
    peer.set("/m", "application/json", r#"{"v":3}"#);
    let pools = Pools::new();
    let url = format!("{}/m?x=1", peer.url());
    type Pairs = Vec<(&'static str, &'static str)>;
    let cases: Vec<(Pairs, Pairs)> = vec![
        (vec![("authMode", "apiKey")], vec![("apiKey", "k1")]),
        (
            vec![("authMode", "apiKey"), ("keyParamName", "X-Token")],
            vec![("apiKey", "k2")],
        ),
        (
            vec![("authMode", "apiKey"), ("method", "query")],
            vec![("apiKey", "k3")],
        ),
        (
            vec![
                ("authMode", "apiKey"),
                ("method", "query"),
                ("keyParamName", "key"),
            ],
            vec![("apiKey", "k 4")],
        ),
        (
            vec![("authMode", "basic")],
            vec![("username", "user"), ("password", "pw")],
        ),
        (vec![("authMode", "bearer")], vec![("token", "tok")]),
    ];
    for (metadata, auth) in &cases {
        let mut md = vec![
            ("url", url.as_str()),
            ("valueLocation", "v"),
            ("targetValue", "1"),
        ];
        md.extend(metadata.iter().copied());
        let cfg = config(&md).with_auth_params(auth.iter().copied());
        let s = build(&cfg, &pools).await.unwrap();
        assert_eq!(poll(s.as_ref()).await.unwrap(), (3.0, true));
    }
    let got = peer.received();
    assert_eq!(got.len(), cases.len());
    assert_eq!(
        got[0].headers.get("x-api-key").map(String::as_str),
        Some("k1")
    );
    assert_eq!(got[0].query, "x=1");
    assert_eq!(
        got[1].headers.get("x-token").map(String::as_str),
        Some("k2")
    );
    assert_eq!(got[2].query, "x=1&api_key=k3");
    assert_eq!(got[3].query, "x=1&key=k+4");
    // base64("user:pw")
    assert_eq!(
        got[4].headers.get("authorization").map(String::as_str),
        Some("Basic dXNlcjpwdw==")
    );
    assert_eq!(
        got[5].headers.get("authorization").map(String::as_str),
        Some("Bearer tok")
    );
    assert!(!got[0].headers.contains_key("authorization"));
    // One client for all of them: credentials are per request.
    assert!(pools.live_clients() <= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compliance() {
    let peer = HttpPeer::start();
    peer.set("/stats", "application/json", r#"{"metric":{"test":7}}"#);
    let registry = Registry::builtin();
    let case = ComplianceCase {
        config: config(&[
            ("url", &format!("{}/stats", peer.url())),
            ("valueLocation", "metric.test"),
            ("targetValue", "3"),
        ]),
        required: vec!["url", "valueLocation", "targetValue"],
        invalid: vec![
            ("targetValue", "aa"),
            ("activationTargetValue", "aa"),
            ("format", "csv"),
            ("unsafeSsl", "yes"),
            ("timeout", "a"),
            ("authMode", "kerberos"),
        ],
        activation_param: Some("activationTargetValue"),
        current_value: 7.0,
    };
    check_parsing(&registry, &case);
    let pools = Pools::new();
    check_live(&registry, &pools, &case).await;
}

/// Prometheus' query API is a JSON endpoint behind real TLS and basic auth, so it serves as a
/// metrics-api backend that enforces credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_basic_auth_enforced_by_a_real_server() {
    use test_cluster::prometheus::{BASIC_PASSWORD, BASIC_USER, PrometheusServer};
    let pki = test_cluster::redis::TestPki::generate();
    let tls = PrometheusServer::start_with_mutual_tls(&pki);
    let pools = Pools::new();
    let url = format!("{}/api/v1/query?query=vector(6)", tls.url());
    let md = [
        ("url", url.as_str()),
        ("valueLocation", "data.result.0.value.1"),
        ("targetValue", "2"),
        ("authMode", "tls"),
    ];
    let ok = config(&md).with_auth_params([
        ("cert", pki.client_cert_pem.as_str()),
        ("key", pki.client_key_pem.as_str()),
        ("ca", pki.ca_pem.as_str()),
    ]);
    let s = build(&ok, &pools).await.unwrap();
    assert_eq!(poll(s.as_ref()).await.unwrap(), (6.0, true));
    // Trusting the server but presenting no client certificate: refused.
    let no_cert = config(&[
        ("url", url.as_str()),
        ("valueLocation", "data.result.0.value.1"),
        ("targetValue", "2"),
        ("unsafeSsl", "true"),
    ]);
    let s = build(&no_cert, &pools).await.unwrap();
    let err = poll(s.as_ref()).await.unwrap_err();
    assert!(
        err.is_backend()
            && err
                .to_string()
                .starts_with("metrics-api trigger 0: error requesting metrics endpoint: "),
        "{err}"
    );

    let basic = PrometheusServer::start_with_basic_auth(&[]);
    let url = format!("{}/api/v1/query?query=vector(3)", basic.url());
    let md = [
        ("url", url.as_str()),
        ("valueLocation", "data.result.0.value.1"),
        ("targetValue", "2"),
        ("authMode", "basic"),
    ];
    let s = build(
        &config(&md).with_auth_params([("username", BASIC_USER), ("password", BASIC_PASSWORD)]),
        &pools,
    )
    .await
    .unwrap();
    assert_eq!(poll(s.as_ref()).await.unwrap(), (3.0, true));
    let s = build(
        &config(&md).with_auth_params([("username", BASIC_USER), ("password", "wrong")]),
        &pools,
    )
    .await
    .unwrap();
    let err = poll(s.as_ref()).await.unwrap_err();
    assert!(err.to_string().contains("api returned 401"), "{err}");
}
