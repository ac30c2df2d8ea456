//! Offline validation of KEDA manifests: the structural checks the apiserver would apply with our
//! CRD schemas (types, required fields, enums, bounds, unknown fields), then the CRD's CEL rule.
//! Later layers (webhook rules, scaler metadata) add their own problems on top.

use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value;

use crate::crd;
// Re-exported: `keda_api::validate::{Problem, Severity}` is how callers have always named them.
pub use crate::problem::{Problem, Severity};
use crate::scaled_object::ScaledObjectSpec;

/// The KEDA kinds this crate knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ScaledObject,
    ScaledJob,
    TriggerAuthentication,
    ClusterTriggerAuthentication,
}

impl Kind {
    pub fn from_name(kind: &str) -> Option<Self> {
        match kind {
            "ScaledObject" => Some(Self::ScaledObject),
            "ScaledJob" => Some(Self::ScaledJob),
            "TriggerAuthentication" => Some(Self::TriggerAuthentication),
            "ClusterTriggerAuthentication" => Some(Self::ClusterTriggerAuthentication),
            _ => None,
        }
    }

    fn crd_file(self) -> &'static str {
        match self {
            Self::ScaledObject => "keda.sh_scaledobjects.yaml",
            Self::ScaledJob => "keda.sh_scaledjobs.yaml",
            Self::TriggerAuthentication => "keda.sh_triggerauthentications.yaml",
            Self::ClusterTriggerAuthentication => "keda.sh_clustertriggerauthentications.yaml",
        }
    }
}

/// Validates one KEDA object (already parsed from YAML/JSON) against the schema of its kind and
/// the CRD-level rules. The caller has checked `apiVersion`/`kind`.
pub fn validate_object(kind: Kind, object: &Value) -> Vec<Problem> {
    let schema = schema_for(kind);
    let mut problems = Vec::new();
    check_schema(schema, object, "", &mut problems, true);
    if kind == Kind::ScaledObject {
        check_scaled_object_rules(object, &mut problems);
    }
    if matches!(
        kind,
        Kind::TriggerAuthentication | Kind::ClusterTriggerAuthentication
    ) && let Some(spec) = object.get("spec")
        // Shape errors are already reported by the schema check.
        && let Ok(spec) = crate::trigger_auth::AuthenticationSpec::deserialize(spec)
    {
        problems.extend(crate::rules::auth::check_authentication(
            &spec,
            kind == Kind::ClusterTriggerAuthentication,
        ));
    }
    if kind == Kind::ScaledJob && object.pointer("/spec/cooldownPeriod").is_some() {
        problems.push(Problem::warning(
            "spec.cooldownPeriod",
            "has no effect on a ScaledJob (accepted only so existing manifests apply)",
        ));
    }
    problems
}

/// Generating a schema walks k8s-openapi's whole JobSpec; do it once per process.
fn schema_for(kind: Kind) -> &'static Value {
    static SCHEMAS: OnceLock<Vec<(&'static str, Value)>> = OnceLock::new();
    static NONE: Value = Value::Null;
    SCHEMAS
        .get_or_init(|| {
            crd::all()
                .into_iter()
                .map(|(file, crd)| (file, crd::schema_of(&crd)))
                .collect()
        })
        .iter()
        .find(|(file, _)| *file == kind.crd_file())
        .map_or(&NONE, |(_, schema)| schema)
}

fn check_scaled_object_rules(object: &Value, problems: &mut Vec<Problem>) {
    let Some(spec) = object.get("spec").filter(|s| s.is_object()) else {
        return;
    };
    // Evaluate the CRD's own CEL rule (the same source the apiserver runs) only when the
    // fields it reads have the right types; type errors were reported already.
    let ints_ok = ["minReplicaCount", "maxReplicaCount"]
        .iter()
        .all(|f| spec.get(f).is_none_or(|v| v.is_null() || v.is_i64()));
    if !ints_ok {
        return;
    }
    if let Err(errors) = ScaledObjectSpec::validate_cel(spec, None) {
        let text = errors.to_string();
        let message =
            if text.contains("minReplicaCount must be less than or equal to maxReplicaCount") {
                "minReplicaCount must be less than or equal to maxReplicaCount".to_string()
            } else {
                text
            };
        problems.push(Problem::error("spec.minReplicaCount", message));
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Walks `value` against a structural OpenAPI v3 schema as the apiserver would.
/// `is_root` skips `metadata` and the type meta, which the apiserver validates itself.
fn check_schema(
    schema: &Value,
    value: &Value,
    path: &str,
    problems: &mut Vec<Problem>,
    is_root: bool,
) {
    if value.is_null() {
        // Nulls in non-nullable fields are pruned by the apiserver, never rejected.
        return;
    }
    if schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true)
    {
        if !(value.is_string() || value.is_i64() || value.is_u64()) {
            problems.push(Problem::error(
                path,
                format!("must be an integer or a string, not {}", type_name(value)),
            ));
        }
        return;
    }
    let expected = schema.get("type").and_then(Value::as_str);
    let actual = type_name(value);
    let type_ok = match expected {
        None => true,
        Some("number") => matches!(actual, "integer" | "number"),
        Some(t) => t == actual,
    };
    if !type_ok {
        problems.push(Problem::error(
            path,
            format!("must be of type {}, not {actual}", expected.unwrap_or("?")),
        ));
        return;
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.iter().any(|o| o == value)
    {
        let allowed: Vec<String> = options
            .iter()
            .filter(|o| !o.is_null())
            .map(|o| o.to_string())
            .collect();
        problems.push(Problem::error(
            path,
            format!(
                "unsupported value {value}: must be one of {}",
                allowed.join(", ")
            ),
        ));
    }
    match value {
        Value::Number(n) => {
            if let (Some(min), Some(x)) =
                (schema.get("minimum").and_then(Value::as_f64), n.as_f64())
                && x < min
            {
                problems.push(Problem::error(
                    path,
                    format!("must be greater than or equal to {min}"),
                ));
            }
            if let (Some(max), Some(x)) =
                (schema.get("maximum").and_then(Value::as_f64), n.as_f64())
                && x > max
            {
                problems.push(Problem::error(
                    path,
                    format!("must be less than or equal to {max}"),
                ));
            }
            if schema.get("format").and_then(Value::as_str) == Some("int32")
                && n.as_i64().is_none_or(|x| i32::try_from(x).is_err())
            {
                problems.push(Problem::error(path, "must fit in a 32-bit integer"));
            }
        }
        Value::String(s) => {
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
                && (s.chars().count() as u64) < min
            {
                problems.push(Problem::error(
                    path,
                    format!("must be at least {min} character(s) long"),
                ));
            }
        }
        Value::Array(items) => {
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                problems.push(Problem::error(
                    path,
                    format!("must have at least {min} item(s)"),
                ));
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check_schema(item_schema, item, &format!("{path}[{i}]"), problems, false);
                }
            }
        }
        Value::Object(map) => {
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for name in required.iter().filter_map(Value::as_str) {
                    if map.get(name).is_none_or(Value::is_null) {
                        problems.push(Problem::error(
                            &join(path, name),
                            "required field is missing",
                        ));
                    }
                }
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let preserve = schema
                .get("x-kubernetes-preserve-unknown-fields")
                .and_then(Value::as_bool)
                == Some(true);
            for (name, child) in map {
                let child_path = join(path, name);
                if is_root && matches!(name.as_str(), "metadata" | "apiVersion" | "kind") {
                    continue;
                }
                if let Some(child_schema) = properties.and_then(|p| p.get(name)) {
                    check_schema(child_schema, child, &child_path, problems, false);
                } else if let Some(additional) = additional.filter(|a| a.is_object()) {
                    check_schema(additional, child, &child_path, problems, false);
                } else if !preserve && (properties.is_some() || additional.is_some()) {
                    problems.push(Problem::warning(
                        &child_path,
                        "unknown field (the apiserver drops it; strict clients such as kubectl reject it)",
                    ));
                }
            }
        }
        _ => {}
    }
}

/// The findings for one object of a manifest stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectReport {
    /// `Kind namespace/name` (or `Kind name` when cluster-scoped or without namespace).
    pub object: String,
    /// 0-based index of the YAML document in its stream.
    pub document: usize,
    pub problems: Vec<Problem>,
}

impl ObjectReport {
    pub fn is_valid(&self) -> bool {
        self.problems.iter().all(|p| p.severity != Severity::Error)
    }
}

/// A manifest stream that cannot be read as YAML/JSON at all.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("document {document}: not valid YAML: {source}")]
    Yaml {
        document: usize,
        #[source]
        source: serde_yaml::Error,
    },
}

/// Parses a multi-document YAML (or JSON) stream and validates every `keda.sh` object in it,
/// including the items of `kind: List`. Other objects (Deployments, Secrets, …) are skipped.
pub fn validate_manifests(text: &str) -> Result<Vec<ObjectReport>, ManifestError> {
    let mut reports = Vec::new();
    for (document, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = serde_yaml::Value::deserialize(de)
            .map_err(|source| ManifestError::Yaml { document, source })?;
        if value.is_null() {
            continue;
        }
        let json = yaml_to_json(&value, "");
        collect_reports(document, json, &mut reports);
    }
    Ok(reports)
}

fn collect_reports(document: usize, json: Result<Value, Problem>, reports: &mut Vec<ObjectReport>) {
    let value = match json {
        Ok(v) => v,
        Err(problem) => {
            reports.push(ObjectReport {
                object: "document".into(),
                document,
                problems: vec![problem],
            });
            return;
        }
    };
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind_name = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if kind_name.ends_with("List") {
        if let Some(items) = value.get("items").and_then(Value::as_array) {
            for item in items {
                collect_reports(document, Ok(item.clone()), reports);
            }
        }
        return;
    }
    let group = api_version.split('/').next().unwrap_or_default();
    if group != crate::GROUP || !api_version.contains('/') {
        return;
    }
    let name = value.pointer("/metadata/name").and_then(Value::as_str);
    let namespace = value.pointer("/metadata/namespace").and_then(Value::as_str);
    let object = match (name, namespace) {
        (Some(n), Some(ns)) => format!("{kind_name} {ns}/{n}"),
        (Some(n), None) => format!("{kind_name} {n}"),
        (None, _) => format!("{kind_name} (unnamed)"),
    };
    let mut problems = Vec::new();
    if api_version != crate::API_VERSION {
        problems.push(Problem::error(
            "apiVersion",
            format!("unsupported version {api_version:?}: keda.sh serves only v1alpha1"),
        ));
    }
    if name.is_none_or(str::is_empty) && value.pointer("/metadata/generateName").is_none() {
        problems.push(Problem::error("metadata.name", "required field is missing"));
    }
    match Kind::from_name(kind_name) {
        Some(kind) => problems.extend(validate_object(kind, &value)),
        None => problems.push(Problem::error(
            "kind",
            format!("unknown kind {kind_name:?}: expected ScaledObject, ScaledJob, TriggerAuthentication or ClusterTriggerAuthentication"),
        )),
    }
    reports.push(ObjectReport {
        object,
        document,
        problems,
    });
}

/// Kubernetes objects are JSON: map keys must be strings and numbers must be finite.
fn yaml_to_json(value: &serde_yaml::Value, path: &str) -> Result<Value, Problem> {
    use serde_yaml::Value as Y;
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(*b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .ok_or_else(|| Problem::error(path, format!("{f} is not a JSON number")))?
            }
        }
        Y::String(s) => Value::String(s.clone()),
        Y::Sequence(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| yaml_to_json(item, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                let key = match k {
                    Y::String(s) => s.clone(),
                    other => {
                        return Err(Problem::error(
                            path,
                            format!(
                                "map key {} is not a string",
                                serde_yaml::to_string(other).unwrap_or_default().trim()
                            ),
                        ));
                    }
                };
                let child = yaml_to_json(v, &join(path, &key))?;
                out.insert(key, child);
            }
            Value::Object(out)
        }
        Y::Tagged(tagged) => yaml_to_json(&tagged.value, path)?,
    })
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // Whatever a user feeds in, validation answers with problems, never a panic.
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
            let _ = validate_manifests(&text);
        }

        #[test]
        fn arbitrary_specs_never_panic(
            spec in proptest::collection::btree_map("[a-zA-Z]{1,20}", any_json(), 0..8),
            kind in prop::sample::select(vec!["ScaledObject", "ScaledJob", "TriggerAuthentication", "ClusterTriggerAuthentication"]),
        ) {
            let object = serde_json::json!({"apiVersion": "keda.sh/v1alpha1", "kind": kind, "metadata": {"name": "x"}, "spec": spec});
            let _ = validate_object(Kind::from_name(kind).expect("known kind"), &object);
        }
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            "[a-z0-9]{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::btree_map("[a-zA-Z]{1,16}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(kind: Kind, v: Value) -> Vec<String> {
        validate_object(kind, &v)
            .into_iter()
            .filter(|p| p.severity == Severity::Error)
            .map(|p| p.to_string())
            .collect()
    }

    fn minimal_so() -> Value {
        json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": "x"},
            "spec": {"scaleTargetRef": {"name": "w"}, "triggers": [{"type": "redis", "metadata": {}}]}
        })
    }

    #[test]
    fn manifests_skip_other_objects_and_report_keda_ones() {
        let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n---\n\n---\n\
            apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: s, namespace: n}\n\
            spec: {scaleTargetRef: {name: d}, triggers: []}\n---\n\
            apiVersion: keda.sh/v1alpha1\nkind: ScaledThing\nmetadata: {name: t}\n";
        let reports = validate_manifests(text).expect("parses");
        assert_eq!(reports.len(), 2);
        assert_eq!(reports[0].object, "ScaledObject n/s");
        assert_eq!(reports[0].document, 2);
        assert!(!reports[0].is_valid());
        assert_eq!(reports[1].problems[0].field, "kind");
    }

    #[test]
    fn non_yaml_is_an_error_and_non_string_keys_are_problems() {
        assert!(validate_manifests("a: [b\n  c: {").is_err());
        let reports = validate_manifests(
            "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: s}\nspec: {1: 2}\n",
        )
        .expect("parses");
        assert_eq!(reports[0].problems[0].field, "spec");
    }

    #[test]
    fn minimal_scaled_object_is_valid() {
        assert_eq!(
            errors(Kind::ScaledObject, minimal_so()),
            Vec::<String>::new()
        );
    }

    #[test]
    fn min_above_max_names_the_field_with_kedas_message() {
        let mut so = minimal_so();
        so["spec"]["minReplicaCount"] = json!(5);
        so["spec"]["maxReplicaCount"] = json!(2);
        assert_eq!(
            errors(Kind::ScaledObject, so),
            vec![
                "error: spec.minReplicaCount: minReplicaCount must be less than or equal to maxReplicaCount"
            ]
        );
    }

    #[test]
    fn min_above_default_max_is_rejected() {
        let mut so = minimal_so();
        so["spec"]["minReplicaCount"] = json!(101);
        assert_eq!(errors(Kind::ScaledObject, so).len(), 1);
        let mut so = minimal_so();
        so["spec"]["minReplicaCount"] = json!(100);
        assert!(errors(Kind::ScaledObject, so).is_empty());
    }

    #[test]
    fn missing_triggers_and_empty_triggers() {
        let mut so = minimal_so();
        so["spec"].as_object_mut().map(|s| s.remove("triggers"));
        assert_eq!(
            errors(Kind::ScaledObject, so),
            vec!["error: spec.triggers: required field is missing"]
        );
        let mut so = minimal_so();
        so["spec"]["triggers"] = json!([]);
        assert_eq!(
            errors(Kind::ScaledObject, so),
            vec!["error: spec.triggers: must have at least 1 item(s)"]
        );
    }

    #[test]
    fn bad_enum_lists_the_allowed_values() {
        let mut so = minimal_so();
        so["spec"]["fallback"] =
            json!({"failureThreshold": 3, "replicas": 1, "behavior": "sometimes"});
        let e = errors(Kind::ScaledObject, so);
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("error: spec.fallback.behavior: unsupported value \"sometimes\""),
            "{e:?}"
        );
        assert!(e[0].contains("\"currentReplicasIfHigher\""));
    }

    #[test]
    fn wrong_types_bounds_and_lengths() {
        let mut so = minimal_so();
        so["spec"]["pollingInterval"] = json!("30");
        so["spec"]["cooldownPeriod"] = json!(-1);
        so["spec"]["maxReplicaCount"] = json!(5_000_000_000_i64);
        so["spec"]["triggers"][0]["type"] = json!("");
        so["spec"]["triggers"][0]["metadata"] = json!({"listLength": 5});
        let e = errors(Kind::ScaledObject, so);
        assert!(
            e.contains(
                &"error: spec.pollingInterval: must be of type integer, not string".to_string()
            ),
            "{e:?}"
        );
        assert!(
            e.contains(
                &"error: spec.cooldownPeriod: must be greater than or equal to 0".to_string()
            ),
            "{e:?}"
        );
        assert!(
            e.contains(&"error: spec.maxReplicaCount: must fit in a 32-bit integer".to_string()),
            "{e:?}"
        );
        assert!(
            e.contains(
                &"error: spec.triggers[0].type: must be at least 1 character(s) long".to_string()
            ),
            "{e:?}"
        );
        assert!(
            e.contains(
                &"error: spec.triggers[0].metadata.listLength: must be of type string, not integer"
                    .to_string()
            ),
            "{e:?}"
        );
    }

    #[test]
    fn unknown_fields_are_warnings() {
        let mut so = minimal_so();
        so["spec"]["pollingIntervall"] = json!(5);
        let all = validate_object(Kind::ScaledObject, &so);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].severity, Severity::Warning);
        assert_eq!(all[0].field, "spec.pollingIntervall");
    }

    #[test]
    fn scaled_job_template_metadata_is_kept_verbatim() {
        let sj = json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledJob", "metadata": {"name": "j"},
            "spec": {
                "jobTargetRef": {"template": {
                    "metadata": {"labels": {"a": "b"}, "anything": 1},
                    "spec": {"containers": [{"name": "c", "image": "i"}], "restartPolicy": "Never"}
                }},
                "triggers": [{"type": "redis", "metadata": {"listName": "q"}}],
                "scalingStrategy": {"strategy": "accurate", "multipleScalersCalculation": "max"}
            }
        });
        assert!(validate_object(Kind::ScaledJob, &sj).is_empty());
    }

    #[test]
    fn scaled_job_bad_strategy_and_missing_job_target() {
        let sj = json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledJob", "metadata": {"name": "j"},
            "spec": {"triggers": [{"type": "redis", "metadata": {}}], "scalingStrategy": {"strategy": "fast"}}
        });
        let e = errors(Kind::ScaledJob, sj);
        assert!(
            e.contains(&"error: spec.jobTargetRef: required field is missing".to_string()),
            "{e:?}"
        );
        assert!(e.iter().any(|l| {
            l.starts_with("error: spec.scalingStrategy.strategy: unsupported value \"fast\"")
        }));
    }

    #[test]
    fn trigger_authentication_enum_and_required() {
        let ta = json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication", "metadata": {"name": "a"},
            "spec": {"podIdentity": {"provider": "azure"}, "secretTargetRef": [{"parameter": "password", "name": "s"}]}
        });
        let e = errors(Kind::TriggerAuthentication, ta);
        assert!(
            e.iter()
                .any(|l| l
                    .starts_with("error: spec.podIdentity.provider: unsupported value \"azure\"")),
            "{e:?}"
        );
        assert!(
            e.contains(
                &"error: spec.secretTargetRef[0].key: required field is missing".to_string()
            ),
            "{e:?}"
        );
    }
}
