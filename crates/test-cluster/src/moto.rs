//! A real `moto_server` (PyPI `moto[server]`, installed by `hack/install-moto.sh` into a venv
//! cached in `~/.cache/keda-rs/moto-<version>/`) speaking the SQS wire API on a free loopback
//! port; killed on drop.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::redis::free_port;

/// The moto version `hack/install-moto.sh` installs.
pub const MOTO_VERSION: &str = "5.2.5";

/// One `moto_server` process.
pub struct MotoServer {
    child: Option<Child>,
    dir: TempDir,
    /// HTTP port.
    pub port: u16,
}

/// `$KEDA_RS_MOTO_DIR/bin/moto_server`, else the cached venv's, else `moto_server` on PATH.
fn moto_binary() -> PathBuf {
    if let Ok(dir) = std::env::var("KEDA_RS_MOTO_DIR") {
        return PathBuf::from(dir).join("bin/moto_server");
    }
    if let Ok(home) = std::env::var("HOME") {
        let cached = PathBuf::from(home)
            .join(".cache/keda-rs")
            .join(format!("moto-{MOTO_VERSION}"))
            .join("bin/moto_server");
        if cached.exists() {
            return cached;
        }
    }
    PathBuf::from("moto_server")
}

impl MotoServer {
    /// Starts the server and waits until it accepts connections (fails loudly after 60 s).
    pub fn start() -> Self {
        let mut last_log = String::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            let log = fs::File::create(dir.path().join("moto.log")).unwrap();
            let child = Command::new(moto_binary())
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::from(log.try_clone().unwrap()))
                .stderr(Stdio::from(log))
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot run moto_server ({}; run hack/install-moto.sh): {e}",
                        moto_binary().display()
                    )
                });
            let mut server = Self {
                child: Some(child),
                dir,
                port,
            };
            if server.wait_ready(Duration::from_secs(60)) {
                return server;
            }
            last_log = server.log();
            server.kill();
        }
        panic!("moto_server did not start:\n{last_log}");
    }

    fn wait_ready(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(child) = &mut self.child
                && let Ok(Some(_)) = child.try_wait()
            {
                return false;
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// `http://127.0.0.1:<port>`: the `awsEndpoint` of triggers.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("moto.log")).unwrap_or_default()
    }

    /// Kills the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        self.kill();
    }
}
