//! TriggerAuthentication, ClusterTriggerAuthentication and environment resolution end to end: a
//! redis-server with `requirepass`, the password reaching the scaler through every path a KEDA
//! user writes, clear conditions when something is missing, and credential rotation picked up
//! without restarting the operator.

#![allow(clippy::unwrap_used)]
// Measures by the wall clock: the cluster and servers do not run on a paused tokio clock.
#![allow(clippy::disallowed_types)]

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use keda_api::{ClusterTriggerAuthentication, ScaledObject, TriggerAuthentication};
use keda_rs_e2e::operator::{CLUSTER_OBJECT_NAMESPACE, filepath_auth_root, shared_operator};
use keda_rs_e2e::{TestNamespace, shared, wait_for};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use test_cluster::redis::RedisServer;

async fn create<K>(api: &Api<K>, value: Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(value).expect("valid object");
    api.create(&PostParams::default(), &object)
        .await
        .expect("created");
}

async fn deployment(ns: &TestNamespace, name: &str, container: Value) {
    create(
        &ns.api::<Deployment>(),
        json!({
            "metadata": {"name": name},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}},
                    "spec": {"containers": [container]}}
            }
        }),
    )
    .await;
}

fn worker() -> Value {
    json!({"name": "worker", "image": "example.invalid/worker:1"})
}

async fn secret(api: &Api<Secret>, name: &str, data: Value) {
    create(api, json!({"metadata": {"name": name}, "stringData": data})).await;
}

async fn scaled_object(ns: &TestNamespace, name: &str, trigger: Value, extra: Value) {
    let mut spec = json!({
        "scaleTargetRef": {"name": name},
        "pollingInterval": 2,
        "cooldownPeriod": 5,
        "maxReplicaCount": 3,
        "triggers": [trigger]
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    create(
        &ns.api::<ScaledObject>(),
        json!({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
               "metadata": {"name": name}, "spec": spec}),
    )
    .await;
}

fn redis_trigger(redis: &RedisServer, list: &str, extra: Value) -> Value {
    let mut metadata = json!({"address": redis.address(), "listName": list, "listLength": "5"});
    if let (Some(m), Some(extra)) = (metadata.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            m.insert(k.clone(), v.clone());
        }
    }
    json!({"type": "redis", "metadata": metadata})
}

async fn replicas(ns: &TestNamespace, name: &str) -> Option<i32> {
    ns.api::<Deployment>().get(name).await.ok()?.spec.replicas
}

async fn wait_active(ns: &TestNamespace, name: &str, within: Duration) -> Result<(), String> {
    wait_for(within, || async {
        (replicas(ns, name).await.unwrap_or(0) >= 1).then_some(())
    })
    .await
    .map_err(|_| format!("{name} was not scaled up within {within:?}"))
}

async fn ready(ns: &TestNamespace, so: &str) -> Option<(String, String, String)> {
    let so = ns.api::<ScaledObject>().get(so).await.ok()?;
    let c = so
        .status?
        .conditions?
        .into_iter()
        .find(|c| c.r#type == "Ready")?;
    Some((
        c.status,
        c.reason.unwrap_or_default(),
        c.message.unwrap_or_default(),
    ))
}

async fn wait_not_ready(ns: &TestNamespace, so: &str) -> String {
    let (_, reason, message) = wait_for(Duration::from_secs(30), || async {
        ready(ns, so).await.filter(|c| c.0 == "False")
    })
    .await
    .unwrap_or_else(|_| panic!("{so}: Ready=False expected"));
    assert_eq!(reason, "ScaledObjectCheckFailed", "{so}: {message}");
    message
}

#[tokio::test]
async fn password_from_secret_target_ref_env_and_from_env() {
    shared_operator();
    let ns = shared().namespace("auth-paths").await;
    let redis = RedisServer::start_with(&["--requirepass", "s3cret"]);
    let secrets = ns.api::<Secret>();
    secret(&secrets, "redis-auth", json!({"password": "s3cret"})).await;

    // 1. secretTargetRef on a TriggerAuthentication.
    create(
        &ns.api::<TriggerAuthentication>(),
        json!({"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
               "metadata": {"name": "by-secret"},
               "spec": {"secretTargetRef": [{"parameter": "password", "name": "redis-auth", "key": "password"}]}}),
    )
    .await;
    deployment(&ns, "by-secret", worker()).await;
    let mut trigger = redis_trigger(&redis, "by-secret", json!({}));
    trigger["authenticationRef"] = json!({"name": "by-secret"});
    scaled_object(&ns, "by-secret", trigger, json!({})).await;

    // 2. TriggerAuthentication env[] over the container's secretKeyRef.
    create(
        &ns.api::<TriggerAuthentication>(),
        json!({"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
               "metadata": {"name": "by-env"},
               "spec": {"env": [{"parameter": "password", "name": "REDIS_PASSWORD"}]}}),
    )
    .await;
    let container = json!({"name": "worker", "image": "example.invalid/worker:1",
        "env": [{"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "redis-auth", "key": "password"}}}]});
    deployment(&ns, "by-env", container.clone()).await;
    let mut trigger = redis_trigger(&redis, "by-env", json!({}));
    trigger["authenticationRef"] = json!({"name": "by-env"});
    scaled_object(&ns, "by-env", trigger, json!({})).await;

    // 3. passwordFromEnv, with envFrom prefixes, $(VAR) expansion and an optional missing ref,
    //    read from the container named by envSourceContainerName.
    let mut host_port = std::collections::BTreeMap::new();
    let (host, port) = redis
        .address()
        .rsplit_once(':')
        .map(|(h, p)| (h.to_string(), p.to_string()))
        .expect("host:port");
    host_port.insert("HOST", host);
    host_port.insert("PORT", port);
    create(
        &ns.api::<ConfigMap>(),
        json!({"metadata": {"name": "redis-where"}, "data": host_port}),
    )
    .await;
    let sidecar = json!({"name": "sidecar", "image": "example.invalid/sidecar:1",
    "envFrom": [{"configMapRef": {"name": "redis-where"}, "prefix": "R_"},
                {"secretRef": {"name": "not-there", "optional": true}}],
    "env": [
        {"name": "REDIS_ADDRESS", "value": "$(R_HOST):$(R_PORT)"},
        {"name": "LITERAL", "value": "$$(R_HOST)"},
        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "redis-auth", "key": "password"}}},
        {"name": "OPTIONAL", "valueFrom": {"secretKeyRef": {"name": "redis-auth", "key": "nope", "optional": true}}}
    ]});
    create(
        &ns.api::<Deployment>(),
        json!({
            "metadata": {"name": "from-env"},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "from-env"}},
                "template": {"metadata": {"labels": {"app": "from-env"}},
                    "spec": {"containers": [worker(), sidecar]}}}
        }),
    )
    .await;
    scaled_object(
        &ns,
        "from-env",
        json!({"type": "redis", "metadata": {"addressFromEnv": "REDIS_ADDRESS", "passwordFromEnv": "PW",
               "listName": "from-env", "listLength": "5"}}),
        json!({"scaleTargetRef": {"name": "from-env", "envSourceContainerName": "sidecar"}}),
    )
    .await;

    for name in ["by-secret", "by-env", "from-env"] {
        redis.push(0, name, 3);
    }
    for name in ["by-secret", "by-env", "from-env"] {
        if let Err(e) = wait_active(&ns, name, Duration::from_secs(30)).await {
            panic!("{e}; Ready: {:?}", ready(&ns, name).await);
        }
    }
    ns.delete().await;
}

#[tokio::test]
async fn cluster_trigger_authentication_secret_and_file_path() {
    shared_operator();
    let ns = shared().namespace("auth-cta").await;
    let redis = RedisServer::start_with(&["--requirepass", "cluster-pw"]);
    let client = shared().client().await;
    let suffix = ns.name.clone();

    // The CTA's Secret lives in the cluster-object namespace, not in the ScaledObject's.
    let keda_secrets: Api<Secret> = Api::namespaced(client.clone(), CLUSTER_OBJECT_NAMESPACE);
    let secret_name = format!("redis-{suffix}");
    secret(&keda_secrets, &secret_name, json!({"pw": "cluster-pw"})).await;
    let ctas: Api<ClusterTriggerAuthentication> = Api::all(client.clone());
    let cta_secret = format!("cta-secret-{suffix}");
    create(
        &ctas,
        json!({"apiVersion": "keda.sh/v1alpha1", "kind": "ClusterTriggerAuthentication",
               "metadata": {"name": cta_secret},
               "spec": {"secretTargetRef": [{"parameter": "password", "name": secret_name, "key": "pw"}]}}),
    )
    .await;
    deployment(&ns, "cta-secret", worker()).await;
    let mut trigger = redis_trigger(&redis, "cta-secret", json!({}));
    trigger["authenticationRef"] =
        json!({"name": cta_secret, "kind": "ClusterTriggerAuthentication"});
    scaled_object(&ns, "cta-secret", trigger, json!({})).await;

    // filePath: a JSON file under the operator's --filepath-auth-root-path.
    let file = format!("{suffix}/redis.json");
    std::fs::create_dir_all(filepath_auth_root().join(&suffix)).expect("dir");
    std::fs::write(
        filepath_auth_root().join(&file),
        json!({"password": "cluster-pw"}).to_string(),
    )
    .expect("file");
    let cta_file = format!("cta-file-{suffix}");
    create(
        &ctas,
        json!({"apiVersion": "keda.sh/v1alpha1", "kind": "ClusterTriggerAuthentication",
               "metadata": {"name": cta_file}, "spec": {"filePath": file}}),
    )
    .await;
    deployment(&ns, "cta-file", worker()).await;
    let mut trigger = redis_trigger(&redis, "cta-file", json!({}));
    trigger["authenticationRef"] =
        json!({"name": cta_file, "kind": "ClusterTriggerAuthentication"});
    scaled_object(&ns, "cta-file", trigger, json!({})).await;

    // A namespaced TriggerAuthentication may not use filePath.
    create(
        &ns.api::<TriggerAuthentication>(),
        json!({"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
               "metadata": {"name": "ta-file"}, "spec": {"filePath": file}}),
    )
    .await;
    deployment(&ns, "ta-file", worker()).await;
    let mut trigger = redis_trigger(&redis, "ta-file", json!({}));
    trigger["authenticationRef"] = json!({"name": "ta-file"});
    scaled_object(&ns, "ta-file", trigger, json!({})).await;

    redis.push(0, "cta-secret", 3);
    redis.push(0, "cta-file", 3);
    wait_active(&ns, "cta-secret", Duration::from_secs(30))
        .await
        .expect("CTA secret");
    wait_active(&ns, "cta-file", Duration::from_secs(30))
        .await
        .expect("CTA filePath");
    let message = wait_not_ready(&ns, "ta-file").await;
    assert!(
        message.contains("filePath") && message.contains("ClusterTriggerAuthentication"),
        "{message}"
    );

    for name in [cta_secret, cta_file] {
        let _ = ctas.delete(&name, &DeleteParams::default()).await;
    }
    let _ = keda_secrets
        .delete(&secret_name, &DeleteParams::default())
        .await;
    ns.delete().await;
}

#[tokio::test]
async fn missing_references_are_named_and_recover_when_created() {
    shared_operator();
    let ns = shared().namespace("auth-missing").await;
    let redis = RedisServer::start_with(&["--requirepass", "pw"]);
    let secrets = ns.api::<Secret>();
    let tas = ns.api::<TriggerAuthentication>();

    // No TriggerAuthentication at all.
    deployment(&ns, "no-ta", worker()).await;
    let mut trigger = redis_trigger(&redis, "no-ta", json!({}));
    trigger["authenticationRef"] = json!({"name": "ghost"});
    scaled_object(&ns, "no-ta", trigger, json!({})).await;

    // A TriggerAuthentication whose Secret does not exist.
    create(
        &tas,
        json!({"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
               "metadata": {"name": "no-secret"},
               "spec": {"secretTargetRef": [{"parameter": "password", "name": "later", "key": "password"}]}}),
    )
    .await;
    deployment(&ns, "no-secret", worker()).await;
    let mut trigger = redis_trigger(&redis, "no-secret", json!({}));
    trigger["authenticationRef"] = json!({"name": "no-secret"});
    scaled_object(&ns, "no-secret", trigger, json!({})).await;

    // The Secret exists but lacks the key.
    secret(&secrets, "wrong-key", json!({"passwd": "pw"})).await;
    create(
        &tas,
        json!({"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
               "metadata": {"name": "no-key"},
               "spec": {"secretTargetRef": [{"parameter": "password", "name": "wrong-key", "key": "password"}]}}),
    )
    .await;
    deployment(&ns, "no-key", worker()).await;
    let mut trigger = redis_trigger(&redis, "no-key", json!({}));
    trigger["authenticationRef"] = json!({"name": "no-key"});
    scaled_object(&ns, "no-key", trigger, json!({})).await;

    // envSourceContainerName that names no container.
    deployment(&ns, "no-container", worker()).await;
    scaled_object(
        &ns,
        "no-container",
        redis_trigger(&redis, "no-container", json!({"passwordFromEnv": "PW"})),
        json!({"scaleTargetRef": {"name": "no-container", "envSourceContainerName": "missing"}}),
    )
    .await;

    let message = wait_not_ready(&ns, "no-ta").await;
    assert!(
        message.contains("TriggerAuthentication \"ghost\" not found"),
        "{message}"
    );
    let message = wait_not_ready(&ns, "no-secret").await;
    assert!(
        message.contains("Secret \"later\" not found") && message.contains("\"no-secret\""),
        "{message}"
    );
    let message = wait_not_ready(&ns, "no-key").await;
    assert!(
        message.contains("key \"password\" not found in Secret"),
        "{message}"
    );
    let message = wait_not_ready(&ns, "no-container").await;
    assert!(
        message.contains("envSourceContainerName") && message.contains("\"missing\""),
        "{message}"
    );
    assert_eq!(replicas(&ns, "no-secret").await, Some(0));

    // Creating what was missing heals the objects without touching them.
    secret(&secrets, "later", json!({"password": "pw"})).await;
    create(
        &tas,
        json!({"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
               "metadata": {"name": "ghost"},
               "spec": {"secretTargetRef": [{"parameter": "password", "name": "later", "key": "password"}]}}),
    )
    .await;
    redis.push(0, "no-secret", 3);
    redis.push(0, "no-ta", 3);
    for name in ["no-secret", "no-ta"] {
        wait_for(Duration::from_secs(40), || async {
            ready(&ns, name).await.filter(|c| c.0 == "True")
        })
        .await
        .unwrap_or_else(|_| panic!("{name}: Ready=True after the reference appeared"));
        wait_active(&ns, name, Duration::from_secs(30))
            .await
            .expect("scales once healed");
    }
    ns.delete().await;
}

#[tokio::test]
async fn rotated_secret_applies_within_one_polling_interval() {
    shared_operator();
    let ns = shared().namespace("auth-rotate").await;
    let mut redis = RedisServer::start_with(&["--requirepass", "old-pw"]);
    let secrets = ns.api::<Secret>();
    secret(&secrets, "redis-auth", json!({"password": "old-pw"})).await;
    create(
        &ns.api::<TriggerAuthentication>(),
        json!({"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
               "metadata": {"name": "rotating"},
               "spec": {"secretTargetRef": [{"parameter": "password", "name": "redis-auth", "key": "password"}]}}),
    )
    .await;
    deployment(&ns, "rotating", worker()).await;
    let mut trigger = redis_trigger(&redis, "rotating", json!({"activationListLength": "0"}));
    trigger["authenticationRef"] = json!({"name": "rotating"});
    let polling = 5;
    scaled_object(
        &ns,
        "rotating",
        trigger,
        json!({"pollingInterval": polling, "cooldownPeriod": 300}),
    )
    .await;
    wait_for(Duration::from_secs(30), || async {
        ready(&ns, "rotating").await.filter(|c| c.0 == "True")
    })
    .await
    .expect("Ready with the old password");

    // The server's password changes; until the Secret follows, polls fail and nothing scales.
    redis.rotate_password("new-pw");
    redis.push(0, "rotating", 3);
    tokio::time::sleep(Duration::from_secs(2 * polling)).await;
    assert_eq!(
        replicas(&ns, "rotating").await,
        Some(0),
        "no scaling with stale credentials"
    );

    let updated = Instant::now();
    secrets
        .patch(
            "redis-auth",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"password": "new-pw"}})),
        )
        .await
        .expect("secret rotated");
    wait_active(&ns, "rotating", Duration::from_secs(4 * polling))
        .await
        .expect("scales with the rotated password, no operator restart");
    let took = updated.elapsed();
    eprintln!("rotation picked up {took:?} after the Secret update (pollingInterval {polling}s)");
    // One interval to notice, the read cache's TTL, one poll, the /scale write.
    assert!(
        took <= Duration::from_secs(2 * polling + 3),
        "took {took:?}"
    );
    ns.delete().await;
}

#[tokio::test]
async fn scaled_job_takes_its_password_from_the_job_template_env_and_a_trigger_authentication() {
    shared_operator();
    let ns = shared().namespace("auth-sj").await;
    let redis = RedisServer::start_with(&["--requirepass", "job-pw"]);
    let secrets = ns.api::<Secret>();
    secret(&secrets, "redis-auth", json!({"password": "job-pw"})).await;
    create(
        &ns.api::<TriggerAuthentication>(),
        json!({"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
               "metadata": {"name": "job-auth"},
               "spec": {"env": [{"parameter": "password", "name": "PW"}]}}),
    )
    .await;
    // The TriggerAuthentication's env reads the Job template's container, whose value comes
    // from a Secret.
    create(
        &ns.api::<keda_api::ScaledJob>(),
        json!({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledJob", "metadata": {"name": "jobs"},
            "spec": {
                "jobTargetRef": {"backoffLimit": 0, "template": {"spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": {"no-such-node": "true"},
                    "containers": [{"name": "w", "image": "example.invalid/worker:1",
                        "env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "redis-auth", "key": "password"}}}]}]}}},
                "pollingInterval": 1, "maxReplicaCount": 2,
                "triggers": [{"type": "redis",
                    "metadata": {"address": redis.address(), "listName": "jobs", "listLength": "1"},
                    "authenticationRef": {"name": "job-auth"}}]}}),
    )
    .await;
    redis.push(0, "jobs", 1);
    let jobs = ns.api::<k8s_openapi::api::batch::v1::Job>();
    wait_for(Duration::from_secs(30), || async {
        let list = jobs.list(&Default::default()).await.ok()?;
        (!list.items.is_empty()).then_some(())
    })
    .await
    .expect("a Job for the queued item, read with the resolved password");
    let listed = wait_for(Duration::from_secs(30), || async {
        ns.api::<TriggerAuthentication>()
            .get("job-auth")
            .await
            .ok()?
            .status?
            .scaledjobs
    })
    .await
    .expect("the ScaledJob is listed in the TriggerAuthentication's status");
    assert_eq!(listed, "jobs");
    ns.delete().await;
}
