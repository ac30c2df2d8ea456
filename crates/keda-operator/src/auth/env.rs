//! The scale target container's environment (`resolvedEnv`, spec §7.2): `envFrom` first (with
//! prefixes), then `env` in order with `$(VAR)` expansion over what is resolved so far, Secret and
//! ConfigMap key references read by name. `fieldRef`/`resourceFieldRef` have no meaning outside a
//! pod and are skipped, as in KEDA.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec};

use super::AuthError;
use super::expand::expand;
use super::reader::ObjectReader;

/// The container env is read from: `name`, or the first container. A name that matches no
/// container is an error; a pod without containers has no env.
pub fn select_container<'a>(
    pod: &'a PodSpec,
    name: Option<&str>,
    field: &'static str,
) -> Result<Option<&'a Container>, AuthError> {
    match name.filter(|n| !n.is_empty()) {
        Some(name) => pod
            .containers
            .iter()
            .find(|c| c.name == name)
            .map(Some)
            .ok_or_else(|| AuthError::Container {
                field,
                name: name.to_string(),
            }),
        None => Ok(pod.containers.first()),
    }
}

/// Where env values come from and what is allowed.
pub struct EnvSource<'a> {
    pub reader: &'a ObjectReader,
    /// The workload's namespace.
    pub namespace: &'a str,
    /// `KEDA_RESTRICT_SECRET_ACCESS`: Secrets of workloads outside the operator's namespace are
    /// not read.
    pub restrict_secret_access: bool,
    pub operator_namespace: &'a str,
}

impl EnvSource<'_> {
    fn secrets_allowed(&self) -> bool {
        !self.restrict_secret_access || self.namespace == self.operator_namespace
    }

    async fn secret(&self, name: &str) -> Result<Option<BTreeMap<String, String>>, AuthError> {
        self.reader
            .secret_data(self.namespace, name)
            .await
            .map_err(AuthError::Kube)
    }

    async fn config_map(&self, name: &str) -> Result<Option<BTreeMap<String, String>>, AuthError> {
        self.reader
            .config_map_data(self.namespace, name)
            .await
            .map_err(AuthError::Kube)
    }

    /// Resolves `container`'s environment.
    pub async fn resolve(
        &self,
        container: &Container,
    ) -> Result<BTreeMap<String, String>, AuthError> {
        let mut env = BTreeMap::new();
        let context = |what: String| format!("{what} of container {:?}", container.name);
        for from in container.env_from.iter().flatten() {
            let prefix = from.prefix.as_deref().unwrap_or_default();
            if let Some(cm) = &from.config_map_ref {
                match self.config_map(&cm.name).await? {
                    Some(data) => {
                        for (k, v) in data {
                            env.insert(format!("{prefix}{k}"), v);
                        }
                    }
                    None if cm.optional == Some(true) => {}
                    None => {
                        return Err(AuthError::MissingObject {
                            kind: "ConfigMap",
                            namespace: self.namespace.to_string(),
                            name: cm.name.clone(),
                            context: context("envFrom".into()),
                        });
                    }
                }
            }
            if let Some(sr) = &from.secret_ref {
                if !self.secrets_allowed() {
                    continue;
                }
                match self.secret(&sr.name).await? {
                    Some(data) => {
                        for (k, v) in data {
                            env.insert(format!("{prefix}{k}"), v);
                        }
                    }
                    None if sr.optional == Some(true) => {}
                    None => {
                        return Err(AuthError::MissingObject {
                            kind: "Secret",
                            namespace: self.namespace.to_string(),
                            name: sr.name.clone(),
                            context: context("envFrom".into()),
                        });
                    }
                }
            }
        }
        for var in container.env.iter().flatten() {
            let Some(source) = &var.value_from else {
                let value = expand(var.value.as_deref().unwrap_or_default(), &env);
                env.insert(var.name.clone(), value);
                continue;
            };
            let value = if let Some(r) = &source.secret_key_ref {
                if !self.secrets_allowed() {
                    continue;
                }
                let data = self.secret(&r.name).await?;
                self.key_value(
                    "Secret",
                    &r.name,
                    &r.key,
                    data,
                    r.optional == Some(true),
                    context(format!("env {:?}", var.name)),
                )?
            } else if let Some(r) = &source.config_map_key_ref {
                let data = self.config_map(&r.name).await?;
                self.key_value(
                    "ConfigMap",
                    &r.name,
                    &r.key,
                    data,
                    r.optional == Some(true),
                    context(format!("env {:?}", var.name)),
                )?
            } else {
                None
            };
            if let Some(value) = value {
                env.insert(var.name.clone(), value);
            }
        }
        Ok(env)
    }

    fn key_value(
        &self,
        kind: &'static str,
        name: &str,
        key: &str,
        data: Option<BTreeMap<String, String>>,
        optional: bool,
        context: String,
    ) -> Result<Option<String>, AuthError> {
        match data {
            Some(mut data) => match data.remove(key) {
                Some(v) => Ok(Some(v)),
                None if optional => Ok(None),
                None => Err(AuthError::MissingKey {
                    kind,
                    namespace: self.namespace.to_string(),
                    name: name.to_string(),
                    key: key.to_string(),
                    context,
                }),
            },
            None if optional => Ok(None),
            None => Err(AuthError::MissingObject {
                kind,
                namespace: self.namespace.to_string(),
                name: name.to_string(),
                context,
            }),
        }
    }
}
