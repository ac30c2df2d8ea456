//! Pieces shared by ScaledObject and ScaledJob: triggers, conditions and the small status types.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One entry of `spec.triggers`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleTriggers {
    /// Scaler type, e.g. `redis`, `kafka`, `cpu`.
    #[schemars(length(min = 1))]
    pub r#type: String,
    /// Optional trigger name; unique within one object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_cached_metrics: Option<bool>,
    /// Scaler parameters (all values are strings).
    pub metadata: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication_ref: Option<AuthenticationRef>,
    /// `AverageValue` (default), `Value` or `Utilization`. Free-form in the CRD, as in KEDA:
    /// the scaler decides what it supports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_type: Option<String>,
}

/// Points a trigger at a TriggerAuthentication or ClusterTriggerAuthentication.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct AuthenticationRef {
    pub name: String,
    /// Empty means `TriggerAuthentication`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<AuthenticationRefKind>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum AuthenticationRefKind {
    TriggerAuthentication,
    ClusterTriggerAuthentication,
}

/// A status condition as KEDA writes it: no lastTransitionTime, no observedGeneration.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct Condition {
    pub r#type: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Activity of one trigger, keyed by its external metric name in status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TriggerActivityStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_active: Option<bool>,
}
