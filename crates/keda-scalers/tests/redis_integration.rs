//! The redis scalers against real `redis-server` processes (Debian package `redis-server`).

// Deadlines against real servers are wall-clock time.
#![allow(clippy::disallowed_types)]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use keda_scalers::testing::{ComplianceCase, check_live, check_parsing};
use keda_scalers::{MetricTargetKind, Pools, Registry, Scaler, ScalerConfig, ScalerError};
use test_cluster::redis::{RedisServer, TestPki, free_port};

fn redis_config(trigger_type: &str, index: usize, metadata: &[(&str, &str)]) -> ScalerConfig {
    ScalerConfig::new(trigger_type, index).with_metadata(metadata.iter().copied())
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_list_is_zero_and_inactive() {
    let server = RedisServer::start();
    let pools = Pools::new();
    let config = redis_config(
        "redis",
        0,
        &[("listName", "jobs"), ("address", &server.address())],
    );
    let scaler = build(&config, &pools).await.unwrap();
    assert_eq!(poll(scaler.as_ref()).await.unwrap(), (0.0, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activation_is_strictly_greater() {
    let server = RedisServer::start();
    server.push(0, "jobs", 7);
    let pools = Pools::new();
    for (activation, want_active) in [("5", true), ("6", true), ("7", false), ("8", false)] {
        let config = redis_config(
            "redis",
            0,
            &[
                ("listName", "jobs"),
                ("address", &server.address()),
                ("activationListLength", activation),
            ],
        );
        let scaler = build(&config, &pools).await.unwrap();
        assert_eq!(
            poll(scaler.as_ref()).await.unwrap(),
            (7.0, want_active),
            "activationListLength={activation}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_spec_has_normalized_name_and_list_length_target() {
    let server = RedisServer::start();
    let pools = Pools::new();
    let mut config = redis_config(
        "redis",
        3,
        &[
            ("listName", "queue.jobs:high"),
            ("listLength", "12"),
            ("address", &server.address()),
        ],
    );
    config.metric_type = MetricTargetKind::Value;
    let scaler = build(&config, &pools).await.unwrap();
    let specs = scaler.metric_specs();
    assert_eq!(specs.len(), 1);
    assert_eq!(
        specs[0].external_metric_name(),
        Some("s3-redis-queue-jobs-high")
    );
    assert_eq!(specs[0].target().kind, MetricTargetKind::Value);
    assert_eq!(specs[0].target().value, 12.0);
    assert_eq!(specs[0].target().quantity(), "12");

    let default_target = redis_config(
        "redis",
        0,
        &[("listName", "l"), ("address", &server.address())],
    );
    let scaler = build(&default_target, &pools).await.unwrap();
    let specs = scaler.metric_specs();
    assert_eq!(specs[0].target().kind, MetricTargetKind::AverageValue);
    assert_eq!(specs[0].target().quantity(), "5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_from_auth_params() {
    let server = RedisServer::start_with(&["--requirepass", "s3cret"]);
    server.push(0, "jobs", 2);
    let pools = Pools::new();
    let with_password = redis_config(
        "redis",
        0,
        &[("listName", "jobs"), ("address", &server.address())],
    )
    .with_auth_params([("password", "s3cret")]);
    let scaler = build(&with_password, &pools).await.unwrap();
    assert_eq!(poll(scaler.as_ref()).await.unwrap(), (2.0, true));

    let without = redis_config(
        "redis",
        0,
        &[("listName", "jobs"), ("address", &server.address())],
    );
    let err = build(&without, &pools).await.err().unwrap();
    assert!(err.is_backend(), "{err}");
    assert!(
        err.to_string().contains("connection to redis failed"),
        "{err}"
    );

    let wrong = without.clone().with_auth_params([("password", "nope")]);
    let err = build(&wrong, &pools).await.err().unwrap();
    assert!(err.is_backend(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_from_env() {
    let server = RedisServer::start_with(&["--requirepass", "envpw"]);
    let pools = Pools::new();
    let config = redis_config(
        "redis",
        0,
        &[
            ("listName", "jobs"),
            ("hostFromEnv", "RH"),
            ("portFromEnv", "RP"),
            ("passwordFromEnv", "RPW"),
        ],
    )
    .with_resolved_env([
        ("RH", "127.0.0.1".to_owned()),
        ("RP", server.port.to_string()),
        ("RPW", "envpw".to_owned()),
    ]);
    let scaler = build(&config, &pools).await.unwrap();
    assert_eq!(poll(scaler.as_ref()).await.unwrap(), (0.0, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_index_selects_the_database() {
    let server = RedisServer::start();
    server.push(3, "jobs", 4);
    let pools = Pools::new();
    let db3 = redis_config(
        "redis",
        0,
        &[
            ("listName", "jobs"),
            ("address", &server.address()),
            ("databaseIndex", "3"),
        ],
    );
    let db0 = redis_config(
        "redis",
        1,
        &[("listName", "jobs"), ("address", &server.address())],
    );
    let s3 = build(&db3, &pools).await.unwrap();
    let s0 = build(&db0, &pools).await.unwrap();
    assert_eq!(poll(s3.as_ref()).await.unwrap(), (4.0, true));
    assert_eq!(poll(s0.as_ref()).await.unwrap(), (0.0, false));
    assert_eq!(
        pools.live_clients(),
        2,
        "a database is part of the backend identity"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_collection_types() {
    let server = RedisServer::start();
    server.command(&["SADD", "a-set", "x", "y", "z"]);
    server.command(&["ZADD", "a-zset", "1", "x", "2", "y"]);
    server.command(&["HSET", "a-hash", "f1", "v", "f2", "v", "f3", "v", "f4", "v"]);
    server.command(&["SET", "a-string", "v"]);
    server.command(&["XADD", "a-stream", "*", "f", "v"]);
    let pools = Pools::new();
    for (key, want) in [
        ("a-set", 3.0),
        ("a-zset", 2.0),
        ("a-hash", 4.0),
        ("missing", 0.0),
    ] {
        let config = redis_config(
            "redis",
            0,
            &[("listName", key), ("address", &server.address())],
        );
        let scaler = build(&config, &pools).await.unwrap();
        assert_eq!(poll(scaler.as_ref()).await.unwrap().0, want, "{key}");
    }
    for (key, kind) in [("a-string", "string"), ("a-stream", "stream")] {
        let config = redis_config(
            "redis",
            0,
            &[("listName", key), ("address", &server.address())],
        );
        let scaler = build(&config, &pools).await.unwrap();
        let err = poll(scaler.as_ref()).await.unwrap_err();
        assert!(err.is_backend(), "{err}");
        assert!(
            err.to_string()
                .contains(&format!("unsupported key type: {kind}")),
            "{err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_scalers_share_one_connection() {
    let server = RedisServer::start();
    server.push(0, "list-7", 7);
    let pools = Pools::new();
    let mut scalers = Vec::new();
    for i in 0..100 {
        let name = format!("list-{i}");
        let config = redis_config(
            "redis",
            i % 4,
            &[("listName", &name), ("address", &server.address())],
        );
        scalers.push(build(&config, &pools).await.unwrap());
    }
    let polls = scalers.iter().map(|s| {
        let s = Arc::clone(s);
        tokio::spawn(async move { poll(s.as_ref()).await })
    });
    let mut total = 0.0;
    for p in polls {
        total += p.await.unwrap().unwrap().0;
    }
    assert_eq!(total, 7.0);
    assert_eq!(pools.live_clients(), 1);
    let connections = server.client_count();
    assert!(
        (1..=3).contains(&connections),
        "100 scalers hold {connections} connections"
    );

    // Idle clients go away once no scaler uses them.
    for s in &scalers {
        s.close().await;
    }
    drop(scalers);
    assert_eq!(pools.live_clients(), 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.client_count() > 0 {
        assert!(
            Instant::now() < deadline,
            "the pooled connection was not closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_is_a_backend_error_and_recovery_follows() {
    let mut server = RedisServer::start();
    server.push(0, "jobs", 1);
    let pools = Pools::new();
    let config = redis_config(
        "redis",
        0,
        &[("listName", "jobs"), ("address", &server.address())],
    );
    let scaler = build(&config, &pools).await.unwrap();
    assert_eq!(poll(scaler.as_ref()).await.unwrap(), (1.0, true));

    server.kill();
    let started = Instant::now();
    let err = poll(scaler.as_ref()).await.unwrap_err();
    assert!(err.is_backend() && !err.is_config(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a down server must fail fast"
    );
    // A new scaler for a down server fails to build, with a backend error too.
    let other = redis_config(
        "redis",
        1,
        &[
            ("listName", "x"),
            ("address", &server.address()),
            ("databaseIndex", "1"),
        ],
    );
    let err = build(&other, &pools).await.err().unwrap();
    assert!(err.is_backend(), "{err}");
    assert!(
        err.to_string().contains("connection to redis failed"),
        "{err}"
    );

    server.restart();
    server.push(0, "jobs", 2);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match poll(scaler.as_ref()).await {
            Ok(v) => {
                assert_eq!(v, (2.0, true));
                break;
            }
            Err(e) => {
                assert!(e.is_backend(), "{e}");
                assert!(Instant::now() < deadline, "no recovery after restart: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compliance() {
    let server = RedisServer::start();
    server.push(0, "jobs", 3);
    let registry = Registry::builtin();
    let case = ComplianceCase {
        config: redis_config(
            "redis",
            0,
            &[("listName", "jobs"), ("address", &server.address())],
        ),
        required: vec!["listName", "address"],
        invalid: vec![
            ("listLength", "AA"),
            ("activationListLength", "1.5"),
            ("databaseIndex", "x"),
            ("enableTLS", "yes"),
            ("unsafeSsl", "maybe"),
            ("address", "no-port"),
        ],
        activation_param: Some("activationListLength"),
        current_value: 3.0,
    };
    check_parsing(&registry, &case);
    let pools = Pools::new();
    check_live(&registry, &pools, &case).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_ca_client_cert_and_unsafe_ssl() {
    let pki = TestPki::generate();
    let certs = tempfile::tempdir().unwrap();
    let tls_port = free_port();
    let args = pki.server_args(certs.path(), tls_port, true);
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = RedisServer::start_with(&arg_refs);
    server.push(0, "jobs", 6);
    let address = format!("127.0.0.1:{tls_port}");
    let pools = Pools::new();
    let base = redis_config("redis", 0, &[("listName", "jobs"), ("address", &address)]);

    // CA + client certificate (the server requires one).
    let mtls = base.clone().with_auth_params([
        ("tls", pki_str("enable")),
        ("ca", pki.ca_pem.clone()),
        ("cert", pki.client_cert_pem.clone()),
        ("key", pki.client_key_pem.clone()),
    ]);
    let scaler = build(&mtls, &pools).await.unwrap();
    assert_eq!(poll(scaler.as_ref()).await.unwrap(), (6.0, true));

    // enableTLS in metadata, unsafeSsl instead of a CA.
    let mut unsafe_ssl = base.clone().with_auth_params([
        ("cert", pki.client_cert_pem.clone()),
        ("key", pki.client_key_pem.clone()),
    ]);
    unsafe_ssl
        .metadata
        .insert("enableTLS".into(), "true".into());
    unsafe_ssl
        .metadata
        .insert("unsafeSsl".into(), "true".into());
    let scaler = build(&unsafe_ssl, &pools).await.unwrap();
    assert_eq!(poll(scaler.as_ref()).await.unwrap().0, 6.0);

    // Without the CA the server certificate is not trusted.
    let mut untrusted = base.clone().with_auth_params([
        ("cert", pki.client_cert_pem.clone()),
        ("key", pki.client_key_pem.clone()),
    ]);
    untrusted.metadata.insert("enableTLS".into(), "true".into());
    let err = build(&untrusted, &pools).await.err().unwrap();
    assert!(err.is_backend(), "{err}");

    // Without a client certificate the server refuses the handshake.
    let no_client_cert = base
        .clone()
        .with_auth_params([("tls", pki_str("enable")), ("ca", pki.ca_pem.clone())]);
    let err = build(&no_client_cert, &pools).await.err().unwrap();
    assert!(err.is_backend(), "{err}");

    // Plain TCP to the TLS port fails as a backend error.
    let err = build(&base, &pools).await.err().unwrap();
    assert!(err.is_backend(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_encrypted_client_key() {
    use pkcs8::der::Decode;
    use pkcs8::der::pem::LineEnding;

    let pki = TestPki::generate();
    let certs = tempfile::tempdir().unwrap();
    let tls_port = free_port();
    let args = pki.server_args(certs.path(), tls_port, true);
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = RedisServer::start_with(&arg_refs);
    server.push(0, "jobs", 1);

    let (_, der) = pkcs8::der::pem::decode_vec(pki.client_key_pem.as_bytes()).unwrap();
    let encrypted_key = pkcs8::PrivateKeyInfo::from_der(&der)
        .unwrap()
        .encrypt_with_params(
            pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(2048, b"saltsalt", &[7; 16])
                .unwrap(),
            "keypw",
        )
        .unwrap()
        .to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
        .unwrap()
        .to_string();
    let config = redis_config(
        "redis",
        0,
        &[
            ("listName", "jobs"),
            ("address", &format!("127.0.0.1:{tls_port}")),
        ],
    )
    .with_auth_params([
        ("tls", "enable".to_owned()),
        ("ca", pki.ca_pem.clone()),
        ("cert", pki.client_cert_pem.clone()),
        ("key", encrypted_key),
        ("keyPassword", "keypw".to_owned()),
    ]);
    let pools = Pools::new();
    let scaler = build(&config, &pools).await.unwrap();
    assert_eq!(poll(scaler.as_ref()).await.unwrap(), (1.0, true));
}

fn pki_str(s: &str) -> String {
    s.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_resolves_the_master() {
    let master = RedisServer::start_with(&["--requirepass", "masterpw"]);
    master.push(2, "jobs", 5);
    let sentinel = RedisServer::start_sentinel(&format!(
        "sentinel monitor mymaster 127.0.0.1 {} 1\nsentinel auth-pass mymaster masterpw\n",
        master.port
    ));
    let pools = Pools::new();
    let config = redis_config(
        "redis-sentinel",
        0,
        &[
            ("listName", "jobs"),
            ("addresses", &sentinel.address()),
            ("sentinelMaster", "mymaster"),
            ("databaseIndex", "2"),
        ],
    )
    .with_auth_params([("password", "masterpw")]);
    let scaler = build(&config, &pools).await.unwrap();
    assert_eq!(poll(scaler.as_ref()).await.unwrap(), (5.0, true));

    let unknown_master = redis_config(
        "redis-sentinel",
        0,
        &[
            ("listName", "jobs"),
            ("addresses", &sentinel.address()),
            ("sentinelMaster", "nope"),
        ],
    );
    let err = build(&unknown_master, &pools).await.err().unwrap();
    assert!(err.is_backend(), "{err}");
    assert!(
        err.to_string()
            .contains("connection to redis sentinel failed"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_reads_across_nodes() {
    let nodes: Vec<RedisServer> = (0..3)
        .map(|_| {
            RedisServer::start_with(&["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
        })
        .collect();
    // Three masters splitting the 16384 slots, introduced to each other by the first one.
    let ranges = [("0", "5460"), ("5461", "10922"), ("10923", "16383")];
    for (node, (from, to)) in nodes.iter().zip(ranges) {
        assert!(
            node.command(&["CLUSTER", "ADDSLOTSRANGE", from, to])
                .starts_with("+OK")
        );
    }
    for node in &nodes[1..] {
        let port = node.port.to_string();
        assert!(
            nodes[0]
                .command(&["CLUSTER", "MEET", "127.0.0.1", &port])
                .starts_with("+OK")
        );
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !nodes
        .iter()
        .all(|n| n.command(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
    {
        assert!(Instant::now() < deadline, "cluster did not form");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let pools = Pools::new();
    let seeds = format!("{}, {}", nodes[0].address(), nodes[1].address());
    let mut scalers = Vec::new();
    // Keys hashing to different slots, so different nodes serve them.
    for (i, key) in ["alpha", "bravo", "charlie", "delta", "echo"]
        .iter()
        .enumerate()
    {
        let owner = nodes.iter().find(|n| {
            let reply = n.command(&["LPUSH", key, "x"]);
            reply.starts_with(':')
        });
        assert!(owner.is_some(), "no node accepted {key}");
        let config = redis_config(
            "redis-cluster",
            i,
            &[("listName", key), ("addresses", &seeds)],
        );
        scalers.push(build(&config, &pools).await.unwrap());
    }
    for s in &scalers {
        assert_eq!(poll(s.as_ref()).await.unwrap(), (1.0, true));
    }
    assert_eq!(pools.live_clients(), 1);
}
