//! The operator's settings as one plain struct. The binary (`keda-rs/src/config.rs`) parses its
//! flags and the environment once and builds this; nothing in the operator reads the environment,
//! so tests set any setting by building the struct.

use std::time::Duration;

use crate::auth::AuthOptions;

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

/// KEDA's process-wide HTTP client settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpSettings {
    /// `KEDA_HTTP_DEFAULT_TIMEOUT`: a scaler's own positive `timeout` overrides it.
    pub timeout: Duration,
    /// `KEDA_HTTP_MIN_TLS_VERSION`.
    pub min_tls_version: MinTlsVersion,
    /// `KEDA_HTTP_DISABLE_KEEP_ALIVE`: no idle connections are kept.
    pub disable_keep_alive: bool,
}

impl HttpSettings {
    /// KEDA's default when `KEDA_HTTP_DEFAULT_TIMEOUT` is unset or not a number.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(3000);
    /// KEDA's floor for a `KEDA_HTTP_DEFAULT_TIMEOUT` of zero or less.
    pub const NON_POSITIVE_TIMEOUT: Duration = Duration::from_millis(300);

    /// `KEDA_HTTP_DEFAULT_TIMEOUT` read KEDA's way: milliseconds; ≤ 0 means 300 ms; anything that
    /// is not an integer means the 3000 ms default.
    pub fn parse_timeout_ms(text: &str) -> Duration {
        match text.trim().parse::<i64>() {
            Ok(ms) if ms > 0 => Duration::from_millis(ms.unsigned_abs()),
            Ok(_) => Self::NON_POSITIVE_TIMEOUT,
            Err(_) => Self::DEFAULT_TIMEOUT,
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            timeout: Self::DEFAULT_TIMEOUT,
            min_tls_version: MinTlsVersion::Tls12,
            disable_keep_alive: false,
        }
    }
}

/// The lowest TLS version HTTP clients accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MinTlsVersion {
    #[default]
    Tls12,
    Tls13,
}

impl MinTlsVersion {
    /// `TLS13` is TLS 1.3; anything else (KEDA's `TLS10`, `TLS11`, `TLS12`) is 1.2, because
    /// rustls has no TLS 1.0/1.1.
    pub fn parse(text: &str) -> Self {
        if text == "TLS13" {
            Self::Tls13
        } else {
            Self::Tls12
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_timeout_like_keda() {
        assert_eq!(
            HttpSettings::parse_timeout_ms(" 1500 "),
            Duration::from_millis(1500)
        );
        assert_eq!(
            HttpSettings::parse_timeout_ms("0"),
            HttpSettings::NON_POSITIVE_TIMEOUT
        );
        assert_eq!(
            HttpSettings::parse_timeout_ms("-5"),
            HttpSettings::NON_POSITIVE_TIMEOUT
        );
        assert_eq!(
            HttpSettings::parse_timeout_ms("soon"),
            HttpSettings::DEFAULT_TIMEOUT
        );
    }

    #[test]
    fn min_tls() {
        assert_eq!(MinTlsVersion::parse("TLS13"), MinTlsVersion::Tls13);
        assert_eq!(MinTlsVersion::parse("TLS11"), MinTlsVersion::Tls12);
        assert_eq!(MinTlsVersion::parse(""), MinTlsVersion::Tls12);
    }
}
