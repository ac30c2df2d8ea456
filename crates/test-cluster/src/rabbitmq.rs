//! A real RabbitMQ node (Debian package `rabbitmq-server`, management plugin enabled) for tests:
//! its own epmd on a free port, its own node name, cookie (HOME), Mnesia and log dirs, AMQP and
//! management listeners on free loopback ports; the whole process group is killed on drop. Setup
//! (vhosts, queues, publishing) goes through the management HTTP API.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::redis::{TestPki, free_port};

/// The default user; `loopback_users = none` lets it log in over 127.0.0.1.
pub const USER: &str = "guest";
/// Its password.
pub const PASSWORD: &str = "guest";

/// One RabbitMQ node.
pub struct RabbitMqServer {
    dir: TempDir,
    epmd: Option<Child>,
    server: Option<Child>,
    /// AMQP port.
    pub amqp_port: u16,
    /// Management HTTP port.
    pub management_port: u16,
    /// AMQP over TLS port (nodes from [`RabbitMqServer::start_tls`]).
    pub amqps_port: Option<u16>,
    /// Management HTTPS port (nodes from [`RabbitMqServer::start_tls`]).
    pub management_tls_port: Option<u16>,
    http: ureq::Agent,
}

fn server_script() -> PathBuf {
    // The Debian wrapper in /usr/sbin switches to the rabbitmq user; the real script runs as us.
    let direct = PathBuf::from("/usr/lib/rabbitmq/bin/rabbitmq-server");
    if direct.exists() {
        direct
    } else {
        PathBuf::from("rabbitmq-server")
    }
}

impl RabbitMqServer {
    /// Starts a node and waits until its management API answers (fails loudly after 120 s).
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Like [`RabbitMqServer::start`], plus AMQPS and management HTTPS listeners with `pki`'s server
    /// certificate; client certificates signed by its CA are verified when presented, not required.
    pub fn start_tls(pki: &TestPki) -> Self {
        Self::start_with(Some(pki))
    }

    fn start_with(pki: Option<&TestPki>) -> Self {
        let mut last_log = String::new();
        for _ in 0..3 {
            let mut server = Self::spawn(pki);
            if server.wait_ready(Duration::from_secs(120)) {
                return server;
            }
            last_log = server.log();
            server.kill();
        }
        panic!(
            "rabbitmq-server did not start (is the Debian package rabbitmq-server installed?):\n{last_log}"
        );
    }

    fn spawn(pki: Option<&TestPki>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let amqp_port = free_port();
        let management_port = free_port();
        let dist_port = free_port();
        let epmd_port = free_port();
        let node = format!("keda-rs-test-{amqp_port}@localhost");
        let mut conf = format!(
            "listeners.tcp.1 = 127.0.0.1:{amqp_port}\n\
             management.tcp.port = {management_port}\n\
             management.tcp.ip = 127.0.0.1\n\
             loopback_users = none\n\
             collect_statistics_interval = 500\n\
             log.file.level = info\n"
        );
        let (mut amqps_port, mut management_tls_port) = (None, None);
        if let Some(pki) = pki {
            let write = |name: &str, pem: &str| {
                let path = dir.path().join(name);
                fs::write(&path, pem).unwrap();
                path.to_string_lossy().into_owned()
            };
            let ca = write("ca.pem", &pki.ca_pem);
            let cert = write("server.pem", &pki.server_cert_pem);
            let key = write("server-key.pem", &pki.server_key_pem);
            let (tls_port, https_port) = (free_port(), free_port());
            for prefix in ["ssl_options", "management.ssl"] {
                conf.push_str(&format!(
                    "{prefix}.cacertfile = {ca}\n{prefix}.certfile = {cert}\n{prefix}.keyfile = {key}\n"
                ));
            }
            conf.push_str(&format!(
                "listeners.ssl.1 = 127.0.0.1:{tls_port}\n\
                 ssl_options.verify = verify_peer\n\
                 ssl_options.fail_if_no_peer_cert = false\n\
                 management.ssl.port = {https_port}\n\
                 management.ssl.ip = 127.0.0.1\n"
            ));
            amqps_port = Some(tls_port);
            management_tls_port = Some(https_port);
        }
        fs::write(dir.path().join("rabbitmq.conf"), conf).unwrap();
        fs::write(
            dir.path().join("enabled_plugins"),
            "[rabbitmq_management].\n",
        )
        .unwrap();
        let log = fs::File::create(dir.path().join("server.out")).unwrap();

        // A private epmd, so the node neither depends on nor leaves behind a system-wide one.
        let epmd = Command::new("epmd")
            .args(["-port", &epmd_port.to_string()])
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run epmd (apt-get install rabbitmq-server): {e}"));
        std::thread::sleep(Duration::from_millis(200));

        let d = dir.path();
        let mut command = Command::new(server_script());
        command
            .env("HOME", d)
            .env("ERL_EPMD_PORT", epmd_port.to_string())
            .env("RABBITMQ_NODENAME", &node)
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_PLUGINS_EXPAND_DIR", d.join("plugins-expand"))
            .env("RABBITMQ_PID_FILE", d.join("pid"))
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env_remove("RABBITMQ_ALLOW_INPUT")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        // Its own process group: the script, erl and beam all go down with one signal.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let server = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run rabbitmq-server: {e}"));
        Self {
            dir,
            epmd: Some(epmd),
            server: Some(server),
            amqp_port,
            management_port,
            amqps_port,
            management_tls_port,
            http: ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(30)))
                .http_status_as_error(false)
                .build()
                .into(),
        }
    }

    fn wait_ready(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(child) = &mut self.server
                && let Ok(Some(_)) = child.try_wait()
            {
                return false;
            }
            if self.try_get("/api/overview").is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        false
    }

    /// The node's stdout and log files so far.
    pub fn log(&self) -> String {
        let mut text = fs::read_to_string(self.dir.path().join("server.out")).unwrap_or_default();
        if let Ok(entries) = fs::read_dir(self.dir.path().join("log")) {
            for entry in entries.flatten() {
                text.push_str(&fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
        text
    }

    /// The temp dir of this node.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `amqp://guest:guest@127.0.0.1:<port>/<vhost>` (`vhost` already escaped; empty = the default
    /// vhost, no path).
    pub fn amqp_url(&self, vhost: &str) -> String {
        let path = if vhost.is_empty() {
            String::new()
        } else {
            format!("/{vhost}")
        };
        format!(
            "amqp://{USER}:{PASSWORD}@127.0.0.1:{}{path}",
            self.amqp_port
        )
    }

    /// `http://guest:guest@127.0.0.1:<management port>/<vhost>` (`vhost` already escaped).
    pub fn management_url(&self, vhost: &str) -> String {
        format!(
            "http://{USER}:{PASSWORD}@127.0.0.1:{}/{vhost}",
            self.management_port
        )
    }

    fn api(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.management_port)
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, String), String> {
        let url = self.api(path);
        let auth = format!(
            "Basic {}",
            base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                format!("{USER}:{PASSWORD}")
            )
        );
        let result = match (method, body) {
            ("GET", _) => self.http.get(&url).header("authorization", &auth).call(),
            ("DELETE", _) => self.http.delete(&url).header("authorization", &auth).call(),
            (m, body) => {
                let body = body.map(Value::to_string).unwrap_or_default();
                let builder = if m == "PUT" {
                    self.http.put(&url)
                } else {
                    self.http.post(&url)
                };
                builder
                    .header("authorization", &auth)
                    .header("content-type", "application/json")
                    .send(body.as_str())
            }
        };
        let mut response = result.map_err(|e| format!("{method} {path}: {e}"))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("{method} {path}: {e}"))?;
        Ok((status, text))
    }

    fn try_get(&self, path: &str) -> Option<Value> {
        match self.request("GET", path, None) {
            Ok((200, text)) => serde_json::from_str(&text).ok(),
            _ => None,
        }
    }

    /// GETs a management API path (e.g. `/api/connections`) as JSON.
    pub fn get(&self, path: &str) -> Value {
        self.try_get(path)
            .unwrap_or_else(|| panic!("GET {path} failed on the RabbitMQ management API"))
    }

    fn send(&self, method: &str, path: &str, body: &Value) -> Value {
        let (status, text) = self.request(method, path, Some(body)).unwrap();
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {text}"
        );
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Creates `vhost` and gives the default user full permissions on it.
    pub fn create_vhost(&self, vhost: &str) {
        let v = escape(vhost);
        self.send("PUT", &format!("/api/vhosts/{v}"), &json!({}));
        self.send(
            "PUT",
            &format!("/api/permissions/{v}/{USER}"),
            &json!({"configure": ".*", "write": ".*", "read": ".*"}),
        );
    }

    /// Declares a non-durable classic queue.
    pub fn declare_queue(&self, vhost: &str, queue: &str) {
        self.send(
            "PUT",
            &format!("/api/queues/{}/{}", escape(vhost), escape(queue)),
            &json!({"durable": false, "auto_delete": false}),
        );
    }

    /// Publishes `n` messages to `queue` through the default exchange.
    pub fn publish(&self, vhost: &str, queue: &str, n: usize) {
        let path = format!("/api/exchanges/{}/amq.default/publish", escape(vhost));
        for i in 0..n {
            let answer = self.send(
                "POST",
                &path,
                &json!({"properties": {}, "routing_key": queue, "payload": format!("m{i}"),
                        "payload_encoding": "string"}),
            );
            assert_eq!(
                answer["routed"],
                json!(true),
                "message to {queue} not routed"
            );
        }
    }

    /// Removes every message of `queue`.
    pub fn purge(&self, vhost: &str, queue: &str) {
        let path = format!("/api/queues/{}/{}/contents", escape(vhost), escape(queue));
        let (status, text) = self.request("DELETE", &path, None).unwrap();
        assert!(
            (200..300).contains(&status),
            "purge {queue}: {status} {text}"
        );
    }

    /// The management API's view of `queue`.
    pub fn queue_info(&self, vhost: &str, queue: &str) -> Value {
        self.get(&format!("/api/queues/{}/{}", escape(vhost), escape(queue)))
    }

    /// Waits until the management API reports `messages` and `messages_ready` for `queue` (its
    /// counters lag by a statistics interval).
    pub fn wait_for_counts(&self, vhost: &str, queue: &str, messages: i64, ready: i64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let info = self.queue_info(vhost, queue);
            if info["messages"] == json!(messages) && info["messages_ready"] == json!(ready) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{queue}: wanted messages={messages} ready={ready}, management API says {info}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Client connections the broker has open (`/api/connections`; listed after a statistics
    /// interval).
    pub fn connection_count(&self) -> usize {
        self.get("/api/connections").as_array().map_or(0, Vec::len)
    }

    /// Closes every client connection from the broker's side (as a broker restart or an operator's
    /// `rabbitmqctl close_connection` would). Returns how many it closed.
    pub fn close_all_connections(&self) -> usize {
        let connections = self.get("/api/connections");
        let names: Vec<String> = connections
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        for name in &names {
            let (status, text) = self
                .request(
                    "DELETE",
                    &format!("/api/connections/{}", escape(name)),
                    None,
                )
                .unwrap();
            assert!(
                (200..300).contains(&status),
                "close {name}: {status} {text}"
            );
        }
        names.len()
    }

    /// Kills the node's process group and its epmd.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.server.take() {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(mut epmd) = self.epmd.take() {
            let _ = epmd.kill();
            let _ = epmd.wait();
        }
    }
}

impl Drop for RabbitMqServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Percent-encodes a path segment of the management API (`/` → `%2F`).
pub fn escape(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
