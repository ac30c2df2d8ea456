//! A finding about one field of one object. Its own module so that `rules` (which produce
//! problems) and `validate` (which collects them) both import it without importing each other.

use std::fmt;

/// How bad a problem is: errors make an object invalid, warnings only inform
/// (the apiserver accepts unknown fields with a warning unless asked to be strict).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

/// One finding about one field of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    /// Field path from the object root, e.g. `spec.triggers[0].type`.
    pub field: String,
    pub message: String,
}

impl Problem {
    pub fn error(field: &str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            field: field.to_string(),
            message: message.into(),
        }
    }
    pub fn warning(field: &str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            field: field.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{level}: {}: {}", self.field, self.message)
    }
}
