//! What a scaler is built from: one trigger of a ScaledObject or ScaledJob, with its authentication
//! parameters and the scale target's environment already resolved by the operator.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::error::ScalerError;

/// `spec.triggers[i].metricType`: where the HPA puts the target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MetricTargetKind {
    /// `averageValue` (the default when `metricType` is empty).
    #[default]
    AverageValue,
    /// `value`.
    Value,
    /// `averageUtilization`; only `cpu` and `memory` accept it.
    Utilization,
}

impl MetricTargetKind {
    /// The name used in the CRD and in the HPA spec.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AverageValue => "AverageValue",
            Self::Value => "Value",
            Self::Utilization => "Utilization",
        }
    }
}

impl fmt::Display for MetricTargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a `metricType` that is none of the three names.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown metricType {0:?}, allowed values are 'AverageValue', 'Value' or 'Utilization'")]
pub struct UnknownMetricType(pub String);

impl FromStr for MetricTargetKind {
    type Err = UnknownMetricType;

    /// Empty means `AverageValue`; the names are case-sensitive, as in the HPA API.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "" | "AverageValue" => Ok(Self::AverageValue),
            "Value" => Ok(Self::Value),
            "Utilization" => Ok(Self::Utilization),
            other => Err(UnknownMetricType(other.to_owned())),
        }
    }
}

/// The pod identity a TriggerAuthentication names (`spec.podIdentity`), after resolution: for
/// `aws` the role ARN is already filled from the workload's ServiceAccount when
/// `identityOwner: workload`. Scalers that talk to a cloud read it; the others ignore it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodIdentity {
    /// `none`, `azure-workload`, `gcp`, `aws` or `aws-eks`.
    pub provider: String,
    /// `identityId` (azure-workload).
    pub identity_id: Option<String>,
    /// `identityTenantId` (azure-workload).
    pub identity_tenant_id: Option<String>,
    /// `identityAuthorityHost` (azure-workload).
    pub identity_authority_host: Option<String>,
    /// `roleArn` (aws).
    pub role_arn: Option<String>,
    /// `externalID` (aws).
    pub external_id: Option<String>,
    /// `identityOwner`: `keda` (default) or `workload`.
    pub identity_owner: Option<String>,
}

impl PodIdentity {
    /// True for a provider other than `none`.
    pub fn is_set(&self) -> bool {
        !self.provider.is_empty() && self.provider != "none"
    }
}

/// Everything a scaler is built from.
#[derive(Clone, Default, PartialEq)]
pub struct ScalerConfig {
    /// Position of the trigger in `spec.triggers` (0-based); the `s<index>-` metric-name prefix.
    pub trigger_index: usize,
    /// `spec.triggers[i].type`, e.g. `redis`.
    pub trigger_type: String,
    /// `spec.triggers[i].name`, if set.
    pub trigger_name: Option<String>,
    /// `spec.triggers[i].metadata`.
    pub metadata: BTreeMap<String, String>,
    /// Resolved TriggerAuthentication / ClusterTriggerAuthentication parameters.
    pub auth_params: BTreeMap<String, String>,
    /// The scale target container's environment, for `<param>FromEnv`.
    pub resolved_env: BTreeMap<String, String>,
    /// `podIdentity` of the referenced TriggerAuthentication, if any.
    pub pod_identity: Option<PodIdentity>,
    /// `spec.triggers[i].metricType` (empty → `AverageValue`).
    pub metric_type: MetricTargetKind,
    /// Namespace of the ScaledObject / ScaledJob.
    pub scalable_object_namespace: String,
    /// Name of the ScaledObject / ScaledJob.
    pub scalable_object_name: String,
    /// True for ScaledJob triggers (KEDA's `asMetricSource`): some scalers then stop requiring their
    /// target value.
    pub as_metric_source: bool,
}

impl ScalerConfig {
    /// A config for trigger `index` of type `trigger_type`, everything else empty.
    pub fn new(trigger_type: impl Into<String>, trigger_index: usize) -> Self {
        Self {
            trigger_type: trigger_type.into(),
            trigger_index,
            ..Self::default()
        }
    }

    /// Replaces the metadata.
    #[must_use]
    pub fn with_metadata<K: Into<String>, V: Into<String>>(
        mut self,
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.metadata = collect(entries);
        self
    }

    /// Replaces the authentication parameters.
    #[must_use]
    pub fn with_auth_params<K: Into<String>, V: Into<String>>(
        mut self,
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.auth_params = collect(entries);
        self
    }

    /// Replaces the resolved environment.
    #[must_use]
    pub fn with_resolved_env<K: Into<String>, V: Into<String>>(
        mut self,
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.resolved_env = collect(entries);
        self
    }

    /// How errors name this trigger: `redis trigger 0`, or `redis trigger 0 ("orders")` when named.
    pub fn trigger_label(&self) -> String {
        match &self.trigger_name {
            Some(name) if !name.is_empty() => format!(
                "{} trigger {} ({name:?})",
                self.trigger_type, self.trigger_index
            ),
            _ => format!("{} trigger {}", self.trigger_type, self.trigger_index),
        }
    }

    /// The target type for an External metric: `Utilization` is refused (only cpu/memory take it).
    pub fn external_metric_type(&self) -> Result<MetricTargetKind, ScalerError> {
        match self.metric_type {
            MetricTargetKind::Utilization => Err(ScalerError::config(
                self.trigger_label(),
                "metricType",
                "'Utilization' metric type is unsupported for external metrics, allowed values are 'Value' or 'AverageValue'",
            )),
            kind => Ok(kind),
        }
    }
}

fn collect<K: Into<String>, V: Into<String>>(
    entries: impl IntoIterator<Item = (K, V)>,
) -> BTreeMap<String, String> {
    entries
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
}

/// Secrets live in auth params and env values, so only their keys are printed.
impl fmt::Debug for ScalerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScalerConfig")
            .field("trigger_index", &self.trigger_index)
            .field("trigger_type", &self.trigger_type)
            .field("trigger_name", &self.trigger_name)
            .field("metadata", &self.metadata)
            .field("auth_params", &self.auth_params.keys().collect::<Vec<_>>())
            .field(
                "resolved_env",
                &self.resolved_env.keys().collect::<Vec<_>>(),
            )
            .field("pod_identity", &self.pod_identity)
            .field("metric_type", &self.metric_type)
            .field("scalable_object_namespace", &self.scalable_object_namespace)
            .field("scalable_object_name", &self.scalable_object_name)
            .field("as_metric_source", &self.as_metric_source)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_type_parsing() {
        assert_eq!(
            "".parse::<MetricTargetKind>(),
            Ok(MetricTargetKind::AverageValue)
        );
        assert_eq!(
            "Value".parse::<MetricTargetKind>(),
            Ok(MetricTargetKind::Value)
        );
        assert_eq!(
            "Utilization".parse::<MetricTargetKind>(),
            Ok(MetricTargetKind::Utilization)
        );
        assert!("value".parse::<MetricTargetKind>().is_err());
    }

    #[test]
    fn utilization_is_refused_for_external_metrics() {
        let mut cfg = ScalerConfig::new("redis", 2);
        cfg.metric_type = MetricTargetKind::Utilization;
        let err = cfg.external_metric_type().unwrap_err();
        assert!(err.is_config());
        assert_eq!(err.parameter(), Some("metricType"));
        assert!(err.to_string().starts_with("redis trigger 2: "));
        cfg.metric_type = MetricTargetKind::Value;
        assert_eq!(cfg.external_metric_type().unwrap(), MetricTargetKind::Value);
    }

    #[test]
    fn debug_hides_secret_values() {
        let cfg = ScalerConfig::new("redis", 0)
            .with_auth_params([("password", "hunter2")])
            .with_resolved_env([("REDIS_PASSWORD", "hunter3")]);
        let printed = format!("{cfg:?}");
        assert!(printed.contains("password"));
        assert!(!printed.contains("hunter2"));
        assert!(!printed.contains("hunter3"));
    }

    #[test]
    fn trigger_label_uses_name_when_set() {
        let mut cfg = ScalerConfig::new("redis", 1);
        assert_eq!(cfg.trigger_label(), "redis trigger 1");
        cfg.trigger_name = Some("orders".into());
        assert_eq!(cfg.trigger_label(), "redis trigger 1 (\"orders\")");
    }
}
