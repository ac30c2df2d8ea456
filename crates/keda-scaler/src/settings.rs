//! Process-wide settings every scaler shares, parsed once by the binary (from KEDA's environment
//! variables and flags) and handed to the scalers through [`crate::Pools`]. Nothing here reads the
//! environment: the parsing rules take the raw values, so they are tested like any function.

use std::collections::BTreeMap;
use std::time::Duration;

/// KEDA's default for `KEDA_HTTP_DEFAULT_TIMEOUT` (milliseconds).
const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_millis(3000);
/// KEDA's floor for a non-positive `KEDA_HTTP_DEFAULT_TIMEOUT`.
const NON_POSITIVE_HTTP_TIMEOUT: Duration = Duration::from_millis(300);
/// How long one read of a scaler may take unless its descriptor says otherwise.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings for every scaler of the process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScalerSettings {
    /// Upper bound for one read (poll) of a scaler; a descriptor may raise it (kafka).
    pub read_timeout: Duration,
    /// The HTTP clients' defaults.
    pub http: HttpSettings,
    /// Base URLs that replace a cloud service's public endpoint (private endpoints, tests), keyed by
    /// the service's name as the scaler documents it (e.g. `gcp-monitoring`).
    pub endpoints: BTreeMap<String, String>,
}

impl Default for ScalerSettings {
    fn default() -> Self {
        Self {
            read_timeout: DEFAULT_READ_TIMEOUT,
            http: HttpSettings::default(),
            endpoints: BTreeMap::new(),
        }
    }
}

impl ScalerSettings {
    /// The override for `service`, if one is set and not blank.
    pub fn endpoint(&self, service: &str) -> Option<&str> {
        self.endpoints
            .get(service)
            .map(|url| url.trim())
            .filter(|url| !url.is_empty())
    }
}

/// Minimum TLS version of outgoing HTTPS (`KEDA_HTTP_MIN_TLS_VERSION`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MinTlsVersion {
    /// TLS 1.2 (KEDA's default; rustls has no 1.0/1.1, so those mean 1.2 as well).
    #[default]
    Tls12,
    /// TLS 1.3.
    Tls13,
}

/// Defaults of every HTTP client (KEDA's `KEDA_HTTP_*` variables).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HttpSettings {
    /// Request timeout unless a trigger sets its own `timeout`.
    pub default_timeout: Duration,
    /// Minimum TLS version.
    pub min_tls_version: MinTlsVersion,
    /// No idle connections are kept for reuse.
    pub disable_keep_alive: bool,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            default_timeout: DEFAULT_HTTP_TIMEOUT,
            min_tls_version: MinTlsVersion::Tls12,
            disable_keep_alive: false,
        }
    }
}

impl HttpSettings {
    /// KEDA's reading of the three variables' raw values (`None`: unset). The timeout is in
    /// milliseconds: positive is taken, zero or negative means 300 ms, anything else the default
    /// 3000 ms. `TLS13` raises the minimum version; keep-alive is off only for exactly `true`.
    pub fn from_raw(
        timeout_ms: Option<&str>,
        min_tls_version: Option<&str>,
        disable_keep_alive: Option<&str>,
    ) -> Self {
        let default_timeout = match timeout_ms.map(|raw| raw.trim().parse::<i64>()) {
            Some(Ok(ms)) if ms > 0 => Duration::from_millis(ms.unsigned_abs()),
            Some(Ok(_)) => NON_POSITIVE_HTTP_TIMEOUT,
            Some(Err(_)) | None => DEFAULT_HTTP_TIMEOUT,
        };
        let min_tls_version = match min_tls_version.map(str::trim) {
            Some("TLS13") => MinTlsVersion::Tls13,
            _ => MinTlsVersion::Tls12,
        };
        Self {
            default_timeout,
            min_tls_version,
            disable_keep_alive: disable_keep_alive.is_some_and(|v| v.trim() == "true"),
        }
    }

    /// A trigger's `timeout` parameter wins when it is positive.
    pub fn effective_timeout(&self, trigger_timeout: Option<Duration>) -> Duration {
        trigger_timeout
            .filter(|t| !t.is_zero())
            .unwrap_or(self.default_timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_settings_follow_keda() {
        let default = HttpSettings::from_raw(None, None, None);
        assert_eq!(default, HttpSettings::default());
        assert_eq!(default.default_timeout, Duration::from_millis(3000));
        let set = HttpSettings::from_raw(Some(" 1500 "), Some("TLS13"), Some("true"));
        assert_eq!(set.default_timeout, Duration::from_millis(1500));
        assert_eq!(set.min_tls_version, MinTlsVersion::Tls13);
        assert!(set.disable_keep_alive);
        for non_positive in ["0", "-5"] {
            let s = HttpSettings::from_raw(Some(non_positive), Some("TLS10"), Some("1"));
            assert_eq!(s.default_timeout, Duration::from_millis(300));
            assert_eq!(s.min_tls_version, MinTlsVersion::Tls12);
            assert!(!s.disable_keep_alive);
        }
        let junk = HttpSettings::from_raw(Some("3s"), None, None);
        assert_eq!(junk.default_timeout, Duration::from_millis(3000));
    }

    #[test]
    fn trigger_timeout_wins_when_positive() {
        let s = HttpSettings::default();
        assert_eq!(
            s.effective_timeout(Some(Duration::from_millis(50))),
            Duration::from_millis(50)
        );
        assert_eq!(s.effective_timeout(Some(Duration::ZERO)), s.default_timeout);
        assert_eq!(s.effective_timeout(None), s.default_timeout);
    }

    #[test]
    fn blank_endpoint_overrides_are_ignored() {
        let mut s = ScalerSettings::default();
        s.endpoints.insert("gcp-monitoring".into(), "  ".into());
        assert_eq!(s.endpoint("gcp-monitoring"), None);
        s.endpoints
            .insert("gcp-monitoring".into(), "http://127.0.0.1:1".into());
        assert_eq!(s.endpoint("gcp-monitoring"), Some("http://127.0.0.1:1"));
    }
}
