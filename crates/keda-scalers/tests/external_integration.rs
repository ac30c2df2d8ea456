//! `external` and `external-push` against a real gRPC protocol peer (keda_scalers::external_peer):
//! specs, values, activity, errors, scalerMetadata forwarding, pooling counted at the server and the
//! push stream with its reconnects.

// Deadlines against real servers are wall-clock time.
#![allow(clippy::disallowed_types)]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use keda_scalers::external_peer::ExternalScalerPeer;
use keda_scalers::testing::{ComplianceCase, check_live, check_parsing};
use keda_scalers::{MetricTargetKind, Pools, Registry, Scaler, ScalerConfig};

fn config(trigger_type: &str, peer: &ExternalScalerPeer) -> ScalerConfig {
    let mut c = ScalerConfig::new(trigger_type, 0).with_metadata([
        ("scalerAddress", peer.address()),
        ("queue", "orders".into()),
    ]);
    c.scalable_object_name = "so".into();
    c.scalable_object_namespace = "ns".into();
    c
}

async fn build(config: &ScalerConfig, pools: &Pools) -> Arc<Scaler> {
    Registry::builtin().build(config, pools).await.unwrap()
}

async fn wait_until(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done()
}

#[tokio::test]
async fn compliance() {
    let peer = ExternalScalerPeer::start().await.unwrap();
    peer.set_value(3, 0.0);
    peer.set_active(true);
    for trigger_type in ["external", "external-push"] {
        let case = ComplianceCase {
            config: config(trigger_type, &peer),
            required: vec!["scalerAddress"],
            invalid: vec![("enableTLS", "notvalid"), ("unsafeSsl", "2")],
            // Activity is whatever the remote IsActive says; checked below.
            activation_param: None,
            current_value: 3.0,
        };
        check_parsing(&Registry::builtin(), &case);
        check_live(&Registry::builtin(), &Pools::new(), &case).await;
    }
}

#[tokio::test]
async fn specs_values_and_activity_come_from_the_remote_scaler() {
    let peer = ExternalScalerPeer::start().await.unwrap();
    peer.set_specs(&[("metric-a", 10, 0.0), ("metric-b", 10, 2.5)]);
    let pools = Pools::new();
    let mut cfg = config("external", &peer);
    cfg.metric_type = MetricTargetKind::Value;
    let scaler = build(&cfg, &pools).await;
    let specs = scaler.metric_specs();
    let names: Vec<_> = specs
        .iter()
        .filter_map(|s| s.external_metric_name())
        .collect();
    assert_eq!(names, ["s0-metric-a", "s0-metric-b"]);
    // targetSizeFloat wins when > 0, otherwise the integer targetSize.
    assert_eq!(specs[0].target().value, 10.0);
    assert_eq!(specs[1].target().value, 2.5);
    assert_eq!(specs[0].target().kind, MetricTargetKind::Value);

    // Several states: integer value, float value winning, inactive and active.
    for (int, float, active, expected) in [
        (0, 0.0, false, 0.0),
        (7, 0.0, false, 7.0),
        (7, 1.5, true, 1.5),
        (12, 0.0, true, 12.0),
    ] {
        peer.set_value(int, float);
        peer.set_active(active);
        let (values, is_active) = scaler.metrics_and_activity("s0-metric-b").await.unwrap();
        assert_eq!(values.len(), 1);
        assert_eq!(values[0].metric_name, "s0-metric-b");
        assert_eq!(values[0].value, expected);
        assert_eq!(is_active, active);
        // The prefix is stripped before asking the remote scaler.
        assert_eq!(peer.last_metric_name().as_deref(), Some("metric-b"));
    }

    let sent = peer.last_ref().unwrap();
    assert_eq!((sent.name.as_str(), sent.namespace.as_str()), ("so", "ns"));
    assert_eq!(
        sent.scaler_metadata.get("queue").map(String::as_str),
        Some("orders")
    );
    assert_eq!(
        sent.scaler_metadata
            .get("scalerAddress")
            .map(String::as_str),
        Some(peer.address().as_str())
    );
}

#[tokio::test]
async fn bad_metric_names_and_remote_errors_are_backend_errors() {
    let peer = ExternalScalerPeer::start().await.unwrap();
    let pools = Pools::new();
    let scaler = build(&config("external", &peer), &pools).await;
    let err = scaler.metrics_and_activity("metric").await.unwrap_err();
    assert!(err.is_backend());
    assert!(
        err.message().contains("metric name without index prefix"),
        "{err}"
    );
    let err = scaler.metrics_and_activity("s3-metric").await.unwrap_err();
    assert!(
        err.message()
            .contains("metric name contains incorrect index prefix"),
        "{err}"
    );

    peer.set_failing(Some(tonic::Code::Internal));
    let err = scaler.metrics_and_activity("s0-metric").await.unwrap_err();
    assert!(err.is_backend());
    assert!(err.message().contains("GetMetrics failed"), "{err}");
    // A build whose GetMetricSpec fails is a backend error, so the operator retries it.
    let err = Registry::builtin()
        .build(&config("external", &peer), &pools)
        .await
        .err()
        .unwrap();
    assert!(err.is_backend(), "{err}");
    peer.set_failing(None);
    scaler.metrics_and_activity("s0-metric").await.unwrap();
}

#[tokio::test]
async fn unreachable_scaler_is_a_backend_error() {
    let peer = ExternalScalerPeer::start().await.unwrap();
    let cfg = config("external", &peer);
    drop(peer);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let err = Registry::builtin()
        .build(&cfg, &Pools::new())
        .await
        .err()
        .unwrap();
    assert!(err.is_backend(), "{err}");
    assert!(
        err.to_string()
            .starts_with("external trigger 0: GetMetricSpec failed"),
        "{err}"
    );
}

#[tokio::test]
async fn a_hundred_scalers_share_one_connection() {
    let peer = ExternalScalerPeer::start().await.unwrap();
    peer.set_value(4, 0.0);
    let pools = Pools::new();
    let mut scalers = Vec::new();
    for i in 0..100 {
        let mut cfg = config(
            if i % 2 == 0 {
                "external"
            } else {
                "external-push"
            },
            &peer,
        );
        cfg.trigger_index = i % 3;
        cfg.scalable_object_name = format!("so-{i}");
        scalers.push(build(&cfg, &pools).await);
    }
    // All at once, so the polls really share the connection concurrently.
    let mut tasks = tokio::task::JoinSet::new();
    for (i, s) in scalers.iter().enumerate() {
        let s = Arc::clone(s);
        tasks.spawn(async move { s.metrics_and_activity(&format!("s{}-metric", i % 3)).await });
    }
    while let Some(result) = tasks.join_next().await {
        let (values, _) = result.unwrap().unwrap();
        assert_eq!(values[0].value, 4.0);
    }
    assert_eq!(
        peer.connections(),
        1,
        "100 scalers, one TCP connection at the server"
    );
    assert_eq!(pools.live_clients(), 1);
    assert_eq!(peer.calls("GetMetrics"), 100);
    // Another address is another connection.
    let other = ExternalScalerPeer::start().await.unwrap();
    let o = build(&config("external", &other), &pools).await;
    assert_eq!(pools.live_clients(), 2);
    drop(o);
    for s in &scalers {
        s.close().await;
    }
    drop(scalers);
    assert_eq!(pools.live_clients(), 0);
}

#[tokio::test]
async fn push_stream_delivers_activity_and_reopens_after_eof() {
    let peer = ExternalScalerPeer::start().await.unwrap();
    let pools = Pools::new();
    let scaler = build(&config("external-push", &peer), &pools).await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink_seen = Arc::clone(&seen);
    scaler.watch_activity(Arc::new(move |active| {
        sink_seen.lock().unwrap().push((active, Instant::now()));
    }));
    assert!(wait_until(Duration::from_secs(5), || peer.streams_opened() == 1).await);

    // A pushed true reaches the sink at once, and makes the next poll active even though the
    // remote IsActive still says false (KEDA requests the scale with isActive=true on a push).
    let pushed_at = Instant::now();
    assert_eq!(peer.push(true), 1);
    assert!(wait_until(Duration::from_secs(1), || !seen.lock().unwrap().is_empty()).await);
    let latency = seen.lock().unwrap()[0].1 - pushed_at;
    assert!(
        latency < Duration::from_millis(200),
        "push took {latency:?}"
    );
    eprintln!("push → sink latency: {latency:?}");
    assert!(scaler.metrics_and_activity("s0-metric").await.unwrap().1);
    assert!(
        !scaler.metrics_and_activity("s0-metric").await.unwrap().1,
        "a push counts once"
    );
    peer.push(false);
    assert!(wait_until(Duration::from_secs(1), || seen.lock().unwrap().len() == 2).await);
    assert!(!seen.lock().unwrap()[1].0);

    // The server ends the stream: the scaler reopens it after 2 s.
    let ended = Instant::now();
    peer.end_streams();
    assert!(wait_until(Duration::from_secs(5), || peer.streams_opened() == 2).await);
    let reopened = ended.elapsed();
    assert!(
        reopened >= Duration::from_millis(1900),
        "reopened after {reopened:?}"
    );
    peer.push(true);
    assert!(wait_until(Duration::from_secs(1), || seen.lock().unwrap().len() == 3).await);

    // Closing stops the stream task: no new streams, no more deliveries.
    scaler.close().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(peer.push(true), 0, "the closed scaler's stream is gone");
}

#[tokio::test]
async fn plain_external_ignores_watch_activity() {
    let peer = ExternalScalerPeer::start().await.unwrap();
    let scaler = build(&config("external", &peer), &Pools::new()).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    scaler.watch_activity(Arc::new(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
    }));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(peer.streams_opened(), 0);
    assert_eq!(peer.push(true), 0);
}

mod tls {
    use super::*;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use test_cluster::redis::TestPki;

    fn server_config(pki: &TestPki, require_client_cert: bool) -> rustls::ServerConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(pki.server_cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
        let key = PrivateKeyDer::from_pem_slice(pki.server_key_pem.as_bytes()).unwrap();
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(pki.ca_pem.as_bytes()) {
                roots.add(c.unwrap()).unwrap();
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        builder.with_single_cert(certs, key).unwrap()
    }

    fn tls_config(
        peer: &ExternalScalerPeer,
        metadata: &[(&str, &str)],
        auth: &[(&str, &str)],
    ) -> ScalerConfig {
        let mut c = config("external", peer);
        for (k, v) in metadata {
            c.metadata.insert((*k).into(), (*v).into());
        }
        c.auth_params = auth
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        c
    }

    #[tokio::test]
    async fn ca_cert_unsafe_ssl_and_client_certificates() {
        let pki = TestPki::generate();
        let peer = ExternalScalerPeer::start_tls(server_config(&pki, false))
            .await
            .unwrap();
        peer.set_value(9, 0.0);
        let pools = Pools::new();

        // caCert alone switches TLS on and trusts the test CA.
        let with_ca = build(&tls_config(&peer, &[], &[("caCert", &pki.ca_pem)]), &pools).await;
        assert_eq!(
            with_ca.metrics_and_activity("s0-metric").await.unwrap().0[0].value,
            9.0
        );

        // enableTLS without the CA: the server certificate is not trusted.
        let err = Registry::builtin()
            .build(&tls_config(&peer, &[("enableTLS", "true")], &[]), &pools)
            .await
            .err()
            .unwrap();
        assert!(err.is_backend(), "{err}");

        // unsafeSsl skips verification.
        let unsafe_ssl = build(
            &tls_config(&peer, &[("enableTLS", "true"), ("unsafeSsl", "true")], &[]),
            &pools,
        )
        .await;
        assert_eq!(
            unsafe_ssl
                .metrics_and_activity("s0-metric")
                .await
                .unwrap()
                .0[0]
                .value,
            9.0
        );

        // A server that requires a client certificate accepts ours.
        let mtls = ExternalScalerPeer::start_tls(server_config(&pki, true))
            .await
            .unwrap();
        let auth = [
            ("caCert", pki.ca_pem.as_str()),
            ("tlsClientCert", pki.client_cert_pem.as_str()),
            ("tlsClientKey", pki.client_key_pem.as_str()),
        ];
        let with_cert = build(&tls_config(&mtls, &[], &auth), &pools).await;
        with_cert.metrics_and_activity("s0-metric").await.unwrap();
        let err = Registry::builtin()
            .build(&tls_config(&mtls, &[], &[("caCert", &pki.ca_pem)]), &pools)
            .await
            .err()
            .unwrap();
        assert!(err.is_backend(), "no client certificate: {err}");
    }
}
