//! The operator's settings as one plain struct. The binary (`keda-rs/src/config.rs`) parses its
//! flags and the environment once and builds this; nothing in the operator reads the environment,
//! so tests set any setting by building the struct.

use crate::auth::AuthOptions;
// KEDA_HTTP_* as the scalers read them: parsed once by the binary, held here, handed to the
// scalers' pools at start.
pub use keda_scalers::{HttpSettings, MinTlsVersion};

/// Everything the operator is configured with.
#[derive(Debug, Clone)]
pub struct OperatorConfig {
    /// Namespaces to watch; empty means all.
    pub watch_namespace: Option<String>,
    /// Concurrent ScaledObject reconciles (`KEDA_SCALEDOBJECT_CTRL_MAX_RECONCILES`).
    pub max_reconciles: u16,
    /// Concurrent ScaledJob reconciles (`KEDA_SCALEDJOB_CTRL_MAX_RECONCILES`).
    pub max_scaled_job_reconciles: u16,
    /// Polls in flight at once across all objects.
    pub max_concurrent_polls: usize,
    pub version: String,
    /// The operator pod's name (`POD_NAME`): the `reportingInstance` of its events.
    pub pod_name: Option<String>,
    /// TriggerAuthentication resolution settings.
    pub auth: AuthOptions,
    /// KEDA's global HTTP client settings for HTTP scalers and readers (`KEDA_HTTP_*`).
    pub http: HttpSettings,
    /// Cloud Monitoring base URL for gcp scalers (`KEDA_RS_GCP_MONITORING_ENDPOINT`); the public
    /// endpoint when `None`.
    pub gcp_monitoring_endpoint: Option<String>,
}

impl Default for OperatorConfig {
    fn default() -> Self {
        Self {
            watch_namespace: None,
            max_reconciles: 5,
            max_scaled_job_reconciles: 1,
            max_concurrent_polls: 64,
            version: env!("CARGO_PKG_VERSION").to_string(),
            pod_name: None,
            auth: AuthOptions::default(),
            http: HttpSettings::default(),
            gcp_monitoring_endpoint: None,
        }
    }
}
