//! ScaledJob end to end on the real control plane (KWOK nodes) with a real redis-server: seed
//! 001 unchanged, a worker emulator consuming one file name per Job pod, history cleanup,
//! pending pods without duplicate Jobs, rollout, failed checks and deletion.
#![allow(clippy::unwrap_used)]
// Waits by the wall clock: the cluster does not run on a paused tokio clock.
#![allow(clippy::disallowed_types)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolume, Pod};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use keda_api::ScaledJob;
use keda_rs_e2e::operator::shared_operator;
use keda_rs_e2e::{TestNamespace, create, documents, fixtures, shared, wait_for};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use test_cluster::redis::RedisServer;

const NAME_LABEL: &str = "scaledjob.keda.sh/name";

async fn condition(ns: &TestNamespace, sj: &str, type_: &str) -> Option<(String, String, String)> {
    let sj = ns.api::<ScaledJob>().get(sj).await.ok()?;
    let c = sj
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

async fn wait_condition(
    ns: &TestNamespace,
    sj: &str,
    type_: &str,
    status: &str,
    within: Duration,
) -> (String, String, String) {
    wait_for(within, || async {
        condition(ns, sj, type_).await.filter(|c| c.0 == status)
    })
    .await
    .unwrap_or_else(|_| panic!("{sj}: {type_} never became {status}"))
}

async fn event_reasons(ns: &TestNamespace, name: &str) -> Vec<String> {
    ns.api::<Event>()
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter_map(|e| e.reason)
        .collect()
}

async fn wait_event(ns: &TestNamespace, name: &str, reason: &str, within: Duration) {
    wait_for(within, || async {
        event_reasons(ns, name)
            .await
            .iter()
            .any(|r| r == reason)
            .then_some(())
    })
    .await
    .unwrap_or_else(|_| panic!("no {reason} event for {name} within {within:?}"));
}

async fn jobs_of(ns: &TestNamespace, sj: &str) -> Vec<Job> {
    ns.api::<Job>()
        .list(&ListParams::default().labels(&format!("{NAME_LABEL}={sj}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

fn finished(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| {
            c.iter()
                .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        })
}

fn lpop(redis: &RedisServer, list: &str) -> Option<String> {
    let reply = redis.command(&["LPOP", list]);
    // "$<len>\r\n<value>\r\n", or "$-1\r\n" / "_\r\n" when empty.
    let mut lines = reply.split("\r\n");
    let head = lines.next()?;
    if head.starts_with("$-1") || head.starts_with('_') {
        return None;
    }
    lines.next().map(str::to_string)
}

fn llen(redis: &RedisServer, list: &str) -> usize {
    let reply = redis.command(&["LLEN", list]);
    reply
        .trim_start_matches(':')
        .trim()
        .parse()
        .unwrap_or(usize::MAX)
}

/// Applies the seed's support objects unchanged, plus the PV a storage provisioner would have
/// made for its claim.
async fn apply_seed_support(ns: &TestNamespace) {
    let pv: PersistentVolume = serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("{}-data", ns.name)},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "hostPath": {"path": format!("/tmp/{}", ns.name)},
            "claimRef": {"namespace": ns.name, "name": "data-pvc"}}
    }))
    .unwrap();
    Api::<PersistentVolume>::all(ns.client.clone())
        .create(&PostParams::default(), &pv)
        .await
        .expect("pv");
    let support =
        std::fs::read_to_string(fixtures().join("seeds/001_9d191e8e738a0bf3.support.yaml"))
            .unwrap();
    for doc in documents(&support).unwrap() {
        create(&ns.client, &ns.name, doc)
            .await
            .expect("support object");
    }
    // Pods with an unbound claim are never scheduled: fail here, not minutes later.
    wait_for(Duration::from_secs(60), || async {
        let pvc = ns
            .api::<k8s_openapi::api::core::v1::PersistentVolumeClaim>()
            .get("data-pvc")
            .await
            .ok()?;
        (pvc.status?.phase.as_deref() == Some("Bound")).then_some(())
    })
    .await
    .expect("data-pvc bound by the persistentvolume-binder controller");
}

/// What the worker emulator saw: items popped per pod, and the most unfinished Jobs at once.
#[derive(Default)]
struct Worker {
    popped: Vec<String>,
    handled_pods: BTreeSet<String>,
    empty_pops: usize,
    max_unfinished: usize,
}

/// One tick of the emulated csv-processor: every Job pod that KWOK started (Running, or already
/// Succeeded since KWOK's stage completes Job pods at once) pops exactly one file name, and a
/// pod still Running is marked Succeeded as the real container would end.
async fn worker_tick(
    ns: &TestNamespace,
    redis: &RedisServer,
    list: &str,
    sj: &str,
    state: &Mutex<Worker>,
) {
    let unfinished = jobs_of(ns, sj)
        .await
        .iter()
        .filter(|j| !finished(j))
        .count();
    let pods = ns
        .api::<Pod>()
        .list(&ListParams::default().labels(&format!("{NAME_LABEL}={sj}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    for pod in pods {
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        if phase != "Running" && phase != "Succeeded" {
            continue;
        }
        let uid = pod.uid().unwrap_or_default();
        if state.lock().unwrap().handled_pods.contains(&uid) {
            continue;
        }
        let item = lpop(redis, list);
        {
            let mut w = state.lock().unwrap();
            w.handled_pods.insert(uid);
            match item {
                Some(i) => w.popped.push(i),
                None => w.empty_pops += 1,
            }
        }
        if phase == "Running" {
            let patch = serde_json::json!({"status": {"phase": "Succeeded"}});
            let _ = ns
                .api::<Pod>()
                .patch_status(
                    &pod.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await;
        }
    }
    let mut w = state.lock().unwrap();
    w.max_unfinished = w.max_unfinished.max(unfinished);
}

#[tokio::test]
async fn seed_001_one_job_per_csv_file_at_most_five_at_a_time() {
    shared_operator();
    let ns = shared().namespace("sj-seed-001").await;
    let redis = RedisServer::start();
    apply_seed_support(&ns).await;

    // The seed as captured: its trigger has no address (the tutorial tells users to fill it in).
    let seed = std::fs::read_to_string(fixtures().join("seeds/001_9d191e8e738a0bf3.yaml")).unwrap();
    let docs = documents(&seed).unwrap();
    assert_eq!(docs.len(), 1);
    create(&ns.client, &ns.name, docs[0].clone())
        .await
        .expect("seed ScaledJob accepted");
    let (_, reason, message) = wait_condition(
        &ns,
        "csv-processor",
        "Ready",
        "False",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(reason, "ScaledJobCheckFailed");
    assert!(
        message.contains("address"),
        "message names the parameter: {message}"
    );
    wait_event(
        &ns,
        "csv-processor",
        "ScaledJobCheckFailed",
        Duration::from_secs(10),
    )
    .await;
    let sj = ns.api::<ScaledJob>().get("csv-processor").await.unwrap();
    assert!(sj.finalizers().iter().any(|f| f == "finalizer.keda.sh"));

    // Filling in the address as the tutorial says makes it ready.
    let mut metadata = docs[0]["spec"]["triggers"][0]["metadata"].clone();
    metadata["address"] = serde_json::Value::String(redis.address());
    let patch =
        serde_json::json!({"spec": {"triggers": [{"type": "redis", "metadata": metadata}]}});
    ns.api::<ScaledJob>()
        .patch(
            "csv-processor",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .expect("address filled in");
    wait_condition(
        &ns,
        "csv-processor",
        "Ready",
        "True",
        Duration::from_secs(30),
    )
    .await;
    wait_condition(
        &ns,
        "csv-processor",
        "Active",
        "False",
        Duration::from_secs(30),
    )
    .await;
    assert!(
        jobs_of(&ns, "csv-processor").await.is_empty(),
        "no Jobs while the check failed or the list is empty"
    );

    // The data generator's part: 60 file names.
    let names: Vec<String> = (1..=60)
        .map(|d| format!("2022{:04}.csv", 100 + d))
        .collect();
    let mut push = vec!["RPUSH", "csvs-to-process"];
    push.extend(names.iter().map(String::as_str));
    redis.command(&push);

    let state = Arc::new(Mutex::new(Worker::default()));
    let started = std::time::Instant::now();
    let mut saw_active = false;
    loop {
        worker_tick(&ns, &redis, "csvs-to-process", "csv-processor", &state).await;
        if !saw_active {
            saw_active = condition(&ns, "csv-processor", "Active")
                .await
                .is_some_and(|c| c.0 == "True");
        }
        let done = llen(&redis, "csvs-to-process") == 0
            && jobs_of(&ns, "csv-processor").await.iter().all(finished);
        if done {
            break;
        }
        if started.elapsed() > Duration::from_secs(420) {
            let jobs = jobs_of(&ns, "csv-processor").await;
            let unfinished: Vec<String> = jobs
                .iter()
                .filter(|j| !finished(j))
                .map(|j| format!("{} {:?}", j.name_any(), j.status))
                .collect();
            panic!(
                "queue not drained in time: {} left, {} Jobs, unfinished: {unfinished:#?}",
                llen(&redis, "csvs-to-process"),
                jobs.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let elapsed = started.elapsed();
    // Let the last pods be counted.
    for _ in 0..10 {
        worker_tick(&ns, &redis, "csvs-to-process", "csv-processor", &state).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(saw_active, "Active=True while files were queued");
    let (mut popped, max_unfinished, empty_pops) = {
        let w = state.lock().unwrap();
        (w.popped.clone(), w.max_unfinished, w.empty_pops)
    };
    popped.sort();
    let mut expected = names.clone();
    expected.sort();
    assert_eq!(popped, expected, "every file consumed exactly once");
    assert!(
        max_unfinished <= 5,
        "at most 5 unfinished Jobs, saw {max_unfinished}"
    );
    let jobs = jobs_of(&ns, "csv-processor").await;
    println!(
        "seed 001: 60 items in {elapsed:?}, {} Jobs, {} pods popped nothing, max {} unfinished",
        jobs.len(),
        empty_pops,
        max_unfinished
    );
    let job = &jobs[0];
    assert_eq!(
        job.labels()["app.kubernetes.io/managed-by"],
        "keda-operator"
    );
    assert_eq!(
        job.metadata.owner_references.as_ref().unwrap()[0].kind,
        "ScaledJob"
    );
    assert!(job.metadata.generate_name.as_deref() == Some("csv-processor-"));

    wait_condition(
        &ns,
        "csv-processor",
        "Active",
        "False",
        Duration::from_secs(30),
    )
    .await;
    let reasons = event_reasons(&ns, "csv-processor").await;
    for r in [
        "ScaledJobActive",
        "ScaledJobInactive",
        "KEDAJobsCreated",
        "ScaledJobReady",
    ] {
        assert!(
            reasons.iter().any(|x| x == r),
            "event {r} missing: {reasons:?}"
        );
    }

    // Deleting the ScaledJob: finalizer runs, its Jobs are garbage-collected.
    ns.api::<ScaledJob>()
        .delete("csv-processor", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(Duration::from_secs(30), || async {
        ns.api::<ScaledJob>()
            .get_opt("csv-processor")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await
    .expect("ScaledJob gone (finalizer removed)");
    wait_for(Duration::from_secs(60), || async {
        jobs_of(&ns, "csv-processor").await.is_empty().then_some(())
    })
    .await
    .expect("Jobs garbage-collected");
    ns.delete().await;
}

fn scaled_job(name: &str, redis: &RedisServer, list: &str, spec: serde_json::Value) -> ScaledJob {
    let mut base = serde_json::json!({
        "jobTargetRef": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "w", "image": "example.invalid/worker:1"}]}}},
        "pollingInterval": 1,
        "maxReplicaCount": 2,
        "triggers": [{"type": "redis", "metadata": {"address": redis.address(), "listName": list, "listLength": "1"}}]
    });
    for (k, v) in spec.as_object().unwrap() {
        base[k] = v.clone();
    }
    serde_json::from_value(serde_json::json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledJob",
        "metadata": {"name": name}, "spec": base
    }))
    .unwrap()
}

/// Pods that no KWOK node fits: they stay Pending, so their Jobs stay pending.
fn unschedulable_template() -> serde_json::Value {
    serde_json::json!({"backoffLimit": 0, "template": {"spec": {
        "restartPolicy": "Never",
        "nodeSelector": {"no-such-node": "true"},
        "containers": [{"name": "w", "image": "example.invalid/worker:1"}]}}})
}

/// The test ScaledJobs poll every second: waiting `polls` seconds lets that many polls run.
async fn let_polls_run(polls: u64) {
    tokio::time::sleep(Duration::from_secs(polls)).await;
}

#[tokio::test]
async fn pending_pods_get_no_duplicate_jobs() {
    shared_operator();
    let ns = shared().namespace("sj-pending").await;
    let redis = RedisServer::start();
    let cases = [
        ("accurate", "accurate"),
        ("eager", "eager"),
        ("default", "default"),
    ];
    for (name, strategy) in cases {
        let sj = scaled_job(
            name,
            &redis,
            name,
            serde_json::json!({"jobTargetRef": unschedulable_template(),
                "scalingStrategy": {"strategy": strategy}}),
        );
        ns.api::<ScaledJob>()
            .create(&PostParams::default(), &sj)
            .await
            .unwrap();
        redis.commands(&[&["RPUSH", name, "only-item"]]);
    }
    for (name, _) in cases {
        wait_for(Duration::from_secs(30), || async {
            (jobs_of(&ns, name).await.len() == 1).then_some(())
        })
        .await
        .unwrap_or_else(|_| panic!("{name}: first Job created"));
    }
    let_polls_run(6).await;
    for (name, _) in cases {
        let jobs = jobs_of(&ns, name).await;
        assert_eq!(
            jobs.len(),
            1,
            "{name}: one queued item, one pending Job, no duplicate after 6 polls"
        );
        let pods = ns
            .api::<Pod>()
            .list(&ListParams::default().labels(&format!("job-name={}", jobs[0].name_any())))
            .await
            .unwrap();
        assert!(
            pods.items
                .iter()
                .all(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending"))
        );
    }
    ns.delete().await;
}

#[tokio::test]
async fn rollout_immediate_deletes_old_jobs_and_gradual_keeps_them() {
    shared_operator();
    let ns = shared().namespace("sj-rollout").await;
    let redis = RedisServer::start();
    for (name, rollout) in [
        ("immediate", serde_json::json!({"strategy": "immediate"})),
        ("gradual", serde_json::json!({"strategy": "gradual"})),
    ] {
        let sj = scaled_job(
            name,
            &redis,
            name,
            serde_json::json!({"jobTargetRef": unschedulable_template(), "rollout": rollout}),
        );
        ns.api::<ScaledJob>()
            .create(&PostParams::default(), &sj)
            .await
            .unwrap();
        redis.commands(&[&["RPUSH", name, "a", "b"]]);
    }
    let mut before = BTreeMap::new();
    for name in ["immediate", "gradual"] {
        let jobs = wait_for(Duration::from_secs(30), || async {
            let jobs = jobs_of(&ns, name).await;
            (jobs.len() == 2).then_some(jobs)
        })
        .await
        .unwrap_or_else(|_| panic!("{name}: two pending Jobs"));
        before.insert(
            name,
            jobs.iter().map(|j| j.name_any()).collect::<BTreeSet<_>>(),
        );
        // A new template: another image.
        let mut template = unschedulable_template();
        template["template"]["spec"]["containers"][0]["image"] = "example.invalid/worker:2".into();
        let patch = serde_json::json!({"spec": {"jobTargetRef": template}});
        ns.api::<ScaledJob>()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }
    wait_event(
        &ns,
        "immediate",
        "ScaledJobRolloutCleanupStarted",
        Duration::from_secs(30),
    )
    .await;
    wait_event(
        &ns,
        "immediate",
        "ScaledJobRolloutCleanupCompleted",
        Duration::from_secs(30),
    )
    .await;
    wait_for(Duration::from_secs(30), || async {
        let now: BTreeSet<String> = jobs_of(&ns, "immediate")
            .await
            .iter()
            .filter(|j| j.metadata.deletion_timestamp.is_none())
            .map(|j| j.name_any())
            .collect();
        now.is_disjoint(&before["immediate"]).then_some(())
    })
    .await
    .expect("immediate: the old generation's Jobs are deleted");
    let_polls_run(3).await;
    let now: BTreeSet<String> = jobs_of(&ns, "gradual")
        .await
        .iter()
        .map(|j| j.name_any())
        .collect();
    assert!(
        before["gradual"].is_subset(&now),
        "gradual keeps the old Jobs"
    );
    assert!(
        !event_reasons(&ns, "gradual")
            .await
            .iter()
            .any(|r| r.starts_with("ScaledJobRolloutCleanup"))
    );
    ns.delete().await;
}

#[tokio::test]
async fn history_limit_keeps_the_newest_completed_jobs() {
    shared_operator();
    let ns = shared().namespace("sj-history").await;
    let redis = RedisServer::start();
    // The item is never consumed: one Job per poll, each completed at once by KWOK.
    let sj = scaled_job(
        "hist",
        &redis,
        "hist",
        serde_json::json!({"maxReplicaCount": 1, "successfulJobsHistoryLimit": 2}),
    );
    ns.api::<ScaledJob>()
        .create(&PostParams::default(), &sj)
        .await
        .unwrap();
    redis.commands(&[&["RPUSH", "hist", "x"]]);
    let mut seen: BTreeMap<String, Time> = BTreeMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < 6 && std::time::Instant::now() < deadline {
        for j in jobs_of(&ns, "hist").await {
            if let Some(t) = j.status.as_ref().and_then(|s| s.completion_time.as_ref()) {
                seen.insert(j.name_any(), t.clone());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        seen.len() >= 6,
        "Jobs kept being created and completed: {seen:?}"
    );
    redis.command(&["DEL", "hist"]);
    // A few polls later only the two newest completed Jobs remain.
    let remaining = wait_for(Duration::from_secs(30), || async {
        let jobs = jobs_of(&ns, "hist").await;
        let live: Vec<Job> = jobs
            .into_iter()
            .filter(|j| j.metadata.deletion_timestamp.is_none())
            .collect();
        (live.len() == 2 && live.iter().all(finished)).then_some(live)
    })
    .await
    .expect("two completed Jobs remain");
    for j in &remaining {
        if let Some(t) = j.status.as_ref().and_then(|s| s.completion_time.as_ref()) {
            seen.insert(j.name_any(), t.clone());
        }
    }
    let kept: BTreeSet<String> = remaining.iter().map(|j| j.name_any()).collect();
    let oldest_kept = kept
        .iter()
        .filter_map(|n| seen.get(n))
        .min()
        .cloned()
        .unwrap();
    for (name, t) in &seen {
        if !kept.contains(name) {
            assert!(
                *t <= oldest_kept,
                "{name} (completed {:?}) deleted while an older one was kept",
                t.0
            );
        }
    }
    ns.delete().await;
}

#[tokio::test]
async fn failed_checks_block_only_their_own_scaled_job() {
    shared_operator();
    let ns = shared().namespace("sj-checks").await;
    let redis = RedisServer::start();
    // No jobTargetRef at all: the apiserver refuses it (the CRD requires the field).
    let mut missing =
        serde_json::to_value(scaled_job("missing", &redis, "l", serde_json::json!({}))).unwrap();
    missing["spec"]
        .as_object_mut()
        .unwrap()
        .remove("jobTargetRef");
    let err = create(&ns.client, &ns.name, missing)
        .await
        .expect_err("rejected");
    assert!(err.to_string().contains("jobTargetRef"), "{err}");
    // A template without a pod: Ready=False naming jobTargetRef.
    let empty = scaled_job(
        "empty-target",
        &redis,
        "l",
        serde_json::json!({"jobTargetRef": {"template": {}}}),
    );
    ns.api::<ScaledJob>()
        .create(&PostParams::default(), &empty)
        .await
        .unwrap();
    // Bad trigger metadata: listLength not a number.
    let mut bad = scaled_job("bad-trigger", &redis, "l", serde_json::json!({}));
    bad.spec.triggers[0]
        .metadata
        .insert("listLength".into(), "many".into());
    ns.api::<ScaledJob>()
        .create(&PostParams::default(), &bad)
        .await
        .unwrap();
    // And a good one on the same list.
    let good = scaled_job("good", &redis, "l", serde_json::json!({}));
    ns.api::<ScaledJob>()
        .create(&PostParams::default(), &good)
        .await
        .unwrap();
    redis.commands(&[&["RPUSH", "l", "1"]]);

    let (_, reason, message) = wait_condition(
        &ns,
        "empty-target",
        "Ready",
        "False",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(reason, "ScaledJobCheckFailed");
    assert!(message.contains("jobTargetRef"), "{message}");
    let (_, reason, message) = wait_condition(
        &ns,
        "bad-trigger",
        "Ready",
        "False",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(reason, "ScaledJobCheckFailed");
    assert!(message.contains("listLength"), "{message}");
    wait_for(Duration::from_secs(30), || async {
        (!jobs_of(&ns, "good").await.is_empty()).then_some(())
    })
    .await
    .expect("the valid ScaledJob still creates Jobs");
    let_polls_run(3).await;
    assert!(jobs_of(&ns, "empty-target").await.is_empty());
    assert!(jobs_of(&ns, "bad-trigger").await.is_empty());
    ns.delete().await;
}

#[tokio::test]
async fn paused_annotation_stops_job_creation_and_paused_replicas_does_not() {
    shared_operator();
    let ns = shared().namespace("sj-pause").await;
    let redis = RedisServer::start();
    let mut paused = scaled_job(
        "paused",
        &redis,
        "p",
        serde_json::json!({"jobTargetRef": unschedulable_template()}),
    );
    paused.metadata.annotations = Some(BTreeMap::from([(
        "autoscaling.keda.sh/paused".to_string(),
        "true".to_string(),
    )]));
    ns.api::<ScaledJob>()
        .create(&PostParams::default(), &paused)
        .await
        .unwrap();
    // paused-replicas is not supported for ScaledJobs: this one keeps scaling.
    let mut replicas = scaled_job(
        "paused-replicas",
        &redis,
        "p",
        serde_json::json!({"jobTargetRef": unschedulable_template()}),
    );
    replicas.metadata.annotations = Some(BTreeMap::from([(
        "autoscaling.keda.sh/paused-replicas".to_string(),
        "0".to_string(),
    )]));
    ns.api::<ScaledJob>()
        .create(&PostParams::default(), &replicas)
        .await
        .unwrap();
    redis.commands(&[&["RPUSH", "p", "one"]]);

    let (_, reason, _) =
        wait_condition(&ns, "paused", "Paused", "True", Duration::from_secs(30)).await;
    assert_eq!(reason, "ScaledJobPaused");
    wait_event(&ns, "paused", "ScaledJobPaused", Duration::from_secs(10)).await;
    wait_for(Duration::from_secs(30), || async {
        (jobs_of(&ns, "paused-replicas").await.len() == 1).then_some(())
    })
    .await
    .expect("paused-replicas does not pause a ScaledJob");
    let_polls_run(3).await;
    assert!(
        jobs_of(&ns, "paused").await.is_empty(),
        "no Jobs while paused"
    );

    let patch =
        serde_json::json!({"metadata": {"annotations": {"autoscaling.keda.sh/paused": null}}});
    ns.api::<ScaledJob>()
        .patch("paused", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let (_, reason, _) =
        wait_condition(&ns, "paused", "Paused", "False", Duration::from_secs(30)).await;
    assert_eq!(reason, "ScaledJobUnpaused");
    wait_event(&ns, "paused", "ScaledJobUnpaused", Duration::from_secs(10)).await;
    wait_for(Duration::from_secs(30), || async {
        (jobs_of(&ns, "paused").await.len() == 1).then_some(())
    })
    .await
    .expect("Jobs again once unpaused");
    ns.delete().await;
}
