//! The wrapper's contract, on a fake kind and paused time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::config::MetricTargetKind;
use crate::error::{BackendError, BackendKind, ConnectError, ScalerError};
use crate::kind::{Descriptor, Example, Reading, ScalerKind};
use crate::metrics::{MetricSpec, MetricTarget, normalized_metric_name};
use crate::params::MetadataParser;
use crate::pools::{Lease, PooledClient, Pools};
use crate::settings::ScalerSettings;
use crate::{Scaler, ScalerConfig};

struct Backend;
impl PooledClient for Backend {
    type Key = String;
    const KIND: &'static str = "fake";
}

static CONNECTS: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug)]
struct FakeMetadata {
    value: i64,
    activation: i64,
    delay_ms: u64,
    fail: Option<&'static str>,
    target: i64,
    metric_type: MetricTargetKind,
}

struct FakeKind {
    metadata: FakeMetadata,
    _client: Lease<Backend>,
}

impl ScalerKind for FakeKind {
    type Metadata = FakeMetadata;

    fn parse(config: &ScalerConfig) -> Result<FakeMetadata, ScalerError> {
        let metric_type = config.external_metric_type()?;
        let mut p = MetadataParser::new(config);
        let value = p.param("value").required();
        let activation = p.param("activation").with_default(0_i64);
        let delay_ms = p.param("delayMs").with_default(0_u64);
        let target = p.param("target").with_default(5_i64);
        let fail: String = p.param("fail").with_default(String::new());
        p.finish()?;
        let fail = match fail.as_str() {
            "connect" => Some("connect"),
            "auth" => Some("auth"),
            "config" => Some("config"),
            _ => None,
        };
        Ok(FakeMetadata {
            value,
            activation,
            delay_ms,
            fail,
            target,
            metric_type,
        })
    }

    fn params() -> Vec<crate::params::ParamInfo> {
        Vec::new()
    }

    fn metric_specs(metadata: &FakeMetadata, config: &ScalerConfig) -> Option<Vec<MetricSpec>> {
        let target = crate::metrics::count_value(metadata.target);
        Some(vec![MetricSpec::external(
            normalized_metric_name(config.trigger_index, "fake"),
            MetricTarget::new(metadata.metric_type, target),
        )])
    }

    async fn connect(
        metadata: FakeMetadata,
        _config: &ScalerConfig,
        pools: &Pools,
    ) -> Result<Self, ConnectError> {
        match metadata.fail {
            Some("connect") => return Err(BackendError::connect("refused").into()),
            Some("config") => return Err(ConnectError::config("fail", "not supported")),
            _ => {}
        }
        let client = pools
            .lease::<Backend, _, _>(&"one".to_owned(), || async {
                CONNECTS.fetch_add(1, Ordering::SeqCst);
                Ok(Backend)
            })
            .await?;
        Ok(Self {
            metadata,
            _client: client,
        })
    }

    async fn read(&self, metric_name: &str) -> Result<Reading, BackendError> {
        tokio::time::sleep(Duration::from_millis(self.metadata.delay_ms)).await;
        if self.metadata.fail == Some("auth") {
            return Err(BackendError::auth("bad password"));
        }
        Ok(Reading::count(
            metric_name,
            self.metadata.value,
            self.metadata.activation,
        ))
    }
}

static FAKE: Descriptor =
    Descriptor::new::<FakeKind>("fake", Example::new(&[("value", "3")], &["value"]));
static SLOW_FAKE: Descriptor =
    Descriptor::new::<FakeKind>("fake-slow", Example::new(&[("value", "3")], &["value"]))
        .with_read_timeout(Duration::from_secs(30));

fn config(metadata: &[(&str, &str)]) -> ScalerConfig {
    let mut c = ScalerConfig::new("fake", 2).with_metadata(metadata.iter().copied());
    c.scalable_object_namespace = "ns".into();
    c.scalable_object_name = "so".into();
    c
}

#[test]
fn counts_are_active_strictly_above_activation() {
    assert!(!Reading::count("m", 3, 3).active);
    assert!(Reading::count("m", 4, 3).active);
    assert_eq!(Reading::count("m", 4, 3).values[0].value, 4.0);
    assert_eq!(Reading::count("m", 4, 3).values[0].metric_name, "m");
}

#[test]
fn parse_gives_specs_without_io() {
    let specs = FAKE
        .parse(&config(&[("value", "1"), ("target", "7")]))
        .unwrap();
    let specs = specs.unwrap();
    assert_eq!(specs[0].external_metric_name(), Some("s2-fake"));
    let err = FAKE.parse(&config(&[])).unwrap_err();
    assert_eq!(err.parameter(), Some("value"));
    let example = FAKE.example.config(FAKE.trigger_type);
    assert!(FAKE.parse(&example).is_ok());
}

#[tokio::test(start_paused = true)]
async fn reads_are_labelled_bounded_and_closed() {
    let pools = Pools::with_settings(ScalerSettings {
        read_timeout: Duration::from_secs(2),
        ..ScalerSettings::default()
    });
    let scaler: Scaler = FAKE
        .build(&config(&[("value", "4"), ("activation", "3")]), &pools)
        .await
        .unwrap();
    assert_eq!(scaler.trigger_type(), "fake");
    assert_eq!(scaler.read_timeout(), Duration::from_secs(2));
    let (values, active) = scaler.metrics_and_activity("s2-fake").await.unwrap();
    assert_eq!(values[0].value, 4.0);
    assert!(active);

    let slow = FAKE
        .build(&config(&[("value", "4"), ("delayMs", "5000")]), &pools)
        .await
        .unwrap();
    let err = slow.metrics_and_activity("s2-fake").await.unwrap_err();
    assert_eq!(err.backend_kind(), Some(BackendKind::Timeout));
    assert_eq!(err.trigger(), scaler.trigger());
    assert!(err.to_string().contains("no answer within 2s"), "{err}");

    // A descriptor's own timeout wins over the process default.
    let patient = SLOW_FAKE
        .build(&config(&[("value", "4"), ("delayMs", "5000")]), &pools)
        .await
        .unwrap();
    assert!(patient.metrics_and_activity("s2-fake").await.is_ok());

    let auth = FAKE
        .build(&config(&[("value", "1"), ("fail", "auth")]), &pools)
        .await
        .unwrap();
    let err = auth.metrics_and_activity("s2-fake").await.unwrap_err();
    assert_eq!(err.backend_kind(), Some(BackendKind::Auth));

    assert_eq!(pools.live_clients(), 1, "every scaler shares one client");
    for s in [&scaler, &slow, &patient, &auth] {
        s.close().await;
        s.close().await;
    }
    assert_eq!(pools.live_clients(), 0, "closing released the client");
    let err = scaler.metrics_and_activity("s2-fake").await.unwrap_err();
    assert_eq!(err.backend_kind(), Some(BackendKind::Closed));
}

#[tokio::test]
async fn connect_failures_keep_their_family() {
    let pools = Pools::new();
    let err = FAKE
        .build(&config(&[("value", "1"), ("fail", "connect")]), &pools)
        .await
        .unwrap_err();
    assert_eq!(err.backend_kind(), Some(BackendKind::Connect));
    let err = FAKE
        .build(&config(&[("value", "1"), ("fail", "config")]), &pools)
        .await
        .unwrap_err();
    assert!(err.is_config());
    assert_eq!(err.parameter(), Some("fail"));
    let err = FAKE.build(&config(&[]), &pools).await.unwrap_err();
    assert_eq!(err.parameter(), Some("value"));
}
