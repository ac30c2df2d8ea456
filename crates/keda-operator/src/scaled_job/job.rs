//! The Job objects a ScaledJob creates (spec §5.5) and the pure parts of reading them back:
//! which are unfinished, which pending, which fall beyond the history limits, and which an
//! `immediate` rollout deletes.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use keda_api::ScaledJob;
use keda_api::names::{ConditionStatus, annotations, labels};
use kube::{Resource, ResourceExt};

/// The Job to create for `sj` (identical for every Job of one poll; the apiserver names them).
pub fn build(sj: &ScaledJob, version: &str) -> Job {
    let name = sj.name_any();
    let excluded: Vec<&str> = sj
        .annotations()
        .get(annotations::JOB_EXCLUDED_LABELS)
        .map(|v| v.split(',').collect())
        .unwrap_or_default();
    let mut labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), name.clone()),
        ("app.kubernetes.io/version".to_string(), version.to_string()),
        ("app.kubernetes.io/part-of".to_string(), name.clone()),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "keda-operator".to_string(),
        ),
        (labels::SCALED_JOB_NAME.to_string(), name.clone()),
    ]);
    for (k, v) in sj.labels() {
        if !excluded.contains(&k.as_str()) {
            labels.insert(k.clone(), v.clone());
        }
    }
    let mut annotations = BTreeMap::from([(
        annotations::SCALED_JOB_GENERATION.to_string(),
        sj.metadata.generation.unwrap_or(0).to_string(),
    )]);
    annotations.extend(sj.annotations().clone());

    let mut spec = sj.spec.job_target_ref.clone();
    let template_meta = spec
        .template
        .metadata
        .get_or_insert_with(ObjectMeta::default);
    template_meta
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(labels::SCALED_JOB_NAME.to_string(), name.clone());
    // A Job rejects `Always`, the default a client would fill in.
    if let Some(pod) = spec.template.spec.as_mut()
        && pod.restart_policy.as_deref().unwrap_or_default().is_empty()
    {
        pod.restart_policy = Some("OnFailure".to_string());
    }
    Job {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: sj.namespace(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: owner_reference(sj).map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// A controller reference to the ScaledJob, so its Jobs are garbage-collected with it.
fn owner_reference(sj: &ScaledJob) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: ScaledJob::api_version(&()).to_string(),
        kind: ScaledJob::kind(&()).to_string(),
        name: sj.name_any(),
        uid: sj.uid()?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// `Complete` or `Failed` when a True condition of that type says the Job finished.
pub fn finished_as(job: &Job) -> Option<&str> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| {
            (c.type_ == "Complete" || c.type_ == "Failed")
                && c.status == ConditionStatus::True.as_str()
        })
        .map(|c| c.type_.as_str())
}

pub fn is_finished(job: &Job) -> bool {
    finished_as(job).is_some()
}

/// A pending Job (§5.4): unfinished and, with `conditions` set, no pod has all of them True;
/// without, no pod is Running or Succeeded. `pods` are the Job's pods (`job-name=<job>`).
pub fn is_pending(job: &Job, pods: &[&Pod], conditions: &[String]) -> bool {
    if is_finished(job) {
        return false;
    }
    if conditions.is_empty() {
        !pods.iter().any(|p| {
            matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Running" | "Succeeded")
            )
        })
    } else {
        !pods.iter().any(|p| {
            let have = p
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .map(|c| c.as_slice())
                .unwrap_or_default();
            conditions.iter().all(|want| {
                have.iter()
                    .any(|c| &c.type_ == want && c.status == ConditionStatus::True.as_str())
            })
        })
    }
}

/// Finished Jobs beyond the history limits, oldest `completionTime` first (§5.4 cleanup).
pub fn beyond_history<'a>(
    jobs: &[&'a Job],
    successful_limit: i32,
    failed_limit: i32,
) -> Vec<&'a Job> {
    let mut out = Vec::new();
    for (kind, limit) in [("Complete", successful_limit), ("Failed", failed_limit)] {
        let mut finished: Vec<&Job> = jobs
            .iter()
            .copied()
            .filter(|j| finished_as(j) == Some(kind))
            .collect();
        // Jobs without a completionTime (failed ones) sort first, as a nil time does in KEDA.
        finished.sort_by_key(|j| {
            j.status
                .as_ref()
                .and_then(|s| s.completion_time.as_ref())
                .map(|t| t.0)
        });
        let excess = finished
            .len()
            .saturating_sub(usize::try_from(limit.max(0)).unwrap_or(0));
        out.extend(finished.into_iter().take(excess));
    }
    out
}

/// Unfinished or finished Jobs whose generation annotation is missing or differs from the
/// ScaledJob's: what an `immediate` rollout deletes (§5.1 step 7).
pub fn stale_for_rollout<'a>(jobs: &[&'a Job], generation: Option<i64>) -> Vec<&'a Job> {
    let current = generation.unwrap_or(0).to_string();
    jobs.iter()
        .copied()
        .filter(|j| j.annotations().get(annotations::SCALED_JOB_GENERATION) != Some(&current))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn sj() -> ScaledJob {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledJob",
            "metadata": {"name": "csv", "namespace": "ns", "uid": "u-1", "generation": 3,
                "labels": {"team": "a", "secret": "x"},
                "annotations": {annotations::JOB_EXCLUDED_LABELS: "secret,other"}},
            "spec": {"jobTargetRef": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
                "triggers": [{"type": "redis", "metadata": {}}]}
        }))
        .unwrap()
    }

    #[test]
    fn job_object_as_keda_builds_it() {
        let job = build(&sj(), "2.99");
        let m = &job.metadata;
        assert_eq!(m.generate_name.as_deref(), Some("csv-"));
        assert_eq!(m.namespace.as_deref(), Some("ns"));
        let labels = m.labels.as_ref().unwrap();
        assert_eq!(labels["scaledjob.keda.sh/name"], "csv");
        assert_eq!(labels["app.kubernetes.io/version"], "2.99");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "keda-operator");
        assert_eq!(labels["team"], "a");
        assert!(!labels.contains_key("secret"), "excluded label copied");
        let ann = m.annotations.as_ref().unwrap();
        assert_eq!(ann[annotations::SCALED_JOB_GENERATION], "3");
        assert!(ann.contains_key(annotations::JOB_EXCLUDED_LABELS));
        let owner = &m.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("ScaledJob", "u-1", Some(true))
        );
        let spec = job.spec.unwrap();
        assert_eq!(
            spec.template.metadata.unwrap().labels.unwrap()["scaledjob.keda.sh/name"],
            "csv"
        );
        assert_eq!(
            spec.template.spec.unwrap().restart_policy.as_deref(),
            Some("OnFailure")
        );
    }

    #[test]
    fn explicit_restart_policy_kept() {
        let mut s = sj();
        if let Some(p) = s.spec.job_target_ref.template.spec.as_mut() {
            p.restart_policy = Some("Never".into());
        }
        let job = build(&s, "v");
        assert_eq!(
            job.spec
                .unwrap()
                .template
                .spec
                .unwrap()
                .restart_policy
                .as_deref(),
            Some("Never")
        );
    }

    fn job(
        name: &str,
        finished: Option<&str>,
        completed_at: Option<i64>,
        gen_: Option<&str>,
    ) -> Job {
        let mut j = Job::default();
        j.metadata.name = Some(name.into());
        if let Some(g) = gen_ {
            j.metadata.annotations = Some(BTreeMap::from([(
                annotations::SCALED_JOB_GENERATION.into(),
                g.into(),
            )]));
        }
        j.status = Some(JobStatus {
            conditions: finished.map(|t| {
                vec![JobCondition {
                    type_: t.into(),
                    status: "True".into(),
                    ..Default::default()
                }]
            }),
            completion_time: completed_at.map(|s| Time(jiff::Timestamp::from_second(s).unwrap())),
            ..Default::default()
        });
        j
    }

    fn pod(phase: &str, conditions: &[(&str, &str)]) -> Pod {
        serde_json::from_value(serde_json::json!({
            "status": {"phase": phase, "conditions": conditions.iter().map(|(t, s)| serde_json::json!({"type": t, "status": s})).collect::<Vec<_>>()}
        }))
        .unwrap()
    }

    #[test]
    fn pending_with_and_without_conditions() {
        let j = job("a", None, None, None);
        let pending = pod("Pending", &[("PodScheduled", "False")]);
        let running = pod("Running", &[("PodScheduled", "True"), ("Ready", "False")]);
        let ready = pod("Running", &[("PodScheduled", "True"), ("Ready", "True")]);
        assert!(is_pending(&j, &[], &[]));
        assert!(is_pending(&j, &[&pending], &[]));
        assert!(!is_pending(&j, &[&running], &[]));
        let conds = vec!["PodScheduled".to_string(), "Ready".to_string()];
        assert!(
            is_pending(&j, &[&running], &conds),
            "running but not Ready is pending"
        );
        assert!(!is_pending(&j, &[&pending, &ready], &conds));
        let done = job("b", Some("Complete"), Some(1), None);
        assert!(!is_pending(&done, &[], &[]));
    }

    #[test]
    fn history_cleanup_oldest_first() {
        let jobs = [
            job("c3", Some("Complete"), Some(30), None),
            job("c1", Some("Complete"), Some(10), None),
            job("c2", Some("Complete"), Some(20), None),
            job("f1", Some("Failed"), Some(5), None),
            job("f2", Some("Failed"), Some(6), None),
            job("run", None, None, None),
        ];
        let refs: Vec<&Job> = jobs.iter().collect();
        let names = |v: Vec<&Job>| v.iter().map(|j| j.name_any()).collect::<Vec<_>>();
        assert_eq!(names(beyond_history(&refs, 1, 1)), ["c1", "c2", "f1"]);
        assert_eq!(names(beyond_history(&refs, 0, 5)), ["c1", "c2", "c3"]);
        assert!(beyond_history(&refs, 100, 100).is_empty());
    }

    #[test]
    fn rollout_selects_other_generations() {
        let jobs = [
            job("old", None, None, Some("2")),
            job("none", None, None, None),
            job("cur", None, None, Some("3")),
        ];
        let refs: Vec<&Job> = jobs.iter().collect();
        let stale: Vec<String> = stale_for_rollout(&refs, Some(3))
            .iter()
            .map(|j| j.name_any())
            .collect();
        assert_eq!(stale, ["old", "none"]);
    }
}
