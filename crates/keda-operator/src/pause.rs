//! KEDA's pause and activation annotations, parsed its way: a present bool annotation that does
//! not parse counts as true; `paused-replicas` pauses whenever present.

use std::collections::BTreeMap;

use keda_api::ScaledObject;
use keda_api::names::annotations::{PAUSED, PAUSED_REPLICAS, PAUSED_SCALE_IN, PAUSED_SCALE_OUT};
use kube::ResourceExt;

/// A bool annotation: absent → false, `"false"` → false, anything unparsable → true.
pub fn flag(annotations: &BTreeMap<String, String>, key: &str) -> bool {
    match annotations.get(key) {
        None => false,
        Some(v) => v.trim().parse::<bool>().unwrap_or(true),
    }
}

pub fn is_fully_paused(so: &ScaledObject) -> bool {
    let a = so.annotations();
    flag(a, PAUSED) || a.contains_key(PAUSED_REPLICAS)
}

pub fn is_paused(so: &ScaledObject) -> bool {
    let a = so.annotations();
    is_fully_paused(so) || flag(a, PAUSED_SCALE_IN) || flag(a, PAUSED_SCALE_OUT)
}

/// `paused-replicas` as a number; `Err` carries the text that did not parse.
pub fn paused_replicas(so: &ScaledObject) -> Option<Result<i32, String>> {
    so.annotations()
        .get(PAUSED_REPLICAS)
        .map(|v| v.trim().parse::<i32>().map_err(|_| v.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_like_keda() {
        let mut a = BTreeMap::new();
        assert!(!flag(&a, PAUSED));
        a.insert(PAUSED.to_string(), "false".to_string());
        assert!(!flag(&a, PAUSED));
        a.insert(PAUSED.to_string(), "true".to_string());
        assert!(flag(&a, PAUSED));
        a.insert(PAUSED.to_string(), "yes please".to_string());
        assert!(flag(&a, PAUSED));
    }
}
