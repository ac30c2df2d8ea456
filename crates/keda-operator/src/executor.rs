//! The ScaledObject executor's decision table (spec §4.2–§4.5), as a pure function: given the
//! poll's outcome and the target's replicas, what to scale to and which conditions to write.
//! Applying the decision (the `/scale` patch, events, status) happens in the scale loop.

use jiff::{SignedDuration, Timestamp};
use keda_api::names::ConditionStatus;

/// What one poll learned, plus the object's settings that matter for the decision.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleInput {
    /// Some trigger (or its fallback) is active.
    pub is_active: bool,
    /// `autoscaling.keda.sh/force-activation` is true.
    pub force_activation: bool,
    /// Some scaler failed in this poll.
    pub is_error: bool,
    /// The target's desired replicas (`spec.replicas`).
    pub current_replicas: i32,
    pub min_replicas: i32,
    pub idle_replicas: Option<i32>,
    /// `spec.fallback.replicas` when a fallback is configured.
    pub fallback_replicas: Option<i32>,
    pub paused_scale_in: bool,
    pub paused_scale_out: bool,
    pub last_active_time: Option<Timestamp>,
    pub creation_time: Option<Timestamp>,
    pub cooldown_period: SignedDuration,
    pub initial_cooldown_period: SignedDuration,
    pub now: Timestamp,
}

/// A change of the target's replicas, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleAction {
    /// From zero (or idle) to min, or to 1 — emits `KEDAScaleTargetActivated`.
    Activate { to: i32 },
    /// After the cooldown, to idle or min or zero — emits `KEDAScaleTargetDeactivated`.
    Deactivate { to: i32 },
    /// Inactive below min (no idle mode): raise to min.
    RaiseToMin { to: i32 },
}

/// One condition to write: (status, reason, message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionValue {
    pub status: ConditionStatus,
    pub reason: &'static str,
    pub message: &'static str,
}

const fn cond(
    status: ConditionStatus,
    reason: &'static str,
    message: &'static str,
) -> ConditionValue {
    ConditionValue {
        status,
        reason,
        message,
    }
}

pub const READY: ConditionValue = cond(
    ConditionStatus::True,
    "ScaledObjectReady",
    "ScaledObject is defined correctly and is ready for scaling",
);
pub const PARTIAL_TRIGGER_ERROR: ConditionValue = cond(
    ConditionStatus::Unknown,
    "PartialTriggerError",
    "Some triggers defined in ScaledObject are not working correctly",
);
pub const TRIGGER_ERROR: ConditionValue = cond(
    ConditionStatus::False,
    "TriggerError",
    "Triggers defined in ScaledObject are not working correctly",
);
pub const ACTIVE: ConditionValue = cond(
    ConditionStatus::True,
    "ScalerActive",
    "Scaling is performed because triggers are active",
);
pub const ACTIVE_FORCED: ConditionValue = cond(
    ConditionStatus::True,
    "ScalerActive",
    "Scaling is performed because activation is being forced by annotation",
);
pub const NOT_ACTIVE: ConditionValue = cond(
    ConditionStatus::False,
    "ScalerNotActive",
    "Scaling is not performed because triggers are not active",
);
pub const COOLDOWN: ConditionValue = cond(
    ConditionStatus::False,
    "ScalerCooldown",
    "Scaler cooling down because triggers are not active",
);

#[derive(Debug, Clone, PartialEq)]
pub struct ScaleDecision {
    pub action: Option<ScaleAction>,
    pub ready: ConditionValue,
    pub active: ConditionValue,
    /// Set `lastActiveTime` to now (for `Activate`, only once the scale succeeded).
    pub touch_last_active: bool,
}

pub fn decide(input: &ScaleInput) -> ScaleDecision {
    let current = input.current_replicas;
    let min = input.min_replicas;
    if input.is_active || input.force_activation {
        let active = if input.is_active {
            ACTIVE
        } else {
            ACTIVE_FORCED
        };
        let below_idle = input.idle_replicas.is_some() && current < min;
        if below_idle || current == 0 {
            if input.paused_scale_out {
                return ScaleDecision {
                    action: None,
                    ready: READY,
                    active,
                    touch_last_active: false,
                };
            }
            let to = if min > 0 { min } else { 1 };
            return ScaleDecision {
                action: Some(ScaleAction::Activate { to }),
                ready: READY,
                active,
                touch_last_active: true,
            };
        }
        if input.is_error {
            return ScaleDecision {
                action: None,
                ready: PARTIAL_TRIGGER_ERROR,
                active,
                touch_last_active: false,
            };
        }
        return ScaleDecision {
            action: None,
            ready: READY,
            active,
            touch_last_active: true,
        };
    }

    let idle = input.idle_replicas;
    if input.is_error && input.fallback_replicas.is_some_and(|r| r != 0) {
        // Below the failure threshold: hold, never drop to zero because a backend hiccups.
        return ScaleDecision {
            action: None,
            ready: READY,
            active: NOT_ACTIVE,
            touch_last_active: false,
        };
    }
    if input.is_error && input.fallback_replicas.is_none() {
        return ScaleDecision {
            action: None,
            ready: TRIGGER_ERROR,
            active: NOT_ACTIVE,
            touch_last_active: false,
        };
    }
    if idle.is_some_and(|idle| current > idle) || (current > 0 && min == 0) {
        if input.paused_scale_in {
            return ScaleDecision {
                action: None,
                ready: READY,
                active: NOT_ACTIVE,
                touch_last_active: false,
            };
        }
        if !cooldown_over(input) {
            return ScaleDecision {
                action: None,
                ready: READY,
                active: COOLDOWN,
                touch_last_active: false,
            };
        }
        let to = idle.unwrap_or(min);
        return ScaleDecision {
            action: Some(ScaleAction::Deactivate { to }),
            ready: READY,
            active: NOT_ACTIVE,
            touch_last_active: false,
        };
    }
    if idle.is_none() && current < min {
        return ScaleDecision {
            action: Some(ScaleAction::RaiseToMin { to: min }),
            ready: READY,
            active: NOT_ACTIVE,
            touch_last_active: false,
        };
    }
    ScaleDecision {
        action: None,
        ready: READY,
        active: NOT_ACTIVE,
        touch_last_active: false,
    }
}

/// Scale-in is allowed once `cooldownPeriod` passed since the last activity, or, for an object
/// never active, once `initialCooldownPeriod` passed since its creation.
fn cooldown_over(input: &ScaleInput) -> bool {
    match input.last_active_time {
        Some(last) => last + input.cooldown_period < input.now,
        None => input
            .creation_time
            .is_none_or(|created| created + input.initial_cooldown_period < input.now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> ScaleInput {
        let now: Timestamp = "2026-01-01T12:00:00Z".parse().expect("timestamp");
        ScaleInput {
            is_active: false,
            force_activation: false,
            is_error: false,
            current_replicas: 0,
            min_replicas: 0,
            idle_replicas: None,
            fallback_replicas: None,
            paused_scale_in: false,
            paused_scale_out: false,
            last_active_time: None,
            creation_time: Some(now - SignedDuration::from_secs(3600)),
            cooldown_period: SignedDuration::from_secs(300),
            initial_cooldown_period: SignedDuration::ZERO,
            now,
        }
    }

    fn ago(input: &ScaleInput, secs: i64) -> Option<Timestamp> {
        Some(input.now - SignedDuration::from_secs(secs))
    }

    #[test]
    fn active_from_zero_scales_to_one_or_min() {
        let mut i = base();
        i.is_active = true;
        let d = decide(&i);
        assert_eq!(d.action, Some(ScaleAction::Activate { to: 1 }));
        assert_eq!(d.active, ACTIVE);
        assert!(d.touch_last_active);
        i.min_replicas = 3;
        assert_eq!(decide(&i).action, Some(ScaleAction::Activate { to: 3 }));
    }

    #[test]
    fn active_below_min_in_idle_mode_scales_to_min() {
        let mut i = base();
        i.is_active = true;
        i.idle_replicas = Some(0);
        i.min_replicas = 2;
        i.current_replicas = 1;
        assert_eq!(decide(&i).action, Some(ScaleAction::Activate { to: 2 }));
    }

    #[test]
    fn paused_scale_out_blocks_activation() {
        let mut i = base();
        i.is_active = true;
        i.paused_scale_out = true;
        let d = decide(&i);
        assert_eq!(d.action, None);
        assert!(!d.touch_last_active);
    }

    #[test]
    fn forced_activation_counts_as_active() {
        let mut i = base();
        i.force_activation = true;
        let d = decide(&i);
        assert_eq!(d.action, Some(ScaleAction::Activate { to: 1 }));
        assert_eq!(d.active, ACTIVE_FORCED);
    }

    #[test]
    fn active_with_errors_is_partial_and_keeps_last_active() {
        let mut i = base();
        i.is_active = true;
        i.is_error = true;
        i.current_replicas = 2;
        let d = decide(&i);
        assert_eq!(d.action, None);
        assert_eq!(d.ready, PARTIAL_TRIGGER_ERROR);
        assert!(!d.touch_last_active);
    }

    #[test]
    fn active_running_leaves_replicas_to_the_hpa() {
        let mut i = base();
        i.is_active = true;
        i.current_replicas = 4;
        let d = decide(&i);
        assert_eq!(d.action, None);
        assert!(d.touch_last_active);
        assert_eq!(d.ready, READY);
    }

    #[test]
    fn inactive_error_with_nonzero_fallback_holds() {
        let mut i = base();
        i.is_error = true;
        i.current_replicas = 3;
        i.fallback_replicas = Some(2);
        i.last_active_time = ago(&i, 3600);
        let d = decide(&i);
        assert_eq!(d.action, None);
        assert_eq!(d.ready, READY);
    }

    #[test]
    fn inactive_error_without_fallback_is_trigger_error() {
        let mut i = base();
        i.is_error = true;
        i.current_replicas = 3;
        i.last_active_time = ago(&i, 3600);
        let d = decide(&i);
        assert_eq!(d.action, None);
        assert_eq!(d.ready, TRIGGER_ERROR);
    }

    #[test]
    fn inactive_error_with_zero_fallback_may_scale_to_zero() {
        let mut i = base();
        i.is_error = true;
        i.current_replicas = 3;
        i.fallback_replicas = Some(0);
        i.last_active_time = ago(&i, 3600);
        assert_eq!(decide(&i).action, Some(ScaleAction::Deactivate { to: 0 }));
    }

    #[test]
    fn scale_to_zero_waits_for_the_cooldown() {
        let mut i = base();
        i.current_replicas = 3;
        i.last_active_time = ago(&i, 100);
        let d = decide(&i);
        assert_eq!(d.action, None);
        assert_eq!(d.active, COOLDOWN);
        i.last_active_time = ago(&i, 301);
        assert_eq!(decide(&i).action, Some(ScaleAction::Deactivate { to: 0 }));
    }

    #[test]
    fn never_active_uses_the_initial_cooldown_from_creation() {
        let mut i = base();
        i.current_replicas = 2;
        i.creation_time = ago(&i, 60);
        i.initial_cooldown_period = SignedDuration::from_secs(120);
        assert_eq!(decide(&i).active, COOLDOWN);
        i.initial_cooldown_period = SignedDuration::from_secs(30);
        assert_eq!(decide(&i).action, Some(ScaleAction::Deactivate { to: 0 }));
    }

    #[test]
    fn paused_scale_in_blocks_deactivation() {
        let mut i = base();
        i.current_replicas = 3;
        i.paused_scale_in = true;
        i.last_active_time = ago(&i, 3600);
        assert_eq!(decide(&i).action, None);
    }

    #[test]
    fn idle_mode_deactivates_to_idle_even_from_above_min() {
        let mut i = base();
        i.min_replicas = 2;
        i.idle_replicas = Some(0);
        i.current_replicas = 5;
        i.last_active_time = ago(&i, 3600);
        assert_eq!(decide(&i).action, Some(ScaleAction::Deactivate { to: 0 }));
    }

    #[test]
    fn min_above_zero_never_deactivates_and_raises_to_min() {
        let mut i = base();
        i.min_replicas = 2;
        i.current_replicas = 2;
        i.last_active_time = ago(&i, 3600);
        assert_eq!(decide(&i).action, None);
        i.current_replicas = 1;
        assert_eq!(decide(&i).action, Some(ScaleAction::RaiseToMin { to: 2 }));
        // Not blocked by paused-scale-out, as in KEDA.
        i.paused_scale_out = true;
        assert_eq!(decide(&i).action, Some(ScaleAction::RaiseToMin { to: 2 }));
    }

    #[test]
    fn inactive_at_zero_does_nothing() {
        let i = base();
        let d = decide(&i);
        assert_eq!(d.action, None);
        assert_eq!(d.active, NOT_ACTIVE);
    }
}
