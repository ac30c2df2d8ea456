//! `cpu` and `memory`: no backend and no External metric. The trigger becomes a `Resource` (or,
//! with `containerName`, a `ContainerResource`) metric that the HPA reads from metrics-server; a
//! poll returns no values and reports active, and the operator ignores these triggers for activity
//! unless every trigger is cpu/memory (which is why they cannot scale to zero alone).

use crate::ScalerMetadata;
use crate::config::{MetricTargetKind, ScalerConfig};
use crate::error::{BackendError, ConnectError, ScalerError};
use crate::kind::{Descriptor, Example, Reading, ScalerKind};
use crate::metrics::{MetricSpec, MetricTarget, ResourceMetric};
use crate::params::{FromParams, MetadataParser, ParamInfo, parse_json_int};
use crate::pools::Pools;
use crate::quantity::parse_quantity;

const EXAMPLE: Example =
    Example::new(&[("value", "50")], &["value"]).with_metric_type(MetricTargetKind::Utilization);

/// `cpu`.
pub static CPU_DESCRIPTOR: Descriptor = Descriptor::new::<ResourceScaler>("cpu", EXAMPLE);
/// `memory`.
pub static MEMORY_DESCRIPTOR: Descriptor = Descriptor::new::<ResourceScaler>("memory", EXAMPLE);

const TYPE_REMOVED: &str =
    "The 'type' setting is DEPRECATED and is removed in v2.18 - Use 'metricType' instead.";

/// Which resource the trigger type names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceName {
    /// `cpu`.
    Cpu,
    /// `memory`.
    Memory,
}

impl ResourceName {
    /// The resource a trigger type names (`memory`, else `cpu`).
    pub fn of_trigger_type(trigger_type: &str) -> Self {
        if trigger_type == "memory" {
            Self::Memory
        } else {
            Self::Cpu
        }
    }

    /// The resource name in the HPA spec.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Memory => "memory",
        }
    }
}

/// Parsed cpu/memory trigger.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceMetadata {
    /// `Utilization` or `AverageValue`.
    pub metric_type: MetricTargetKind,
    /// Percent for `Utilization`, the quantity's value for `AverageValue`.
    pub value: f64,
    /// `containerName`: switches to a ContainerResource metric.
    pub container_name: Option<String>,
}

/// The trigger's parameters.
#[derive(Debug, ScalerMetadata)]
struct ResourceParams {
    #[param(name = "type", deprecated = TYPE_REMOVED)]
    _removed_type: Option<String>,
    #[param(name = "value")]
    value: String,
    #[param(name = "containerName")]
    container_name: Option<String>,
}

/// Parses a cpu/memory trigger.
pub fn parse(config: &ScalerConfig) -> Result<ResourceMetadata, ScalerError> {
    let mut p = MetadataParser::new(config);
    let ResourceParams {
        _removed_type: _,
        value: raw,
        container_name,
    } = ResourceParams::from_params(&mut p);
    let value = match config.metric_type {
        _ if raw.is_empty() => 0.0,
        MetricTargetKind::Utilization => match parse_json_int(&raw)
            .ok()
            .and_then(|v| i32::try_from(v).ok())
        {
            Some(v) => f64::from(v),
            None => {
                p.error(
                    "value",
                    format!("value {raw:?} must be an int32 for metricType Utilization"),
                );
                0.0
            }
        },
        MetricTargetKind::AverageValue => match parse_quantity(&raw) {
            Ok(v) => v,
            Err(e) => {
                p.error(
                    "value",
                    format!("value {raw:?} is not a Kubernetes quantity: {e}"),
                );
                0.0
            }
        },
        MetricTargetKind::Value => 0.0,
    };
    // ScalerConfig folds an empty metricType into AverageValue, so only `Value` can be refused here
    // (KEDA also refuses an empty one).
    if config.metric_type == MetricTargetKind::Value {
        p.error(
            "metricType",
            "unknown metric type: Value, allowed values are 'Utilization' or 'AverageValue'",
        );
    }
    p.finish()?;
    Ok(ResourceMetadata {
        metric_type: config.metric_type,
        value,
        container_name,
    })
}

/// A cpu/memory trigger: pure configuration, nothing to connect.
#[derive(Debug)]
pub struct ResourceScaler;

impl ScalerKind for ResourceScaler {
    type Metadata = ResourceMetadata;

    fn parse(config: &ScalerConfig) -> Result<ResourceMetadata, ScalerError> {
        parse(config)
    }

    fn params() -> Vec<ParamInfo> {
        ResourceParams::params()
    }

    fn metric_specs(metadata: &ResourceMetadata, config: &ScalerConfig) -> Option<Vec<MetricSpec>> {
        let resource = ResourceName::of_trigger_type(&config.trigger_type);
        Some(vec![MetricSpec::Resource(ResourceMetric {
            resource: resource.as_str().to_owned(),
            container_name: metadata.container_name.clone(),
            target: MetricTarget::new(metadata.metric_type, metadata.value),
        })])
    }

    async fn connect(
        _metadata: ResourceMetadata,
        _config: &ScalerConfig,
        _pools: &Pools,
    ) -> Result<Self, ConnectError> {
        Ok(Self)
    }

    /// metrics-server serves the values; the trigger itself is always active.
    async fn read(&self, _metric_name: &str) -> Result<Reading, BackendError> {
        Ok(Reading::new(Vec::new(), true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(kind: MetricTargetKind, metadata: &[(&str, &str)]) -> ScalerConfig {
        let mut c = ScalerConfig::new("cpu", 0).with_metadata(metadata.iter().copied());
        c.metric_type = kind;
        c
    }

    // KEDA's cpu_memory_scaler_test.go cases, as facts.

    #[test]
    fn empty_metadata_is_rejected() {
        let err = parse(&cfg(MetricTargetKind::Utilization, &[])).unwrap_err();
        assert_eq!(err.parameter(), Some("value"));
    }

    #[test]
    fn utilization_and_average_value_are_accepted() {
        let m = parse(&cfg(MetricTargetKind::Utilization, &[("value", "50")])).unwrap();
        assert_eq!(m.value, 50.0);
        let m = parse(&cfg(MetricTargetKind::AverageValue, &[("value", "50")])).unwrap();
        assert_eq!(m.value, 50.0);
        let m = parse(&cfg(MetricTargetKind::AverageValue, &[("value", "500m")])).unwrap();
        assert_eq!(m.value, 0.5);
        let m = parse(&cfg(MetricTargetKind::AverageValue, &[("value", "1Gi")])).unwrap();
        assert_eq!(m.value, 1_073_741_824.0);
    }

    #[test]
    fn value_metric_type_is_rejected() {
        let err = parse(&cfg(MetricTargetKind::Value, &[("value", "50")])).unwrap_err();
        assert_eq!(err.parameter(), Some("metricType"));
        assert!(
            err.message()
                .contains("allowed values are 'Utilization' or 'AverageValue'")
        );
    }

    #[test]
    fn empty_value_is_rejected() {
        let err = parse(&cfg(MetricTargetKind::Utilization, &[("value", "")])).unwrap_err();
        assert_eq!(err.parameter(), Some("value"));
    }

    #[test]
    fn bad_values_are_rejected_not_panicking() {
        let err = parse(&cfg(MetricTargetKind::Utilization, &[("value", "50.5")])).unwrap_err();
        assert_eq!(err.parameter(), Some("value"));
        let err = parse(&cfg(MetricTargetKind::AverageValue, &[("value", "lots")])).unwrap_err();
        assert_eq!(err.parameter(), Some("value"));
    }

    #[test]
    fn errors_name_their_parameter() {
        use crate::testing::assert_config_error_names;
        let registry = crate::registry::Registry::builtin();
        for trigger_type in ["cpu", "memory"] {
            for (kind, metadata, parameter) in [
                (MetricTargetKind::Utilization, vec![], "value"),
                (MetricTargetKind::Utilization, vec![("value", "x")], "value"),
                (
                    MetricTargetKind::AverageValue,
                    vec![("value", "1Zi")],
                    "value",
                ),
                (MetricTargetKind::Value, vec![("value", "1")], "metricType"),
                (
                    MetricTargetKind::Utilization,
                    vec![("value", "1"), ("type", "Utilization")],
                    "type",
                ),
            ] {
                let mut c = ScalerConfig::new(trigger_type, 0).with_metadata(metadata);
                c.metric_type = kind;
                assert_config_error_names(&registry.parse_only(&c).unwrap_err(), parameter);
            }
        }
    }

    #[test]
    fn type_parameter_is_removed() {
        let err = parse(&cfg(
            MetricTargetKind::Utilization,
            &[("value", "50"), ("type", "Utilization")],
        ))
        .unwrap_err();
        assert_eq!(err.parameter(), Some("type"));
        assert!(err.message().contains("DEPRECATED"));
    }

    #[tokio::test]
    async fn resource_and_container_resource_specs_always_active() {
        let s = CPU_DESCRIPTOR
            .build(
                &cfg(MetricTargetKind::Utilization, &[("value", "60")]),
                &Pools::new(),
            )
            .await
            .unwrap();
        let specs = s.metric_specs();
        let MetricSpec::Resource(r) = &specs[0] else {
            panic!("not a resource metric")
        };
        assert_eq!(r.resource, "cpu");
        assert_eq!(r.container_name, None);
        assert_eq!(
            r.target,
            MetricTarget::new(MetricTargetKind::Utilization, 60.0)
        );
        assert_eq!(specs[0].external_metric_name(), None);
        assert_eq!(s.metrics_and_activity("").await.unwrap(), (vec![], true));

        let mut memory = cfg(
            MetricTargetKind::AverageValue,
            &[("value", "1Gi"), ("containerName", "app")],
        );
        memory.trigger_type = "memory".into();
        let s = MEMORY_DESCRIPTOR
            .build(&memory, &Pools::new())
            .await
            .unwrap();
        let MetricSpec::Resource(r) = &s.metric_specs()[0] else {
            panic!("not a resource metric")
        };
        assert_eq!(r.resource, "memory");
        assert_eq!(r.container_name.as_deref(), Some("app"));
    }
}
