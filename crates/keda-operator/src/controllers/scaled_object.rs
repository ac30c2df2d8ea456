//! The ScaledObject reconciler: finalizer, conditions, target check, HPA, scale-loop registration,
//! pause, deletion. A short pipeline; each failing step becomes `Ready=False` with
//! `ScaledObjectCheckFailed` and a message naming the step.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use keda_api::names::conditions::{ACTIVE, FALLBACK, PAUSED, READY};
use keda_api::names::{ConditionStatus, EventReason, FINALIZER, labels};
use keda_api::rules::scaled_object::{check_replica_bounds, check_triggers};
use keda_api::{ScaledObject, ScaledObjectStatus};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Resource, ResourceExt};

use crate::events::Events;
use crate::hpa;
use crate::pause;
use crate::scaling::ScaledObjects;
use crate::status;
use crate::target::ScaleTarget;

pub struct Context {
    pub client: kube::Client,
    pub events: Events,
    pub loops: Arc<ScaledObjects>,
    pub version: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{step}: {message}")]
    Check { step: &'static str, message: String },
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(String),
}

impl Error {
    fn check(step: &'static str, e: impl std::fmt::Display) -> Self {
        Self::Check {
            step,
            message: e.to_string(),
        }
    }
}

pub async fn reconcile(so: Arc<ScaledObject>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = so.namespace().unwrap_or_default();
    let api: Api<ScaledObject> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&api, FINALIZER, so, |event| async {
        match event {
            Finalizer::Apply(so) => apply(&so, &ctx).await,
            Finalizer::Cleanup(so) => cleanup(&so, &ctx).await,
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer(other.to_string()),
    })
}

pub fn error_policy(_so: Arc<ScaledObject>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::debug!(%error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(10))
}

async fn apply(so: &ScaledObject, ctx: &Context) -> Result<Action, Error> {
    let api: Api<ScaledObject> =
        Api::namespaced(ctx.client.clone(), &so.namespace().unwrap_or_default());
    let name = so.name_any();
    let before = so.status.clone();
    let mut desired = before.clone().unwrap_or_default();
    status::ensure_initial(&mut desired);
    let was_ready = status::is_true(before.as_ref(), READY);

    // KEDA drops an object's scaler series on every reconcile; the loop fills them again.
    let (ns, so_name) = (so.namespace().unwrap_or_default(), so.name_any());
    ctx.loops.scaler_metrics.clear_object(&ns, &so_name);
    ctx.loops
        .scaler_metrics
        .set_paused(&ns, &so_name, pause::is_paused(so));
    let outcome = reconcile_steps(so, ctx, &mut desired).await;
    match &outcome {
        Ok(Steps::Paused) => {
            status::set(
                &mut desired,
                READY,
                ConditionStatus::True,
                "ScaledObjectReady",
                "ScaledObject is paused",
            );
        }
        Ok(Steps::Running { new_loop }) => {
            if !was_ready {
                ctx.events
                    .normal(
                        so,
                        EventReason::ScaledObjectReady,
                        "ScaledObject is ready for scaling",
                    )
                    .await;
            }
            if *new_loop {
                ctx.events
                    .publish(
                        so,
                        kube::runtime::events::EventType::Normal,
                        EventReason::KedaScalersStarted,
                        "ScalersWatchStarted",
                        "Started scalers watch",
                    )
                    .await;
            }
            // The scale loop owns Ready once running; only lift a failed/unknown Ready here.
            if !was_ready {
                status::set(
                    &mut desired,
                    READY,
                    ConditionStatus::True,
                    "ScaledObjectReady",
                    "ScaledObject is defined correctly and is ready for scaling",
                );
            }
        }
        Err(e) => {
            let message = e.to_string();
            status::set(
                &mut desired,
                READY,
                ConditionStatus::False,
                "ScaledObjectCheckFailed",
                &message,
            );
            status::set(
                &mut desired,
                ACTIVE,
                ConditionStatus::Unknown,
                "UnknownState",
                "ScaledObject check failed",
            );
            ctx.events
                .warning(so, EventReason::ScaledObjectCheckFailed, message)
                .await;
        }
    }
    if so.spec.fallback.is_none() {
        status::set(
            &mut desired,
            FALLBACK,
            ConditionStatus::False,
            "NoFallbackFound",
            "No fallbacks are active on this scaled object",
        );
    }
    // Only the fields this reconcile owns go over the fresh object, so a concurrent poll's
    // write (Active, lastActiveTime, triggersActivity) is never lost.
    let result = status::update(&api, &name, before.as_ref(), |s| {
        merge_reconciled(s, &desired)
    })
    .await;
    if let Err(e) = result {
        ctx.events
            .warning(so, EventReason::ScaledObjectUpdateFailed, e.to_string())
            .await;
        return Err(e.into());
    }
    outcome.map(|_| Action::await_change())
}

/// Copies what a reconcile decides onto `status`, leaving what the scale loop writes alone
/// except where the reconcile takes a stand (Ready, and Active when the check failed).
fn merge_reconciled(status: &mut ScaledObjectStatus, decided: &ScaledObjectStatus) {
    let loop_conditions = [ACTIVE];
    let mut conditions = status.conditions.clone().unwrap_or_default();
    for c in decided.conditions.iter().flatten() {
        let owned_by_loop = loop_conditions.contains(&c.r#type.as_str())
            && (c.reason.as_deref() != Some("UnknownState"))
            && conditions.iter().any(|x| x.r#type == c.r#type);
        if owned_by_loop {
            continue;
        }
        match conditions.iter_mut().find(|x| x.r#type == c.r#type) {
            Some(x) => *x = c.clone(),
            None => conditions.push(c.clone()),
        }
    }
    status.conditions = Some(conditions);
    status.scale_target_kind = decided.scale_target_kind.clone();
    status.scale_target_gvkr = decided.scale_target_gvkr.clone();
    if status.original_replica_count.is_none() {
        status.original_replica_count = decided.original_replica_count;
    }
    status.paused_replica_count = decided.paused_replica_count;
    status.triggers_types = decided.triggers_types.clone();
    status.authentications_types = decided.authentications_types.clone();
    status.hpa_name = decided.hpa_name.clone();
    status.external_metric_names = decided.external_metric_names.clone();
    status.resource_metric_names = decided.resource_metric_names.clone();
}

enum Steps {
    Paused,
    Running { new_loop: bool },
}

async fn reconcile_steps(
    so: &ScaledObject,
    ctx: &Context,
    status: &mut ScaledObjectStatus,
) -> Result<Steps, Error> {
    let namespace = so.namespace().unwrap_or_default();
    let name = so.name_any();
    let key = ScaledObjects::key_of(so);

    // The reference exists whatever the rest of the object looks like.
    record_references(ctx, so, true).await;
    if handle_pause(so, ctx, status).await? {
        return Ok(Steps::Paused);
    }
    if so.spec.scale_target_ref.name.is_empty() {
        return Err(Error::check(
            "ScaledObject doesn't have correct scaleTargetRef specification",
            "name is empty",
        ));
    }
    ensure_name_label(so, ctx).await?;

    let target = ScaleTarget::resolve(&ctx.client, so).await.map_err(|e| {
        Error::check(
            "ScaledObject doesn't have correct scaleTargetRef specification",
            e,
        )
    })?;
    let scale = match target.check(&ctx.client).await {
        Ok(scale) => scale,
        Err(e) => {
            ctx.loops.unregister(&key).await;
            return Err(Error::check(
                "ScaledObject doesn't have correct scaleTargetRef specification",
                e,
            ));
        }
    };
    status.scale_target_kind = Some(target.kind_string());
    status.scale_target_gvkr = Some(target.gvkr.clone());
    if status.original_replica_count.is_none() {
        status.original_replica_count = scale.spec.as_ref().and_then(|s| s.replicas).or(Some(0));
    }
    if !pause::is_fully_paused(so) {
        status.paused_replica_count = None;
    }

    check_replica_bounds(so).map_err(|e| {
        Error::check(
            "ScaledObject doesn't have correct replica count bounds",
            e.message,
        )
    })?;
    check_triggers(so).map_err(|e| {
        Error::check(
            "ScaledObject doesn't have correct triggers specification",
            e.message,
        )
    })?;
    status.triggers_types = Some(unique_joined(
        so.spec.triggers.iter().map(|t| t.r#type.clone()),
    ));
    let auth_names: Vec<String> = so
        .spec
        .triggers
        .iter()
        .filter_map(|t| t.authentication_ref.as_ref().map(|a| a.name.clone()))
        .collect();
    status.authentications_types =
        (!auth_names.is_empty()).then(|| unique_joined(auth_names.into_iter()));

    let scalers = ctx.loops.scalers_for(so).await.map_err(|e| {
        Error::check(
            "failed to ensure HPA is correctly created for ScaledObject",
            e,
        )
    })?;
    let specs = scalers.metric_specs();
    let metrics = hpa::to_hpa_metrics(&name, &specs);
    let desired_hpa = hpa::desired_hpa(so, &target.gvkr, metrics, &ctx.version).map_err(|e| {
        Error::check(
            "failed to ensure HPA is correctly created for ScaledObject",
            e,
        )
    })?;
    let hpa_name = desired_hpa.metadata.name.clone().unwrap_or_default();
    ensure_hpa(ctx, &namespace, status.hpa_name.as_deref(), &desired_hpa)
        .await
        .map_err(|e| {
            Error::check(
                "failed to ensure HPA is correctly created for ScaledObject",
                e,
            )
        })?;
    status.hpa_name = Some(hpa_name);
    status.external_metric_names = Some(hpa::external_metric_names(&specs));
    status.resource_metric_names = Some(hpa::resource_metric_names(&specs));

    let new_loop = ctx.loops.register(so, target);
    Ok(Steps::Running { new_loop })
}

/// Full pause deletes the HPA, stops the loop and pins the replicas; partial pauses only mark
/// the condition. Returns true when the object is fully paused.
async fn handle_pause(
    so: &ScaledObject,
    ctx: &Context,
    status: &mut ScaledObjectStatus,
) -> Result<bool, Error> {
    let was_paused = status::is_true(so.status.as_ref(), PAUSED);
    if pause::is_paused(so) {
        if !was_paused {
            status::set(
                status,
                PAUSED,
                ConditionStatus::True,
                "ScaledObjectPaused",
                "ScaledObject is paused",
            );
            ctx.events
                .normal(
                    so,
                    EventReason::ScaledObjectPaused,
                    "ScaledObject is paused",
                )
                .await;
        }
    } else if was_paused {
        status::set(
            status,
            PAUSED,
            ConditionStatus::False,
            "ScaledObjectUnpaused",
            "pause annotation removed for ScaledObject",
        );
        status.paused_replica_count = None;
        ctx.events
            .normal(
                so,
                EventReason::ScaledObjectUnpaused,
                "ScaledObject is unpaused",
            )
            .await;
    }
    if !pause::is_fully_paused(so) {
        return Ok(false);
    }
    let key = ScaledObjects::key_of(so);
    if ctx.loops.unregister(&key).await {
        ctx.events
            .normal(so, EventReason::KedaScalersStopped, "Stopped scalers watch")
            .await;
    }
    let namespace = so.namespace().unwrap_or_default();
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client.clone(), &namespace);
    let hpa_name = status.hpa_name.clone().unwrap_or_else(|| hpa::hpa_name(so));
    match hpas.delete(&hpa_name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    if let Some(replicas) = pause::paused_replicas(so) {
        let replicas = replicas.map_err(|v| {
            Error::check(
                "ScaledObject has an invalid paused-replicas annotation",
                format!("{v:?} is not an integer"),
            )
        })?;
        let target = ScaleTarget::resolve(&ctx.client, so).await.map_err(|e| {
            Error::check(
                "ScaledObject doesn't have correct scaleTargetRef specification",
                e,
            )
        })?;
        let current = target.replicas(&ctx.client).await.map_err(|e| {
            Error::check(
                "ScaledObject doesn't have correct scaleTargetRef specification",
                e,
            )
        })?;
        if current != replicas {
            target
                .set_replicas(&ctx.client, replicas)
                .await
                .map_err(|e| Error::check("failed to scale to paused replicas", e))?;
        }
        status.paused_replica_count = Some(replicas);
    }
    Ok(true)
}

async fn ensure_name_label(so: &ScaledObject, ctx: &Context) -> Result<(), Error> {
    let name = so.name_any();
    if so.labels().get(labels::SCALED_OBJECT_NAME) == Some(&name) {
        return Ok(());
    }
    let api: Api<ScaledObject> =
        Api::namespaced(ctx.client.clone(), &so.namespace().unwrap_or_default());
    let patch = serde_json::json!({"metadata": {"labels": {labels::SCALED_OBJECT_NAME: name}}});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

async fn ensure_hpa(
    ctx: &Context,
    namespace: &str,
    previous_name: Option<&str>,
    desired: &HorizontalPodAutoscaler,
) -> Result<(), kube::Error> {
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client.clone(), namespace);
    let name = desired.metadata.name.clone().unwrap_or_default();
    if let Some(previous) = previous_name.filter(|p| *p != name) {
        // The HPA was renamed in the spec: the old one goes.
        match hpas.delete(previous, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    match hpas.get_opt(&name).await? {
        None => {
            hpas.create(&PostParams::default(), desired).await?;
        }
        Some(current) => {
            if hpa::needs_update(&current, desired) {
                let mut merged = desired.clone();
                // Keep labels/annotations others added (KEDA leaves extras in place).
                let mut labels: BTreeMap<String, String> =
                    current.metadata.labels.clone().unwrap_or_default();
                labels.extend(desired.metadata.labels.clone().unwrap_or_default());
                merged.metadata.labels = Some(labels);
                if desired.metadata.annotations.is_some() {
                    let mut annotations = current.metadata.annotations.clone().unwrap_or_default();
                    annotations.extend(desired.metadata.annotations.clone().unwrap_or_default());
                    merged.metadata.annotations = Some(annotations);
                }
                merged.metadata.resource_version = current.metadata.resource_version.clone();
                hpas.replace(&name, &PostParams::default(), &merged).await?;
            }
        }
    }
    Ok(())
}

async fn record_references(ctx: &Context, so: &ScaledObject, present: bool) {
    crate::controllers::trigger_auth::record_references(
        &ctx.client,
        &so.namespace().unwrap_or_default(),
        &so.spec.triggers,
        crate::controllers::trigger_auth::Referrer::ScaledObject,
        &so.name_any(),
        present,
    )
    .await;
}

async fn cleanup(so: &ScaledObject, ctx: &Context) -> Result<Action, Error> {
    let key = ScaledObjects::key_of(so);
    record_references(ctx, so, false).await;
    if ctx.loops.unregister(&key).await {
        ctx.events
            .normal(so, EventReason::KedaScalersStopped, "Stopped scalers watch")
            .await;
    }
    let restore = so
        .spec
        .advanced
        .as_ref()
        .and_then(|a| a.restore_to_original_replica_count)
        .unwrap_or(false);
    let original = so.status.as_ref().and_then(|s| s.original_replica_count);
    if let (true, Some(original)) = (restore, original)
        && let Ok(target) = ScaleTarget::resolve(&ctx.client, so).await
    {
        match target.set_replicas(&ctx.client, original).await {
            Ok(()) => {}
            // The target may be gone already; nothing to restore then.
            Err(e) => tracing::info!(object = %key, error = %e, "not restoring replicas"),
        }
    }
    ctx.events
        .warning(
            so,
            EventReason::ScaledObjectDeleted,
            "ScaledObject was deleted",
        )
        .await;
    Ok(Action::await_change())
}

fn unique_joined(items: impl Iterator<Item = String>) -> String {
    let mut seen = Vec::new();
    for item in items {
        if !seen.contains(&item) {
            seen.push(item);
        }
    }
    seen.join(",")
}

/// Reference to the owning object, for tests and tools.
pub fn object_ref(so: &ScaledObject) -> k8s_openapi::api::core::v1::ObjectReference {
    so.object_ref(&())
}
