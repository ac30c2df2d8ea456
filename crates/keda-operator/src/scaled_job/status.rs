//! ScaledJob status writes: KEDA's condition shape (no transition times), written only when
//! something changed, over a fresh read so the controller's and the loop's writes never clobber
//! each other (retried on conflict).

use keda_api::common::Condition;
use keda_api::{ScaledJob, ScaledJobStatus};
use kube::api::{Api, PostParams};

use keda_api::names::ConditionStatus;
use keda_api::names::conditions::{ACTIVE, FALLBACK, PAUSED, READY};

pub fn ensure_initial(status: &mut ScaledJobStatus) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    for (t, s) in [
        (READY, ConditionStatus::Unknown),
        (ACTIVE, ConditionStatus::Unknown),
        (FALLBACK, ConditionStatus::Unknown),
        (PAUSED, ConditionStatus::False),
    ] {
        if !conditions.iter().any(|c| c.r#type == t) {
            conditions.push(Condition {
                r#type: t.to_string(),
                status: s.as_str().to_string(),
                reason: None,
                message: None,
            });
        }
    }
}

pub fn set(
    status: &mut ScaledJobStatus,
    type_: &str,
    value: ConditionStatus,
    reason: &str,
    message: &str,
) {
    ensure_initial(status);
    let new = Condition {
        r#type: type_.to_string(),
        status: value.as_str().to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
    };
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    match conditions.iter_mut().find(|c| c.r#type == type_) {
        Some(c) => *c = new,
        None => conditions.push(new),
    }
}

pub fn get<'a>(status: Option<&'a ScaledJobStatus>, type_: &str) -> Option<&'a Condition> {
    status?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.r#type == type_)
}

pub fn is(status: Option<&ScaledJobStatus>, type_: &str, value: ConditionStatus) -> bool {
    get(status, type_).is_some_and(|c| c.status == value.as_str())
}

/// Applies `mutate` over the freshest status and writes it if it changed; the cached
/// `snapshot` saves the read when nothing would change.
pub async fn update(
    api: &Api<ScaledJob>,
    name: &str,
    snapshot: Option<&ScaledJobStatus>,
    mutate: impl Fn(&mut ScaledJobStatus),
) -> Result<bool, kube::Error> {
    let mut probe = snapshot.cloned().unwrap_or_default();
    mutate(&mut probe);
    if snapshot == Some(&probe) {
        return Ok(false);
    }
    for _ in 0..5 {
        let mut fresh = api.get_status(name).await?;
        let current = fresh.status.clone();
        let mut desired = current.clone().unwrap_or_default();
        mutate(&mut desired);
        if current.as_ref() == Some(&desired) {
            return Ok(false);
        }
        fresh.status = Some(desired);
        fresh.metadata.managed_fields = None;
        match api
            .replace_status(name, &PostParams::default(), &fresh)
            .await
        {
            Ok(_) => return Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}
