//! The HPA a ScaledObject owns (spec §2.3): its name, the metric specs turned into HPA metrics,
//! the desired object (metadata, owner, bounds, behavior with partial pauses, the composite metric
//! of scalingModifiers) and the rule that decides whether an existing HPA must be overwritten.
//! Everything here is pure; the controller fetches, builds the scalers, then calls in here.

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::{
    ContainerResourceMetricSource, CrossVersionObjectReference, ExternalMetricSource,
    HPAScalingRules, HorizontalPodAutoscaler, HorizontalPodAutoscalerBehavior,
    HorizontalPodAutoscalerSpec, MetricIdentifier, MetricSpec, MetricTarget, ResourceMetricSource,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use keda_api::ScaledObject;
use keda_api::names::{annotations, labels};
use keda_api::scaled_object::{GroupVersionKindResource, ModifierMetricType};
use keda_scalers::config::MetricTargetKind;
use keda_scalers::metrics::{self as scaler_metrics, milli_quantity};
use kube::Resource;
use serde_json::Value;

/// The single External metric that replaces all others when scalingModifiers are used.
pub const COMPOSITE_METRIC_NAME: &str = "composite-metric";
const DEFAULT_HPA_MIN_REPLICAS: i32 = 1;
const DEFAULT_HPA_MAX_REPLICAS: i32 = keda_api::scaled_object::DEFAULT_MAX_REPLICA_COUNT;
const LABEL_VALUE_MAX_LEN: usize = 63;
const DISABLED_POLICY_SELECT: &str = "Disabled";
const TYPE_EXTERNAL: &str = "External";
const TYPE_RESOURCE: &str = "Resource";
const TYPE_CONTAINER_RESOURCE: &str = "ContainerResource";

/// Why no HPA could be built for a ScaledObject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HpaError {
    /// Every scaler returned zero metric specs; an HPA without metrics would scale on CPU.
    #[error("no metric specs returned from scalers")]
    NoMetricSpecs,
    /// Two External metrics share a name, so the metrics API could not tell them apart.
    #[error("metricName {metric_name} defined multiple times in ScaledObject {scaled_object}")]
    DuplicateMetricName {
        metric_name: String,
        scaled_object: String,
    },
    /// The ScaledObject lacks metadata the HPA needs (always present on objects from the API).
    #[error("ScaledObject has no {field}, which the HPA needs")]
    MissingMetadata { field: &'static str },
}

/// `advanced.horizontalPodAutoscalerConfig.name` when set and non-empty, else `keda-hpa-<so>`.
#[must_use]
pub fn hpa_name(so: &ScaledObject) -> String {
    so.spec
        .advanced
        .as_ref()
        .and_then(|a| a.horizontal_pod_autoscaler_config.as_ref())
        .and_then(|c| c.name.as_deref())
        .filter(|n| !n.is_empty())
        .map_or_else(|| format!("keda-hpa-{}", so_name(so)), str::to_owned)
}

/// `autoscaling.keda.sh/paused-scale-in` is present and not a false bool.
#[must_use]
pub fn paused_scale_in(so: &ScaledObject) -> bool {
    annotation_flag(so, annotations::PAUSED_SCALE_IN)
}

/// `autoscaling.keda.sh/paused-scale-out` is present and not a false bool.
#[must_use]
pub fn paused_scale_out(so: &ScaledObject) -> bool {
    annotation_flag(so, annotations::PAUSED_SCALE_OUT)
}

/// The scalers' metric specs as HPA metrics, in the same order. External metrics get the
/// `scaledobject.keda.sh/name=<so>` selector; cpu/memory become Resource, or ContainerResource
/// when a container is named.
#[must_use]
pub fn to_hpa_metrics(so_name: &str, specs: &[scaler_metrics::MetricSpec]) -> Vec<MetricSpec> {
    specs
        .iter()
        .map(|spec| match spec {
            scaler_metrics::MetricSpec::External(m) => {
                external_metric(so_name, &m.metric_name, hpa_target(&m.target))
            }
            scaler_metrics::MetricSpec::Resource(m) => match &m.container_name {
                Some(container) => MetricSpec {
                    type_: TYPE_CONTAINER_RESOURCE.to_owned(),
                    container_resource: Some(ContainerResourceMetricSource {
                        container: container.clone(),
                        name: m.resource.clone(),
                        target: hpa_target(&m.target),
                    }),
                    ..MetricSpec::default()
                },
                None => MetricSpec {
                    type_: TYPE_RESOURCE.to_owned(),
                    resource: Some(ResourceMetricSource {
                        name: m.resource.clone(),
                        target: hpa_target(&m.target),
                    }),
                    ..MetricSpec::default()
                },
            },
        })
        .collect()
}

/// `status.externalMetricNames`: External metric names in trigger order (never the composite one,
/// which is added only to the HPA).
#[must_use]
pub fn external_metric_names(specs: &[scaler_metrics::MetricSpec]) -> Vec<String> {
    specs
        .iter()
        .filter_map(|s| s.external_metric_name().map(str::to_owned))
        .collect()
}

/// `status.resourceMetricNames`: `cpu`/`memory` of plain Resource metrics in trigger order;
/// ContainerResource metrics are not listed, as in KEDA.
#[must_use]
pub fn resource_metric_names(specs: &[scaler_metrics::MetricSpec]) -> Vec<String> {
    specs
        .iter()
        .filter_map(|s| match s {
            scaler_metrics::MetricSpec::Resource(m) if m.container_name.is_none() => {
                Some(m.resource.clone())
            }
            _ => None,
        })
        .collect()
}

/// The HPA the ScaledObject should have, given its resolved target and the HPA metrics of its
/// scalers (from [`to_hpa_metrics`], in trigger order).
///
/// # Errors
///
/// [`HpaError::NoMetricSpecs`] when `metrics` is empty, [`HpaError::DuplicateMetricName`] when two
/// External metrics share a name, [`HpaError::MissingMetadata`] when the ScaledObject has no name,
/// namespace or uid.
pub fn desired_hpa(
    so: &ScaledObject,
    gvkr: &GroupVersionKindResource,
    metrics: Vec<MetricSpec>,
    operator_version: &str,
) -> Result<HorizontalPodAutoscaler, HpaError> {
    let so_name = required(so.metadata.name.as_deref(), "metadata.name")?;
    let uid = required(so.metadata.uid.as_deref(), "metadata.uid")?;
    let namespace = required(so.metadata.namespace.as_deref(), "metadata.namespace")?;
    // What controller-runtime's SetControllerReference writes; kube's `controller_owner_ref`
    // leaves out blockOwnerDeletion.
    let owner = OwnerReference {
        api_version: ScaledObject::api_version(&()).into_owned(),
        kind: ScaledObject::kind(&()).into_owned(),
        name: so_name.to_owned(),
        uid: uid.to_owned(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let name = hpa_name(so);

    let metrics = hpa_metrics(so, so_name, metrics)?;
    let labels = hpa_labels(so, &name, operator_version);
    // Copied verbatim; an empty map is the same as none (the API never returns an empty one).
    let annotations = so.metadata.annotations.clone().filter(|a| !a.is_empty());

    let api_version = if gvkr.group.is_empty() {
        gvkr.version.clone()
    } else {
        format!("{}/{}", gvkr.group, gvkr.version)
    };
    let min_replicas = so
        .spec
        .min_replica_count
        .filter(|&min| min > 0)
        .unwrap_or(DEFAULT_HPA_MIN_REPLICAS);
    let max_replicas = so
        .spec
        .max_replica_count
        .unwrap_or(DEFAULT_HPA_MAX_REPLICAS);

    Ok(HorizontalPodAutoscaler {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels),
            annotations,
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some(api_version),
                kind: gvkr.kind.clone(),
                name: so.spec.scale_target_ref.name.clone(),
            },
            min_replicas: Some(min_replicas),
            max_replicas,
            metrics: Some(metrics),
            behavior: hpa_behavior(so),
        },
        status: None,
    })
}

/// Whether `current` (from the API) must be overwritten with `desired`. Fields the apiserver or
/// other actors add to the current HPA (defaults, extra labels and annotations) do not count;
/// only what keda-rs sets does.
#[must_use]
pub fn needs_update(current: &HorizontalPodAutoscaler, desired: &HorizontalPodAutoscaler) -> bool {
    let metrics_len = |hpa: &HorizontalPodAutoscaler| hpa.spec.metrics.as_ref().map_or(0, Vec::len);
    // A derivative ignores extra array entries, so a removed trigger needs the count check; it
    // also ignores unset fields, so clearing a partial pause (behavior → nil) needs deep equality.
    if metrics_len(current) != metrics_len(desired)
        || current.spec.behavior != desired.spec.behavior
    {
        return true;
    }
    match (
        serde_json::to_value(&desired.spec),
        serde_json::to_value(&current.spec),
    ) {
        (Ok(want), Ok(have)) => {
            if !is_deep_derivative(&want, &have) {
                return true;
            }
        }
        // Cannot happen for these types; overwriting is the safe answer.
        _ => return true,
    }
    let empty = BTreeMap::new();
    if !map_is_derivative(
        desired.metadata.labels.as_ref().unwrap_or(&empty),
        current.metadata.labels.as_ref().unwrap_or(&empty),
    ) {
        return true;
    }
    let desired_annotations = desired
        .metadata
        .annotations
        .as_ref()
        .filter(|a| !a.is_empty());
    let current_annotations = current
        .metadata
        .annotations
        .as_ref()
        .filter(|a| !a.is_empty());
    match (desired_annotations, current_annotations) {
        // The ScaledObject lost all its annotations: the HPA must lose them too.
        (None, Some(_)) => true,
        (None, None) => false,
        (Some(want), have) => !map_is_derivative(want, have.unwrap_or(&empty)),
    }
}

/// apimachinery's `equality.Semantic.DeepDerivative` on JSON: every field set in `desired` has the
/// same value in `current`. Null, empty strings, empty arrays and empty objects in `desired` mean
/// "unset" and match anything; arrays compare index by index, so `current` may have extra
/// trailing items; numbers and booleans compare exactly, zero and false included.
#[must_use]
pub fn is_deep_derivative(desired: &Value, current: &Value) -> bool {
    match desired {
        Value::Null => true,
        Value::String(s) if s.is_empty() => true,
        Value::Array(a) if a.is_empty() => true,
        Value::Object(o) if o.is_empty() => true,
        Value::String(want) => current.as_str() == Some(want.as_str()),
        Value::Bool(want) => current.as_bool() == Some(*want),
        Value::Number(want) => current.as_number().is_some_and(|have| {
            match (want.as_i64(), have.as_i64()) {
                (Some(w), Some(h)) => w == h,
                // Large unsigned or fractional numbers: compare as floats.
                _ => want.as_f64().is_some() && want.as_f64() == have.as_f64(),
            }
        }),
        Value::Array(want) => current.as_array().is_some_and(|have| {
            want.len() <= have.len() && want.iter().zip(have).all(|(w, h)| is_deep_derivative(w, h))
        }),
        Value::Object(want) => current.as_object().is_some_and(|have| {
            want.iter()
                .all(|(key, w)| is_deep_derivative(w, have.get(key).unwrap_or(&Value::Null)))
        }),
    }
}

/// `DeepDerivative` on a Go `map[string]string` (labels, annotations): every key of `desired` is
/// in `current`, with the same value unless the desired value is empty.
fn map_is_derivative(
    desired: &BTreeMap<String, String>,
    current: &BTreeMap<String, String>,
) -> bool {
    desired.iter().all(|(key, want)| {
        current
            .get(key)
            .is_some_and(|have| want.is_empty() || want == have)
    })
}

fn required<'a>(value: Option<&'a str>, field: &'static str) -> Result<&'a str, HpaError> {
    value
        .filter(|v| !v.is_empty())
        .ok_or(HpaError::MissingMetadata { field })
}

fn so_name(so: &ScaledObject) -> &str {
    so.metadata.name.as_deref().unwrap_or_default()
}

/// Go's `strconv.ParseBool`, where anything unparsable counts as true (a typo should pause rather
/// than silently not pause).
fn annotation_flag(so: &ScaledObject, key: &str) -> bool {
    let Some(value) = so.metadata.annotations.as_ref().and_then(|a| a.get(key)) else {
        return false;
    };
    !matches!(
        value.as_str(),
        "0" | "f" | "F" | "false" | "FALSE" | "False"
    )
}

fn hpa_target(target: &scaler_metrics::MetricTarget) -> MetricTarget {
    match target.kind {
        MetricTargetKind::AverageValue => MetricTarget {
            type_: target.kind.as_str().to_owned(),
            average_value: Some(Quantity(target.quantity())),
            ..MetricTarget::default()
        },
        MetricTargetKind::Value => MetricTarget {
            type_: target.kind.as_str().to_owned(),
            value: Some(Quantity(target.quantity())),
            ..MetricTarget::default()
        },
        MetricTargetKind::Utilization => MetricTarget {
            type_: target.kind.as_str().to_owned(),
            // Scalers parse utilization as an integer percentage; `as` saturates and maps NaN to 0.
            #[allow(clippy::cast_possible_truncation)]
            average_utilization: Some(target.value.round() as i32),
            ..MetricTarget::default()
        },
    }
}

fn external_metric(so_name: &str, metric_name: &str, target: MetricTarget) -> MetricSpec {
    MetricSpec {
        type_: TYPE_EXTERNAL.to_owned(),
        external: Some(ExternalMetricSource {
            metric: MetricIdentifier {
                name: metric_name.to_owned(),
                selector: Some(so_selector(so_name)),
            },
            target,
        }),
        ..MetricSpec::default()
    }
}

fn so_selector(so_name: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([(
            labels::SCALED_OBJECT_NAME.to_owned(),
            so_name.to_owned(),
        )])),
        match_expressions: None,
    }
}

/// Checks the metrics, swaps in the composite metric and sorts them by type.
fn hpa_metrics(
    so: &ScaledObject,
    so_name: &str,
    mut metrics: Vec<MetricSpec>,
) -> Result<Vec<MetricSpec>, HpaError> {
    if metrics.is_empty() {
        return Err(HpaError::NoMetricSpecs);
    }
    let mut seen: Vec<&str> = Vec::new();
    for external in metrics.iter().filter_map(|m| m.external.as_ref()) {
        let name = external.metric.name.as_str();
        if seen.contains(&name) {
            return Err(HpaError::DuplicateMetricName {
                metric_name: name.to_owned(),
                scaled_object: so_name.to_owned(),
            });
        }
        seen.push(name);
    }
    // The selector is the metrics API's only way to find the ScaledObject; enforce it here too in
    // case the caller built the specs by hand.
    for external in metrics.iter_mut().filter_map(|m| m.external.as_mut()) {
        external.metric.selector = Some(so_selector(so_name));
    }

    if let Some(composite) = composite_metric(so, so_name) {
        metrics.retain(|m| m.external.is_none());
        metrics.push(composite);
    }
    // Same order on every reconcile, so the derivative check does not see a reordering as a change.
    // KEDA appends the composite after sorting; sorting last keeps one invariant (by type).
    metrics.sort_by(|a, b| a.type_.cmp(&b.type_));
    Ok(metrics)
}

/// The `composite-metric` External spec, when a formula is set and the target is a float > 0.
/// A formula with a bad target is reported when the scalers are built; here it just keeps the
/// triggers' own metrics, as KEDA does. `Utilization` cannot reach this point: the
/// `ModifierMetricType` enum has no such variant, so such an object fails to deserialize.
fn composite_metric(so: &ScaledObject, so_name: &str) -> Option<MetricSpec> {
    let modifiers = so.spec.advanced.as_ref()?.scaling_modifiers.as_ref()?;
    if modifiers.formula.as_deref().is_none_or(str::is_empty) {
        return None;
    }
    let target: f64 = modifiers.target.as_deref()?.parse().ok()?;
    if !target.is_finite() || target <= 0.0 {
        return None;
    }
    // KEDA truncates to milli-units (`int64(target*1000)`) instead of rounding.
    let quantity = Quantity(milli_quantity((target * 1000.0).trunc() / 1000.0));
    let metric_type = modifiers
        .metric_type
        .unwrap_or(ModifierMetricType::AverageValue);
    let target = match metric_type {
        ModifierMetricType::AverageValue => MetricTarget {
            type_: MetricTargetKind::AverageValue.as_str().to_owned(),
            average_value: Some(quantity),
            ..MetricTarget::default()
        },
        ModifierMetricType::Value => MetricTarget {
            type_: MetricTargetKind::Value.as_str().to_owned(),
            value: Some(quantity),
            ..MetricTarget::default()
        },
    };
    Some(external_metric(so_name, COMPOSITE_METRIC_NAME, target))
}

/// The spec's behavior, with `selectPolicy: Disabled` on the paused direction(s).
fn hpa_behavior(so: &ScaledObject) -> Option<HorizontalPodAutoscalerBehavior> {
    let mut behavior = so
        .spec
        .advanced
        .as_ref()
        .and_then(|a| a.horizontal_pod_autoscaler_config.as_ref())
        .and_then(|c| c.behavior.clone());
    let disable = |rules: &mut Option<HPAScalingRules>| {
        rules
            .get_or_insert_with(HPAScalingRules::default)
            .select_policy = Some(DISABLED_POLICY_SELECT.to_owned());
    };
    if paused_scale_in(so) {
        disable(&mut behavior.get_or_insert_with(Default::default).scale_down);
    }
    if paused_scale_out(so) {
        disable(&mut behavior.get_or_insert_with(Default::default).scale_up);
    }
    behavior
}

/// KEDA's four labels, then every ScaledObject label not excluded (these win on a clash, as in
/// KEDA).
fn hpa_labels(
    so: &ScaledObject,
    hpa_name: &str,
    operator_version: &str,
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), label_value(hpa_name)),
        (
            "app.kubernetes.io/version".to_owned(),
            operator_version.to_owned(),
        ),
        (
            "app.kubernetes.io/part-of".to_owned(),
            so_name(so).to_owned(),
        ),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "keda-operator".to_owned(),
        ),
    ]);
    // Split on bare commas without trimming, as KEDA does: "a, b" excludes "a" and " b".
    let excluded: Vec<&str> = so
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(annotations::HPA_EXCLUDED_LABELS))
        .map(|v| v.split(',').collect())
        .unwrap_or_default();
    for (key, value) in so.metadata.labels.iter().flatten() {
        if !excluded.contains(&key.as_str()) {
            labels.insert(key.clone(), value.clone());
        }
    }
    labels
}

/// Label values are limited to 63 characters and must end alphanumeric.
fn label_value(name: &str) -> String {
    if name.len() <= LABEL_VALUE_MAX_LEN {
        return name.to_owned();
    }
    // Names are ASCII in practice; backing off to a char boundary just avoids a panic otherwise.
    let mut end = LABEL_VALUE_MAX_LEN;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end]
        .trim_end_matches(|c: char| !c.is_alphanumeric())
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use keda_scalers::metrics::{MetricSpec as ScalerMetricSpec, ResourceMetric};
    use serde_json::json;

    const VERSION: &str = "2.20.0";

    /// A minimal valid ScaledObject (as the apiserver would return it), merged with `patch`.
    fn so(patch: Value) -> ScaledObject {
        let mut base = json!({
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": {
                "name": "worker",
                "namespace": "apps",
                "uid": "5f1c6a4e-0000-4000-8000-000000000001",
                "labels": {"scaledobject.keda.sh/name": "worker"}
            },
            "spec": {
                "scaleTargetRef": {"name": "worker-deploy"},
                "triggers": [{"type": "redis", "metadata": {}}]
            }
        });
        merge(&mut base, patch);
        serde_json::from_value(base).expect("fixture is a valid ScaledObject")
    }

    /// JSON merge patch (RFC 7386), enough to vary the base fixture.
    fn merge(base: &mut Value, patch: Value) {
        match (base, patch) {
            (Value::Object(b), Value::Object(p)) => {
                for (k, v) in p {
                    if v.is_null() {
                        b.remove(&k);
                    } else {
                        merge(b.entry(k).or_insert(Value::Null), v);
                    }
                }
            }
            (b, p) => *b = p,
        }
    }

    fn deployment() -> GroupVersionKindResource {
        GroupVersionKindResource {
            group: "apps".into(),
            version: "v1".into(),
            kind: "Deployment".into(),
            resource: "deployments".into(),
        }
    }

    fn ext(name: &str, value: f64) -> ScalerMetricSpec {
        ScalerMetricSpec::external(
            name,
            scaler_metrics::MetricTarget::new(MetricTargetKind::AverageValue, value),
        )
    }

    fn resource(
        name: &str,
        container: Option<&str>,
        kind: MetricTargetKind,
        value: f64,
    ) -> ScalerMetricSpec {
        ScalerMetricSpec::Resource(ResourceMetric {
            resource: name.into(),
            container_name: container.map(str::to_owned),
            target: scaler_metrics::MetricTarget::new(kind, value),
        })
    }

    fn build(
        so: &ScaledObject,
        specs: &[ScalerMetricSpec],
    ) -> Result<HorizontalPodAutoscaler, HpaError> {
        desired_hpa(
            so,
            &deployment(),
            to_hpa_metrics(so_name(so), specs),
            VERSION,
        )
    }

    fn hpa(so: &ScaledObject) -> HorizontalPodAutoscaler {
        build(so, &[ext("s0-redis-jobs", 5.0)]).expect("builds")
    }

    fn spec(hpa: &HorizontalPodAutoscaler) -> &HorizontalPodAutoscalerSpec {
        &hpa.spec
    }

    fn metrics(hpa: &HorizontalPodAutoscaler) -> Value {
        serde_json::to_value(&spec(hpa).metrics).expect("serializes")
    }

    fn label<'a>(hpa: &'a HorizontalPodAutoscaler, key: &str) -> Option<&'a str> {
        hpa.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(key))
            .map(String::as_str)
    }

    #[test]
    fn default_and_custom_names() {
        assert_eq!(hpa_name(&so(json!({}))), "keda-hpa-worker");
        let custom = so(
            json!({"spec": {"advanced": {"horizontalPodAutoscalerConfig": {"name": "my-hpa"}}}}),
        );
        assert_eq!(hpa_name(&custom), "my-hpa");
        let empty =
            so(json!({"spec": {"advanced": {"horizontalPodAutoscalerConfig": {"name": ""}}}}));
        assert_eq!(hpa_name(&empty), "keda-hpa-worker");
        let built = hpa(&custom);
        assert_eq!(built.metadata.name.as_deref(), Some("my-hpa"));
        assert_eq!(built.metadata.namespace.as_deref(), Some("apps"));
        assert_eq!(label(&built, "app.kubernetes.io/name"), Some("my-hpa"));
    }

    #[test]
    fn labels_are_keda_labels_plus_scaled_object_labels() {
        let built = hpa(&so(json!({"metadata": {"labels": {"team": "a"}}})));
        let want: BTreeMap<String, String> = serde_json::from_value(json!({
            "app.kubernetes.io/name": "keda-hpa-worker",
            "app.kubernetes.io/version": VERSION,
            "app.kubernetes.io/part-of": "worker",
            "app.kubernetes.io/managed-by": "keda-operator",
            "scaledobject.keda.sh/name": "worker",
            "team": "a"
        }))
        .expect("labels");
        assert_eq!(built.metadata.labels, Some(want));
    }

    #[test]
    fn name_label_is_cut_to_63_then_trailing_non_alphanumerics_trimmed() {
        // "keda-hpa-" (9) + 52 chars + "--x…": the cut at 63 lands right after "--".
        let so_name = format!("{}--xyz", "a".repeat(52));
        let built = hpa(&so(json!({"metadata": {"name": so_name}})));
        assert_eq!(
            label(&built, "app.kubernetes.io/name"),
            Some(format!("keda-hpa-{}", "a".repeat(52)).as_str())
        );
        assert_eq!(
            built.metadata.name.as_deref(),
            Some(format!("keda-hpa-{so_name}").as_str()),
            "the HPA name itself is not cut"
        );
        // Exactly 63 characters is kept whole, even without trimming.
        let name = "b".repeat(54);
        assert_eq!(label_value(&format!("keda-hpa-{name}")).len(), 63);
        // A cut inside a multi-byte character does not panic.
        assert_eq!(label_value(&format!("{}é", "c".repeat(62))), "c".repeat(62));
    }

    #[test]
    fn excluded_labels_are_not_copied() {
        let built = hpa(&so(json!({"metadata": {
            "labels": {"team": "a", "cost": "b", "keep": "c"},
            "annotations": {"scaledobject.keda.sh/hpa-excluded-labels": "team,cost"}
        }})));
        assert_eq!(label(&built, "team"), None);
        assert_eq!(label(&built, "cost"), None);
        assert_eq!(label(&built, "keep"), Some("c"));
        // Keys are not trimmed, as in KEDA.
        let built = hpa(&so(json!({"metadata": {
            "labels": {"team": "a", "cost": "b"},
            "annotations": {"scaledobject.keda.sh/hpa-excluded-labels": "team, cost"}
        }})));
        assert_eq!(label(&built, "team"), None);
        assert_eq!(label(&built, "cost"), Some("b"));
    }

    #[test]
    fn annotations_are_copied_verbatim() {
        let built = hpa(&so(
            json!({"metadata": {"annotations": {"a": "1", "autoscaling.keda.sh/paused-scale-in": "false"}}}),
        ));
        let want = BTreeMap::from([
            ("a".to_owned(), "1".to_owned()),
            (annotations::PAUSED_SCALE_IN.to_owned(), "false".to_owned()),
        ]);
        assert_eq!(built.metadata.annotations, Some(want));
        assert_eq!(hpa(&so(json!({}))).metadata.annotations, None);
    }

    #[test]
    fn owner_reference_is_the_controlling_scaled_object() {
        let built = hpa(&so(json!({})));
        let owners = built.metadata.owner_references.expect("owner refs");
        assert_eq!(owners.len(), 1);
        let owner = &owners[0];
        assert_eq!(owner.api_version, "keda.sh/v1alpha1");
        assert_eq!(owner.kind, "ScaledObject");
        assert_eq!(owner.name, "worker");
        assert_eq!(owner.uid, "5f1c6a4e-0000-4000-8000-000000000001");
        assert_eq!(owner.controller, Some(true));
        assert_eq!(owner.block_owner_deletion, Some(true));
    }

    #[test]
    fn missing_uid_or_namespace_is_an_error() {
        let no_uid = so(json!({"metadata": {"uid": null}}));
        assert_eq!(
            build(&no_uid, &[ext("s0-x", 1.0)]),
            Err(HpaError::MissingMetadata {
                field: "metadata.uid"
            })
        );
        let no_ns = so(json!({"metadata": {"namespace": null}}));
        assert_eq!(
            build(&no_ns, &[ext("s0-x", 1.0)]),
            Err(HpaError::MissingMetadata {
                field: "metadata.namespace"
            })
        );
    }

    #[test]
    fn scale_target_ref_uses_group_version_or_bare_core_version() {
        let built = hpa(&so(json!({})));
        let target = &spec(&built).scale_target_ref;
        assert_eq!(target.name, "worker-deploy");
        assert_eq!(target.kind, "Deployment");
        assert_eq!(target.api_version.as_deref(), Some("apps/v1"));

        let core = GroupVersionKindResource {
            group: String::new(),
            version: "v1".into(),
            kind: "ReplicationController".into(),
            resource: "replicationcontrollers".into(),
        };
        let so = so(json!({}));
        let built = desired_hpa(
            &so,
            &core,
            to_hpa_metrics("worker", &[ext("s0-x", 1.0)]),
            VERSION,
        )
        .expect("builds");
        assert_eq!(
            spec(&built).scale_target_ref.api_version.as_deref(),
            Some("v1")
        );
        assert_eq!(spec(&built).scale_target_ref.kind, "ReplicationController");
    }

    #[test]
    fn replica_bounds() {
        let built = hpa(&so(json!({})));
        assert_eq!(spec(&built).min_replicas, Some(1), "min unset → 1");
        assert_eq!(spec(&built).max_replicas, 100, "max unset → 100");
        let built = hpa(&so(
            json!({"spec": {"minReplicaCount": 0, "maxReplicaCount": 7}}),
        ));
        assert_eq!(spec(&built).min_replicas, Some(1), "min 0 → 1");
        assert_eq!(spec(&built).max_replicas, 7);
        let built = hpa(&so(json!({"spec": {"minReplicaCount": 3}})));
        assert_eq!(spec(&built).min_replicas, Some(3));
    }

    fn behavior_of(so_patch: Value) -> Value {
        serde_json::to_value(&spec(&hpa(&so(so_patch))).behavior).expect("serializes")
    }

    #[test]
    fn behavior_is_passed_through() {
        let behavior = json!({
            "scaleDown": {"stabilizationWindowSeconds": 60, "policies": [{"type": "Pods", "value": 1, "periodSeconds": 30}]}
        });
        let got = behavior_of(
            json!({"spec": {"advanced": {"horizontalPodAutoscalerConfig": {"behavior": behavior}}}}),
        );
        assert_eq!(got, behavior);
        assert_eq!(behavior_of(json!({})), Value::Null);
    }

    #[test]
    fn paused_scale_in_disables_scale_down_keeping_the_rest() {
        let got = behavior_of(json!({
            "metadata": {"annotations": {"autoscaling.keda.sh/paused-scale-in": "true"}},
            "spec": {"advanced": {"horizontalPodAutoscalerConfig": {"behavior": {
                "scaleDown": {"stabilizationWindowSeconds": 60},
                "scaleUp": {"selectPolicy": "Max"}
            }}}}
        }));
        assert_eq!(
            got,
            json!({
                "scaleDown": {"stabilizationWindowSeconds": 60, "selectPolicy": "Disabled"},
                "scaleUp": {"selectPolicy": "Max"}
            })
        );
    }

    #[test]
    fn partial_pauses_create_missing_structs() {
        let got = behavior_of(
            json!({"metadata": {"annotations": {"autoscaling.keda.sh/paused-scale-out": "true"}}}),
        );
        assert_eq!(got, json!({"scaleUp": {"selectPolicy": "Disabled"}}));
        let got = behavior_of(json!({"metadata": {"annotations": {
            "autoscaling.keda.sh/paused-scale-in": "1",
            "autoscaling.keda.sh/paused-scale-out": "T"
        }}}));
        assert_eq!(
            got,
            json!({"scaleDown": {"selectPolicy": "Disabled"}, "scaleUp": {"selectPolicy": "Disabled"}})
        );
    }

    #[test]
    fn pause_annotation_parsing() {
        for (value, paused) in [
            ("true", true),
            ("TRUE", true),
            ("t", true),
            ("yes", true),
            ("", true),
            ("garbage", true),
            ("false", false),
            ("False", false),
            ("FALSE", false),
            ("f", false),
            ("0", false),
        ] {
            let so = so(json!({"metadata": {"annotations": {
                "autoscaling.keda.sh/paused-scale-in": value,
                "autoscaling.keda.sh/paused-scale-out": value
            }}}));
            assert_eq!(paused_scale_in(&so), paused, "scale-in {value:?}");
            assert_eq!(paused_scale_out(&so), paused, "scale-out {value:?}");
        }
        assert!(!paused_scale_in(&so(json!({}))));
        // "false" leaves the behavior untouched (here: nil).
        let got = behavior_of(
            json!({"metadata": {"annotations": {"autoscaling.keda.sh/paused-scale-in": "false"}}}),
        );
        assert_eq!(got, Value::Null);
        let got = behavior_of(
            json!({"metadata": {"annotations": {"autoscaling.keda.sh/paused-scale-in": "nope"}}}),
        );
        assert_eq!(got, json!({"scaleDown": {"selectPolicy": "Disabled"}}));
    }

    #[test]
    fn scaler_specs_become_hpa_metrics() {
        let specs = [
            ext("s0-redis-jobs", 2.5),
            ScalerMetricSpec::external(
                "s1-prometheus",
                scaler_metrics::MetricTarget::new(MetricTargetKind::Value, 10.0),
            ),
            resource("cpu", None, MetricTargetKind::Utilization, 50.0),
            resource(
                "memory",
                Some("app"),
                MetricTargetKind::AverageValue,
                536_870_912.0,
            ),
        ];
        let got = serde_json::to_value(to_hpa_metrics("worker", &specs)).expect("serializes");
        let selector = json!({"matchLabels": {"scaledobject.keda.sh/name": "worker"}});
        assert_eq!(
            got,
            json!([
                {"type": "External", "external": {
                    "metric": {"name": "s0-redis-jobs", "selector": selector},
                    "target": {"type": "AverageValue", "averageValue": "2500m"}}},
                {"type": "External", "external": {
                    "metric": {"name": "s1-prometheus", "selector": selector},
                    "target": {"type": "Value", "value": "10"}}},
                {"type": "Resource", "resource": {
                    "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
                {"type": "ContainerResource", "containerResource": {
                    "container": "app", "name": "memory",
                    "target": {"type": "AverageValue", "averageValue": "536870912"}}}
            ])
        );
    }

    #[test]
    fn metric_names_for_status_keep_trigger_order() {
        let specs = [
            resource("memory", None, MetricTargetKind::AverageValue, 1.0),
            ext("s1-b", 1.0),
            resource("cpu", Some("app"), MetricTargetKind::Utilization, 50.0),
            ext("s3-a", 1.0),
            resource("cpu", None, MetricTargetKind::Utilization, 50.0),
        ];
        assert_eq!(external_metric_names(&specs), ["s1-b", "s3-a"]);
        assert_eq!(resource_metric_names(&specs), ["memory", "cpu"]);
    }

    #[test]
    fn metrics_are_sorted_by_type_stably() {
        let specs = [
            resource("cpu", None, MetricTargetKind::Utilization, 50.0),
            ext("s1-b", 1.0),
            resource("memory", Some("app"), MetricTargetKind::Utilization, 60.0),
            ext("s3-a", 1.0),
            resource("memory", None, MetricTargetKind::Utilization, 70.0),
        ];
        let built = build(&so(json!({})), &specs).expect("builds");
        let order: Vec<String> = spec(&built)
            .metrics
            .iter()
            .flatten()
            .map(|m| {
                let name = m
                    .external
                    .as_ref()
                    .map(|e| e.metric.name.clone())
                    .or_else(|| m.resource.as_ref().map(|r| r.name.clone()))
                    .or_else(|| m.container_resource.as_ref().map(|r| r.name.clone()))
                    .unwrap_or_default();
                format!("{}:{name}", m.type_)
            })
            .collect();
        assert_eq!(
            order,
            [
                "ContainerResource:memory",
                "External:s1-b",
                "External:s3-a",
                "Resource:cpu",
                "Resource:memory"
            ]
        );
    }

    fn with_modifiers(modifiers: Value) -> ScaledObject {
        so(json!({"spec": {"advanced": {"scalingModifiers": modifiers}}}))
    }

    #[test]
    fn composite_metric_replaces_external_metrics_and_keeps_resources() {
        let so = with_modifiers(json!({"formula": "a + b", "target": "2.5"}));
        let specs = [
            ext("s0-a", 1.0),
            resource("cpu", None, MetricTargetKind::Utilization, 50.0),
            ext("s2-b", 1.0),
            resource("memory", Some("app"), MetricTargetKind::Utilization, 60.0),
        ];
        let built = build(&so, &specs).expect("builds");
        let got = metrics(&built);
        assert_eq!(
            got,
            json!([
                {"type": "ContainerResource", "containerResource": {
                    "container": "app", "name": "memory",
                    "target": {"type": "Utilization", "averageUtilization": 60}}},
                {"type": "External", "external": {
                    "metric": {"name": "composite-metric",
                               "selector": {"matchLabels": {"scaledobject.keda.sh/name": "worker"}}},
                    "target": {"type": "AverageValue", "averageValue": "2500m"}}},
                {"type": "Resource", "resource": {
                    "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}
            ])
        );
        // The status names still list the triggers' metrics, not the composite one.
        assert_eq!(external_metric_names(&specs), ["s0-a", "s2-b"]);
    }

    #[test]
    fn composite_metric_with_value_type_and_milli_truncation() {
        let so = with_modifiers(json!({"formula": "a", "target": "0.0019", "metricType": "Value"}));
        let got = metrics(&build(&so, &[ext("s0-a", 1.0)]).expect("builds"));
        assert_eq!(
            got[0]["external"]["target"],
            json!({"type": "Value", "value": "1m"})
        );
    }

    #[test]
    fn no_composite_without_formula_or_positive_target() {
        for modifiers in [
            json!({"target": "2"}),
            json!({"formula": "", "target": "2"}),
            json!({"formula": "a", "target": "0"}),
            json!({"formula": "a", "target": "-1"}),
            json!({"formula": "a", "target": "abc"}),
            json!({"formula": "a", "target": "inf"}),
            json!({"formula": "a"}),
        ] {
            let got = metrics(
                &build(&with_modifiers(modifiers.clone()), &[ext("s0-a", 1.0)]).expect("builds"),
            );
            assert_eq!(got[0]["external"]["metric"]["name"], "s0-a", "{modifiers}");
        }
    }

    #[test]
    fn utilization_composite_is_rejected() {
        // KEDA rejects Utilization for scalingModifiers when it builds the HPA. Here the type
        // itself has no such variant, so such an object never reaches `desired_hpa`.
        let raw = json!({
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": {"name": "worker", "namespace": "apps", "uid": "u"},
            "spec": {
                "scaleTargetRef": {"name": "worker-deploy"},
                "triggers": [{"type": "redis", "metadata": {}}],
                "advanced": {"scalingModifiers": {"formula": "a", "target": "2", "metricType": "Utilization"}}
            }
        });
        assert!(serde_json::from_value::<ScaledObject>(raw).is_err());
    }

    #[test]
    fn duplicate_external_metric_name_is_an_error() {
        let err = build(&so(json!({})), &[ext("s0-a", 1.0), ext("s0-a", 2.0)]);
        assert_eq!(
            err,
            Err(HpaError::DuplicateMetricName {
                metric_name: "s0-a".into(),
                scaled_object: "worker".into()
            })
        );
        assert_eq!(
            err.map(|_| ()).map_err(|e| e.to_string()),
            Err("metricName s0-a defined multiple times in ScaledObject worker".to_owned())
        );
        // Two resource metrics of the same name are not External names.
        let ok = build(
            &so(json!({})),
            &[
                resource("cpu", None, MetricTargetKind::Utilization, 50.0),
                resource("cpu", Some("app"), MetricTargetKind::Utilization, 50.0),
            ],
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn no_metrics_is_an_error() {
        let err = build(&so(json!({})), &[]);
        assert_eq!(err, Err(HpaError::NoMetricSpecs));
        assert_eq!(
            HpaError::NoMetricSpecs.to_string(),
            "no metric specs returned from scalers"
        );
    }

    #[test]
    fn desired_selector_is_enforced_on_hand_built_metrics() {
        let mut m = to_hpa_metrics("other", &[ext("s0-a", 1.0)]);
        if let Some(e) = m[0].external.as_mut() {
            e.metric.selector = None;
        }
        let built = desired_hpa(&so(json!({})), &deployment(), m, VERSION).expect("builds");
        assert_eq!(
            metrics(&built)[0]["external"]["metric"]["selector"],
            json!({"matchLabels": {"scaledobject.keda.sh/name": "worker"}})
        );
    }

    // ---- needs_update ----

    /// What the apiserver returns for `desired`: defaults filled in, server fields added.
    fn as_stored(desired: &HorizontalPodAutoscaler) -> HorizontalPodAutoscaler {
        let mut current = desired.clone();
        current.metadata.resource_version = Some("42".into());
        current.metadata.uid = Some("hpa-uid".into());
        current.metadata.generation = Some(1);
        current
    }

    #[test]
    fn unchanged_hpa_needs_no_update() {
        let desired = hpa(&so(json!({"metadata": {"annotations": {"a": "1"}}})));
        assert!(!needs_update(&as_stored(&desired), &desired));
    }

    #[test]
    fn extra_labels_and_annotations_on_the_hpa_do_not_force_an_update() {
        let desired = hpa(&so(json!({"metadata": {"annotations": {"a": "1"}}})));
        let mut current = as_stored(&desired);
        if let Some(labels) = current.metadata.labels.as_mut() {
            labels.insert("added-by".into(), "someone".into());
        }
        if let Some(annotations) = current.metadata.annotations.as_mut() {
            annotations.insert("other".into(), "x".into());
        }
        assert!(!needs_update(&current, &desired));
    }

    #[test]
    fn changed_or_missing_label_forces_an_update() {
        let desired = hpa(&so(json!({"metadata": {"labels": {"team": "a"}}})));
        let mut current = as_stored(&desired);
        if let Some(labels) = current.metadata.labels.as_mut() {
            labels.insert("team".into(), "b".into());
        }
        assert!(needs_update(&current, &desired));
        if let Some(labels) = current.metadata.labels.as_mut() {
            labels.remove("team");
        }
        assert!(needs_update(&current, &desired));
    }

    #[test]
    fn server_defaults_in_the_current_spec_do_not_force_an_update() {
        let desired = hpa(&so(json!({})));
        let mut current = as_stored(&desired);
        // Fields the desired spec leaves unset, filled in by someone else.
        if let Some(metrics) = current.spec.metrics.as_mut()
            && let Some(ext) = metrics[0].external.as_mut()
            && let Some(selector) = ext.metric.selector.as_mut()
        {
            selector.match_expressions = Some(vec![]);
        }
        assert!(!needs_update(&current, &desired));
    }

    #[test]
    fn changed_target_forces_an_update() {
        let so = so(json!({}));
        let current = as_stored(&build(&so, &[ext("s0-a", 5.0)]).expect("builds"));
        let desired = build(&so, &[ext("s0-a", 6.0)]).expect("builds");
        assert!(needs_update(&current, &desired));
    }

    #[test]
    fn changed_bounds_force_an_update() {
        let current = as_stored(&hpa(&so(json!({}))));
        let desired = hpa(&so(json!({"spec": {"maxReplicaCount": 10}})));
        assert!(needs_update(&current, &desired));
    }

    #[test]
    fn metric_count_change_forces_an_update() {
        let so = so(json!({}));
        let two = build(&so, &[ext("s0-a", 5.0), ext("s1-b", 5.0)]).expect("builds");
        let one = build(&so, &[ext("s0-a", 5.0)]).expect("builds");
        // One fewer metric is still a derivative (a prefix); only the count catches it.
        assert!(needs_update(&as_stored(&two), &one));
        assert!(needs_update(&as_stored(&one), &two));
    }

    #[test]
    fn removed_annotations_force_an_update() {
        let current = as_stored(&hpa(&so(json!({"metadata": {"annotations": {"a": "1"}}}))));
        let desired = hpa(&so(json!({})));
        assert_eq!(desired.metadata.annotations, None);
        assert!(needs_update(&current, &desired));
        let changed = hpa(&so(json!({"metadata": {"annotations": {"a": "2"}}})));
        assert!(needs_update(&current, &changed));
    }

    #[test]
    fn lifting_a_partial_pause_forces_an_update() {
        let paused = hpa(&so(
            json!({"metadata": {"annotations": {annotations::PAUSED_SCALE_IN: "true"}}}),
        ));
        let unpaused = hpa(&so(
            json!({"metadata": {"annotations": {annotations::PAUSED_SCALE_IN: "false"}}}),
        ));
        // behavior goes from Disabled back to nil: a derivative, but not equal.
        assert!(needs_update(&as_stored(&paused), &unpaused));
        assert!(needs_update(&as_stored(&unpaused), &paused));
    }

    // ---- is_deep_derivative ----

    #[test]
    fn unset_values_in_desired_match_anything() {
        for desired in [json!(null), json!(""), json!([]), json!({})] {
            for current in [
                json!(null),
                json!("x"),
                json!([1]),
                json!({"a": 1}),
                json!(0),
            ] {
                assert!(
                    is_deep_derivative(&desired, &current),
                    "{desired} vs {current}"
                );
            }
        }
    }

    #[test]
    fn set_scalars_must_be_equal() {
        assert!(is_deep_derivative(&json!("a"), &json!("a")));
        assert!(!is_deep_derivative(&json!("a"), &json!("b")));
        assert!(!is_deep_derivative(&json!("a"), &json!(null)));
        assert!(is_deep_derivative(&json!(0), &json!(0)));
        assert!(
            !is_deep_derivative(&json!(0), &json!(3)),
            "zero is a value, not unset"
        );
        assert!(!is_deep_derivative(&json!(0), &json!(null)));
        assert!(is_deep_derivative(&json!(1), &json!(1.0)));
        assert!(is_deep_derivative(&json!(1.5), &json!(1.5)));
        assert!(!is_deep_derivative(&json!(false), &json!(true)));
        assert!(!is_deep_derivative(&json!(false), &json!(null)));
        assert!(
            !is_deep_derivative(&json!(1), &json!("1")),
            "types must match"
        );
    }

    #[test]
    fn objects_ignore_extra_and_unset_fields() {
        let current = json!({"a": 1, "b": {"c": "x", "d": [1, 2]}, "extra": true});
        assert!(is_deep_derivative(
            &json!({"a": 1, "b": {"c": "x"}}),
            &current
        ));
        assert!(is_deep_derivative(
            &json!({"a": 1, "b": {"c": "", "d": []}, "z": null}),
            &current
        ));
        assert!(!is_deep_derivative(&json!({"a": 2}), &current));
        assert!(!is_deep_derivative(&json!({"b": {"c": "y"}}), &current));
        assert!(!is_deep_derivative(&json!({"missing": 1}), &current));
        assert!(!is_deep_derivative(&json!({"a": 1}), &json!([1])));
    }

    #[test]
    fn arrays_compare_by_index_and_allow_extra_trailing_items() {
        let current = json!([{"n": 1, "x": 0}, {"n": 2}]);
        assert!(is_deep_derivative(&json!([{"n": 1}]), &current));
        assert!(is_deep_derivative(&json!([{"n": 1}, {"n": 2}]), &current));
        assert!(is_deep_derivative(&json!([{}, {"n": 2}]), &current));
        assert!(
            !is_deep_derivative(&json!([{"n": 2}]), &current),
            "order matters"
        );
        assert!(!is_deep_derivative(
            &json!([{"n": 1}, {"n": 2}, {"n": 3}]),
            &current
        ));
        assert!(!is_deep_derivative(&json!([1]), &json!({"0": 1})));
    }

    #[test]
    fn label_maps_need_every_key() {
        let current = BTreeMap::from([
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "2".to_owned()),
        ]);
        let want = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert!(map_is_derivative(&want(&[]), &current));
        assert!(map_is_derivative(&want(&[("a", "1")]), &current));
        assert!(
            map_is_derivative(&want(&[("a", "")]), &current),
            "empty value: any value"
        );
        assert!(!map_is_derivative(&want(&[("a", "2")]), &current));
        assert!(
            !map_is_derivative(&want(&[("c", "")]), &current),
            "key must exist, as in Go"
        );
    }
}
