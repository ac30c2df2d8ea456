//! The `keda.sh/v1alpha1` API: types, CRD generation, the names and pure rules the operator, the
//! CLI and a webhook share, and offline validation. No I/O, no async.

// Tests may unwrap; library code may not (workspace lint).
#![cfg_attr(test, allow(clippy::unwrap_used))]
// kube-derive's repeated `printcolumn(...)` arguments look like duplicated attributes to clippy.
#![allow(clippy::duplicated_attributes)]

pub mod common;
pub mod crd;
pub mod names;
pub mod problem;
pub mod rules;
pub mod scaled_job;
pub mod scaled_object;
pub mod trigger_auth;
pub mod validate;

pub use common::{AuthenticationRef, AuthenticationRefKind, Condition, ScaleTriggers};
pub use scaled_job::{ScaledJob, ScaledJobSpec, ScaledJobStatus};
pub use scaled_object::{ScaledObject, ScaledObjectSpec, ScaledObjectStatus};
pub use trigger_auth::{
    AuthenticationSpec, ClusterTriggerAuthentication, TriggerAuthentication,
    TriggerAuthenticationStatus,
};

/// API group of every KEDA kind.
pub const GROUP: &str = "keda.sh";
/// The only served version.
pub const API_VERSION: &str = "keda.sh/v1alpha1";
