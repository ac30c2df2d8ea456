//! Kubernetes events (events.k8s.io/v1) with KEDA's reasons. Publishing is best effort: a
//! failed event never fails a reconcile or a poll.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

pub const SCALED_OBJECT_READY: &str = "ScaledObjectReady";
pub const SCALED_OBJECT_CHECK_FAILED: &str = "ScaledObjectCheckFailed";
pub const SCALED_OBJECT_UPDATE_FAILED: &str = "ScaledObjectUpdateFailed";
pub const SCALED_OBJECT_PAUSED: &str = "ScaledObjectPaused";
pub const SCALED_OBJECT_UNPAUSED: &str = "ScaledObjectUnpaused";
pub const SCALED_OBJECT_DELETED: &str = "ScaledObjectDeleted";
pub const SCALERS_STARTED: &str = "KEDAScalersStarted";
pub const SCALERS_STOPPED: &str = "KEDAScalersStopped";
pub const SCALER_FAILED: &str = "KEDAScalerFailed";
pub const TARGET_ACTIVATED: &str = "KEDAScaleTargetActivated";
pub const TARGET_DEACTIVATED: &str = "KEDAScaleTargetDeactivated";
pub const TARGET_ACTIVATION_FAILED: &str = "KEDAScaleTargetActivationFailed";
pub const TARGET_DEACTIVATION_FAILED: &str = "KEDAScaleTargetDeactivationFailed";

#[derive(Clone)]
pub struct Events {
    recorder: Recorder,
}

impl Events {
    pub fn new(client: kube::Client) -> Self {
        Self::for_controller(client, "keda-operator")
    }

    /// A recorder reporting as `controller` (KEDA's ScaledJob loop reports as `scale-handler`).
    pub fn for_controller(client: kube::Client, controller: &str) -> Self {
        let reporter = Reporter {
            controller: controller.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client, reporter),
        }
    }

    /// `action` follows KEDA: reconcile events use the message, executor events the reason.
    pub async fn publish<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: impl Into<String>,
    ) {
        let reference: ObjectReference = object.object_ref(&());
        let event = Event {
            type_,
            reason: reason.to_string(),
            note: Some(truncate(note.into(), 1024)),
            action: truncate(action.to_string(), 128),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &reference).await {
            tracing::debug!(%reason, error = %e, "could not publish event");
        }
    }

    pub async fn normal<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        reason: &str,
        note: impl Into<String>,
    ) {
        self.publish(object, EventType::Normal, reason, reason, note)
            .await;
    }

    pub async fn warning<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        reason: &str,
        note: impl Into<String>,
    ) {
        self.publish(object, EventType::Warning, reason, reason, note)
            .await;
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}
