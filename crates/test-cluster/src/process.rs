//! Child processes of one control plane: one process group, logs to files, a graceful stop, and a
//! watchdog that kills the group if the owner dies without stopping it (a test binary exiting,
//! a SIGKILLed `keda-rs-cluster up`), so nothing is ever left behind.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::Error;

pub struct Supervisor {
    log_dir: PathBuf,
    group: Option<i32>,
    children: Vec<(String, Child)>,
    /// Closing this pipe (on purpose or because we died) tells the watchdog to clean up.
    watchdog: Option<(Child, ChildStdin)>,
    /// Removed by the watchdog once the group is gone, when we own it.
    remove_on_exit: Option<PathBuf>,
}

impl Supervisor {
    pub fn new(log_dir: &Path, remove_on_exit: Option<PathBuf>) -> Result<Self, Error> {
        std::fs::create_dir_all(log_dir).map_err(|e| Error::io(log_dir, e))?;
        Ok(Self {
            log_dir: log_dir.to_path_buf(),
            group: None,
            children: Vec::new(),
            watchdog: None,
            remove_on_exit,
        })
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        self.log_dir.join(format!("{name}.log"))
    }

    /// Starts `program` with `args`, its output in `<log_dir>/<name>.log`.
    pub fn spawn(&mut self, name: &str, program: &Path, args: &[String]) -> Result<(), Error> {
        let log_path = self.log_path(name);
        let log = File::create(&log_path).map_err(|e| Error::io(&log_path, e))?;
        let err_log = log.try_clone().map_err(|e| Error::io(&log_path, e))?;
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            // Nothing a test starts may talk to a proxy or beyond loopback.
            .env("NO_PROXY", "127.0.0.1,localhost,::1")
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env_remove("http_proxy")
            .env_remove("https_proxy");
        std::os::unix::process::CommandExt::process_group(&mut command, self.group.unwrap_or(0));
        let child = command.spawn().map_err(|e| Error::Spawn {
            name: name.to_string(),
            program: program.to_path_buf(),
            source: e,
        })?;
        if self.group.is_none() {
            let pgid = i32::try_from(child.id()).unwrap_or(i32::MAX);
            self.group = Some(pgid);
            self.start_watchdog(pgid)?;
        }
        self.children.push((name.to_string(), child));
        Ok(())
    }

    fn start_watchdog(&mut self, pgid: i32) -> Result<(), Error> {
        // procps `kill` (via env): dash's builtin cannot signal a process group.
        let script = r#"read _; env kill -s TERM -- "-$0" 2>/dev/null; i=0
while env kill -s 0 -- "-$0" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
env kill -s KILL -- "-$0" 2>/dev/null; [ -n "$1" ] && rm -rf -- "$1"; exit 0"#;
        let remove = self
            .remove_on_exit
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let mut command = Command::new("sh");
        command
            .args(["-c", script, &pgid.to_string(), &remove])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command.spawn().map_err(|e| Error::Spawn {
            name: "watchdog".into(),
            program: "sh".into(),
            source: e,
        })?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| Error::Other("watchdog has no stdin".into()))?;
        self.watchdog = Some((child, stdin));
        Ok(())
    }

    /// Fails with the log tail when a child has already exited.
    pub fn check_alive(&mut self) -> Result<(), Error> {
        for (name, child) in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                let log = self.log_dir.join(format!("{name}.log"));
                return Err(Error::Exited {
                    name: name.clone(),
                    status: status.to_string(),
                    log_tail: tail(&log, 30),
                    log,
                });
            }
        }
        Ok(())
    }

    pub fn pids(&self) -> Vec<(String, u32)> {
        self.children
            .iter()
            .map(|(n, c)| (n.clone(), c.id()))
            .collect()
    }

    /// SIGTERM in reverse start order, SIGKILL whatever is still running after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        while let Some((name, mut child)) = self.children.pop() {
            let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
            if matches!(child.try_wait(), Ok(None)) {
                let _ = kill(pid, Signal::SIGTERM);
                let deadline = Instant::now() + grace;
                while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                if matches!(child.try_wait(), Ok(None)) {
                    tracing::warn!(%name, "did not stop within {grace:?}; killing it");
                    let _ = child.kill();
                }
            }
            let _ = child.wait();
        }
        if let Some(pgid) = self.group.take() {
            // Anything a child started in our group goes too.
            let _ = kill(Pid::from_raw(-pgid), Signal::SIGKILL);
        }
        if let Some((mut watchdog, mut stdin)) = self.watchdog.take() {
            let _ = stdin.write_all(b"\n");
            drop(stdin);
            let _ = watchdog.wait();
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
