//! `keda-rs-cluster`: start or stop the local test control plane.
//!
//! `up` runs in the foreground until SIGINT/SIGTERM (or stdin closes, with --stop-on-stdin-eof),
//! prints the kubeconfig path, and writes `<dir>/ready` and `<dir>/up.pid`. `down --dir` stops a
//! running `up` and waits until its processes are gone.

// Test tooling (like the library it drives): its own environment and the wall clock are fine.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io::BufRead;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use test_cluster::{ControlPlane, Options};

#[derive(Parser)]
#[command(
    name = "keda-rs-cluster",
    about = "A real local Kubernetes control plane for keda-rs tests and demos"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start etcd, kube-apiserver, kube-controller-manager, kube-scheduler and KWOK.
    Up {
        /// State folder (certificates, data, logs, kubeconfig); a temporary one when omitted.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Number of KWOK fake nodes.
        #[arg(long, default_value_t = 2)]
        nodes: usize,
        /// HPA controller sync period, in seconds.
        #[arg(long, default_value_t = 2.0)]
        hpa_sync_period: f64,
        /// Also stop when standard input reaches end of file.
        #[arg(long)]
        stop_on_stdin_eof: bool,
    },
    /// Stop the control plane started with `up --dir DIR`.
    Down {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Build (or find in the cache) the control-plane binaries and print their folder.
    Build,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Up {
            dir,
            nodes,
            hpa_sync_period,
            stop_on_stdin_eof,
        } => up(dir, nodes, hpa_sync_period, stop_on_stdin_eof),
        Command::Down { dir } => down(&dir),
        Command::Build => {
            println!("{}", test_cluster::control_plane::binaries_dir()?.display());
            Ok(())
        }
    }
}

fn up(
    dir: Option<PathBuf>,
    nodes: usize,
    hpa_sync_period: f64,
    stop_on_stdin_eof: bool,
) -> anyhow::Result<()> {
    let options = Options {
        dir,
        nodes,
        hpa_sync_period: Duration::from_secs_f64(hpa_sync_period.max(0.1)),
        bin_dir: None,
    };
    let mut plane = ControlPlane::start(&options)?;
    let state = plane.dir().to_path_buf();
    std::fs::write(state.join("up.pid"), std::process::id().to_string())?;
    let pids: Vec<String> = plane
        .pids()
        .iter()
        .map(|(n, p)| format!("{n} {p}"))
        .collect();
    std::fs::write(state.join("pids"), pids.join("\n"))?;
    std::fs::write(state.join("ready"), plane.server())?;
    println!("kubeconfig: {}", plane.kubeconfig_path().display());
    println!("export KUBECONFIG={}", plane.kubeconfig_path().display());

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let reason = runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let stdin_closed = async {
            if stop_on_stdin_eof {
                let _ = tokio::task::spawn_blocking(|| {
                    let mut line = String::new();
                    while std::io::stdin()
                        .lock()
                        .read_line(&mut line)
                        .map(|n| n > 0)
                        .unwrap_or(false)
                    {
                        line.clear();
                    }
                })
                .await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let mut stdin_closed = std::pin::pin!(stdin_closed);
        let mut health = tokio::time::interval(Duration::from_secs(2));
        let reason = loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break "interrupted".to_string(),
                _ = term.recv() => break "terminated".to_string(),
                () = &mut stdin_closed => break "stdin closed".to_string(),
                _ = health.tick() => {
                    if let Err(e) = plane.check_alive() {
                        break format!("a component failed: {e}");
                    }
                }
            }
        };
        anyhow::Ok(reason)
    })?;
    eprintln!("stopping the control plane ({reason})");
    let _ = std::fs::remove_file(state.join("ready"));
    plane.stop();
    let _ = std::fs::remove_file(state.join("up.pid"));
    Ok(())
}

fn down(dir: &std::path::Path) -> anyhow::Result<()> {
    let pid_file = dir.join("up.pid");
    let pid: i32 = match std::fs::read_to_string(&pid_file) {
        Ok(text) => text.trim().parse().context("up.pid does not hold a pid")?,
        Err(_) => {
            eprintln!("no control plane is running from {}", dir.display());
            return Ok(());
        }
    };
    let pid = Pid::from_raw(pid);
    if kill(pid, Signal::SIGTERM).is_err() {
        let _ = std::fs::remove_file(&pid_file);
        return Ok(());
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while kill(pid, None).is_ok() {
        if Instant::now() > deadline {
            bail!("keda-rs-cluster up (pid {pid}) did not stop within 30 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
