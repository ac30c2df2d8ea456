//! The one error type scalers return. It separates bad trigger configuration (the object is
//! misconfigured: report `Ready=False`, do not retry harder) from backend failures (the backend is
//! unreachable or answered with an error: the scale loop applies fallback and retries).

use std::fmt;

/// Which of the two families an error belongs to; stable enough for metric labels and event reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Trigger metadata, authentication parameters or metric type are invalid.
    Config,
    /// Connecting to or querying the backend failed.
    Backend,
}

impl ErrorKind {
    /// Lower-case name, e.g. for a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Backend => "backend",
        }
    }
}

/// Error returned by scaler construction, parsing and polling.
#[derive(Debug, thiserror::Error)]
pub enum ScalerError {
    /// The trigger is misconfigured. `message` may hold several problems, one per line (KEDA joins all
    /// parameter errors of a trigger the same way); `parameter` names the first one.
    #[error("{}", display_config(.trigger, .parameter, .message))]
    Config {
        /// The trigger, e.g. `redis trigger 0` or `redis trigger 0 ("orders")`.
        trigger: String,
        /// The parameter the (first) problem is about, spelled as in the trigger.
        parameter: String,
        /// What is wrong, in KEDA's words where the spec gives them.
        message: String,
    },
    /// The backend could not be reached or returned an error.
    #[error("{trigger}: {message}")]
    Backend {
        /// The trigger, as for [`ScalerError::Config`].
        trigger: String,
        /// What kind of failure it was (a metric label, an input to fallback).
        kind: BackendKind,
        /// What failed, including the backend's own error text.
        message: String,
    },
}

/// How a backend failed. Stable names for metric labels; fallback and logs may treat kinds apart
/// (a missing queue is not an outage).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// The backend could not be reached or the connection could not be set up (DNS, TCP, TLS).
    Connect,
    /// No answer in time.
    Timeout,
    /// The backend refused the credentials or the permission.
    Auth,
    /// What the trigger names (queue, topic, key, subscription) does not exist.
    NotFound,
    /// The backend answered, but with an error or something that cannot be used.
    Protocol,
    /// The scaler was closed.
    Closed,
}

impl BackendKind {
    /// Lower-case name, e.g. for a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Auth => "auth",
            Self::NotFound => "not_found",
            Self::Protocol => "protocol",
            Self::Closed => "closed",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure of a backend client, before it is tied to a trigger. `Clone` because a pooled
/// connect attempt's failure is shared by every caller that waited on it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BackendError {
    /// The kind of failure.
    pub kind: BackendKind,
    /// What failed, with the backend's or the library's own text.
    pub message: String,
}

impl BackendError {
    /// An error of `kind`.
    pub fn new(kind: BackendKind, message: impl fmt::Display) -> Self {
        Self {
            kind,
            message: message.to_string(),
        }
    }

    /// [`BackendKind::Connect`].
    pub fn connect(message: impl fmt::Display) -> Self {
        Self::new(BackendKind::Connect, message)
    }

    /// [`BackendKind::Timeout`].
    pub fn timeout(message: impl fmt::Display) -> Self {
        Self::new(BackendKind::Timeout, message)
    }

    /// [`BackendKind::Auth`].
    pub fn auth(message: impl fmt::Display) -> Self {
        Self::new(BackendKind::Auth, message)
    }

    /// [`BackendKind::NotFound`].
    pub fn not_found(message: impl fmt::Display) -> Self {
        Self::new(BackendKind::NotFound, message)
    }

    /// [`BackendKind::Protocol`].
    pub fn protocol(message: impl fmt::Display) -> Self {
        Self::new(BackendKind::Protocol, message)
    }

    /// [`BackendKind::Closed`].
    pub fn closed() -> Self {
        Self::new(BackendKind::Closed, "scaler is closed")
    }

    /// The same kind, with `context` put before the message (`error getting list length: …`).
    #[must_use]
    pub fn context(self, context: impl fmt::Display) -> Self {
        Self {
            kind: self.kind,
            message: format!("{context}: {}", self.message),
        }
    }
}

/// Why a scaler could not be connected: its metadata turned out unusable only at build time
/// (e.g. a mode keda-rs does not support) or its backend failed. The wrapper adds the trigger.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// A configuration problem about `parameter`.
    #[error("parameter \"{parameter}\": {message}")]
    Config {
        /// The parameter, spelled as in the trigger.
        parameter: String,
        /// What is wrong.
        message: String,
    },
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl ConnectError {
    /// A configuration problem about `parameter`.
    pub fn config(parameter: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Config {
            parameter: parameter.into(),
            message: message.into(),
        }
    }

    /// Ties the error to `trigger`.
    pub fn into_scaler_error(self, trigger: impl Into<String>) -> ScalerError {
        match self {
            Self::Config { parameter, message } => ScalerError::config(trigger, parameter, message),
            Self::Backend(e) => ScalerError::from_backend(trigger, e),
        }
    }
}

fn display_config(trigger: &str, parameter: &str, message: &str) -> String {
    // Most messages already quote the parameter (`missing required parameter "listName" …`); only add
    // it when the message does not, so every config error names its parameter exactly once.
    if message.contains(&format!("\"{parameter}\"")) {
        format!("{trigger}: {message}")
    } else {
        format!("{trigger}: parameter \"{parameter}\": {message}")
    }
}

impl ScalerError {
    /// A configuration error about `parameter` of `trigger`.
    pub fn config(
        trigger: impl Into<String>,
        parameter: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::Config {
            trigger: trigger.into(),
            parameter: parameter.into(),
            message: message.into(),
        }
    }

    /// A backend error of `trigger`.
    pub fn backend(
        trigger: impl Into<String>,
        kind: BackendKind,
        message: impl fmt::Display,
    ) -> Self {
        Self::Backend {
            trigger: trigger.into(),
            kind,
            message: message.to_string(),
        }
    }

    /// `error` of the backend of `trigger`.
    pub fn from_backend(trigger: impl Into<String>, error: BackendError) -> Self {
        Self::Backend {
            trigger: trigger.into(),
            kind: error.kind,
            message: error.message,
        }
    }

    /// The kind of a backend error.
    pub fn backend_kind(&self) -> Option<BackendKind> {
        match self {
            Self::Config { .. } => None,
            Self::Backend { kind, .. } => Some(*kind),
        }
    }

    /// True for configuration errors (bad metadata, auth parameters or metric type).
    pub fn is_config(&self) -> bool {
        matches!(self, Self::Config { .. })
    }

    /// True for backend errors (connection or command failures).
    pub fn is_backend(&self) -> bool {
        matches!(self, Self::Backend { .. })
    }

    /// The family of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Config { .. } => ErrorKind::Config,
            Self::Backend { .. } => ErrorKind::Backend,
        }
    }

    /// The trigger this error is about.
    pub fn trigger(&self) -> &str {
        match self {
            Self::Config { trigger, .. } | Self::Backend { trigger, .. } => trigger,
        }
    }

    /// The parameter a configuration error is about.
    pub fn parameter(&self) -> Option<&str> {
        match self {
            Self::Config { parameter, .. } => Some(parameter),
            Self::Backend { .. } => None,
        }
    }

    /// The message without the trigger prefix.
    pub fn message(&self) -> &str {
        match self {
            Self::Config { message, .. } | Self::Backend { message, .. } => message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_display_names_trigger_and_parameter_once() {
        let quoted = ScalerError::config(
            "redis trigger 0",
            "listName",
            "missing required parameter \"listName\" in [triggerMetadata]",
        );
        assert_eq!(
            quoted.to_string(),
            "redis trigger 0: missing required parameter \"listName\" in [triggerMetadata]"
        );
        let unquoted = ScalerError::config("redis trigger 1", "address", "no addresses given");
        assert_eq!(
            unquoted.to_string(),
            "redis trigger 1: parameter \"address\": no addresses given"
        );
        assert!(unquoted.is_config());
        assert_eq!(unquoted.kind(), ErrorKind::Config);
        assert_eq!(unquoted.parameter(), Some("address"));
    }

    #[test]
    fn backend_errors_are_not_config_errors() {
        let err = ScalerError::backend(
            "redis trigger 0",
            BackendKind::Connect,
            "connection to redis failed: refused",
        );
        assert!(err.is_backend());
        assert!(!err.is_config());
        assert_eq!(err.parameter(), None);
        assert_eq!(err.kind().as_str(), "backend");
        assert_eq!(err.backend_kind(), Some(BackendKind::Connect));
        assert_eq!(
            err.to_string(),
            "redis trigger 0: connection to redis failed: refused"
        );
    }
}
