//! One scaling runtime for ScaledObjects and ScaledJobs: one scheduler, one scalers cache
//! ([`triggers::TriggerSets`]) and one read path ([`read`]), with a poll executor per kind. Each
//! poll reads its scalers, computes a pure plan (what to scale, which events, which status) and
//! applies it through a small I/O trait ([`ScaleIo`] plus [`ReplicaIo`] or [`JobIo`]), so the
//! plans are tested without a cluster. [`Scaling::new`] builds it in order (stores → scheduler
//! handle → executors → scheduler task with a router), with no setter and no cycle.

pub mod read;
pub mod scaled_job;
pub mod scaled_object;
pub mod scheduler;
pub mod triggers;

#[cfg(test)]
mod tests;

use keda_api::names::EventReason;
use keda_scalers::{Pools, ScalerSettings};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use keda_api::common::ScaleTriggers;
use keda_api::{ScaledJob, ScaledObject};
use kube::ResourceExt;
use kube::runtime::events::EventType;
use kube::runtime::reflector::Store;

use crate::auth::{AuthResolver, WorkloadTemplate};
use crate::events::Events;

pub use scaled_job::ScaledJobs;
pub use scaled_object::{ReadError, ScaledObjects};
pub use scheduler::{ObjectKey, ObjectKind, PollTarget, Scheduler};
pub use triggers::{TriggerSet, TriggerSets, trigger_config};

/// What the runtime needs to know of a scalable object.
pub trait Scalable: kube::Resource<DynamicType = ()> + Send + Sync {
    const KIND: ObjectKind;
    fn triggers(&self) -> &[ScaleTriggers];
    fn polling_interval(&self) -> Duration;
    /// The pod template `*FromEnv` parameters and TriggerAuthentication `env` read from.
    fn workload_template(&self) -> WorkloadTemplate<'_>;
    /// `envSourceContainerName`.
    fn env_source_container(&self) -> Option<&str>;
}

fn interval_of(seconds: i32) -> Duration {
    Duration::from_secs(u64::try_from(seconds).unwrap_or(30))
}

impl Scalable for ScaledObject {
    const KIND: ObjectKind = ObjectKind::ScaledObject;
    fn triggers(&self) -> &[ScaleTriggers] {
        &self.spec.triggers
    }
    fn polling_interval(&self) -> Duration {
        interval_of(self.spec.polling_interval())
    }
    fn workload_template(&self) -> WorkloadTemplate<'_> {
        WorkloadTemplate::for_scaled_object(self)
    }
    fn env_source_container(&self) -> Option<&str> {
        self.spec
            .scale_target_ref
            .env_source_container_name
            .as_deref()
    }
}

impl Scalable for ScaledJob {
    const KIND: ObjectKind = ObjectKind::ScaledJob;
    fn triggers(&self) -> &[ScaleTriggers] {
        &self.spec.triggers
    }
    fn polling_interval(&self) -> Duration {
        interval_of(self.spec.polling_interval())
    }
    fn workload_template(&self) -> WorkloadTemplate<'_> {
        WorkloadTemplate::given(Some(&self.spec.job_target_ref.template))
    }
    fn env_source_container(&self) -> Option<&str> {
        self.spec.env_source_container_name.as_deref()
    }
}

/// The scheduler key of `object`.
pub fn key_of<K: Scalable>(object: &K) -> ObjectKey {
    ObjectKey::new(
        K::KIND,
        &object.namespace().unwrap_or_default(),
        &object.name_any(),
    )
}

/// An event a plan asks for, on the polled object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub type_: EventType,
    pub reason: EventReason,
    pub note: String,
}

impl Event {
    pub fn normal(reason: EventReason, note: impl Into<String>) -> Self {
        Self {
            type_: EventType::Normal,
            reason,
            note: note.into(),
        }
    }

    pub fn warning(reason: EventReason, note: impl Into<String>) -> Self {
        Self {
            type_: EventType::Warning,
            reason,
            note: note.into(),
        }
    }

    /// Publishes the event on `object`; executor events use the reason as the action (as KEDA).
    pub async fn publish<K: kube::Resource<DynamicType = ()>>(self, events: &Events, object: &K) {
        events
            .publish(
                object,
                self.type_,
                self.reason,
                self.reason.as_str(),
                self.note,
            )
            .await;
    }
}

/// Errors of the runtime's writes and reads against the cluster.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error(transparent)]
    Target(#[from] crate::target::TargetError),
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

/// What applying a plan needs of the world, for one polled object of either kind.
pub trait ScaleIo: Sync {
    /// The kind's status change.
    type Status: Sync;
    fn patch_status(
        &self,
        patch: &Self::Status,
    ) -> impl Future<Output = Result<(), IoError>> + Send;
    fn event(&self, event: Event) -> impl Future<Output = ()> + Send;
}

/// A ScaledObject's target, through `/scale`.
pub trait ReplicaIo: ScaleIo {
    fn current_replicas(&self) -> impl Future<Output = Result<i32, IoError>> + Send;
    fn set_replicas(&self, replicas: i32) -> impl Future<Output = Result<(), IoError>> + Send;
    /// `apps/v1.Deployment ns/name`, once resolved (for event texts).
    fn target(&self) -> String;
}

/// A ScaledJob's Jobs.
pub trait JobIo: ScaleIo {
    /// The ScaledJob's pods (labelled with its name).
    fn pods(&self) -> impl Future<Output = Result<Vec<Pod>, IoError>> + Send;
    fn create_job(&self, job: &Job) -> impl Future<Output = Result<(), IoError>> + Send;
    /// Deletes a Job in the background; one already gone is no error.
    fn delete_job(&self, name: &str) -> impl Future<Output = Result<(), IoError>> + Send;
}

/// Sends each due poll to the executor of its kind.
struct Router {
    so: Arc<ScaledObjects>,
    sj: Arc<ScaledJobs>,
}

impl PollTarget for Router {
    fn poll(&self, key: ObjectKey) -> BoxFuture<'static, ()> {
        let (so, sj) = (self.so.clone(), self.sj.clone());
        Box::pin(async move {
            match key.kind {
                ObjectKind::ScaledObject => so.poll(key).await,
                ObjectKind::ScaledJob => sj.poll(key).await,
            }
        })
    }
}

/// The reflector stores the executors read the latest objects from.
pub struct Stores {
    pub scaled_objects: Store<ScaledObject>,
    pub scaled_jobs: Store<ScaledJob>,
    /// Jobs labelled `scaledjob.keda.sh/name`.
    pub jobs: Store<Job>,
}

/// The running scaling runtime.
pub struct Scaling {
    pub scheduler: Scheduler,
    pub triggers: Arc<TriggerSets>,
    pub scaled_objects: Arc<ScaledObjects>,
    pub scaled_jobs: Arc<ScaledJobs>,
}

/// What the runtime is built from.
pub struct ScalingConfig {
    pub max_concurrent_polls: usize,
    /// Written into the Jobs the ScaledJob executor creates.
    pub version: String,
    /// What every scaler is built with (HTTP defaults, read timeout, endpoint overrides).
    pub scalers: ScalerSettings,
}

impl Scaling {
    /// Builds and starts the runtime over `stores`.
    pub fn new(
        client: kube::Client,
        events: Events,
        auth: Arc<AuthResolver>,
        stores: Stores,
        config: ScalingConfig,
    ) -> Self {
        let (scheduler, task) = Scheduler::new(config.max_concurrent_polls);
        // KEDA's ScaledJob handler reports as `scale-handler`.
        let job_events = events.for_controller("scale-handler");
        let triggers = Arc::new(TriggerSets::new(
            auth,
            scheduler.clone(),
            Pools::with_settings(config.scalers),
        ));
        let scaled_objects = Arc::new(ScaledObjects::new(
            client.clone(),
            events,
            stores.scaled_objects,
            triggers.clone(),
            scheduler.clone(),
        ));
        let scaled_jobs = Arc::new(ScaledJobs::new(
            client,
            job_events,
            stores.scaled_jobs,
            stores.jobs,
            triggers.clone(),
            scheduler.clone(),
            config.version,
        ));
        task.spawn(Arc::new(Router {
            so: scaled_objects.clone(),
            sj: scaled_jobs.clone(),
        }));
        Self {
            scheduler,
            triggers,
            scaled_objects,
            scaled_jobs,
        }
    }

    /// Stops polling and closes every scaler.
    pub async fn shutdown(&self) {
        self.scheduler.stop();
        self.scaled_objects.forget_all();
        self.scaled_jobs.forget_all();
        self.triggers.shutdown().await;
    }
}
