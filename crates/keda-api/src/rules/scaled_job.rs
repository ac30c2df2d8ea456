//! The ScaledJob rules the operator enforces at reconcile (spec §5.1), as pure functions that
//! `keda-rs validate` runs too. Each error names the field at fault.

use super::{Violation, first_duplicate_trigger_name};
use crate::ScaledJob;
use crate::names::annotations;
use crate::problem::Problem;
use crate::scaled_job::ScalingStrategyKind;

/// A number as Go's `strconv.ParseFloat` reads it for KEDA's string-typed numbers: no
/// surrounding space, nothing empty.
pub fn parse_go_float(s: &str) -> Option<f64> {
    if s.is_empty() || s.trim() != s {
        return None;
    }
    s.parse::<f64>().ok()
}

/// `jobTargetRef` must describe a pod (KEDA: "ScaledJob doesn't have correct jobTargetRef").
pub fn check_job_target(sj: &ScaledJob) -> Result<(), Violation> {
    let containers = sj
        .spec
        .job_target_ref
        .template
        .spec
        .as_ref()
        .map_or(0, |p| p.containers.len());
    if containers == 0 {
        return Err(Violation::new(
            "spec.jobTargetRef.template.spec.containers",
            "ScaledJob doesn't have correct jobTargetRef specification: no containers in the Job template",
        ));
    }
    Ok(())
}

/// Triggers: at least one, unique names, and no `metricType` (the ScaledJob CRD drops it and
/// KEDA's reconcile fails when it is there anyway).
pub fn check_triggers(sj: &ScaledJob) -> Result<(), Violation> {
    if sj.spec.triggers.is_empty() {
        return Err(Violation::new(
            "spec.triggers",
            "no triggers defined in the ScaledJob",
        ));
    }
    let duplicate = first_duplicate_trigger_name(&sj.spec.triggers);
    for (i, t) in sj.spec.triggers.iter().enumerate() {
        if t.r#type.is_empty() {
            return Err(Violation::new(
                format!("spec.triggers[{i}].type"),
                "must not be empty",
            ));
        }
        if let Some(m) = t.metric_type.as_deref().filter(|m| !m.is_empty()) {
            return Err(Violation::new(
                format!("spec.triggers[{i}].metricType"),
                format!("metricType {m:?} is not supported for ScaledJob triggers"),
            ));
        }
        if let Some((at, name)) = duplicate
            && at == i
        {
            return Err(Violation::new(
                format!("spec.triggers[{i}].name"),
                format!(
                    "triggerName {name:?} is defined multiple times in the ScaledJob, but it must be unique"
                ),
            ));
        }
    }
    Ok(())
}

/// Warnings that do not stop KEDA but surprise users: a `custom` strategy whose percentage does
/// not parse silently runs as `default`; `useCachedMetrics` is ignored;
/// a `paused-replicas` annotation does nothing on a ScaledJob.
pub fn warnings(sj: &ScaledJob) -> Vec<Problem> {
    let mut out = Vec::new();
    if let Some(s) = &sj.spec.scaling_strategy
        && s.strategy == Some(ScalingStrategyKind::Custom)
        && s.custom_scaling_running_job_percentage
            .as_deref()
            .and_then(parse_go_float)
            .is_none()
    {
        out.push(Problem::warning(
            "spec.scalingStrategy.customScalingRunningJobPercentage",
            "not a number: the custom strategy silently runs as the default strategy",
        ));
    }
    for (i, t) in sj.spec.triggers.iter().enumerate() {
        if t.use_cached_metrics == Some(true) {
            out.push(Problem::warning(
                &format!("spec.triggers[{i}].useCachedMetrics"),
                "ignored for ScaledJobs",
            ));
        }
    }
    if sj
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(annotations::PAUSED_REPLICAS))
    {
        out.push(Problem::warning(
            "metadata.annotations[autoscaling.keda.sh/paused-replicas]",
            "not supported for ScaledJobs; use autoscaling.keda.sh/paused",
        ));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sj(v: serde_json::Value) -> ScaledJob {
        let mut base = serde_json::json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledJob", "metadata": {"name": "j"},
            "spec": {"jobTargetRef": {"template": {"spec": {"containers": [{"name": "c"}]}}},
                "triggers": [{"type": "redis", "metadata": {}}]}
        });
        for (k, val) in v.as_object().unwrap() {
            base["spec"][k] = val.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn metric_type_is_rejected_naming_the_trigger() {
        let e = check_triggers(&sj(serde_json::json!({"triggers": [
            {"type": "redis", "metadata": {}}, {"type": "redis", "metadata": {}, "metricType": "Value"}]})))
        .unwrap_err();
        assert_eq!(e.field, "spec.triggers[1].metricType");
    }

    #[test]
    fn duplicate_trigger_names_rejected() {
        let e = check_triggers(&sj(serde_json::json!({"triggers": [
            {"type": "redis", "name": "a", "metadata": {}}, {"type": "redis", "name": "a", "metadata": {}}]})))
        .unwrap_err();
        assert_eq!(e.field, "spec.triggers[1].name");
        assert!(check_triggers(&sj(serde_json::json!({}))).is_ok());
    }

    #[test]
    fn job_target_needs_containers() {
        let e = check_job_target(&sj(serde_json::json!({"jobTargetRef": {"template": {}}})))
            .unwrap_err();
        assert!(e.to_string().contains("jobTargetRef"));
        assert!(check_job_target(&sj(serde_json::json!({}))).is_ok());
    }

    #[test]
    fn custom_strategy_with_bad_percentage_warns() {
        let w = warnings(&sj(
            serde_json::json!({"scalingStrategy": {"strategy": "custom", "customScalingRunningJobPercentage": "half"}}),
        ));
        assert_eq!(
            w[0].field,
            "spec.scalingStrategy.customScalingRunningJobPercentage"
        );
        let w = warnings(&sj(
            serde_json::json!({"scalingStrategy": {"strategy": "custom", "customScalingRunningJobPercentage": "0.5"}}),
        ));
        assert!(w.is_empty());
    }
}
