//! The redis streams scalers against real `redis-server` processes: stream length, pending entries
//! and consumer-group lag in several states, strict activation, pool sharing with the list scaler,
//! cluster and sentinel variants, and the shared compliance check.

// Deadlines against real servers are wall-clock time.
#![allow(clippy::disallowed_types)]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use keda_scalers::testing::{ComplianceCase, check_live, check_parsing};
use keda_scalers::{Pools, Registry, Scaler, ScalerConfig, ScalerError};
use test_cluster::redis::RedisServer;

fn config(trigger_type: &str, index: usize, metadata: &[(&str, &str)]) -> ScalerConfig {
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

fn add_entries(server: &RedisServer, stream: &str, n: usize) {
    for i in 0..n {
        let reply = server.command(&["XADD", stream, "*", "n", &i.to_string()]);
        assert!(reply.starts_with('$'), "XADD: {reply}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_length_mode() {
    let server = RedisServer::start();
    let pools = Pools::new();
    let cfg = config(
        "redis-streams",
        1,
        &[
            ("stream", "orders.v1"),
            ("address", &server.address()),
            ("streamLength", "7"),
        ],
    );
    let scaler = build(&cfg, &pools).await.unwrap();
    let specs = scaler.metric_specs();
    assert_eq!(
        specs[0].external_metric_name(),
        Some("s1-redis-streams-orders-v1")
    );
    assert_eq!(specs[0].target().quantity(), "7");
    // Missing stream: XLEN is 0.
    assert_eq!(poll(scaler.as_ref()).await.unwrap(), (0.0, false));
    add_entries(&server, "orders.v1", 4);
    assert_eq!(poll(scaler.as_ref()).await.unwrap(), (4.0, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_entries_mode() {
    let server = RedisServer::start();
    add_entries(&server, "s", 6);
    assert!(
        server
            .command(&["XGROUP", "CREATE", "s", "g", "0"])
            .starts_with("+OK")
    );
    let pools = Pools::new();
    let cfg = config(
        "redis-streams",
        0,
        &[
            ("stream", "s"),
            ("consumerGroup", "g"),
            ("address", &server.address()),
        ],
    );
    let scaler = build(&cfg, &pools).await.unwrap();
    assert_eq!(scaler.metric_specs()[0].target().quantity(), "5");
    // Nothing delivered yet: nothing pending.
    assert_eq!(poll(scaler.as_ref()).await.unwrap(), (0.0, false));
    server.command(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "c1",
        "COUNT",
        "4",
        "STREAMS",
        "s",
        ">",
    ]);
    assert_eq!(poll(scaler.as_ref()).await.unwrap(), (4.0, true));
    let ids = server.command(&["XRANGE", "s", "-", "+", "COUNT", "1"]);
    let first_id = ids
        .lines()
        .find(|l| l.contains('-') && !l.starts_with('*') && !l.starts_with('$'))
        .unwrap()
        .trim()
        .to_owned();
    server.command(&["XACK", "s", "g", &first_id]);
    assert_eq!(poll(scaler.as_ref()).await.unwrap(), (3.0, true));

    // Unknown group: a backend error (XPENDING fails).
    let unknown = config(
        "redis-streams",
        0,
        &[
            ("stream", "s"),
            ("consumerGroup", "nope"),
            ("address", &server.address()),
        ],
    );
    let scaler = build(&unknown, &pools).await.unwrap();
    assert!(poll(scaler.as_ref()).await.unwrap_err().is_backend());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_mode() {
    let server = RedisServer::start();
    let pools = Pools::new();
    let lag_cfg = |group: &str, activation: &str| {
        config(
            "redis-streams",
            0,
            &[
                ("stream", "s"),
                ("consumerGroup", group),
                ("lagCount", "10"),
                ("activationLagCount", activation),
                ("address", &server.address()),
            ],
        )
    };
    // No such stream: lag 0.
    let scaler = build(&lag_cfg("g", "0"), &pools).await.unwrap();
    assert_eq!(scaler.metric_specs()[0].target().quantity(), "10");
    assert_eq!(poll(scaler.as_ref()).await.unwrap(), (0.0, false));

    add_entries(&server, "s", 5);
    assert!(
        server
            .command(&["XGROUP", "CREATE", "s", "g", "0"])
            .starts_with("+OK")
    );
    assert_eq!(poll(scaler.as_ref()).await.unwrap(), (5.0, true));
    server.command(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "c1",
        "COUNT",
        "2",
        "STREAMS",
        "s",
        ">",
    ]);
    assert_eq!(poll(scaler.as_ref()).await.unwrap(), (3.0, true));

    // Activation is strict: lag 3 with activationLagCount 3 is inactive, with 2 active.
    let at = build(&lag_cfg("g", "3"), &pools).await.unwrap();
    assert_eq!(poll(at.as_ref()).await.unwrap(), (3.0, false));
    let below = build(&lag_cfg("g", "2"), &pools).await.unwrap();
    assert_eq!(poll(below.as_ref()).await.unwrap(), (3.0, true));

    // A group that does not exist falls back to the stream length.
    let missing_group = build(&lag_cfg("other", "0"), &pools).await.unwrap();
    assert_eq!(poll(missing_group.as_ref()).await.unwrap(), (5.0, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_stream_scalers_share_one_client() {
    let server = RedisServer::start();
    server.push(0, "jobs", 2);
    add_entries(&server, "events", 3);
    let pools = Pools::new();
    let list = build(
        &config(
            "redis",
            0,
            &[("listName", "jobs"), ("address", &server.address())],
        ),
        &pools,
    )
    .await
    .unwrap();
    let stream = build(
        &config(
            "redis-streams",
            1,
            &[("stream", "events"), ("address", &server.address())],
        ),
        &pools,
    )
    .await
    .unwrap();
    assert_eq!(pools.live_clients(), 1);
    assert_eq!(poll(list.as_ref()).await.unwrap(), (2.0, true));
    assert_eq!(poll(stream.as_ref()).await.unwrap(), (3.0, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compliance() {
    let server = RedisServer::start();
    add_entries(&server, "s", 4);
    assert!(
        server
            .command(&["XGROUP", "CREATE", "s", "g", "0"])
            .starts_with("+OK")
    );
    server.command(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "c1",
        "COUNT",
        "3",
        "STREAMS",
        "s",
        ">",
    ]);
    let registry = Registry::builtin();
    let case = ComplianceCase {
        config: config(
            "redis-streams",
            0,
            &[
                ("stream", "s"),
                ("consumerGroup", "g"),
                ("address", &server.address()),
            ],
        ),
        required: vec!["stream", "address"],
        invalid: vec![
            ("pendingEntriesCount", "junk"),
            ("streamLength", "junk"),
            ("lagCount", "junk"),
            ("activationLagCount", "1.5"),
            ("databaseIndex", "junk"),
            ("enableTLS", "no"),
        ],
        activation_param: Some("activationLagCount"),
        current_value: 3.0,
    };
    check_parsing(&registry, &case);
    let pools = Pools::new();
    check_live(&registry, &pools, &case).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_streams() {
    let master = RedisServer::start_with(&["--requirepass", "masterpw"]);
    let sentinel = RedisServer::start_sentinel(&format!(
        "sentinel monitor mymaster 127.0.0.1 {} 1\nsentinel auth-pass mymaster masterpw\n",
        master.port
    ));
    master.command(&["AUTH", "masterpw"]);
    let pools = Pools::new();
    let cfg = config(
        "redis-sentinel-streams",
        0,
        &[
            ("stream", "s"),
            ("addresses", &sentinel.address()),
            ("sentinelMaster", "mymaster"),
        ],
    )
    .with_auth_params([("password", "masterpw")]);
    let scaler = build(&cfg, &pools).await.unwrap();
    assert_eq!(poll(scaler.as_ref()).await.unwrap(), (0.0, false));
    for _ in 0..2 {
        let reply = master.command(&["XADD", "s", "*", "k", "v"]);
        assert!(reply.starts_with('$'), "{reply}");
    }
    assert_eq!(poll(scaler.as_ref()).await.unwrap(), (2.0, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_streams_lag() {
    let nodes: Vec<RedisServer> = (0..3)
        .map(|_| {
            RedisServer::start_with(&["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
        })
        .collect();
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
    let seeds = nodes[0].address();
    let mut scalers = Vec::new();
    for (i, stream) in ["alpha", "bravo", "charlie"].iter().enumerate() {
        let owner = nodes
            .iter()
            .find(|n| n.command(&["XADD", stream, "*", "k", "v"]).starts_with('$'))
            .unwrap();
        owner.command(&["XADD", stream, "*", "k", "v"]);
        assert!(
            owner
                .command(&["XGROUP", "CREATE", stream, "g", "0"])
                .starts_with("+OK")
        );
        let cfg = config(
            "redis-cluster-streams",
            i,
            &[
                ("stream", stream),
                ("consumerGroup", "g"),
                ("lagCount", "1"),
                ("addresses", &seeds),
            ],
        );
        scalers.push(build(&cfg, &pools).await.unwrap());
    }
    for s in &scalers {
        assert_eq!(poll(s.as_ref()).await.unwrap(), (2.0, true));
    }
    assert_eq!(pools.live_clients(), 1);
}
