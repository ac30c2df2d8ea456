//! The ScaledJob poll (spec §5.3–§5.4): read the first metric of every trigger, then a pure
//! [`plan`] (aggregation, the scaling strategy, events, the status and the Jobs beyond the history
//! limits) applied through [`JobIo`]. The arithmetic is `crate::scaled_job::strategy`'s.

use keda_api::names::{ConditionStatus, EventReason, annotations, labels};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use keda_api::common::TriggerActivityStatus;
use keda_api::{ScaledJob, ScaledJobStatus};
use keda_scalers::{MetricTargetKind, ScalerError};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};

use super::read::{self, Metrics, Reading};
use super::{
    Event, IoError, JobIo, ObjectKey, Scalable, ScaleIo, Scheduler, TriggerSet, TriggerSets,
};
use crate::events::Events;
use crate::scaled_job::job;
use crate::scaled_job::status as sj_status;
use crate::scaled_job::strategy::{self, Aggregate, JobCounts, ScalerReading, Strategy};
use keda_api::names::conditions::{ACTIVE, READY};

/// The status a poll writes.
#[derive(Debug, Clone, PartialEq)]
pub struct SjStatus {
    pub last_active_time: Option<Time>,
    pub is_error: bool,
    pub is_active: bool,
    pub activity: BTreeMap<String, TriggerActivityStatus>,
}

impl SjStatus {
    pub fn apply(&self, s: &mut ScaledJobStatus) {
        if let Some(t) = &self.last_active_time {
            s.last_active_time = Some(t.clone());
        }
        match (self.is_error, self.is_active) {
            (true, true) => sj_status::set(
                s,
                READY,
                ConditionStatus::Unknown,
                "PartialTriggerError",
                "Some triggers defined in ScaledJob are not working correctly",
            ),
            (true, false) => sj_status::set(
                s,
                READY,
                ConditionStatus::False,
                "TriggerError",
                "Triggers defined in ScaledJob are not working correctly",
            ),
            (false, _) => sj_status::set(
                s,
                READY,
                ConditionStatus::True,
                "ScaledJobReady",
                "ScaledJob is defined correctly and is ready for scaling",
            ),
        }
        if self.is_active {
            sj_status::set(
                s,
                ACTIVE,
                ConditionStatus::True,
                "ScalerActive",
                "Scaling is performed because triggers are active",
            );
        } else {
            sj_status::set(
                s,
                ACTIVE,
                ConditionStatus::False,
                "ScalerNotActive",
                "Scaling is not performed because triggers are not active",
            );
        }
        if !self.activity.is_empty() {
            let mut merged = s.triggers_activity.clone().unwrap_or_default();
            merged.extend(self.activity.iter().map(|(k, v)| (k.clone(), v.clone())));
            s.triggers_activity = Some(merged);
        }
    }
}

/// What the readings say, before the Jobs are counted.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessed {
    pub aggregate: Aggregate,
    pub is_error: bool,
    pub activity: BTreeMap<String, TriggerActivityStatus>,
    /// One `KEDAScalerFailed` per failed read.
    pub events: Vec<Event>,
}

/// Aggregates the readings as `multipleScalersCalculation` says (§5.3).
pub fn assess(sj: &ScaledJob, set: &TriggerSet, readings: &[Reading]) -> Assessed {
    let mut scaler_readings = Vec::with_capacity(readings.len());
    let mut is_error = false;
    let mut activity = BTreeMap::new();
    let mut events = Vec::new();
    for reading in readings {
        let metric = reading.metric.as_str();
        match &reading.result {
            Ok((values, active)) => {
                let specs = set
                    .triggers
                    .get(reading.trigger)
                    .map(|t| t.specs.as_slice())
                    .unwrap_or_default();
                let targets: Vec<f64> = specs
                    .iter()
                    .map(|s| match s.target().kind {
                        MetricTargetKind::AverageValue => s.target().value,
                        _ => 0.0,
                    })
                    .collect();
                let target = if targets.is_empty() {
                    0.0
                } else {
                    targets.iter().sum::<f64>() / targets.len() as f64
                };
                let queue = values
                    .iter()
                    .filter(|v| v.metric_name == metric)
                    .map(|v| v.value)
                    .sum();
                activity.insert(
                    metric.to_string(),
                    TriggerActivityStatus {
                        is_active: Some(*active),
                    },
                );
                scaler_readings.push(ScalerReading {
                    queue,
                    target,
                    active: *active,
                });
            }
            Err(e) => {
                is_error = true;
                tracing::warn!(object = %sj.name_any(), %metric, error = %e, "scaler failed");
                events.push(Event::warning(EventReason::KedaScalerFailed, e.to_string()));
            }
        }
    }
    let mode = sj
        .spec
        .scaling_strategy
        .as_ref()
        .and_then(|s| s.multiple_scalers_calculation);
    let aggregate = strategy::aggregate(
        &scaler_readings,
        mode,
        strategy::effective_min(sj),
        strategy::effective_max(sj),
    );
    Assessed {
        aggregate,
        is_error,
        activity,
        events,
    }
}

/// Unfinished Jobs, and the pending ones among them (§5.4). `pods` are the ScaledJob's pods,
/// `None` when they could not be listed (then none counts as pending).
pub fn counts(sj: &ScaledJob, jobs: &[Arc<Job>], pods: Option<&[Pod]>) -> JobCounts {
    let unfinished: Vec<&Job> = jobs
        .iter()
        .map(|j| j.as_ref())
        .filter(|j| !job::is_finished(j))
        .collect();
    let running = unfinished.len() as i64;
    let Some(pods) = pods.filter(|_| running > 0) else {
        return JobCounts {
            running,
            pending: 0,
        };
    };
    let conditions = sj
        .spec
        .scaling_strategy
        .as_ref()
        .and_then(|s| s.pending_pod_conditions.clone())
        .unwrap_or_default();
    let pending = unfinished
        .iter()
        .filter(|j| {
            let name = j.name_any();
            let mine: Vec<&Pod> = pods
                .iter()
                .filter(|p| p.labels().get("job-name") == Some(&name))
                .collect();
            job::is_pending(j, &mine, &conditions)
        })
        .count() as i64;
    JobCounts { running, pending }
}

/// What one poll does.
#[derive(Debug)]
pub struct Plan {
    /// Jobs to create, all from `template`.
    pub create: i64,
    pub template: Job,
    /// Activity events, after the Jobs are created.
    pub events: Vec<Event>,
    pub status: SjStatus,
    /// Finished Jobs beyond the history limits, oldest first.
    pub delete: Vec<String>,
}

/// Decides the poll from the assessment, the Jobs counted and the time.
pub fn plan(
    sj: &ScaledJob,
    assessed: &Assessed,
    jobs: &[Arc<Job>],
    counts: JobCounts,
    version: &str,
    now: jiff::Timestamp,
) -> Plan {
    let agg = assessed.aggregate;
    let min_rc = strategy::effective_min(sj);
    let max_rc = strategy::effective_max(sj);
    let create = strategy::jobs_to_create(Strategy::of(sj), agg, counts, min_rc, max_rc);
    tracing::debug!(object = %sj.name_any(), running = counts.running, pending = counts.pending, scale_to = agg.scale_to, max_scale = agg.max_scale, create, "scaled job poll");
    let mut events = Vec::new();
    let was = sj_status::get(sj.status.as_ref(), ACTIVE).map(|c| c.status.clone());
    if agg.is_active && was.as_deref() != Some("True") {
        events.push(Event::normal(
            EventReason::ScaledJobActive,
            "Scaling is performed because triggers are active",
        ));
    } else if !agg.is_active && was.as_deref() != Some("False") {
        events.push(Event::normal(
            EventReason::ScaledJobInactive,
            "Scaling is not performed because triggers are not active",
        ));
    }
    let refs: Vec<&Job> = jobs.iter().map(|j| j.as_ref()).collect();
    let delete = job::beyond_history(
        &refs,
        sj.spec.successful_jobs_history_limit(),
        sj.spec.failed_jobs_history_limit(),
    )
    .into_iter()
    .map(|j| j.name_any())
    .collect();
    Plan {
        create,
        template: job::build(sj, version),
        events,
        status: SjStatus {
            last_active_time: agg.is_active.then_some(Time(now)),
            is_error: assessed.is_error,
            is_active: agg.is_active,
            activity: assessed.activity.clone(),
        },
        delete,
    }
}

/// Carries out `plan`: Jobs, events, status, then the history clean-up.
pub async fn apply<I: JobIo<Status = SjStatus>>(plan: Plan, io: &I, name: &str) {
    if plan.create > 0 {
        for _ in 0..plan.create {
            if let Err(e) = io.create_job(&plan.template).await {
                let note = format!("Failed to create job {name}-: {e}");
                io.event(Event::warning(EventReason::KedaJobCreateFailed, note))
                    .await;
            }
        }
        tracing::info!(object = %name, jobs = plan.create, "created jobs");
        let note = format!("Created {} jobs", plan.create);
        io.event(Event::normal(EventReason::KedaJobsCreated, note))
            .await;
    }
    for event in plan.events {
        io.event(event).await;
    }
    if let Err(e) = io.patch_status(&plan.status).await {
        tracing::warn!(object = %name, error = %e, "status update failed");
    }
    for job in plan.delete {
        match io.delete_job(&job).await {
            Ok(()) => tracing::info!(%job, "removed a job beyond the history limit"),
            Err(e) => {
                tracing::warn!(%job, error = %e, "cannot delete job");
                return;
            }
        }
    }
}

/// One poll after the scalers are known: read, assess, count, plan, apply. True when a scaler
/// failed (then the caller drops the scalers, as KEDA does).
pub async fn poll_once<I: JobIo<Status = SjStatus>>(
    sj: &ScaledJob,
    set: &TriggerSet,
    jobs: &[Arc<Job>],
    io: &I,
    version: &str,
    now: jiff::Timestamp,
) -> bool {
    let readings = read::read_all(set, Metrics::FirstPerTrigger).await;
    let mut assessed = assess(sj, set, &readings);
    for event in std::mem::take(&mut assessed.events) {
        io.event(event).await;
    }
    let any_unfinished = jobs.iter().any(|j| !job::is_finished(j));
    let pods = if any_unfinished {
        match io.pods().await {
            Ok(pods) => Some(pods),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the ScaledJob's pods; counting none pending");
                None
            }
        }
    } else {
        None
    };
    let counts = counts(sj, jobs, pods.as_deref());
    let plan = plan(sj, &assessed, jobs, counts, version, now);
    apply(plan, io, &sj.name_any()).await;
    assessed.is_error
}

/// The ScaledJob executor.
pub struct ScaledJobs {
    client: kube::Client,
    /// Reports as `scale-handler`, as KEDA's ScaledJob handler does.
    events: Events,
    store: Store<ScaledJob>,
    jobs: Store<Job>,
    triggers: Arc<TriggerSets>,
    scheduler: Scheduler,
    version: String,
    loops: Mutex<HashSet<ObjectKey>>,
}

impl ScaledJobs {
    pub fn new(
        client: kube::Client,
        events: Events,
        store: Store<ScaledJob>,
        jobs: Store<Job>,
        triggers: Arc<TriggerSets>,
        scheduler: Scheduler,
        version: String,
    ) -> Self {
        Self {
            events,
            client,
            store,
            jobs,
            triggers,
            scheduler,
            version,
            loops: Mutex::new(HashSet::new()),
        }
    }

    pub fn key_of(sj: &ScaledJob) -> ObjectKey {
        super::key_of(sj)
    }

    fn latest(&self, key: &ObjectKey) -> Option<Arc<ScaledJob>> {
        self.store
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
    }

    /// The ScaledJob's Jobs, from the label-filtered reflector.
    pub fn jobs_of(&self, namespace: &str, name: &str) -> Vec<Arc<Job>> {
        self.jobs
            .state()
            .into_iter()
            .filter(|j| {
                j.namespace().as_deref() == Some(namespace)
                    && j.labels().get(labels::SCALED_JOB_NAME).map(String::as_str) == Some(name)
            })
            .collect()
    }

    /// The ScaledJob's scalers (see [`TriggerSets::get`]).
    pub async fn scalers_for(&self, sj: &ScaledJob) -> Result<Arc<TriggerSet>, ScalerError> {
        self.triggers.get(sj, &self.events).await
    }

    /// (Re)starts the loop: the scheduler polls at once, then every pollingInterval. True when
    /// no loop existed before.
    pub fn register(&self, sj: &ScaledJob) -> bool {
        let key = Self::key_of(sj);
        let new = self
            .loops
            .lock()
            .map(|mut l| l.insert(key.clone()))
            .unwrap_or(false);
        let uid = sj.uid().unwrap_or_else(|| sj.name_any());
        self.scheduler
            .upsert(key.clone(), sj.polling_interval(), &uid);
        // KEDA restarts the loop on every reconcile, and a started loop checks at once.
        self.scheduler.poll_now(key);
        new
    }

    /// Stops the loop and closes its scalers; true when it had a loop or scalers.
    pub async fn unregister(&self, key: &ObjectKey) -> bool {
        self.scheduler.remove(key.clone());
        let had_loop = self
            .loops
            .lock()
            .map(|mut l| l.remove(key))
            .unwrap_or(false);
        let had_scalers = self.triggers.remove(key).await;
        had_loop || had_scalers
    }

    /// Forgets every loop (at shutdown; the scalers are closed by the cache).
    pub fn forget_all(&self) {
        let keys: Vec<ObjectKey> = self
            .loops
            .lock()
            .map(|mut l| l.drain().collect())
            .unwrap_or_default();
        for key in keys {
            self.scheduler.remove(key);
        }
    }

    pub async fn poll(&self, key: ObjectKey) {
        let Some(sj) = self.latest(&key) else {
            self.unregister(&key).await;
            return;
        };
        if sj.metadata.deletion_timestamp.is_some()
            || crate::pause::flag(sj.annotations(), annotations::PAUSED)
        {
            return;
        }
        let set = match self.scalers_for(&sj).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(object = %key, error = %e, "cannot build scalers; skipping poll");
                self.events
                    .warning(sj.as_ref(), EventReason::KedaScalerFailed, e.to_string())
                    .await;
                return;
            }
        };
        let jobs = self.jobs_of(&key.namespace, &key.name);
        let io = KubeJobIo {
            client: &self.client,
            events: &self.events,
            sj: &sj,
        };
        let failed = poll_once(&sj, &set, &jobs, &io, &self.version, jiff::Timestamp::now()).await;
        if failed {
            // As KEDA: any scaler error drops the cache; the next poll rebuilds it.
            self.triggers.invalidate(&key).await;
        }
    }
}

/// [`JobIo`] against the cluster for one poll of one ScaledJob.
struct KubeJobIo<'a> {
    client: &'a kube::Client,
    events: &'a Events,
    sj: &'a ScaledJob,
}

impl KubeJobIo<'_> {
    fn namespace(&self) -> String {
        self.sj.namespace().unwrap_or_default()
    }
}

impl ScaleIo for KubeJobIo<'_> {
    type Status = SjStatus;

    async fn patch_status(&self, patch: &SjStatus) -> Result<(), IoError> {
        let api: Api<ScaledJob> = Api::namespaced(self.client.clone(), &self.namespace());
        sj_status::update(&api, &self.sj.name_any(), self.sj.status.as_ref(), |s| {
            patch.apply(s)
        })
        .await?;
        Ok(())
    }

    async fn event(&self, event: Event) {
        event.publish(self.events, self.sj).await;
    }
}

impl JobIo for KubeJobIo<'_> {
    async fn pods(&self) -> Result<Vec<Pod>, IoError> {
        // One list of the ScaledJob's pods (they carry our template label), grouped by Job.
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace());
        let selector = format!("{}={}", labels::SCALED_JOB_NAME, self.sj.name_any());
        Ok(api
            .list(&ListParams::default().labels(&selector))
            .await?
            .items)
    }

    async fn create_job(&self, job: &Job) -> Result<(), IoError> {
        let api: Api<Job> = Api::namespaced(self.client.clone(), &self.namespace());
        api.create(&PostParams::default(), job).await?;
        Ok(())
    }

    async fn delete_job(&self, name: &str) -> Result<(), IoError> {
        let api: Api<Job> = Api::namespaced(self.client.clone(), &self.namespace());
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
