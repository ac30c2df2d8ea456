//! The ScaledJob reconciler (spec §5.1): finalizer, initial conditions, jobTargetRef and
//! trigger checks, pause, rollout of Jobs from older generations, scalers, and a restart of
//! the poll loop on every reconcile. A failing check is `Ready=False`, `ScaledJobCheckFailed`,
//! with a message naming the field, and the loop stops so no Job is created.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use keda_api::names::conditions::{ACTIVE, PAUSED, READY};
use keda_api::names::{ConditionStatus, EventReason, FINALIZER, annotations};
use keda_api::rules::scaled_job as checks;
use keda_api::scaled_job::{PropagationPolicy, RolloutStrategy};
use keda_api::{ScaledJob, ScaledJobStatus};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PropagationPolicy as Propagation};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};

use crate::events::Events;
use crate::scaled_job::{job, status as sj_status};
use crate::scaling::ScaledJobs;

pub struct Context {
    pub client: kube::Client,
    pub events: Events,
    pub loops: Arc<ScaledJobs>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Check(String),
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(String),
}

pub async fn reconcile(sj: Arc<ScaledJob>, ctx: Arc<Context>) -> Result<Action, Error> {
    let api: Api<ScaledJob> =
        Api::namespaced(ctx.client.clone(), &sj.namespace().unwrap_or_default());
    finalizer(&api, FINALIZER, sj, |event| async {
        match event {
            Finalizer::Apply(sj) => apply(&sj, &ctx).await,
            Finalizer::Cleanup(sj) => cleanup(&sj, &ctx).await,
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer(other.to_string()),
    })
}

pub fn error_policy(_sj: Arc<ScaledJob>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::debug!(%error, "scaled job reconcile failed; retrying");
    Action::requeue(Duration::from_secs(10))
}

enum Outcome {
    Paused,
    Running,
}

async fn apply(sj: &ScaledJob, ctx: &Context) -> Result<Action, Error> {
    let api: Api<ScaledJob> =
        Api::namespaced(ctx.client.clone(), &sj.namespace().unwrap_or_default());
    let before = sj.status.clone();
    let mut desired = before.clone().unwrap_or_default();
    sj_status::ensure_initial(&mut desired);
    let was_ready = sj_status::is(before.as_ref(), READY, ConditionStatus::True);
    let outcome = steps(sj, ctx, &mut desired).await;
    match &outcome {
        Ok(Outcome::Paused) => sj_status::set(
            &mut desired,
            READY,
            ConditionStatus::True,
            EventReason::ScaledJobReady.as_str(),
            "ScaledJob is paused, skipping reconcile loop",
        ),
        Ok(Outcome::Running) => {
            if !was_ready {
                ctx.events
                    .normal(
                        sj,
                        EventReason::ScaledJobReady,
                        "ScaledJob is ready for scaling",
                    )
                    .await;
                sj_status::set(
                    &mut desired,
                    READY,
                    ConditionStatus::True,
                    EventReason::ScaledJobReady.as_str(),
                    "ScaledJob is defined correctly and is ready for scaling",
                );
            }
        }
        Err(e) => {
            let message = e.to_string();
            ctx.loops.unregister(&ScaledJobs::key_of(sj)).await;
            sj_status::set(
                &mut desired,
                READY,
                ConditionStatus::False,
                EventReason::ScaledJobCheckFailed.as_str(),
                &message,
            );
            sj_status::set(
                &mut desired,
                ACTIVE,
                ConditionStatus::Unknown,
                "UnknownState",
                "ScaledJob check failed",
            );
            ctx.events
                .warning(sj, EventReason::ScaledJobCheckFailed, message)
                .await;
        }
    }
    let result = sj_status::update(&api, &sj.name_any(), before.as_ref(), |s| {
        merge_reconciled(s, &desired)
    })
    .await;
    if let Err(e) = result {
        ctx.events
            .warning(sj, EventReason::ScaledJobUpdateFailed, e.to_string())
            .await;
        return Err(e.into());
    }
    match outcome {
        // A failed check waits for the next spec change, as KEDA does.
        Ok(_) | Err(Error::Check(_)) => Ok(Action::await_change()),
        Err(e) => Err(e),
    }
}

/// The reconcile owns Ready, Paused and the type lists; Active belongs to the loop unless the
/// reconcile failed (then it is Unknown).
fn merge_reconciled(status: &mut ScaledJobStatus, decided: &ScaledJobStatus) {
    let mut conditions = status.conditions.clone().unwrap_or_default();
    for c in decided.conditions.iter().flatten() {
        let loop_owned = c.r#type == ACTIVE
            && c.reason.as_deref() != Some("UnknownState")
            && conditions.iter().any(|x| x.r#type == c.r#type);
        if loop_owned {
            continue;
        }
        match conditions.iter_mut().find(|x| x.r#type == c.r#type) {
            Some(x) => *x = c.clone(),
            None => conditions.push(c.clone()),
        }
    }
    status.conditions = Some(conditions);
    status.triggers_types = decided.triggers_types.clone();
    status.authentications_types = decided.authentications_types.clone();
}

async fn steps(
    sj: &ScaledJob,
    ctx: &Context,
    status: &mut ScaledJobStatus,
) -> Result<Outcome, Error> {
    record_references(ctx, sj, true).await;
    checks::check_job_target(sj).map_err(|e| Error::Check(e.to_string()))?;
    if handle_pause(sj, ctx, status).await {
        return Ok(Outcome::Paused);
    }
    checks::check_triggers(sj).map_err(|e| {
        Error::Check(format!(
            "ScaledJob doesn't have correct triggers specification: {e}"
        ))
    })?;
    status.triggers_types = Some(unique_joined(
        sj.spec.triggers.iter().map(|t| t.r#type.clone()),
    ));
    let auth: Vec<String> = sj
        .spec
        .triggers
        .iter()
        .filter_map(|t| t.authentication_ref.as_ref().map(|a| a.name.clone()))
        .collect();
    status.authentications_types = (!auth.is_empty()).then(|| unique_joined(auth.into_iter()));

    rollout(sj, ctx).await;

    ctx.loops.scalers_for(sj).await.map_err(|e| {
        let field = e
            .parameter()
            .map(|p| format!(" (parameter {p:?})"))
            .unwrap_or_default();
        Error::Check(format!("failed to create Scalers{field}: {e}"))
    })?;
    // Always restart the loop: the scheduler polls at once with the new spec.
    if ctx.loops.register(sj) {
        ctx.events
            .publish(
                sj,
                EventType::Normal,
                EventReason::KedaScalersStarted,
                "ScalersWatchStarted",
                "Started scalers watch",
            )
            .await;
    }
    Ok(Outcome::Running)
}

/// True when paused (`autoscaling.keda.sh/paused`; `paused-replicas` means nothing here).
async fn handle_pause(sj: &ScaledJob, ctx: &Context, status: &mut ScaledJobStatus) -> bool {
    let was_paused = sj_status::is(sj.status.as_ref(), PAUSED, ConditionStatus::True);
    if crate::pause::flag(sj.annotations(), annotations::PAUSED) {
        if !was_paused {
            sj_status::set(
                status,
                PAUSED,
                ConditionStatus::True,
                EventReason::ScaledJobPaused.as_str(),
                "ScaledJob is paused",
            );
            ctx.events
                .normal(sj, EventReason::ScaledJobPaused, "ScaledJob is paused")
                .await;
        }
        if ctx.loops.unregister(&ScaledJobs::key_of(sj)).await {
            ctx.events
                .normal(sj, EventReason::KedaScalersStopped, "Stopped scalers watch")
                .await;
        }
        return true;
    }
    if was_paused {
        sj_status::set(
            status,
            PAUSED,
            ConditionStatus::False,
            EventReason::ScaledJobUnpaused.as_str(),
            "ScaledJob is unpaused",
        );
        ctx.events
            .normal(sj, EventReason::ScaledJobUnpaused, "ScaledJob is unpaused")
            .await;
    }
    false
}

/// Unless the rollout is `gradual`, Jobs of other generations go (§5.1 step 7). The deprecated
/// `rolloutStrategy` wins over `rollout.strategy` when set.
async fn rollout(sj: &ScaledJob, ctx: &Context) {
    let strategy = sj
        .spec
        .rollout_strategy
        .or_else(|| sj.spec.rollout.as_ref().and_then(|r| r.strategy));
    if strategy == Some(RolloutStrategy::Gradual) {
        return;
    }
    let namespace = sj.namespace().unwrap_or_default();
    let jobs = ctx.loops.jobs_of(&namespace, &sj.name_any());
    let refs: Vec<&Job> = jobs.iter().map(|j| j.as_ref()).collect();
    let stale = job::stale_for_rollout(&refs, sj.metadata.generation);
    if stale.is_empty() {
        return;
    }
    ctx.events
        .normal(
            sj,
            EventReason::ScaledJobRolloutCleanupStarted,
            "Rollout cleanup started: deleting jobs of previous generations",
        )
        .await;
    let propagation = match sj.spec.rollout.as_ref().and_then(|r| r.propagation_policy) {
        Some(PropagationPolicy::Foreground) => Propagation::Foreground,
        _ => Propagation::Background,
    };
    let params = DeleteParams {
        propagation_policy: Some(propagation),
        ..Default::default()
    };
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    for j in stale {
        match api.delete(&j.name_any(), &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                ctx.events
                    .warning(
                        sj,
                        EventReason::ScaledJobRolloutCleanupFailed,
                        format!("Rollout cleanup failed: {e}"),
                    )
                    .await;
                return;
            }
        }
    }
    ctx.events
        .normal(
            sj,
            EventReason::ScaledJobRolloutCleanupCompleted,
            "Rollout cleanup completed",
        )
        .await;
}

/// Keeps `status.scaledjobs` of the referenced (Cluster)TriggerAuthentications.
async fn record_references(ctx: &Context, sj: &ScaledJob, present: bool) {
    crate::controllers::trigger_auth::record_references(
        &ctx.client,
        &sj.namespace().unwrap_or_default(),
        &sj.spec.triggers,
        crate::controllers::trigger_auth::Referrer::ScaledJob,
        &sj.name_any(),
        present,
    )
    .await;
}

async fn cleanup(sj: &ScaledJob, ctx: &Context) -> Result<Action, Error> {
    record_references(ctx, sj, false).await;
    if ctx.loops.unregister(&ScaledJobs::key_of(sj)).await {
        ctx.events
            .normal(sj, EventReason::KedaScalersStopped, "Stopped scalers watch")
            .await;
    }
    // The Jobs are owned by the ScaledJob: the garbage collector removes them.
    ctx.events
        .warning(sj, EventReason::ScaledJobDeleted, "ScaledJob was deleted")
        .await;
    Ok(Action::await_change())
}

fn unique_joined(items: impl Iterator<Item = String>) -> String {
    let mut seen: Vec<String> = Vec::new();
    for item in items {
        if !seen.contains(&item) {
            seen.push(item);
        }
    }
    seen.join(",")
}
