//! The ScaledJob poll loops, driven by the operator's one scheduler: each poll reads every
//! trigger, aggregates them (§5.3), counts the unfinished and pending Jobs, creates Jobs as the
//! strategy says (§5.4), writes the status and deletes Jobs beyond the history limits.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use keda_api::ScaledJob;
use keda_api::common::TriggerActivityStatus;
use keda_scalers::{MetricTargetKind, Pools, Registry, ScalerConfig, ScalerError};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};

use super::job;
use super::status as sj_status;
use super::strategy::{self, JobCounts, ScalerReading, Strategy};
use crate::auth::{self, AuthResolver, WorkloadTemplate};
use crate::events::Events;
use crate::scale_loop::TriggerScaler;
use crate::scheduler::{ObjectKey, PollTarget, Scheduler};
use keda_api::names::conditions::{ACTIVE, READY};
use keda_api::names::{ConditionStatus, EventReason, annotations, labels};

pub const SCALED_JOB: &str = "ScaledJob";
const SCALER_TIMEOUT: Duration = Duration::from_secs(10);

/// The scalers of one ScaledJob at one generation.
pub struct ScalersCache {
    pub generation: Option<i64>,
    pub triggers: Vec<TriggerScaler>,
    /// What the scalers were built from, to notice rotated credentials.
    configs: Vec<ScalerConfig>,
    checked_at: std::sync::Mutex<tokio::time::Instant>,
}

impl ScalersCache {
    fn recheck_due(&self, interval: Duration) -> bool {
        self.checked_at
            .lock()
            .map(|at| at.elapsed() >= interval)
            .unwrap_or(true)
    }

    fn mark_checked(&self) {
        if let Ok(mut at) = self.checked_at.lock() {
            *at = tokio::time::Instant::now();
        }
    }
}

#[derive(Default)]
struct State {
    scalers: tokio::sync::Mutex<Option<Arc<ScalersCache>>>,
}

pub struct JobLoops {
    client: kube::Client,
    /// Reports as `scale-handler`, as KEDA's ScaledJob handler does.
    events: Events,
    registry: Registry,
    pools: Pools,
    version: String,
    scheduler: Scheduler,
    auth: Arc<AuthResolver>,
    store: OnceLock<Store<ScaledJob>>,
    jobs: OnceLock<Store<Job>>,
    objects: Mutex<HashMap<ObjectKey, Arc<State>>>,
}

/// Lets the shared scheduler call into the job loops without a reference cycle.
pub struct JobPoller(pub Weak<JobLoops>);

impl PollTarget for JobPoller {
    fn poll(&self, key: ObjectKey) -> BoxFuture<'static, ()> {
        let loops = self.0.upgrade();
        Box::pin(async move {
            if let Some(loops) = loops {
                loops.poll(key).await;
            }
        })
    }
}

impl JobLoops {
    pub fn new(
        client: kube::Client,
        scheduler: Scheduler,
        auth: Arc<AuthResolver>,
        events: Events,
        version: String,
    ) -> Arc<Self> {
        Arc::new(Self {
            events,
            client,
            registry: Registry::builtin(),
            pools: Pools::new(),
            version,
            scheduler,
            auth,
            store: OnceLock::new(),
            jobs: OnceLock::new(),
            objects: Mutex::new(HashMap::new()),
        })
    }

    pub fn set_stores(&self, scaled_jobs: Store<ScaledJob>, jobs: Store<Job>) {
        let _ = self.store.set(scaled_jobs);
        let _ = self.jobs.set(jobs);
    }

    pub fn key_of(sj: &ScaledJob) -> ObjectKey {
        ObjectKey::new(
            SCALED_JOB,
            &sj.namespace().unwrap_or_default(),
            &sj.name_any(),
        )
    }

    fn state(&self, key: &ObjectKey) -> Arc<State> {
        match self.objects.lock() {
            Ok(mut o) => o.entry(key.clone()).or_default().clone(),
            Err(_) => Arc::default(),
        }
    }

    fn latest(&self, key: &ObjectKey) -> Option<Arc<ScaledJob>> {
        self.store
            .get()?
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
    }

    /// The ScaledJob's Jobs, from the label-filtered reflector.
    pub fn jobs_of(&self, namespace: &str, name: &str) -> Vec<Arc<Job>> {
        let Some(store) = self.jobs.get() else {
            return Vec::new();
        };
        store
            .state()
            .into_iter()
            .filter(|j| {
                j.namespace().as_deref() == Some(namespace)
                    && j.labels().get(labels::SCALED_JOB_NAME).map(String::as_str) == Some(name)
            })
            .collect()
    }

    /// Scalers for the ScaledJob's generation, built on demand. Once per polling interval the
    /// triggers' credentials and env are resolved again and the scalers rebuilt if they changed
    /// (a rotated Secret applies within one interval).
    pub async fn scalers_for(&self, sj: &ScaledJob) -> Result<Arc<ScalersCache>, ScalerError> {
        let state = self.state(&Self::key_of(sj));
        let mut slot = state.scalers.lock().await;
        let needs_auth = sj
            .spec
            .triggers
            .iter()
            .any(|t| t.authentication_ref.is_some() || auth::needs_env(t));
        let interval = Duration::from_secs(u64::try_from(sj.spec.polling_interval()).unwrap_or(30));
        let current = slot
            .as_ref()
            .filter(|c| c.generation == sj.metadata.generation)
            .cloned();
        if let Some(cache) = &current
            && (!needs_auth || !cache.recheck_due(interval))
        {
            return Ok(cache.clone());
        }
        let mut configs = Vec::with_capacity(sj.spec.triggers.len());
        for index in 0..sj.spec.triggers.len() {
            match self.resolved_config(sj, index).await {
                Ok(c) => configs.push(c),
                // Unreachable apiserver or secret store: keep the scalers that work.
                Err(e) if e.is_backend() && current.is_some() => {
                    return current.ok_or(e);
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(cache) = &current
            && cache.configs == configs
        {
            cache.mark_checked();
            return Ok(cache.clone());
        }
        let mut triggers: Vec<TriggerScaler> = Vec::with_capacity(sj.spec.triggers.len());
        for (index, (trigger, config)) in sj.spec.triggers.iter().zip(&configs).enumerate() {
            let scaler = match self.registry.build(config, &self.pools).await {
                Ok(s) => s,
                Err(e) => {
                    for t in &triggers {
                        t.scaler.close().await;
                    }
                    return Err(e);
                }
            };
            self.events
                .normal(
                    sj,
                    EventReason::KedaScalersStarted,
                    format!("Scaler {} is built.", trigger.r#type),
                )
                .await;
            triggers.push(TriggerScaler {
                index,
                trigger_type: trigger.r#type.clone(),
                name: trigger.name.clone(),
                specs: scaler.metric_specs(),
                scaler,
            });
        }
        let built = Arc::new(ScalersCache {
            generation: sj.metadata.generation,
            triggers,
            configs,
            checked_at: std::sync::Mutex::new(tokio::time::Instant::now()),
        });
        if let Some(old) = slot.replace(built.clone()) {
            tokio::spawn(async move { close(&old).await });
        }
        Ok(built)
    }

    /// Trigger `index`'s config with its TriggerAuthentication and env resolved against the
    /// Job template (`envSourceContainerName`, else its first container).
    async fn resolved_config(
        &self,
        sj: &ScaledJob,
        index: usize,
    ) -> Result<ScalerConfig, ScalerError> {
        let mut config = scaler_config(sj, index);
        let Some(trigger) = sj.spec.triggers.get(index) else {
            return Ok(config);
        };
        if trigger.authentication_ref.is_some() || auth::needs_env(trigger) {
            let template = WorkloadTemplate::given(Some(&sj.spec.job_target_ref.template));
            let resolved = self
                .auth
                .resolve(
                    &sj.namespace().unwrap_or_default(),
                    trigger,
                    sj.spec.env_source_container_name.as_deref(),
                    &template,
                )
                .await
                .map_err(|e| e.into_scaler_error(config.trigger_label()))?;
            config.auth_params = resolved.auth_params;
            config.resolved_env = resolved.resolved_env;
            config.pod_identity = resolved.pod_identity;
        }
        Ok(config)
    }

    /// (Re)starts the loop: the scheduler polls at once, then every pollingInterval. True when
    /// no loop existed before.
    pub fn register(&self, sj: &ScaledJob) -> bool {
        let key = Self::key_of(sj);
        let existed = self
            .objects
            .lock()
            .map(|o| o.contains_key(&key))
            .unwrap_or(false);
        let _ = self.state(&key);
        let interval = Duration::from_secs(u64::try_from(sj.spec.polling_interval()).unwrap_or(30));
        self.scheduler.upsert(
            key.clone(),
            interval,
            &sj.uid().unwrap_or_else(|| sj.name_any()),
        );
        // KEDA restarts the loop on every reconcile, and a started loop checks at once.
        self.scheduler.poll_now(key);
        !existed
    }

    /// Stops the loop and closes its scalers; true when a loop existed.
    pub async fn unregister(&self, key: &ObjectKey) -> bool {
        self.scheduler.remove(key.clone());
        let state = self.objects.lock().ok().and_then(|mut o| o.remove(key));
        match state {
            Some(state) => {
                if let Some(old) = state.scalers.lock().await.take() {
                    close(&old).await;
                }
                true
            }
            None => false,
        }
    }

    pub async fn shutdown(&self) {
        let keys: Vec<ObjectKey> = self
            .objects
            .lock()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        for key in keys {
            self.unregister(&key).await;
        }
    }

    async fn drop_scalers(&self, key: &ObjectKey) {
        let state = self.state(key);
        if let Some(old) = state.scalers.lock().await.take() {
            tokio::spawn(async move { close(&old).await });
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
        let cache = match self.scalers_for(&sj).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(object = %key, error = %e, "cannot build scalers; skipping poll");
                self.events
                    .warning(sj.as_ref(), EventReason::KedaScalerFailed, e.to_string())
                    .await;
                return;
            }
        };
        let min_rc = strategy::effective_min(&sj);
        let max_rc = strategy::effective_max(&sj);
        let mut readings = Vec::with_capacity(cache.triggers.len());
        let mut is_error = false;
        let mut activity = BTreeMap::new();
        for trigger in &cache.triggers {
            let Some(metric) = trigger.specs.iter().find_map(|s| s.external_metric_name()) else {
                continue;
            };
            let targets: Vec<f64> = trigger
                .specs
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
            let read =
                tokio::time::timeout(SCALER_TIMEOUT, trigger.scaler.metrics_and_activity(metric))
                    .await
                    .unwrap_or_else(|_| {
                        Err(ScalerError::Backend {
                            trigger: trigger.trigger_type.clone(),
                            message: format!("no answer within {SCALER_TIMEOUT:?}"),
                        })
                    });
            match read {
                Ok((values, active)) => {
                    let queue = values
                        .iter()
                        .filter(|v| v.metric_name == metric)
                        .map(|v| v.value)
                        .sum();
                    activity.insert(
                        metric.to_string(),
                        TriggerActivityStatus {
                            is_active: Some(active),
                        },
                    );
                    readings.push(ScalerReading {
                        queue,
                        target,
                        active,
                    });
                }
                Err(e) => {
                    is_error = true;
                    tracing::warn!(object = %key, %metric, error = %e, "scaler failed");
                    self.events
                        .warning(sj.as_ref(), EventReason::KedaScalerFailed, e.to_string())
                        .await;
                }
            }
        }
        if is_error {
            // As KEDA: any scaler error drops the cache; the next poll rebuilds it.
            self.drop_scalers(&key).await;
        }
        let mode = sj
            .spec
            .scaling_strategy
            .as_ref()
            .and_then(|s| s.multiple_scalers_calculation);
        let agg = strategy::aggregate(&readings, mode, min_rc, max_rc);
        self.execute(&key, &sj, agg, is_error, activity).await;
    }

    async fn counts(&self, sj: &ScaledJob, jobs: &[Arc<Job>]) -> JobCounts {
        let unfinished: Vec<&Job> = jobs
            .iter()
            .map(|j| j.as_ref())
            .filter(|j| !job::is_finished(j))
            .collect();
        let running = unfinished.len() as i64;
        if unfinished.is_empty() {
            return JobCounts::default();
        }
        let conditions = sj
            .spec
            .scaling_strategy
            .as_ref()
            .and_then(|s| s.pending_pod_conditions.clone())
            .unwrap_or_default();
        // One list of the ScaledJob's pods (they carry our template label), grouped by Job.
        let pods: Api<Pod> =
            Api::namespaced(self.client.clone(), &sj.namespace().unwrap_or_default());
        let selector = format!("{}={}", labels::SCALED_JOB_NAME, sj.name_any());
        let pods = match pods.list(&ListParams::default().labels(&selector)).await {
            Ok(list) => list.items,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the ScaledJob's pods; counting none pending");
                return JobCounts {
                    running,
                    pending: 0,
                };
            }
        };
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

    async fn execute(
        &self,
        key: &ObjectKey,
        sj: &ScaledJob,
        agg: strategy::Aggregate,
        is_error: bool,
        activity: BTreeMap<String, TriggerActivityStatus>,
    ) {
        let namespace = key.namespace.as_str();
        let jobs = self.jobs_of(namespace, &key.name);
        let counts = self.counts(sj, &jobs).await;
        let min_rc = strategy::effective_min(sj);
        let max_rc = strategy::effective_max(sj);
        let n = strategy::jobs_to_create(Strategy::of(sj), agg, counts, min_rc, max_rc);
        tracing::debug!(object = %key, running = counts.running, pending = counts.pending, scale_to = agg.scale_to, max_scale = agg.max_scale, create = n, "scaled job poll");
        if n > 0 {
            let jobs_api: Api<Job> = Api::namespaced(self.client.clone(), namespace);
            let template = job::build(sj, &self.version);
            for _ in 0..n {
                if let Err(e) = jobs_api.create(&PostParams::default(), &template).await {
                    self.events
                        .warning(
                            sj,
                            EventReason::KedaJobCreateFailed,
                            format!("Failed to create job {}-: {e}", key.name),
                        )
                        .await;
                }
            }
            tracing::info!(object = %key, jobs = n, "created jobs");
            self.events
                .normal(
                    sj,
                    EventReason::KedaJobsCreated,
                    format!("Created {n} jobs"),
                )
                .await;
        }
        let was = sj_status::get(sj.status.as_ref(), ACTIVE).map(|c| c.status.clone());
        if agg.is_active && was.as_deref() != Some(ConditionStatus::True.as_str()) {
            self.events
                .normal(
                    sj,
                    EventReason::ScaledJobActive,
                    "Scaling is performed because triggers are active",
                )
                .await;
        } else if !agg.is_active && was.as_deref() != Some(ConditionStatus::False.as_str()) {
            self.events
                .normal(
                    sj,
                    EventReason::ScaledJobInactive,
                    "Scaling is not performed because triggers are not active",
                )
                .await;
        }
        let now = agg.is_active.then(|| Time(jiff::Timestamp::now()));
        let api: Api<ScaledJob> = Api::namespaced(self.client.clone(), namespace);
        let result = sj_status::update(&api, &key.name, sj.status.as_ref(), |s| {
            if let Some(t) = &now {
                s.last_active_time = Some(t.clone());
            }
            match (is_error, agg.is_active) {
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
            if agg.is_active {
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
            if !activity.is_empty() {
                let mut merged = s.triggers_activity.clone().unwrap_or_default();
                merged.extend(activity.iter().map(|(k, v)| (k.clone(), v.clone())));
                s.triggers_activity = Some(merged);
            }
        })
        .await;
        if let Err(e) = result {
            tracing::warn!(object = %key, error = %e, "status update failed");
        }
        self.clean_up(sj, &jobs).await;
    }

    /// Deletes finished Jobs beyond the history limits, oldest first, every poll.
    async fn clean_up(&self, sj: &ScaledJob, jobs: &[Arc<Job>]) {
        let refs: Vec<&Job> = jobs.iter().map(|j| j.as_ref()).collect();
        let doomed = job::beyond_history(
            &refs,
            sj.spec.successful_jobs_history_limit(),
            sj.spec.failed_jobs_history_limit(),
        );
        if doomed.is_empty() {
            return;
        }
        let api: Api<Job> =
            Api::namespaced(self.client.clone(), &sj.namespace().unwrap_or_default());
        for j in doomed {
            match api.delete(&j.name_any(), &DeleteParams::background()).await {
                Ok(_) => {
                    tracing::info!(job = %j.name_any(), "removed a job beyond the history limit")
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    tracing::warn!(job = %j.name_any(), error = %e, "cannot delete job");
                    return;
                }
            }
        }
    }
}

async fn close(cache: &ScalersCache) {
    for t in &cache.triggers {
        t.scaler.close().await;
    }
}

/// What a scaler is built from, for trigger `index` of `sj`, before authentication and env are
/// resolved (see `JobLoops::resolved_config`).
pub fn scaler_config(sj: &ScaledJob, index: usize) -> ScalerConfig {
    let trigger = &sj.spec.triggers[index.min(sj.spec.triggers.len().saturating_sub(1))];
    ScalerConfig {
        trigger_index: index,
        trigger_type: trigger.r#type.clone(),
        trigger_name: trigger.name.clone(),
        metadata: trigger.metadata.clone(),
        auth_params: BTreeMap::new(),
        resolved_env: BTreeMap::new(),
        pod_identity: None,
        metric_type: MetricTargetKind::AverageValue,
        scalable_object_namespace: sj.namespace().unwrap_or_default(),
        scalable_object_name: sj.name_any(),
        as_metric_source: true,
    }
}
