//! TriggerAuthentication and ClusterTriggerAuthentication: finalizer, KEDA's events (including
//! its TA-update reason quirk, spec §9), and the `status.scaledobjects` / `status.scaledjobs`
//! lists that ScaledObject/ScaledJob reconciles keep. A change drops the resolver's read cache, so
//! scalers that use it are rebuilt at their next credential check (within one polling interval).

use std::sync::Arc;
use std::time::Duration;

use keda_api::common::{AuthenticationRefKind, ScaleTriggers};
use keda_api::trigger_auth::TriggerAuthenticationStatus;
use keda_api::{ClusterTriggerAuthentication, TriggerAuthentication};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use keda_api::names::{EventReason, FINALIZER};

use crate::auth::AuthResolver;
use crate::events::Events;

pub struct Context {
    pub client: kube::Client,
    pub events: Events,
    pub auth: Arc<AuthResolver>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("finalizer: {0}")]
    Finalizer(String),
}

/// What differs between the two kinds.
pub trait AuthKind:
    Resource<DynamicType = ()>
    + Clone
    + DeserializeOwned
    + Serialize
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    const ADDED: EventReason;
    const UPDATED: EventReason;
    const DELETED: EventReason;
    const ADDED_NOTE: &'static str;
    fn api(client: kube::Client, namespace: Option<&str>) -> Api<Self>;
    fn updated_note(name: &str) -> String;
}

impl AuthKind for TriggerAuthentication {
    const ADDED: EventReason = EventReason::TriggerAuthenticationAdded;
    // KEDA's constant for a TA update carries the CTA reason and message; clients match on it.
    const UPDATED: EventReason = EventReason::ClusterTriggerAuthenticationUpdated;
    const DELETED: EventReason = EventReason::TriggerAuthenticationDeleted;
    const ADDED_NOTE: &'static str = "New TriggerAuthentication configured";
    fn api(client: kube::Client, namespace: Option<&str>) -> Api<Self> {
        Api::namespaced(client, namespace.unwrap_or_default())
    }
    fn updated_note(name: &str) -> String {
        format!("ClusterTriggerAuthentication {name} is updated")
    }
}

impl AuthKind for ClusterTriggerAuthentication {
    const ADDED: EventReason = EventReason::ClusterTriggerAuthenticationAdded;
    const UPDATED: EventReason = EventReason::ClusterTriggerAuthenticationUpdated;
    const DELETED: EventReason = EventReason::ClusterTriggerAuthenticationDeleted;
    const ADDED_NOTE: &'static str = "New ClusterTriggerAuthentication configured";
    fn api(client: kube::Client, _namespace: Option<&str>) -> Api<Self> {
        Api::all(client)
    }
    fn updated_note(name: &str) -> String {
        format!("ClusterTriggerAuthentication {name} is updated")
    }
}

pub async fn reconcile<K: AuthKind>(object: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    let api = K::api(ctx.client.clone(), object.namespace().as_deref());
    finalizer(&api, FINALIZER, object, |event| async {
        ctx.auth.invalidate();
        match event {
            Finalizer::Apply(o) => {
                let name = o.name_any();
                if o.meta().generation == Some(1) {
                    ctx.events
                        .publish(
                            &*o,
                            kube::runtime::events::EventType::Normal,
                            K::ADDED,
                            K::ADDED_NOTE,
                            K::ADDED_NOTE,
                        )
                        .await;
                } else {
                    let note = K::updated_note(&name);
                    ctx.events
                        .publish(
                            &*o,
                            kube::runtime::events::EventType::Normal,
                            K::UPDATED,
                            &note,
                            note.clone(),
                        )
                        .await;
                }
                Ok::<_, Error>(Action::await_change())
            }
            Finalizer::Cleanup(o) => {
                let note = format!("{} {} is deleted", K::kind(&()), o.name_any());
                ctx.events
                    .publish(
                        &*o,
                        kube::runtime::events::EventType::Normal,
                        K::DELETED,
                        &note,
                        note.clone(),
                    )
                    .await;
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(|e| Error::Finalizer(e.to_string()))
}

pub fn error_policy<K: AuthKind>(_o: Arc<K>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::debug!(%error, "trigger authentication reconcile failed; retrying");
    Action::requeue(Duration::from_secs(10))
}

/// Which status list of an authentication an object is recorded in.
#[derive(Clone, Copy, Debug)]
pub enum Referrer {
    ScaledObject,
    ScaledJob,
}

/// Adds (`present`) or removes `name` in the status lists of every authentication its `triggers`
/// reference. Best effort: a missing authentication is already reported on the object itself.
pub async fn record_references(
    client: &kube::Client,
    namespace: &str,
    triggers: &[ScaleTriggers],
    referrer: Referrer,
    name: &str,
    present: bool,
) {
    let mut seen = std::collections::BTreeSet::new();
    for r in triggers
        .iter()
        .filter_map(|t| t.authentication_ref.as_ref())
    {
        let cluster = r.kind == Some(AuthenticationRefKind::ClusterTriggerAuthentication);
        if !seen.insert((cluster, r.name.clone())) {
            continue;
        }
        let result = if cluster {
            let api: Api<ClusterTriggerAuthentication> = Api::all(client.clone());
            let status = api.get_opt(&r.name).await.map(|o| o.and_then(|o| o.status));
            update_list(&api, &r.name, status, referrer, name, present).await
        } else {
            let api: Api<TriggerAuthentication> = Api::namespaced(client.clone(), namespace);
            let status = api.get_opt(&r.name).await.map(|o| o.and_then(|o| o.status));
            update_list(&api, &r.name, status, referrer, name, present).await
        };
        if let Err(e) = result {
            tracing::debug!(authentication = %r.name, error = %e, "cannot update the authentication's status list");
        }
    }
}

async fn update_list<K: AuthKind>(
    api: &Api<K>,
    auth_name: &str,
    status: Result<Option<TriggerAuthenticationStatus>, kube::Error>,
    referrer: Referrer,
    name: &str,
    present: bool,
) -> Result<(), kube::Error> {
    let status = match status {
        Ok(s) => s.unwrap_or_default(),
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
        Err(e) => return Err(e),
    };
    let current = match referrer {
        Referrer::ScaledObject => status.scaledobjects.as_deref(),
        Referrer::ScaledJob => status.scaledjobs.as_deref(),
    };
    let Some(updated) = updated_list(current, name, present) else {
        return Ok(());
    };
    let field = match referrer {
        Referrer::ScaledObject => "scaledobjects",
        Referrer::ScaledJob => "scaledjobs",
    };
    let value = if updated.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::Value::String(updated)
    };
    let patch = serde_json::json!({"status": {field: value}});
    match api
        .patch_status(auth_name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// The comma-separated list with `name` added or removed; `None` when nothing changes.
pub fn updated_list(current: Option<&str>, name: &str, present: bool) -> Option<String> {
    let mut names: Vec<&str> = current
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    let has = names.contains(&name);
    match (present, has) {
        (true, true) | (false, false) => return None,
        (true, false) => names.push(name),
        (false, true) => names.retain(|n| *n != name),
    }
    Some(names.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_edits() {
        assert_eq!(updated_list(None, "a", true).as_deref(), Some("a"));
        assert_eq!(updated_list(Some("a"), "b", true).as_deref(), Some("a,b"));
        assert_eq!(updated_list(Some("a,b"), "a", true), None);
        assert_eq!(updated_list(Some("a,b"), "a", false).as_deref(), Some("b"));
        assert_eq!(updated_list(Some("b"), "b", false).as_deref(), Some(""));
        assert_eq!(updated_list(None, "b", false), None);
    }
}
