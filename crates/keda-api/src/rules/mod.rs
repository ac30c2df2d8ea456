//! The pure semantic rules KEDA applies beyond the CRD schema, shared by the operator's
//! reconcile, `keda-rs validate` and (later) the admission webhook. No I/O: each takes an object
//! and says what is wrong with it, naming the field at fault.

pub mod auth;
pub mod scaled_job;
pub mod scaled_object;

use crate::common::ScaleTriggers;

/// A rule an object breaks: the field path at fault and what is wrong with it. The operator turns
/// it into a failed check; the CLI into an error [`Problem`](crate::problem::Problem).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Violation {
    /// Field path from the object root, e.g. `spec.triggers[1].name`.
    pub field: String,
    pub message: String,
}

impl Violation {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<Violation> for crate::problem::Problem {
    fn from(v: Violation) -> Self {
        Self::error(&v.field, v.message)
    }
}

/// Trigger names must be unique among an object's triggers (unnamed triggers never clash).
/// Returns the index and name of the first trigger that repeats an earlier name, so callers
/// can report it in the same order as their other per-trigger checks.
pub(crate) fn first_duplicate_trigger_name(triggers: &[ScaleTriggers]) -> Option<(usize, &str)> {
    let mut names = std::collections::HashSet::new();
    triggers.iter().enumerate().find_map(|(i, t)| {
        t.name
            .as_deref()
            .filter(|n| !n.is_empty())
            .filter(|n| !names.insert(*n))
            .map(|n| (i, n))
    })
}
