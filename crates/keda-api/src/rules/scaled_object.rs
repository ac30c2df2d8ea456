//! ScaledObject rules of KEDA's reconcile and webhook (spec §6, checks 1 and 10).

use super::{Violation, first_duplicate_trigger_name};
use crate::ScaledObject;

/// Trigger types whose metrics are never cached: KEDA serves cpu/memory through the HPA's own
/// resource metrics and cron from the clock, so `useCachedMetrics` on them is refused.
pub const NO_CACHED_METRICS: &[&str] = &["cpu", "memory", "cron"];

/// Replica bounds as KEDA's reconcile and webhook check them (spec §6, check 1).
pub fn check_replica_bounds(so: &ScaledObject) -> Result<(), Violation> {
    let min = match so.spec.min_replica_count {
        None => 0,
        Some(m) => m.max(1),
    };
    let max = so.spec.max_replica_count();
    if min > max {
        return Err(Violation::new(
            "spec.minReplicaCount",
            format!("MinReplicaCount={min} must be less than MaxReplicaCount={max}"),
        ));
    }
    if let Some(idle) = so.spec.idle_replica_count
        && idle >= min
    {
        return Err(Violation::new(
            "spec.idleReplicaCount",
            format!("IdleReplicaCount={idle} must be less than MinReplicaCount={min}"),
        ));
    }
    Ok(())
}

/// At least one trigger, trigger names unique, and `useCachedMetrics` not on the
/// [`NO_CACHED_METRICS`] types (spec §6, check 10). The first broken rule in trigger order wins.
pub fn check_triggers(so: &ScaledObject) -> Result<(), Violation> {
    const FIELD: &str = "spec.triggers";
    if so.spec.triggers.is_empty() {
        return Err(Violation::new(
            FIELD,
            "no triggers defined in the ScaledObject/ScaledJob",
        ));
    }
    let duplicate = first_duplicate_trigger_name(&so.spec.triggers);
    for (i, trigger) in so.spec.triggers.iter().enumerate() {
        if trigger.use_cached_metrics == Some(true)
            && NO_CACHED_METRICS.contains(&trigger.r#type.as_str())
        {
            return Err(Violation::new(
                FIELD,
                format!(
                    "property \"useCachedMetrics\" is not supported for {} scaler (trigger {i})",
                    trigger.r#type
                ),
            ));
        }
        if let Some((at, name)) = duplicate
            && at == i
        {
            return Err(Violation::new(
                FIELD,
                format!(
                    "triggerName {name:?} is defined multiple times in the ScaledObject/ScaledJob, but it must be unique"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn so(spec: serde_json::Value) -> ScaledObject {
        let mut base = json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "s"},
            "spec": {"scaleTargetRef": {"name": "d"}, "triggers": [{"type": "redis", "metadata": {}}]}
        });
        for (k, v) in spec.as_object().unwrap() {
            base["spec"][k] = v.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn replica_bounds() {
        assert!(check_replica_bounds(&so(json!({}))).is_ok());
        let e = check_replica_bounds(&so(json!({"minReplicaCount": 5, "maxReplicaCount": 2})))
            .unwrap_err();
        assert_eq!(e.field, "spec.minReplicaCount");
        assert_eq!(
            e.message,
            "MinReplicaCount=5 must be less than MaxReplicaCount=2"
        );
        let e = check_replica_bounds(&so(json!({"minReplicaCount": 1, "idleReplicaCount": 1})))
            .unwrap_err();
        assert_eq!(e.field, "spec.idleReplicaCount");
    }

    #[test]
    fn triggers_in_order() {
        let e = check_triggers(&so(json!({"triggers": []}))).unwrap_err();
        assert!(e.message.starts_with("no triggers"));
        // The duplicate name at index 1 comes before the cached cron at index 2.
        let e = check_triggers(&so(json!({"triggers": [
            {"type": "redis", "name": "a", "metadata": {}},
            {"type": "redis", "name": "a", "metadata": {}},
            {"type": "cron", "useCachedMetrics": true, "metadata": {}}]})))
        .unwrap_err();
        assert!(e.message.contains("defined multiple times"), "{e}");
        let e = check_triggers(&so(json!({"triggers": [
            {"type": "cpu", "useCachedMetrics": true, "metadata": {}}]})))
        .unwrap_err();
        assert!(
            e.message
                .contains("not supported for cpu scaler (trigger 0)")
        );
        assert!(
            check_triggers(&so(json!({"triggers": [
            {"type": "redis", "name": "", "metadata": {}}, {"type": "redis", "name": "", "metadata": {}}]})))
            .is_ok()
        );
    }
}
