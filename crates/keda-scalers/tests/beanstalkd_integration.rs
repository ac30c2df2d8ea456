//! The beanstalkd scaler against a real `beanstalkd` (Debian package), started on a free loopback
//! port: ready, reserved and delayed jobs, an unknown tube, one shared connection, a restarted
//! server.

#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use keda_scalers::testing::{ComplianceCase, check_live};
use keda_scalers::{BackendKind, Pools, Registry, ScalerConfig};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;

struct Beanstalkd {
    child: Child,
    port: u16,
}

impl Beanstalkd {
    async fn start_on(port: u16) -> Self {
        // Owned at once, so every path below kills and reaps it (Drop).
        let server = Self {
            child: Command::new("beanstalkd")
                .args(["-l", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("beanstalkd (Debian package beanstalkd) must be installed: hack/install-deps.sh"),
            port,
        };
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("beanstalkd did not listen on {port}");
    }

    async fn start() -> Self {
        Self::start_on(test_cluster::redis::free_port()).await
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Beanstalkd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A producer/worker speaking the protocol: puts jobs, reserves some.
struct Producer(BufStream<TcpStream>);

impl Producer {
    async fn connect(server: &Beanstalkd, tube: &str) -> Self {
        let mut p = Self(BufStream::new(
            TcpStream::connect(server.address()).await.unwrap(),
        ));
        p.command(&format!("use {tube}\r\n")).await;
        p.command(&format!("watch {tube}\r\n")).await;
        p
    }

    async fn command(&mut self, command: &str) -> String {
        self.0.write_all(command.as_bytes()).await.unwrap();
        self.0.flush().await.unwrap();
        let mut line = String::new();
        self.0.read_line(&mut line).await.unwrap();
        line
    }

    async fn put(&mut self, delay_seconds: u32) {
        let reply = self
            .command(&format!("put 0 {delay_seconds} 120 3\r\njob\r\n"))
            .await;
        assert!(reply.starts_with("INSERTED"), "{reply}");
    }

    async fn reserve(&mut self) {
        let reply = self.command("reserve-with-timeout 1\r\n").await;
        assert!(reply.starts_with("RESERVED"), "{reply}");
        // The job body and its CRLF.
        let mut body = String::new();
        self.0.read_line(&mut body).await.unwrap();
    }
}

fn config(server: &Beanstalkd, tube: &str, extra: &[(&str, &str)]) -> ScalerConfig {
    let address = server.address();
    let mut metadata = vec![("server", address.as_str()), ("tube", tube), ("value", "2")];
    metadata.extend_from_slice(extra);
    ScalerConfig::new("beanstalkd", 0).with_metadata(metadata)
}

async fn read(pools: &Pools, config: &ScalerConfig) -> (f64, bool) {
    let scaler = Registry::builtin().build(config, pools).await.unwrap();
    let name = scaler.metric_specs()[0]
        .external_metric_name()
        .unwrap()
        .to_owned();
    let (values, active) = scaler.metrics_and_activity(&name).await.unwrap();
    (values[0].value, active)
}

#[tokio::test]
async fn counts_ready_reserved_and_optionally_delayed_jobs() {
    let server = Beanstalkd::start().await;
    let pools = Pools::new();
    let mut producer = Producer::connect(&server, "orders").await;
    for _ in 0..4 {
        producer.put(0).await;
    }
    producer.reserve().await;
    producer.put(3600).await;
    producer.put(3600).await;

    // 3 ready + 1 reserved; the 2 delayed count only with includeDelayed.
    assert_eq!(
        read(&pools, &config(&server, "orders", &[])).await,
        (4.0, true)
    );
    assert_eq!(
        read(
            &pools,
            &config(&server, "orders", &[("includeDelayed", "true")])
        )
        .await,
        (6.0, true)
    );
    assert_eq!(
        read(
            &pools,
            &config(&server, "orders", &[("activationValue", "4")])
        )
        .await,
        (4.0, false)
    );
    // A tube nobody used is empty, not an error.
    assert_eq!(
        read(&pools, &config(&server, "nobody", &[])).await,
        (0.0, false)
    );
}

#[tokio::test]
async fn shared_connection_compliance_and_restart() {
    let server = Beanstalkd::start().await;
    let mut producer = Producer::connect(&server, "compliance").await;
    producer.put(0).await;
    producer.put(0).await;
    let case = ComplianceCase {
        config: config(&server, "compliance", &[]),
        required: vec!["server", "tube", "value"],
        invalid: vec![("value", "lots"), ("timeout", "-1")],
        activation_param: Some("activationValue"),
        current_value: 2.0,
    };
    check_live(&Registry::builtin(), &Pools::new(), &case).await;

    // Many triggers on one server share one connection, and survive a server restart.
    let pools = Pools::new();
    let mut scalers = Vec::new();
    for _ in 0..20 {
        scalers.push(
            Registry::builtin()
                .build(&case.config, &pools)
                .await
                .unwrap(),
        );
    }
    assert_eq!(pools.live_clients(), 1);
    let name = scalers[0].metric_specs()[0]
        .external_metric_name()
        .unwrap()
        .to_owned();
    let port = server.port;
    drop(producer);
    drop(server);
    let err = scalers[0].metrics_and_activity(&name).await.unwrap_err();
    assert_eq!(err.backend_kind(), Some(BackendKind::Connect), "{err}");
    let _restarted = Beanstalkd::start_on(port).await;
    let (values, active) = scalers[1].metrics_and_activity(&name).await.unwrap();
    assert_eq!(
        (values[0].value, active),
        (0.0, false),
        "a fresh server has no jobs"
    );

    // A restart between two reads costs no failed read: the stale connection is replaced.
    drop(_restarted);
    let _again = Beanstalkd::start_on(port).await;
    let (values, _) = scalers[2].metrics_and_activity(&name).await.unwrap();
    assert_eq!(values[0].value, 0.0);
}

#[tokio::test]
async fn unreachable_server_is_a_connect_error() {
    let port = test_cluster::redis::free_port();
    let config = ScalerConfig::new("beanstalkd", 0).with_metadata([
        ("server", format!("127.0.0.1:{port}").as_str()),
        ("tube", "t"),
        ("value", "1"),
        ("timeout", "500ms"),
    ]);
    let err = Registry::builtin()
        .build(&config, &Pools::new())
        .await
        .unwrap_err();
    assert_eq!(err.backend_kind(), Some(BackendKind::Connect), "{err}");
}
