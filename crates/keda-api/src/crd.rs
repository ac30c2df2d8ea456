//! The four CustomResourceDefinitions, generated from the Rust types, with the same
//! post-generation adjustments KEDA applies to its controller-gen output.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use kube::CustomResourceExt;
use serde_json::Value;

use crate::{ClusterTriggerAuthentication, ScaledJob, ScaledObject, TriggerAuthentication};

/// File names under `config/crd/`, paired with their CRDs, in a stable order.
pub fn all() -> Vec<(&'static str, CustomResourceDefinition)> {
    vec![
        ("keda.sh_scaledobjects.yaml", scaled_object()),
        ("keda.sh_scaledjobs.yaml", scaled_job()),
        ("keda.sh_triggerauthentications.yaml", TriggerAuthentication::crd()),
        (
            "keda.sh_clustertriggerauthentications.yaml",
            ClusterTriggerAuthentication::crd(),
        ),
    ]
}

/// All four CRDs as one multi-document YAML stream, ready for `kubectl apply -f -`.
pub fn all_yaml() -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for (_, crd) in all() {
        out.push_str("---\n");
        out.push_str(&to_yaml(&crd)?);
    }
    Ok(out)
}

pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(crd)
}

/// The openAPIV3Schema of a CRD's first version, as JSON.
pub fn schema_of(crd: &CustomResourceDefinition) -> Value {
    crd.spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Null)
}

fn scaled_object() -> CustomResourceDefinition {
    let mut crd = ScaledObject::crd();
    // The HPA bounds stabilization windows to one hour; say so in the schema as KEDA does.
    edit_schema(&mut crd, |root| {
        for direction in ["scaleUp", "scaleDown"] {
            let path = [
                "spec",
                "advanced",
                "horizontalPodAutoscalerConfig",
                "behavior",
                direction,
                "stabilizationWindowSeconds",
            ];
            if let Some(window) = property_mut(root, &path) {
                window["minimum"] = 0.into();
                window["maximum"] = 3600.into();
            }
        }
    });
    crd
}

fn scaled_job() -> CustomResourceDefinition {
    let mut crd = ScaledJob::crd();
    // Pod template labels/annotations must survive pruning verbatim (KEDA does the same).
    edit_schema(&mut crd, |root| {
        if let Some(meta) = property_mut(root, &["spec", "jobTargetRef", "template", "metadata"]) {
            *meta = serde_json::json!({
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
            });
        }
    });
    crd
}

fn edit_schema(crd: &mut CustomResourceDefinition, edit: impl FnOnce(&mut Value)) {
    let Some(schema) = crd
        .spec
        .versions
        .first_mut()
        .and_then(|v| v.schema.as_mut())
    else {
        return;
    };
    let Some(props) = schema.open_api_v3_schema.take() else {
        return;
    };
    let mut root = serde_json::to_value(&props).unwrap_or(Value::Null);
    edit(&mut root);
    schema.open_api_v3_schema = Some(serde_json::from_value::<JSONSchemaProps>(root).unwrap_or(props));
}

/// Walks `properties` (and array `items`) down a path of property names.
pub fn property_mut<'a>(mut node: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    for name in path {
        while node.get("items").is_some() && node.get("properties").is_none() {
            node = node.get_mut("items")?;
        }
        node = node.get_mut("properties")?.get_mut(*name)?;
    }
    Some(node)
}
