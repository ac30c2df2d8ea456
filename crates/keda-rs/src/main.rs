//! The `keda-rs` binary: one process for the operator and the tools around it.

mod cmd;
mod config;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "keda-rs",
    version,
    about = "KEDA, the Kubernetes event-driven autoscaler, in Rust"
)]
struct Cli {
    #[command(flatten)]
    global: config::GlobalFlags,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator: controllers, scale loops and the external-metrics API.
    Operator(Box<cmd::operator::Args>),
    /// Print the four keda.sh CustomResourceDefinitions as multi-document YAML.
    Crds(cmd::crds::Args),
    /// Check KEDA manifests offline; exit 0 when valid, 1 when any object is invalid, 2 on unreadable input.
    Validate(cmd::validate::Args),
    /// List the trigger types built in; `--schema` prints their parameters as KEDA's scalers-schema.yaml does.
    Scalers(cmd::scalers::Args),
    /// Print version information.
    Version,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            cli.global
                .log
                .as_deref()
                .and_then(|filter| tracing_subscriber::EnvFilter::try_new(filter).ok())
                .unwrap_or_else(|| "info,kube_client=warn,kube_runtime=warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colour only on a terminal: `kubectl logs` and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command {
        Command::Operator(args) => cmd::operator::run(&args),
        Command::Crds(args) => cmd::crds::run(&args),
        Command::Validate(args) => cmd::validate::run(&args),
        Command::Scalers(args) => cmd::scalers::run(&args),
        Command::Version => {
            println!(
                "keda-rs {} (API {}, KEDA v2.20 compatible)",
                env!("CARGO_PKG_VERSION"),
                keda_api::API_VERSION
            );
            ExitCode::SUCCESS
        }
    }
}
