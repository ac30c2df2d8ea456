//! The workload a ScaledObject scales, reached through its `/scale` subresource.

use k8s_openapi::api::autoscaling::v1::Scale;
use keda_api::ScaledObject;
use keda_api::scaled_object::GroupVersionKindResource;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("ScaledObject doesn't have correct scaleTargetRef specification")]
    NoName,
    #[error("Target resource doesn't exist")]
    Missing,
    #[error("Target resource doesn't expose /scale subresource")]
    NotScalable,
    #[error("cannot resolve {api_version} {kind}: {source}")]
    Unresolvable {
        api_version: String,
        kind: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot read the target's /scale: {0}")]
    Read(#[source] kube::Error),
    #[error("cannot scale the target: {0}")]
    Write(#[source] kube::Error),
}

/// A resolved scale target: its group/version/kind/resource and where it lives.
#[derive(Debug, Clone)]
pub struct ScaleTarget {
    pub gvkr: GroupVersionKindResource,
    pub namespace: String,
    pub name: String,
    resource: ApiResource,
}

impl ScaleTarget {
    /// Resolves the target of `so`. Deployments and StatefulSets need no discovery (as in KEDA);
    /// other kinds go through the apiserver's discovery.
    pub async fn resolve(client: &kube::Client, so: &ScaledObject) -> Result<Self, TargetError> {
        let target = &so.spec.scale_target_ref;
        if target.name.is_empty() {
            return Err(TargetError::NoName);
        }
        let api_version = target.api_version();
        let kind = target.kind();
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let resource = match (group, kind) {
            ("apps", "Deployment") => ApiResource::from_gvk_with_plural(&gvk, "deployments"),
            ("apps", "StatefulSet") => ApiResource::from_gvk_with_plural(&gvk, "statefulsets"),
            _ => kube::discovery::pinned_kind(client, &gvk)
                .await
                .map(|(ar, _)| ar)
                .map_err(|source| TargetError::Unresolvable {
                    api_version: api_version.to_string(),
                    kind: kind.to_string(),
                    source,
                })?,
        };
        Ok(Self {
            gvkr: GroupVersionKindResource {
                group: group.to_string(),
                version: version.to_string(),
                kind: kind.to_string(),
                resource: resource.plural.clone(),
            },
            namespace: so.metadata.namespace.clone().unwrap_or_default(),
            name: target.name.clone(),
            resource,
        })
    }

    /// `group/version.Kind`, as KEDA writes `status.scaleTargetKind`.
    pub fn kind_string(&self) -> String {
        let gv = if self.gvkr.group.is_empty() {
            self.gvkr.version.clone()
        } else {
            format!("{}/{}", self.gvkr.group, self.gvkr.version)
        };
        format!("{gv}.{}", self.gvkr.kind)
    }

    fn api(&self, client: &kube::Client) -> Api<DynamicObject> {
        Api::namespaced_with(client.clone(), &self.namespace, &self.resource)
    }

    /// Reads `/scale`; tells a missing target from one without a scale subresource.
    pub async fn check(&self, client: &kube::Client) -> Result<Scale, TargetError> {
        let api = self.api(client);
        match api.get_scale(&self.name).await {
            Ok(scale) => Ok(scale),
            Err(_) => match api.get_opt(&self.name).await {
                Ok(Some(_)) => Err(TargetError::NotScalable),
                Ok(None) => Err(TargetError::Missing),
                Err(e) => Err(TargetError::Read(e)),
            },
        }
    }

    /// The desired replicas (`spec.replicas` of `/scale`). The Scale type omits a zero, so an
    /// absent value is 0 here (the workload's own defaulting already happened).
    pub async fn replicas(&self, client: &kube::Client) -> Result<i32, TargetError> {
        let scale = self
            .api(client)
            .get_scale(&self.name)
            .await
            .map_err(TargetError::Read)?;
        Ok(scale.spec.and_then(|s| s.replicas).unwrap_or(0))
    }

    pub async fn set_replicas(
        &self,
        client: &kube::Client,
        replicas: i32,
    ) -> Result<(), TargetError> {
        let patch = serde_json::json!({"spec": {"replicas": replicas}});
        self.api(client)
            .patch_scale(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(TargetError::Write)
    }
}
