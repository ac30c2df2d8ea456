//! The pod template whose env triggers read (spec §7.1): a Deployment's or StatefulSet's
//! `spec.template` by typed read, any other PodSpecable kind through discovery and `spec.template`.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use keda_api::ScaledObject;
use kube::api::{Api, DynamicObject};
use kube::core::GroupVersionKind;

use super::AuthError;
use super::reader::ObjectReader;

/// The template of `so`'s scale target; `None` when the target is missing or has no template.
pub async fn scale_target_template(
    reader: &ObjectReader,
    so: &ScaledObject,
    namespace: &str,
) -> Result<Option<PodTemplateSpec>, AuthError> {
    let target = &so.spec.scale_target_ref;
    let api_version = target.api_version();
    let kind = target.kind();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    match (group, kind) {
        ("apps", "Deployment") => Ok(reader
            .namespaced::<Deployment>(namespace, &target.name)
            .await
            .map_err(AuthError::Kube)?
            .map(|d| d.spec.template.clone())),
        ("apps", "StatefulSet") => Ok(reader
            .namespaced::<StatefulSet>(namespace, &target.name)
            .await
            .map_err(AuthError::Kube)?
            .map(|s| s.spec.template.clone())),
        _ => {
            let gvk = GroupVersionKind::gvk(group, version, kind);
            let (resource, _) = kube::discovery::pinned_kind(reader.client(), &gvk)
                .await
                .map_err(AuthError::Kube)?;
            let api: Api<DynamicObject> =
                Api::namespaced_with(reader.client().clone(), namespace, &resource);
            let Some(object) = api.get_opt(&target.name).await.map_err(AuthError::Kube)? else {
                return Ok(None);
            };
            let template = object
                .data
                .get("spec")
                .and_then(|s| s.get("template"))
                .cloned();
            Ok(template.and_then(|t| serde_json::from_value(t).ok()))
        }
    }
}
