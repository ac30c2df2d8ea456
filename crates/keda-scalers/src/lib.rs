//! The scalers: one folder (or file) per trigger family, each behind its cargo feature, and the
//! [`Registry`] listing them. The contract they implement and everything they share (parameter
//! parsing, the wrapper, client pools, errors, TLS, HTTP) is the `keda-scaler` crate, re-exported
//! here so callers need one dependency.

// Tests may unwrap; library code may not (workspace lint).
#![cfg_attr(test, allow(clippy::unwrap_used))]

#[cfg(any(
    feature = "prometheus",
    feature = "metrics-api",
    feature = "rabbitmq",
    feature = "azure-servicebus",
    feature = "gcp-pubsub"
))]
pub use keda_scaler::{auth_modes, http};
pub use keda_scaler::{
    config, error, kind, metrics, params, pools, quantity, scaler, settings, tls,
};

pub use keda_scaler::{
    ActivitySink, BackendError, BackendKind, ConnectError, Descriptor, ErrorKind, Example,
    ExternalMetric, HttpSettings, Lease, MetricSpec, MetricTarget, MetricTargetKind, MetricValue,
    MinTlsVersion, PodIdentity, PooledClient, Pools, Reading, ResourceMetric, Scaler, ScalerConfig,
    ScalerError, ScalerKind, ScalerSettings, metric_name_with_index, milli_quantity,
    normalize_metric_name, normalized_metric_name,
};
pub use registry::Registry;

pub mod clients;
#[cfg(all(feature = "external", any(test, feature = "testing")))]
pub mod external_peer;
#[cfg(all(feature = "kafka", any(test, feature = "testing")))]
pub mod kafka_test_admin;
pub mod known_types;
#[cfg(feature = "redis")]
pub mod redis;
pub mod registry;
pub mod scalers;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
