//! Reading the scalers of a [`TriggerSet`]: the one place the runtime calls a scaler for a value,
//! so a poll of either kind and the external-metrics API's live read share it. The reads of a
//! poll are collected as [`Reading`]s; what they mean (failures, fallback, aggregation) is decided
//! by each kind's pure plan.

use std::sync::Arc;
use std::time::Duration;

use keda_scalers::{MetricSpec, MetricValue, Scaler, ScalerError};

use super::triggers::TriggerSet;

/// How the runtime holds a built scaler.
pub type ScalerRef = Arc<Scaler>;

/// Reads `metric` from `scaler`: its values and whether the trigger is active. The scaler's
/// wrapper bounds the read by its timeout and labels its errors.
pub async fn read(
    scaler: &ScalerRef,
    metric: &str,
) -> Result<(Vec<MetricValue>, bool), ScalerError> {
    scaler.metrics_and_activity(metric).await
}

/// Which metrics of each trigger a poll reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metrics {
    /// Every external metric (ScaledObject: each feeds the HPA).
    All,
    /// The first external metric of each trigger (ScaledJob: one queue per trigger).
    FirstPerTrigger,
}

/// One metric read in one poll.
#[derive(Debug)]
pub struct Reading {
    /// Position of the trigger in the set (and in `spec.triggers`).
    pub trigger: usize,
    /// The external metric's name.
    pub metric: String,
    /// The spec the metric was read for (its target feeds fallback).
    pub spec: MetricSpec,
    pub result: Result<(Vec<MetricValue>, bool), ScalerError>,
    pub elapsed: Duration,
}

impl Reading {
    /// The value named like the metric (else the first one), 0 when there is none.
    pub fn value(&self) -> f64 {
        match &self.result {
            Ok((values, _)) => values
                .iter()
                .find(|v| v.metric_name == self.metric)
                .or(values.first())
                .map_or(0.0, |v| v.value),
            Err(_) => 0.0,
        }
    }
}

/// Reads the set's triggers one after the other, as `which` says. Resource metrics (cpu,
/// memory) are the HPA's own and are not read.
pub async fn read_all(set: &TriggerSet, which: Metrics) -> Vec<Reading> {
    let mut readings = Vec::new();
    for (position, trigger) in set.triggers.iter().enumerate() {
        let external = trigger
            .specs
            .iter()
            .filter(|s| s.external_metric_name().is_some());
        let specs: Vec<&MetricSpec> = match which {
            Metrics::All => external.collect(),
            Metrics::FirstPerTrigger => external.take(1).collect(),
        };
        for spec in specs {
            let Some(metric) = spec.external_metric_name() else {
                continue;
            };
            let started = tokio::time::Instant::now();
            let result = read(&trigger.scaler, metric).await;
            readings.push(Reading {
                trigger: position,
                metric: metric.to_string(),
                spec: spec.clone(),
                result,
                elapsed: started.elapsed(),
            });
        }
    }
    readings
}
