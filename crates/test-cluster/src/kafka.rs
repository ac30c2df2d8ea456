//! A real single-node Apache Kafka broker in KRaft mode (combined broker + controller) for tests,
//! run from the jars `hack/fetch-kafka.sh` caches in `~/.cache/keda-rs/kafka-<version>/libs`.
//! Each broker has its own temp dir and free loopback ports, runs in its own process group under
//! the `process::Supervisor` watchdog, and is stopped on drop.
//!
//! Listeners: `PLAINTEXT` (no auth), `SASL_PLAINTEXT` (PLAIN and SCRAM-SHA-256/512 with the user
//! [`KafkaBroker::SASL_USER`]), `SSL` (server certificate from a [`TestPki`], no client auth),
//! `MTLS` (the same, requiring a client certificate from that PKI).
//! JMX is exposed on a loopback port so tests can read the broker's own connection count.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use tempfile::TempDir;

use crate::process::{Supervisor, tail};
use crate::redis::{TestPki, free_port};

/// The version `hack/fetch-kafka.sh` fetches by default.
pub const KAFKA_VERSION: &str = "4.1.1";

/// One broker process.
pub struct KafkaBroker {
    supervisor: Supervisor,
    dir: TempDir,
    libs: PathBuf,
    /// `PLAINTEXT` listener port.
    pub port: u16,
    /// `SASL_PLAINTEXT` listener port.
    pub sasl_port: u16,
    /// `SSL` listener port.
    pub tls_port: u16,
    /// `MTLS` listener port: TLS that requires a client certificate signed by the PKI's CA.
    pub mtls_port: u16,
    /// JMX port (no auth, loopback).
    pub jmx_port: u16,
    /// The PKI whose server certificate the `SSL` listener presents.
    pub pki: TestPki,
}

impl KafkaBroker {
    /// SASL user known to the broker (PLAIN and SCRAM).
    pub const SASL_USER: &'static str = "keda";
    /// Its password.
    pub const SASL_PASSWORD: &'static str = "keda-secret";

    /// Starts a broker and waits until it serves requests; panics with the log if it cannot.
    pub fn start() -> Self {
        let libs = libs_dir();
        let mut last_error = String::new();
        for _ in 0..3 {
            match Self::try_start(&libs) {
                Ok(broker) => return broker,
                Err(e) => last_error = e,
            }
        }
        panic!("the Kafka broker did not start:\n{last_error}");
    }

    fn try_start(libs: &Path) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let (port, sasl_port, tls_port, mtls_port, controller_port, jmx_port) = (
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port(),
        );
        let pki = TestPki::generate();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            fs::write(&path, text).unwrap();
            path.to_string_lossy().into_owned()
        };
        // Kafka's PEM key store reads the PEM inline from the config; newlines must be escaped.
        let inline = |pem: &str| pem.trim().replace('\n', "\\n");
        let (user, password) = (Self::SASL_USER, Self::SASL_PASSWORD);
        let config = format!(
            "process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl_port},SSL://127.0.0.1:{tls_port},MTLS://127.0.0.1:{mtls_port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl_port},SSL://127.0.0.1:{tls_port},MTLS://127.0.0.1:{mtls_port}
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,MTLS:SSL
inter.broker.listener.name=PLAINTEXT
log.dirs={data}
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_{user}=\"{password}\";
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PEM
ssl.keystore.certificate.chain={chain}
ssl.keystore.key={key}
ssl.client.auth=none
listener.name.mtls.ssl.client.auth=required
listener.name.mtls.ssl.truststore.type=PEM
listener.name.mtls.ssl.truststore.certificates={ca}
listener.name.mtls.ssl.keystore.type=PEM
listener.name.mtls.ssl.keystore.certificate.chain={chain}
listener.name.mtls.ssl.keystore.key={key}
",
            data = dir.path().join("data").display(),
            chain = inline(&pki.server_cert_pem),
            key = inline(&pki.server_key_pem),
            ca = inline(&pki.ca_pem),
        );
        let config_path = write("server.properties", &config);
        let classpath = format!("{}/*", libs.display());

        let mut cluster_id = [0_u8; 16];
        rand::fill(&mut cluster_id);
        let cluster_id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(cluster_id);
        let scram = |mechanism: &str| format!("{mechanism}=[name={user},password={password}]");
        let format = Command::new("java")
            .args(jvm_flags())
            .args(["-cp", &classpath, "kafka.tools.StorageTool", "format"])
            .args(["-t", &cluster_id, "-c", &config_path])
            .args(["--add-scram", &scram("SCRAM-SHA-256")])
            .args(["--add-scram", &scram("SCRAM-SHA-512")])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run java (install a JRE 17+): {e}"))?;
        if !format.status.success() {
            return Err(format!(
                "formatting the storage failed:\n{}{}",
                String::from_utf8_lossy(&format.stdout),
                String::from_utf8_lossy(&format.stderr)
            ));
        }

        let mut supervisor =
            Supervisor::new(&dir.path().join("logs"), None).map_err(|e| e.to_string())?;
        let mut args: Vec<String> = jvm_flags().iter().map(ToString::to_string).collect();
        args.extend([
            "-Dcom.sun.management.jmxremote".into(),
            "-Dcom.sun.management.jmxremote.authenticate=false".into(),
            "-Dcom.sun.management.jmxremote.ssl=false".into(),
            "-Dcom.sun.management.jmxremote.local.only=true".into(),
            format!("-Dcom.sun.management.jmxremote.port={jmx_port}"),
            format!("-Dcom.sun.management.jmxremote.rmi.port={jmx_port}"),
            "-Djava.rmi.server.hostname=127.0.0.1".into(),
            "-cp".into(),
            classpath,
            "kafka.Kafka".into(),
            config_path,
        ]);
        supervisor
            .spawn("kafka", Path::new("java"), &args)
            .map_err(|e| e.to_string())?;
        let broker = Self {
            supervisor,
            dir,
            libs: libs.to_path_buf(),
            port,
            sasl_port,
            tls_port,
            mtls_port,
            jmx_port,
            pki,
        };
        broker.wait_ready(Duration::from_secs(120))?;
        Ok(broker)
    }

    fn wait_ready(&self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        let log = self.log_path();
        while Instant::now() < deadline {
            let text = fs::read_to_string(&log).unwrap_or_default();
            if text.contains("Kafka Server started")
                && TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            {
                return Ok(());
            }
            if text.contains("Exiting Kafka") || text.contains("Address already in use") {
                return Err(tail(&log, 40));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("not ready within {within:?}:\n{}", tail(&log, 40)))
    }

    fn log_path(&self) -> PathBuf {
        self.supervisor.log_path("kafka")
    }

    /// The broker's output so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The temp dir of this broker.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `127.0.0.1:<port>` of the `PLAINTEXT` listener.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:<port>` of the `SASL_PLAINTEXT` listener.
    pub fn sasl_address(&self) -> String {
        format!("127.0.0.1:{}", self.sasl_port)
    }

    /// `127.0.0.1:<port>` of the `SSL` listener.
    pub fn tls_address(&self) -> String {
        format!("127.0.0.1:{}", self.tls_port)
    }

    /// `127.0.0.1:<port>` of the `MTLS` listener.
    pub fn mtls_address(&self) -> String {
        format!("127.0.0.1:{}", self.mtls_port)
    }

    /// Open client connections on `listener` (`PLAINTEXT`, `SASL_PLAINTEXT`, `SSL`), as the broker
    /// itself counts them: the `connection-count` of its `socket-server-metrics` over all network
    /// processors, read over JMX with Kafka's own `JmxTool`.
    pub fn connection_count(&self, listener: &str) -> usize {
        let out = Command::new("java")
            .args(jvm_flags())
            .arg("-cp")
            .arg(format!("{}/*", self.libs.display()))
            .arg("org.apache.kafka.tools.JmxTool")
            .args([
                "--jmx-url",
                &format!(
                    "service:jmx:rmi:///jndi/rmi://127.0.0.1:{}/jmxrmi",
                    self.jmx_port
                ),
                "--object-name",
                &format!(
                    "kafka.server:type=socket-server-metrics,listener={listener},networkProcessor=*"
                ),
                "--attributes",
                "connection-count",
                "--one-time",
                "true",
                "--report-format",
                "properties",
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "JmxTool failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        parse_connection_counts(&stdout).unwrap_or_else(|| {
            panic!(
                "no connection-count in JmxTool output: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }
}

/// Sums every `…connection-count=<n>` value in JmxTool's `properties` report.
fn parse_connection_counts(report: &str) -> Option<usize> {
    const KEY: &str = ":connection-count=";
    let mut total = None;
    let mut rest = report;
    while let Some(at) = rest.find(KEY) {
        rest = &rest[at + KEY.len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n = rest[..end].parse::<f64>().ok()?;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let n = n as usize;
        *total.get_or_insert(0) += n;
    }
    total
}

/// Small heap and quick startup: the machine is shared and a test broker holds little data.
fn jvm_flags() -> &'static [&'static str] {
    &[
        "-Xms128m",
        "-Xmx512m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-Xshare:auto",
    ]
}

/// `~/.cache/keda-rs/kafka-<version>/libs`, filled by `hack/fetch-kafka.sh` (run here when missing).
fn libs_dir() -> PathBuf {
    let version = std::env::var("KAFKA_VERSION").unwrap_or_else(|_| KAFKA_VERSION.to_owned());
    let cache = std::env::var_os("KEDA_RS_CACHE").map_or_else(
        || {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache")
                .join("keda-rs")
        },
        PathBuf::from,
    );
    let dir = cache.join(format!("kafka-{version}"));
    if !dir.join("complete").exists() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../hack/fetch-kafka.sh");
        let status = Command::new("bash")
            .arg(&script)
            .env("KAFKA_VERSION", &version)
            .stdout(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            status.success(),
            "{} failed; the Kafka jars are needed",
            script.display()
        );
    }
    dir.join("libs")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_counts_are_summed_over_processors() {
        let report = "time=1\nkafka.server:type=socket-server-metrics,listener=PLAINTEXT,networkProcessor=0:connection-count=0.0\nkafka.server:type=socket-server-metrics,listener=PLAINTEXT,networkProcessor=0:connection-count=2.0, kafka.server:type=socket-server-metrics,listener=PLAINTEXT,networkProcessor=1:connection-count=1.0}";
        assert_eq!(parse_connection_counts(report), Some(3));
        assert_eq!(parse_connection_counts("nothing"), None);
    }
}
