//! The TriggerAuthentication / ClusterTriggerAuthentication sources, in KEDA's order (spec §7.3):
//! pod identity, container env, filePath (CTA only, replaces everything), ConfigMaps, Secrets,
//! Vault, the cloud secret managers, bound ServiceAccount tokens, OAuth2. A later source
//! overwrites an earlier one that sets the same parameter.

use std::collections::BTreeMap;
use std::path::{Component, Path};

use k8s_openapi::api::core::v1::ServiceAccount;
use keda_api::common::{AuthenticationRef, AuthenticationRefKind};
use keda_api::trigger_auth::{
    AuthPodIdentity, AuthenticationSpec, IdentityOwner, PodIdentityProvider,
};
use keda_api::{ClusterTriggerAuthentication, TriggerAuthentication};
use keda_scalers::PodIdentity;

use super::env::select_container;
use super::vault::{self, Jwt};
use super::{AuthError, AuthResolver, ResolvedTrigger, WorkloadTemplate};

const ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";

pub async fn resolve_authentication(
    resolver: &AuthResolver,
    namespace: &str,
    auth_ref: &AuthenticationRef,
    template: &WorkloadTemplate<'_>,
    out: &mut ResolvedTrigger,
) -> Result<(), AuthError> {
    let reader = &resolver.reader;
    let options = &resolver.options;
    let cluster = auth_ref.kind == Some(AuthenticationRefKind::ClusterTriggerAuthentication);
    let (spec, trigger_namespace, owner) = if cluster {
        let cta = reader
            .cluster::<ClusterTriggerAuthentication>(&auth_ref.name)
            .await
            .map_err(AuthError::Kube)?
            .ok_or_else(|| AuthError::MissingClusterAuth {
                name: auth_ref.name.clone(),
            })?;
        (
            cta.spec.auth.clone(),
            options.cluster_object_namespace.clone(),
            format!("ClusterTriggerAuthentication {:?}", auth_ref.name),
        )
    } else {
        let ta = reader
            .namespaced::<TriggerAuthentication>(namespace, &auth_ref.name)
            .await
            .map_err(AuthError::Kube)?
            .ok_or_else(|| AuthError::MissingObject {
                kind: "TriggerAuthentication",
                namespace: namespace.to_string(),
                name: auth_ref.name.clone(),
                context: "authenticationRef".into(),
            })?;
        (
            ta.spec.auth.clone(),
            namespace.to_string(),
            format!("TriggerAuthentication {:?}", auth_ref.name),
        )
    };
    let ctx = Step {
        resolver,
        namespace,
        trigger_namespace: &trigger_namespace,
        owner: &owner,
        template,
    };
    let params = &mut out.auth_params;

    let identity = spec.pod_identity.clone().unwrap_or_default();
    out.pod_identity = Some(to_scaler_identity(&identity));

    for e in spec.env.iter().flatten() {
        let value = ctx
            .container_env(e.container_name.as_deref(), &e.name, &e.parameter)
            .await?;
        params.insert(e.parameter.clone(), value);
    }

    if let Some(path) = spec.file_path.as_deref().filter(|p| !p.is_empty()) {
        if !cluster {
            return Err(AuthError::FilePath(format!(
                "{owner}: filePath is only allowed on a ClusterTriggerAuthentication"
            )));
        }
        *params = read_file_params(options.filepath_root.as_deref(), path)?;
        return Ok(());
    }

    for r in spec.config_map_target_ref.iter().flatten() {
        let context = format!("configMapTargetRef parameter {:?} of {owner}", r.parameter);
        let value = ctx.config_map_key(&r.name, &r.key, context).await?;
        params.insert(r.parameter.clone(), value);
    }
    for r in spec.secret_target_ref.iter().flatten() {
        let context = format!("secretTargetRef parameter {:?} of {owner}", r.parameter);
        let value = ctx.secret_key(&r.name, &r.key, context).await?;
        params.insert(r.parameter.clone(), value);
    }
    if let Some(v) = &spec.hashi_corp_vault {
        let jwt = match v.credential.as_ref() {
            Some(c)
                if c.service_account_name
                    .as_deref()
                    .is_some_and(|n| !n.is_empty()) =>
            {
                let sa = c.service_account_name.as_deref().unwrap_or_default();
                // As KEDA: the token is requested in the scalable object's namespace.
                Some(Jwt::Token(resolver.tokens.token(namespace, sa).await?))
            }
            Some(c) if c.service_account.as_deref().is_some_and(|p| !p.is_empty()) => {
                Some(Jwt::File(c.service_account.clone().unwrap_or_default()))
            }
            _ => None,
        };
        vault::resolve(v, options.vault_token.as_deref(), jwt, params).await?;
    }
    if spec.azure_key_vault.is_some() {
        return Err(AuthError::Unsupported("azureKeyVault"));
    }
    if spec.gcp_secret_manager.is_some() {
        return Err(AuthError::Unsupported("gcpSecretManager"));
    }
    if let Some(aws) = &spec.aws_secret_manager {
        let keys = match &aws.credentials {
            Some(c) => {
                let context =
                    |what: &str| format!("awsSecretManager.credentials.{what} of {owner}");
                Some(super::aws_secrets::StaticKeys {
                    access_key: ctx.value_from(&c.access_key, context("accessKey")).await?,
                    secret_key: ctx
                        .value_from(&c.access_secret_key, context("accessSecretKey"))
                        .await?,
                    session_token: match &c.access_token {
                        Some(t) => Some(ctx.value_from(t, context("accessToken")).await?),
                        None => None,
                    },
                })
            }
            None => None,
        };
        super::aws_secrets::resolve(
            aws,
            keys,
            options.aws_secrets_manager_endpoint.as_deref(),
            params,
        )
        .await?;
    }
    for b in spec.bound_service_account_token.iter().flatten() {
        let token = resolver
            .tokens
            .token(&trigger_namespace, &b.service_account_name)
            .await?;
        params.insert(b.parameter.clone(), token);
    }
    if let Some(o) = &spec.oauth2 {
        params.insert("oauthTokenURI".into(), o.token_url.clone());
        params.insert("clientID".into(), o.client_id.clone());
        if let Some(secret) = &o.client_secret {
            let r = &secret.value_from.secret_key_ref;
            let context = format!("oauth2.clientSecret of {owner}");
            params.insert(
                "clientSecret".into(),
                ctx.secret_key(&r.name, &r.key, context).await?,
            );
        }
        if let Some(scopes) = &o.scopes {
            params.insert("scopes".into(), scopes.join(","));
        }
        if let Some(extra) = &o.token_url_params {
            params.insert("endpointParams".into(), url_encode(extra));
        }
    }
    ctx.apply_pod_identity(&spec, &identity, out).await
}

struct Step<'a> {
    resolver: &'a AuthResolver,
    namespace: &'a str,
    trigger_namespace: &'a str,
    owner: &'a str,
    template: &'a WorkloadTemplate<'a>,
}

impl Step<'_> {
    async fn container_env(
        &self,
        container: Option<&str>,
        variable: &str,
        parameter: &str,
    ) -> Result<String, AuthError> {
        let context = format!("env parameter {parameter:?} of {}", self.owner);
        let template = self
            .template
            .get(&self.resolver.reader, self.namespace)
            .await?
            .and_then(|t| t.spec.as_ref())
            .ok_or_else(|| AuthError::NoPodTemplate(context.clone()))?;
        // As KEDA: `containerName`, else the first container (not envSourceContainerName).
        let Some(c) = select_container(template, container, "env.containerName")? else {
            return Err(AuthError::NoPodTemplate(context));
        };
        let env = self.resolver.env_source(self.namespace).resolve(c).await?;
        env.get(variable)
            .cloned()
            .ok_or_else(|| AuthError::MissingEnv {
                variable: variable.to_string(),
                container: c.name.clone(),
                context,
            })
    }

    /// Secrets are read in the trigger namespace, or in the cluster-object namespace when secret
    /// access is restricted.
    fn secret_namespace(&self) -> &str {
        if self.resolver.options.restrict_secret_access {
            &self.resolver.options.cluster_object_namespace
        } else {
            self.trigger_namespace
        }
    }

    async fn secret_key(
        &self,
        name: &str,
        key: &str,
        context: String,
    ) -> Result<String, AuthError> {
        let namespace = self.secret_namespace();
        let data = self
            .resolver
            .reader
            .secret_data(namespace, name)
            .await
            .map_err(AuthError::Kube)?;
        pick("Secret", namespace, name, key, data, context)
    }

    async fn value_from(
        &self,
        source: &keda_api::trigger_auth::ValueFromSecret,
        context: String,
    ) -> Result<String, AuthError> {
        let r = &source.value_from.secret_key_ref;
        self.secret_key(&r.name, &r.key, context).await
    }

    async fn config_map_key(
        &self,
        name: &str,
        key: &str,
        context: String,
    ) -> Result<String, AuthError> {
        let data = self
            .resolver
            .reader
            .config_map_data(self.trigger_namespace, name)
            .await
            .map_err(AuthError::Kube)?;
        pick(
            "ConfigMap",
            self.trigger_namespace,
            name,
            key,
            data,
            context,
        )
    }

    /// Post-processing of spec §7.3: the AWS role from the workload's ServiceAccount, and the
    /// azure-workload identity check.
    async fn apply_pod_identity(
        &self,
        _spec: &AuthenticationSpec,
        identity: &AuthPodIdentity,
        out: &mut ResolvedTrigger,
    ) -> Result<(), AuthError> {
        match identity.provider {
            PodIdentityProvider::Aws => {
                if identity.identity_owner == Some(IdentityOwner::Workload) {
                    let arn = self.workload_role_arn().await?.ok_or_else(|| {
                        AuthError::PodIdentity(format!(
                            "identityOwner workload needs the annotation {ROLE_ARN_ANNOTATION} on the workload's ServiceAccount"
                        ))
                    })?;
                    out.auth_params.insert("awsRoleArn".into(), arn);
                } else if let Some(arn) = identity.role_arn.as_deref().filter(|a| !a.is_empty()) {
                    out.auth_params.insert("awsRoleArn".into(), arn.to_string());
                }
            }
            PodIdentityProvider::AwsEks => {
                if let Some(arn) = self.workload_role_arn().await? {
                    out.auth_params.insert("awsRoleArn".into(), arn);
                }
            }
            PodIdentityProvider::AzureWorkload => {
                if identity.identity_id.as_deref() == Some("") {
                    return Err(AuthError::PodIdentity(
                        "identityId of azure-workload must not be empty".into(),
                    ));
                }
            }
            PodIdentityProvider::Gcp | PodIdentityProvider::None => {}
        }
        Ok(())
    }

    async fn workload_role_arn(&self) -> Result<Option<String>, AuthError> {
        let template = self
            .template
            .get(&self.resolver.reader, self.namespace)
            .await?;
        let account = template
            .and_then(|t| t.spec.as_ref())
            .and_then(|s| s.service_account_name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".to_string());
        let sa = self
            .resolver
            .reader
            .namespaced::<ServiceAccount>(self.namespace, &account)
            .await
            .map_err(AuthError::Kube)?;
        Ok(sa.and_then(|sa| {
            sa.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ROLE_ARN_ANNOTATION).cloned())
        }))
    }
}

fn pick(
    kind: &'static str,
    namespace: &str,
    name: &str,
    key: &str,
    data: Option<BTreeMap<String, String>>,
    context: String,
) -> Result<String, AuthError> {
    let mut data = data.ok_or_else(|| AuthError::MissingObject {
        kind,
        namespace: namespace.to_string(),
        name: name.to_string(),
        context: context.clone(),
    })?;
    data.remove(key).ok_or_else(|| AuthError::MissingKey {
        kind,
        namespace: namespace.to_string(),
        name: name.to_string(),
        key: key.to_string(),
        context,
    })
}

fn to_scaler_identity(identity: &AuthPodIdentity) -> PodIdentity {
    let provider = match identity.provider {
        PodIdentityProvider::AzureWorkload => "azure-workload",
        PodIdentityProvider::Gcp => "gcp",
        PodIdentityProvider::Aws => "aws",
        PodIdentityProvider::AwsEks => "aws-eks",
        PodIdentityProvider::None => "none",
    };
    PodIdentity {
        provider: provider.to_string(),
        identity_id: identity.identity_id.clone(),
        identity_tenant_id: identity.identity_tenant_id.clone(),
        identity_authority_host: identity.identity_authority_host.clone(),
        role_arn: identity.role_arn.clone(),
        external_id: identity.external_id.clone(),
        identity_owner: identity.identity_owner.map(|o| match o {
            IdentityOwner::Keda => "keda".to_string(),
            IdentityOwner::Workload => "workload".to_string(),
        }),
    }
}

/// `filePath`: a relative path without `..` under the configured root, holding a JSON object of
/// strings.
pub fn read_file_params(
    root: Option<&Path>,
    relative: &str,
) -> Result<BTreeMap<String, String>, AuthError> {
    let root = root.ok_or_else(|| {
        AuthError::FilePath("the operator runs without --filepath-auth-root-path".into())
    })?;
    let path = Path::new(relative);
    let safe = !relative.is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !safe {
        return Err(AuthError::FilePath(format!(
            "{relative:?} must be a relative path without '..'"
        )));
    }
    let full = root.join(path);
    let text = std::fs::read_to_string(&full)
        .map_err(|e| AuthError::FilePath(format!("cannot read {}: {e}", full.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        AuthError::FilePath(format!(
            "{} is not a JSON object of strings: {e}",
            full.display()
        ))
    })
}

fn url_encode(params: &BTreeMap<String, String>) -> String {
    fn enc(s: &str) -> String {
        let mut out = String::new();
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    out.push(char::from(b));
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    }
    params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_params_refuse_escapes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("creds.json"), r#"{"password":"pw"}"#).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/x.json"), r#"{"a":"b"}"#).unwrap();
        let root = Some(dir.path());
        assert_eq!(
            read_file_params(root, "creds.json").unwrap()["password"],
            "pw"
        );
        assert_eq!(read_file_params(root, "sub/x.json").unwrap()["a"], "b");
        for bad in ["../creds.json", "/etc/passwd", "sub/../../x", ""] {
            assert!(read_file_params(root, bad).is_err(), "{bad}");
        }
        assert!(read_file_params(None, "creds.json").is_err());
        std::fs::write(dir.path().join("bad.json"), r#"{"a":1}"#).unwrap();
        assert!(read_file_params(root, "bad.json").is_err());
    }

    #[test]
    fn endpoint_params_are_url_encoded() {
        let params: BTreeMap<String, String> = [("audience", "a b"), ("x", "1&2")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(url_encode(&params), "audience=a+b&x=1%262");
    }
}
