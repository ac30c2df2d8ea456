//! The `kafka` scaler against a real single-node KRaft broker (test_cluster::kafka::KafkaBroker):
//! the lag it reports in each offset state KEDA distinguishes, activation, SASL and TLS, and that
//! a hundred scalers on one cluster share one client and a handful of broker connections, counted
//! by the broker itself.

#![allow(clippy::unwrap_used)]

use std::sync::LazyLock;

use keda_scalers::kafka::KafkaClient;
use keda_scalers::kafka_test_admin::{commit, connect, create_topic, produce};
use keda_scalers::testing::{ComplianceCase, check_live, check_parsing};
use keda_scalers::{BackendKind, Pools, Registry, Scaler, ScalerConfig};
use test_cluster::kafka::KafkaBroker;

/// One broker for the whole file; its watchdog stops it when the test process exits.
static BROKER: LazyLock<KafkaBroker> = LazyLock::new(KafkaBroker::start);

fn trigger(metadata: &[(&str, &str)]) -> ScalerConfig {
    let mut all = vec![("bootstrapServers", BROKER.address())];
    all.extend(metadata.iter().map(|(k, v)| (*k, (*v).to_owned())));
    ScalerConfig::new("kafka", 0).with_metadata(all)
}

async fn build(config: &ScalerConfig, pools: &Pools) -> std::sync::Arc<Scaler> {
    Registry::builtin()
        .build(config, pools)
        .await
        .unwrap_or_else(|e| panic!("build failed: {e}"))
}

/// (value, active) of one poll.
async fn poll(scaler: &Scaler) -> (f64, bool) {
    let name = scaler.metric_specs()[0]
        .external_metric_name()
        .unwrap()
        .to_owned();
    let (values, active) = scaler.metrics_and_activity(&name).await.unwrap();
    (values[0].value, active)
}

async fn value_of(metadata: &[(&str, &str)]) -> (f64, bool) {
    let pools = Pools::new();
    let scaler = build(&trigger(metadata), &pools).await;
    poll(scaler.as_ref()).await
}

#[tokio::test]
async fn compliance_with_committed_offsets() {
    let admin = connect(&BROKER.address()).await;
    create_topic(&admin, "compliance", 3).await;
    produce(&admin, "compliance", 0, 10).await;
    produce(&admin, "compliance", 1, 5).await;
    commit(&admin, "compliance-group", "compliance", 0, 4).await;
    commit(&admin, "compliance-group", "compliance", 1, 5).await;
    commit(&admin, "compliance-group", "compliance", 2, 0).await;
    let case = ComplianceCase {
        config: trigger(&[
            ("consumerGroup", "compliance-group"),
            ("topic", "compliance"),
        ]),
        required: vec!["bootstrapServers", "consumerGroup"],
        invalid: vec![
            ("lagThreshold", "0"),
            ("lagThreshold", "-1"),
            ("activationLagThreshold", "AA"),
            ("offsetResetPolicy", "foo"),
            ("allowIdleConsumers", "notvalid"),
            ("partitionLimitation", "a,b,c,d"),
            ("partitionLimitation", "1-2-3"),
            ("version", "1.2.3.4"),
            ("tls", "yes"),
        ],
        activation_param: Some("activationLagThreshold"),
        // Partition 0: 10 - 4; partition 1: 5 - 5; partition 2: 0 - 0.
        current_value: 6.0,
    };
    check_parsing(&Registry::builtin(), &case);
    check_live(&Registry::builtin(), &Pools::new(), &case).await;
}

#[tokio::test]
async fn no_committed_offset_follows_offset_reset_policy() {
    let admin = connect(&BROKER.address()).await;
    create_topic(&admin, "uncommitted", 2).await;
    produce(&admin, "uncommitted", 0, 7).await;
    produce(&admin, "uncommitted", 1, 3).await;
    let base = [("consumerGroup", "nobody"), ("topic", "uncommitted")];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut m = base.to_vec();
        m.extend_from_slice(extra);
        m
    };
    // latest: each partition without an offset counts as lag 1.
    assert_eq!(value_of(&with(&[])).await, (2.0, true));
    assert_eq!(
        value_of(&with(&[("scaleToZeroOnInvalidOffset", "true")])).await,
        (0.0, false)
    );
    // earliest: the whole partition is lag.
    assert_eq!(
        value_of(&with(&[("offsetResetPolicy", "earliest")])).await,
        (10.0, true)
    );
    assert_eq!(
        value_of(&with(&[
            ("offsetResetPolicy", "earliest"),
            ("scaleToZeroOnInvalidOffset", "true")
        ]))
        .await,
        (0.0, false)
    );
}

#[tokio::test]
async fn idle_consumers_cap_and_limit_to_partitions_with_lag() {
    let admin = connect(&BROKER.address()).await;
    create_topic(&admin, "skewed", 3).await;
    produce(&admin, "skewed", 0, 100).await;
    for p in 0..3 {
        commit(&admin, "skewed-group", "skewed", p, 0).await;
    }
    let base = [("consumerGroup", "skewed-group"), ("topic", "skewed")];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut m = base.to_vec();
        m.extend_from_slice(extra);
        m
    };
    // 100 / 10 = 10 consumers wanted, but only 3 partitions: capped at 3 × 10.
    assert_eq!(value_of(&with(&[])).await, (30.0, true));
    assert_eq!(
        value_of(&with(&[("allowIdleConsumers", "true")])).await,
        (100.0, true)
    );
    // Only one partition has lag: capped at 1 × 10.
    assert_eq!(
        value_of(&with(&[("limitToPartitionsWithLag", "true")])).await,
        (10.0, true)
    );
    // 3 partitions: factors 1, 3; 100 > 3 × 10 → falls back to 3 → 30.
    assert_eq!(
        value_of(&with(&[("ensureEvenDistributionOfPartitions", "true")])).await,
        (30.0, true)
    );
}

#[tokio::test]
async fn partition_limitation_counts_only_listed_partitions() {
    let admin = connect(&BROKER.address()).await;
    create_topic(&admin, "limited", 3).await;
    for (p, n) in [(0, 5), (1, 7), (2, 11)] {
        produce(&admin, "limited", p, n).await;
        commit(&admin, "limited-group", "limited", p, 0).await;
    }
    let base = [
        ("consumerGroup", "limited-group"),
        ("topic", "limited"),
        ("lagThreshold", "100"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut m = base.to_vec();
        m.extend_from_slice(extra);
        m
    };
    assert_eq!(value_of(&with(&[])).await, (23.0, true));
    assert_eq!(
        value_of(&with(&[("partitionLimitation", " 1 - 2 ")])).await,
        (18.0, true)
    );
    assert_eq!(
        value_of(&with(&[("partitionLimitation", "0")])).await,
        (5.0, true)
    );
    // No listed partition exists.
    let pools = Pools::new();
    let scaler = build(&trigger(&with(&[("partitionLimitation", "7")])), &pools).await;
    let name = scaler.metric_specs()[0]
        .external_metric_name()
        .unwrap()
        .to_owned();
    let err = scaler.metrics_and_activity(&name).await.unwrap_err();
    assert!(err.is_backend());
    assert!(
        err.to_string()
            .contains("expected at least one active partition within the topic 'limited'"),
        "{err}"
    );
}

#[tokio::test]
async fn exclude_persistent_lag_ignores_a_stuck_offset_but_stays_active() {
    let admin = connect(&BROKER.address()).await;
    create_topic(&admin, "stuck", 1).await;
    produce(&admin, "stuck", 0, 5).await;
    commit(&admin, "stuck-group", "stuck", 0, 2).await;
    let pools = Pools::new();
    let scaler = build(
        &trigger(&[
            ("consumerGroup", "stuck-group"),
            ("topic", "stuck"),
            ("excludePersistentLag", "true"),
        ]),
        &pools,
    )
    .await;
    assert_eq!(
        poll(scaler.as_ref()).await,
        (3.0, true),
        "first sighting counts"
    );
    assert_eq!(
        poll(scaler.as_ref()).await,
        (0.0, true),
        "unchanged offset: no metric lag, still active"
    );
    commit(&admin, "stuck-group", "stuck", 0, 4).await;
    assert_eq!(
        poll(scaler.as_ref()).await,
        (1.0, true),
        "progress counts again"
    );
    // Without the option the same state is plain lag.
    assert_eq!(
        value_of(&[("consumerGroup", "stuck-group"), ("topic", "stuck")]).await,
        (1.0, true)
    );
}

#[tokio::test]
async fn without_topic_every_committed_topic_counts() {
    let admin = connect(&BROKER.address()).await;
    create_topic(&admin, "multi-a", 1).await;
    create_topic(&admin, "multi-b", 2).await;
    create_topic(&admin, "multi-ignored", 1).await;
    produce(&admin, "multi-a", 0, 4).await;
    produce(&admin, "multi-b", 1, 9).await;
    produce(&admin, "multi-ignored", 0, 50).await;
    commit(&admin, "multi-group", "multi-a", 0, 1).await;
    commit(&admin, "multi-group", "multi-b", 0, 0).await;
    commit(&admin, "multi-group", "multi-b", 1, 2).await;
    let pools = Pools::new();
    let scaler = build(&trigger(&[("consumerGroup", "multi-group")]), &pools).await;
    assert_eq!(
        scaler.metric_specs()[0].external_metric_name(),
        Some("s0-kafka-multi-group-topics")
    );
    assert_eq!(poll(scaler.as_ref()).await, (10.0, true), "3 + 0 + 7");
    // A group that committed nothing anywhere has no lag.
    assert_eq!(
        value_of(&[("consumerGroup", "fresh-group")]).await,
        (0.0, false)
    );
}

#[tokio::test]
async fn metric_name_and_missing_topic_error() {
    let pools = Pools::new();
    let mut config = trigger(&[("consumerGroup", "g"), ("topic", "my.topic")]);
    config.trigger_index = 3;
    let scaler = build(&config, &pools).await;
    assert_eq!(
        scaler.metric_specs()[0].external_metric_name(),
        Some("s3-kafka-my-topic")
    );
    let err = scaler
        .metrics_and_activity("s3-kafka-my-topic")
        .await
        .unwrap_err();
    assert!(err.is_backend(), "{err}");
    assert!(err.to_string().contains("UnknownTopicOrPartition"), "{err}");
    assert_eq!(err.backend_kind(), Some(BackendKind::NotFound), "{err}");
}

#[tokio::test]
async fn unreachable_cluster_is_a_backend_error() {
    let port = test_cluster::redis::free_port();
    let config = ScalerConfig::new("kafka", 0).with_metadata([
        ("bootstrapServers", format!("127.0.0.1:{port}")),
        ("consumerGroup", "g".to_owned()),
    ]);
    let err = Registry::builtin()
        .build(&config, &Pools::new())
        .await
        .err()
        .unwrap();
    assert!(err.is_backend(), "{err}");
    assert!(
        err.to_string().contains("error creating kafka client"),
        "{err}"
    );
}

#[tokio::test]
async fn hundred_scalers_share_one_client_and_few_connections() {
    // A broker of its own, so the connection count is not disturbed by the other tests.
    let broker = tokio::task::spawn_blocking(KafkaBroker::start)
        .await
        .unwrap();
    let admin = connect(&broker.address()).await;
    create_topic(&admin, "shared", 4).await;
    produce(&admin, "shared", 0, 3).await;
    commit(&admin, "shared-group", "shared", 0, 1).await;
    drop(admin);
    let before = broker.connection_count("PLAINTEXT");
    let pools = Pools::new();
    let mut scalers = Vec::new();
    for i in 0..100 {
        let mut config = ScalerConfig::new("kafka", i % 5).with_metadata([
            ("bootstrapServers", broker.address()),
            ("consumerGroup", "shared-group".to_owned()),
            ("topic", "shared".to_owned()),
            ("allowIdleConsumers", "true".to_owned()),
        ]);
        config.scalable_object_name = format!("so-{i}");
        scalers.push(build(&config, &pools).await);
    }
    for _round in 0..3 {
        let polls = scalers.iter().map(|s| poll(s.as_ref()));
        for (value, active) in futures::future::join_all(polls).await {
            // Partition 0: 3 - 1; partitions 1-3 have no committed offset: 1 each (policy latest).
            assert_eq!((value, active), (5.0, true));
        }
    }
    assert_eq!(pools.live_clients_of::<KafkaClient>(), 1);
    let during = broker.connection_count("PLAINTEXT");
    println!(
        "broker PLAINTEXT connections: before {before}, with 100 scalers after 300 polls {during}"
    );
    assert!(
        during <= before + 2,
        "100 scalers opened {} broker connections",
        during.saturating_sub(before)
    );
    drop(scalers);
    assert_eq!(pools.live_clients_of::<KafkaClient>(), 0);
}

fn sasl_trigger(sasl: &str, password: &str) -> ScalerConfig {
    ScalerConfig::new("kafka", 0)
        .with_metadata([
            ("bootstrapServers", BROKER.sasl_address()),
            ("consumerGroup", "sasl-group".to_owned()),
            ("topic", "sasl-topic".to_owned()),
        ])
        .with_auth_params([
            ("sasl", sasl),
            ("username", KafkaBroker::SASL_USER),
            ("password", password),
        ])
}

#[tokio::test]
async fn sasl_plain_and_scram_against_the_broker() {
    let admin = connect(&BROKER.address()).await;
    create_topic(&admin, "sasl-topic", 1).await;
    produce(&admin, "sasl-topic", 0, 4).await;
    commit(&admin, "sasl-group", "sasl-topic", 0, 1).await;
    for sasl in ["plaintext", "scram_sha256", "scram_sha512 "] {
        let pools = Pools::new();
        let scaler = build(&sasl_trigger(sasl, KafkaBroker::SASL_PASSWORD), &pools).await;
        assert_eq!(poll(scaler.as_ref()).await, (3.0, true), "sasl={sasl}");
        let err = Registry::builtin()
            .build(&sasl_trigger(sasl, "wrong"), &Pools::new())
            .await
            .err()
            .unwrap_or_else(|| panic!("sasl={sasl} with a wrong password was accepted"));
        assert!(err.is_backend(), "{err}");
        assert!(err.to_string().contains("uthentication failed"), "{err}");
    }
}

#[tokio::test]
async fn tls_with_ca_and_with_unsafe_ssl() {
    let admin = connect(&BROKER.address()).await;
    create_topic(&admin, "tls-topic", 1).await;
    produce(&admin, "tls-topic", 0, 6).await;
    commit(&admin, "tls-group", "tls-topic", 0, 1).await;
    let metadata = [
        ("bootstrapServers", BROKER.tls_address()),
        ("consumerGroup", "tls-group".to_owned()),
        ("topic", "tls-topic".to_owned()),
    ];
    let with_ca = ScalerConfig::new("kafka", 0)
        .with_metadata(metadata.clone())
        .with_auth_params([("tls", "enable"), ("ca", BROKER.pki.ca_pem.as_str())]);
    let pools = Pools::new();
    assert_eq!(
        poll(build(&with_ca, &pools).await.as_ref()).await,
        (5.0, true)
    );

    let mut unsafe_ssl = metadata.to_vec();
    unsafe_ssl.push(("unsafeSsl", "true".to_owned()));
    unsafe_ssl.push(("tls", "enable".to_owned()));
    let config = ScalerConfig::new("kafka", 0).with_metadata(unsafe_ssl);
    assert_eq!(
        poll(build(&config, &pools).await.as_ref()).await,
        (5.0, true)
    );

    // Without the CA the broker's certificate is not trusted.
    let untrusted = ScalerConfig::new("kafka", 0)
        .with_metadata(metadata)
        .with_auth_params([("tls", "enable")]);
    let err = Registry::builtin()
        .build(&untrusted, &Pools::new())
        .await
        .err()
        .unwrap();
    assert!(err.is_backend(), "{err}");
    assert!(err.to_string().contains("TLS handshake failed"), "{err}");
}

#[tokio::test]
async fn mutual_tls_with_client_certificate() {
    let admin = connect(&BROKER.address()).await;
    create_topic(&admin, "mtls-topic", 1).await;
    produce(&admin, "mtls-topic", 0, 3).await;
    let metadata = [
        ("bootstrapServers", BROKER.mtls_address()),
        ("consumerGroup", "mtls-group".to_owned()),
        ("topic", "mtls-topic".to_owned()),
    ];
    let pki = &BROKER.pki;
    let with_cert = ScalerConfig::new("kafka", 0)
        .with_metadata(metadata.clone())
        .with_auth_params([
            ("tls", "enable"),
            ("ca", pki.ca_pem.as_str()),
            ("cert", pki.client_cert_pem.as_str()),
            ("key", pki.client_key_pem.as_str()),
        ]);
    // No committed offset, policy latest: lag 1.
    assert_eq!(
        poll(build(&with_cert, &Pools::new()).await.as_ref()).await,
        (1.0, true)
    );
    let without_cert = ScalerConfig::new("kafka", 0)
        .with_metadata(metadata)
        .with_auth_params([("tls", "enable"), ("ca", pki.ca_pem.as_str())]);
    let err = Registry::builtin()
        .build(&without_cert, &Pools::new())
        .await
        .err()
        .unwrap();
    assert!(err.is_backend(), "{err}");
}
