//! `external-push` end to end on the real control plane: a ScaledObject with a 300 s polling
//! interval whose external scaler (a real gRPC protocol peer in this test) pushes `true` on
//! `StreamIsActive`. Only the push can explain the Deployment going 0→1 within a second.

#![allow(clippy::unwrap_used)]
// Measures by the wall clock: the cluster and servers do not run on a paused tokio clock.
#![allow(clippy::disallowed_types)]

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::events::v1::Event;
use keda_api::ScaledObject;
use keda_rs_e2e::operator::shared_operator;
use keda_rs_e2e::{TestNamespace, shared, wait_for};
use keda_scalers::external_peer::ExternalScalerPeer;
use kube::api::{ListParams, PostParams};

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
    .unwrap();
    ns.api::<Deployment>()
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
}

async fn replicas(ns: &TestNamespace, name: &str) -> Option<i32> {
    ns.api::<Deployment>().get(name).await.ok()?.spec.replicas
}

async fn ready(ns: &TestNamespace, name: &str) -> bool {
    let Ok(so) = ns.api::<ScaledObject>().get(name).await else {
        return false;
    };
    so.status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .iter()
        .any(|c| c.r#type == "Ready" && c.status == "True")
}

async fn has_event(ns: &TestNamespace, so: &str, reason: &str) -> bool {
    ns.api::<Event>()
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .iter()
        .any(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(so)
                && e.reason.as_deref() == Some(reason)
        })
}

#[tokio::test]
async fn a_pushed_true_scales_from_zero_within_a_second() {
    shared_operator();
    let ns = shared().namespace("so-ext-push").await;
    let peer = ExternalScalerPeer::start().await.unwrap();
    peer.set_specs(&[("queue", 5, 0.0)]);
    peer.set_value(0, 0.0);
    peer.set_active(false);
    deployment(&ns, "pushed").await;
    let so: ScaledObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": "pushed"},
        "spec": {
            "scaleTargetRef": {"name": "pushed"},
            "pollingInterval": 300,
            "cooldownPeriod": 300,
            "maxReplicaCount": 5,
            "triggers": [{"type": "external-push", "metadata": {
                "scalerAddress": peer.address(), "queue": "orders"}}]
        }
    }))
    .unwrap();
    ns.api::<ScaledObject>()
        .create(&PostParams::default(), &so)
        .await
        .unwrap();

    // Ready, the first (immediate) poll done, and the push stream open.
    wait_for(Duration::from_secs(30), || async {
        (ready(&ns, "pushed").await && peer.streams_opened() >= 1 && peer.calls("IsActive") >= 1)
            .then_some(())
    })
    .await
    .expect("Ready, polled once, StreamIsActive open");
    let sent = peer.last_ref().unwrap();
    assert_eq!(sent.name, "pushed");
    assert_eq!(sent.namespace, ns.name);
    assert_eq!(
        sent.scaler_metadata.get("queue").map(String::as_str),
        Some("orders")
    );
    // Let the first poll's decision land; nothing is active, so the target stays at zero.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(replicas(&ns, "pushed").await, Some(0));
    let polls_before = peer.calls("IsActive");

    // The remote IsActive still says false: the push alone activates (KEDA requests the scale
    // with isActive=true on a pushed true), and the 300 s interval rules out a regular poll.
    peer.set_value(3, 0.0);
    let pushed_at = Instant::now();
    assert_eq!(peer.push(true), 1, "one open stream received the push");
    let mut latency = None;
    while pushed_at.elapsed() < Duration::from_secs(5) {
        if replicas(&ns, "pushed").await == Some(1) {
            latency = Some(pushed_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let latency = latency.expect("the Deployment went 0→1 after the push");
    eprintln!("external-push: pushed true → Deployment at 1 replica in {latency:?}");
    assert!(latency < Duration::from_secs(1), "took {latency:?}");
    assert_eq!(
        peer.calls("IsActive"),
        polls_before + 1,
        "exactly one extra poll, triggered by the push"
    );
    wait_for(Duration::from_secs(10), || async {
        has_event(&ns, "pushed", "KEDAScaleTargetActivated")
            .await
            .then_some(())
    })
    .await
    .expect("KEDAScaleTargetActivated event");

    // A pushed false does nothing by itself: deactivation is left to polling.
    peer.push(false);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(replicas(&ns, "pushed").await, Some(1));
    assert_eq!(peer.calls("IsActive"), polls_before + 1);
}
