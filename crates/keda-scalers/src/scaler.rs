//! The `Scaler` trait every trigger type implements.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::ScalerError;
use crate::metrics::{MetricSpec, MetricValue};

/// Where a push scaler reports the activity its backend announces between polls (`true`: the
/// trigger just became active). Called from the scaler's own stream task; must not block.
pub type ActivitySink = Arc<dyn Fn(bool) + Send + Sync>;

/// A built trigger: knows its metric specs and answers polls. Shared as `Arc<dyn Scaler>` between
/// the scale loop and the metrics API, so every method takes `&self`.
#[async_trait]
pub trait Scaler: Send + Sync {
    /// The metrics this trigger contributes to the HPA. Pure: no I/O.
    fn metric_specs(&self) -> Vec<MetricSpec>;

    /// Reads the backend for `metric_name` (one of the names from [`Scaler::metric_specs`]). Returns
    /// the values, named as asked, and whether the trigger is active (value strictly above the
    /// activation threshold unless the scaler documents otherwise).
    async fn metrics_and_activity(
        &self,
        metric_name: &str,
    ) -> Result<(Vec<MetricValue>, bool), ScalerError>;

    /// Releases backend resources (its share of a pooled client). Later polls fail with a backend
    /// error. Idempotent.
    async fn close(&self);

    /// Push scalers (`external-push`) start delivering pushed activity to `sink`; a later call
    /// replaces the sink. Polling scalers ignore it.
    fn watch_activity(&self, sink: ActivitySink) {
        drop(sink);
    }
}
