//! KEDA's Prometheus series about scalers and ScaledObjects (spec §10), kept in memory by the
//! scale loop and rendered by the telemetry endpoint.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// The common label set L of spec §10.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ScalerLabels {
    pub namespace: String,
    pub metric: String,
    pub scaled_object: String,
    /// The trigger's name, or KEDA's scaler struct name (`redisScaler`, …).
    pub scaler: String,
    pub trigger_index: usize,
    /// `scaledobject` or `scaledjob`.
    pub type_: &'static str,
}

#[derive(Debug, Clone, Default)]
struct Series {
    value: f64,
    latency: f64,
    active: bool,
    errors: u64,
}

/// (name, Prometheus type, help, how to read the value from a series).
type SeriesFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&Series) -> String,
);

#[derive(Default)]
pub struct ScalerMetrics {
    series: Mutex<BTreeMap<ScalerLabels, Series>>,
    /// (namespace, scaledObject) → errors.
    object_errors: Mutex<BTreeMap<(String, String), u64>>,
    /// (namespace, scaledObject) → paused.
    paused: Mutex<BTreeMap<(String, String), bool>>,
    /// (namespace, scaledObject) → trigger types, for the registration gauges.
    registered: Mutex<BTreeMap<(String, String), Vec<String>>>,
}

/// KEDA labels series with its Go scaler type when a trigger has no name.
pub fn scaler_label(trigger_type: &str, trigger_name: Option<&str>) -> String {
    if let Some(name) = trigger_name.filter(|n| !n.is_empty()) {
        return name.to_string();
    }
    match trigger_type {
        "redis" | "redis-cluster" | "redis-sentinel" => "redisScaler".into(),
        "redis-streams" | "redis-cluster-streams" | "redis-sentinel-streams" => {
            "redisStreamsScaler".into()
        }
        "cpu" | "memory" => "cpuMemoryScaler".into(),
        "rabbitmq" => "rabbitMQScaler".into(),
        "aws-sqs-queue" => "awsSqsQueueScaler".into(),
        other => {
            let mut out = String::new();
            let mut upper = false;
            for c in other.chars() {
                if c == '-' {
                    upper = true;
                } else if upper {
                    out.extend(c.to_uppercase());
                    upper = false;
                } else {
                    out.push(c);
                }
            }
            out.push_str("Scaler");
            out
        }
    }
}

impl ScalerMetrics {
    pub fn record_success(
        &self,
        labels: ScalerLabels,
        value: f64,
        latency: Duration,
        active: bool,
    ) {
        if let Ok(mut series) = self.series.lock() {
            let s = series.entry(labels).or_default();
            s.value = value;
            s.latency = latency.as_secs_f64();
            s.active = active;
        }
    }

    pub fn record_error(&self, labels: ScalerLabels) {
        let key = (labels.namespace.clone(), labels.scaled_object.clone());
        if let Ok(mut series) = self.series.lock() {
            series.entry(labels).or_default().errors += 1;
        }
        if let Ok(mut errors) = self.object_errors.lock() {
            *errors.entry(key).or_default() += 1;
        }
    }

    pub fn set_paused(&self, namespace: &str, scaled_object: &str, paused: bool) {
        if let Ok(mut p) = self.paused.lock() {
            p.insert((namespace.to_string(), scaled_object.to_string()), paused);
        }
    }

    pub fn register(&self, namespace: &str, scaled_object: &str, trigger_types: Vec<String>) {
        if let Ok(mut r) = self.registered.lock() {
            r.insert(
                (namespace.to_string(), scaled_object.to_string()),
                trigger_types,
            );
        }
    }

    /// Drops every series of an object (on reconcile, as KEDA does, and on deletion).
    pub fn clear_object(&self, namespace: &str, scaled_object: &str) {
        if let Ok(mut series) = self.series.lock() {
            series.retain(|k, _| !(k.namespace == namespace && k.scaled_object == scaled_object));
        }
    }

    pub fn remove_object(&self, namespace: &str, scaled_object: &str) {
        self.clear_object(namespace, scaled_object);
        let key = (namespace.to_string(), scaled_object.to_string());
        if let Ok(mut r) = self.registered.lock() {
            r.remove(&key);
        }
        if let Ok(mut p) = self.paused.lock() {
            p.remove(&key);
        }
    }

    pub fn render(&self, out: &mut String) {
        let series = self.series.lock().map(|s| s.clone()).unwrap_or_default();
        let gauges: [SeriesFamily; 4] = [
            (
                "keda_scaler_metrics_value",
                "gauge",
                "The current value for each scaler's metric that would be used by the HPA in computing the target average.",
                |s| fmt(s.value),
            ),
            (
                "keda_scaler_metrics_latency_seconds",
                "gauge",
                "The latency of retrieving current metric from each scaler.",
                |s| fmt(s.latency),
            ),
            (
                "keda_scaler_active",
                "gauge",
                "Indicates whether a scaler is active (1), or not (0).",
                |s| u8::from(s.active).to_string(),
            ),
            (
                "keda_scaler_detail_errors_total",
                "counter",
                "The total number of errors encountered for each scaler.",
                |s| s.errors.to_string(),
            ),
        ];
        for (name, kind, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (l, s) in &series {
                let _ = writeln!(
                    out,
                    "{name}{{namespace=\"{}\",metric=\"{}\",scaledObject=\"{}\",scaler=\"{}\",triggerIndex=\"{}\",type=\"{}\"}} {}",
                    esc(&l.namespace),
                    esc(&l.metric),
                    esc(&l.scaled_object),
                    esc(&l.scaler),
                    l.trigger_index,
                    l.type_,
                    value(s)
                );
            }
        }
        let errors = self
            .object_errors
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "# HELP keda_scaled_object_errors_total The number of errors that have occurred for each ScaledObject.\n# TYPE keda_scaled_object_errors_total counter"
        );
        for ((ns, so), n) in &errors {
            let _ = writeln!(
                out,
                "keda_scaled_object_errors_total{{namespace=\"{}\",scaledObject=\"{}\"}} {n}",
                esc(ns),
                esc(so)
            );
        }
        let paused = self.paused.lock().map(|p| p.clone()).unwrap_or_default();
        let _ = writeln!(
            out,
            "# HELP keda_scaled_object_paused Indicates whether a ScaledObject is paused\n# TYPE keda_scaled_object_paused gauge"
        );
        for ((ns, so), p) in &paused {
            let _ = writeln!(
                out,
                "keda_scaled_object_paused{{namespace=\"{}\",scaledObject=\"{}\"}} {}",
                esc(ns),
                esc(so),
                u8::from(*p)
            );
        }
        let registered = self
            .registered
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default();
        let mut per_namespace: BTreeMap<&str, u64> = BTreeMap::new();
        let mut per_trigger: BTreeMap<&str, u64> = BTreeMap::new();
        for ((ns, _), types) in &registered {
            *per_namespace
                .entry(if ns.is_empty() {
                    "default"
                } else {
                    ns.as_str()
                })
                .or_default() += 1;
            for t in types {
                *per_trigger.entry(t.as_str()).or_default() += 1;
            }
        }
        let _ = writeln!(
            out,
            "# HELP keda_resource_registered_total Total number of KEDA custom resources per namespace for each custom resource type (CRD) handled by the operator.\n# TYPE keda_resource_registered_total gauge"
        );
        for (ns, n) in per_namespace {
            let _ = writeln!(
                out,
                "keda_resource_registered_total{{type=\"scaled_object\",namespace=\"{}\"}} {n}",
                esc(ns)
            );
        }
        let _ = writeln!(
            out,
            "# HELP keda_trigger_registered_total Total number of triggers per trigger type handled by the operator.\n# TYPE keda_trigger_registered_total gauge"
        );
        for (t, n) in per_trigger {
            let _ = writeln!(
                out,
                "keda_trigger_registered_total{{type=\"{}\"}} {n}",
                esc(t)
            );
        }
    }
}

fn fmt(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "NaN".into()
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> ScalerLabels {
        ScalerLabels {
            namespace: "ns".into(),
            metric: "s0-redis-q".into(),
            scaled_object: "so".into(),
            scaler: scaler_label("redis", None),
            trigger_index: 0,
            type_: "scaledobject",
        }
    }

    #[test]
    fn renders_kedas_series() {
        let m = ScalerMetrics::default();
        m.record_success(labels(), 12.0, Duration::from_millis(3), true);
        m.record_error(labels());
        m.set_paused("ns", "so", false);
        m.register("ns", "so", vec!["redis".into()]);
        let mut out = String::new();
        m.render(&mut out);
        let l = "namespace=\"ns\",metric=\"s0-redis-q\",scaledObject=\"so\",scaler=\"redisScaler\",triggerIndex=\"0\",type=\"scaledobject\"";
        assert!(
            out.contains(&format!("keda_scaler_metrics_value{{{l}}} 12")),
            "{out}"
        );
        assert!(out.contains(&format!("keda_scaler_active{{{l}}} 1")));
        assert!(out.contains(&format!("keda_scaler_detail_errors_total{{{l}}} 1")));
        assert!(
            out.contains("keda_scaled_object_errors_total{namespace=\"ns\",scaledObject=\"so\"} 1")
        );
        assert!(out.contains("keda_scaled_object_paused{namespace=\"ns\",scaledObject=\"so\"} 0"));
        assert!(
            out.contains(
                "keda_resource_registered_total{type=\"scaled_object\",namespace=\"ns\"} 1"
            )
        );
        assert!(out.contains("keda_trigger_registered_total{type=\"redis\"} 1"));
        m.remove_object("ns", "so");
        let mut out = String::new();
        m.render(&mut out);
        assert!(!out.contains("scaledObject=\"so\",scaler"));
    }

    #[test]
    fn scaler_labels_follow_keda() {
        assert_eq!(scaler_label("redis-cluster", None), "redisScaler");
        assert_eq!(scaler_label("metrics-api", None), "metricsApiScaler");
        assert_eq!(scaler_label("redis", Some("orders")), "orders");
    }
}
