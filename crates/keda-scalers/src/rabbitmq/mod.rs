//! `rabbitmq`: queue length or message rates of a RabbitMQ queue, read over AMQP (passive queue
//! declare: ready messages only, [`amqp`]) or from the management HTTP API (totals, unacknowledged
//! excluded on request, publish and deliver rates, regex matches aggregated, [`management`]) through
//! the one shared HTTP client. The trigger is parsed in [`metadata`].

pub mod amqp;
pub mod management;
pub mod metadata;

use amqp::{AmqpClient, amqp_endpoint, redact_userinfo};
use management::{QueueStats, management_request, management_tls, queue_stats};
use metadata::{Mode, Protocol, RabbitMqMetadata, query_escape};

use crate::config::ScalerConfig;
use crate::error::{BackendError, ConnectError, ScalerError};
use crate::http::{GetRequest, HttpClient, HttpIdentity};
use crate::kind::{Descriptor, Example, Reading, ScalerKind};
use crate::metrics::{MetricSpec, MetricTarget, normalized_metric_name};
use crate::params::ParamInfo;
use crate::pools::{Lease, Pools};

const EXAMPLE: Example = Example::new(
    &[
        ("queueName", "orders"),
        ("host", "amqp://guest:guest@localhost:5672/"),
        ("mode", "QueueLength"),
        ("value", "20"),
    ],
    &["queueName", "host"],
);

/// `rabbitmq`.
pub static DESCRIPTOR: Descriptor = Descriptor::new::<RabbitMqScaler>("rabbitmq", EXAMPLE);

/// The metric value and activity of `stats` under `mode` (KEDA's per-mode table).
pub fn value_and_activity(mode: Mode, stats: QueueStats, activation: f64) -> (f64, bool) {
    let m = stats.messages;
    let p = stats.publish_rate;
    let d = stats.deliver_get_rate;
    match mode {
        Mode::QueueLength => (m, m > activation),
        Mode::MessageRate => (p, p > activation || m > activation),
        Mode::DeliverGetRate => (d, d > activation),
        Mode::PublishedToDeliveredRatio => {
            let ratio = if p > 0.0 && d == 0.0 {
                activation
            } else if p > 0.0 {
                p / d
            } else {
                0.0
            };
            (ratio, ratio > activation || (p > 0.0 && d == 0.0))
        }
        Mode::ExpectedQueueConsumptionTime => {
            let eta = if m == 0.0 {
                0.0
            } else if d == 0.0 {
                activation
            } else {
                (p - d) / d + m / d
            };
            (eta, eta > activation || (d == 0.0 && m > 0.0))
        }
    }
}

enum Backend {
    Amqp(Lease<AmqpClient>),
    Http {
        client: Lease<HttpClient>,
        request: GetRequest,
    },
}

/// A connected `rabbitmq` trigger: a share of the broker's AMQP connection, or of the shared HTTP
/// client with its management request.
pub struct RabbitMqScaler {
    metadata: RabbitMqMetadata,
    backend: Backend,
}

impl RabbitMqScaler {
    async fn stats(&self) -> Result<QueueStats, BackendError> {
        match &self.backend {
            Backend::Amqp(client) => {
                let count = client.message_count(&self.metadata.queue_name).await?;
                Ok(QueueStats {
                    messages: f64::from(count),
                    ..QueueStats::default()
                })
            }
            Backend::Http { client, request } => queue_stats(client, request, &self.metadata).await,
        }
    }
}

impl ScalerKind for RabbitMqScaler {
    type Metadata = RabbitMqMetadata;

    fn parse(config: &ScalerConfig) -> Result<RabbitMqMetadata, ScalerError> {
        metadata::parse(config)
    }

    fn params() -> Vec<ParamInfo> {
        metadata::params()
    }

    fn metric_specs(metadata: &RabbitMqMetadata, config: &ScalerConfig) -> Option<Vec<MetricSpec>> {
        let name = normalized_metric_name(
            config.trigger_index,
            &format!("rabbitmq-{}", query_escape(&metadata.queue_name)),
        );
        Some(vec![MetricSpec::external(
            name,
            MetricTarget::new(metadata.metric_type, metadata.value),
        )])
    }

    /// Takes a share of the broker's AMQP connection (connecting if nobody uses it yet) or of the
    /// HTTP client for the trigger's TLS material and timeout.
    async fn connect(
        metadata: RabbitMqMetadata,
        config: &ScalerConfig,
        pools: &Pools,
    ) -> Result<Self, ConnectError> {
        if metadata.oauth.is_some() {
            return Err(ConnectError::config(
                "oauthTokenURI",
                "OAuth2 client credentials for the RabbitMQ management API are not supported by keda-rs yet",
            ));
        }
        if metadata.workload_identity_resource.is_some() {
            return Err(ConnectError::config(
                "workloadIdentityResource",
                "Azure workload identity for the RabbitMQ management API is not supported by keda-rs yet",
            ));
        }
        let backend = match metadata.protocol {
            Protocol::Amqp => {
                if metadata.tls.unsafe_ssl {
                    // lapin verifies broker certificates against the system roots plus `ca`.
                    tracing::warn!(
                        trigger = %config.trigger_label(),
                        "unsafeSsl is not honoured on AMQP connections; add the broker's CA as `ca` instead"
                    );
                }
                let endpoint =
                    amqp_endpoint(&metadata).map_err(|e| ConnectError::config("host", e))?;
                let read_timeout = pools.settings().read_timeout;
                let client = pools
                    .lease(&endpoint, || AmqpClient::connect(&endpoint, read_timeout))
                    .await
                    .map_err(|e| e.context("error inspecting RabbitMQ"))?;
                Backend::Amqp(client)
            }
            Protocol::Http => {
                let request =
                    management_request(&metadata).map_err(|e| ConnectError::config("host", e))?;
                let identity = HttpIdentity::new(
                    management_tls(&metadata),
                    metadata.timeout,
                    &pools.settings().http,
                );
                let client = pools
                    .lease(&identity, || async { HttpClient::build(&identity) })
                    .await?;
                Backend::Http { client, request }
            }
        };
        Ok(Self { metadata, backend })
    }

    async fn read(&self, metric_name: &str) -> Result<Reading, BackendError> {
        let stats = self.stats().await.map_err(|e| {
            let e = e.context("error inspecting RabbitMQ");
            BackendError::new(e.kind, redact_userinfo(&e.message))
        })?;
        let (value, active) =
            value_and_activity(self.metadata.mode, stats, self.metadata.activation_value);
        Ok(Reading::value(metric_name, value, active))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names() {
        for (index, queue, want) in [
            (0, "sample", "s0-rabbitmq-sample"),
            (1, "namespace/name", "s1-rabbitmq-namespace-2Fname"),
            (2, "a b", "s2-rabbitmq-a+b"),
        ] {
            let name = normalized_metric_name(index, &format!("rabbitmq-{}", query_escape(queue)));
            assert_eq!(name, want);
        }
    }

    #[test]
    fn value_and_activity_per_mode() {
        let s = |m: i32, p: f64, d: f64| QueueStats {
            messages: f64::from(m),
            publish_rate: p,
            deliver_get_rate: d,
        };
        assert_eq!(
            value_and_activity(Mode::QueueLength, s(5, 9.0, 9.0), 5.0),
            (5.0, false)
        );
        assert_eq!(
            value_and_activity(Mode::QueueLength, s(6, 0.0, 0.0), 5.0),
            (6.0, true)
        );
        assert_eq!(
            value_and_activity(Mode::MessageRate, s(0, 2.5, 0.0), 1.0),
            (2.5, true)
        );
        assert_eq!(
            value_and_activity(Mode::MessageRate, s(3, 0.0, 0.0), 1.0),
            (0.0, true)
        );
        assert_eq!(
            value_and_activity(Mode::MessageRate, s(1, 1.0, 0.0), 1.0),
            (1.0, false)
        );
        assert_eq!(
            value_and_activity(Mode::DeliverGetRate, s(100, 0.0, 4.0), 1.0),
            (4.0, true)
        );
        assert_eq!(
            value_and_activity(Mode::PublishedToDeliveredRatio, s(0, 2.0, 0.0), 1.0),
            (1.0, true)
        );
        assert_eq!(
            value_and_activity(Mode::PublishedToDeliveredRatio, s(0, 3.0, 2.0), 1.0),
            (1.5, true)
        );
        assert_eq!(
            value_and_activity(Mode::PublishedToDeliveredRatio, s(0, 0.0, 2.0), 1.0),
            (0.0, false)
        );
        // KEDA's ETA cases (value 1, activationValue 1).
        let eta = |m, p, d| value_and_activity(Mode::ExpectedQueueConsumptionTime, s(m, p, d), 1.0);
        assert_eq!(eta(0, 0.0, 0.0), (0.0, false));
        assert_eq!(eta(0, 0.0, 2.0), (0.0, false));
        assert_eq!(eta(10, 3.0, 0.0), (1.0, true));
        assert_eq!(eta(10, 3.0, 2.0), (5.5, true));
        assert_eq!(eta(4, 0.0, 2.0), (1.0, false));
    }
}
