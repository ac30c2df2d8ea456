//! Real `prometheus` processes (Debian package `prometheus`) for tests: each on a free loopback
//! port with its own data dir and config, scraping the targets the test serves every second, killed
//! on drop. Optionally behind basic auth through Prometheus' own web config.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::redis::{TestPki, free_port};

/// Basic-auth user of [`PrometheusServer::start_with_basic_auth`].
pub const BASIC_USER: &str = "keda";
/// Its password.
pub const BASIC_PASSWORD: &str = "prom-secret";
/// bcrypt of [`BASIC_PASSWORD`] (cost 4), as Prometheus' web config wants it. Made with
/// `python3 -c "import crypt; print(crypt.crypt('prom-secret', crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))"`.
const BASIC_PASSWORD_BCRYPT: &str = "$2b$04$QtUGRPYf.oNBBScTOkL2huWbQ8S4zQD3UEVeBH9avoLpr8.FuWzPK";

/// How the HTTP API is protected (Prometheus' `--web.config.file`).
enum Web<'a> {
    Plain,
    BasicAuth,
    /// HTTPS with this PKI's server certificate, requiring a client certificate it signed.
    MutualTls(&'a TestPki),
}

/// One `prometheus` process.
pub struct PrometheusServer {
    child: Child,
    dir: TempDir,
    /// HTTP port on 127.0.0.1.
    pub port: u16,
    basic_auth: bool,
    tls: bool,
}

impl PrometheusServer {
    /// Scrapes `targets` (`host:port`, path `/metrics`) every second.
    pub fn start(targets: &[String]) -> Self {
        Self::launch(targets, &Web::Plain)
    }

    /// Serves HTTPS only, with `pki`'s server certificate, and requires a client certificate
    /// signed by `pki`'s CA. [`PrometheusServer::get`] does not work on it; use `vector(…)` queries.
    pub fn start_with_mutual_tls(pki: &TestPki) -> Self {
        Self::launch(&[], &Web::MutualTls(pki))
    }

    /// Same, with the HTTP API behind basic auth ([`BASIC_USER`] / [`BASIC_PASSWORD`]).
    pub fn start_with_basic_auth(targets: &[String]) -> Self {
        Self::launch(targets, &Web::BasicAuth)
    }

    fn launch(targets: &[String], web: &Web<'_>) -> Self {
        let mut last_log = String::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let list = targets
                .iter()
                .map(|t| format!("'{t}'"))
                .collect::<Vec<_>>()
                .join(", ");
            fs::write(
                dir.path().join("prometheus.yml"),
                format!(
                    "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: test\n    scrape_interval: 1s\n    static_configs:\n      - targets: [{list}]\n"
                ),
            )
            .unwrap();
            let port = free_port();
            let log = fs::File::create(dir.path().join("prometheus.log")).unwrap();
            let mut cmd = Command::new("prometheus");
            cmd.arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
            let web_config = match web {
                Web::Plain => None,
                Web::BasicAuth => Some(format!(
                    "basic_auth_users:\n  {BASIC_USER}: '{BASIC_PASSWORD_BCRYPT}'\n"
                )),
                Web::MutualTls(pki) => {
                    let write = |name: &str, pem: &str| {
                        let path = dir.path().join(name);
                        fs::write(&path, pem).unwrap();
                        path.display().to_string()
                    };
                    Some(format!(
                        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\n",
                        write("server.crt", &pki.server_cert_pem),
                        write("server.key", &pki.server_key_pem),
                        write("ca.crt", &pki.ca_pem),
                    ))
                }
            };
            if let Some(config) = web_config {
                let path = dir.path().join("web.yml");
                fs::write(&path, config).unwrap();
                cmd.arg(format!("--web.config.file={}", path.display()));
            }
            let child = cmd.spawn().unwrap_or_else(|e| {
                panic!("cannot run prometheus (apt-get install prometheus): {e}")
            });
            let mut server = Self {
                child,
                dir,
                port,
                basic_auth: matches!(web, Web::BasicAuth),
                tls: matches!(web, Web::MutualTls(_)),
            };
            if server.wait_ready(Duration::from_secs(30)) {
                return server;
            }
            last_log = server.log();
        }
        panic!(
            "prometheus did not start (is the Debian package prometheus installed?):\n{last_log}"
        );
    }

    fn wait_ready(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            let ready = if self.tls {
                self.log()
                    .contains("Server is ready to receive web requests")
            } else {
                self.get("/-/ready").is_some_and(|(s, _)| s == 200)
            };
            if ready {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// `http://127.0.0.1:<port>` (`https://localhost:<port>` with TLS, matching the certificate).
    pub fn url(&self) -> String {
        if self.tls {
            format!("https://localhost:{}", self.port)
        } else {
            format!("http://127.0.0.1:{}", self.port)
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// A GET on the server (with the basic-auth credentials if it wants them): status and body.
    pub fn get(&self, path_and_query: &str) -> Option<(u16, String)> {
        if self.tls {
            return None;
        }
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let auth = if self.basic_auth {
            use base64::Engine;
            let token = base64::engine::general_purpose::STANDARD
                .encode(format!("{BASIC_USER}:{BASIC_PASSWORD}"));
            format!("Authorization: Basic {token}\r\n")
        } else {
            String::new()
        };
        write!(
            stream,
            "GET {path_and_query} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n"
        )
        .ok()?;
        let mut raw = String::new();
        stream.read_to_string(&mut raw).ok()?;
        let status = raw.split_whitespace().nth(1)?.parse().ok()?;
        let body = raw.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
        // Prometheus answers small bodies unchunked with Connection: close; chunked ones are
        // de-chunked crudely (enough for the JSON/text the tests read).
        let body = if raw
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(&body)
        } else {
            body
        };
        Some((status, body))
    }

    /// How many `/api/v1/query` requests the server has answered (its own counter).
    pub fn query_requests(&self) -> f64 {
        let (_, body) = self.get("/metrics").unwrap();
        body.lines()
            .filter(|l| {
                l.starts_with("prometheus_http_requests_total{")
                    && l.contains("handler=\"/api/v1/query\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Waits until the instant query `query` answers with a body containing `needle`.
    pub fn wait_for(&self, query: &str, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        let escaped = query
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>();
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Some((200, body)) = self.get(&format!("/api/v1/query?query={escaped}")) {
                if body.contains(needle) {
                    return;
                }
                last = body;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "prometheus query {query:?} never contained {needle:?}; last answer {last}\n{}",
            self.log()
        );
    }
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
