//! ScaledObject with a `kafka` trigger end to end on the real control plane with a real KRaft
//! broker: keda-rs activates from zero when the group's lag rises above the activation threshold,
//! the controller-manager's HPA scales 1→N through our external-metrics API on the lag, and
//! keda-rs deactivates to zero after the cooldown once the group has caught up.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use keda_api::ScaledObject;
use keda_rs_e2e::operator::shared_operator;
use keda_rs_e2e::{TestNamespace, shared, wait_for};
use keda_scalers::kafka_test_admin::{commit, connect, create_topic, produce};
use kube::api::PostParams;
use test_cluster::kafka::KafkaBroker;

async fn deployment(ns: &TestNamespace, name: &str) {
    let d: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "worker", "image": "example.invalid/worker:1"}]}}
        }
    }))
    .expect("deployment");
    ns.api::<Deployment>()
        .create(&PostParams::default(), &d)
        .await
        .expect("deployment created");
}

async fn replicas(ns: &TestNamespace, name: &str) -> Option<i32> {
    ns.api::<Deployment>().get(name).await.ok()?.spec.replicas
}

async fn wait_replicas(ns: &TestNamespace, name: &str, expected: i32, within: Duration) {
    if wait_for(within, || async {
        (replicas(ns, name).await == Some(expected)).then_some(())
    })
    .await
    .is_err()
    {
        panic!(
            "{name} did not reach {expected} replicas within {within:?} (has {:?})",
            replicas(ns, name).await
        );
    }
}

#[tokio::test]
async fn kafka_lag_scales_zero_to_n_and_back_to_zero() {
    shared_operator();
    let ns = shared().namespace("so-kafka").await;
    // The broker starts in a blocking thread: it waits on a JVM.
    let broker = tokio::task::spawn_blocking(KafkaBroker::start)
        .await
        .expect("broker thread");
    let admin = connect(&broker.address()).await;
    create_topic(&admin, "orders", 4).await;
    for p in 0..4 {
        commit(&admin, "order-workers", "orders", p, 0).await;
    }
    deployment(&ns, "order-worker").await;
    // The trigger as a KEDA user writes it.
    let so: ScaledObject = serde_yaml::from_str(&format!(
        r#"
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: order-worker
spec:
  scaleTargetRef:
    name: order-worker
  pollingInterval: 1
  cooldownPeriod: 5
  maxReplicaCount: 10
  triggers:
  - type: kafka
    metadata:
      bootstrapServers: {}
      consumerGroup: order-workers
      topic: orders
      lagThreshold: "5"
      activationLagThreshold: "2"
      offsetResetPolicy: latest
"#,
        broker.address()
    ))
    .expect("scaled object");
    ns.api::<ScaledObject>()
        .create(&PostParams::default(), &so)
        .await
        .expect("created");
    wait_for(Duration::from_secs(30), || async {
        let so = ns.api::<ScaledObject>().get("order-worker").await.ok()?;
        let ready = so
            .status?
            .conditions?
            .into_iter()
            .any(|c| c.r#type == "Ready" && c.status == "True");
        ready.then_some(())
    })
    .await
    .expect("Ready=True");

    // Lag 2 is not above activationLagThreshold 2.
    produce(&admin, "orders", 0, 2).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        replicas(&ns, "order-worker").await,
        Some(0),
        "activation is strictly greater than the threshold"
    );

    // Lag 2 + 6 + 5 + 4 = 17 over 4 partitions: ceil(17 / 5) = 4 replicas (≤ 4 partitions).
    produce(&admin, "orders", 1, 6).await;
    produce(&admin, "orders", 2, 5).await;
    produce(&admin, "orders", 3, 4).await;
    wait_replicas(&ns, "order-worker", 4, Duration::from_secs(90)).await;
    let status = ns
        .api::<ScaledObject>()
        .get("order-worker")
        .await
        .expect("so")
        .status
        .expect("status");
    assert_eq!(
        status.external_metric_names,
        Some(vec!["s0-kafka-orders".to_string()])
    );

    // The consumers catch up: no lag, back to zero after the cooldown.
    for (p, end) in [(0, 2), (1, 6), (2, 5), (3, 4)] {
        commit(&admin, "order-workers", "orders", p, end).await;
    }
    wait_replicas(&ns, "order-worker", 0, Duration::from_secs(60)).await;
}
