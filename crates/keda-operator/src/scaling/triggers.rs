//! The one scalers cache for both kinds: per object, the scalers of its triggers at one
//! generation ([`TriggerSet`]), rebuilt when the generation changes or, once per polling interval,
//! when re-resolved credentials differ (a rotated Secret applies within one interval). A backend
//! error during a rebuild keeps the scalers that exist. [`trigger_config`] is the one mapping from
//! a trigger in a spec to what a scaler is built from; `keda-rs validate` uses it too.

use keda_api::names::EventReason;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keda_api::common::ScaleTriggers;
use keda_scalers::{MetricSpec, MetricTargetKind, Pools, Registry, ScalerConfig, ScalerError};

use super::Scalable;
use super::read::ScalerRef;
use super::scheduler::{ObjectKey, ObjectKind, Scheduler};
use crate::auth::{self, AuthResolver};
use crate::events::Events;

/// One trigger's scaler and the metrics it feeds the HPA.
pub struct TriggerScaler {
    pub index: usize,
    pub trigger_type: String,
    pub name: Option<String>,
    pub scaler: ScalerRef,
    pub specs: Vec<MetricSpec>,
}

/// The scalers of one object at one generation.
pub struct TriggerSet {
    pub generation: Option<i64>,
    pub triggers: Vec<TriggerScaler>,
    /// What the scalers were built from, to notice changed credentials.
    configs: Vec<ScalerConfig>,
    /// Some trigger has a TriggerAuthentication or reads its target's env.
    needs_auth: bool,
    checked_at: Mutex<tokio::time::Instant>,
}

impl TriggerSet {
    /// A set of already built scalers (tests, and anything that builds scalers itself).
    pub fn new(generation: Option<i64>, triggers: Vec<TriggerScaler>) -> Self {
        Self {
            generation,
            triggers,
            configs: Vec::new(),
            needs_auth: false,
            checked_at: Mutex::new(tokio::time::Instant::now()),
        }
    }

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

    pub async fn close(&self) {
        for t in &self.triggers {
            t.scaler.close().await;
        }
    }
}

type Slot = Arc<tokio::sync::Mutex<Option<Arc<TriggerSet>>>>;

/// Every object's [`TriggerSet`], keyed by kind, namespace and name.
pub struct TriggerSets {
    registry: Registry,
    pools: Pools,
    auth: Arc<AuthResolver>,
    /// Push scalers' activity polls their object at once.
    scheduler: Scheduler,
    slots: Mutex<HashMap<ObjectKey, Slot>>,
}

impl TriggerSets {
    pub fn new(auth: Arc<AuthResolver>, scheduler: Scheduler, pools: Pools) -> Self {
        Self {
            registry: Registry::builtin(),
            pools,
            auth,
            scheduler,
            slots: Mutex::new(HashMap::new()),
        }
    }

    pub fn auth(&self) -> &Arc<AuthResolver> {
        &self.auth
    }

    fn slot(&self, key: &ObjectKey) -> Slot {
        match self.slots.lock() {
            Ok(mut slots) => slots.entry(key.clone()).or_default().clone(),
            Err(_) => Slot::default(),
        }
    }

    /// The object's scalers, built (or rebuilt after a generation change) on demand, each built
    /// scaler announced on `events`. Once per polling interval the triggers' credentials and
    /// environment are resolved again and the scalers rebuilt when they changed.
    pub async fn get<K: Scalable>(
        &self,
        object: &K,
        events: &Events,
    ) -> Result<Arc<TriggerSet>, ScalerError> {
        let key = super::key_of(object);
        let slot = self.slot(&key);
        let mut slot = slot.lock().await;
        let current = slot
            .as_ref()
            .filter(|c| c.generation == object.meta().generation)
            .cloned();
        if let Some(set) = &current
            && (!set.needs_auth || !set.recheck_due(object.polling_interval()))
        {
            return Ok(set.clone());
        }
        let configs = match self.configs(object).await {
            Ok(configs) => configs,
            // The apiserver or a secret store is unreachable: keep what works.
            Err(e) if e.is_backend() && slot.is_some() => {
                tracing::info!(error = %e, "cannot re-resolve trigger authentication; keeping the current scalers");
                return slot.clone().ok_or(e);
            }
            Err(e) => return Err(e),
        };
        if let Some(set) = &current
            && set.configs == configs
        {
            set.mark_checked();
            return Ok(set.clone());
        }
        if current.is_some() {
            tracing::info!(object = %key, "trigger authentication changed; rebuilding scalers");
        }
        let built = match self.build(object, &key, configs, events).await {
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
    async fn configs<K: Scalable>(&self, object: &K) -> Result<Vec<ScalerConfig>, ScalerError> {
        let key = super::key_of(object);
        let template = object.workload_template();
        let container = object.env_source_container();
        let triggers = object.triggers();
        let mut configs = Vec::with_capacity(triggers.len());
        for (index, trigger) in triggers.iter().enumerate() {
            let mut config = trigger_config(key.kind, trigger, index, &key.namespace, &key.name)?;
            if trigger.authentication_ref.is_some() || auth::needs_env(trigger) {
                let resolved = self
                    .auth
                    .resolve(&key.namespace, trigger, container, &template)
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

    async fn build<K: Scalable>(
        &self,
        object: &K,
        key: &ObjectKey,
        configs: Vec<ScalerConfig>,
        events: &Events,
    ) -> Result<TriggerSet, ScalerError> {
        let mut triggers: Vec<TriggerScaler> = Vec::with_capacity(configs.len());
        for (index, (trigger, config)) in object.triggers().iter().zip(&configs).enumerate() {
            let scaler = match self.registry.build(config, &self.pools).await {
                Ok(s) => s,
                Err(e) => {
                    for t in &triggers {
                        t.scaler.close().await;
                    }
                    return Err(e);
                }
            };
            self.watch_pushes(key, &scaler);
            let note = format!("Scaler {} is built.", trigger.r#type);
            events
                .normal(object, EventReason::KedaScalersStarted, note)
                .await;
            triggers.push(TriggerScaler {
                index,
                trigger_type: trigger.r#type.clone(),
                name: trigger.name.clone(),
                specs: scaler.metric_specs(),
                scaler,
            });
        }
        let needs_auth = object
            .triggers()
            .iter()
            .any(|t| t.authentication_ref.is_some() || auth::needs_env(t));
        Ok(TriggerSet {
            generation: object.meta().generation,
            triggers,
            configs,
            needs_auth,
            checked_at: Mutex::new(tokio::time::Instant::now()),
        })
    }

    /// A push scaler's `true` polls the object at once (KEDA requests a scale right away), so a
    /// scale from zero does not wait for the polling interval. `false` is left to polling.
    fn watch_pushes(&self, key: &ObjectKey, scaler: &ScalerRef) {
        // As before the shared runtime: only ScaledObjects react to pushes.
        if key.kind != ObjectKind::ScaledObject {
            return;
        }
        let scheduler = self.scheduler.clone();
        let key = key.clone();
        scaler.watch_activity(Arc::new(move |active| {
            if active {
                tracing::debug!(object = %key, "push scaler reported active; polling now");
                scheduler.poll_now(key.clone());
            }
        }));
    }

    /// Drops the object's scalers, closing them in the background; the next use rebuilds them.
    pub async fn invalidate(&self, key: &ObjectKey) {
        let slot = self.slot(key);
        let old = slot.lock().await.take();
        if let Some(old) = old {
            tokio::spawn(async move { old.close().await });
        }
    }

    /// Forgets the object and closes its scalers; true when it had any.
    pub async fn remove(&self, key: &ObjectKey) -> bool {
        let slot = self.slots.lock().ok().and_then(|mut s| s.remove(key));
        let Some(slot) = slot else {
            return false;
        };
        let old = slot.lock().await.take();
        match old {
            Some(old) => {
                old.close().await;
                true
            }
            None => false,
        }
    }

    /// Closes every object's scalers.
    pub async fn shutdown(&self) {
        let keys: Vec<ObjectKey> = self
            .slots
            .lock()
            .map(|s| s.keys().cloned().collect())
            .unwrap_or_default();
        for key in keys {
            self.remove(&key).await;
        }
    }
}

/// What a scaler is built from, for trigger `index` of an object of `kind`, before
/// authentication and environment are resolved. ScaledObject triggers carry their `metricType`
/// (an unknown one is a config error: the HPA would refuse it); the ScaledJob CRD prunes
/// `metricType`, so its triggers are always `AverageValue` and act as metric sources.
pub fn trigger_config(
    kind: ObjectKind,
    trigger: &ScaleTriggers,
    index: usize,
    namespace: &str,
    name: &str,
) -> Result<ScalerConfig, ScalerError> {
    let mut config = ScalerConfig {
        trigger_index: index,
        trigger_type: trigger.r#type.clone(),
        trigger_name: trigger.name.clone(),
        metadata: trigger.metadata.clone(),
        auth_params: BTreeMap::new(),
        resolved_env: BTreeMap::new(),
        pod_identity: None,
        metric_type: MetricTargetKind::AverageValue,
        scalable_object_namespace: namespace.to_string(),
        scalable_object_name: name.to_string(),
        as_metric_source: kind == ObjectKind::ScaledJob,
    };
    if kind == ObjectKind::ScaledObject
        && let Some(metric_type) = trigger.metric_type.as_deref()
    {
        config.metric_type =
            metric_type
                .parse()
                .map_err(|e: keda_scalers::config::UnknownMetricType| {
                    ScalerError::config(config.trigger_label(), "metricType", e.to_string())
                })?;
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trigger(metric_type: Option<&str>) -> ScaleTriggers {
        serde_json::from_value(serde_json::json!({
            "type": "redis", "metadata": {"listName": "q"}, "metricType": metric_type,
        }))
        .unwrap()
    }

    #[test]
    fn metric_type_maps_and_an_unknown_one_is_a_config_error() {
        let so = ObjectKind::ScaledObject;
        let c = trigger_config(so, &trigger(None), 0, "ns", "o").unwrap();
        assert_eq!(c.metric_type, MetricTargetKind::AverageValue);
        assert!(!c.as_metric_source);
        let c = trigger_config(so, &trigger(Some("Value")), 1, "ns", "o").unwrap();
        assert_eq!(c.metric_type, MetricTargetKind::Value);
        assert_eq!(c.trigger_index, 1);
        let e = trigger_config(so, &trigger(Some("Bogus")), 0, "ns", "o").unwrap_err();
        assert_eq!(e.parameter(), Some("metricType"));
        assert!(e.to_string().contains("Bogus"), "{e}");
    }

    #[test]
    fn scaled_job_triggers_are_metric_sources_at_average_value() {
        let c =
            trigger_config(ObjectKind::ScaledJob, &trigger(Some("Value")), 0, "ns", "j").unwrap();
        assert_eq!(c.metric_type, MetricTargetKind::AverageValue);
        assert!(c.as_metric_source);
        assert_eq!(c.scalable_object_name, "j");
    }
}
