//! ScaledObject status: conditions (KEDA's shape: no transition times) and merge-patch writes
//! that happen only when something changed.

use keda_api::common::Condition;
use keda_api::names::ConditionStatus;
use keda_api::names::conditions::{ACTIVE, FALLBACK, PAUSED, READY};
use keda_api::{ScaledObject, ScaledObjectStatus};
use kube::api::Api;

/// The four conditions every ScaledObject gets first: Ready/Active/Fallback Unknown, Paused False.
pub fn initial_conditions() -> Vec<Condition> {
    [
        (READY, ConditionStatus::Unknown),
        (ACTIVE, ConditionStatus::Unknown),
        (FALLBACK, ConditionStatus::Unknown),
        (PAUSED, ConditionStatus::False),
    ]
    .into_iter()
    .map(|(t, s)| Condition {
        r#type: t.to_string(),
        status: s.as_str().to_string(),
        reason: None,
        message: None,
    })
    .collect()
}

/// Fills in missing initial conditions; true when it changed anything.
pub fn ensure_initial(status: &mut ScaledObjectStatus) -> bool {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let mut changed = false;
    for initial in initial_conditions() {
        if !conditions.iter().any(|c| c.r#type == initial.r#type) {
            conditions.push(initial);
            changed = true;
        }
    }
    changed
}

pub fn set(
    status: &mut ScaledObjectStatus,
    type_: &str,
    value: ConditionStatus,
    reason: &str,
    message: &str,
) {
    let conditions = status.conditions.get_or_insert_with(initial_conditions);
    let new = Condition {
        r#type: type_.to_string(),
        status: value.as_str().to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
    };
    match conditions.iter_mut().find(|c| c.r#type == type_) {
        Some(c) => *c = new,
        None => conditions.push(new),
    }
}

pub fn get<'a>(status: Option<&'a ScaledObjectStatus>, type_: &str) -> Option<&'a Condition> {
    status?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.r#type == type_)
}

pub fn is_true(status: Option<&ScaledObjectStatus>, type_: &str) -> bool {
    get(status, type_).is_some_and(|c| c.status == ConditionStatus::True.as_str())
}

/// Applies `mutate` to the status and writes the result, without losing concurrent writes: the
/// cheap check runs on the (possibly stale) cached `snapshot`; only when it shows a change is the
/// object read fresh, mutated again and written with its resourceVersion (retried on conflict).
/// Returns whether anything was written.
pub async fn update(
    api: &Api<ScaledObject>,
    name: &str,
    snapshot: Option<&ScaledObjectStatus>,
    mutate: impl Fn(&mut ScaledObjectStatus),
) -> Result<bool, kube::Error> {
    let mut probe = snapshot.cloned().unwrap_or_default();
    mutate(&mut probe);
    if snapshot == Some(&probe) {
        return Ok(false);
    }
    // The common write of an active object is lastActiveTime alone: a one-field merge patch
    // cannot clobber anything, so it needs no fresh read first (half the API calls).
    if let Some(snapshot) = snapshot {
        let mut only_time = snapshot.clone();
        only_time.last_active_time = probe.last_active_time.clone();
        if only_time == probe {
            let patch = serde_json::json!({"status": {"lastActiveTime": probe.last_active_time}});
            api.patch_status(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await?;
            return Ok(true);
        }
    }
    for _ in 0..5 {
        let fresh = api.get_status(name).await?;
        let current = fresh.status.clone();
        let mut desired = current.clone().unwrap_or_default();
        mutate(&mut desired);
        if current.as_ref() == Some(&desired) {
            return Ok(false);
        }
        let mut object = fresh;
        object.status = Some(desired);
        object.metadata.managed_fields = None;
        match api
            .replace_status(name, &kube::api::PostParams::default(), &object)
            .await
        {
            Ok(_) => return Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_set_and_updates() {
        let mut s = ScaledObjectStatus::default();
        assert!(ensure_initial(&mut s));
        assert!(!ensure_initial(&mut s));
        assert_eq!(
            get(Some(&s), PAUSED).map(|c| c.status.as_str()),
            Some("False")
        );
        set(
            &mut s,
            READY,
            ConditionStatus::True,
            "ScaledObjectReady",
            "ok",
        );
        assert!(is_true(Some(&s), READY));
        assert_eq!(s.conditions.as_ref().map(Vec::len), Some(4));
    }
}
