//! Our CRDs must accept every manifest KEDA's CRDs accept: for each property path in KEDA's
//! schemas (with its type), ours has the same path and type, allows every enum value KEDA allows,
//! requires nothing KEDA does not, and has bounds no tighter than KEDA's.

use std::path::PathBuf;

use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/keda-crds")
}

/// KEDA's schema as KEDA deploys it: controller-gen output with its JSON patches applied.
fn keda_schema(file: &str) -> Value {
    let path = fixtures().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut crd: Value = serde_yaml::from_str(&text).expect("KEDA CRD parses");
    let patch_file = match file {
        "keda.sh_scaledobjects.yaml" => Some("patch-scaledobject_patch.yaml"),
        "keda.sh_scaledjobs.yaml" => Some("patch-scaledjob_patch.yaml"),
        _ => None,
    };
    if let Some(patch_file) = patch_file {
        let text = std::fs::read_to_string(fixtures().join(patch_file)).expect("patch file");
        let ops: Vec<Value> = serde_yaml::from_str(&text).expect("patch parses");
        for op in ops {
            apply(&mut crd, &op);
        }
    }
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// The two JSON-patch operations KEDA's kustomization uses: `add` (also to `.../-`) and `remove`.
fn apply(doc: &mut Value, op: &Value) {
    let path = op["path"].as_str().expect("patch path");
    let mut parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let last = parts.pop().expect("non-empty path");
    let mut node = &mut *doc;
    for part in parts {
        let next = match part.parse::<usize>() {
            Ok(index) if node.is_array() => node.get_mut(index),
            _ => node.get_mut(part),
        };
        node = next.unwrap_or_else(|| panic!("patch path {path} does not exist"));
    }
    match (op["op"].as_str(), last) {
        (Some("add"), "-") => node
            .as_array_mut()
            .expect("array")
            .push(op["value"].clone()),
        (Some("add"), key) => {
            node[key] = op["value"].clone();
        }
        (Some("remove"), key) => {
            node.as_object_mut().expect("object").remove(key);
        }
        other => panic!("unsupported patch op {other:?}"),
    }
}

fn our_schema(file: &str) -> Value {
    let (_, crd) = keda_api::crd::all()
        .into_iter()
        .find(|(f, _)| *f == file)
        .expect("we generate it");
    keda_api::crd::schema_of(&crd)
}

fn preserves_unknown(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
}

fn schema_type(schema: &Value) -> Option<&str> {
    if schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true)
    {
        return Some("int-or-string");
    }
    schema.get("type").and_then(Value::as_str)
}

/// Records one line per gap between KEDA's schema and ours under `path`.
fn compare(keda: &Value, ours: Option<&Value>, path: &str, gaps: &mut Vec<String>) {
    let keda_type = schema_type(keda).unwrap_or("any");
    let Some(ours) = ours else {
        gaps.push(format!("{path} ({keda_type}): missing"));
        return;
    };
    if preserves_unknown(ours) && ours.get("properties").is_none() {
        return; // ours keeps anything below this point verbatim
    }
    let our_type = schema_type(ours).unwrap_or("any");
    if keda_type != our_type && our_type != "any" {
        gaps.push(format!(
            "{path}: type {keda_type} in KEDA, {our_type} in ours"
        ));
        return;
    }
    if let Some(our_enum) = ours.get("enum").and_then(Value::as_array) {
        let keda_enum = keda.get("enum").and_then(Value::as_array);
        match keda_enum {
            None => gaps.push(format!(
                "{path}: ours restricts values to an enum, KEDA does not"
            )),
            Some(values) => {
                for v in values.iter().filter(|v| !our_enum.contains(v)) {
                    gaps.push(format!(
                        "{path}: enum value {v} accepted by KEDA, not by ours"
                    ));
                }
            }
        }
    }
    let keda_required: Vec<&Value> = keda
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().collect())
        .unwrap_or_default();
    for name in ours
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if !keda_required.contains(&name) {
            gaps.push(format!("{path}: ours requires {name}, KEDA does not"));
        }
    }
    for (bound, tighter) in [
        ("minimum", 1.0),
        ("maximum", -1.0),
        ("minItems", 1.0),
        ("minLength", 1.0),
    ] {
        if let Some(our) = ours.get(bound).and_then(Value::as_f64) {
            match keda.get(bound).and_then(Value::as_f64) {
                Some(k) if (our - k) * tighter <= 0.0 => {}
                _ => gaps.push(format!(
                    "{path}: ours has {bound} {our}, KEDA {:?}",
                    keda.get(bound)
                )),
            }
        }
    }
    if let Some(props) = keda.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            let our_child = ours.get("properties").and_then(|p| p.get(name));
            compare(child, our_child, &format!("{path}.{name}"), gaps);
        }
    }
    if let Some(items) = keda.get("items") {
        compare(items, ours.get("items"), &format!("{path}[]"), gaps);
    }
    if let Some(additional) = keda.get("additionalProperties").filter(|a| a.is_object()) {
        compare(
            additional,
            ours.get("additionalProperties"),
            &format!("{path}{{}}"),
            gaps,
        );
    }
}

fn gaps_for(file: &str) -> Vec<String> {
    let mut gaps = Vec::new();
    compare(&keda_schema(file), Some(&our_schema(file)), "", &mut gaps);
    gaps
}

#[test]
fn scaled_objects_superset() {
    let gaps = gaps_for("keda.sh_scaledobjects.yaml");
    assert!(gaps.is_empty(), "{} gaps:\n{}", gaps.len(), gaps.join("\n"));
}

#[test]
fn scaled_jobs_superset() {
    let gaps = gaps_for("keda.sh_scaledjobs.yaml");
    assert!(gaps.is_empty(), "{} gaps:\n{}", gaps.len(), gaps.join("\n"));
}

#[test]
fn trigger_authentications_superset() {
    let gaps = gaps_for("keda.sh_triggerauthentications.yaml");
    assert!(gaps.is_empty(), "{} gaps:\n{}", gaps.len(), gaps.join("\n"));
}

#[test]
fn cluster_trigger_authentications_superset() {
    let gaps = gaps_for("keda.sh_clustertriggerauthentications.yaml");
    assert!(gaps.is_empty(), "{} gaps:\n{}", gaps.len(), gaps.join("\n"));
}

#[test]
fn the_comparison_catches_a_missing_path() {
    // Guard against a comparison that can never fail.
    let keda = serde_json::json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer", "enum": [1, 2]}}});
    let ours = serde_json::json!({"type": "object", "required": ["b"], "properties": {"b": {"type": "integer", "enum": [1]}}});
    let mut gaps = Vec::new();
    compare(&keda, Some(&ours), "", &mut gaps);
    assert_eq!(gaps.len(), 3, "{gaps:?}");
}
