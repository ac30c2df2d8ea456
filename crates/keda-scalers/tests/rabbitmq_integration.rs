//! The rabbitmq scaler against a real RabbitMQ node (Debian package `rabbitmq-server`, management
//! plugin). A node takes seconds to boot, so one node serves every scenario of this file, each on
//! its own queues.

// Deadlines against real servers are wall-clock time.
#![allow(clippy::disallowed_types)]
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keda_scalers::testing::{ComplianceCase, check_live, check_parsing};
use keda_scalers::{Pools, Registry, Scaler, ScalerConfig, ScalerError};
use lapin::options::BasicGetOptions;
use lapin::{Connection, ConnectionProperties};
use test_cluster::rabbitmq::RabbitMqServer;
use test_cluster::redis::TestPki;

fn config(metadata: &[(&str, &str)]) -> ScalerConfig {
    ScalerConfig::new("rabbitmq", 0).with_metadata(metadata.iter().copied())
}

async fn build(config: &ScalerConfig, pools: &Pools) -> Arc<Scaler> {
    Registry::builtin().build(config, pools).await.unwrap()
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

/// Polls until `want` holds; the management API's counters trail the broker by a statistics
/// interval. Returns the last answer.
async fn poll_until<F>(scaler: &Scaler, what: &str, want: F) -> (f64, bool)
where
    F: Fn(f64, bool) -> bool,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (value, active) = poll(scaler).await.unwrap();
        if want(value, active) {
            return (value, active);
        }
        assert!(
            Instant::now() < deadline,
            "{what}: last poll gave value={value} active={active}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_scaler_against_a_real_broker() {
    let started = Instant::now();
    let server = tokio::task::spawn_blocking(RabbitMqServer::start)
        .await
        .unwrap();
    eprintln!("rabbitmq node up in {:?}", started.elapsed());
    let server = Arc::new(server);
    let pools = Pools::new();

    let mut t = Instant::now();
    let mut lap = |name: &str| {
        eprintln!("{name}: {:?}", t.elapsed());
        t = Instant::now();
    };
    compliance(&server, &pools).await;
    lap("compliance");
    both_protocols_ready_and_unacked(&server, &pools).await;
    lap("ready and unacked");
    vhosts(&server, &pools).await;
    lap("vhosts");
    regex_aggregation(&server, &pools).await;
    lap("regex");
    message_rate(&server, &pools).await;
    lap("message rate");
    missing_queue_and_bad_credentials(&server, &pools).await;
    lap("errors");
    reconnects_after_the_broker_closed_the_connection(&server, &pools).await;
    lap("reconnect");
    pool_reuse(&server, &pools).await;
    lap("pool reuse");
}

/// The shared compliance check: names, strict activation, pooled client, close → backend error.
async fn compliance(server: &RabbitMqServer, pools: &Pools) {
    server.declare_queue("/", "compliance");
    server.publish("/", "compliance", 3);
    for host in [server.amqp_url(""), server.management_url("")] {
        let case = ComplianceCase {
            config: config(&[
                ("queueName", "compliance"),
                ("host", &host),
                ("mode", "QueueLength"),
                ("value", "5"),
            ]),
            required: vec!["queueName", "host"],
            invalid: vec![
                ("mode", "Feelings"),
                ("value", "lots"),
                ("activationValue", "x"),
                ("protocol", "smoke-signals"),
                ("pageSize", "0"),
            ],
            activation_param: Some("activationValue"),
            current_value: 3.0,
        };
        let registry = Registry::builtin();
        check_parsing(&registry, &case);
        server.wait_for_counts("/", "compliance", 3, 3);
        check_live(&registry, pools, &case).await;
    }
}

/// Ready vs unacknowledged messages over AMQP (ready only) and HTTP (total, or ready with
/// `excludeUnacknowledged`).
async fn both_protocols_ready_and_unacked(server: &RabbitMqServer, pools: &Pools) {
    server.declare_queue("/", "orders");
    server.publish("/", "orders", 7);
    server.wait_for_counts("/", "orders", 7, 7);
    let amqp = build(
        &config(&[("queueName", "orders"), ("host", &server.amqp_url(""))]),
        pools,
    )
    .await;
    let http = build(
        &config(&[
            ("queueName", "orders"),
            ("host", &server.management_url("")),
        ]),
        pools,
    )
    .await;
    let http_ready = build(
        &config(&[
            ("queueName", "orders"),
            ("host", &server.management_url("")),
            ("excludeUnacknowledged", "true"),
        ]),
        pools,
    )
    .await;
    assert_eq!(poll(amqp.as_ref()).await.unwrap(), (7.0, true));
    assert_eq!(poll(http.as_ref()).await.unwrap(), (7.0, true));
    assert_eq!(poll(http_ready.as_ref()).await.unwrap(), (7.0, true));

    // Take 3 messages without acknowledging them; they stay unacked while the channel is open.
    let consumer = Connection::connect(&server.amqp_url(""), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = consumer.create_channel().await.unwrap();
    for _ in 0..3 {
        let got = channel
            .basic_get("orders".into(), BasicGetOptions { no_ack: false })
            .await
            .unwrap();
        assert!(got.is_some());
    }
    server.wait_for_counts("/", "orders", 7, 4);
    assert_eq!(poll(amqp.as_ref()).await.unwrap(), (4.0, true));
    assert_eq!(poll(http.as_ref()).await.unwrap(), (7.0, true));
    assert_eq!(poll(http_ready.as_ref()).await.unwrap(), (4.0, true));

    // Closing the consumer puts them back.
    consumer.close(200, "".into()).await.unwrap();
    server.wait_for_counts("/", "orders", 7, 7);
    assert_eq!(poll(http_ready.as_ref()).await.unwrap(), (7.0, true));
    assert_eq!(poll(amqp.as_ref()).await.unwrap(), (7.0, true));

    // Empty queue: zero and inactive on both protocols.
    server.purge("/", "orders");
    server.wait_for_counts("/", "orders", 0, 0);
    assert_eq!(poll(amqp.as_ref()).await.unwrap(), (0.0, false));
    assert_eq!(poll(http.as_ref()).await.unwrap(), (0.0, false));
}

/// A queue in a non-default vhost, named in the host URL or through `vhostName`.
async fn vhosts(server: &RabbitMqServer, pools: &Pools) {
    server.create_vhost("team-a");
    server.declare_queue("team-a", "jobs");
    server.publish("team-a", "jobs", 4);
    // The default vhost has a queue of that name too, with a different length.
    server.declare_queue("/", "jobs");
    server.publish("/", "jobs", 1);
    server.wait_for_counts("team-a", "jobs", 4, 4);
    server.wait_for_counts("/", "jobs", 1, 1);
    let cases = [
        vec![("host", server.amqp_url("team-a"))],
        vec![
            ("host", server.amqp_url("")),
            ("vhostName", "team-a".to_owned()),
        ],
        vec![("host", server.management_url("team-a"))],
        vec![
            ("host", server.management_url("")),
            ("vhostName", "team-a".to_owned()),
        ],
        // A path prefix before the vhost is kept (here: none, the vhost is the only segment).
        vec![
            ("host", server.management_url("other")),
            ("vhostName", "team-a".to_owned()),
        ],
    ];
    for case in cases {
        let mut metadata: Vec<(&str, &str)> = vec![("queueName", "jobs")];
        metadata.extend(case.iter().map(|(k, v)| (*k, v.as_str())));
        let scaler = build(&config(&metadata), pools).await;
        assert_eq!(
            poll(scaler.as_ref()).await.unwrap(),
            (4.0, true),
            "{case:?}"
        );
    }
    let default_vhost = build(
        &config(&[("queueName", "jobs"), ("host", &server.management_url(""))]),
        pools,
    )
    .await;
    assert_eq!(poll(default_vhost.as_ref()).await.unwrap(), (1.0, true));
}

/// `useRegex` with `operation` sum, max and avg over three matching queues (one not matching).
async fn regex_aggregation(server: &RabbitMqServer, pools: &Pools) {
    for (queue, n) in [
        ("batch-a", 2),
        ("batch-b", 5),
        ("batch-c", 9),
        ("other", 50),
    ] {
        let t = Instant::now();
        server.declare_queue("/", queue);
        server.publish("/", queue, n);
        let published = t.elapsed();
        server.wait_for_counts(
            "/",
            queue,
            i64::try_from(n).unwrap(),
            i64::try_from(n).unwrap(),
        );
        eprintln!(
            "{queue}: publish {published:?}, counts after {:?}",
            t.elapsed()
        );
    }
    // avg of counts is integer division: 16 / 3 = 5.
    for (operation, want) in [("sum", 16.0), ("max", 9.0), ("avg", 5.0)] {
        let scaler = build(
            &config(&[
                ("queueName", "^batch-.*$"),
                ("host", &server.management_url("")),
                ("useRegex", "true"),
                ("operation", operation),
            ]),
            pools,
        )
        .await;
        assert_eq!(
            poll(scaler.as_ref()).await.unwrap(),
            (want, true),
            "{operation}"
        );
    }
    let none = build(
        &config(&[
            ("queueName", "^nothing-matches$"),
            ("host", &server.management_url("")),
            ("useRegex", "true"),
        ]),
        pools,
    )
    .await;
    assert_eq!(poll(none.as_ref()).await.unwrap(), (0.0, false));
}

/// `mode: MessageRate` reports the management API's publish rate while messages flow, and falls
/// back to 0 once they stop (the queue then still holds messages, so it stays active).
async fn message_rate(server: &Arc<RabbitMqServer>, pools: &Pools) {
    server.declare_queue("/", "rates");
    let scaler = build(
        &config(&[
            ("queueName", "rates"),
            ("host", &server.management_url("")),
            ("mode", "MessageRate"),
            ("value", "10"),
            ("activationValue", "1000"),
        ]),
        pools,
    )
    .await;
    assert_eq!(poll(scaler.as_ref()).await.unwrap(), (0.0, false));
    let publisher = {
        let server = Arc::clone(server);
        tokio::task::spawn_blocking(move || {
            let until = Instant::now() + Duration::from_secs(6);
            while Instant::now() < until {
                server.publish("/", "rates", 5);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let (rate, active) =
        poll_until(scaler.as_ref(), "publish rate above zero", |v, _| v > 1.0).await;
    // The broker's own figure, read right after ours, is of the same order.
    let api_rate = server.queue_info("/", "rates")["message_stats"]["publish_details"]["rate"]
        .as_f64()
        .unwrap();
    eprintln!("MessageRate: scaler {rate} msg/s, management API {api_rate} msg/s");
    assert!(rate > 1.0 && api_rate > 1.0, "{rate} vs {api_rate}");
    assert!(
        !active,
        "a rate below activationValue=1000 with fewer than 1000 messages"
    );
    publisher.await.unwrap();

    // With activation 0, the messages left in the queue keep the trigger active after the rate
    // decays.
    let low = build(
        &config(&[
            ("queueName", "rates"),
            ("host", &server.management_url("")),
            ("mode", "MessageRate"),
            ("value", "10"),
        ]),
        pools,
    )
    .await;
    let (rate, active) =
        poll_until(low.as_ref(), "publish rate back to zero", |v, _| v == 0.0).await;
    assert_eq!((rate, active), (0.0, true));
}

/// A missing queue is a backend error on both protocols; wrong credentials are a backend error that
/// does not print the secret.
async fn missing_queue_and_bad_credentials(server: &RabbitMqServer, pools: &Pools) {
    for host in [server.amqp_url(""), server.management_url("")] {
        let scaler = build(
            &config(&[("queueName", "no-such-queue"), ("host", &host)]),
            pools,
        )
        .await;
        let err = poll(scaler.as_ref()).await.unwrap_err();
        assert!(err.is_backend(), "{err}");
        assert!(
            err.to_string().contains("error inspecting RabbitMQ"),
            "{err}"
        );
        // The shared AMQP connection survives a channel closed by the broker.
        let ok = build(
            &config(&[("queueName", "compliance"), ("host", &host)]),
            pools,
        )
        .await;
        assert_eq!(poll(ok.as_ref()).await.unwrap(), (3.0, true));
    }
    let bad = format!("http://guest:hunter2@127.0.0.1:{}/", server.management_port);
    let scaler = build(
        &config(&[("queueName", "compliance"), ("host", &bad)]),
        pools,
    )
    .await;
    let err = poll(scaler.as_ref()).await.unwrap_err();
    assert!(err.is_backend());
    assert!(err.to_string().contains("401"), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");

    let bad_amqp = format!("amqp://guest:hunter2@127.0.0.1:{}/", server.amqp_port);
    let Err(err) = Registry::builtin()
        .build(
            &config(&[("queueName", "compliance"), ("host", &bad_amqp)]),
            pools,
        )
        .await
    else {
        panic!("wrong AMQP credentials were accepted");
    };
    assert!(err.is_backend(), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

/// The shared AMQP connection is re-opened on the next poll after the broker closed it.
async fn reconnects_after_the_broker_closed_the_connection(server: &RabbitMqServer, pools: &Pools) {
    let scaler = build(
        &config(&[("queueName", "compliance"), ("host", &server.amqp_url(""))]),
        pools,
    )
    .await;
    assert_eq!(poll(scaler.as_ref()).await.unwrap(), (3.0, true));
    eventually("the broker to list our connection", || async {
        server.connection_count() >= 1
    })
    .await;
    assert!(server.close_all_connections() >= 1);
    // The poll that notices the closed connection may fail; the ones after it reconnect.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match poll(scaler.as_ref()).await {
            Ok(answer) => {
                assert_eq!(answer, (3.0, true));
                break;
            }
            Err(e) => {
                assert!(e.is_backend(), "{e}");
                assert!(Instant::now() < deadline, "no reconnect: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// 100 AMQP triggers on one broker (as from 100 ScaledObjects) share one connection; KEDA opened
/// one per ScaledObject. Counted on the broker.
async fn pool_reuse(server: &RabbitMqServer, pools: &Pools) {
    let fresh = Pools::new();
    eventually(
        "the broker to list no leftover connections of other scenarios",
        || async {
            // Other scenarios' scalers live in `pools`, which still holds their connection.
            server.connection_count() <= pools.live_clients()
        },
    )
    .await;
    let before = server.connection_count();
    let mut scalers = Vec::new();
    for i in 0..100 {
        let mut cfg = config(&[("queueName", "compliance"), ("host", &server.amqp_url(""))]);
        cfg.scalable_object_name = format!("so-{i}");
        cfg.trigger_index = i % 3;
        scalers.push(build(&cfg, &fresh).await);
    }
    let polls_started = Instant::now();
    for s in &scalers {
        assert_eq!(poll(s.as_ref()).await.unwrap(), (3.0, true));
    }
    eprintln!(
        "pool reuse: 100 AMQP polls (channel open + passive declare + close each) in {:?}",
        polls_started.elapsed()
    );
    let mut during = 0;
    eventually("the broker to list the pooled connection", || {
        let n = server.connection_count();
        during = n;
        async move { n > before }
    })
    .await;
    // Give the statistics a few more intervals to list anything else that might be open.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = server.connection_count().max(during);
    eprintln!(
        "pool reuse: {} scalers, broker connections before {before}, with them {during}",
        scalers.len()
    );
    assert!(
        during - before <= 1,
        "100 scalers opened {} connections",
        during - before
    );
    assert_eq!(fresh.live_clients(), 1);
    drop(scalers);
    assert_eq!(fresh.live_clients(), 0);
    eventually(
        "the pooled connection to close once its scalers are gone",
        || async { server.connection_count() <= before },
    )
    .await;
}

/// AMQPS and the management API over HTTPS: the broker's certificate is trusted through `ca` (with
/// `tls: enable`), a client certificate is presented when given, and an untrusted certificate is a
/// backend error unless `unsafeSsl` is set (HTTP).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_over_tls() {
    let pki = TestPki::generate();
    let server = {
        let pki = TestPki {
            ca_pem: pki.ca_pem.clone(),
            server_cert_pem: pki.server_cert_pem.clone(),
            server_key_pem: pki.server_key_pem.clone(),
            client_cert_pem: pki.client_cert_pem.clone(),
            client_key_pem: pki.client_key_pem.clone(),
        };
        tokio::task::spawn_blocking(move || RabbitMqServer::start_tls(&pki))
            .await
            .unwrap()
    };
    server.declare_queue("/", "secure");
    server.publish("/", "secure", 6);
    server.wait_for_counts("/", "secure", 6, 6);
    let pools = Pools::new();
    let amqps = format!(
        "amqps://guest:guest@localhost:{}",
        server.amqps_port.unwrap()
    );
    let https = format!(
        "https://guest:guest@localhost:{}/",
        server.management_tls_port.unwrap()
    );
    let trusted = [("tls", "enable"), ("ca", pki.ca_pem.as_str())];
    let with_client_cert = [
        ("tls", "enable"),
        ("ca", pki.ca_pem.as_str()),
        ("cert", pki.client_cert_pem.as_str()),
        ("key", pki.client_key_pem.as_str()),
    ];
    for host in [&amqps, &https] {
        for auth in [&trusted[..], &with_client_cert[..]] {
            let cfg = config(&[("queueName", "secure"), ("host", host)])
                .with_auth_params(auth.iter().copied());
            let scaler = build(&cfg, &pools).await;
            assert_eq!(poll(scaler.as_ref()).await.unwrap(), (6.0, true), "{host}");
        }
    }

    // Not trusted: the handshake fails (at connect for AMQP, at the poll for HTTP).
    let untrusted = config(&[("queueName", "secure"), ("host", &amqps)]);
    let Err(err) = Registry::builtin().build(&untrusted, &pools).await else {
        panic!("an untrusted broker certificate was accepted");
    };
    assert!(err.is_backend(), "{err}");
    let scaler = build(
        &config(&[("queueName", "secure"), ("host", &https)]),
        &pools,
    )
    .await;
    let err = poll(scaler.as_ref()).await.unwrap_err();
    assert!(err.is_backend(), "{err}");
    let scaler = build(
        &config(&[
            ("queueName", "secure"),
            ("host", &https),
            ("unsafeSsl", "true"),
        ]),
        &pools,
    )
    .await;
    assert_eq!(poll(scaler.as_ref()).await.unwrap(), (6.0, true));
}
