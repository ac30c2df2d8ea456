//! ScaledObject end to end on the real control plane with a real RabbitMQ node: a `rabbitmq`
//! trigger (AMQP, queue length) activates the Deployment from zero, the controller-manager's HPA
//! scales it to N through our external-metrics API, and keda-rs takes it back to zero after the
//! cooldown once the queue is empty.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use keda_api::ScaledObject;
use keda_rs_e2e::operator::shared_operator;
use keda_rs_e2e::{TestNamespace, shared, wait_for};
use kube::api::PostParams;
use test_cluster::rabbitmq::RabbitMqServer;

async fn deployment(ns: &TestNamespace, name: &str) {
    let d: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "consumer", "image": "example.invalid/consumer:1"}]}}
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

async fn metric_value(ns: &TestNamespace, metric: &str, so: &str) -> serde_json::Value {
    let raw = http::Request::get(format!(
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/{}/{metric}?labelSelector=scaledobject.keda.sh%2Fname%3D{so}",
        ns.name
    ))
    .body(Vec::new())
    .expect("request");
    let body = ns
        .client
        .request_text(raw)
        .await
        .expect("metric through the apiserver");
    serde_json::from_str(&body).expect("json")
}

#[tokio::test]
async fn rabbitmq_queue_scales_a_deployment_zero_to_n_to_zero() {
    shared_operator();
    let ns = shared().namespace("so-rabbitmq").await;
    let rabbit = tokio::task::spawn_blocking(RabbitMqServer::start)
        .await
        .expect("rabbitmq node");
    rabbit.declare_queue("/", "hello");
    deployment(&ns, "consumer").await;

    // The trigger as users write it (the host passed inline instead of via TriggerAuthentication).
    let so: ScaledObject = serde_yaml::from_str(&format!(
        r#"
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: rabbitmq-consumer
spec:
  scaleTargetRef:
    name: consumer
  pollingInterval: 1
  cooldownPeriod: 5
  maxReplicaCount: 10
  triggers:
  - type: rabbitmq
    metadata:
      protocol: amqp
      queueName: hello
      mode: QueueLength
      value: "5"
      activationValue: "1"
      host: {host}
"#,
        host = rabbit.amqp_url("")
    ))
    .expect("scaled object yaml");
    ns.api::<ScaledObject>()
        .create(&PostParams::default(), &so)
        .await
        .expect("created");
    wait_for(Duration::from_secs(30), || async {
        let so = ns
            .api::<ScaledObject>()
            .get("rabbitmq-consumer")
            .await
            .ok()?;
        let ready = so
            .status?
            .conditions?
            .into_iter()
            .any(|c| c.r#type == "Ready" && c.status == "True");
        ready.then_some(())
    })
    .await
    .expect("Ready=True");

    // One message is not above activationValue 1: stays at zero.
    rabbit.publish("/", "hello", 1);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(replicas(&ns, "consumer").await, Some(0));

    // 12 messages: active, then the HPA computes ceil(12 / 5) = 3.
    rabbit.publish("/", "hello", 11);
    wait_replicas(&ns, "consumer", 3, Duration::from_secs(60)).await;
    let value = metric_value(&ns, "s0-rabbitmq-hello", "rabbitmq-consumer").await;
    assert_eq!(value["items"][0]["value"], "12", "{value}");
    let status = ns
        .api::<ScaledObject>()
        .get("rabbitmq-consumer")
        .await
        .expect("so")
        .status
        .expect("status");
    assert_eq!(
        status.external_metric_names,
        Some(vec!["s0-rabbitmq-hello".to_string()])
    );

    // Drained: back to zero after the cooldown.
    rabbit.purge("/", "hello");
    wait_replicas(&ns, "consumer", 0, Duration::from_secs(40)).await;
    ns.delete().await;
}
