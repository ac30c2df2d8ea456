//! The contract a scaler author implements ([`ScalerKind`]) and the registry's view of it
//! ([`Descriptor`]). A scaler says how its metadata parses, which metrics it feeds the HPA, how it
//! connects and how it reads; timeouts, tracing, the trigger label on errors and closing are the
//! wrapper's ([`crate::Scaler`]), so no scaler writes them again.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::config::{MetricTargetKind, ScalerConfig};
use crate::error::{BackendError, ConnectError, ScalerError};
use crate::metrics::{MetricSpec, MetricValue, count_value};
use crate::params::ParamInfo;
use crate::pools::Pools;
use crate::scaler::Scaler;

/// Where a push scaler reports the activity its backend announces between polls (`true`: the
/// trigger just became active). Called from the scaler's own task; must not block.
pub type ActivitySink = Arc<dyn Fn(bool) + Send + Sync>;

/// One read of a trigger: its values, named as asked, and whether it is active.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    /// The values.
    pub values: Vec<MetricValue>,
    /// Active: above the activation threshold (strictly, unless the scaler documents otherwise).
    pub active: bool,
}

impl Reading {
    /// Values and activity as they are.
    pub fn new(values: Vec<MetricValue>, active: bool) -> Self {
        Self { values, active }
    }

    /// One value for `metric_name`.
    pub fn value(metric_name: &str, value: f64, active: bool) -> Self {
        Self::new(vec![MetricValue::new(metric_name, value)], active)
    }

    /// A count (queue length, lag, …): active when strictly above `activation`.
    pub fn count(metric_name: &str, count: i64, activation: i64) -> Self {
        Self::value(metric_name, count_value(count), count > activation)
    }

    /// A count whose activation threshold is a float (KEDA's `activationValue` of some scalers).
    pub fn count_over(metric_name: &str, count: i64, activation: f64) -> Self {
        let value = count_value(count);
        Self::value(metric_name, value, value > activation)
    }
}

/// A trigger type's implementation. The value of `Self` is the connected scaler: it holds its
/// share of a pooled client and is dropped on close.
pub trait ScalerKind: Send + Sync + Sized + 'static {
    /// The parsed trigger.
    type Metadata: fmt::Debug + Send + Sync + 'static;

    /// Parses `config` without I/O; errors are config errors naming the parameter.
    fn parse(config: &ScalerConfig) -> Result<Self::Metadata, ScalerError>;

    /// The parameter table (from the derived metadata groups the parser reads), in KEDA's
    /// `scalers-schema.yaml` terms.
    fn params() -> Vec<ParamInfo>;

    /// The metrics this trigger feeds the HPA, from the metadata alone: used to build the HPA,
    /// by `keda-rs validate` and the webhook. `None` only where the backend tells (`external`):
    /// then [`ScalerKind::backend_metric_specs`] answers after connecting.
    fn metric_specs(metadata: &Self::Metadata, config: &ScalerConfig) -> Option<Vec<MetricSpec>>;

    /// Connects (usually: takes a lease from `pools`).
    fn connect(
        metadata: Self::Metadata,
        config: &ScalerConfig,
        pools: &Pools,
    ) -> impl Future<Output = Result<Self, ConnectError>> + Send;

    /// One read of `metric_name` (one of the metric specs' names). No timeout, logging or
    /// trigger label: the wrapper adds them.
    fn read(&self, metric_name: &str)
    -> impl Future<Output = Result<Reading, BackendError>> + Send;

    /// The specs of a scaler whose [`ScalerKind::metric_specs`] is `None`.
    fn backend_metric_specs(&self) -> Vec<MetricSpec> {
        Vec::new()
    }

    /// Push scalers (`external-push`) start delivering announced activity to `sink`; a later call
    /// replaces the sink. Polling scalers ignore it.
    fn watch_activity(&self, sink: ActivitySink) {
        drop(sink);
    }
}

/// A valid trigger of a type, for the registry-wide compliance test and the docs (Vector's
/// `GenerateConfig`): it must parse, and removing any `required` parameter must fail naming it.
#[derive(Clone, Copy, Debug)]
pub struct Example {
    /// Trigger metadata.
    pub metadata: &'static [(&'static str, &'static str)],
    /// TriggerAuthentication parameters.
    pub auth: &'static [(&'static str, &'static str)],
    /// Parameters without which the trigger is a config error naming them.
    pub required: &'static [&'static str],
    /// The metric type the example uses; `Utilization` only for resource metrics.
    pub metric_type: MetricTargetKind,
}

impl Example {
    /// An example with metadata and required parameters, `AverageValue`.
    pub const fn new(
        metadata: &'static [(&'static str, &'static str)],
        required: &'static [&'static str],
    ) -> Self {
        Self {
            metadata,
            auth: &[],
            required,
            metric_type: MetricTargetKind::AverageValue,
        }
    }

    /// The same with TriggerAuthentication parameters.
    #[must_use]
    pub const fn with_auth(mut self, auth: &'static [(&'static str, &'static str)]) -> Self {
        self.auth = auth;
        self
    }

    /// The same with another metric type.
    #[must_use]
    pub const fn with_metric_type(mut self, metric_type: MetricTargetKind) -> Self {
        self.metric_type = metric_type;
        self
    }

    /// The example as a trigger config of `trigger_type` at index 0.
    pub fn config(&self, trigger_type: &str) -> ScalerConfig {
        let mut config = ScalerConfig::new(trigger_type, 0)
            .with_metadata(self.metadata.iter().copied())
            .with_auth_params(self.auth.iter().copied());
        config.metric_type = self.metric_type;
        config
    }
}

type ParseFn = fn(&ScalerConfig) -> Result<Option<Vec<MetricSpec>>, ScalerError>;
type BuildFn = for<'a> fn(
    &'static Descriptor,
    &'a ScalerConfig,
    &'a Pools,
) -> BoxFuture<'a, Result<Scaler, ScalerError>>;

/// One trigger type as the registry lists it. Built by [`Descriptor::new`] in a `static`.
pub struct Descriptor {
    /// The trigger type, exactly as KEDA spells it.
    pub trigger_type: &'static str,
    /// A valid trigger.
    pub example: Example,
    /// Raises the process-wide read timeout for backends whose own request timeout is longer
    /// (kafka).
    pub read_timeout: Option<Duration>,
    parse: ParseFn,
    build: BuildFn,
    params: fn() -> Vec<ParamInfo>,
}

impl Descriptor {
    /// The descriptor of `S` under `trigger_type`. Several types may share one `S` (redis,
    /// redis-cluster, redis-sentinel): its metadata reads `ScalerConfig::trigger_type`.
    pub const fn new<S: ScalerKind>(trigger_type: &'static str, example: Example) -> Self {
        Self {
            trigger_type,
            example,
            read_timeout: None,
            parse: parse_kind::<S>,
            build: build_kind::<S>,
            params: S::params,
        }
    }

    /// The same with its own read timeout.
    #[must_use]
    pub const fn with_read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = Some(timeout);
        self
    }

    /// Parses `config` without I/O and returns its metric specs, or `None` where only the backend
    /// knows them.
    pub fn parse(&self, config: &ScalerConfig) -> Result<Option<Vec<MetricSpec>>, ScalerError> {
        (self.parse)(config)
    }

    /// The trigger type's parameters.
    pub fn params(&self) -> Vec<ParamInfo> {
        (self.params)()
    }

    /// Parses and connects `config`, sharing clients through `pools`.
    pub async fn build(
        &'static self,
        config: &ScalerConfig,
        pools: &Pools,
    ) -> Result<Scaler, ScalerError> {
        (self.build)(self, config, pools).await
    }
}

impl fmt::Debug for Descriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Descriptor")
            .field("trigger_type", &self.trigger_type)
            .field("read_timeout", &self.read_timeout)
            .finish_non_exhaustive()
    }
}

fn parse_kind<S: ScalerKind>(
    config: &ScalerConfig,
) -> Result<Option<Vec<MetricSpec>>, ScalerError> {
    let metadata = S::parse(config)?;
    Ok(S::metric_specs(&metadata, config))
}

fn build_kind<'a, S: ScalerKind>(
    descriptor: &'static Descriptor,
    config: &'a ScalerConfig,
    pools: &'a Pools,
) -> BoxFuture<'a, Result<Scaler, ScalerError>> {
    Box::pin(async move {
        let metadata = S::parse(config)?;
        let specs = S::metric_specs(&metadata, config);
        let connected = S::connect(metadata, config, pools)
            .await
            .map_err(|e| e.into_scaler_error(config.trigger_label()))?;
        let specs = specs.unwrap_or_else(|| connected.backend_metric_specs());
        let read_timeout = descriptor
            .read_timeout
            .unwrap_or(pools.settings().read_timeout);
        Ok(Scaler::new(
            descriptor,
            config,
            specs,
            read_timeout,
            connected,
        ))
    })
}
