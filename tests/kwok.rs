//! KWOK turns the control plane into something workloads can run on: pods on fake nodes become
//! Running/Ready, and Job pods complete.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use keda_rs_e2e::{shared, wait_for};
use kube::api::{ListParams, Patch, PatchParams, PostParams};

fn pod_ready(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[tokio::test]
async fn deployment_scaled_to_three_gets_three_ready_pods() {
    let ns = shared().namespace("kwok-deployment").await;
    let deployments = ns.api::<Deployment>();
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "worker"},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "worker"}},
            "template": {
                "metadata": {"labels": {"app": "worker"}},
                "spec": {"containers": [{"name": "worker", "image": "example.invalid/worker:1"}]}
            }
        }
    }))
    .expect("deployment");
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("created");
    deployments
        .patch(
            "worker",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": 3}})),
        )
        .await
        .expect("scaled");
    let pods = ns.api::<Pod>();
    wait_for(Duration::from_secs(60), || async {
        let list = pods
            .list(&ListParams::default().labels("app=worker"))
            .await
            .ok()?;
        (list.items.iter().filter(|p| pod_ready(p)).count() == 3).then_some(())
    })
    .await
    .expect("3 Running/Ready pods");
    wait_for(Duration::from_secs(30), || async {
        let d = deployments.get("worker").await.ok()?;
        (d.status?.ready_replicas == Some(3)).then_some(())
    })
    .await
    .expect("Deployment reports 3 ready replicas");
    let list = pods
        .list(&ListParams::default().labels("app=worker"))
        .await
        .expect("pods");
    for pod in &list.items {
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        assert!(
            node.starts_with("kwok-node-"),
            "scheduled onto a fake node, got {node:?}"
        );
    }
    ns.delete().await;
}

#[tokio::test]
async fn job_pod_completes() {
    let ns = shared().namespace("kwok-job").await;
    let jobs = ns.api::<Job>();
    let job: Job = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "once"},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "example.invalid/job:1"}]}}
        }
    }))
    .expect("job");
    jobs.create(&PostParams::default(), &job)
        .await
        .expect("created");
    wait_for(Duration::from_secs(60), || async {
        let job = jobs.get("once").await.ok()?;
        let status = job.status?;
        let complete = status
            .conditions?
            .iter()
            .any(|c| c.type_ == "Complete" && c.status == "True");
        (complete && status.succeeded == Some(1)).then_some(())
    })
    .await
    .expect("Job completes");
    let pods = ns
        .api::<Pod>()
        .list(&ListParams::default().labels("job-name=once"))
        .await
        .expect("pods");
    assert_eq!(pods.items.len(), 1);
    assert_eq!(
        pods.items[0]
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref()),
        Some("Succeeded")
    );
    ns.delete().await;
}
