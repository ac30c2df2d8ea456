//! Every setting of `keda-rs` that can come from the environment, parsed once. This is the only
//! file of the product that reads the environment (clippy's `disallowed-methods` enforces it, and
//! clap does the reading): each variable is a flag with `env = "…"`, so `--help` lists them all
//! and tests set them as arguments. The operator receives a plain [`OperatorConfig`].
//!
//! Values are read the way KEDA (and keda-rs before this file existed) read them: a malformed
//! optional setting falls back to its default, except the token expiry, which stops the operator.

// The one place allowed to read the environment; clap's `env` reads go through here too.
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;

use keda_operator::auth::{AuthOptions, parse_expiry};
use keda_operator::config::{HttpSettings, OperatorConfig};

/// Flags every subcommand accepts.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct GlobalFlags {
    /// Log filter in tracing's `EnvFilter` syntax, e.g. `info,kube_client=warn`.
    #[arg(long, env = "RUST_LOG", global = true, value_name = "FILTER")]
    pub log: Option<String>,
}

/// The operator's flags that build its [`OperatorConfig`], each with its KEDA environment variable.
#[derive(clap::Args, Debug, Clone)]
pub struct OperatorFlags {
    /// Kubeconfig to use; otherwise $KUBECONFIG, ~/.kube/config, or the in-cluster configuration.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Namespaces to watch; empty watches all (KEDA's WATCH_NAMESPACE).
    #[arg(long, env = "WATCH_NAMESPACE", default_value = "")]
    pub watch_namespace: String,
    /// The operator's namespace; also where the metrics-API Service lives (KEDA's POD_NAMESPACE).
    #[arg(long, env = "POD_NAMESPACE", default_value = "keda")]
    pub pod_namespace: String,
    /// The operator pod's name, reported as the instance of its events (KEDA's POD_NAME).
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// Concurrent ScaledObject reconciles.
    #[arg(
        long,
        env = "KEDA_SCALEDOBJECT_CTRL_MAX_RECONCILES",
        default_value_t = 5
    )]
    pub max_reconciles: u16,
    /// Concurrent ScaledJob reconciles; a value that is not a number means 1.
    #[arg(long, env = "KEDA_SCALEDJOB_CTRL_MAX_RECONCILES", value_name = "N")]
    pub scaled_job_max_reconciles: Option<String>,
    /// Polls in flight at once, across all objects.
    #[arg(long, default_value_t = 64)]
    pub max_concurrent_polls: usize,
    /// Root directory for ClusterTriggerAuthentication `filePath`; empty disables `filePath`.
    #[arg(long, default_value = "")]
    pub filepath_auth_root_path: String,
    /// Where ClusterTriggerAuthentications read their Secrets; empty means the pod namespace.
    #[arg(long, env = "KEDA_CLUSTER_OBJECT_NAMESPACE", value_name = "NAMESPACE")]
    pub cluster_object_namespace: Option<String>,
    /// `true` (any case) reads TriggerAuthentication Secrets only from the cluster-object namespace.
    #[arg(long, env = "KEDA_RESTRICT_SECRET_ACCESS", value_name = "BOOL")]
    pub restrict_secret_access: Option<String>,
    /// Lifetime of bound service-account tokens, 1h to 6h (Go duration, e.g. `2h30m`).
    #[arg(
        long,
        env = "KEDA_BOUND_SERVICE_ACCOUNT_TOKEN_EXPIRY",
        value_name = "DURATION"
    )]
    pub bound_service_account_token_expiry: Option<String>,
    /// The operator's own Vault token, for Vault token authentication.
    #[arg(
        long,
        env = "VAULT_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub vault_token: Option<String>,
    /// Endpoint of AWS Secrets Manager; the SDK's default when unset.
    #[arg(long, env = "AWS_ENDPOINT_URL_SECRETS_MANAGER", value_name = "URL")]
    pub aws_endpoint_url_secrets_manager: Option<String>,
    /// Global HTTP timeout of HTTP scalers in milliseconds (≤ 0 means 300; default 3000).
    #[arg(long, env = "KEDA_HTTP_DEFAULT_TIMEOUT", value_name = "MS")]
    pub http_default_timeout: Option<String>,
    /// Minimum TLS version of HTTP scalers: `TLS13`, else TLS 1.2.
    #[arg(long, env = "KEDA_HTTP_MIN_TLS_VERSION", value_name = "VERSION")]
    pub http_min_tls_version: Option<String>,
    /// `true` keeps no idle HTTP connections.
    #[arg(long, env = "KEDA_HTTP_DISABLE_KEEP_ALIVE", value_name = "BOOL")]
    pub http_disable_keep_alive: Option<String>,
    /// Cloud Monitoring base URL for gcp scalers; the public endpoint when unset.
    #[arg(long, env = "KEDA_RS_GCP_MONITORING_ENDPOINT", value_name = "URL")]
    pub gcp_monitoring_endpoint: Option<String>,
}

/// A setting whose bad value stops the operator (as it stops KEDA).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Carries [`parse_expiry`]'s message, which names the variable.
    #[error("{0}")]
    TokenExpiry(String),
}

impl OperatorFlags {
    /// The operator's configuration from these flags.
    pub fn operator_config(&self) -> Result<OperatorConfig, ConfigError> {
        let defaults = OperatorConfig::default();
        let mut auth = AuthOptions {
            cluster_object_namespace: non_empty(self.cluster_object_namespace.as_deref())
                .unwrap_or(&self.pod_namespace)
                .to_string(),
            operator_namespace: self.pod_namespace.clone(),
            filepath_root: non_empty(Some(&self.filepath_auth_root_path)).map(PathBuf::from),
            restrict_secret_access: self
                .restrict_secret_access
                .as_deref()
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
            vault_token: non_empty(self.vault_token.as_deref()).map(str::to_string),
            aws_secrets_manager_endpoint: non_empty(
                self.aws_endpoint_url_secrets_manager.as_deref(),
            )
            .map(str::to_string),
            ..AuthOptions::default()
        };
        if let Some(expiry) = non_empty(self.bound_service_account_token_expiry.as_deref()) {
            auth.bound_token_expiry = parse_expiry(expiry).map_err(ConfigError::TokenExpiry)?;
        }
        let http = HttpSettings::from_raw(
            self.http_default_timeout.as_deref(),
            self.http_min_tls_version.as_deref(),
            self.http_disable_keep_alive.as_deref(),
        );
        Ok(OperatorConfig {
            watch_namespace: Some(self.watch_namespace.trim_matches('"').to_string())
                .filter(|n| !n.is_empty()),
            max_reconciles: self.max_reconciles,
            max_scaled_job_reconciles: self
                .scaled_job_max_reconciles
                .as_deref()
                .and_then(|v| v.parse::<u16>().ok())
                .unwrap_or(defaults.max_scaled_job_reconciles),
            max_concurrent_polls: self.max_concurrent_polls,
            pod_name: self.pod_name.clone(),
            auth,
            http,
            gcp_monitoring_endpoint: self
                .gcp_monitoring_endpoint
                .as_deref()
                .filter(|v| !v.trim().is_empty())
                .map(str::to_string),
            ..defaults
        })
    }
}

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.is_empty())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        flags: OperatorFlags,
    }

    /// Flags only: the environment of whoever runs the tests is not consulted, because every
    /// value given on the command line wins over its variable.
    fn config(args: &[&str]) -> Result<OperatorConfig, ConfigError> {
        let mut argv = vec!["keda-rs", "--pod-namespace", "ops"];
        argv.extend_from_slice(args);
        for (flag, value) in [
            ("--watch-namespace", ""),
            ("--cluster-object-namespace", ""),
            ("--restrict-secret-access", ""),
            ("--bound-service-account-token-expiry", ""),
            ("--vault-token", ""),
            ("--aws-endpoint-url-secrets-manager", ""),
            ("--http-default-timeout", "3000"),
            ("--http-min-tls-version", "TLS12"),
            ("--http-disable-keep-alive", "false"),
            ("--gcp-monitoring-endpoint", ""),
            ("--scaled-job-max-reconciles", "1"),
            ("--pod-name", ""),
            ("--max-reconciles", "5"),
        ] {
            if !args.contains(&flag) {
                argv.extend([flag, value]);
            }
        }
        Cli::try_parse_from(argv).unwrap().flags.operator_config()
    }

    #[test]
    fn defaults_follow_keda() {
        let c = config(&[]).unwrap();
        assert_eq!(c.watch_namespace, None);
        assert_eq!(c.auth.cluster_object_namespace, "ops");
        assert_eq!(c.auth.operator_namespace, "ops");
        assert!(!c.auth.restrict_secret_access);
        assert_eq!(c.auth.bound_token_expiry, Duration::from_secs(3600));
        assert_eq!(c.auth.vault_token, None);
        assert_eq!(c.max_scaled_job_reconciles, 1);
        assert_eq!(c.http, HttpSettings::default());
        assert_eq!(c.gcp_monitoring_endpoint, None);
    }

    #[test]
    fn values_are_read_like_before() {
        let c = config(&[
            "--cluster-object-namespace",
            "shared",
            "--restrict-secret-access",
            "TRUE",
            "--bound-service-account-token-expiry",
            "2h30m",
            "--vault-token",
            "s.token",
            "--http-default-timeout",
            "0",
            "--http-min-tls-version",
            "TLS13",
            "--http-disable-keep-alive",
            " true ",
            "--scaled-job-max-reconciles",
            "many",
            "--watch-namespace",
            "\"team\"",
        ])
        .unwrap();
        assert_eq!(c.auth.cluster_object_namespace, "shared");
        assert!(c.auth.restrict_secret_access);
        assert_eq!(c.auth.bound_token_expiry, Duration::from_secs(9000));
        assert_eq!(c.auth.vault_token.as_deref(), Some("s.token"));
        assert_eq!(c.http.default_timeout, Duration::from_millis(300));
        assert_eq!(c.http.min_tls_version, keda_scalers::MinTlsVersion::Tls13);
        assert!(c.http.disable_keep_alive);
        assert_eq!(c.max_scaled_job_reconciles, 1);
        assert_eq!(c.watch_namespace.as_deref(), Some("team"));
    }

    #[test]
    fn token_expiry_out_of_bounds_stops_the_operator() {
        let e = config(&["--bound-service-account-token-expiry", "7h"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "KEDA_BOUND_SERVICE_ACCOUNT_TOKEN_EXPIRY \"7h\" must be between 1h and 6h"
        );
    }
}
