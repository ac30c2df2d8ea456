//! The ScaledObject poll: read every external metric, then a pure [`plan`] (failure counts,
//! fallback, the executor's decision, events and the status) applied through [`ReplicaIo`]. The
//! values go to the metric cache the HPA reads through [`ScaledObjects::read_metric`].

use keda_api::names::{ConditionStatus, EventReason, annotations, conditions};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use keda_api::common::TriggerActivityStatus;
use keda_api::scaled_object::HealthStatus;
use keda_api::{ScaledObject, ScaledObjectStatus};
use keda_scalers::ScalerError;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::sync::OnceCell;

use super::read::{self, Metrics, Reading};
use super::{
    Event, IoError, ObjectKey, ObjectKind, ReplicaIo, Scalable, ScaleIo, Scheduler, TriggerSet,
    TriggerSets,
};
use crate::events::Events;
use crate::executor::{self, ConditionValue, ScaleAction, ScaleDecision, ScaleInput};
use crate::metric_cache::MetricCache;
use crate::scaler_metrics::{ScalerLabels, ScalerMetrics, scaler_label};
use crate::status;
use crate::target::{ScaleTarget, TargetError};

/// `lastActiveTime` is persisted at most this often while an object stays active.
const LAST_ACTIVE_PERSIST_EVERY: SignedDuration = SignedDuration::from_secs(15);

/// What the executor remembers of an object between polls.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    /// Authoritative in memory; persisted to status in a coalesced way.
    pub last_active: Option<Timestamp>,
    /// Consecutive failures per external metric (status.health while a fallback is set).
    pub failures: BTreeMap<String, i32>,
}

#[derive(Default)]
struct ObjectState {
    memory: Memory,
    target: Option<ScaleTarget>,
}

/// The status a poll writes.
#[derive(Debug, Clone, PartialEq)]
pub enum SoStatus {
    /// The target's replicas could not be read.
    ReplicasUnknown(String),
    Polled {
        last_active_time: Option<Time>,
        ready: ConditionValue,
        active: ConditionValue,
        /// Failure counts, only when a fallback is configured.
        health: Option<BTreeMap<String, i32>>,
        fallback_active: bool,
        activity: BTreeMap<String, TriggerActivityStatus>,
    },
}

impl SoStatus {
    pub fn apply(&self, s: &mut ScaledObjectStatus) {
        let Self::Polled {
            last_active_time,
            ready,
            active,
            health,
            fallback_active,
            activity,
        } = self
        else {
            if let Self::ReplicasUnknown(message) = self {
                status::set(
                    s,
                    conditions::READY,
                    ConditionStatus::False,
                    "ErrorGettingCurrentReplicas",
                    message,
                );
            }
            return;
        };
        if let Some(t) = last_active_time {
            s.last_active_time = Some(t.clone());
        }
        status::set(
            s,
            conditions::READY,
            ready.status,
            ready.reason,
            ready.message,
        );
        status::set(
            s,
            conditions::ACTIVE,
            active.status,
            active.reason,
            active.message,
        );
        if let Some(health) = health {
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
            if *fallback_active {
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
    }
}

/// What one poll does, decided from its readings without I/O.
#[derive(Debug)]
pub struct Plan {
    /// Failure counts after this poll.
    pub failures: BTreeMap<String, i32>,
    /// Metric values for the cache (read ones, and `target × R` for metrics falling back).
    pub values: Vec<(String, f64)>,
    /// One `KEDAScalerFailed` per failed read.
    pub events: Vec<Event>,
    pub step: Step,
}

#[derive(Debug)]
pub enum Step {
    /// The target cannot be resolved: nothing more this poll.
    Skip,
    /// Only a status (the replicas could not be read).
    Status(SoStatus),
    Scale(ScalePlan),
}

/// The executor's decision and what its outcome writes.
#[derive(Debug)]
pub struct ScalePlan {
    pub decision: ScaleDecision,
    pub current: i32,
    /// `apps/v1.Deployment ns/name`, for the event text.
    pub target: String,
    /// Why an activation happens, for its event.
    pub cause: String,
    pub now: Timestamp,
    pub persisted_active: Option<Timestamp>,
    pub health: Option<BTreeMap<String, i32>>,
    pub fallback_active: bool,
    pub activity: BTreeMap<String, TriggerActivityStatus>,
}

/// What applying the scale led to.
#[derive(Debug)]
pub struct Finished {
    pub events: Vec<Event>,
    pub status: SoStatus,
    /// The new in-memory `lastActiveTime`, when it moved.
    pub last_active: Option<Timestamp>,
}

impl ScalePlan {
    /// Events, status and memory once the replica change (if any) succeeded or failed.
    pub fn finish(self, scaled: Option<Result<(), String>>) -> Finished {
        let mut touch = self.decision.touch_last_active;
        let mut events = Vec::new();
        let mut did_scale = false;
        let (current, target) = (self.current, &self.target);
        match (self.decision.action, scaled) {
            (Some(ScaleAction::Activate { to }), Some(Ok(()))) => {
                did_scale = true;
                let note = format!("Scaled {target} from {current} to {to}, {}", self.cause);
                tracing::info!("{note}");
                events.push(Event::normal(EventReason::KedaScaleTargetActivated, note));
            }
            (Some(ScaleAction::Activate { .. }), Some(Err(e))) => {
                touch = false;
                events.push(Event::warning(
                    EventReason::KedaScaleTargetActivationFailed,
                    e,
                ));
            }
            (Some(ScaleAction::Deactivate { to }), Some(Ok(()))) => {
                did_scale = true;
                let note = format!("Deactivated {target} from {current} to {to}");
                tracing::info!("{note}");
                events.push(Event::normal(EventReason::KedaScaleTargetDeactivated, note));
            }
            (Some(ScaleAction::Deactivate { .. }), Some(Err(e))) => {
                events.push(Event::warning(
                    EventReason::KedaScaleTargetDeactivationFailed,
                    e,
                ));
            }
            (Some(ScaleAction::RaiseToMin { .. }), Some(Err(e))) => {
                tracing::warn!(%target, error = %e, "cannot raise the target to minReplicaCount");
            }
            _ => {}
        }
        let mut last_active = None;
        let mut last_active_time = None;
        if touch {
            last_active = Some(self.now);
            let stale = self
                .persisted_active
                .is_none_or(|p| self.now.duration_since(p) > LAST_ACTIVE_PERSIST_EVERY);
            if did_scale || stale {
                last_active_time = Some(Time(self.now));
            }
        }
        Finished {
            events,
            status: SoStatus::Polled {
                last_active_time,
                ready: self.decision.ready,
                active: self.decision.active,
                health: self.health,
                fallback_active: self.fallback_active,
                activity: self.activity,
            },
            last_active,
        }
    }
}

/// Decides a poll of `so` from its readings, the failure counts and last activity remembered,
/// the target's replicas (or why they are unknown) and the time.
pub fn plan(
    so: &ScaledObject,
    readings: &[Reading],
    memory: &Memory,
    current: Result<(i32, String), &IoError>,
    now: Timestamp,
) -> Plan {
    let fallback = crate::fallback::valid(so.spec.fallback.as_ref());
    let mut failures = memory.failures.clone();
    let mut values = Vec::new();
    let mut events = Vec::new();
    let mut is_active = false;
    let mut is_error = false;
    let mut fallback_active = false;
    let mut activity = BTreeMap::new();
    let mut active_metrics: Vec<String> = Vec::new();
    // As before a scale, fallback sizes itself on the replicas it could read, else 0.
    let replicas_for_fallback = current.as_ref().map_or(0, |(c, _)| *c);
    for reading in readings {
        let metric = reading.metric.as_str();
        match &reading.result {
            Ok((read, active)) => {
                failures.insert(metric.to_string(), 0);
                values.extend(read.iter().map(|v| (v.metric_name.clone(), v.value)));
                if *active {
                    active_metrics.push(metric.to_string());
                }
                is_active |= active;
                activity.insert(
                    metric.to_string(),
                    TriggerActivityStatus {
                        is_active: Some(*active),
                    },
                );
            }
            Err(e) => {
                let count = failures.entry(metric.to_string()).or_insert(0);
                *count = count.saturating_add(1);
                let count = *count;
                tracing::warn!(object = %so.name_any(), %metric, failures = count, error = %e, "scaler failed");
                events.push(Event::warning(EventReason::KedaScalerFailed, e.to_string()));
                match fallback.filter(|f| crate::fallback::applies(f, count)) {
                    Some(f) => {
                        // Past the threshold: serve target × R and count as active.
                        let r = crate::fallback::replicas(f, replicas_for_fallback);
                        let value = crate::fallback::metric_value(reading.spec.target().value, r);
                        values.push((metric.to_string(), value));
                        is_active = true;
                        fallback_active = true;
                        active_metrics.push(metric.to_string());
                        activity.insert(
                            metric.to_string(),
                            TriggerActivityStatus {
                                is_active: Some(true),
                            },
                        );
                    }
                    None => is_error = true,
                }
            }
        }
    }
    // Only cpu/memory triggers: the HPA scales; KEDA counts the object as active.
    if readings.is_empty() && !is_error {
        is_active = true;
    }
    let health = fallback.map(|_| failures.clone());
    let step = match current {
        Err(e @ IoError::Target(TargetError::Read(_))) => {
            Step::Status(SoStatus::ReplicasUnknown(e.to_string()))
        }
        Err(e) => {
            tracing::warn!(object = %so.name_any(), error = %e, "cannot resolve the scale target");
            Step::Skip
        }
        Ok((current, target)) => {
            let persisted_active = so
                .status
                .as_ref()
                .and_then(|s| s.last_active_time.as_ref())
                .map(|t| t.0);
            let annotations = so.annotations();
            let input = ScaleInput {
                is_active,
                force_activation: crate::pause::flag(annotations, annotations::FORCE_ACTIVATION),
                is_error,
                current_replicas: current,
                min_replicas: so.spec.min_replica_count(),
                idle_replicas: so.spec.idle_replica_count,
                fallback_replicas: so.spec.fallback.as_ref().map(|f| f.replicas),
                paused_scale_in: crate::pause::flag(annotations, annotations::PAUSED_SCALE_IN),
                paused_scale_out: crate::pause::flag(annotations, annotations::PAUSED_SCALE_OUT),
                last_active_time: memory.last_active.max(persisted_active),
                creation_time: so.metadata.creation_timestamp.as_ref().map(|t| t.0),
                cooldown_period: SignedDuration::from_secs(i64::from(so.spec.cooldown_period())),
                initial_cooldown_period: SignedDuration::from_secs(i64::from(
                    so.spec.initial_cooldown_period(),
                )),
                now,
            };
            let cause = if is_active {
                format!("triggered by {}", active_metrics.join(";"))
            } else {
                "caused by forced activation annotation".to_string()
            };
            Step::Scale(ScalePlan {
                decision: executor::decide(&input),
                current,
                target,
                cause,
                now,
                persisted_active,
                health,
                fallback_active,
                activity,
            })
        }
    };
    Plan {
        failures,
        values,
        events,
        step,
    }
}

/// Carries out `plan`'s writes; returns the new in-memory `lastActiveTime` when it moved.
pub async fn apply<I: ReplicaIo<Status = SoStatus>>(plan: Plan, io: &I) -> Option<Timestamp> {
    for event in plan.events {
        io.event(event).await;
    }
    let (status, last_active) = match plan.step {
        Step::Skip => return None,
        Step::Status(status) => (status, None),
        Step::Scale(scale) => {
            let scaled = match scale.decision.action {
                Some(
                    ScaleAction::Activate { to }
                    | ScaleAction::Deactivate { to }
                    | ScaleAction::RaiseToMin { to },
                ) => Some(io.set_replicas(to).await.map_err(|e| e.to_string())),
                None => None,
            };
            let finished = scale.finish(scaled);
            for event in finished.events {
                io.event(event).await;
            }
            (finished.status, finished.last_active)
        }
    };
    if let Err(e) = io.patch_status(&status).await {
        tracing::warn!(error = %e, "status update failed");
    }
    last_active
}

/// One poll after the scalers are known: read, plan, apply. Returns the memory to keep and the
/// readings (for the scaler metrics) and cache values.
pub async fn poll_once<I: ReplicaIo<Status = SoStatus>>(
    so: &ScaledObject,
    set: &TriggerSet,
    memory: &Memory,
    io: &I,
    now: Timestamp,
) -> (Memory, Vec<Reading>, Vec<(String, f64)>) {
    let readings = read::read_all(set, Metrics::All).await;
    let current = io.current_replicas().await;
    let current = match &current {
        Ok(c) => Ok((*c, io.target())),
        Err(e) => Err(e),
    };
    let mut plan = plan(so, &readings, memory, current, now);
    let values = std::mem::take(&mut plan.values);
    let mut next = Memory {
        last_active: memory.last_active,
        failures: plan.failures.clone(),
    };
    if let Some(t) = apply(plan, io).await {
        next.last_active = Some(t);
    }
    (next, readings, values)
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("no matching metrics found for {0}")]
    NotFound(String),
    #[error("{0}")]
    Scaler(#[from] ScalerError),
}

/// The ScaledObject executor: its objects' memory, the metric cache and the scaler metrics.
pub struct ScaledObjects {
    client: kube::Client,
    events: Events,
    store: Store<ScaledObject>,
    triggers: Arc<TriggerSets>,
    scheduler: Scheduler,
    pub cache: Arc<MetricCache>,
    pub scaler_metrics: Arc<ScalerMetrics>,
    objects: Mutex<HashMap<ObjectKey, ObjectState>>,
}

impl ScaledObjects {
    pub fn new(
        client: kube::Client,
        events: Events,
        store: Store<ScaledObject>,
        triggers: Arc<TriggerSets>,
        scheduler: Scheduler,
    ) -> Self {
        Self {
            client,
            events,
            store,
            triggers,
            scheduler,
            cache: Arc::new(MetricCache::default()),
            scaler_metrics: Arc::default(),
            objects: Mutex::new(HashMap::new()),
        }
    }

    pub fn key_of(so: &ScaledObject) -> ObjectKey {
        super::key_of(so)
    }

    pub fn auth(&self) -> &Arc<crate::auth::AuthResolver> {
        self.triggers.auth()
    }

    fn latest(&self, key: &ObjectKey) -> Option<Arc<ScaledObject>> {
        self.store
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
    }

    /// The object's scalers (see [`TriggerSets::get`]).
    pub async fn scalers_for(&self, so: &ScaledObject) -> Result<Arc<TriggerSet>, ScalerError> {
        self.triggers.get(so, &self.events).await
    }

    /// Starts (or updates) the object's loop; true when no loop existed before.
    pub fn register(&self, so: &ScaledObject, target: ScaleTarget) -> bool {
        let key = Self::key_of(so);
        let new = match self.objects.lock() {
            Ok(mut objects) => {
                let new = !objects.contains_key(&key);
                objects.entry(key.clone()).or_default().target = Some(target);
                new
            }
            Err(_) => false,
        };
        let types = so.spec.triggers.iter().map(|t| t.r#type.clone()).collect();
        self.scaler_metrics
            .register(&key.namespace, &key.name, types);
        let uid = so.uid().unwrap_or_else(|| so.name_any());
        self.scheduler.upsert(key, so.polling_interval(), &uid);
        new
    }

    /// Stops the object's loop and releases its scalers; true when it had a loop or scalers.
    pub async fn unregister(&self, key: &ObjectKey) -> bool {
        self.scheduler.remove(key.clone());
        let had_loop = self
            .objects
            .lock()
            .ok()
            .and_then(|mut o| o.remove(key))
            .is_some();
        self.cache.remove_object(&key.namespace, &key.name);
        self.scaler_metrics.remove_object(&key.namespace, &key.name);
        let had_scalers = self.triggers.remove(key).await;
        had_loop || had_scalers
    }

    /// Forgets every object (at shutdown; the scalers are closed by the cache).
    pub fn forget_all(&self) {
        let keys: Vec<ObjectKey> = self
            .objects
            .lock()
            .map(|mut o| o.drain().map(|(k, _)| k).collect())
            .unwrap_or_default();
        for key in keys {
            self.scheduler.remove(key.clone());
            self.cache.remove_object(&key.namespace, &key.name);
            self.scaler_metrics.remove_object(&key.namespace, &key.name);
        }
    }

    pub async fn poll(&self, key: ObjectKey) {
        let Some(so) = self.latest(&key) else {
            self.unregister(&key).await;
            return;
        };
        if so.metadata.deletion_timestamp.is_some() || crate::pause::is_fully_paused(&so) {
            return;
        }
        let set = match self.scalers_for(&so).await {
            Ok(c) => c,
            Err(e) => {
                // As KEDA: no scaling and no status write when the scalers cannot be built.
                tracing::warn!(object = %key, error = %e, "cannot build scalers; skipping poll");
                return;
            }
        };
        let (memory, target) = self
            .objects
            .lock()
            .ok()
            .and_then(|o| o.get(&key).map(|s| (s.memory.clone(), s.target.clone())))
            .unwrap_or_default();
        let io = KubeReplicaIo {
            client: &self.client,
            events: &self.events,
            so: &so,
            target: OnceCell::new_with(target),
        };
        let (memory, readings, values) = poll_once(&so, &set, &memory, &io, Timestamp::now()).await;
        self.record(&key, &set, &readings);
        for (metric, value) in values {
            self.cache.store(&key.namespace, &key.name, &metric, value);
        }
        if let Ok(mut objects) = self.objects.lock()
            && let Some(state) = objects.get_mut(&key)
        {
            state.memory = memory;
        }
    }

    fn record(&self, key: &ObjectKey, set: &TriggerSet, readings: &[Reading]) {
        for reading in readings {
            let Some(trigger) = set.triggers.get(reading.trigger) else {
                continue;
            };
            let labels = ScalerLabels {
                namespace: key.namespace.clone(),
                metric: reading.metric.clone(),
                scaled_object: key.name.clone(),
                scaler: scaler_label(&trigger.trigger_type, trigger.name.as_deref()),
                trigger_index: trigger.index,
                type_: "scaledobject",
            };
            match &reading.result {
                Ok((_, active)) => self.scaler_metrics.record_success(
                    labels,
                    reading.value(),
                    reading.elapsed,
                    *active,
                ),
                Err(_) => self.scaler_metrics.record_error(labels),
            }
        }
    }

    /// The HPA's read path: a fresh cached value, or a live read when there is none.
    pub async fn read_metric(
        &self,
        namespace: &str,
        name: &str,
        metric: &str,
    ) -> Result<Vec<(String, f64)>, ReadError> {
        let key = ObjectKey::new(ObjectKind::ScaledObject, namespace, name);
        let so = self
            .latest(&key)
            .ok_or_else(|| ReadError::NotFound(metric.to_string()))?;
        let interval = so.polling_interval();
        if let Some(sample) = self.cache.fresh(
            namespace,
            name,
            metric,
            interval * 2 + Duration::from_secs(1),
        ) {
            return Ok(vec![(metric.to_string(), sample.value)]);
        }
        let set = self.scalers_for(&so).await?;
        for trigger in &set.triggers {
            for spec in &trigger.specs {
                let Some(spec_name) = spec.external_metric_name() else {
                    continue;
                };
                if !spec_name.eq_ignore_ascii_case(metric) {
                    continue;
                }
                return match read::read(&trigger.scaler, spec_name).await {
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

/// [`ReplicaIo`] against the cluster for one poll of one ScaledObject.
struct KubeReplicaIo<'a> {
    client: &'a kube::Client,
    events: &'a Events,
    so: &'a ScaledObject,
    /// The registered target, else resolved on first use.
    target: OnceCell<ScaleTarget>,
}

impl KubeReplicaIo<'_> {
    async fn resolved(&self) -> Result<&ScaleTarget, IoError> {
        Ok(self
            .target
            .get_or_try_init(|| ScaleTarget::resolve(self.client, self.so))
            .await?)
    }
}

impl ScaleIo for KubeReplicaIo<'_> {
    type Status = SoStatus;

    async fn patch_status(&self, patch: &SoStatus) -> Result<(), IoError> {
        let api: Api<ScaledObject> = Api::namespaced(
            self.client.clone(),
            &self.so.namespace().unwrap_or_default(),
        );
        status::update(&api, &self.so.name_any(), self.so.status.as_ref(), |s| {
            patch.apply(s)
        })
        .await?;
        Ok(())
    }

    async fn event(&self, event: Event) {
        event.publish(self.events, self.so).await;
    }
}

impl ReplicaIo for KubeReplicaIo<'_> {
    async fn current_replicas(&self) -> Result<i32, IoError> {
        let target = self.resolved().await?;
        Ok(target.replicas(self.client).await?)
    }

    async fn set_replicas(&self, replicas: i32) -> Result<(), IoError> {
        let target = self.resolved().await?;
        Ok(target.set_replicas(self.client, replicas).await?)
    }

    fn target(&self) -> String {
        self.target
            .get()
            .map(|t| format!("{} {}/{}", t.kind_string(), t.namespace, t.name))
            .unwrap_or_default()
    }
}
