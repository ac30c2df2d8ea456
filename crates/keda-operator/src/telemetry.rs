//! The operator's own telemetry over plain HTTP, as KEDA's operator serves it: Prometheus text on
//! `GET /metrics` (`--metrics-bind-address`, `:8080`) and the liveness/readiness probes
//! `GET /healthz` and `GET /readyz` (`--health-probe-bind-address`, `:8081`).
//!
//! The exposition is written by hand (it is a handful of series):
//! - `keda_build_info{version,git_commit,goversion,goos,goarch} 1`;
//! - `keda_internal_scale_loop_latency_seconds{quantile="0.5"|"0.99"}`: how late polls start
//!   relative to their slot, over the scheduler's recent lag samples (summary-style gauges);
//! - `keda_internal_scale_loop_polls_total` and `keda_internal_scale_loop_skipped_total`: polls
//!   started, and slots skipped because the object's previous poll still ran.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::scaling::Scheduler;

/// The Prometheus text exposition format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The quantiles of the scale-loop latency gauge.
pub const LAG_QUANTILES: [f64; 2] = [0.5, 0.99];

/// What `keda_build_info` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInfo {
    pub version: String,
    pub git_commit: String,
    /// Always empty for keda-rs (there is no Go toolchain); kept for label compatibility.
    pub goversion: String,
    /// `GOOS` spelling: `linux`, `darwin`, `windows`.
    pub goos: String,
    /// `GOARCH` spelling: `amd64`, `arm64`, …
    pub goarch: String,
}

impl BuildInfo {
    /// This build: `version` as given, the commit from `$KEDA_RS_GIT_COMMIT` at compile time
    /// (`unknown` otherwise), and the platform in Go's spelling.
    pub fn current(version: &str) -> Self {
        Self {
            version: version.to_string(),
            git_commit: option_env!("KEDA_RS_GIT_COMMIT")
                .unwrap_or("unknown")
                .to_string(),
            goversion: String::new(),
            goos: std::env::consts::OS.to_string(),
            goarch: go_arch(std::env::consts::ARCH).to_string(),
        }
    }
}

/// Rust's architecture names in Go's spelling (`x86_64` → `amd64`, `aarch64` → `arm64`).
pub fn go_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// The scheduler's figures at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LoopSnapshot {
    pub polls: u64,
    pub skipped: u64,
    /// (quantile, seconds) for each of [`LAG_QUANTILES`].
    pub lag: [(f64, f64); 2],
}

impl LoopSnapshot {
    /// Reads the scheduler's statistics.
    pub fn of(scheduler: &Scheduler) -> Self {
        let stats = scheduler.stats();
        let mut snapshot = Self::default();
        for (i, q) in LAG_QUANTILES.iter().enumerate() {
            let (polls, skipped, value) = stats.snapshot(*q);
            snapshot.polls = polls;
            snapshot.skipped = skipped;
            snapshot.lag[i] = (*q, value);
        }
        snapshot
    }
}

/// Escapes a label value for the text format (backslash, double quote, newline).
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A sample value as the text format spells it.
fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{v}")
    }
}

/// The whole `/metrics` page. `loops` is `None` before the scale loops exist (no series then
/// but the build info).
pub fn render(build: &BuildInfo, loops: Option<&LoopSnapshot>) -> String {
    let mut out = String::with_capacity(1024);
    let _ = writeln!(
        out,
        "# HELP keda_build_info A metric with a constant '1' value labeled by version, git_commit, goversion, goos and goarch from which KEDA was built."
    );
    let _ = writeln!(out, "# TYPE keda_build_info gauge");
    let _ = writeln!(
        out,
        "keda_build_info{{version=\"{}\",git_commit=\"{}\",goversion=\"{}\",goos=\"{}\",goarch=\"{}\"}} 1",
        escape_label(&build.version),
        escape_label(&build.git_commit),
        escape_label(&build.goversion),
        escape_label(&build.goos),
        escape_label(&build.goarch),
    );
    if let Some(loops) = loops {
        let _ = writeln!(
            out,
            "# HELP keda_internal_scale_loop_latency_seconds Delay between the scheduled and the actual start of scale-loop polls, as quantiles over recent polls."
        );
        let _ = writeln!(out, "# TYPE keda_internal_scale_loop_latency_seconds gauge");
        for (q, v) in loops.lag {
            let _ = writeln!(
                out,
                "keda_internal_scale_loop_latency_seconds{{quantile=\"{}\"}} {}",
                format_value(q),
                format_value(v)
            );
        }
        let _ = writeln!(
            out,
            "# HELP keda_internal_scale_loop_polls_total Scale-loop polls started."
        );
        let _ = writeln!(out, "# TYPE keda_internal_scale_loop_polls_total counter");
        let _ = writeln!(out, "keda_internal_scale_loop_polls_total {}", loops.polls);
        let _ = writeln!(
            out,
            "# HELP keda_internal_scale_loop_skipped_total Scale-loop slots skipped because the previous poll of the object still ran."
        );
        let _ = writeln!(out, "# TYPE keda_internal_scale_loop_skipped_total counter");
        let _ = writeln!(
            out,
            "keda_internal_scale_loop_skipped_total {}",
            loops.skipped
        );
    }
    out
}

/// What the `/metrics` handler reads from.
pub struct Telemetry {
    pub build: BuildInfo,
    pub scheduler: Option<Scheduler>,
    /// The scaler and ScaledObject series (spec §10).
    pub scalers: Option<std::sync::Arc<crate::scaler_metrics::ScalerMetrics>>,
}

impl Telemetry {
    /// The page as of now. Taking the quantiles sorts the lag samples, so do it off the async
    /// workers.
    pub fn render_now(&self) -> String {
        let snapshot = self.scheduler.as_ref().map(LoopSnapshot::of);
        let mut page = render(&self.build, snapshot.as_ref());
        if let Some(scalers) = &self.scalers {
            scalers.render(&mut page);
        }
        page
    }
}

async fn metrics(State(telemetry): State<Arc<Telemetry>>) -> Response {
    let page = tokio::task::spawn_blocking(move || telemetry.render_now()).await;
    match page {
        Ok(page) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], page).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "rendering failed\n").into_response(),
    }
}

async fn ok() -> &'static str {
    "ok"
}

/// `GET /metrics`.
pub fn metrics_router(telemetry: Arc<Telemetry>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(telemetry)
}

/// `GET /healthz` and `GET /readyz`, both answering `ok`.
pub fn probes_router() -> Router {
    Router::new()
        .route("/healthz", get(ok))
        .route("/readyz", get(ok))
}

/// Parses a controller-runtime style bind address: `"0"` (or empty) disables the server,
/// `":8080"` means all interfaces.
///
/// # Errors
/// The address does not parse.
pub fn parse_bind_address(value: &str) -> Result<Option<SocketAddr>, std::net::AddrParseError> {
    let value = value.trim();
    if value.is_empty() || value == "0" {
        return Ok(None);
    }
    let full = if value.starts_with(':') {
        format!("0.0.0.0{value}")
    } else {
        value.to_string()
    };
    full.parse().map(Some)
}

/// A bound listener for one of the telemetry routers.
pub struct TelemetryServer {
    listener: tokio::net::TcpListener,
    local_addr: SocketAddr,
}

impl TelemetryServer {
    /// Binds `addr` (port 0 picks a free port).
    ///
    /// # Errors
    /// The address cannot be bound.
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        Ok(Self {
            listener,
            local_addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves `router` over plain HTTP until `shutdown` completes.
    ///
    /// # Errors
    /// A fatal listener error.
    pub async fn serve(
        self,
        router: Router,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown)
            .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn build() -> BuildInfo {
        BuildInfo {
            version: "0.1.0".into(),
            git_commit: "abc\"def".into(),
            goversion: String::new(),
            goos: "linux".into(),
            goarch: "amd64".into(),
        }
    }

    #[test]
    fn build_info_only_without_loops() {
        let page = render(&build(), None);
        assert_eq!(
            page.lines()
                .filter(|l| !l.starts_with('#'))
                .collect::<Vec<_>>(),
            vec![
                "keda_build_info{version=\"0.1.0\",git_commit=\"abc\\\"def\",goversion=\"\",goos=\"linux\",goarch=\"amd64\"} 1"
            ]
        );
        assert!(page.contains("# TYPE keda_build_info gauge\n"));
        assert!(page.ends_with('\n'));
    }

    #[test]
    fn loop_series_with_quantiles_and_counters() {
        let snapshot = LoopSnapshot {
            polls: 12345,
            skipped: 2,
            lag: [(0.5, 0.000_25), (0.99, 0.0125)],
        };
        let page = render(&build(), Some(&snapshot));
        let samples: Vec<&str> = page.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            samples[1..],
            [
                "keda_internal_scale_loop_latency_seconds{quantile=\"0.5\"} 0.00025",
                "keda_internal_scale_loop_latency_seconds{quantile=\"0.99\"} 0.0125",
                "keda_internal_scale_loop_polls_total 12345",
                "keda_internal_scale_loop_skipped_total 2",
            ]
        );
        assert!(page.contains("# TYPE keda_internal_scale_loop_latency_seconds gauge\n"));
        assert!(page.contains("# TYPE keda_internal_scale_loop_polls_total counter\n"));
        assert!(page.contains("# TYPE keda_internal_scale_loop_skipped_total counter\n"));
    }

    #[test]
    fn every_line_is_valid_text_format() {
        let snapshot = LoopSnapshot {
            polls: 1,
            skipped: 0,
            lag: [(0.5, 1e-9), (0.99, f64::NAN)],
        };
        for line in render(&build(), Some(&snapshot)).lines() {
            if let Some(rest) = line.strip_prefix("# ") {
                assert!(
                    rest.starts_with("HELP ") || rest.starts_with("TYPE "),
                    "{line}"
                );
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap();
            assert!(
                value == "NaN" || value.parse::<f64>().is_ok(),
                "value of {line}"
            );
            let name = series.split('{').next().unwrap();
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{line}"
            );
            assert!(!value.contains('e'), "no exponent needed: {line}");
        }
    }

    #[test]
    fn label_escaping_and_special_values() {
        assert_eq!(escape_label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(3.0), "3");
        assert_eq!(go_arch("x86_64"), "amd64");
        assert_eq!(go_arch("aarch64"), "arm64");
        assert_eq!(go_arch("riscv64"), "riscv64");
    }

    #[test]
    fn bind_addresses_as_controller_runtime_reads_them() {
        assert_eq!(parse_bind_address("0").unwrap(), None);
        assert_eq!(parse_bind_address("").unwrap(), None);
        assert_eq!(
            parse_bind_address(":8080").unwrap(),
            Some("0.0.0.0:8080".parse().unwrap())
        );
        assert_eq!(
            parse_bind_address("127.0.0.1:9090").unwrap(),
            Some("127.0.0.1:9090".parse().unwrap())
        );
        assert!(parse_bind_address("nonsense").is_err());
    }

    #[tokio::test]
    async fn serves_metrics_and_probes_over_http() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let telemetry = Arc::new(Telemetry {
            build: build(),
            scheduler: None,
            scalers: None,
        });
        let server = TelemetryServer::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = server.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(
            metrics_router(telemetry).merge(probes_router()),
            async move {
                let _ = stopped.await;
            },
        ));
        let get = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
            let mut body = String::new();
            s.read_to_string(&mut body).await.unwrap();
            body
        };
        let metrics = get("/metrics").await;
        assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
        assert!(
            metrics.contains("content-type: text/plain; version=0.0.4"),
            "{metrics}"
        );
        assert!(metrics.contains("keda_build_info{"), "{metrics}");
        for probe in ["/healthz", "/readyz"] {
            let reply = get(probe).await;
            assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
            assert!(reply.ends_with("ok"), "{reply}");
        }
        assert!(get("/nope").await.starts_with("HTTP/1.1 404"));
        let _ = stop.send(());
        task.await.unwrap().unwrap();
    }
}
