//! Authentication and environment resolution (spec §7): turns a trigger's `authenticationRef` and
//! the scale target's container env into the auth params, resolved env and pod identity a scaler
//! is built from. Unlike KEDA, a missing TriggerAuthentication, Secret, ConfigMap, key or env
//! variable is an error that names it, never a silent empty value, and objects are read one by
//! one by name (least privilege; no Secret list/watch).

mod aws_secrets;
mod env;
mod expand;
mod http;
mod pod;
pub mod reader;
mod sources;
mod token;
pub mod vault;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use keda_api::ScaledObject;
use keda_api::common::ScaleTriggers;
use keda_scalers::{PodIdentity, ScalerError};
use tokio::sync::OnceCell;

pub use expand::expand;
use reader::ObjectReader;
use token::BoundTokens;

/// Operator-wide settings of resolution (flags and environment of spec §8, parsed by the binary).
#[derive(Clone, Debug)]
pub struct AuthOptions {
    /// `KEDA_CLUSTER_OBJECT_NAMESPACE`: where ClusterTriggerAuthentications read their Secrets.
    pub cluster_object_namespace: String,
    /// The operator's own namespace (`POD_NAMESPACE`).
    pub operator_namespace: String,
    /// `--filepath-auth-root-path`; `filePath` is refused without it.
    pub filepath_root: Option<PathBuf>,
    /// `KEDA_RESTRICT_SECRET_ACCESS`.
    pub restrict_secret_access: bool,
    /// `KEDA_BOUND_SERVICE_ACCOUNT_TOKEN_EXPIRY` (1h–6h).
    pub bound_token_expiry: Duration,
    /// `VAULT_TOKEN` of the operator, for Vault token authentication.
    pub vault_token: Option<String>,
    /// How long a read Secret/ConfigMap/TriggerAuthentication is reused.
    pub read_ttl: Duration,
    /// Endpoint of AWS Secrets Manager (`AWS_ENDPOINT_URL_SECRETS_MANAGER`); the SDK's default
    /// when unset.
    pub aws_secrets_manager_endpoint: Option<String>,
}

impl Default for AuthOptions {
    fn default() -> Self {
        Self {
            cluster_object_namespace: "keda".into(),
            operator_namespace: "keda".into(),
            filepath_root: None,
            restrict_secret_access: false,
            bound_token_expiry: Duration::from_secs(3600),
            vault_token: None,
            read_ttl: Duration::from_secs(2),
            aws_secrets_manager_endpoint: None,
        }
    }
}

/// `KEDA_BOUND_SERVICE_ACCOUNT_TOKEN_EXPIRY`: a Go-style duration (`1h`, `90m`, `2h30m`,
/// `3600s`) between 1h and 6h. An error makes the operator exit at startup, as KEDA does.
pub fn parse_expiry(text: &str) -> Result<Duration, String> {
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => {
                return Err(format!(
                    "invalid KEDA_BOUND_SERVICE_ACCOUNT_TOKEN_EXPIRY {text:?}"
                ));
            }
        };
        let n: u64 = number
            .parse()
            .map_err(|_| format!("invalid KEDA_BOUND_SERVICE_ACCOUNT_TOKEN_EXPIRY {text:?}"))?;
        total = total.saturating_add(n.saturating_mul(unit));
        number.clear();
    }
    if !number.is_empty() || total == 0 {
        return Err(format!(
            "invalid KEDA_BOUND_SERVICE_ACCOUNT_TOKEN_EXPIRY {text:?}"
        ));
    }
    if !(3600..=6 * 3600).contains(&total) {
        return Err(format!(
            "KEDA_BOUND_SERVICE_ACCOUNT_TOKEN_EXPIRY {text:?} must be between 1h and 6h"
        ));
    }
    Ok(Duration::from_secs(total))
}

/// Why a trigger's authentication or environment could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{kind} {name:?} not found in namespace {namespace:?} ({context})")]
    MissingObject {
        kind: &'static str,
        namespace: String,
        name: String,
        context: String,
    },
    #[error("ClusterTriggerAuthentication {name:?} not found")]
    MissingClusterAuth { name: String },
    #[error("key {key:?} not found in {kind} {namespace}/{name} ({context})")]
    MissingKey {
        kind: &'static str,
        namespace: String,
        name: String,
        key: String,
        context: String,
    },
    #[error("container {name:?} ({field}) not found in the scale target's pod template")]
    Container { field: &'static str, name: String },
    #[error("the scale target has no pod template to read {0} from")]
    NoPodTemplate(String),
    #[error("env variable {variable:?} not found in container {container:?} ({context})")]
    MissingEnv {
        variable: String,
        container: String,
        context: String,
    },
    #[error("filePath: {0}")]
    FilePath(String),
    #[error("hashiCorpVault: {0}")]
    Vault(String),
    #[error("awsSecretManager: {0}")]
    AwsSecretManager(String),
    #[error("boundServiceAccountToken: {0}")]
    Token(String),
    #[error("podIdentity: {0}")]
    PodIdentity(String),
    #[error("{0} is not supported by keda-rs yet")]
    Unsupported(&'static str),
    #[error("kubernetes API: {0}")]
    Kube(#[source] kube::Error),
}

impl AuthError {
    /// Errors that may pass by themselves (API or secret store unreachable) as opposed to a
    /// configuration that is wrong until someone changes it.
    pub fn is_transient(&self) -> bool {
        match self {
            // Forbidden stays forbidden until someone grants access: a configuration problem.
            Self::Kube(kube::Error::Api(e)) if e.code == 403 => false,
            Self::Kube(_) => true,
            Self::Vault(message) => !message.contains("HTTP 4"),
            Self::AwsSecretManager(message) => ["dispatch failure", "timeout", "connection"]
                .iter()
                .any(|m| message.contains(m)),
            _ => false,
        }
    }

    /// As a scaler error of `trigger`, naming the parameter the problem is about.
    pub fn into_scaler_error(self, trigger: String) -> ScalerError {
        if self.is_transient() {
            return ScalerError::backend(
                trigger,
                keda_scalers::BackendKind::Connect,
                format!("authentication: {self}"),
            );
        }
        let parameter = match &self {
            Self::Container { field, .. } => *field,
            Self::MissingEnv { .. } | Self::NoPodTemplate(_) => "env",
            _ => "authenticationRef",
        };
        ScalerError::config(trigger, parameter, self.to_string())
    }
}

/// Resolves triggers; shared by the ScaledObject and ScaledJob loops.
pub struct AuthResolver {
    reader: ObjectReader,
    tokens: BoundTokens,
    options: AuthOptions,
}

/// The pod template of a scalable object, read at most once per resolution and only when a
/// trigger needs it (a trigger without `*FromEnv` or TriggerAuthentication `env` needs none, so
/// the operator needs no read access to the workload for it).
pub struct WorkloadTemplate<'a> {
    source: TemplateSource<'a>,
    cell: OnceCell<Option<PodTemplateSpec>>,
}

enum TemplateSource<'a> {
    ScaledObject(&'a ScaledObject),
    Given(Option<&'a PodTemplateSpec>),
}

impl<'a> WorkloadTemplate<'a> {
    /// The template of the ScaledObject's scale target.
    pub fn for_scaled_object(so: &'a ScaledObject) -> Self {
        Self {
            source: TemplateSource::ScaledObject(so),
            cell: OnceCell::new(),
        }
    }

    /// A known template (a ScaledJob's `jobTargetRef.template`).
    pub fn given(template: Option<&'a PodTemplateSpec>) -> Self {
        Self {
            source: TemplateSource::Given(template),
            cell: OnceCell::new(),
        }
    }

    async fn get(
        &self,
        reader: &ObjectReader,
        namespace: &str,
    ) -> Result<Option<&PodTemplateSpec>, AuthError> {
        match &self.source {
            TemplateSource::Given(t) => Ok(*t),
            TemplateSource::ScaledObject(so) => Ok(self
                .cell
                .get_or_try_init(|| pod::scale_target_template(reader, so, namespace))
                .await?
                .as_ref()),
        }
    }
}

/// What a trigger resolves to.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResolvedTrigger {
    pub auth_params: BTreeMap<String, String>,
    pub resolved_env: BTreeMap<String, String>,
    pub pod_identity: Option<PodIdentity>,
}

/// A trigger needs the container env when it reads a parameter `FromEnv`.
pub fn needs_env(trigger: &ScaleTriggers) -> bool {
    trigger
        .metadata
        .iter()
        .any(|(k, v)| k.ends_with("FromEnv") && !v.trim().is_empty())
}

impl AuthResolver {
    pub fn new(client: kube::Client, options: AuthOptions) -> Self {
        Self {
            reader: ObjectReader::new(client.clone(), options.read_ttl),
            tokens: BoundTokens::new(client, options.bound_token_expiry),
            options,
        }
    }

    pub fn options(&self) -> &AuthOptions {
        &self.options
    }

    /// Forgets cached reads, so the next resolution sees a change that is known to have happened.
    pub fn invalidate(&self) {
        self.reader.invalidate();
    }

    /// Resolves one trigger of an object in `namespace`.
    pub async fn resolve(
        &self,
        namespace: &str,
        trigger: &ScaleTriggers,
        env_source_container_name: Option<&str>,
        template: &WorkloadTemplate<'_>,
    ) -> Result<ResolvedTrigger, AuthError> {
        let mut resolved = ResolvedTrigger::default();
        if needs_env(trigger) {
            let template = template.get(&self.reader, namespace).await?;
            if let Some(spec) = template.and_then(|t| t.spec.as_ref())
                && let Some(container) = env::select_container(
                    spec,
                    env_source_container_name,
                    "envSourceContainerName",
                )?
            {
                resolved.resolved_env = self.env_source(namespace).resolve(container).await?;
            }
        }
        if let Some(auth_ref) = &trigger.authentication_ref {
            sources::resolve_authentication(self, namespace, auth_ref, template, &mut resolved)
                .await?;
        }
        Ok(resolved)
    }

    fn env_source<'a>(&'a self, namespace: &'a str) -> env::EnvSource<'a> {
        env::EnvSource {
            reader: &self.reader,
            namespace,
            restrict_secret_access: self.options.restrict_secret_access,
            operator_namespace: &self.options.operator_namespace,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_bounds() {
        assert_eq!(parse_expiry("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_expiry("2h30m").unwrap(), Duration::from_secs(9000));
        assert_eq!(parse_expiry("6h").unwrap(), Duration::from_secs(21600));
        assert!(parse_expiry("59m").is_err());
        assert!(parse_expiry("7h").is_err());
        assert!(parse_expiry("1d").is_err());
        assert!(parse_expiry("").is_err());
        assert!(parse_expiry("10").is_err());
    }

    #[test]
    fn env_needed_only_for_from_env_parameters() {
        let mut trigger = ScaleTriggers::default();
        trigger.metadata.insert("listName".into(), "q".into());
        assert!(!needs_env(&trigger));
        trigger
            .metadata
            .insert("passwordFromEnv".into(), " ".into());
        assert!(!needs_env(&trigger));
        trigger
            .metadata
            .insert("passwordFromEnv".into(), "REDIS_PASSWORD".into());
        assert!(needs_env(&trigger));
    }
}
