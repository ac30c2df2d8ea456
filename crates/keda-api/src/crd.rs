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
    let mut crds = vec![
        ("keda.sh_scaledobjects.yaml", scaled_object()),
        ("keda.sh_scaledjobs.yaml", scaled_job()),
        (
            "keda.sh_triggerauthentications.yaml",
            TriggerAuthentication::crd(),
        ),
        (
            "keda.sh_clustertriggerauthentications.yaml",
            ClusterTriggerAuthentication::crd(),
        ),
    ];
    for (_, crd) in &mut crds {
        edit_schema(crd, add_type_meta);
    }
    crds
}

/// Declares apiVersion/kind/metadata at the root, as every controller-gen CRD (and KEDA's) does.
fn add_type_meta(root: &mut Value) {
    if let Some(props) = root.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert("apiVersion".into(), serde_json::json!({"type": "string"}));
        props.insert("kind".into(), serde_json::json!({"type": "string"}));
        props.insert("metadata".into(), serde_json::json!({"type": "object"}));
    }
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
    edit_schema(&mut crd, |root| {
        // KEDA's ScaledJob schema does not require `spec` at the root; stay as lenient.
        if let Some(obj) = root.as_object_mut() {
            obj.remove("required");
        }
        // Pod template labels/annotations must survive pruning verbatim (KEDA does the same).
        if let Some(meta) = property_mut(root, &["spec", "jobTargetRef", "template", "metadata"]) {
            *meta = serde_json::json!({
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
            });
        }
        if let Some(job) = property_mut(root, &["spec", "jobTargetRef"]) {
            relax_reference_names(job);
        }
        // KEDA v2.20 was built against Kubernetes 1.35, whose alpha PodSpec.workloadRef later
        // gave way to schedulingGroup; keep accepting it so existing manifests still apply.
        if let Some(pod_spec) = property_mut(root, &["spec", "jobTargetRef", "template", "spec"])
            .and_then(|s| s.get_mut("properties"))
            .and_then(Value::as_object_mut)
        {
            pod_spec.entry("workloadRef").or_insert_with(|| {
                serde_json::json!({
                    "type": "object",
                    "description": "Reference to the Workload (and PodGroup) this Pod belongs to (Kubernetes 1.35 alpha).",
                    "properties": {
                        "name": {"type": "string"},
                        "podGroup": {"type": "string"},
                        "podGroupReplicaKey": {"type": "string"},
                    },
                    "required": ["name", "podGroup"],
                })
            });
        }
    });
    crd
}

/// Object references inside a pod spec (secretRef, configMapKeyRef, imagePullSecrets, …) have a
/// `name` that the Kubernetes API defaults to "" rather than requiring; k8s-openapi marks it
/// required. Restore the API's behaviour so the same manifests validate.
fn relax_reference_names(node: &mut Value) {
    let is_reference_name = |props: &serde_json::Map<String, Value>| {
        props
            .get("name")
            .and_then(|n| n.get("description"))
            .and_then(Value::as_str)
            .is_some_and(|d| d.starts_with("Name of the referent"))
    };
    if let Some(obj) = node.as_object_mut() {
        let relax = obj
            .get("properties")
            .and_then(Value::as_object)
            .is_some_and(is_reference_name);
        if relax {
            if let Some(required) = obj.get_mut("required").and_then(Value::as_array_mut) {
                required.retain(|r| r != "name");
                if required.is_empty() {
                    obj.remove("required");
                }
            }
            if let Some(name) = obj.get_mut("properties").and_then(|p| p.get_mut("name")) {
                name["default"] = "".into();
            }
        }
        for child in obj.values_mut() {
            relax_reference_names(child);
        }
    } else if let Some(items) = node.as_array_mut() {
        for item in items {
            relax_reference_names(item);
        }
    }
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
    schema.open_api_v3_schema =
        Some(serde_json::from_value::<JSONSchemaProps>(root).unwrap_or(props));
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
