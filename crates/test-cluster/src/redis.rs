//! Real `redis-server` processes (Debian package `redis-server`) for tests: each on a free
//! loopback port in its own temp dir, killed on drop; and a test PKI made with rcgen. Shared by
//! the scaler tests and the end-to-end tests.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// A free loopback port (bound then released; a later bind may race, start() retries).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One `redis-server` process.
pub struct RedisServer {
    child: Option<Child>,
    dir: TempDir,
    /// Plain-TCP port (also used for admin commands when the server serves TLS too).
    pub port: u16,
    args: Vec<String>,
    password: Option<String>,
    config_file: Option<PathBuf>,
}

impl RedisServer {
    /// A plain server.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server with extra command-line arguments (`["--requirepass", "pw"]`, TLS options, …).
    pub fn start_with(extra: &[&str]) -> Self {
        Self::launch(extra.iter().map(ToString::to_string).collect(), None)
    }

    /// A sentinel (`redis-server <conf> --sentinel`) with `config` written to its own file.
    pub fn start_sentinel(config: &str) -> Self {
        Self::launch(vec!["--sentinel".into()], Some(config))
    }

    fn launch(extra: Vec<String>, sentinel_config: Option<&str>) -> Self {
        let password = extra
            .iter()
            .position(|a| a == "--requirepass")
            .and_then(|i| extra.get(i + 1).cloned());
        let mut last_log = String::new();
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let config_file = sentinel_config.map(|config| {
                let path = dir.path().join("sentinel.conf");
                fs::write(&path, config).unwrap();
                path
            });
            let mut server = Self {
                child: None,
                dir,
                port: free_port(),
                args: extra.clone(),
                password: password.clone(),
                config_file,
            };
            server.spawn();
            if server.wait_ready(Duration::from_secs(10)) {
                return server;
            }
            last_log = server.log();
        }
        panic!(
            "redis-server did not start (is the Debian package redis-server installed?):\n{last_log}"
        );
    }

    fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("redis.log"))
            .unwrap();
        let mut cmd = Command::new("redis-server");
        if let Some(conf) = &self.config_file {
            cmd.arg(conf);
        }
        if self.config_file.is_none() {
            cmd.args(["--save", ""]).args(["--appendonly", "no"]);
        }
        cmd.args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot run redis-server (apt-get install redis-server): {e}")
        });
        self.child = Some(child);
    }

    fn wait_ready(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(child) = &mut self.child
                && let Ok(Some(_)) = child.try_wait()
            {
                return false;
            }
            if self
                .try_command(&["PING"])
                .is_some_and(|r| r.contains("PONG"))
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// The temp dir of this server.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the process (a crash, as far as clients can tell).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process again on the same port, with an empty dataset.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
        assert!(
            self.wait_ready(Duration::from_secs(10)),
            "redis-server did not come back:\n{}",
            self.log()
        );
    }

    /// Runs one command on the plain port and returns the raw RESP reply.
    pub fn command(&self, args: &[&str]) -> String {
        self.try_command(args)
            .unwrap_or_else(|| panic!("redis command {args:?} failed:\n{}", self.log()))
    }

    /// Runs several commands in order on one connection (e.g. `SELECT` then `RPUSH`).
    pub fn commands(&self, commands: &[&[&str]]) -> Vec<String> {
        let mut stream = self.admin_stream().unwrap();
        commands
            .iter()
            .map(|args| round_trip(&mut stream, args).unwrap())
            .collect()
    }

    fn try_command(&self, args: &[&str]) -> Option<String> {
        let mut stream = self.admin_stream()?;
        round_trip(&mut stream, args)
    }

    fn admin_stream(&self) -> Option<TcpStream> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        if let Some(pw) = &self.password {
            let reply = round_trip(&mut stream, &["AUTH", pw])?;
            if !reply.starts_with("+OK") {
                return None;
            }
        }
        Some(stream)
    }

    /// Changes the password (`requirepass`) and drops every client connection, as a credential
    /// rotation does: existing sessions would otherwise stay authenticated.
    pub fn rotate_password(&mut self, new: &str) {
        let reply = self.command(&["CONFIG", "SET", "requirepass", new]);
        assert!(reply.starts_with("+OK"), "CONFIG SET requirepass: {reply}");
        self.password = Some(new.to_string());
        let _ = self.try_command(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"]);
    }

    /// Pushes `n` items onto `list` in database `db`.
    pub fn push(&self, db: u32, list: &str, n: usize) {
        let db = db.to_string();
        let mut push = vec!["RPUSH", list];
        let items: Vec<String> = (0..n).map(|i| format!("item-{i}")).collect();
        push.extend(items.iter().map(String::as_str));
        let replies = self.commands(&[&["SELECT", &db], &push]);
        assert!(replies[1].starts_with(':'), "RPUSH failed: {replies:?}");
    }

    /// Client connections of type `normal`, not counting the one asking.
    pub fn client_count(&self) -> usize {
        let reply = self.command(&["CLIENT", "LIST", "TYPE", "normal"]);
        reply
            .lines()
            .filter(|l| l.contains("addr="))
            .count()
            .saturating_sub(1)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Writes one RESP command and reads one whole reply (simple, error, integer, bulk or array of
/// bulk strings), returned as raw text.
fn round_trip(stream: &mut TcpStream, args: &[&str]) -> Option<String> {
    let mut request = format!("*{}\r\n", args.len());
    for a in args {
        request.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    stream.write_all(request.as_bytes()).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0_u8; 4096];
    loop {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(len) = complete_reply_len(&buf) {
            buf.truncate(len);
            return String::from_utf8(buf).ok();
        }
    }
}

/// Length of the first complete RESP value in `buf`, if complete.
fn complete_reply_len(buf: &[u8]) -> Option<usize> {
    let line_end = buf.windows(2).position(|w| w == b"\r\n")?;
    let header = std::str::from_utf8(&buf[1..line_end]).ok()?;
    let after = line_end + 2;
    match buf.first()? {
        b'+' | b'-' | b':' => Some(after),
        b'$' => {
            let len: i64 = header.parse().ok()?;
            if len < 0 {
                return Some(after);
            }
            let end = after + usize::try_from(len).ok()? + 2;
            (buf.len() >= end).then_some(end)
        }
        b'*' => {
            let count: i64 = header.parse().ok()?;
            let mut offset = after;
            for _ in 0..count.max(0) {
                offset += complete_reply_len(&buf[offset..])?;
            }
            Some(offset)
        }
        _ => None,
    }
}

/// A CA, a server certificate for 127.0.0.1/localhost and a client certificate, all PEM.
pub struct TestPki {
    pub ca_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

impl TestPki {
    pub fn generate() -> Self {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose,
        };
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "keda-rs test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, &ca_key);

        let server_key = KeyPair::generate().unwrap();
        let mut server_params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();

        let client_key = KeyPair::generate().unwrap();
        let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        client_params
            .distinguished_name
            .push(DnType::CommonName, "keda-rs test client");
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = client_params.signed_by(&client_key, &issuer).unwrap();

        Self {
            ca_pem: ca_cert.pem(),
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
            client_cert_pem: client_cert.pem(),
            client_key_pem: client_key.serialize_pem(),
        }
    }

    /// Writes the server-side files into `dir` and returns redis-server TLS arguments for `tls_port`.
    pub fn server_args(&self, dir: &Path, tls_port: u16, auth_clients: bool) -> Vec<String> {
        let write = |name: &str, pem: &str| {
            let path = dir.join(name);
            fs::write(&path, pem).unwrap();
            path.to_string_lossy().into_owned()
        };
        vec![
            "--tls-port".into(),
            tls_port.to_string(),
            "--tls-cert-file".into(),
            write("server.crt", &self.server_cert_pem),
            "--tls-key-file".into(),
            write("server.key", &self.server_key_pem),
            "--tls-ca-cert-file".into(),
            write("ca.crt", &self.ca_pem),
            "--tls-auth-clients".into(),
            if auth_clients { "yes" } else { "no" }.into(),
        ]
    }
}
