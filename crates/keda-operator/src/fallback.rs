//! Fallback (spec §4.7): when a metric keeps failing beyond `failureThreshold`, the HPA is fed
//! `target × R` instead of an error, so the workload holds a known size while the source is down.

use keda_api::scaled_object::{Fallback, FallbackBehavior};

/// A fallback KEDA would honour; others are ignored (and reported as NoFallbackFound).
pub fn valid(fallback: Option<&Fallback>) -> Option<&Fallback> {
    fallback.filter(|f| f.failure_threshold >= 0 && f.replicas >= 0)
}

/// Replicas to hold (R), from the behaviour and the target's current replicas.
pub fn replicas(fallback: &Fallback, current: i32) -> i32 {
    match fallback.behavior {
        FallbackBehavior::Static | FallbackBehavior::ScalingModifiers => fallback.replicas,
        FallbackBehavior::CurrentReplicas => current,
        FallbackBehavior::CurrentReplicasIfHigher => current.max(fallback.replicas),
        FallbackBehavior::CurrentReplicasIfLower => current.min(fallback.replicas),
    }
}

/// Falling back starts strictly above the threshold.
pub fn applies(fallback: &Fallback, failures: i32) -> bool {
    failures > fallback.failure_threshold
}

/// The value served for an AverageValue target: `target × R` (the HPA divides by replicas).
pub fn metric_value(target: f64, replicas: i32) -> f64 {
    target * f64::from(replicas)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fb(behavior: FallbackBehavior) -> Fallback {
        Fallback {
            failure_threshold: 3,
            replicas: 4,
            behavior,
        }
    }

    #[test]
    fn replicas_per_behavior() {
        assert_eq!(replicas(&fb(FallbackBehavior::Static), 7), 4);
        assert_eq!(replicas(&fb(FallbackBehavior::CurrentReplicas), 7), 7);
        assert_eq!(
            replicas(&fb(FallbackBehavior::CurrentReplicasIfHigher), 7),
            7
        );
        assert_eq!(
            replicas(&fb(FallbackBehavior::CurrentReplicasIfHigher), 2),
            4
        );
        assert_eq!(
            replicas(&fb(FallbackBehavior::CurrentReplicasIfLower), 7),
            4
        );
        assert_eq!(
            replicas(&fb(FallbackBehavior::CurrentReplicasIfLower), 2),
            2
        );
    }

    #[test]
    fn threshold_is_strict_and_invalid_fallbacks_are_ignored() {
        let f = fb(FallbackBehavior::Static);
        assert!(!applies(&f, 3));
        assert!(applies(&f, 4));
        let bad = Fallback {
            failure_threshold: -1,
            replicas: 2,
            behavior: FallbackBehavior::Static,
        };
        assert!(valid(Some(&bad)).is_none());
        assert!(valid(Some(&f)).is_some());
        assert_eq!(metric_value(5.0, 4), 20.0);
    }
}
