//! The built trigger every caller sees: one wrapper around any [`ScalerKind`]. It owns what used
//! to be written per scaler: the read timeout, the trigger label on errors, one log line per failed
//! read inside a span naming scaler, namespace, object and trigger, and close (dropping the
//! connected value releases its pooled client).

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use tracing::Instrument;

use crate::config::ScalerConfig;
use crate::error::{BackendError, ScalerError};
use crate::kind::{ActivitySink, Descriptor, Reading, ScalerKind};
use crate::metrics::{MetricSpec, MetricValue};

/// A connected scaler with its type erased.
trait Connected: Send + Sync {
    fn read<'a>(&'a self, metric_name: &'a str) -> BoxFuture<'a, Result<Reading, BackendError>>;
    fn watch_activity(&self, sink: ActivitySink);
}

impl<S: ScalerKind> Connected for S {
    fn read<'a>(&'a self, metric_name: &'a str) -> BoxFuture<'a, Result<Reading, BackendError>> {
        Box::pin(ScalerKind::read(self, metric_name))
    }

    fn watch_activity(&self, sink: ActivitySink) {
        ScalerKind::watch_activity(self, sink);
    }
}

/// A built trigger of a ScaledObject or ScaledJob. Shared as `Arc<Scaler>` between the scale loop
/// and the metrics API, so every method takes `&self`.
pub struct Scaler {
    descriptor: &'static Descriptor,
    trigger: String,
    namespace: String,
    object: String,
    specs: Vec<MetricSpec>,
    read_timeout: Duration,
    // `None` after `close()`.
    connected: Mutex<Option<Arc<dyn Connected>>>,
}

impl Scaler {
    pub(crate) fn new<S: ScalerKind>(
        descriptor: &'static Descriptor,
        config: &ScalerConfig,
        specs: Vec<MetricSpec>,
        read_timeout: Duration,
        connected: S,
    ) -> Self {
        Self {
            descriptor,
            trigger: config.trigger_label(),
            namespace: config.scalable_object_namespace.clone(),
            object: config.scalable_object_name.clone(),
            specs,
            read_timeout,
            connected: Mutex::new(Some(Arc::new(connected))),
        }
    }

    /// The trigger type.
    pub fn trigger_type(&self) -> &'static str {
        self.descriptor.trigger_type
    }

    /// The trigger's label, as errors name it (`redis trigger 0 ("orders")`).
    pub fn trigger(&self) -> &str {
        &self.trigger
    }

    /// How long one read may take.
    pub fn read_timeout(&self) -> Duration {
        self.read_timeout
    }

    /// The metrics this trigger contributes to the HPA. Pure: no I/O.
    pub fn metric_specs(&self) -> Vec<MetricSpec> {
        self.specs.clone()
    }

    /// Reads the backend for `metric_name` (one of the names from [`Scaler::metric_specs`]):
    /// the values, named as asked, and whether the trigger is active. Bounded by the read timeout.
    pub async fn metrics_and_activity(
        &self,
        metric_name: &str,
    ) -> Result<(Vec<MetricValue>, bool), ScalerError> {
        let span = tracing::debug_span!(
            "scaler_read",
            scaler = self.descriptor.trigger_type,
            namespace = %self.namespace,
            object = %self.object,
            trigger = %self.trigger,
        );
        let result = match self.connected() {
            None => Err(BackendError::closed()),
            Some(connected) => {
                match tokio::time::timeout(self.read_timeout, connected.read(metric_name))
                    .instrument(span.clone())
                    .await
                {
                    Ok(result) => result,
                    Err(_) => Err(BackendError::timeout(format!(
                        "no answer within {:?}",
                        self.read_timeout
                    ))),
                }
            }
        };
        match result {
            Ok(reading) => Ok((reading.values, reading.active)),
            Err(error) => {
                span.in_scope(|| {
                    tracing::warn!(kind = %error.kind, error = %error.message, "scaler read failed");
                });
                Err(ScalerError::from_backend(self.trigger.clone(), error))
            }
        }
    }

    /// Push scalers start delivering announced activity to `sink`; polling scalers ignore it.
    pub fn watch_activity(&self, sink: ActivitySink) {
        if let Some(connected) = self.connected() {
            connected.watch_activity(sink);
        }
    }

    /// Releases the backend (its share of a pooled client, push streams). Later reads fail with
    /// a `closed` backend error. Idempotent.
    pub async fn close(&self) {
        let connected = self
            .connected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(connected);
    }

    fn connected(&self) -> Option<Arc<dyn Connected>> {
        self.connected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl fmt::Debug for Scaler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scaler")
            .field("trigger_type", &self.descriptor.trigger_type)
            .field("trigger", &self.trigger)
            .field("specs", &self.specs)
            .field("read_timeout", &self.read_timeout)
            .finish_non_exhaustive()
    }
}
