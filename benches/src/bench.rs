//! `keda-rs-bench`: measures the keda-rs operator on a real local control plane, following
//! /work/shared/spec/benchmark-protocol.md (workload "redis-list-N").
//!
//! ```sh
//! keda-rs-bench redis-list --objects 1000 --window-secs 300 --out bench-results/redis-list-1000.md
//! ```
//!
//! The operator runs as a separate process (`target/release/keda-rs operator`) so /proc gives its
//! memory and CPU alone. Everything the bench starts (control plane, redis-server, operator) is
//! stopped again at the end, also when a step fails.

// Benchmark tooling, not product: run metadata comes from its environment, and it measures by
// the wall clock.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod http;
mod procfs;
mod report;
mod resp;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "keda-rs-bench", about = "Benchmarks of the keda-rs operator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The protocol's "redis-list-N" workload: N lists, N Deployments, N ScaledObjects.
    RedisList(RedisListArgs),
}

#[derive(clap::Args, Clone, Debug)]
pub struct RedisListArgs {
    /// N: lists, Deployments and ScaledObjects to create.
    #[arg(long)]
    pub objects: usize,
    /// Length of the measurement window, after the warm-up (the protocol asks for ≥ 300).
    #[arg(long, default_value_t = 300)]
    pub window_secs: u64,
    /// Where the markdown results go.
    #[arg(long)]
    pub out: PathBuf,
    /// Items in each list (the protocol fixes 3: every object active; 0 makes every object
    /// inactive, for comparison only).
    #[arg(long, default_value_t = 3)]
    pub items: usize,
    /// pollingInterval of every ScaledObject (the protocol fixes 30).
    #[arg(long, default_value_t = 30)]
    pub polling_interval: u64,
    /// Warm-up after every object is Ready, in polling intervals.
    #[arg(long, default_value_t = 2)]
    pub warmup_intervals: u64,
    /// Seconds of sampling the operator with no objects (the idle baseline).
    #[arg(long, default_value_t = 20)]
    pub idle_secs: u64,
    /// Sequential metric reads per path (direct and through the apiserver).
    #[arg(long, default_value_t = 1000)]
    pub reads: usize,
    /// Rounds of those reads (the machine is shared: the median round is compared).
    #[arg(long, default_value_t = 3)]
    pub read_rounds: usize,
    /// Activation-latency trials (0 skips them).
    #[arg(long, default_value_t = 20)]
    pub activation_trials: usize,
    /// Creates in flight at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Give up waiting for every ScaledObject to be Ready after this many seconds.
    #[arg(long, default_value_t = 900)]
    pub ready_timeout_secs: u64,
    /// The keda-rs binary; defaults to `keda-rs` next to this binary (target/release).
    #[arg(long)]
    pub operator_bin: Option<PathBuf>,
    /// Folder for the operator's log and other run files (default: a new temp folder, kept).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
}

impl RedisListArgs {
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.polling_interval)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::RedisList(args) => match workload::run(&args) {
            Ok(ok) => {
                if ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
            Err(e) => {
                eprintln!("keda-rs-bench: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}
