//! The ScaledObject scale loop: scalers built once per object generation, polled by the shared
//! scheduler, values written to the metric cache, and the executor's decision applied to the
//! target and the status. The external-metrics API reads through here too.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use keda_api::ScaledObject;
use keda_api::common::TriggerActivityStatus;
use keda_api::scaled_object::HealthStatus;
use keda_scalers::{
    MetricSpec, MetricTargetKind, Pools, Registry, Scaler, ScalerConfig, ScalerError,
};
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::auth::{self, AuthResolver, WorkloadTemplate};
use crate::events::Events;
use crate::executor::{self, ScaleAction, ScaleInput};
use crate::metric_cache::MetricCache;
use crate::scheduler::{ObjectKey, PollTarget, Scheduler};
use crate::status;
use crate::target::ScaleTarget;
use keda_api::names::{ConditionStatus, EventReason, annotations as keys, conditions};

/// Longest a single scaler read may take inside a poll or an HPA request.
const SCALER_TIMEOUT: Duration = Duration::from_secs(10);
/// `lastActiveTime` is persisted at most this often while an object stays active.
const LAST_ACTIVE_PERSIST_EVERY: SignedDuration = SignedDuration::from_secs(15);
pub const SCALED_OBJECT: &str = "ScaledObject";

/// One trigger's scaler and the metrics it feeds the HPA.
pub struct TriggerScaler {
    pub index: usize,
    pub trigger_type: String,
    pub name: Option<String>,
    pub scaler: Arc<dyn Scaler>,
    pub specs: Vec<MetricSpec>,
}

/// The scalers of one object at one generation.
pub struct ScalersCache {
    pub generation: Option<i64>,
    pub triggers: Vec<TriggerScaler>,
    /// What the scalers were built from, to notice changed credentials.
    configs: Vec<ScalerConfig>,
    /// Some trigger has a TriggerAuthentication or reads its target's env.
    needs_auth: bool,
    checked_at: Mutex<tokio::time::Instant>,
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

    pub fn metric_specs(&self) -> Vec<MetricSpec> {
        self.triggers
            .iter()
            .flat_map(|t| t.specs.iter().cloned())
            .collect()
    }

    async fn close(&self) {
        for t in &self.triggers {
            t.scaler.close().await;
        }
    }
}

#[derive(Default)]
struct ObjectState {
    scalers: tokio::sync::Mutex<Option<Arc<ScalersCache>>>,
    runtime: Mutex<RuntimeState>,
}

#[derive(Default)]
struct RuntimeState {
    /// Authoritative in memory; persisted to status in a coalesced way.
    last_active: Option<Timestamp>,
    target: Option<ScaleTarget>,
    /// Consecutive failures per external metric (status.health while a fallback is set).
    failures: BTreeMap<String, i32>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("no matching metrics found for {0}")]
    NotFound(String),
    #[error("{0}")]
    Scaler(#[from] ScalerError),
}

/// What one poll found out.
#[derive(Default)]
struct PollOutcome {
    is_active: bool,
    is_error: bool,
    activity: BTreeMap<String, TriggerActivityStatus>,
    active_metrics: Vec<String>,
    fallback_active: bool,
    /// Failure counts, only when a fallback is configured.
    health: Option<BTreeMap<String, i32>>,
}

pub struct ScaleLoops {
    client: kube::Client,
    events: Events,
    registry: Registry,
    pools: Pools,
    auth: Arc<AuthResolver>,
    pub cache: Arc<MetricCache>,
    pub scaler_metrics: Arc<crate::scaler_metrics::ScalerMetrics>,
    scheduler: OnceLock<Scheduler>,
    store: OnceLock<Store<ScaledObject>>,
    objects: Mutex<HashMap<ObjectKey, Arc<ObjectState>>>,
    /// Where the shared scheduler sends ScaledJob polls (the job loops).
    job_target: OnceLock<Arc<dyn PollTarget>>,
}

/// Lets the scheduler call back into the loops without a reference cycle.
struct Poller(Weak<ScaleLoops>);

impl PollTarget for Poller {
    fn poll(&self, key: ObjectKey) -> BoxFuture<'static, ()> {
        let loops = self.0.upgrade();
        Box::pin(async move {
            if let Some(loops) = loops {
                if key.kind == crate::scaled_job::loops::SCALED_JOB {
                    if let Some(target) = loops.job_target.get() {
                        target.poll(key).await;
                    }
                } else {
                    loops.poll(key).await;
                }
            }
        })
    }
}

impl ScaleLoops {
    pub fn new(
        client: kube::Client,
        events: Events,
        max_concurrent_polls: usize,
        auth: Arc<AuthResolver>,
    ) -> Arc<Self> {
        let loops = Arc::new(Self {
            client,
            events,
            registry: Registry::builtin(),
            pools: Pools::new(),
            auth,
            cache: Arc::new(MetricCache::default()),
            scaler_metrics: Arc::default(),
            scheduler: OnceLock::new(),
            store: OnceLock::new(),
            objects: Mutex::new(HashMap::new()),
            job_target: OnceLock::new(),
        });
        let scheduler = Scheduler::spawn(
            Arc::new(Poller(Arc::downgrade(&loops))),
            max_concurrent_polls,
        );
        let _ = loops.scheduler.set(scheduler);
        loops
    }

    /// The ScaledObject cache the controller maintains; polls read the latest object from it.
    pub fn set_store(&self, store: Store<ScaledObject>) {
        let _ = self.store.set(store);
    }

    /// Routes ScaledJob polls of the shared scheduler to `target`.
    pub fn set_job_target(&self, target: Arc<dyn PollTarget>) {
        let _ = self.job_target.set(target);
    }

    pub fn auth(&self) -> &Arc<AuthResolver> {
        &self.auth
    }

    pub fn scheduler(&self) -> Option<&Scheduler> {
        self.scheduler.get()
    }

    fn state(&self, key: &ObjectKey) -> Arc<ObjectState> {
        match self.objects.lock() {
            Ok(mut objects) => objects.entry(key.clone()).or_default().clone(),
            Err(_) => Arc::default(),
        }
    }

    fn latest(&self, key: &ObjectKey) -> Option<Arc<ScaledObject>> {
        self.store
            .get()?
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
    }

    pub fn key_of(so: &ScaledObject) -> ObjectKey {
        ObjectKey::new(
            SCALED_OBJECT,
            &so.namespace().unwrap_or_default(),
            &so.name_any(),
        )
    }

    /// The object's scalers, built (or rebuilt after a generation change or an error) on demand.
    /// Once per polling interval the triggers' credentials and environment are resolved again;
    /// when they changed (a rotated Secret, an edited TriggerAuthentication) the scalers are
    /// rebuilt, so new credentials apply within one interval instead of after the next error.
    pub async fn scalers_for(&self, so: &ScaledObject) -> Result<Arc<ScalersCache>, ScalerError> {
        let state = self.state(&Self::key_of(so));
        let mut slot = state.scalers.lock().await;
        let interval = Duration::from_secs(u64::try_from(so.spec.polling_interval()).unwrap_or(30));
        let current = slot
            .as_ref()
            .filter(|c| c.generation == so.metadata.generation)
            .cloned();
        if let Some(cache) = &current
            && (!cache.needs_auth || !cache.recheck_due(interval))
        {
            return Ok(cache.clone());
        }
        let configs = match self.scaler_configs(so).await {
            Ok(configs) => configs,
            // The apiserver or a secret store is unreachable: keep what works.
            Err(e) if e.is_backend() && slot.is_some() => {
                tracing::info!(error = %e, "cannot re-resolve trigger authentication; keeping the current scalers");
                return slot.clone().ok_or(e);
            }
            Err(e) => return Err(e),
        };
        if let Some(cache) = &current
            && cache.configs == configs
        {
            cache.mark_checked();
            return Ok(cache.clone());
        }
        if current.is_some() {
            tracing::info!(object = %Self::key_of(so), "trigger authentication changed; rebuilding scalers");
        }
        let built = match self.build_scalers(so, configs).await {
            Ok(b) => Arc::new(b),
            // The backend is down right now: keep polling through the scalers we have (their
            // clients reconnect by themselves), so failures are counted and fallback applies.
            Err(e) if e.is_backend() && slot.is_some() => {
                tracing::info!(error = %e, "backend unreachable while rebuilding scalers; keeping the previous ones");
                return slot.clone().ok_or(e);
            }
            Err(e) => return Err(e),
        };
        if let Some(old) = slot.replace(built.clone()) {
            tokio::spawn(async move { old.close().await });
        }
        Ok(built)
    }

    /// Every trigger's config with its authentication and environment resolved.
    async fn scaler_configs(&self, so: &ScaledObject) -> Result<Vec<ScalerConfig>, ScalerError> {
        let namespace = so.namespace().unwrap_or_default();
        let template = WorkloadTemplate::for_scaled_object(so);
        let container = so
            .spec
            .scale_target_ref
            .env_source_container_name
            .as_deref();
        let mut configs = Vec::with_capacity(so.spec.triggers.len());
        for (index, trigger) in so.spec.triggers.iter().enumerate() {
            let mut config = scaler_config(so, index);
            if trigger.authentication_ref.is_some() || auth::needs_env(trigger) {
                let resolved = self
                    .auth
                    .resolve(&namespace, trigger, container, &template)
                    .await
                    .map_err(|e| e.into_scaler_error(config.trigger_label()))?;
                config.auth_params = resolved.auth_params;
                config.resolved_env = resolved.resolved_env;
                config.pod_identity = resolved.pod_identity;
            }
            configs.push(config);
        }
        Ok(configs)
    }

    async fn build_scalers(
        &self,
        so: &ScaledObject,
        configs: Vec<ScalerConfig>,
    ) -> Result<ScalersCache, ScalerError> {
        let mut triggers = Vec::with_capacity(configs.len());
        for (index, (trigger, config)) in so.spec.triggers.iter().zip(&configs).enumerate() {
            let scaler = match self.registry.build(config, &self.pools).await {
                Ok(s) => s,
                Err(e) => {
                    for t in &triggers {
                        let t: &TriggerScaler = t;
                        t.scaler.close().await;
                    }
                    return Err(e);
                }
            };
            let specs = scaler.metric_specs();
            self.watch_pushes(so, scaler.as_ref());
            let note = format!("Scaler {} is built.", trigger.r#type);
            self.events
                .normal(so, EventReason::KedaScalersStarted, note)
                .await;
            triggers.push(TriggerScaler {
                index,
                trigger_type: trigger.r#type.clone(),
                name: trigger.name.clone(),
                scaler,
                specs,
            });
        }
        let needs_auth = so
            .spec
            .triggers
            .iter()
            .any(|t| t.authentication_ref.is_some() || auth::needs_env(t));
        Ok(ScalersCache {
            generation: so.metadata.generation,
            triggers,
            configs,
            needs_auth,
            checked_at: Mutex::new(tokio::time::Instant::now()),
        })
    }

    /// A push scaler's `true` polls the object at once (KEDA requests a scale right away), so a
    /// scale from zero does not wait for the polling interval. `false` is left to polling.
    fn watch_pushes(&self, so: &ScaledObject, scaler: &dyn Scaler) {
        let Some(scheduler) = self.scheduler.get().cloned() else {
            return;
        };
        let key = Self::key_of(so);
        scaler.watch_activity(Arc::new(move |active| {
            if active {
                tracing::debug!(object = %key, "push scaler reported active; polling now");
                scheduler.poll_now(key.clone());
            }
        }));
    }

    /// Starts (or updates) the object's loop; true when no loop existed before.
    pub fn register(&self, so: &ScaledObject, target: ScaleTarget) -> bool {
        let key = Self::key_of(so);
        let existed = self
            .objects
            .lock()
            .map(|o| o.contains_key(&key))
            .unwrap_or(false);
        let state = self.state(&key);
        if let Ok(mut rt) = state.runtime.lock() {
            rt.target = Some(target);
        }
        let types = so.spec.triggers.iter().map(|t| t.r#type.clone()).collect();
        self.scaler_metrics
            .register(&key.namespace, &key.name, types);
        if let Some(s) = self.scheduler.get() {
            let interval =
                Duration::from_secs(u64::try_from(so.spec.polling_interval()).unwrap_or(30));
            s.upsert(key, interval, &so.uid().unwrap_or_else(|| so.name_any()));
        }
        !existed
    }

    /// Stops the object's loop and releases its scalers; true when a loop existed.
    pub async fn unregister(&self, key: &ObjectKey) -> bool {
        if let Some(s) = self.scheduler.get() {
            s.remove(key.clone());
        }
        let state = self.objects.lock().ok().and_then(|mut o| o.remove(key));
        self.cache.remove_object(&key.namespace, &key.name);
        self.scaler_metrics.remove_object(&key.namespace, &key.name);
        match state {
            Some(state) => {
                if let Some(old) = state.scalers.lock().await.take() {
                    old.close().await;
                }
                true
            }
            None => false,
        }
    }

    /// Stops every loop and closes every scaler (operator shutdown).
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

    /// One poll: read every external metric, cache the values, decide and apply.
    pub async fn poll(&self, key: ObjectKey) {
        let Some(so) = self.latest(&key) else {
            self.unregister(&key).await;
            return;
        };
        if so.metadata.deletion_timestamp.is_some() || crate::pause::is_fully_paused(&so) {
            return;
        }
        let cache = match self.scalers_for(&so).await {
            Ok(c) => c,
            Err(e) => {
                // As KEDA: no scaling and no status write when the scalers cannot be built.
                tracing::warn!(object = %key, error = %e, "cannot build scalers; skipping poll");
                return;
            }
        };
        let namespace = key.namespace.as_str();
        let state = self.state(&key);
        let fallback = crate::fallback::valid(so.spec.fallback.as_ref()).cloned();
        let mut outcome = PollOutcome::default();
        let mut only_resource_metrics = true;
        let mut current_for_fallback: Option<i32> = None;
        for trigger in &cache.triggers {
            for spec in &trigger.specs {
                let Some(metric) = spec.external_metric_name() else {
                    continue;
                };
                only_resource_metrics = false;
                let labels = crate::scaler_metrics::ScalerLabels {
                    namespace: key.namespace.clone(),
                    metric: metric.to_string(),
                    scaled_object: key.name.clone(),
                    scaler: crate::scaler_metrics::scaler_label(
                        &trigger.trigger_type,
                        trigger.name.as_deref(),
                    ),
                    trigger_index: trigger.index,
                    type_: "scaledobject",
                };
                let started = tokio::time::Instant::now();
                match read_with_timeout(trigger.scaler.as_ref(), metric).await {
                    Ok((values, active)) => {
                        let value = values
                            .iter()
                            .find(|v| v.metric_name == metric)
                            .or(values.first())
                            .map_or(0.0, |v| v.value);
                        self.scaler_metrics.record_success(
                            labels,
                            value,
                            started.elapsed(),
                            active,
                        );
                        self.set_failures(&state, metric, 0);
                        for v in values {
                            self.cache
                                .store(namespace, &key.name, &v.metric_name, v.value);
                        }
                        if active {
                            outcome.active_metrics.push(metric.to_string());
                        }
                        outcome.is_active |= active;
                        outcome.activity.insert(
                            metric.to_string(),
                            TriggerActivityStatus {
                                is_active: Some(active),
                            },
                        );
                    }
                    Err(e) => {
                        self.scaler_metrics.record_error(labels);
                        let failures = self.bump_failures(&state, metric);
                        tracing::warn!(object = %key, %metric, failures, error = %e, "scaler failed");
                        self.events
                            .warning(so.as_ref(), EventReason::KedaScalerFailed, e.to_string())
                            .await;
                        match fallback
                            .as_ref()
                            .filter(|f| crate::fallback::applies(f, failures))
                        {
                            Some(f) => {
                                // Past the threshold: serve target × R and count as active.
                                let current = match current_for_fallback {
                                    Some(c) => c,
                                    None => {
                                        let c = self.current_replicas(&key, &so).await.unwrap_or(0);
                                        current_for_fallback = Some(c);
                                        c
                                    }
                                };
                                let r = crate::fallback::replicas(f, current);
                                let value = crate::fallback::metric_value(spec.target().value, r);
                                self.cache.store(namespace, &key.name, metric, value);
                                outcome.is_active = true;
                                outcome.fallback_active = true;
                                outcome.active_metrics.push(metric.to_string());
                                outcome.activity.insert(
                                    metric.to_string(),
                                    TriggerActivityStatus {
                                        is_active: Some(true),
                                    },
                                );
                            }
                            None => outcome.is_error = true,
                        }
                    }
                }
            }
        }
        if only_resource_metrics && !outcome.is_error {
            outcome.is_active = true;
        }
        if fallback.is_some() {
            outcome.health = state.runtime.lock().ok().map(|rt| rt.failures.clone());
        }
        self.execute(&key, &so, outcome).await;
    }

    fn set_failures(&self, state: &ObjectState, metric: &str, n: i32) {
        if let Ok(mut rt) = state.runtime.lock() {
            rt.failures.insert(metric.to_string(), n);
        }
    }

    fn bump_failures(&self, state: &ObjectState, metric: &str) -> i32 {
        match state.runtime.lock() {
            Ok(mut rt) => {
                let n = rt.failures.entry(metric.to_string()).or_insert(0);
                *n = n.saturating_add(1);
                *n
            }
            Err(_) => 1,
        }
    }

    async fn current_replicas(&self, key: &ObjectKey, so: &ScaledObject) -> Option<i32> {
        let state = self.state(key);
        let target = match state.runtime.lock().ok().and_then(|rt| rt.target.clone()) {
            Some(t) => t,
            None => ScaleTarget::resolve(&self.client, so).await.ok()?,
        };
        target.replicas(&self.client).await.ok()
    }

    async fn execute(&self, key: &ObjectKey, so: &ScaledObject, outcome: PollOutcome) {
        let PollOutcome {
            is_active,
            is_error,
            activity,
            active_metrics,
            fallback_active,
            health,
        } = outcome;
        let state = self.state(key);
        let target = match state.runtime.lock().ok().and_then(|rt| rt.target.clone()) {
            Some(t) => t,
            None => match ScaleTarget::resolve(&self.client, so).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(object = %key, error = %e, "cannot resolve the scale target");
                    return;
                }
            },
        };
        let api: Api<ScaledObject> = Api::namespaced(self.client.clone(), &key.namespace);
        let current = match target.replicas(&self.client).await {
            Ok(r) => r,
            Err(e) => {
                let message = e.to_string();
                let _ = status::update(&api, &key.name, so.status.as_ref(), |s| {
                    status::set(
                        s,
                        conditions::READY,
                        ConditionStatus::False,
                        "ErrorGettingCurrentReplicas",
                        &message,
                    );
                })
                .await;
                return;
            }
        };
        let now = Timestamp::now();
        let persisted_active = so
            .status
            .as_ref()
            .and_then(|s| s.last_active_time.as_ref())
            .map(|t| t.0);
        let remembered = state.runtime.lock().ok().and_then(|rt| rt.last_active);
        let last_active = remembered.max(persisted_active);
        let annotations = so.annotations();
        let input = ScaleInput {
            is_active,
            force_activation: crate::pause::flag(annotations, keys::FORCE_ACTIVATION),
            is_error,
            current_replicas: current,
            min_replicas: so.spec.min_replica_count(),
            idle_replicas: so.spec.idle_replica_count,
            fallback_replicas: so.spec.fallback.as_ref().map(|f| f.replicas),
            paused_scale_in: crate::pause::flag(annotations, keys::PAUSED_SCALE_IN),
            paused_scale_out: crate::pause::flag(annotations, keys::PAUSED_SCALE_OUT),
            last_active_time: last_active,
            creation_time: so.metadata.creation_timestamp.as_ref().map(|t| t.0),
            cooldown_period: SignedDuration::from_secs(i64::from(so.spec.cooldown_period())),
            initial_cooldown_period: SignedDuration::from_secs(i64::from(
                so.spec.initial_cooldown_period(),
            )),
            now,
        };
        let decision = executor::decide(&input);
        let mut touch = decision.touch_last_active;
        let mut scaled = false;
        let kind_ns_name = format!(
            "{} {}/{}",
            target.kind_string(),
            target.namespace,
            target.name
        );
        match decision.action {
            Some(ScaleAction::Activate { to }) => match target.set_replicas(&self.client, to).await
            {
                Ok(()) => {
                    scaled = true;
                    let cause = if is_active {
                        format!("triggered by {}", active_metrics.join(";"))
                    } else {
                        "caused by forced activation annotation".to_string()
                    };
                    let note = format!("Scaled {kind_ns_name} from {current} to {to}, {cause}");
                    tracing::info!(object = %key, "{note}");
                    self.events
                        .normal(so, EventReason::KedaScaleTargetActivated, note)
                        .await;
                }
                Err(e) => {
                    touch = false;
                    self.events
                        .warning(
                            so,
                            EventReason::KedaScaleTargetActivationFailed,
                            e.to_string(),
                        )
                        .await;
                }
            },
            Some(ScaleAction::Deactivate { to }) => {
                match target.set_replicas(&self.client, to).await {
                    Ok(()) => {
                        scaled = true;
                        let note = format!("Deactivated {kind_ns_name} from {current} to {to}");
                        tracing::info!(object = %key, "{note}");
                        self.events
                            .normal(so, EventReason::KedaScaleTargetDeactivated, note)
                            .await;
                    }
                    Err(e) => {
                        self.events
                            .warning(
                                so,
                                EventReason::KedaScaleTargetDeactivationFailed,
                                e.to_string(),
                            )
                            .await
                    }
                }
            }
            Some(ScaleAction::RaiseToMin { to }) => {
                if let Err(e) = target.set_replicas(&self.client, to).await {
                    tracing::warn!(object = %key, error = %e, "cannot raise the target to minReplicaCount");
                }
            }
            None => {}
        }
        let mut write_last_active = None;
        if touch {
            if let Ok(mut rt) = state.runtime.lock() {
                rt.last_active = Some(now);
            }
            let stale =
                persisted_active.is_none_or(|p| now.duration_since(p) > LAST_ACTIVE_PERSIST_EVERY);
            if scaled || stale {
                write_last_active = Some(Time(now));
            }
        }
        let outcome = status::update(&api, &key.name, so.status.as_ref(), |s| {
            if let Some(t) = &write_last_active {
                s.last_active_time = Some(t.clone());
            }
            status::set(
                s,
                conditions::READY,
                decision.ready.status,
                decision.ready.reason,
                decision.ready.message,
            );
            status::set(
                s,
                conditions::ACTIVE,
                decision.active.status,
                decision.active.reason,
                decision.active.message,
            );
            if let Some(health) = &health {
                s.health = Some(
                    health
                        .iter()
                        .map(|(metric, failures)| {
                            let status = if *failures == 0 { "Happy" } else { "Failing" };
                            let health = HealthStatus {
                                number_of_failures: Some(*failures),
                                status: Some(status.to_string()),
                            };
                            (metric.clone(), health)
                        })
                        .collect(),
                );
                if fallback_active {
                    status::set(
                        s,
                        conditions::FALLBACK,
                        ConditionStatus::True,
                        "FallbackExists",
                        "At least one trigger is falling back on this scaled object",
                    );
                } else {
                    status::set(
                        s,
                        conditions::FALLBACK,
                        ConditionStatus::False,
                        "NoFallbackFound",
                        "No fallbacks are active on this scaled object",
                    );
                }
            }
            if !activity.is_empty() {
                let mut merged = s.triggers_activity.clone().unwrap_or_default();
                merged.extend(activity.iter().map(|(k, v)| (k.clone(), v.clone())));
                s.triggers_activity = Some(merged);
            }
        })
        .await;
        if let Err(e) = outcome {
            tracing::warn!(object = %key, error = %e, "status update failed");
        }
    }

    /// The HPA's read path: a fresh cached value, or a live read when there is none.
    pub async fn read_metric(
        &self,
        namespace: &str,
        name: &str,
        metric: &str,
    ) -> Result<Vec<(String, f64)>, ReadError> {
        let key = ObjectKey::new(SCALED_OBJECT, namespace, name);
        let so = self
            .latest(&key)
            .ok_or_else(|| ReadError::NotFound(metric.to_string()))?;
        let interval = Duration::from_secs(u64::try_from(so.spec.polling_interval()).unwrap_or(30));
        if let Some(sample) = self.cache.fresh(
            namespace,
            name,
            metric,
            interval * 2 + Duration::from_secs(1),
        ) {
            return Ok(vec![(metric.to_string(), sample.value)]);
        }
        let cache = self.scalers_for(&so).await?;
        for trigger in &cache.triggers {
            for spec in &trigger.specs {
                let Some(spec_name) = spec.external_metric_name() else {
                    continue;
                };
                if !spec_name.eq_ignore_ascii_case(metric) {
                    continue;
                }
                return match read_with_timeout(trigger.scaler.as_ref(), spec_name).await {
                    Ok((values, _)) => {
                        for v in &values {
                            self.cache.store(namespace, name, &v.metric_name, v.value);
                        }
                        Ok(values
                            .into_iter()
                            .map(|v| (v.metric_name, v.value))
                            .collect())
                    }
                    Err(e) => {
                        self.events
                            .warning(so.as_ref(), EventReason::KedaScalerFailed, e.to_string())
                            .await;
                        Err(e.into())
                    }
                };
            }
        }
        Err(ReadError::NotFound(metric.to_string()))
    }
}

async fn read_with_timeout(
    scaler: &dyn Scaler,
    metric: &str,
) -> Result<(Vec<keda_scalers::MetricValue>, bool), ScalerError> {
    match tokio::time::timeout(SCALER_TIMEOUT, scaler.metrics_and_activity(metric)).await {
        Ok(result) => result,
        Err(_) => Err(ScalerError::Backend {
            trigger: metric.to_string(),
            message: format!("no answer within {SCALER_TIMEOUT:?}"),
        }),
    }
}

/// What a scaler is built from, for trigger `index` of `so`.
pub fn scaler_config(so: &ScaledObject, index: usize) -> ScalerConfig {
    let trigger = &so.spec.triggers[index.min(so.spec.triggers.len().saturating_sub(1))];
    ScalerConfig {
        trigger_index: index,
        trigger_type: trigger.r#type.clone(),
        trigger_name: trigger.name.clone(),
        metadata: trigger.metadata.clone(),
        auth_params: BTreeMap::new(),
        resolved_env: BTreeMap::new(),
        pod_identity: None,
        metric_type: trigger
            .metric_type
            .as_deref()
            .and_then(|m| m.parse().ok())
            .unwrap_or(MetricTargetKind::AverageValue),
        scalable_object_namespace: so.namespace().unwrap_or_default(),
        scalable_object_name: so.name_any(),
        as_metric_source: false,
    }
}
