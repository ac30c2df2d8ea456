#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // TEMPORARY: env reads and std::time::Instant until the ScalerSettings merge
//! Scalers: the [`Scaler`] trait, declarative trigger-metadata parsing ([`params`]), shared
//! backend client pools ([`Pools`]), the trigger-type [`Registry`] and the scalers themselves
//! ([`scalers`]). Configuration errors and backend errors are distinct kinds of [`ScalerError`], so
//! the operator can tell a misconfigured trigger from an unreachable backend.

// Tests may unwrap; library code may not (workspace lint).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod auth_modes;
pub mod clients;
pub mod config;
pub mod error;
#[cfg(any(test, feature = "testing"))]
pub mod external_peer;
#[cfg(any(test, feature = "testing"))]
pub mod kafka_test_admin;
pub mod known_types;
pub mod metrics;
pub mod params;
pub mod pools;
pub mod quantity;
pub mod registry;
pub mod scaler;
pub mod scalers;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tls;

pub use config::{MetricTargetKind, PodIdentity, ScalerConfig};
pub use error::{ErrorKind, ScalerError};
pub use metrics::{
    ExternalMetric, MetricSpec, MetricTarget, MetricValue, ResourceMetric, metric_name_with_index,
    milli_quantity, normalize_metric_name, normalized_metric_name,
};
pub use pools::Pools;
pub use registry::Registry;
pub use scaler::{ActivitySink, Scaler};
