//! The scaler core: the contract a scaler author implements ([`ScalerKind`], registered through a
//! [`Descriptor`]) and everything every scaler shares — trigger metadata parsing ([`params`]), the
//! wrapper that applies the read timeout, tracing, error labels and close ([`Scaler`]), typed client
//! pools ([`Pools`]), typed backend errors ([`BackendError`]), TLS material, process settings and
//! the one HTTP client (feature `http`). No backend SDK is linked here.

// Tests may unwrap; library code may not (workspace lint).
#![cfg_attr(test, allow(clippy::unwrap_used))]

// The derive names this crate by its path, here as in the scalers' crate.
extern crate self as keda_scaler;

#[cfg(feature = "http")]
pub mod auth_modes;
pub mod config;
pub mod error;
#[cfg(feature = "http")]
pub mod http;
pub mod kind;
pub mod metrics;
pub mod params;
pub mod pools;
pub mod quantity;
pub mod scaler;
pub mod settings;
pub mod tls;

pub use config::{MetricTargetKind, PodIdentity, ScalerConfig};
pub use error::{BackendError, BackendKind, ConnectError, ErrorKind, ScalerError};
pub use keda_scaler_derive::ScalerMetadata;
pub use kind::{ActivitySink, Descriptor, Example, Reading, ScalerKind};
pub use metrics::{
    ExternalMetric, MetricSpec, MetricTarget, MetricValue, ResourceMetric, count_value,
    metric_name_with_index, milli_quantity, normalize_metric_name, normalized_metric_name,
};
pub use pools::{Lease, PooledClient, Pools};
pub use scaler::Scaler;
pub use settings::{HttpSettings, MinTlsVersion, ScalerSettings};

#[cfg(test)]
mod tests;
