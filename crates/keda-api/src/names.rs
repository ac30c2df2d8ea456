//! The names KEDA's objects, the operator and the tools agree on: the finalizer, labels,
//! annotations, condition types and statuses, and event reasons. Each is defined here once, with
//! KEDA's exact text, so the controllers, the CLI and a webhook cannot drift apart.

use std::fmt;

/// The finalizer the operator puts on ScaledObjects, ScaledJobs and (Cluster)TriggerAuthentications.
pub const FINALIZER: &str = "finalizer.keda.sh";

/// Labels the operator sets and selects on.
pub mod labels {
    /// On the ScaledObject and in every External metric's selector: how the metrics API knows
    /// which ScaledObject an HPA request is for.
    pub const SCALED_OBJECT_NAME: &str = "scaledobject.keda.sh/name";
    /// On every Job a ScaledJob creates; the ScaledJob's Jobs are listed by it.
    pub const SCALED_JOB_NAME: &str = "scaledjob.keda.sh/name";
}

/// Annotations users set on KEDA objects, and the ones the operator writes.
pub mod annotations {
    /// Pauses scaling entirely (a bool; a value that does not parse counts as true).
    pub const PAUSED: &str = "autoscaling.keda.sh/paused";
    /// Pauses a ScaledObject and pins its target to this many replicas.
    pub const PAUSED_REPLICAS: &str = "autoscaling.keda.sh/paused-replicas";
    /// Blocks scale-in: the HPA's `scaleDown.selectPolicy` becomes `Disabled`.
    pub const PAUSED_SCALE_IN: &str = "autoscaling.keda.sh/paused-scale-in";
    /// Blocks scale-out: the HPA's `scaleUp.selectPolicy` becomes `Disabled`.
    pub const PAUSED_SCALE_OUT: &str = "autoscaling.keda.sh/paused-scale-out";
    /// Treats the ScaledObject as active whatever its triggers say.
    pub const FORCE_ACTIVATION: &str = "autoscaling.keda.sh/force-activation";
    /// Comma-separated ScaledObject label keys that are not copied to the HPA.
    pub const HPA_EXCLUDED_LABELS: &str = "scaledobject.keda.sh/hpa-excluded-labels";
    /// The ScaledJob generation a Job was created from (rollout cleanup compares it).
    pub const SCALED_JOB_GENERATION: &str = "scaledjob.keda.sh/generation";
    /// Comma-separated ScaledJob label keys that are not copied to its Jobs.
    pub const JOB_EXCLUDED_LABELS: &str = "scaledjob.keda.sh/job-excluded-labels";
}

/// Condition types of ScaledObject and ScaledJob status.
pub mod conditions {
    pub const READY: &str = "Ready";
    pub const ACTIVE: &str = "Active";
    pub const FALLBACK: &str = "Fallback";
    pub const PAUSED: &str = "Paused";
}

/// A condition's `status`: Kubernetes' three values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    /// The text stored in `status.conditions[].status`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }

    /// `True` when `value` is true, else `False`.
    #[must_use]
    pub const fn from_bool(value: bool) -> Self {
        if value { Self::True } else { Self::False }
    }
}

impl fmt::Display for ConditionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every reason the operator publishes Kubernetes events with. `as_str` is KEDA's reason text
/// (`pkg/eventreason`), which users filter events by, so it must not change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventReason {
    ScaledObjectReady,
    ScaledObjectCheckFailed,
    ScaledObjectUpdateFailed,
    ScaledObjectPaused,
    ScaledObjectUnpaused,
    ScaledObjectDeleted,
    ScaledJobReady,
    ScaledJobCheckFailed,
    ScaledJobUpdateFailed,
    ScaledJobPaused,
    ScaledJobUnpaused,
    ScaledJobDeleted,
    ScaledJobActive,
    ScaledJobInactive,
    ScaledJobRolloutCleanupStarted,
    ScaledJobRolloutCleanupCompleted,
    ScaledJobRolloutCleanupFailed,
    KedaScalersStarted,
    KedaScalersStopped,
    KedaScalerFailed,
    KedaScaleTargetActivated,
    KedaScaleTargetDeactivated,
    KedaScaleTargetActivationFailed,
    KedaScaleTargetDeactivationFailed,
    KedaJobsCreated,
    KedaJobCreateFailed,
    TriggerAuthenticationAdded,
    TriggerAuthenticationDeleted,
    ClusterTriggerAuthenticationAdded,
    ClusterTriggerAuthenticationUpdated,
    ClusterTriggerAuthenticationDeleted,
}

impl EventReason {
    /// KEDA's reason text.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ScaledObjectReady => "ScaledObjectReady",
            Self::ScaledObjectCheckFailed => "ScaledObjectCheckFailed",
            Self::ScaledObjectUpdateFailed => "ScaledObjectUpdateFailed",
            Self::ScaledObjectPaused => "ScaledObjectPaused",
            Self::ScaledObjectUnpaused => "ScaledObjectUnpaused",
            Self::ScaledObjectDeleted => "ScaledObjectDeleted",
            Self::ScaledJobReady => "ScaledJobReady",
            Self::ScaledJobCheckFailed => "ScaledJobCheckFailed",
            Self::ScaledJobUpdateFailed => "ScaledJobUpdateFailed",
            Self::ScaledJobPaused => "ScaledJobPaused",
            Self::ScaledJobUnpaused => "ScaledJobUnpaused",
            Self::ScaledJobDeleted => "ScaledJobDeleted",
            Self::ScaledJobActive => "ScaledJobActive",
            Self::ScaledJobInactive => "ScaledJobInactive",
            Self::ScaledJobRolloutCleanupStarted => "ScaledJobRolloutCleanupStarted",
            Self::ScaledJobRolloutCleanupCompleted => "ScaledJobRolloutCleanupCompleted",
            Self::ScaledJobRolloutCleanupFailed => "ScaledJobRolloutCleanupFailed",
            Self::KedaScalersStarted => "KEDAScalersStarted",
            Self::KedaScalersStopped => "KEDAScalersStopped",
            Self::KedaScalerFailed => "KEDAScalerFailed",
            Self::KedaScaleTargetActivated => "KEDAScaleTargetActivated",
            Self::KedaScaleTargetDeactivated => "KEDAScaleTargetDeactivated",
            Self::KedaScaleTargetActivationFailed => "KEDAScaleTargetActivationFailed",
            Self::KedaScaleTargetDeactivationFailed => "KEDAScaleTargetDeactivationFailed",
            Self::KedaJobsCreated => "KEDAJobsCreated",
            Self::KedaJobCreateFailed => "KEDAJobCreateFailed",
            Self::TriggerAuthenticationAdded => "TriggerAuthenticationAdded",
            Self::TriggerAuthenticationDeleted => "TriggerAuthenticationDeleted",
            Self::ClusterTriggerAuthenticationAdded => "ClusterTriggerAuthenticationAdded",
            Self::ClusterTriggerAuthenticationUpdated => "ClusterTriggerAuthenticationUpdated",
            Self::ClusterTriggerAuthenticationDeleted => "ClusterTriggerAuthenticationDeleted",
        }
    }
}

impl fmt::Display for EventReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keda_spellings() {
        assert_eq!(
            EventReason::KedaScalersStarted.as_str(),
            "KEDAScalersStarted"
        );
        assert_eq!(
            EventReason::ScaledJobRolloutCleanupFailed.to_string(),
            "ScaledJobRolloutCleanupFailed"
        );
        assert_eq!(ConditionStatus::Unknown.as_str(), "Unknown");
        assert_eq!(ConditionStatus::from_bool(false), ConditionStatus::False);
    }
}
