//! The prometheus scaler against a real `prometheus` (Debian package) scraping a target the test
//! serves: values in several states through the real query engine, null/NaN/multi-element rules,
//! strict activation, basic auth through Prometheus' web config, query coalescing counted by
//! Prometheus itself, the request's wire shape, and the shared compliance check.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use keda_scalers::testing::{ComplianceCase, check_live, check_parsing};
use keda_scalers::{Pools, Registry, Scaler, ScalerConfig, ScalerError};
use test_cluster::http_peer::HttpPeer;
use test_cluster::prometheus::{BASIC_PASSWORD, BASIC_USER, PrometheusServer};

/// Waits until `query` answers with `needle`, then a little longer: the scaler evaluates at `time=`
/// now truncated to the second (as KEDA does), which can be just before the newest sample.
fn settle(prom: &PrometheusServer, query: &str, needle: &str, within: Duration) {
    prom.wait_for(query, needle, within);
    std::thread::sleep(Duration::from_millis(1500));
}

const TEXT: &str = "text/plain; version=0.0.4";

fn config(index: usize, metadata: &[(&str, &str)]) -> ScalerConfig {
    ScalerConfig::new("prometheus", index).with_metadata(metadata.iter().copied())
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

/// A target with two series and a prometheus scraping it, once both are visible.
fn setup(body: &str) -> (HttpPeer, PrometheusServer) {
    let target = HttpPeer::start();
    target.set("/metrics", TEXT, body);
    let prom = PrometheusServer::start(&[format!("127.0.0.1:{}", target.port)]);
    settle(
        &prom,
        "count(queue_depth)",
        "\"2\"",
        Duration::from_secs(30),
    );
    (target, prom)
}

const TWO_QUEUES: &str =
    "# TYPE queue_depth gauge\nqueue_depth{queue=\"a\"} 7\nqueue_depth{queue=\"b\"} 3\n";

fn set_queues(target: &HttpPeer, a: u32, b: u32) {
    target.set(
        "/metrics",
        TEXT,
        &format!("# TYPE queue_depth gauge\nqueue_depth{{queue=\"a\"}} {a}\nqueue_depth{{queue=\"b\"}} {b}\n"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_follow_the_backend_with_strict_activation() {
    let (target, prom) = setup(TWO_QUEUES);
    settle(&prom, "sum(queue_depth)", "\"10\"", Duration::from_secs(30));
    let cfg = |activation: &str| {
        config(
            2,
            &[
                ("serverAddress", &prom.url()),
                ("query", "sum(queue_depth)"),
                ("threshold", "4.5"),
                ("activationThreshold", activation),
            ],
        )
    };
    // Each phase uses fresh pools, so no coalesced answer from an earlier phase is reused.
    let pools = Pools::new();
    let s = build(&cfg("0"), &pools).await.unwrap();
    assert_eq!(
        s.metric_specs()[0].external_metric_name(),
        Some("s2-prometheus")
    );
    assert_eq!(s.metric_specs()[0].target().quantity(), "4500m");
    assert_eq!(poll(s.as_ref()).await.unwrap(), (10.0, true));
    let at = build(&cfg("10"), &pools).await.unwrap();
    assert_eq!(poll(at.as_ref()).await.unwrap(), (10.0, false));
    let below = build(&cfg("9.5"), &pools).await.unwrap();
    assert_eq!(poll(below.as_ref()).await.unwrap(), (10.0, true));

    set_queues(&target, 1, 1);
    settle(&prom, "sum(queue_depth)", "\"2\"", Duration::from_secs(30));
    let pools = Pools::new();
    let s = build(&cfg("1.5"), &pools).await.unwrap();
    assert_eq!(poll(s.as_ref()).await.unwrap(), (2.0, true));

    set_queues(&target, 0, 0);
    settle(&prom, "sum(queue_depth)", "\"0\"", Duration::from_secs(30));
    let pools = Pools::new();
    let s = build(&cfg("0"), &pools).await.unwrap();
    assert_eq!(poll(s.as_ref()).await.unwrap(), (0.0, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_nan_and_multiple_results() {
    let (_target, prom) = setup(TWO_QUEUES);
    let pools = Pools::new();
    let cfg = |query: &str, ignore: &str| {
        config(
            0,
            &[
                ("serverAddress", &prom.url()),
                ("query", query),
                ("threshold", "1"),
                ("ignoreNullValues", ignore),
            ],
        )
    };
    // Empty result: 0 and inactive by default, an error when nulls are not ignored.
    let s = build(&cfg("no_such_metric", "true"), &pools).await.unwrap();
    assert_eq!(poll(s.as_ref()).await.unwrap(), (0.0, false));
    let s = build(&cfg("no_such_metric", "false"), &pools)
        .await
        .unwrap();
    let err = poll(s.as_ref()).await.unwrap_err();
    assert!(
        err.is_backend() && err.to_string().contains("the result is empty"),
        "{err}"
    );
    // NaN from the query engine.
    let s = build(&cfg("vector(0) / 0", "true"), &pools).await.unwrap();
    assert_eq!(poll(s.as_ref()).await.unwrap(), (0.0, false));
    let s = build(&cfg("vector(0) / 0", "false"), &pools).await.unwrap();
    let err = poll(s.as_ref()).await.unwrap_err();
    assert!(
        err.to_string().contains("prometheus query returns NaN"),
        "{err}"
    );
    // Two series.
    let s = build(&cfg("queue_depth", "true"), &pools).await.unwrap();
    let err = poll(s.as_ref()).await.unwrap_err();
    assert!(
        err.to_string().contains("returned multiple elements"),
        "{err}"
    );
    // A bad query: Prometheus answers 400.
    let s = build(&cfg("sum(", "true"), &pools).await.unwrap();
    let err = poll(s.as_ref()).await.unwrap_err();
    assert!(err.to_string().contains("status: 400"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_queries_are_coalesced() {
    let (_target, prom) = setup(TWO_QUEUES);
    settle(&prom, "sum(queue_depth)", "\"10\"", Duration::from_secs(30));
    let pools = Pools::new();
    let mut scalers = Vec::new();
    for i in 0..200 {
        let cfg = config(
            0,
            &[
                ("serverAddress", &prom.url()),
                ("query", "sum(queue_depth)"),
                // Different activation thresholds: same request, different objects.
                ("threshold", "5"),
                ("activationThreshold", &(i % 20).to_string()),
            ],
        );
        scalers.push(build(&cfg, &pools).await.unwrap());
    }
    assert_eq!(pools.live_clients(), 1, "one HTTP client for every scaler");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = prom.query_requests();
    // All at once (one in-flight request shared), then again right after (recent answer reused).
    let polls = scalers.iter().map(|s| {
        let s = Arc::clone(s);
        tokio::spawn(async move { poll(s.as_ref()).await.unwrap() })
    });
    for (i, p) in polls.enumerate() {
        let (value, active) = p.await.unwrap();
        assert_eq!(value, 10.0);
        assert_eq!(active, 10.0 > (i % 20) as f64);
    }
    for s in &scalers {
        assert_eq!(poll(s.as_ref()).await.unwrap().0, 10.0);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = prom.query_requests();
    assert_eq!(
        after - before,
        1.0,
        "400 polls of one query must cost one request"
    );

    // A different query is a different request.
    let other = config(
        0,
        &[
            ("serverAddress", &prom.url()),
            ("query", "max(queue_depth)"),
            ("threshold", "5"),
        ],
    );
    let s = build(&other, &pools).await.unwrap();
    assert_eq!(poll(s.as_ref()).await.unwrap(), (7.0, true));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(prom.query_requests() - after, 1.0);

    // Past the reuse window the query is asked again.
    tokio::time::sleep(keda_scalers::prometheus::QUERY_REUSE).await;
    let before = prom.query_requests();
    assert_eq!(poll(scalers[0].as_ref()).await.unwrap().0, 10.0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(prom.query_requests() - before, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_through_prometheus_web_config() {
    let target = HttpPeer::start();
    target.set("/metrics", TEXT, TWO_QUEUES);
    let prom = PrometheusServer::start_with_basic_auth(&[format!("127.0.0.1:{}", target.port)]);
    settle(&prom, "sum(queue_depth)", "\"10\"", Duration::from_secs(30));
    let pools = Pools::new();
    let md = [
        ("serverAddress", prom.url()),
        ("query", "sum(queue_depth)".to_owned()),
        ("threshold", "5".to_owned()),
        ("authModes", "basic".to_owned()),
    ];
    let ok = ScalerConfig::new("prometheus", 0)
        .with_metadata(md.clone())
        .with_auth_params([("username", BASIC_USER), ("password", BASIC_PASSWORD)]);
    let s = build(&ok, &pools).await.unwrap();
    assert_eq!(poll(s.as_ref()).await.unwrap(), (10.0, true));
    let wrong = ScalerConfig::new("prometheus", 0)
        .with_metadata(md)
        .with_auth_params([("username", BASIC_USER), ("password", "nope")]);
    let s = build(&wrong, &pools).await.unwrap();
    let err = poll(s.as_ref()).await.unwrap_err();
    assert!(
        err.is_backend() && err.to_string().contains("status: 401"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_wire_shape() {
    // The scaler's side of the contract, seen by a peer speaking Prometheus' query API.
    let peer = HttpPeer::start();
    peer.set(
        "/prom/api/v1/query",
        "application/json",
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"3"]}]}}"#,
    );
    let pools = Pools::new();
    let cfg = ScalerConfig::new("prometheus", 0)
        .with_metadata([
            ("serverAddress", format!("{}/prom/", peer.url())),
            ("query", "sum(x{a=\"b\"})".to_owned()),
            ("threshold", "1".to_owned()),
            ("namespace", "team-a".to_owned()),
            ("queryParameters", "dedup=true".to_owned()),
            ("customHeaders", "X-Scope-OrgID=tenant-1".to_owned()),
            ("authModes", "bearer".to_owned()),
        ])
        .with_auth_params([("bearerToken", "tok-123")]);
    let s = build(&cfg, &pools).await.unwrap();
    assert_eq!(poll(s.as_ref()).await.unwrap(), (3.0, true));
    let got = peer.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert!(
        r.query
            .starts_with("query=sum%28x%7Ba%3D%22b%22%7D%29&time=20"),
        "{}",
        r.query
    );
    assert!(
        r.query.ends_with("&namespace=team-a&dedup=true"),
        "{}",
        r.query
    );
    assert_eq!(
        r.headers.get("authorization").map(String::as_str),
        Some("Bearer tok-123")
    );
    assert_eq!(
        r.headers.get("x-scope-orgid").map(String::as_str),
        Some("tenant-1")
    );

    peer.set_status("/prom/api/v1/query", 503, "text/plain", "down");
    let pools = Pools::new();
    let s = build(&cfg, &pools).await.unwrap();
    let err = poll(s.as_ref()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("prometheus query api returned error. status: 503"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compliance() {
    let (_target, prom) = setup(TWO_QUEUES);
    settle(&prom, "max(queue_depth)", "\"7\"", Duration::from_secs(30));
    let registry = Registry::builtin();
    let case = ComplianceCase {
        config: config(
            0,
            &[
                ("serverAddress", &prom.url()),
                ("query", "max(queue_depth)"),
                ("threshold", "3"),
            ],
        ),
        required: vec!["serverAddress", "query", "threshold"],
        invalid: vec![
            ("threshold", "one"),
            ("activationThreshold", "one"),
            ("ignoreNullValues", "xxxx"),
            ("unsafeSsl", "maybe"),
            ("timeout", "-1"),
            ("customHeaders", "key1=value1,key2"),
            ("queryParameters", "key1=value1,key2"),
            ("authModes", "kerberos"),
        ],
        activation_param: Some("activationThreshold"),
        current_value: 7.0,
    };
    check_parsing(&registry, &case);
    let pools = Pools::new();
    check_live(&registry, &pools, &case).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_with_client_certificate_and_ca() {
    let pki = test_cluster::redis::TestPki::generate();
    let prom = PrometheusServer::start_with_mutual_tls(&pki);
    let md = |extra: &[(&str, &str)]| {
        let mut m = vec![
            ("serverAddress", prom.url()),
            ("query", "vector(5)".to_owned()),
            ("threshold", "2".to_owned()),
        ];
        m.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        ScalerConfig::new("prometheus", 0).with_metadata(m)
    };
    let pools = Pools::new();
    let with_cert = [
        ("cert", pki.client_cert_pem.as_str()),
        ("key", pki.client_key_pem.as_str()),
    ];
    // Client certificate and the CA that signed the server's certificate.
    let mut full = with_cert.to_vec();
    full.push(("ca", pki.ca_pem.as_str()));
    let s = build(
        &md(&[("authModes", "tls")]).with_auth_params(full.clone()),
        &pools,
    )
    .await
    .unwrap();
    assert_eq!(poll(s.as_ref()).await.unwrap(), (5.0, true));

    // Client certificate, no CA: the server's certificate is not trusted...
    let s = build(
        &md(&[("authModes", "tls")]).with_auth_params(with_cert),
        &pools,
    )
    .await
    .unwrap();
    let err = poll(s.as_ref()).await.unwrap_err();
    assert!(err.is_backend(), "{err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    // ...unless verification is off.
    let s = build(
        &md(&[("authModes", "tls"), ("unsafeSsl", "true")]).with_auth_params(with_cert),
        &pools,
    )
    .await
    .unwrap();
    assert_eq!(poll(s.as_ref()).await.unwrap(), (5.0, true));

    // No client certificate: the server refuses the handshake. The material is ignored when the
    // tls mode is off.
    let s = build(&md(&[]).with_auth_params(full), &pools)
        .await
        .unwrap();
    assert!(poll(s.as_ref()).await.unwrap_err().is_backend());
}
