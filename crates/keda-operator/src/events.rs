//! Kubernetes events (events.k8s.io/v1) with KEDA's reasons ([`EventReason`]). Publishing is best effort: a
//! failed event never fails a reconcile or a poll.

use k8s_openapi::api::core::v1::ObjectReference;
use keda_api::names::EventReason;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

#[derive(Clone)]
pub struct Events {
    recorder: Recorder,
    client: kube::Client,
    /// The operator pod's name (`POD_NAME`), reported as the events' instance.
    instance: Option<String>,
}

impl Events {
    /// A recorder reporting as `keda-operator` from the pod `instance`.
    pub fn new(client: kube::Client, instance: Option<String>) -> Self {
        Self::reporting(client, "keda-operator", instance)
    }

    /// The same pod reporting as `controller` (KEDA's ScaledJob loop reports as `scale-handler`).
    pub fn for_controller(&self, controller: &str) -> Self {
        Self::reporting(self.client.clone(), controller, self.instance.clone())
    }

    fn reporting(client: kube::Client, controller: &str, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: controller.into(),
            instance: instance.clone(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            instance,
        }
    }

    /// `action` follows KEDA: reconcile events use the message, executor events the reason.
    pub async fn publish<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        type_: EventType,
        reason: EventReason,
        action: &str,
        note: impl Into<String>,
    ) {
        let reference: ObjectReference = object.object_ref(&());
        let event = Event {
            type_,
            reason: reason.as_str().to_string(),
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
        reason: EventReason,
        note: impl Into<String>,
    ) {
        self.publish(object, EventType::Normal, reason, reason.as_str(), note)
            .await;
    }

    pub async fn warning<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        reason: EventReason,
        note: impl Into<String>,
    ) {
        self.publish(object, EventType::Warning, reason, reason.as_str(), note)
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
