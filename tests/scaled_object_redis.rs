//! ScaledObject end to end on the real control plane with a real redis-server: keda-rs activates
//! from zero, the controller-manager's HPA scales 1→N through our external-metrics API, and
//! keda-rs deactivates to zero after the cooldown. Plus the failure and lifecycle paths.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::events::v1::Event;
use keda_api::ScaledObject;
use keda_rs_e2e::operator::shared_operator;
use keda_rs_e2e::{TestNamespace, shared, wait_for};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use test_cluster::redis::RedisServer;

async fn deployment(ns: &TestNamespace, name: &str, replicas: i32) {
    let d: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
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

fn scaled_object(
    name: &str,
    target: &str,
    metadata: serde_json::Value,
    extra: serde_json::Value,
) -> ScaledObject {
    let mut spec = serde_json::json!({
        "scaleTargetRef": {"name": target},
        "pollingInterval": 1,
        "cooldownPeriod": 5,
        "maxReplicaCount": 10,
        "triggers": [{"type": "redis", "metadata": metadata}]
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(serde_json::json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": name}, "spec": spec
    }))
    .expect("scaled object")
}

fn redis_trigger(redis: &RedisServer, list: &str) -> serde_json::Value {
    serde_json::json!({"address": redis.address(), "listName": list, "listLength": "5", "activationListLength": "1"})
}

async fn replicas(ns: &TestNamespace, name: &str) -> Option<i32> {
    ns.api::<Deployment>().get(name).await.ok()?.spec.replicas
}

async fn wait_replicas(
    ns: &TestNamespace,
    name: &str,
    expected: i32,
    within: Duration,
) -> Result<(), String> {
    match wait_for(within, || async {
        (replicas(ns, name).await == Some(expected)).then_some(())
    })
    .await
    {
        Ok(()) => Ok(()),
        Err(_) => Err(format!(
            "{name} did not reach {expected} replicas within {within:?} (has {:?})",
            replicas(ns, name).await
        )),
    }
}

async fn condition(ns: &TestNamespace, so: &str, type_: &str) -> Option<(String, String, String)> {
    let so = ns.api::<ScaledObject>().get(so).await.ok()?;
    let c = so
        .status?
        .conditions?
        .into_iter()
        .find(|c| c.r#type == type_)?;
    Some((
        c.status,
        c.reason.unwrap_or_default(),
        c.message.unwrap_or_default(),
    ))
}

async fn event_reasons(ns: &TestNamespace, so: &str) -> Vec<String> {
    let events = ns
        .api::<Event>()
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    events
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(so))
        .filter_map(|e| e.reason)
        .collect()
}

async fn wait_event(ns: &TestNamespace, so: &str, reason: &str, within: Duration) {
    wait_for(within, || async {
        event_reasons(ns, so)
            .await
            .iter()
            .any(|r| r == reason)
            .then_some(())
    })
    .await
    .unwrap_or_else(|_| panic!("no {reason} event for {so} within {within:?}"));
}

#[tokio::test]
async fn scales_zero_to_n_through_the_hpa_and_back_to_zero() {
    shared_operator();
    let ns = shared().namespace("so-0-n-0").await;
    let redis = RedisServer::start();
    deployment(&ns, "worker", 0).await;
    let so = scaled_object(
        "worker",
        "worker",
        redis_trigger(&redis, "jobs"),
        serde_json::json!({}),
    );
    ns.api::<ScaledObject>()
        .create(&PostParams::default(), &so)
        .await
        .expect("created");
    wait_for(Duration::from_secs(30), || async {
        condition(&ns, "worker", "Ready")
            .await
            .filter(|c| c.0 == "True")
            .map(|_| ())
    })
    .await
    .expect("Ready=True");
    assert_eq!(
        replicas(&ns, "worker").await,
        Some(0),
        "nothing queued: stays at zero"
    );
    wait_event(&ns, "worker", "ScaledObjectReady", Duration::from_secs(10)).await;
    wait_event(&ns, "worker", "KEDAScalersStarted", Duration::from_secs(10)).await;

    // One item is not above activationListLength 1; two are.
    redis.push(0, "jobs", 1);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        replicas(&ns, "worker").await,
        Some(0),
        "activation is strictly greater than the threshold"
    );
    redis.push(0, "jobs", 11);
    wait_replicas(&ns, "worker", 1, Duration::from_secs(10))
        .await
        .ok();
    wait_event(
        &ns,
        "worker",
        "KEDAScaleTargetActivated",
        Duration::from_secs(10),
    )
    .await;
    // The status is written right after the event: wait for it rather than race it.
    let status = wait_for(Duration::from_secs(10), || async {
        let status = ns.api::<ScaledObject>().get("worker").await.ok()?.status?;
        status.last_active_time.is_some().then_some(status)
    })
    .await
    .expect("lastActiveTime set");
    assert_eq!(status.hpa_name.as_deref(), Some("keda-hpa-worker"));
    assert_eq!(
        status.external_metric_names,
        Some(vec!["s0-redis-jobs".to_string()])
    );

    // The HPA reads 12 through the aggregator: ceil(12 / 5) = 3.
    wait_replicas(&ns, "worker", 3, Duration::from_secs(60))
        .await
        .expect("HPA scales to 3");
    let raw = http::Request::get(format!(
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/{}/s0-redis-jobs?labelSelector=scaledobject.keda.sh%2Fname%3Dworker",
        ns.name
    ))
    .body(Vec::new())
    .expect("request");
    let body = ns
        .client
        .request_text(raw)
        .await
        .expect("metric through the apiserver");
    let value: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(value["items"][0]["value"], "12", "{body}");
    assert_eq!(value["items"][0]["metricName"], "s0-redis-jobs");

    // Capped at maxReplicaCount.
    redis.push(0, "jobs", 100);
    wait_replicas(&ns, "worker", 10, Duration::from_secs(60))
        .await
        .expect("capped at 10");

    // Empty queue: back to zero once the cooldown (5 s) passed.
    redis.command(&["DEL", "jobs"]);
    wait_replicas(&ns, "worker", 0, Duration::from_secs(40))
        .await
        .expect("back to zero");
    wait_event(
        &ns,
        "worker",
        "KEDAScaleTargetDeactivated",
        Duration::from_secs(10),
    )
    .await;
    let active = condition(&ns, "worker", "Active")
        .await
        .expect("Active condition");
    assert_eq!(active.0, "False");
    ns.delete().await;
}

#[tokio::test]
async fn invalid_metadata_is_reported_and_other_objects_keep_scaling() {
    shared_operator();
    let ns = shared().namespace("so-invalid").await;
    let redis = RedisServer::start();
    deployment(&ns, "a", 0).await;
    deployment(&ns, "b", 0).await;
    deployment(&ns, "good", 0).await;
    let api = ns.api::<ScaledObject>();
    let no_list = scaled_object(
        "no-list",
        "a",
        serde_json::json!({"address": redis.address()}),
        serde_json::json!({}),
    );
    let bad_length = scaled_object(
        "bad-length",
        "b",
        serde_json::json!({"address": redis.address(), "listName": "q", "listLength": "abc"}),
        serde_json::json!({}),
    );
    let good = scaled_object(
        "good",
        "good",
        redis_trigger(&redis, "good"),
        serde_json::json!({}),
    );
    for so in [&no_list, &bad_length, &good] {
        api.create(&PostParams::default(), so)
            .await
            .expect("created");
    }
    for (name, parameter) in [("no-list", "listName"), ("bad-length", "listLength")] {
        let (status, reason, message) = wait_for(Duration::from_secs(30), || async {
            condition(&ns, name, "Ready")
                .await
                .filter(|c| c.0 == "False")
        })
        .await
        .unwrap_or_else(|_| panic!("{name}: Ready=False"));
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("False", "ScaledObjectCheckFailed"),
            "{name}"
        );
        assert!(
            message.contains(parameter),
            "{name}: message names {parameter}: {message}"
        );
        let hpas = ns
            .api::<HorizontalPodAutoscaler>()
            .list(&ListParams::default())
            .await
            .expect("hpas");
        assert!(
            hpas.items
                .iter()
                .all(|h| h.metadata.name.as_deref() != Some(&format!("keda-hpa-{name}"))),
            "{name}: no HPA"
        );
    }
    redis.push(0, "good", 3);
    wait_replicas(&ns, "good", 1, Duration::from_secs(15))
        .await
        .expect("the valid object still scales");
    ns.delete().await;
}

#[tokio::test]
async fn missing_target_and_target_without_scale_have_distinct_messages() {
    shared_operator();
    let ns = shared().namespace("so-targets").await;
    let redis = RedisServer::start();
    let api = ns.api::<ScaledObject>();
    let missing = scaled_object(
        "missing",
        "does-not-exist",
        redis_trigger(&redis, "q"),
        serde_json::json!({}),
    );
    let mut no_scale = scaled_object(
        "no-scale",
        "some-config",
        redis_trigger(&redis, "q"),
        serde_json::json!({}),
    );
    no_scale.spec.scale_target_ref.kind = Some("ConfigMap".into());
    no_scale.spec.scale_target_ref.api_version = Some("v1".into());
    let cm: k8s_openapi::api::core::v1::ConfigMap =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "some-config"}}))
            .expect("cm");
    ns.api::<k8s_openapi::api::core::v1::ConfigMap>()
        .create(&PostParams::default(), &cm)
        .await
        .expect("cm");
    api.create(&PostParams::default(), &missing)
        .await
        .expect("created");
    api.create(&PostParams::default(), &no_scale)
        .await
        .expect("created");
    for (name, expected) in [
        ("missing", "Target resource doesn't exist"),
        (
            "no-scale",
            "Target resource doesn't expose /scale subresource",
        ),
    ] {
        let (_, reason, message) = wait_for(Duration::from_secs(30), || async {
            condition(&ns, name, "Ready")
                .await
                .filter(|c| c.0 == "False")
        })
        .await
        .unwrap_or_else(|_| panic!("{name}: Ready=False"));
        assert_eq!(reason, "ScaledObjectCheckFailed");
        assert!(message.contains(expected), "{name}: {message}");
    }
    wait_event(
        &ns,
        "missing",
        "ScaledObjectCheckFailed",
        Duration::from_secs(10),
    )
    .await;
    ns.delete().await;
}

#[tokio::test]
async fn paused_replicas_deletes_the_hpa_and_holds_until_removed() {
    shared_operator();
    let ns = shared().namespace("so-pause").await;
    let redis = RedisServer::start();
    deployment(&ns, "worker", 0).await;
    redis.push(0, "jobs", 3);
    let api = ns.api::<ScaledObject>();
    api.create(
        &PostParams::default(),
        &scaled_object(
            "worker",
            "worker",
            redis_trigger(&redis, "jobs"),
            serde_json::json!({}),
        ),
    )
    .await
    .expect("created");
    wait_replicas(&ns, "worker", 1, Duration::from_secs(20))
        .await
        .expect("active");
    let hpas = ns.api::<HorizontalPodAutoscaler>();
    let pause = serde_json::json!({"metadata": {"annotations": {"autoscaling.keda.sh/paused-replicas": "0"}}});
    api.patch("worker", &PatchParams::default(), &Patch::Merge(&pause))
        .await
        .expect("paused");
    wait_replicas(&ns, "worker", 0, Duration::from_secs(20))
        .await
        .expect("paused at 0");
    wait_for(Duration::from_secs(20), || async {
        hpas.get_opt("keda-hpa-worker")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await
    .expect("HPA deleted while paused");
    let paused = condition(&ns, "worker", "Paused").await.expect("Paused");
    assert_eq!(
        (paused.0.as_str(), paused.1.as_str()),
        ("True", "ScaledObjectPaused")
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        replicas(&ns, "worker").await,
        Some(0),
        "held at 0 although the queue is active"
    );
    let status = api.get("worker").await.expect("so").status.expect("status");
    assert_eq!(status.paused_replica_count, Some(0));

    let resume = serde_json::json!({"metadata": {"annotations": {"autoscaling.keda.sh/paused-replicas": null}}});
    api.patch("worker", &PatchParams::default(), &Patch::Merge(&resume))
        .await
        .expect("resumed");
    wait_replicas(&ns, "worker", 1, Duration::from_secs(20))
        .await
        .expect("scaling resumes");
    wait_for(Duration::from_secs(20), || async {
        hpas.get_opt("keda-hpa-worker").await.ok()?.map(|_| ())
    })
    .await
    .expect("HPA recreated");
    let unpaused = condition(&ns, "worker", "Paused").await.expect("Paused");
    assert_eq!(
        (unpaused.0.as_str(), unpaused.1.as_str()),
        ("False", "ScaledObjectUnpaused")
    );
    ns.delete().await;
}

#[tokio::test]
async fn deletion_removes_the_finalizer_and_restores_the_original_replicas() {
    shared_operator();
    let ns = shared().namespace("so-delete").await;
    let redis = RedisServer::start();
    deployment(&ns, "worker", 2).await;
    let api = ns.api::<ScaledObject>();
    let so = scaled_object(
        "worker",
        "worker",
        redis_trigger(&redis, "jobs"),
        serde_json::json!({"advanced": {"restoreToOriginalReplicaCount": true}}),
    );
    api.create(&PostParams::default(), &so)
        .await
        .expect("created");
    // Nothing queued: after the initial cooldown keda-rs takes it to zero.
    wait_replicas(&ns, "worker", 0, Duration::from_secs(30))
        .await
        .expect("scaled to zero");
    // The reconcile records the replicas it found (2) even if the first poll scaled to zero
    // before that status write landed.
    let created = wait_for(Duration::from_secs(10), || async {
        let so = api.get("worker").await.ok()?;
        let recorded = so
            .status
            .as_ref()
            .and_then(|s| s.original_replica_count)
            .is_some();
        recorded.then_some(so)
    })
    .await
    .expect("originalReplicaCount recorded");
    assert_eq!(
        created.metadata.finalizers,
        Some(vec!["finalizer.keda.sh".to_string()])
    );
    assert_eq!(
        created.status.and_then(|s| s.original_replica_count),
        Some(2)
    );
    api.delete("worker", &DeleteParams::default())
        .await
        .expect("deleted");
    wait_for(Duration::from_secs(30), || async {
        api.get_opt("worker").await.ok()?.is_none().then_some(())
    })
    .await
    .expect("finalizer removed, object gone");
    assert_eq!(
        replicas(&ns, "worker").await,
        Some(2),
        "original replica count restored"
    );
    let hpas = ns.api::<HorizontalPodAutoscaler>();
    wait_for(Duration::from_secs(60), || async {
        hpas.get_opt("keda-hpa-worker")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await
    .expect("HPA garbage-collected through its owner reference");
    ns.delete().await;
}

#[tokio::test]
async fn operator_restart_loses_nothing_and_creates_no_duplicate_hpa() {
    let operator = shared_operator();
    let ns = shared().namespace("so-restart").await;
    let redis = RedisServer::start();
    deployment(&ns, "worker", 0).await;
    let api = ns.api::<ScaledObject>();
    api.create(
        &PostParams::default(),
        &scaled_object(
            "worker",
            "worker",
            redis_trigger(&redis, "jobs"),
            serde_json::json!({}),
        ),
    )
    .await
    .expect("created");
    redis.push(0, "jobs", 7);
    wait_replicas(&ns, "worker", 2, Duration::from_secs(60))
        .await
        .expect("active at ceil(7/5)=2");
    operator.restart();
    redis.push(0, "jobs", 10);
    wait_replicas(&ns, "worker", 4, Duration::from_secs(60))
        .await
        .expect("scaling resumes after the restart");
    let hpas = ns
        .api::<HorizontalPodAutoscaler>()
        .list(&ListParams::default())
        .await
        .expect("hpas");
    assert_eq!(hpas.items.len(), 1, "one HPA, not two");
    let so = api.get("worker").await.expect("so");
    assert_eq!(so.metadata.finalizers.map(|f| f.len()), Some(1));
    ns.delete().await;
}

#[tokio::test]
async fn unreachable_redis_holds_or_falls_back_and_recovers() {
    shared_operator();
    let ns = shared().namespace("so-unreachable").await;
    let mut redis = RedisServer::start();
    deployment(&ns, "with-fallback", 0).await;
    deployment(&ns, "no-fallback", 0).await;
    let fast_scale_down = serde_json::json!({"horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}}});
    let api = ns.api::<ScaledObject>();
    let with_fallback = scaled_object(
        "with-fallback",
        "with-fallback",
        redis_trigger(&redis, "a"),
        serde_json::json!({"fallback": {"failureThreshold": 2, "replicas": 4}, "advanced": fast_scale_down}),
    );
    let no_fallback = scaled_object(
        "no-fallback",
        "no-fallback",
        redis_trigger(&redis, "b"),
        serde_json::json!({}),
    );
    api.create(&PostParams::default(), &with_fallback)
        .await
        .expect("created");
    api.create(&PostParams::default(), &no_fallback)
        .await
        .expect("created");
    redis.push(0, "a", 7);
    redis.push(0, "b", 7);
    wait_replicas(&ns, "with-fallback", 2, Duration::from_secs(60))
        .await
        .expect("ceil(7/5)");
    wait_replicas(&ns, "no-fallback", 2, Duration::from_secs(60))
        .await
        .expect("ceil(7/5)");

    redis.kill();
    // Without a fallback: Ready=False TriggerError once the object is inactive, and no scaling.
    let (status, reason, _) = wait_for(Duration::from_secs(30), || async {
        condition(&ns, "no-fallback", "Ready")
            .await
            .filter(|c| c.1 == "TriggerError")
    })
    .await
    .expect("no-fallback: Ready=False TriggerError");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "TriggerError")
    );
    // With a fallback: past 2 failures the HPA is fed target × 4 and goes to 4 replicas.
    wait_replicas(&ns, "with-fallback", 4, Duration::from_secs(60))
        .await
        .expect("fallback replicas");
    let fallback = condition(&ns, "with-fallback", "Fallback")
        .await
        .expect("Fallback condition");
    assert_eq!(
        (fallback.0.as_str(), fallback.1.as_str()),
        ("True", "FallbackExists")
    );
    let health = api
        .get("with-fallback")
        .await
        .expect("so")
        .status
        .and_then(|s| s.health)
        .unwrap_or_default();
    assert_eq!(
        health.get("s0-redis-a").and_then(|h| h.status.as_deref()),
        Some("Failing"),
        "{health:?}"
    );
    // Well past the 5 s cooldown, neither was taken to zero.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        replicas(&ns, "no-fallback").await,
        Some(2),
        "no scale to zero while the source is down"
    );
    assert_eq!(replicas(&ns, "with-fallback").await, Some(4));

    // Redis comes back (empty): both recover without any restart.
    redis.restart();
    redis.push(0, "a", 3);
    redis.push(0, "b", 3);
    wait_for(Duration::from_secs(30), || async {
        condition(&ns, "with-fallback", "Fallback")
            .await
            .filter(|c| c.0 == "False")
            .map(|_| ())
    })
    .await
    .expect("fallback ends");
    wait_replicas(&ns, "with-fallback", 1, Duration::from_secs(60))
        .await
        .expect("back to ceil(3/5)");
    wait_for(Duration::from_secs(30), || async {
        condition(&ns, "no-fallback", "Ready")
            .await
            .filter(|c| c.0 == "True")
            .map(|_| ())
    })
    .await
    .expect("no-fallback: Ready again");
    ns.delete().await;
}
