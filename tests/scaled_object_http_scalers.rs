//! ScaledObjects with the prometheus, cron and cpu triggers end to end on the real control plane:
//! a real prometheus scraping a target the test serves activates a Deployment from zero and the
//! HPA scales it through our external-metrics API; a cron window drives desiredReplicas; a cpu
//! trigger becomes a Resource metric in the HPA.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use keda_api::ScaledObject;
use keda_rs_e2e::operator::shared_operator;
use keda_rs_e2e::{TestNamespace, shared, wait_for};
use kube::api::PostParams;
use test_cluster::http_peer::HttpPeer;
use test_cluster::prometheus::PrometheusServer;

async fn deployment(ns: &TestNamespace, name: &str, replicas: i32) {
    let d: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "worker", "image": "example.invalid/worker:1",
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}
        }
    }))
    .expect("deployment");
    ns.api::<Deployment>()
        .create(&PostParams::default(), &d)
        .await
        .expect("deployment created");
}

async fn scaled_object(ns: &TestNamespace, name: &str, spec: serde_json::Value) {
    let so: ScaledObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": name}, "spec": spec
    }))
    .expect("scaled object");
    ns.api::<ScaledObject>()
        .create(&PostParams::default(), &so)
        .await
        .expect("created");
}

async fn replicas(ns: &TestNamespace, name: &str) -> Option<i32> {
    ns.api::<Deployment>().get(name).await.ok()?.spec.replicas
}

async fn wait_replicas(ns: &TestNamespace, name: &str, expected: i32, within: Duration) {
    let reached = wait_for(within, || async {
        (replicas(ns, name).await == Some(expected)).then_some(())
    })
    .await;
    assert!(
        reached.is_ok(),
        "{name} did not reach {expected} replicas within {within:?} (has {:?})",
        replicas(ns, name).await
    );
}

fn queue(depth: u32) -> String {
    format!("# TYPE queue_depth gauge\nqueue_depth{{queue=\"orders\"}} {depth}\n")
}

#[tokio::test]
async fn prometheus_query_scales_from_zero_through_the_hpa() {
    shared_operator();
    let ns = shared().namespace("so-prometheus").await;
    let target = HttpPeer::start();
    target.set("/metrics", "text/plain; version=0.0.4", &queue(1));
    let prom = PrometheusServer::start(&[format!("127.0.0.1:{}", target.port)]);
    prom.wait_for("sum(queue_depth)", "\"1\"", Duration::from_secs(30));
    deployment(&ns, "orders", 0).await;
    scaled_object(
        &ns,
        "orders",
        serde_json::json!({
            "scaleTargetRef": {"name": "orders"},
            "pollingInterval": 1,
            "cooldownPeriod": 5,
            "maxReplicaCount": 10,
            "triggers": [{"type": "prometheus", "metadata": {
                "serverAddress": prom.url(),
                "query": "sum(queue_depth)",
                "threshold": "5",
                "activationThreshold": "1",
            }}]
        }),
    )
    .await;
    // 1 is not above activationThreshold 1.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(replicas(&ns, "orders").await, Some(0));

    // 12 queued: activated, then the HPA asks for ceil(12 / 5) = 3.
    target.set("/metrics", "text/plain; version=0.0.4", &queue(12));
    wait_replicas(&ns, "orders", 3, Duration::from_secs(90)).await;
    let so = ns.api::<ScaledObject>().get("orders").await.expect("so");
    assert_eq!(
        so.status.and_then(|s| s.external_metric_names),
        Some(vec!["s0-prometheus".to_owned()])
    );

    // Drained: back to zero after the cooldown.
    target.set("/metrics", "text/plain; version=0.0.4", &queue(0));
    wait_replicas(&ns, "orders", 0, Duration::from_secs(60)).await;
    ns.delete().await;
}

#[tokio::test]
async fn cron_window_sets_desired_replicas() {
    shared_operator();
    let ns = shared().namespace("so-cron").await;
    deployment(&ns, "open", 0).await;
    deployment(&ns, "closed", 0).await;
    let spec = |target: &str, start: &str, end: &str| {
        serde_json::json!({
            "scaleTargetRef": {"name": target},
            "pollingInterval": 1,
            "cooldownPeriod": 5,
            "maxReplicaCount": 10,
            "triggers": [{"type": "cron", "metadata": {
                "timezone": "Europe/Amsterdam",
                "start": start,
                "end": end,
                "desiredReplicas": "4",
            }}]
        })
    };
    // A window that opened on Jan 1 and closes on Dec 31 at 23:59: open now (except that minute).
    scaled_object(&ns, "open", spec("open", "0 0 1 1 *", "59 23 31 12 *")).await;
    // The reverse: opens at Dec 31 23:59, so closed now.
    scaled_object(&ns, "closed", spec("closed", "59 23 31 12 *", "0 0 1 1 *")).await;
    // Target 1 per pod with AverageValue: the HPA asks for exactly desiredReplicas.
    wait_replicas(&ns, "open", 4, Duration::from_secs(90)).await;
    let hpa = ns
        .api::<HorizontalPodAutoscaler>()
        .get("keda-hpa-open")
        .await
        .expect("hpa");
    let metric = &hpa.spec.metrics.expect("metrics")[0];
    let external = metric.external.as_ref().expect("external metric");
    assert_eq!(
        external.metric.name,
        "s0-cron-Europe-Amsterdam-0011x-59233112x"
    );
    assert_eq!(
        external.target.average_value.as_ref().map(|q| q.0.as_str()),
        Some("1")
    );
    assert_eq!(replicas(&ns, "closed").await, Some(0));
    ns.delete().await;
}

#[tokio::test]
async fn cpu_and_memory_triggers_become_resource_metrics() {
    shared_operator();
    let ns = shared().namespace("so-cpu").await;
    deployment(&ns, "web", 1).await;
    scaled_object(
        &ns,
        "web",
        serde_json::json!({
            "scaleTargetRef": {"name": "web"},
            "minReplicaCount": 1,
            "maxReplicaCount": 5,
            "triggers": [
                {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "60"}},
                {"type": "memory", "metricType": "AverageValue",
                 "metadata": {"value": "512Mi", "containerName": "worker"}}
            ]
        }),
    )
    .await;
    let hpa = wait_for(Duration::from_secs(30), || async {
        ns.api::<HorizontalPodAutoscaler>()
            .get("keda-hpa-web")
            .await
            .ok()
    })
    .await
    .expect("hpa created");
    let metrics = hpa.spec.metrics.expect("metrics");
    assert_eq!(metrics.len(), 2, "{metrics:?}");
    // Order is the operator's business; find each by kind.
    let cpu = metrics
        .iter()
        .find_map(|m| m.resource.as_ref())
        .unwrap_or_else(|| panic!("Resource metric: {metrics:?}"));
    assert_eq!(cpu.name, "cpu");
    assert_eq!(cpu.target.type_, "Utilization");
    assert_eq!(cpu.target.average_utilization, Some(60));
    let memory = metrics
        .iter()
        .find_map(|m| m.container_resource.as_ref())
        .unwrap_or_else(|| panic!("ContainerResource metric: {metrics:?}"));
    assert_eq!(memory.name, "memory");
    assert_eq!(memory.container, "worker");
    assert_eq!(memory.target.type_, "AverageValue");
    assert_eq!(
        memory.target.average_value.as_ref().map(|q| q.0.as_str()),
        Some("536870912")
    );
    ns.delete().await;
}
