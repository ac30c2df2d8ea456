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
    ScalerError, ScalerKind, ScalerMetadata, ScalerSettings, metric_name_with_index,
    milli_quantity, normalize_metric_name, normalized_metric_name,
};
pub use registry::Registry;

#[cfg(feature = "aws-sqs-queue")]
pub mod aws;
#[cfg(feature = "azure-servicebus")]
pub mod azure;
#[cfg(feature = "beanstalkd")]
pub mod beanstalkd;
pub mod clients;
#[cfg(feature = "cpu-memory")]
pub mod cpu_memory;
#[cfg(feature = "cron")]
pub mod cron;
#[cfg(feature = "external")]
pub mod external;
/// Old path of the external test peer, still imported by the end-to-end tests.
#[cfg(all(feature = "external", any(test, feature = "testing")))]
pub use external::test_peer as external_peer;
#[cfg(feature = "gcp-pubsub")]
pub mod gcp;
#[cfg(feature = "kafka")]
pub mod kafka;
/// Old path of the kafka test admin, still imported by the end-to-end tests.
#[cfg(all(feature = "kafka", any(test, feature = "testing")))]
pub use kafka::test_admin as kafka_test_admin;
pub mod known_types;
#[cfg(feature = "metrics-api")]
pub mod metrics_api;
#[cfg(feature = "prometheus")]
pub mod prometheus;
#[cfg(feature = "rabbitmq")]
pub mod rabbitmq;
#[cfg(feature = "redis")]
pub mod redis;
pub mod registry;
pub mod scalers;
pub mod schema;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
