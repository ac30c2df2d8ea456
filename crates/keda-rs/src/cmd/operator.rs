//! `keda-rs operator`: the controllers, the scale loops and the external-metrics API in one
//! process, against the cluster of the current kubeconfig or in-cluster configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use keda_operator::metrics_api::TlsMaterial;
use keda_operator::operator::{self, MetricsApiOptions};
use keda_operator::telemetry::{self, BuildInfo, Telemetry, TelemetryServer};

use crate::config::OperatorFlags;

#[derive(clap::Args)]
pub struct Args {
    /// Settings that build the operator's configuration, with their environment variables.
    #[command(flatten)]
    config: OperatorFlags,
    /// Where the external-metrics API listens.
    #[arg(long, default_value = "0.0.0.0:6443")]
    metrics_api_bind_address: SocketAddr,
    /// Service the aggregator reaches the external-metrics API through.
    #[arg(long, default_value = "keda-metrics-apiserver")]
    metrics_server_service_name: String,
    /// Folder with tls.crt, tls.key and ca.crt for the external-metrics API; self-signed if absent.
    #[arg(long)]
    cert_dir: Option<PathBuf>,
    /// Write our CA into APIService v1beta1.external.metrics.k8s.io at start.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    enable_apiservice_patching: bool,
    /// Require the aggregator's front-proxy client certificate on metric reads.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    authenticate_aggregator: bool,
    /// Where the Prometheus metrics endpoint (`/metrics`, plain HTTP) listens; "0" disables it.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_bind_address: String,
    /// Where the health probes (`/healthz`, `/readyz`, plain HTTP) listen; "0" disables them.
    #[arg(long, default_value = "0.0.0.0:8081")]
    health_probe_bind_address: String,
}

pub fn run(args: &Args) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("keda-rs operator: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run_async(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keda-rs operator: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn client(kubeconfig: Option<&PathBuf>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    Ok(kube::Client::try_from(config)?)
}

fn load_tls(dir: &std::path::Path) -> anyhow::Result<(TlsMaterial, String)> {
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .with_context(|| format!("reading {}", dir.join(f).display()))
    };
    Ok((
        TlsMaterial {
            cert_pem: read("tls.crt")?,
            key_pem: read("tls.key")?,
        },
        read("ca.crt")?,
    ))
}

/// Binds the telemetry servers (before anything else starts, so a taken port fails fast).
async fn bind_telemetry(
    args: &Args,
) -> anyhow::Result<(Option<TelemetryServer>, Option<TelemetryServer>)> {
    let bind = |flag: &str, value: &str| -> anyhow::Result<Option<std::net::SocketAddr>> {
        telemetry::parse_bind_address(value).with_context(|| format!("--{flag} {value:?}"))
    };
    let metrics = match bind("metrics-bind-address", &args.metrics_bind_address)? {
        Some(addr) => Some(
            TelemetryServer::bind(addr)
                .await
                .with_context(|| format!("metrics endpoint on {addr}"))?,
        ),
        None => None,
    };
    let probes = match bind("health-probe-bind-address", &args.health_probe_bind_address)? {
        Some(addr) => Some(
            TelemetryServer::bind(addr)
                .await
                .with_context(|| format!("health probes on {addr}"))?,
        ),
        None => None,
    };
    Ok((metrics, probes))
}

async fn run_async(args: &Args) -> anyhow::Result<()> {
    let (metrics_server, probes_server) = bind_telemetry(args).await?;
    let client = client(args.config.kubeconfig.as_ref()).await?;
    let tls = args.cert_dir.as_deref().map(load_tls).transpose()?;
    // A bad KEDA_BOUND_SERVICE_ACCOUNT_TOKEN_EXPIRY stops the operator here, as it stops KEDA.
    let config = args.config.operator_config()?;
    let handle = operator::start(
        client,
        config,
        MetricsApiOptions {
            bind: args.metrics_api_bind_address,
            service: args.metrics_server_service_name.clone(),
            namespace: args.config.pod_namespace.clone(),
            tls,
            patch_apiservice: args.enable_apiservice_patching,
            authenticate_aggregator: args.authenticate_aggregator,
        },
    )
    .await?;
    let (stop_telemetry, telemetry_stopped) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = telemetry_stopped.clone();
        async move {
            let _ = rx.wait_for(|stopped| *stopped).await;
        }
    };
    let mut telemetry_tasks = Vec::new();
    if let Some(server) = metrics_server {
        let telemetry = Arc::new(Telemetry {
            build: BuildInfo::current(env!("CARGO_PKG_VERSION")),
            scheduler: Some(handle.scaling.scheduler.clone()),
            scalers: Some(handle.scaling.scaled_objects.scaler_metrics.clone()),
        });
        tracing::info!(addr = %server.local_addr(), "serving /metrics");
        telemetry_tasks.push(tokio::spawn(
            server.serve(telemetry::metrics_router(telemetry), stopped()),
        ));
    }
    if let Some(server) = probes_server {
        tracing::info!(addr = %server.local_addr(), "serving /healthz and /readyz");
        telemetry_tasks.push(tokio::spawn(
            server.serve(telemetry::probes_router(), stopped()),
        ));
    }
    tracing::info!(metrics_api = %handle.metrics_addr, "keda-rs operator running");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    handle.shutdown().await;
    let _ = stop_telemetry.send(true);
    for task in telemetry_tasks {
        if let Ok(Err(e)) = task.await {
            tracing::warn!(error = %e, "telemetry server stopped with an error");
        }
    }
    Ok(())
}
