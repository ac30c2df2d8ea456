//! The "redis-list-N" run: control plane, redis, the operator process, the objects, and every
//! measurement of the protocol, in order.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use keda_api::ScaledObject;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use test_cluster::pki::Leaf;
use test_cluster::redis::RedisServer;
use test_cluster::{ControlPlane, Options};

use crate::RedisListArgs;
use crate::http::{DirectClient, plain_get, prom_value};
use crate::procfs;
use crate::report::{PollStats, Reads, Results, Sample};
use crate::resp::{Conn, Monitor, Seen};

const NS: &str = "bench";
const KEDA_NS: &str = "keda";
const SERVICE: &str = "keda-metrics-apiserver";
const APISERVICE: &str = "v1beta1.external.metrics.k8s.io";
const MANAGER: &str = "keda-rs-bench";

fn log(msg: impl AsRef<str>) {
    eprintln!("[keda-rs-bench] {}", msg.as_ref());
}

fn shell_quote(arg: &str) -> String {
    if arg
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
    {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

fn run_text(program: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Path and modification time of a binary (UTC, from `date -r`).
fn describe_binary(path: &Path) -> String {
    let p = path.display().to_string();
    match run_text("date", &["-u", "-r", &p, "+%Y-%m-%dT%H:%M:%SZ"]) {
        Some(t) => format!("{p} (built {t})"),
        None => p,
    }
}

fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // A zombie still "exists"; look at its state too.
    if kill(Pid::from_raw(pid), None).is_err() {
        return false;
    }
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rfind(')')
                .map(|i| s[i + 1..].trim_start().starts_with('Z'))
        })
        .is_some_and(|zombie| !zombie)
}

/// Kills the given processes if this bench dies without stopping them (a closed pipe wakes it).
struct Watchdog {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Watchdog {
    fn new(pids: &[u32]) -> anyhow::Result<Self> {
        let script = r#"read _; for p in "$@"; do kill -TERM "$p" 2>/dev/null; done; sleep 5
for p in "$@"; do kill -KILL "$p" 2>/dev/null; done; exit 0"#;
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c").arg(script).arg("bench-watchdog");
        for p in pids {
            cmd.arg(p.to_string());
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the watchdog")?;
        let stdin = child.stdin.take();
        Ok(Self { child, stdin })
    }

    /// We stop the processes ourselves: the watchdog goes without touching anything.
    fn disarm(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stdin.take();
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Closing stdin makes it kill its processes (used when we unwind without disarming).
        self.stdin.take();
        let _ = self.child.wait();
    }
}

/// The operator as a child process.
struct Operator {
    child: Child,
    pid: u32,
    watchdog: Option<Watchdog>,
}

impl Operator {
    fn spawn(bin: &Path, args: &[String], log_path: &Path) -> anyhow::Result<Self> {
        let log = std::fs::File::create(log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let err = log.try_clone()?;
        let child = std::process::Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .env("NO_PROXY", "127.0.0.1,localhost,::1")
            .env("NO_COLOR", "1")
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id();
        let watchdog = Watchdog::new(&[pid]).ok();
        Ok(Self {
            child,
            pid,
            watchdog,
        })
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then SIGKILL after 15 s; describes what happened.
    fn stop(&mut self) -> String {
        if let Some(w) = self.watchdog.take() {
            w.disarm();
        }
        if let Ok(Some(status)) = self.child.try_wait() {
            return format!("had already exited ({status})");
        }
        let started = Instant::now();
        if let Ok(pid) = i32::try_from(self.pid) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        while started.elapsed() < Duration::from_secs(15) {
            if let Ok(Some(status)) = self.child.try_wait() {
                return format!(
                    "exited after {:.2} s ({status})",
                    started.elapsed().as_secs_f64()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        "did not exit within 15 s of SIGTERM; killed".to_string()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if self.alive() {
            self.stop();
        }
    }
}

/// Runs the whole workload; writes the results file (also after a failure). Ok(false) when the
/// run completed with errors.
pub fn run(args: &RedisListArgs) -> anyhow::Result<bool> {
    if args.objects == 0 {
        bail!("--objects must be at least 1");
    }
    let operator_bin = match &args.operator_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no parent of the bench binary")?
            .join("keda-rs"),
    };
    if !operator_bin.exists() {
        bail!(
            "{} not found (cargo build --release -p keda-rs)",
            operator_bin.display()
        );
    }
    let work_dir = match &args.work_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!(
            "keda-rs-bench-{}-{}",
            args.objects,
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        )),
    };
    std::fs::create_dir_all(&work_dir)?;
    if let Some(parent) = args.out.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)?;
    }

    let mut results = Results {
        objects: args.objects,
        window_secs: args.window_secs,
        polling_interval: args.polling_interval,
        items: args.items,
        warmup_secs: args.warmup_intervals * args.polling_interval,
        command: std::env::args()
            .map(|a| shell_quote(&a))
            .collect::<Vec<_>>()
            .join(" "),
        invoked_by: std::env::var("KEDA_RS_BENCH_INVOKED_BY").ok(),
        commit: run_text("git", &["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into()),
        build_commit: std::env::var("KEDA_RS_BENCH_BUILD_COMMIT").ok(),
        operator_binary: describe_binary(&operator_bin),
        dirty: run_text("git", &["status", "--porcelain", "--untracked-files=no"])
            .is_some_and(|s| !s.is_empty()),
        started_utc: run_text("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]).unwrap_or_default(),
        nproc: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        mem_total_kib: procfs::mem_total_kib(),
        cpu_model: procfs::model_name(),
        kubernetes: test_cluster::control_plane::KUBERNETES_VERSION.to_string(),
        loadavg_start: procfs::loadavg(),
        work_dir: work_dir.display().to_string(),
        ..Results::default()
    };

    log("starting the control plane (HPA sync period 15 s, 2 KWOK nodes)");
    let plane = ControlPlane::start(&Options {
        hpa_sync_period: Duration::from_secs(15),
        nodes: 2,
        ..Options::default()
    })
    .context("starting the control plane")?;
    let redis = RedisServer::start();
    log(format!(
        "control plane at {}, redis at {}",
        plane.server(),
        redis.address()
    ));
    let aggregator_cert = plane
        .pki()
        .front_proxy_ca
        .issue_client("front-proxy-client", None)
        .context("issuing a front-proxy client certificate")?;
    let mut component_pids = plane.pids();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(async {
        let mut redis_pid = None;
        let r = bench(
            args,
            &plane,
            &redis,
            &aggregator_cert,
            &operator_bin,
            &work_dir,
            &mut component_pids,
            &mut redis_pid,
            &mut results,
        )
        .await;
        (r, redis_pid)
    });
    let (outcome, redis_pid) = outcome;
    if let Err(e) = &outcome {
        log(format!("failed: {e:#}"));
        results.errors.push(format!("{e:#}"));
    }
    drop(runtime);
    results.loadavg_end = procfs::loadavg();

    log("tearing down");
    drop(redis);
    let pids = plane.pids();
    plane.stop();
    std::thread::sleep(Duration::from_millis(500));
    for (name, pid) in pids
        .into_iter()
        .chain(redis_pid.map(|p| ("redis-server".to_string(), p)))
        .chain(
            results
                .operator_pid
                .map(|p| ("keda-rs operator".to_string(), p)),
        )
    {
        if pid_alive(pid) {
            results.leftover_processes.push(format!("{name} ({pid})"));
        }
    }
    analyse_operator_log(&work_dir.join("operator.log"), &mut results);
    std::fs::write(&args.out, results.render())
        .with_context(|| format!("writing {}", args.out.display()))?;
    log(format!("results in {}", args.out.display()));
    Ok(results.errors.is_empty())
}

fn analyse_operator_log(path: &Path, results: &mut Results) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    let text = strip_ansi(&text);
    let mut counts: HashMap<String, usize> = HashMap::new();
    for line in text.lines() {
        let level = if line.contains(" WARN ") {
            results.operator_warn_lines += 1;
            true
        } else if line.contains(" ERROR ") {
            results.operator_error_lines += 1;
            true
        } else {
            false
        };
        if !level {
            continue;
        }
        // Drop the timestamp, group by the rest with digits masked.
        let rest = line.split_once(' ').map_or(line, |(_, r)| r).trim();
        let mut key = String::with_capacity(rest.len());
        let mut last_digit = false;
        for c in rest.chars().take(300) {
            if c.is_ascii_digit() {
                if !last_digit {
                    key.push('#');
                }
                last_digit = true;
            } else {
                key.push(c);
                last_digit = false;
            }
        }
        *counts.entry(key.replace('`', "'")).or_default() += 1;
    }
    let mut top: Vec<(usize, String)> = counts.into_iter().map(|(k, v)| (v, k)).collect();
    top.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    top.truncate(12);
    results.operator_top_messages = top;
}

/// Removes terminal colour sequences (`ESC [ … m`) that tracing writes even into files.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

async fn wait_until<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{what}: not within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn ensure_crds(client: &kube::Client) -> anyhow::Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(MANAGER).force();
    for (_, crd) in keda_api::crd::all() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        crds.patch(&name, &params, &Patch::Apply(&crd)).await?;
        wait_until(
            Duration::from_secs(30),
            &format!("CRD {name} Established"),
            || async {
                let crd = crds.get(&name).await.ok()?;
                crd.status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
                    .then_some(())
            },
        )
        .await?;
    }
    Ok(())
}

/// Namespace `keda`, the ExternalName Service → localhost, and the APIService at `port` with no
/// caBundle yet: the operator patches its CA in at start (`--enable-apiservice-patching`).
async fn register_apiservice(client: &kube::Client, port: u16) -> anyhow::Result<()> {
    let apply = PatchParams::apply(MANAGER).force();
    Api::<Namespace>::all(client.clone())
        .patch(
            KEDA_NS,
            &apply,
            &Patch::Apply(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": KEDA_NS}})),
        )
        .await?;
    Api::<Service>::namespaced(client.clone(), KEDA_NS)
        .patch(
            SERVICE,
            &apply,
            &Patch::Apply(serde_json::json!({
                "apiVersion": "v1", "kind": "Service", "metadata": {"name": SERVICE, "namespace": KEDA_NS},
                "spec": {"type": "ExternalName", "externalName": "localhost"}
            })),
        )
        .await?;
    Api::<APIService>::all(client.clone())
        .patch(
            APISERVICE,
            &apply,
            &Patch::Apply(serde_json::json!({
                "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
                "metadata": {"name": APISERVICE},
                "spec": {
                    "group": "external.metrics.k8s.io", "version": "v1beta1",
                    "groupPriorityMinimum": 100, "versionPriority": 100,
                    "service": {"name": SERVICE, "namespace": KEDA_NS, "port": port},
                }
            })),
        )
        .await?;
    Ok(())
}

fn deployment(name: &str) -> anyhow::Result<Deployment> {
    Ok(serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "worker", "image": "example.invalid/worker:1"}]}}
        }
    }))?)
}

fn scaled_object(
    name: &str,
    target: &str,
    list: &str,
    redis: &str,
    interval: u64,
) -> anyhow::Result<ScaledObject> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "scaleTargetRef": {"name": target},
            "pollingInterval": interval,
            "minReplicaCount": 0,
            "maxReplicaCount": 10,
            "triggers": [{"type": "redis", "metadata": {
                "address": redis, "listName": list, "listLength": "5", "activationListLength": "1"
            }}]
        }
    }))?)
}

/// Creates, retrying transient failures; an existing object counts as created.
async fn create<K>(api: &Api<K>, object: &K) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let mut attempt = 0;
    loop {
        match api.create(&PostParams::default(), object).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => return Ok(()),
            Err(e) if attempt < 5 => {
                attempt += 1;
                log(format!("create failed ({e}); retrying"));
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

#[derive(Default)]
struct Readiness {
    ready: HashMap<String, Instant>,
    hpa: HashMap<String, Instant>,
    /// Latest Ready condition of each object: (status, reason, message).
    last: HashMap<String, (String, String, String)>,
}

fn spawn_readiness_watchers(
    client: &kube::Client,
    state: Arc<Mutex<Readiness>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let sos: Api<ScaledObject> = Api::namespaced(client.clone(), NS);
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), NS);
    let s1 = state.clone();
    let so_task = tokio::spawn(async move {
        let mut stream = watcher(sos, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = stream.next().await {
            let (watcher::Event::Apply(so) | watcher::Event::InitApply(so)) = (match event {
                Ok(e) => e,
                Err(_) => continue,
            }) else {
                continue;
            };
            let name = so.metadata.name.clone().unwrap_or_default();
            let ready = so
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.r#type == "Ready").cloned());
            if let Ok(mut st) = s1.lock()
                && let Some(c) = ready
            {
                if c.status == "True" && !st.ready.contains_key(&name) {
                    st.ready.insert(name.clone(), Instant::now());
                }
                st.last.insert(
                    name,
                    (
                        c.status,
                        c.reason.unwrap_or_default(),
                        c.message.unwrap_or_default(),
                    ),
                );
            }
        }
    });
    let hpa_task = tokio::spawn(async move {
        let mut stream = watcher(hpas, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = stream.next().await {
            let (watcher::Event::Apply(hpa) | watcher::Event::InitApply(hpa)) = (match event {
                Ok(e) => e,
                Err(_) => continue,
            }) else {
                continue;
            };
            let name = hpa.metadata.name.unwrap_or_default();
            if let Some(so) = name.strip_prefix("keda-hpa-")
                && let Ok(mut st) = state.lock()
                && !st.hpa.contains_key(so)
            {
                st.hpa.insert(so.to_string(), Instant::now());
            }
        }
    });
    vec![so_task, hpa_task]
}

struct CpuMark {
    at: Instant,
    operator: u64,
    others: Vec<(String, u32, u64)>,
}

fn cpu_mark(operator: u32, others: &[(String, u32)]) -> anyhow::Result<CpuMark> {
    Ok(CpuMark {
        at: Instant::now(),
        operator: procfs::cpu_ticks(operator)?,
        others: others
            .iter()
            .filter_map(|(n, p)| Some((n.clone(), *p, procfs::cpu_ticks(*p).ok()?)))
            .collect(),
    })
}

fn mcpu(ticks: u64, hz: u64, over: Duration) -> f64 {
    ticks as f64 / hz as f64 / over.as_secs_f64().max(1e-9) * 1000.0
}

async fn scrape(addr: SocketAddr) -> anyhow::Result<String> {
    let (status, body) = plain_get(addr, "/metrics").await?;
    if status != 200 {
        bail!("/metrics answered {status}");
    }
    Ok(body)
}

fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn poll_stats(seen: &[Seen], objects: usize, interval: f64, start: f64, end: f64) -> PollStats {
    let intervals = ((end - start) / interval).floor().max(0.0) as u64;
    let mut cells: HashMap<&str, Vec<u64>> = HashMap::new();
    let keys: Vec<String> = (0..objects).map(|i| format!("q-{i}")).collect();
    for k in &keys {
        cells.insert(k.as_str(), vec![0; intervals as usize]);
    }
    let mut per_key_times: HashMap<&str, Vec<f64>> = HashMap::new();
    let mut buckets: BTreeMap<i64, usize> = BTreeMap::new();
    let mut llen_seen = 0;
    for s in seen {
        if s.at < start || s.at > end {
            continue;
        }
        let Some(row) = cells.get_mut(s.key.as_str()) else {
            continue;
        };
        llen_seen += 1;
        let idx = ((s.at - start) / interval).floor() as usize;
        if let Some(c) = row.get_mut(idx) {
            *c += 1;
        }
        *buckets.entry((s.at * 10.0).floor() as i64).or_default() += 1;
        if let Some((k, _)) = cells.get_key_value(s.key.as_str()) {
            per_key_times.entry(k).or_default().push(s.at);
        }
    }
    let all: Vec<u64> = cells.values().flatten().copied().collect();
    let mut jitter = Vec::new();
    for times in per_key_times.values_mut() {
        times.sort_by(f64::total_cmp);
        for w in times.windows(2) {
            jitter.push(((w[1] - w[0]) - interval).abs() * 1000.0);
        }
    }
    let bucket_counts: Vec<f64> = buckets.values().map(|v| *v as f64).collect();
    PollStats {
        intervals,
        llen_seen,
        mean_per_object_interval: if all.is_empty() {
            0.0
        } else {
            all.iter().sum::<u64>() as f64 / all.len() as f64
        },
        min_per_cell: all.iter().copied().min().unwrap_or(0),
        max_per_cell: all.iter().copied().max().unwrap_or(0),
        cells_zero: all.iter().filter(|c| **c == 0).count(),
        cells_multi: all.iter().filter(|c| **c > 1).count(),
        objects_never_polled: keys
            .iter()
            .filter(|k| !per_key_times.contains_key(k.as_str()))
            .count(),
        max_per_100ms: buckets.values().copied().max().unwrap_or(0),
        p99_per_100ms: procfs::quantile(&bucket_counts, 0.99),
        even_per_100ms: objects as f64 / (interval * 10.0),
        interval_jitter_ms: jitter,
        ..PollStats::default()
    }
}

fn metric_path(metric: &str, so: &str) -> String {
    format!(
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/{NS}/{metric}?labelSelector=scaledobject.keda.sh%2Fname%3D{so}"
    )
}

#[allow(clippy::too_many_arguments)]
async fn bench(
    args: &RedisListArgs,
    plane: &ControlPlane,
    redis: &RedisServer,
    aggregator_cert: &Leaf,
    operator_bin: &Path,
    work_dir: &Path,
    component_pids: &mut Vec<(String, u32)>,
    redis_pid: &mut Option<u32>,
    results: &mut Results,
) -> anyhow::Result<()> {
    let n = args.objects;
    let interval = args.interval();
    let hz = procfs::clock_ticks_per_sec();
    let client = test_cluster::client_for(plane.kubeconfig_path()).await?;
    let redis_addr = redis.address();
    let mut admin = Conn::connect(&redis_addr, "bench").await?;
    let rpid = admin.server_pid().await?;
    *redis_pid = Some(rpid);
    component_pids.push(("redis-server".into(), rpid));
    let redis_watchdog = Watchdog::new(&[rpid])?;

    ensure_crds(&client).await?;
    let free = test_cluster::redis::free_port;
    let (api_port, metrics_port, probe_port) = (free(), free(), free());
    register_apiservice(&client, api_port).await?;

    let metrics_addr: SocketAddr = format!("127.0.0.1:{metrics_port}").parse()?;
    let probe_addr: SocketAddr = format!("127.0.0.1:{probe_port}").parse()?;
    let operator_args: Vec<String> = vec![
        "operator".into(),
        "--kubeconfig".into(),
        plane.kubeconfig_path().display().to_string(),
        "--metrics-api-bind-address".into(),
        format!("127.0.0.1:{api_port}"),
        "--metrics-bind-address".into(),
        metrics_addr.to_string(),
        "--health-probe-bind-address".into(),
        probe_addr.to_string(),
        "--enable-apiservice-patching=true".into(),
    ];
    let log_path = work_dir.join("operator.log");
    log(format!(
        "starting {} {} (log: {})",
        operator_bin.display(),
        operator_args.join(" "),
        log_path.display()
    ));
    let mut operator = Operator::spawn(operator_bin, &operator_args, &log_path)?;
    results.operator_pid = Some(operator.pid);
    results.notes.push(format!(
        "Operator command: `{} {}`.",
        operator_bin.display(),
        operator_args.join(" ")
    ));

    let outcome = measure(
        args,
        &client,
        &redis_addr,
        &mut admin,
        aggregator_cert,
        &mut operator,
        metrics_addr,
        probe_addr,
        api_port,
        component_pids,
        hz,
        n,
        interval,
        results,
    )
    .await;
    if !operator.alive() {
        results.errors.push(format!(
            "the operator process exited during the run: {}",
            operator.stop()
        ));
    } else {
        log("stopping the operator (SIGTERM)");
        results.operator_shutdown = Some(operator.stop());
    }
    redis_watchdog.disarm();
    outcome
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    args: &RedisListArgs,
    client: &kube::Client,
    redis_addr: &str,
    admin: &mut Conn,
    aggregator_cert: &Leaf,
    operator: &mut Operator,
    metrics_addr: SocketAddr,
    probe_addr: SocketAddr,
    api_port: u16,
    component_pids: &[(String, u32)],
    hz: u64,
    n: usize,
    interval: Duration,
    results: &mut Results,
) -> anyhow::Result<()> {
    let pid = operator.pid;
    // Up: probes answer and the aggregator reaches the metrics API with the patched CA.
    let started = Instant::now();
    wait_until(Duration::from_secs(60), "operator /readyz", || async {
        matches!(plain_get(probe_addr, "/readyz").await, Ok((200, _))).then_some(())
    })
    .await?;
    let apiservices: Api<APIService> = Api::all(client.clone());
    let ca_pem = wait_until(
        Duration::from_secs(90),
        "APIService Available with the operator's CA",
        || async {
            let svc = apiservices.get(APISERVICE).await.ok()?;
            let ca = svc.spec.as_ref()?.ca_bundle.clone()?;
            let available = svc
                .status?
                .conditions?
                .into_iter()
                .any(|c| c.type_ == "Available" && c.status == "True");
            (available && !ca.0.is_empty()).then(|| String::from_utf8_lossy(&ca.0).into_owned())
        },
    )
    .await?;
    log(format!(
        "operator up in {:.1} s (pid {pid}); sampling it idle for {} s",
        started.elapsed().as_secs_f64(),
        args.idle_secs
    ));
    let page = scrape(metrics_addr).await?;
    if !page.contains("keda_build_info{") {
        bail!("/metrics has no keda_build_info:\n{page}");
    }

    // Idle baseline: same process, zero objects.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle0 = cpu_mark(pid, &[])?;
    let idle_end = Instant::now() + Duration::from_secs(args.idle_secs);
    while Instant::now() < idle_end {
        let m = procfs::memory(pid)?;
        results.idle_rss_kib.push(m.rss_kib);
        results.idle_pss_kib.push(m.pss_kib);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let idle1 = cpu_mark(pid, &[])?;
    results.idle_mcpu = Some(mcpu(
        idle1.operator.saturating_sub(idle0.operator),
        hz,
        idle1.at - idle0.at,
    ));

    // The workload.
    Api::<Namespace>::all(client.clone())
        .patch(
            NS,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})),
        )
        .await?;
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let cmds: Vec<Vec<String>> = chunk
            .iter()
            .flat_map(|i| {
                [
                    vec!["DEL".into(), format!("q-{i}")],
                    std::iter::once("RPUSH".to_string())
                        .chain(std::iter::once(format!("q-{i}")))
                        .chain((0..args.items).map(|j| format!("item-{j}")))
                        .collect(),
                ]
            })
            .filter(|c: &Vec<String>| c[0] != "RPUSH" || c.len() > 2)
            .collect();
        admin.pipeline(&cmds).await?;
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let t = Instant::now();
    let made: Vec<anyhow::Result<()>> = futures::stream::iter(0..n)
        .map(|i| {
            let api = deployments.clone();
            async move { create(&api, &deployment(&format!("w-{i}"))?).await }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    made.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    results.deployments_secs = Some(t.elapsed().as_secs_f64());
    log(format!(
        "{n} lists and Deployments created ({:.1} s); creating {n} ScaledObjects",
        t.elapsed().as_secs_f64()
    ));

    let readiness = Arc::new(Mutex::new(Readiness::default()));
    let watchers = spawn_readiness_watchers(client, readiness.clone());
    let sos: Api<ScaledObject> = Api::namespaced(client.clone(), NS);
    let first_create = Instant::now();
    let made: Vec<anyhow::Result<()>> = futures::stream::iter(0..n)
        .map(|i| {
            let api = sos.clone();
            let so = scaled_object(
                &format!("so-{i}"),
                &format!("w-{i}"),
                &format!("q-{i}"),
                redis_addr,
                args.polling_interval,
            );
            async move { create(&api, &so?).await }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    made.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    results.create_secs = Some(first_create.elapsed().as_secs_f64());
    log(format!(
        "{n} ScaledObjects created in {:.1} s; waiting for Ready=True and HPAs",
        first_create.elapsed().as_secs_f64()
    ));

    let names: Vec<String> = (0..n).map(|i| format!("so-{i}")).collect();
    let deadline = Instant::now() + Duration::from_secs(args.ready_timeout_secs);
    let mut last_progress = Instant::now();
    loop {
        let (ready, hpa, done_at) = {
            let st = readiness
                .lock()
                .map_err(|_| anyhow::anyhow!("readiness lock"))?;
            let ready = names.iter().filter(|n| st.ready.contains_key(*n)).count();
            let hpa = names.iter().filter(|n| st.hpa.contains_key(*n)).count();
            let done_at = (ready == n && hpa == n).then(|| {
                names
                    .iter()
                    .filter_map(|n| Some(st.ready.get(n)?.max(st.hpa.get(n)?)))
                    .copied()
                    .max()
            });
            (ready, hpa, done_at.flatten())
        };
        results.ready_count = ready;
        results.hpa_count = hpa;
        if let Some(at) = done_at {
            results.time_to_ready_secs = Some(at.duration_since(first_create).as_secs_f64());
            break;
        }
        if !operator.alive() {
            bail!("the operator exited while objects were becoming Ready");
        }
        if Instant::now() > deadline {
            let st = readiness
                .lock()
                .map_err(|_| anyhow::anyhow!("readiness lock"))?;
            let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
            for name in &names {
                if st.ready.contains_key(name) && st.hpa.contains_key(name) {
                    continue;
                }
                let why = match st.last.get(name) {
                    Some((s, r, m)) => format!(
                        "Ready={s} reason={r} message={m}{}",
                        if st.hpa.contains_key(name) {
                            ""
                        } else {
                            " (no HPA)"
                        }
                    ),
                    None => format!(
                        "no Ready condition{}",
                        if st.hpa.contains_key(name) {
                            ""
                        } else {
                            " (no HPA)"
                        }
                    ),
                };
                *reasons.entry(why).or_default() += 1;
            }
            results.not_ready = reasons
                .into_iter()
                .map(|(why, count)| format!("{count} × {why}"))
                .collect();
            results.errors.push(format!(
                "only {ready}/{n} ScaledObjects Ready and {hpa}/{n} HPAs after {} s; measuring anyway",
                args.ready_timeout_secs
            ));
            log(format!(
                "NOT all Ready after {} s ({ready}/{n} Ready, {hpa}/{n} HPAs); measuring anyway",
                args.ready_timeout_secs
            ));
            break;
        }
        if last_progress.elapsed() > Duration::from_secs(10) {
            log(format!(
                "  {:.0} s: {ready}/{n} Ready, {hpa}/{n} HPAs",
                first_create.elapsed().as_secs_f64()
            ));
            last_progress = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for w in watchers {
        w.abort();
    }
    if let Some(t) = results.time_to_ready_secs {
        log(format!(
            "all {n} Ready with HPAs {t:.1} s after the first create"
        ));
    }

    // Warm-up, then the window.
    let warmup = interval * u32::try_from(args.warmup_intervals).unwrap_or(2);
    log(format!("warm-up {} s", warmup.as_secs()));
    tokio::time::sleep(warmup).await;
    if !operator.alive() {
        bail!("the operator exited during the warm-up");
    }
    let window = Duration::from_secs(args.window_secs);
    log(format!("measuring for {} s", window.as_secs()));
    let monitor = Monitor::start(redis_addr).await?;
    let llen0 = admin.command_calls("llen").await?;
    let page0 = scrape(metrics_addr).await?;
    let cpu0 = cpu_mark(pid, component_pids)?;
    let epoch0 = now_epoch();
    let window_start = Instant::now();
    let mut next = window_start;
    loop {
        let m = procfs::memory(pid)?;
        let (_, connections) = admin.client_counts().await?;
        results.samples.push(Sample {
            t: window_start.elapsed().as_secs_f64(),
            rss_kib: m.rss_kib,
            pss_kib: m.pss_kib,
            threads: m.threads,
            connections,
        });
        next += Duration::from_secs(10);
        if next > window_start + window {
            break;
        }
        tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
        if !operator.alive() {
            bail!("the operator exited during the window");
        }
    }
    let end = window_start + window;
    if Instant::now() < end {
        tokio::time::sleep_until(tokio::time::Instant::from_std(end)).await;
    }
    let cpu1 = cpu_mark(pid, component_pids)?;
    let epoch1 = now_epoch();
    let page1 = scrape(metrics_addr).await?;
    let llen1 = admin.command_calls("llen").await?;
    let seen = monitor.stop();
    let over = cpu1.at - cpu0.at;
    results.window_mcpu = Some(mcpu(cpu1.operator.saturating_sub(cpu0.operator), hz, over));
    results.others_mcpu = cpu1
        .others
        .iter()
        .filter_map(|(name, p, t1)| {
            let (_, _, t0) = cpu0.others.iter().find(|(_, q, _)| q == p)?;
            Some((name.clone(), mcpu(t1.saturating_sub(*t0), hz, over)))
        })
        .collect();
    let mut polls = poll_stats(&seen, n, interval.as_secs_f64(), epoch0, epoch1);
    polls.llen_calls = llen1.saturating_sub(llen0);
    let counter = |page: &str, name: &str| prom_value(page, name);
    polls.operator_polls = counter(&page1, "keda_internal_scale_loop_polls_total")
        .zip(counter(&page0, "keda_internal_scale_loop_polls_total"))
        .map(|(a, b)| a - b);
    polls.operator_skipped = counter(&page1, "keda_internal_scale_loop_skipped_total")
        .zip(counter(&page0, "keda_internal_scale_loop_skipped_total"))
        .map(|(a, b)| a - b);
    results.polls = Some(polls);
    results.lag_p50_s = prom_value(
        &page1,
        "keda_internal_scale_loop_latency_seconds{quantile=\"0.5\"}",
    );
    results.lag_p99_s = prom_value(
        &page1,
        "keda_internal_scale_loop_latency_seconds{quantile=\"0.99\"}",
    );
    let total_polls = prom_value(&page1, "keda_internal_scale_loop_polls_total").unwrap_or(0.0);
    results.notes.push(format!(
        "The schedule-lag quantiles are the operator's own gauge at the end of the window: they cover its last \
         min(100,000, all) polls ({total_polls:.0} polls since it started), so they include the first polls made \
         while the objects were being created, not only the window."
    ));
    log(format!(
        "window done: {:.2} mCPU, {} LLEN seen",
        results.window_mcpu.unwrap_or(0.0),
        seen.len()
    ));

    // What the workload looks like from the cluster's side.
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), NS);
    if let Ok(list) = pods.list(&Default::default()).await {
        let mut phases: BTreeMap<String, usize> = BTreeMap::new();
        for p in list.items {
            let phase = p.status.and_then(|s| s.phase).unwrap_or_else(|| "?".into());
            *phases.entry(phase).or_default() += 1;
        }
        let replicas: i64 = deployments
            .list(&Default::default())
            .await
            .map(|l| {
                l.items
                    .iter()
                    .map(|d| i64::from(d.spec.replicas.unwrap_or(0)))
                    .sum()
            })
            .unwrap_or(-1);
        results.notes.push(format!(
            "At the end of the window the {n} Deployments asked for {replicas} replicas in total; pods in `{NS}` by phase: {} \
             (2 KWOK nodes hold 250 pods each; pods need not run for this workload).",
            phases
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }

    // Metric read latency: rounds of sequential reads, direct and through the apiserver taking
    // turns so both see the same machine; the targets are checked on the median round.
    let path = metric_path("s0-redis-q-0", "so-0");
    let api_addr: SocketAddr = format!("127.0.0.1:{api_port}").parse()?;
    let connect = || {
        DirectClient::connect(
            api_addr,
            &ca_pem,
            &aggregator_cert.cert_pem,
            &aggregator_cert.key_pem,
        )
    };
    let mut direct_client = connect().await?;
    let mut direct = Reads::default();
    let mut through = Reads::default();
    for round in 0..args.read_rounds.max(1) {
        let mut batch = Vec::with_capacity(args.reads);
        for i in 0..args.reads + 20 {
            match direct_client.get(&path).await {
                Ok((200, body, took)) => {
                    if i >= 20 {
                        batch.push(took.as_secs_f64() * 1000.0);
                    }
                    if direct.body.is_empty() {
                        direct.body = body.trim().to_string();
                    }
                }
                Ok((status, body, _)) => {
                    direct.errors += 1;
                    direct
                        .first_error
                        .get_or_insert_with(|| format!("HTTP {status}: {}", body.trim()));
                }
                Err(e) => {
                    direct.errors += 1;
                    direct.first_error.get_or_insert_with(|| format!("{e:#}"));
                    direct_client = connect().await?;
                }
            }
        }
        direct.add_round(batch);
        let mut batch = Vec::with_capacity(args.reads);
        for i in 0..args.reads + 20 {
            let request = http::Request::get(path.as_str()).body(Vec::new())?;
            let t = Instant::now();
            match client.request_text(request).await {
                Ok(body) => {
                    if i >= 20 {
                        batch.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                    if through.body.is_empty() {
                        through.body = body.trim().to_string();
                    }
                }
                Err(e) => {
                    through.errors += 1;
                    through.first_error.get_or_insert_with(|| e.to_string());
                }
            }
        }
        through.add_round(batch);
        log(format!(
            "reads, round {round}: direct p50 {:.3} ms p99 {:.3} ms; through the apiserver p50 {:.3} ms p99 {:.3} ms (load {})",
            direct.rounds.last().map_or(0.0, |r| r.0),
            direct.rounds.last().map_or(0.0, |r| r.1),
            through.rounds.last().map_or(0.0, |r| r.0),
            through.rounds.last().map_or(0.0, |r| r.1),
            procfs::loadavg()
        ));
    }
    results.direct = Some(direct);
    results.through_apiserver = Some(through);

    if args.activation_trials > 0 {
        activation(args, client, admin, redis_addr, operator, results).await?;
    }
    Ok(())
}

async fn replicas(api: &Api<Deployment>, name: &str) -> Option<i32> {
    api.get(name).await.ok()?.spec.replicas
}

/// Pushes the activating items at a random moment into the empty list of an object at zero
/// replicas and times until the Deployment's spec.replicas is 1.
async fn activation(
    args: &RedisListArgs,
    client: &kube::Client,
    admin: &mut Conn,
    redis_addr: &str,
    operator: &mut Operator,
    results: &mut Results,
) -> anyhow::Result<()> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let sos: Api<ScaledObject> = Api::namespaced(client.clone(), NS);
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), NS);
    admin.cmd(&["DEL", "act"]).await?;
    create(&deployments, &deployment("act")?).await?;
    create(
        &sos,
        &scaled_object("act", "act", "act", redis_addr, args.polling_interval)?,
    )
    .await?;
    wait_until(
        Duration::from_secs(120),
        "ScaledObject act Ready with its HPA",
        || async {
            let so = sos.get("act").await.ok()?;
            let ready = so
                .status?
                .conditions?
                .iter()
                .any(|c| c.r#type == "Ready" && c.status == "True");
            let hpa = hpas.get_opt("keda-hpa-act").await.ok()?.is_some();
            (ready && hpa).then_some(())
        },
    )
    .await?;
    let interval = args.interval().as_secs_f64();
    results.notes.push(format!(
        "Activation: keda-rs learns about the items at the object's next poll, whose slot is fixed inside the \
         {interval:.0} s interval; with items pushed at a random moment the expected wait is uniform over the \
         interval (p50 ≈ {:.0} s, p99 ≈ {:.0} s for a poll-based design), plus the scale write. Each trial pushes 2 \
         items (> activationListLength 1) 1–{:.0} s after the Deployment was set back to 0.",
        interval / 2.0,
        interval * 0.99,
        interval + 1.0
    ));
    log(format!(
        "activation: {} trials (about {:.0} s each)",
        args.activation_trials,
        interval * 1.1
    ));
    for trial in 0..args.activation_trials {
        if !operator.alive() {
            bail!("the operator exited during the activation trials");
        }
        if wait_until(Duration::from_secs(60), "act at 0 replicas", || async {
            (replicas(&deployments, "act").await == Some(0)).then_some(())
        })
        .await
        .is_err()
        {
            results
                .activation_failures
                .push(format!("trial {trial}: act did not return to 0 replicas"));
            continue;
        }
        let delay = rand::random_range(1.0..(1.0 + interval));
        tokio::time::sleep(Duration::from_secs_f64(delay)).await;
        admin.cmd(&["RPUSH", "act", "x", "y"]).await?;
        let pushed = Instant::now();
        let limit = Duration::from_secs_f64(interval * 3.0 + 30.0);
        let mut reached = None;
        while pushed.elapsed() < limit {
            if replicas(&deployments, "act").await.unwrap_or(0) >= 1 {
                reached = Some(pushed.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        match reached {
            Some(took) => {
                log(format!(
                    "  trial {trial}: {:.2} s (pushed {delay:.1} s after reset)",
                    took.as_secs_f64()
                ));
                results.activation_s.push(took.as_secs_f64());
            }
            None => {
                results.activation_failures.push(format!(
                    "trial {trial}: no scale to 1 within {:.0} s",
                    limit.as_secs_f64()
                ));
            }
        }
        admin.cmd(&["DEL", "act"]).await?;
        deployments
            .patch(
                "act",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"replicas": 0}})),
            )
            .await?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn poll_cells_bursts_and_spacing() {
        let seen: Vec<Seen> = [
            (100.02, "q-0"),
            (130.05, "q-0"),
            (100.07, "q-1"),
            (115.0, "q-1"),
            (131.0, "q-1"),
            (100.06, "other"),
        ]
        .iter()
        .map(|(at, key)| Seen {
            at: *at,
            key: (*key).to_string(),
        })
        .collect();
        let p = poll_stats(&seen, 3, 30.0, 100.0, 160.0);
        assert_eq!(p.intervals, 2);
        assert_eq!(p.llen_seen, 5);
        assert_eq!(p.cells_zero, 2, "q-2 twice");
        assert_eq!(p.cells_multi, 1, "q-1 in the first interval");
        assert_eq!(p.max_per_cell, 2);
        assert_eq!(p.objects_never_polled, 1);
        assert_eq!(p.max_per_100ms, 2, "100.02 and 100.07 share a bucket");
        assert_eq!(p.interval_jitter_ms.len(), 3);
    }

    #[test]
    fn colour_codes_are_removed() {
        assert_eq!(
            strip_ansi("\u{1b}[2m2026-01-01T00:00:00Z\u{1b}[0m \u{1b}[33m WARN\u{1b}[0m x"),
            "2026-01-01T00:00:00Z  WARN x"
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("--objects"), "--objects");
        assert_eq!(shell_quote("a b"), "'a b'");
    }
}
