//! The compliance check every scaler's tests call (feature `testing`). It asserts the contracts the
//! operator relies on: metric names are `s<index>-` prefixed and normalized, activation is a strict
//! `>`, configuration errors are config errors naming the parameter, `Utilization` is refused,
//! values are reported under the name asked for, scalers on one endpoint share one pooled client,
//! and a closed scaler fails with a backend error. Failures panic with a message saying which
//! contract broke, like `assert!`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::ScalerMetadata;
use crate::config::{MetricTargetKind, ScalerConfig};
use crate::error::{BackendError, ConnectError, ScalerError};
use crate::kind::{Descriptor, Example, Reading, ScalerKind};
use crate::metrics::{MetricSpec, MetricTarget, normalize_metric_name, normalized_metric_name};
use crate::params::{FromParams, MetadataParser, ParamInfo};
use crate::pools::Pools;
use crate::registry::Registry;
use crate::scaler::Scaler;

/// What the check needs to know about one scaler.
#[derive(Clone, Debug)]
pub struct ComplianceCase {
    /// A valid trigger. For [`check_live`] its backend must be up and its metric must currently
    /// equal `current_value`.
    pub config: ScalerConfig,
    /// Parameters whose absence must be a config error naming them (removed from metadata, auth
    /// params and `FromEnv`).
    pub required: Vec<&'static str>,
    /// `(parameter, bad value)` pairs set in metadata; each must be a config error naming it.
    pub invalid: Vec<(&'static str, &'static str)>,
    /// The metadata parameter holding the activation threshold, if the scaler has one.
    pub activation_param: Option<&'static str>,
    /// The metric's value on the live backend; use a whole number ≥ 1 so the activation check can
    /// put the threshold on and just below it.
    pub current_value: f64,
}

/// Panics unless `err` is a config error naming `parameter`.
pub fn assert_config_error_names(err: &ScalerError, parameter: &str) {
    assert!(
        err.is_config(),
        "expected a config error naming {parameter:?}, got a backend error: {err}"
    );
    let named =
        err.parameter() == Some(parameter) || err.to_string().contains(&format!("\"{parameter}\""));
    assert!(named, "config error does not name {parameter:?}: {err}");
}

/// Panics unless every External metric of `scaler` is named `s<trigger_index>-<normalized>`.
pub fn assert_metric_names(scaler: &Scaler, trigger_index: usize) {
    let specs = scaler.metric_specs();
    assert!(!specs.is_empty(), "scaler returned no metric specs");
    let prefix = format!("s{trigger_index}-");
    for spec in &specs {
        let Some(name) = spec.external_metric_name() else {
            continue;
        };
        let suffix = name
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("metric name {name:?} does not start with {prefix:?}"));
        assert!(
            !suffix.is_empty(),
            "metric name {name:?} has nothing after the prefix"
        );
        assert_eq!(
            normalize_metric_name(suffix),
            suffix,
            "metric name {name:?} is not normalized"
        );
    }
}

/// The checks that need no backend: the case's config parses, `Utilization` is refused, every
/// required parameter and every invalid value gives a config error naming the parameter.
pub fn check_parsing(registry: &Registry, case: &ComplianceCase) {
    let config = &case.config;
    if let Err(e) = registry.parse_only(config) {
        panic!("the case's config does not parse: {e}");
    }

    let mut utilization = config.clone();
    utilization.metric_type = MetricTargetKind::Utilization;
    match registry.parse_only(&utilization) {
        Ok(()) => panic!("metricType Utilization was accepted for an external scaler"),
        Err(e) => assert_config_error_names(&e, "metricType"),
    }

    for &parameter in &case.required {
        let mut missing = config.clone();
        missing.metadata.remove(parameter);
        missing.metadata.remove(&format!("{parameter}FromEnv"));
        missing.auth_params.remove(parameter);
        match registry.parse_only(&missing) {
            Ok(()) => panic!("config without required parameter {parameter:?} was accepted"),
            Err(e) => assert_config_error_names(&e, parameter),
        }
    }

    for &(parameter, value) in &case.invalid {
        let mut invalid = config.clone();
        invalid
            .metadata
            .insert(parameter.to_owned(), value.to_owned());
        match registry.parse_only(&invalid) {
            Ok(()) => panic!("{parameter}={value:?} was accepted"),
            Err(e) => assert_config_error_names(&e, parameter),
        }
    }
}

async fn build(registry: &Registry, pools: &Pools, config: &ScalerConfig) -> Arc<Scaler> {
    match registry.build(config, pools).await {
        Ok(scaler) => scaler,
        Err(e) => panic!("building the case's scaler failed: {e}"),
    }
}

async fn poll(scaler: &Scaler, metric_name: &str) -> (f64, bool) {
    match scaler.metrics_and_activity(metric_name).await {
        Ok((values, active)) => {
            assert_eq!(values.len(), 1, "expected one value for {metric_name:?}");
            assert!(
                values.iter().all(|v| v.metric_name == metric_name),
                "values must carry the name asked for ({metric_name:?}): {values:?}"
            );
            (values.first().map_or(f64::NAN, |v| v.value), active)
        }
        Err(e) => panic!("polling {metric_name:?} failed: {e}"),
    }
}

fn first_metric_name(scaler: &Scaler) -> String {
    scaler
        .metric_specs()
        .iter()
        .find_map(MetricSpec::external_metric_name)
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("scaler has no External metric"))
}

/// The checks against a live backend: metric names for two trigger indexes, the value, strict
/// activation, one pooled client for two scalers of the same endpoint (released when they are
/// dropped), and a backend error after `close()`.
pub async fn check_live(registry: &Registry, pools: &Pools, case: &ComplianceCase) {
    let clients_before = pools.live_clients();
    let mut first = case.config.clone();
    first.trigger_index = 0;
    let mut second = case.config.clone();
    second.trigger_index = 7;
    let a = build(registry, pools, &first).await;
    let b = build(registry, pools, &second).await;
    assert_metric_names(a.as_ref(), 0);
    assert_metric_names(b.as_ref(), 7);
    let clients_during = pools.live_clients();
    assert!(
        clients_during <= clients_before + 1,
        "two scalers on one endpoint hold {} new pooled clients, expected at most 1",
        clients_during - clients_before
    );

    let name = first_metric_name(a.as_ref());
    let (value, active) = poll(a.as_ref(), &name).await;
    assert_eq!(value, case.current_value, "unexpected metric value");
    let explicit_activation = case
        .activation_param
        .is_some_and(|p| case.config.metadata.contains_key(p));
    if !explicit_activation {
        assert_eq!(
            active,
            case.current_value > 0.0,
            "with the default activation threshold 0, active must be value > 0"
        );
    }

    if let Some(parameter) = case.activation_param {
        let mut at = case.config.clone();
        at.metadata
            .insert(parameter.to_owned(), format!("{}", case.current_value));
        let scaler = build(registry, pools, &at).await;
        let (_, active) = poll(scaler.as_ref(), &first_metric_name(scaler.as_ref())).await;
        assert!(
            !active,
            "value {} equal to {parameter} must be inactive (activation is strictly greater)",
            case.current_value
        );
        if case.current_value >= 1.0 {
            let mut below = case.config.clone();
            below.metadata.insert(
                parameter.to_owned(),
                format!("{}", case.current_value - 1.0),
            );
            let scaler = build(registry, pools, &below).await;
            let (_, active) = poll(scaler.as_ref(), &first_metric_name(scaler.as_ref())).await;
            assert!(active, "value above {parameter} must be active");
        }
    }

    b.close().await;
    b.close().await;
    match b.metrics_and_activity(&first_metric_name(b.as_ref())).await {
        Ok(_) => panic!("a closed scaler still answered"),
        Err(e) => assert!(
            e.is_backend(),
            "a closed scaler must fail with a backend error: {e}"
        ),
    }
    drop((a, b));
    assert_eq!(
        pools.live_clients(),
        clients_before,
        "pooled clients must be released when their scalers are dropped"
    );
}

/// Values of [`FakeScaler`]s by their `key`, set by tests.
static FAKE_VALUES: Mutex<BTreeMap<String, Result<f64, BackendError>>> =
    Mutex::new(BTreeMap::new());

/// Sets what every [`FakeScaler`] with metadata `key: <key>` reads from now on.
pub fn set_fake_value(key: &str, value: Result<f64, BackendError>) {
    FAKE_VALUES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(key.to_owned(), value);
}

/// The parameters of a [`FakeScaler`].
#[derive(Debug, ScalerMetadata)]
struct FakeParams {
    #[param(name = "value")]
    value: f64,
    #[param(name = "key")]
    key: Option<String>,
    #[param(name = "activation", default = 0.0)]
    activation: f64,
    #[param(name = "target", default = 5.0)]
    target: f64,
    #[param(name = "metricName", default = "fake")]
    metric_name: String,
}

/// Parsed trigger of a [`FakeScaler`].
#[derive(Clone, Debug, PartialEq)]
pub struct FakeMetadata {
    /// `value`: what it reads unless `key` has a value set.
    pub value: f64,
    /// `key`: where [`set_fake_value`] puts what it reads.
    pub key: Option<String>,
    /// `activation` (default 0).
    pub activation: f64,
    /// `target` (default 5).
    pub target: f64,
    /// From the trigger's `metricType`.
    pub metric_type: MetricTargetKind,
    /// `metricName`: the metric is `s<index>-<metricName>` (default `fake`).
    pub metric_name: String,
}

/// A scaler without a backend for tests of the runtime and the registry: reads `value`, or what
/// the test set for its `key`; active strictly above `activation`.
#[derive(Debug)]
pub struct FakeScaler {
    metadata: FakeMetadata,
}

/// `fake`, a trigger type only tests register.
pub static FAKE_DESCRIPTOR: Descriptor =
    Descriptor::new::<FakeScaler>("fake", Example::new(&[("value", "1")], &["value"]));

impl ScalerKind for FakeScaler {
    type Metadata = FakeMetadata;

    fn parse(config: &ScalerConfig) -> Result<FakeMetadata, ScalerError> {
        let metric_type = config.external_metric_type()?;
        let mut p = MetadataParser::new(config);
        let FakeParams {
            value,
            key,
            activation,
            target,
            metric_name,
        } = FakeParams::from_params(&mut p);
        p.finish()?;
        Ok(FakeMetadata {
            value,
            key,
            activation,
            target,
            metric_type,
            metric_name,
        })
    }

    fn params() -> Vec<ParamInfo> {
        FakeParams::params()
    }

    fn metric_specs(metadata: &FakeMetadata, config: &ScalerConfig) -> Option<Vec<MetricSpec>> {
        Some(vec![MetricSpec::external(
            normalized_metric_name(config.trigger_index, &metadata.metric_name),
            MetricTarget::new(metadata.metric_type, metadata.target),
        )])
    }

    async fn connect(
        metadata: FakeMetadata,
        _config: &ScalerConfig,
        _pools: &Pools,
    ) -> Result<Self, ConnectError> {
        Ok(Self { metadata })
    }

    async fn read(&self, metric_name: &str) -> Result<Reading, BackendError> {
        let set = self.metadata.key.as_ref().and_then(|key| {
            FAKE_VALUES
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(key)
                .cloned()
        });
        let value = set.unwrap_or(Ok(self.metadata.value))?;
        Ok(Reading::value(
            metric_name,
            value,
            value > self.metadata.activation,
        ))
    }
}
