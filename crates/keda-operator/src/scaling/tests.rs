//! Paused-time tests of the scaling runtime: whole polls (read → plan → apply) of both kinds over
//! a fake scaler and a fake I/O, with the clock advanced by tokio instead of waited for.

use keda_api::names::{ConditionStatus, EventReason, conditions, labels};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use keda_api::{ScaledJob, ScaledJobStatus, ScaledObject, ScaledObjectStatus};
use keda_scalers::testing::{FAKE_DESCRIPTOR, set_fake_value};
use keda_scalers::{BackendError, Pools, ScalerConfig};
use serde_json::json;

use super::scaled_job::{self, SjStatus};
use super::scaled_object::{self, Memory, SoStatus};
use super::triggers::{TriggerScaler, TriggerSet};
use super::{Event, IoError, JobIo, ReplicaIo, ScaleIo};

/// A scaler answering whatever the test last told it to: keda-scalers' test scaler reading the
/// value set for its own key (active above 0).
struct Fake {
    key: String,
    target: f64,
}

impl Fake {
    fn answer(&self, answer: Result<(f64, bool), &str>) {
        set_fake_value(
            &self.key,
            answer
                .map(|(value, _)| value)
                .map_err(BackendError::connect),
        );
    }
}

fn fake(target: f64, answer: Result<(f64, bool), &str>) -> Fake {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let fake = Fake {
        key: format!("runtime-test-{}", NEXT.fetch_add(1, Ordering::Relaxed)),
        target,
    };
    fake.answer(answer);
    fake
}

async fn set_of(fake: &Fake) -> TriggerSet {
    let config = ScalerConfig::new("fake", 0).with_metadata([
        ("value", "0"),
        ("metricName", "queue"),
        ("key", fake.key.as_str()),
        ("target", fake.target.to_string().as_str()),
    ]);
    let scaler = Arc::new(FAKE_DESCRIPTOR.build(&config, &Pools::new()).await.unwrap());
    TriggerSet::new(
        Some(1),
        vec![TriggerScaler {
            index: 0,
            trigger_type: "fake".into(),
            name: None,
            specs: scaler.metric_specs(),
            scaler,
        }],
    )
}

/// Wall-clock time that moves with tokio's paused clock.
struct Clock {
    start: tokio::time::Instant,
}

impl Clock {
    fn new() -> Self {
        Self {
            start: tokio::time::Instant::now(),
        }
    }

    fn now(&self) -> Timestamp {
        let elapsed = i64::try_from(self.start.elapsed().as_secs()).unwrap();
        Timestamp::from_second(1_800_000_000 + elapsed).unwrap()
    }
}

/// The target and the status of one ScaledObject, in memory.
#[derive(Default)]
struct FakeReplicaIo {
    replicas: Mutex<i32>,
    scaled: Mutex<Vec<i32>>,
    events: Mutex<Vec<Event>>,
    status: Mutex<ScaledObjectStatus>,
}

impl FakeReplicaIo {
    fn at(replicas: i32) -> Self {
        Self {
            replicas: Mutex::new(replicas),
            ..Self::default()
        }
    }

    fn reasons(&self) -> Vec<EventReason> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.reason)
            .collect()
    }

    fn condition(&self, type_: &str) -> (String, String) {
        let status = self.status.lock().unwrap();
        let c = crate::status::get(Some(&status), type_).unwrap();
        (c.status.clone(), c.reason.clone().unwrap_or_default())
    }
}

impl ScaleIo for FakeReplicaIo {
    type Status = SoStatus;

    async fn patch_status(&self, patch: &SoStatus) -> Result<(), IoError> {
        patch.apply(&mut self.status.lock().unwrap());
        Ok(())
    }

    async fn event(&self, event: Event) {
        self.events.lock().unwrap().push(event);
    }
}

impl ReplicaIo for FakeReplicaIo {
    async fn current_replicas(&self) -> Result<i32, IoError> {
        Ok(*self.replicas.lock().unwrap())
    }

    async fn set_replicas(&self, replicas: i32) -> Result<(), IoError> {
        *self.replicas.lock().unwrap() = replicas;
        self.scaled.lock().unwrap().push(replicas);
        Ok(())
    }

    fn target(&self) -> String {
        "apps/v1.Deployment ns/worker".into()
    }
}

fn scaled_object(extra: serde_json::Value) -> ScaledObject {
    let mut spec = json!({
        "scaleTargetRef": {"name": "worker"},
        "triggers": [{"type": "fake", "metadata": {}}],
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    serde_json::from_value(json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": "so", "namespace": "ns", "generation": 1},
        "spec": spec,
    }))
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn an_active_trigger_activates_the_target_from_zero() {
    let clock = Clock::new();
    let so = scaled_object(json!({}));
    let scaler = fake(5.0, Ok((7.0, true)));
    let io = FakeReplicaIo::at(0);
    let (memory, readings, values) = scaled_object::poll_once(
        &so,
        &set_of(&scaler).await,
        &Memory::default(),
        &io,
        clock.now(),
    )
    .await;
    assert_eq!(*io.scaled.lock().unwrap(), vec![1]);
    assert_eq!(io.reasons(), vec![EventReason::KedaScaleTargetActivated]);
    let note = io.events.lock().unwrap()[0].note.clone();
    assert_eq!(
        note,
        "Scaled apps/v1.Deployment ns/worker from 0 to 1, triggered by s0-queue"
    );
    assert_eq!(io.condition(conditions::ACTIVE).0, "True");
    assert_eq!(memory.last_active, Some(clock.now()));
    assert!(io.status.lock().unwrap().last_active_time.is_some());
    assert_eq!(readings.len(), 1);
    assert_eq!(values, vec![("s0-queue".to_string(), 7.0)]);
}

#[tokio::test(start_paused = true)]
async fn an_idle_trigger_deactivates_only_after_the_cooldown() {
    let clock = Clock::new();
    let so = scaled_object(json!({"cooldownPeriod": 60}));
    let scaler = fake(5.0, Ok((7.0, true)));
    let set = set_of(&scaler).await;
    let io = FakeReplicaIo::at(3);
    let (mut memory, _, _) =
        scaled_object::poll_once(&so, &set, &Memory::default(), &io, clock.now()).await;
    assert!(
        io.scaled.lock().unwrap().is_empty(),
        "active at 3: the HPA scales"
    );

    scaler.answer(Ok((0.0, false)));
    for _ in 0..5 {
        tokio::time::advance(Duration::from_secs(10)).await;
        (memory, _, _) = scaled_object::poll_once(&so, &set, &memory, &io, clock.now()).await;
        assert!(io.scaled.lock().unwrap().is_empty(), "still cooling down");
        assert_eq!(
            io.condition(conditions::ACTIVE),
            ("False".into(), "ScalerCooldown".into())
        );
    }
    tokio::time::advance(Duration::from_secs(11)).await;
    scaled_object::poll_once(&so, &set, &memory, &io, clock.now()).await;
    assert_eq!(*io.scaled.lock().unwrap(), vec![0]);
    assert_eq!(io.reasons(), vec![EventReason::KedaScaleTargetDeactivated]);
    assert_eq!(io.condition(conditions::ACTIVE).1, "ScalerNotActive");
}

#[tokio::test(start_paused = true)]
async fn failures_beyond_the_threshold_serve_the_fallback() {
    let clock = Clock::new();
    let so = scaled_object(json!({
        "fallback": {"failureThreshold": 2, "replicas": 4},
        "minReplicaCount": 1,
    }));
    let scaler = fake(5.0, Err("connection refused"));
    let set = set_of(&scaler).await;
    let io = FakeReplicaIo::at(2);
    let mut memory = Memory::default();
    for expected in 1..=2 {
        let values;
        (memory, _, values) = scaled_object::poll_once(&so, &set, &memory, &io, clock.now()).await;
        assert_eq!(memory.failures.get("s0-queue"), Some(&expected));
        assert!(values.is_empty(), "below the threshold nothing is served");
        assert_eq!(io.condition(conditions::FALLBACK).0, "False");
        tokio::time::advance(Duration::from_secs(30)).await;
    }
    let values;
    (memory, _, values) = scaled_object::poll_once(&so, &set, &memory, &io, clock.now()).await;
    assert_eq!(memory.failures.get("s0-queue"), Some(&3));
    assert_eq!(values, vec![("s0-queue".to_string(), 20.0)], "target × R");
    assert_eq!(
        io.condition(conditions::FALLBACK),
        ("True".into(), "FallbackExists".into())
    );
    let health = io.status.lock().unwrap().health.clone().unwrap();
    assert_eq!(health["s0-queue"].number_of_failures, Some(3));
    assert_eq!(health["s0-queue"].status.as_deref(), Some("Failing"));
    assert_eq!(
        io.reasons(),
        vec![EventReason::KedaScalerFailed; 3],
        "one event per failed read"
    );
    assert!(io.scaled.lock().unwrap().is_empty());

    // Recovery resets the count.
    scaler.answer(Ok((1.0, true)));
    (memory, _, _) = scaled_object::poll_once(&so, &set, &memory, &io, clock.now()).await;
    assert_eq!(memory.failures.get("s0-queue"), Some(&0));
    assert_eq!(io.condition(conditions::FALLBACK).0, "False");
}

#[tokio::test(start_paused = true)]
async fn an_unreadable_target_only_writes_ready_false() {
    struct Unreadable(FakeReplicaIo);
    impl ScaleIo for Unreadable {
        type Status = SoStatus;
        async fn patch_status(&self, patch: &SoStatus) -> Result<(), IoError> {
            self.0.patch_status(patch).await
        }
        async fn event(&self, event: Event) {
            self.0.event(event).await;
        }
    }
    impl ReplicaIo for Unreadable {
        async fn current_replicas(&self) -> Result<i32, IoError> {
            Err(IoError::Target(crate::target::TargetError::Read(
                kube::Error::LinesCodecMaxLineLengthExceeded,
            )))
        }
        async fn set_replicas(&self, replicas: i32) -> Result<(), IoError> {
            self.0.set_replicas(replicas).await
        }
        fn target(&self) -> String {
            String::new()
        }
    }
    let so = scaled_object(json!({}));
    let io = Unreadable(FakeReplicaIo::at(0));
    let scaler = fake(5.0, Ok((7.0, true)));
    scaled_object::poll_once(
        &so,
        &set_of(&scaler).await,
        &Memory::default(),
        &io,
        Clock::new().now(),
    )
    .await;
    assert!(io.0.scaled.lock().unwrap().is_empty());
    assert_eq!(
        io.0.condition(conditions::READY),
        ("False".into(), "ErrorGettingCurrentReplicas".into())
    );
}

/// A ScaledJob's Jobs, pods and status, in memory.
#[derive(Default)]
struct FakeJobIo {
    pods: Vec<Pod>,
    created: Mutex<Vec<Job>>,
    deleted: Mutex<Vec<String>>,
    events: Mutex<Vec<Event>>,
    status: Mutex<ScaledJobStatus>,
}

impl ScaleIo for FakeJobIo {
    type Status = SjStatus;

    async fn patch_status(&self, patch: &SjStatus) -> Result<(), IoError> {
        patch.apply(&mut self.status.lock().unwrap());
        Ok(())
    }

    async fn event(&self, event: Event) {
        self.events.lock().unwrap().push(event);
    }
}

impl JobIo for FakeJobIo {
    async fn pods(&self) -> Result<Vec<Pod>, IoError> {
        Ok(self.pods.clone())
    }

    async fn create_job(&self, job: &Job) -> Result<(), IoError> {
        self.created.lock().unwrap().push(job.clone());
        Ok(())
    }

    async fn delete_job(&self, name: &str) -> Result<(), IoError> {
        self.deleted.lock().unwrap().push(name.to_string());
        Ok(())
    }
}

fn scaled_job(strategy: &str, extra: serde_json::Value) -> ScaledJob {
    let mut spec = json!({
        "jobTargetRef": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
        "maxReplicaCount": 10,
        "scalingStrategy": {"strategy": strategy},
        "triggers": [{"type": "fake", "metadata": {}}],
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    serde_json::from_value(json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledJob",
        "metadata": {"name": "sj", "namespace": "ns", "generation": 1},
        "spec": spec,
    }))
    .unwrap()
}

/// A Job of the ScaledJob: running, or finished as `Complete`.
fn job(name: &str, complete: bool) -> Arc<Job> {
    let status = if complete {
        json!({"conditions": [{"type": "Complete", "status": "True"}]})
    } else {
        json!({"active": 1})
    };
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns",
                         "labels": {labels::SCALED_JOB_NAME: "sj"},
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": status,
        }))
        .unwrap(),
    )
}

/// A running pod of Job `job`.
fn running_pod(job: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": format!("{job}-pod"), "namespace": "ns", "labels": {"job-name": job}},
        "status": {"phase": "Running"},
    }))
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn scaled_job_strategies_decide_the_jobs_created() {
    // Queue 6 at target 1 with two Jobs running, one of them still pending.
    let jobs = vec![job("a", false), job("b", false)];
    let cases = [("default", 4), ("accurate", 5), ("eager", 6)];
    for (strategy, expected) in cases {
        let sj = scaled_job(strategy, json!({}));
        let scaler = fake(1.0, Ok((6.0, true)));
        let io = FakeJobIo {
            pods: vec![running_pod("a")],
            ..FakeJobIo::default()
        };
        let failed = scaled_job::poll_once(
            &sj,
            &set_of(&scaler).await,
            &jobs,
            &io,
            "v",
            Clock::new().now(),
        )
        .await;
        assert!(!failed);
        assert_eq!(io.created.lock().unwrap().len(), expected, "{strategy}");
        let reasons: Vec<_> = io.events.lock().unwrap().iter().map(|e| e.reason).collect();
        assert_eq!(
            reasons,
            vec![EventReason::KedaJobsCreated, EventReason::ScaledJobActive],
            "{strategy}"
        );
        let status = io.status.lock().unwrap().clone();
        assert!(crate::scaled_job::status::is(
            Some(&status),
            conditions::ACTIVE,
            ConditionStatus::True
        ));
        assert!(status.last_active_time.is_some());
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_trigger_creates_nothing_reports_it_and_asks_for_new_scalers() {
    let sj = scaled_job("default", json!({"successfulJobsHistoryLimit": 0}));
    let scaler = fake(1.0, Err("connection refused"));
    let io = FakeJobIo::default();
    let jobs = vec![job("done", true)];
    let failed = scaled_job::poll_once(
        &sj,
        &set_of(&scaler).await,
        &jobs,
        &io,
        "v",
        Clock::new().now(),
    )
    .await;
    assert!(failed, "the caller drops the scalers");
    assert!(io.created.lock().unwrap().is_empty());
    let reasons: Vec<_> = io.events.lock().unwrap().iter().map(|e| e.reason).collect();
    assert_eq!(
        reasons,
        vec![
            EventReason::KedaScalerFailed,
            EventReason::ScaledJobInactive
        ]
    );
    let status = io.status.lock().unwrap().clone();
    assert!(crate::scaled_job::status::is(
        Some(&status),
        conditions::READY,
        ConditionStatus::False
    ));
    assert_eq!(
        *io.deleted.lock().unwrap(),
        vec!["done".to_string()],
        "finished Jobs beyond the history limit go"
    );
}
