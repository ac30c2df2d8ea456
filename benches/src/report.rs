//! Everything one run measured, and its markdown rendering.

use std::fmt::Write as _;

use crate::procfs::{max, quantile};

#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Seconds since the window started.
    pub t: f64,
    pub rss_kib: u64,
    pub pss_kib: u64,
    pub threads: u64,
    /// Normal redis clients that are not the bench's own.
    pub connections: usize,
}

#[derive(Debug, Clone, Default)]
pub struct Reads {
    /// Every timed read of every round.
    pub latencies_ms: Vec<f64>,
    /// (p50, p99, max) of each round.
    pub rounds: Vec<(f64, f64, f64)>,
    pub errors: usize,
    pub first_error: Option<String>,
    pub body: String,
}

impl Reads {
    pub fn add_round(&mut self, batch: Vec<f64>) {
        self.rounds
            .push((quantile(&batch, 0.5), quantile(&batch, 0.99), max(&batch)));
        self.latencies_ms.extend(batch);
    }
    /// The median over rounds of each round's p50 / p99.
    pub fn median_round(&self) -> (f64, f64) {
        let p50: Vec<f64> = self.rounds.iter().map(|r| r.0).collect();
        let p99: Vec<f64> = self.rounds.iter().map(|r| r.1).collect();
        (quantile(&p50, 0.5), quantile(&p99, 0.5))
    }
}

#[derive(Debug, Clone, Default)]
pub struct PollStats {
    /// Intervals the window holds (window / pollingInterval, whole ones).
    pub intervals: u64,
    pub llen_seen: usize,
    pub mean_per_object_interval: f64,
    pub min_per_cell: u64,
    pub max_per_cell: u64,
    /// (object, interval) cells with no poll / with more than one.
    pub cells_zero: usize,
    pub cells_multi: usize,
    pub objects_never_polled: usize,
    /// `cmdstat_llen` calls over the window, from INFO commandstats.
    pub llen_calls: u64,
    /// The operator's own counters over the window.
    pub operator_polls: Option<f64>,
    pub operator_skipped: Option<f64>,
    /// Largest number of polls in one 100 ms bucket, and the even share.
    pub max_per_100ms: usize,
    pub p99_per_100ms: f64,
    pub even_per_100ms: f64,
    /// |time between two polls of an object − interval| in ms, as redis saw it.
    pub interval_jitter_ms: Vec<f64>,
}

#[derive(Debug, Clone, Default)]
pub struct Results {
    pub commit: String,
    /// HEAD when hack/bench.sh built the binaries (they may lag HEAD at run time).
    pub build_commit: Option<String>,
    pub operator_binary: String,
    pub dirty: bool,
    pub started_utc: String,
    pub command: String,
    pub invoked_by: Option<String>,
    pub objects: usize,
    pub window_secs: u64,
    pub polling_interval: u64,
    pub items: usize,
    pub warmup_secs: u64,
    pub nproc: usize,
    pub mem_total_kib: u64,
    pub cpu_model: String,
    pub kubernetes: String,
    pub loadavg_start: String,
    pub loadavg_end: String,
    pub work_dir: String,
    pub operator_pid: Option<u32>,

    pub idle_rss_kib: Vec<u64>,
    pub idle_pss_kib: Vec<u64>,
    pub idle_mcpu: Option<f64>,

    pub deployments_secs: Option<f64>,
    pub create_secs: Option<f64>,
    pub time_to_ready_secs: Option<f64>,
    pub ready_count: usize,
    pub hpa_count: usize,
    pub not_ready: Vec<String>,

    pub samples: Vec<Sample>,
    pub window_mcpu: Option<f64>,
    pub others_mcpu: Vec<(String, f64)>,
    pub polls: Option<PollStats>,
    pub lag_p50_s: Option<f64>,
    pub lag_p99_s: Option<f64>,

    pub direct: Option<Reads>,
    pub through_apiserver: Option<Reads>,

    pub activation_s: Vec<f64>,
    pub activation_failures: Vec<String>,

    pub operator_warn_lines: usize,
    pub operator_error_lines: usize,
    pub operator_top_messages: Vec<(usize, String)>,
    pub operator_shutdown: Option<String>,
    pub leftover_processes: Vec<String>,
    pub notes: Vec<String>,
    pub errors: Vec<String>,
}

fn mib(kib: f64) -> f64 {
    kib / 1024.0
}

fn median_u64(v: &[u64]) -> f64 {
    quantile(&v.iter().map(|x| *x as f64).collect::<Vec<_>>(), 0.5)
}

fn opt(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        _ => "n/a".into(),
    }
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "✅ meets",
        Some(false) => "❌ misses",
        None => "— not measured",
    }
}

impl Results {
    pub fn idle_rss_mib(&self) -> Option<f64> {
        (!self.idle_rss_kib.is_empty()).then(|| mib(median_u64(&self.idle_rss_kib)))
    }
    fn window_rss(&self) -> Vec<f64> {
        self.samples.iter().map(|s| s.rss_kib as f64).collect()
    }
    fn window_pss(&self) -> Vec<f64> {
        self.samples.iter().map(|s| s.pss_kib as f64).collect()
    }
    pub fn rss_median_mib(&self) -> Option<f64> {
        (!self.samples.is_empty()).then(|| mib(quantile(&self.window_rss(), 0.5)))
    }
    fn per_thousand(&self, v: f64) -> f64 {
        v * 1000.0 / self.objects.max(1) as f64
    }
    pub fn rss_per_1000_mib(&self) -> Option<f64> {
        Some(self.per_thousand(self.rss_median_mib()? - self.idle_rss_mib()?))
    }
    pub fn cpu_per_1000_mcpu(&self) -> Option<f64> {
        Some(self.per_thousand(self.window_mcpu? - self.idle_mcpu.unwrap_or(0.0)))
    }
    fn connections(&self) -> (usize, usize) {
        let c: Vec<usize> = self.samples.iter().map(|s| s.connections).collect();
        (
            c.iter().copied().min().unwrap_or(0),
            c.iter().copied().max().unwrap_or(0),
        )
    }

    pub fn render(&self) -> String {
        let mut o = String::new();
        let n = self.objects;
        let _ = writeln!(o, "# keda-rs benchmark: redis-list-{n}\n");
        let _ = writeln!(
            o,
            "Workload and figures per the benchmark protocol (`/work/shared/spec/benchmark-protocol.md`): one \
             redis-server on loopback, {n} lists `q-i` with {} items each{}, {n} Deployments `w-i` (replicas 0) and {n} \
             ScaledObjects `so-i` (redis trigger, `listLength: \"5\"`, `activationListLength: \"1\"`, \
             `pollingInterval: {}`, min 0, max 10) in namespace `bench`; the operator runs as its own process.\n",
            self.items,
            if self.items == 3 {
                ""
            } else {
                " (**the protocol says 3**: this run deviates on purpose)"
            },
            self.polling_interval
        );
        let _ = writeln!(o, "## Run\n");
        let _ = writeln!(o, "| | |\n|---|---|");
        let _ = writeln!(
            o,
            "| Commit (HEAD at run time) | `{}`{} |",
            self.commit,
            if self.dirty {
                " (working tree had uncommitted changes)"
            } else {
                ""
            }
        );
        if let Some(built) = &self.build_commit {
            let _ = writeln!(
                o,
                "| Binaries built from | `{built}`{} |",
                if built.trim_end_matches(" (dirty)") == self.commit {
                    " (= HEAD at run time)"
                } else {
                    " (**differs from HEAD at run time**)"
                }
            );
        }
        let _ = writeln!(o, "| Operator binary | `{}` |", self.operator_binary);
        let _ = writeln!(o, "| Started (UTC) | {} |", self.started_utc);
        let _ = writeln!(o, "| N | {n} |");
        let _ = writeln!(
            o,
            "| Window | {} s after a {} s warm-up ({} polling intervals) |",
            self.window_secs,
            self.warmup_secs,
            self.warmup_secs / self.polling_interval.max(1)
        );
        let _ = writeln!(
            o,
            "| Machine | {} CPUs (`nproc`), {:.1} GiB memory, {} |",
            self.nproc,
            self.mem_total_kib as f64 / 1024.0 / 1024.0,
            self.cpu_model
        );
        let _ = writeln!(
            o,
            "| Load average (1/5/15 min) | start {}; end {} |",
            self.loadavg_start, self.loadavg_end
        );
        let _ = writeln!(
            o,
            "| Control plane | Kubernetes {} (etcd, kube-apiserver, kube-controller-manager with HPA sync period 15 s, kube-scheduler, KWOK with 2 nodes), all on this machine |",
            self.kubernetes
        );
        let _ = writeln!(o, "| Command | `{}` |", self.command);
        if let Some(by) = &self.invoked_by {
            let _ = writeln!(o, "| Invoked by | `{by}` |");
        }
        let _ = writeln!(o, "| Run files | `{}` (operator log) |\n", self.work_dir);

        // Targets.
        let (conn_min, conn_max) = self.connections();
        let rss = self.rss_per_1000_mib();
        let cpu = self.cpu_per_1000_mcpu();
        let lag = self.lag_p99_s.map(|s| s * 1000.0);
        let direct = self.direct.as_ref().map(|r| r.median_round().1);
        let via = self.through_apiserver.as_ref().map(|r| r.median_round().1);
        let _ = writeln!(o, "## Against the issue's targets\n");
        let _ = writeln!(o, "| Target | Measured | |\n|---|---|---|");
        let _ = writeln!(
            o,
            "| RSS ≤ 10 MiB per 1,000 objects above idle | {} MiB per 1,000 (median {} MiB − idle {} MiB, scaled from N={n}) | {} |",
            opt(rss, 2),
            opt(self.rss_median_mib(), 1),
            opt(self.idle_rss_mib(), 1),
            verdict(rss.map(|v| v <= 10.0))
        );
        let _ = writeln!(
            o,
            "| CPU ≤ 3 mCPU per 1,000 objects | {} mCPU per 1,000 ({} mCPU over the window − {} mCPU idle, scaled from N={n}) | {} |",
            opt(cpu, 2),
            opt(self.window_mcpu, 2),
            opt(self.idle_mcpu, 2),
            verdict(cpu.map(|v| v <= 3.0))
        );
        let _ = writeln!(
            o,
            "| Schedule lag p99 ≤ 100 ms | {} ms | {} |",
            opt(lag, 3),
            verdict(lag.map(|v| v <= 100.0))
        );
        let _ = writeln!(
            o,
            "| Metric read p99 ≤ 2 ms at the server | {} ms (median round) | {} |",
            opt(direct, 3),
            verdict(direct.map(|v| v <= 2.0))
        );
        let _ = writeln!(
            o,
            "| Metric read p99 ≤ 10 ms through the apiserver | {} ms (median round) | {} |",
            opt(via, 3),
            verdict(via.map(|v| v <= 10.0))
        );
        let _ = writeln!(
            o,
            "| A handful of redis connections | {conn_min}–{conn_max} | {} |\n",
            verdict((!self.samples.is_empty()).then_some(conn_max <= 5))
        );

        // Figures.
        let _ = writeln!(o, "## Figures\n");
        let _ = writeln!(o, "| Figure | Value |\n|---|---|");
        let _ = writeln!(
            o,
            "| Time to Ready | {} s from the first ScaledObject create to the last one `Ready=True` with its HPA ({} of {n} Ready, {} of {n} HPAs; creating the {n} ScaledObjects took {} s; the {n} Deployments were created before, in {} s) |",
            opt(self.time_to_ready_secs, 1),
            self.ready_count,
            self.hpa_count,
            opt(self.create_secs, 1),
            opt(self.deployments_secs, 1),
        );
        let idle_pss = (!self.idle_pss_kib.is_empty()).then(|| mib(median_u64(&self.idle_pss_kib)));
        let _ = writeln!(
            o,
            "| RSS idle (0 objects) | VmRSS {} MiB, Pss {} MiB (median of {} samples) |",
            opt(self.idle_rss_mib(), 2),
            opt(idle_pss, 2),
            self.idle_rss_kib.len()
        );
        if !self.samples.is_empty() {
            let rss = self.window_rss();
            let pss = self.window_pss();
            let _ = writeln!(
                o,
                "| RSS over the window | VmRSS median {:.2} MiB, max {:.2} MiB; Pss median {:.2} MiB, max {:.2} MiB ({} samples, every 10 s) |",
                mib(quantile(&rss, 0.5)),
                mib(max(&rss)),
                mib(quantile(&pss, 0.5)),
                mib(max(&pss)),
                self.samples.len()
            );
            let _ = writeln!(
                o,
                "| RSS per object above idle | {} KiB |",
                opt(
                    self.rss_median_mib()
                        .zip(self.idle_rss_mib())
                        .map(|(a, b)| (a - b) * 1024.0 / n.max(1) as f64),
                    2
                )
            );
        }
        let _ = writeln!(
            o,
            "| CPU | {} mCPU over the window (utime+stime); idle {} mCPU |",
            opt(self.window_mcpu, 2),
            opt(self.idle_mcpu, 2)
        );
        if let Some(p) = &self.polls {
            let _ = writeln!(
                o,
                "| Polls per object per interval | mean {:.3}, min {}, max {} over {} objects × {} intervals; cells with 0 polls: {}, with ≥ 2: {}; objects never polled: {} |",
                p.mean_per_object_interval,
                p.min_per_cell,
                p.max_per_cell,
                n,
                p.intervals,
                p.cells_zero,
                p.cells_multi,
                p.objects_never_polled
            );
            let expected = n as f64 * self.window_secs as f64 / self.polling_interval.max(1) as f64;
            let _ = writeln!(
                o,
                "| Polls over the window | {} `LLEN` seen by `MONITOR`; `cmdstat_llen` +{}; operator `polls_total` +{}, `skipped_total` +{}; expected {:.0} |",
                p.llen_seen,
                p.llen_calls,
                opt(p.operator_polls, 0),
                opt(p.operator_skipped, 0),
                expected
            );
            let _ = writeln!(
                o,
                "| Burstiness | max {} polls in one 100 ms bucket (p99 of non-empty buckets {:.0}; an even spread is {:.2}) |",
                p.max_per_100ms, p.p99_per_100ms, p.even_per_100ms
            );
            let _ = writeln!(
                o,
                "| Poll spacing as redis saw it | \\|gap between two polls of an object − {} s\\|: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} gaps) |",
                self.polling_interval,
                quantile(&p.interval_jitter_ms, 0.5),
                quantile(&p.interval_jitter_ms, 0.99),
                max(&p.interval_jitter_ms),
                p.interval_jitter_ms.len()
            );
        }
        let _ = writeln!(
            o,
            "| Schedule lag (operator's `keda_internal_scale_loop_latency_seconds`) | p50 {} ms, p99 {} ms |",
            opt(self.lag_p50_s.map(|s| s * 1000.0), 3),
            opt(self.lag_p99_s.map(|s| s * 1000.0), 3)
        );
        let _ = writeln!(
            o,
            "| Redis connections from the operator | min {conn_min}, max {conn_max} (`CLIENT LIST`, every 10 s, the bench's own excluded) |"
        );
        for (name, r) in [
            ("directly at the metrics server", &self.direct),
            ("through the apiserver", &self.through_apiserver),
        ] {
            if let Some(r) = r {
                let (p50, p99) = r.median_round();
                let _ = writeln!(
                    o,
                    "| Metric read latency, {name} | median round: p50 {p50:.3} ms, p99 {p99:.3} ms; rounds of {} sequential reads (p50/p99/max ms): {}; {} errors{} |",
                    r.latencies_ms.len() / r.rounds.len().max(1),
                    r.rounds
                        .iter()
                        .map(|(a, b, c)| format!("{a:.3}/{b:.3}/{c:.3}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    r.errors,
                    r.first_error
                        .as_ref()
                        .map(|e| format!(", first: {e}"))
                        .unwrap_or_default()
                );
            }
        }
        if !self.activation_s.is_empty() || !self.activation_failures.is_empty() {
            let _ = writeln!(
                o,
                "| Activation latency | p50 {:.2} s, p99 {:.2} s, min {:.2} s, max {:.2} s ({} trials, {} failed) |",
                quantile(&self.activation_s, 0.5),
                quantile(&self.activation_s, 0.99),
                self.activation_s.iter().copied().fold(f64::NAN, f64::min),
                max(&self.activation_s),
                self.activation_s.len(),
                self.activation_failures.len()
            );
        }
        let _ = writeln!(
            o,
            "| Operator log | {} WARN lines, {} ERROR lines |",
            self.operator_warn_lines, self.operator_error_lines
        );
        if let Some(s) = &self.operator_shutdown {
            let _ = writeln!(o, "| Operator shutdown (SIGTERM) | {s} |");
        }
        let _ = writeln!(
            o,
            "| Processes left after teardown | {} |\n",
            if self.leftover_processes.is_empty() {
                "none".to_string()
            } else {
                self.leftover_processes.join(", ")
            }
        );

        if !self.others_mcpu.is_empty() {
            let _ = writeln!(
                o,
                "Context, CPU of the other processes over the same window (mCPU): {}.\n",
                self.others_mcpu
                    .iter()
                    .map(|(n, v)| format!("{n} {v:.0}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if let Some(r) = &self.direct
            && !r.body.is_empty()
        {
            let _ = writeln!(
                o,
                "A metric read answered: `{}`\n",
                r.body.chars().take(400).collect::<String>()
            );
        }
        if !self.activation_s.is_empty() {
            let _ = writeln!(
                o,
                "Activation trials (s): {}.\n",
                self.activation_s
                    .iter()
                    .map(|v| format!("{v:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if !self.samples.is_empty() {
            let _ = writeln!(o, "### Samples over the window\n");
            let _ = writeln!(
                o,
                "| t (s) | VmRSS (MiB) | Pss (MiB) | threads | redis connections |\n|---|---|---|---|---|"
            );
            for s in &self.samples {
                let _ = writeln!(
                    o,
                    "| {:.0} | {:.2} | {:.2} | {} | {} |",
                    s.t,
                    mib(s.rss_kib as f64),
                    mib(s.pss_kib as f64),
                    s.threads,
                    s.connections
                );
            }
            let _ = writeln!(o);
        }
        if !self.not_ready.is_empty() {
            let _ = writeln!(o, "### ScaledObjects not Ready when the wait ended\n");
            for line in &self.not_ready {
                let _ = writeln!(o, "- {line}");
            }
            let _ = writeln!(o);
        }
        if !self.operator_top_messages.is_empty() {
            let _ = writeln!(
                o,
                "### Most frequent WARN/ERROR lines of the operator (digits replaced by #)\n"
            );
            for (count, msg) in &self.operator_top_messages {
                let _ = writeln!(o, "- {count} × `{msg}`");
            }
            let _ = writeln!(o);
        }
        if !self.activation_failures.is_empty() {
            let _ = writeln!(o, "### Activation trials that failed\n");
            for f in &self.activation_failures {
                let _ = writeln!(o, "- {f}");
            }
            let _ = writeln!(o);
        }
        if !self.notes.is_empty() {
            let _ = writeln!(o, "## Notes\n");
            for note in &self.notes {
                let _ = writeln!(o, "- {note}");
            }
            let _ = writeln!(o);
        }
        if !self.errors.is_empty() {
            let _ = writeln!(o, "## Errors\n");
            for e in &self.errors {
                let _ = writeln!(o, "- {e}");
            }
            let _ = writeln!(o);
        }
        o
    }
}
