//! `aws-sqs-queue`: approximate visible (plus, per flags, in-flight and delayed) messages of an SQS
//! queue against a target length.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::QueueAttributeName;

use super::auth::{AwsPodIdentity, aws_pod_identity, parse_credentials};
use crate::clients::sqs::{SqsClient, SqsEndpoint};
use crate::config::{MetricTargetKind, ScalerConfig};
use crate::error::ScalerError;
use crate::metrics::{MetricSpec, MetricTarget, MetricValue, normalized_metric_name};
use crate::params::{METADATA_AUTH, METADATA_ENV, MetadataParser};
use crate::pools::{Lease, Pools};
use crate::scaler::Scaler;

/// Backstop for one poll (the SDK retries on its own inside it).
const POLL_TIMEOUT: Duration = Duration::from_secs(20);

/// Parsed `aws-sqs-queue` trigger.
#[derive(Clone, Debug, PartialEq)]
pub struct SqsQueueMetadata {
    /// `queueURL` as given (a URL or a bare queue name).
    pub queue_url: String,
    /// The queue name taken from it.
    pub queue_name: String,
    /// `queueLength` (default 5).
    pub queue_length: i64,
    /// `activationQueueLength` (default 0).
    pub activation_queue_length: i64,
    /// `scaleOnInFlight` (default true).
    pub scale_on_in_flight: bool,
    /// `scaleOnDelayed` (default false).
    pub scale_on_delayed: bool,
    /// Region, endpoint and credentials.
    pub endpoint: SqsEndpoint,
    /// From `metricType`.
    pub metric_type: MetricTargetKind,
}

impl SqsQueueMetadata {
    /// The attributes a poll sums.
    pub fn attributes(&self) -> Vec<QueueAttributeName> {
        let mut names = vec![QueueAttributeName::ApproximateNumberOfMessages];
        if self.scale_on_in_flight {
            names.push(QueueAttributeName::ApproximateNumberOfMessagesNotVisible);
        }
        if self.scale_on_delayed {
            names.push(QueueAttributeName::ApproximateNumberOfMessagesDelayed);
        }
        names
    }
}

/// The queue name of `queue_url`: an absolute URL's path must be `/<account>/<name>`; text that is
/// not a URL is the name itself.
pub fn queue_name_from_url(queue_url: &str) -> Result<String, String> {
    const ERR: &str = "cannot get queueName from queueURL";
    match url::Url::parse(queue_url) {
        Ok(url) if url.has_host() || url.cannot_be_a_base() => {
            let segments: Vec<&str> = url.path().split('/').collect();
            match segments.as_slice() {
                ["", _account, name] if !name.is_empty() => Ok((*name).to_owned()),
                _ => Err(ERR.to_owned()),
            }
        }
        Ok(_) => Err(ERR.to_owned()),
        Err(_) => Ok(queue_url.to_owned()),
    }
}

/// Parses an `aws-sqs-queue` trigger without I/O. `pod_identity` is the TriggerAuthentication's
/// `aws` pod identity, when it names one.
pub fn parse(
    config: &ScalerConfig,
    pod_identity: Option<&AwsPodIdentity>,
) -> Result<SqsQueueMetadata, ScalerError> {
    let metric_type = config.external_metric_type()?;
    let mut p = MetadataParser::new(config);
    let queue_url: String = p.param("queueURL").from(METADATA_ENV).required();
    let region: String = p.param("awsRegion").from(METADATA_AUTH).required();
    let endpoint: Option<String> = p.param("awsEndpoint").optional();
    let queue_length = p.param("queueLength").with_default(5_i64);
    let activation_queue_length = p.param("activationQueueLength").with_default(0_i64);
    let scale_on_in_flight = p.param("scaleOnInFlight").with_default(true);
    let scale_on_delayed = p.param("scaleOnDelayed").with_default(false);
    let credentials = parse_credentials(&mut p, pod_identity);
    let queue_name = if queue_url.is_empty() {
        String::new()
    } else {
        queue_name_from_url(&queue_url).unwrap_or_else(|e| {
            p.error("queueURL", e);
            String::new()
        })
    };
    p.finish()?;
    Ok(SqsQueueMetadata {
        queue_url,
        queue_name,
        queue_length,
        activation_queue_length,
        scale_on_in_flight,
        scale_on_delayed,
        endpoint: SqsEndpoint {
            region,
            endpoint,
            credentials,
        },
        metric_type,
    })
}

/// The built scaler.
pub struct SqsQueueScaler {
    trigger: String,
    metric_name: String,
    metadata: SqsQueueMetadata,
    // `None` after `close()`.
    client: Mutex<Option<Lease<SqsClient>>>,
}

impl SqsQueueScaler {
    /// Parses `config` and takes a share of the pooled client for its region, endpoint and
    /// credentials.
    pub async fn new(
        config: &ScalerConfig,
        pools: &Pools,
        pod_identity: Option<&AwsPodIdentity>,
    ) -> Result<Self, ScalerError> {
        let metadata = parse(config, pod_identity)?;
        let trigger = config.trigger_label();
        let lease = pools
            .sqs()
            .get_or_connect(&metadata.endpoint, || {
                SqsClient::connect(&metadata.endpoint)
            })
            .await
            .map_err(|e| ScalerError::backend(&trigger, e))?;
        Ok(Self {
            metric_name: normalized_metric_name(
                config.trigger_index,
                &format!("aws-sqs-{}", metadata.queue_name),
            ),
            trigger,
            metadata,
            client: Mutex::new(Some(lease)),
        })
    }

    /// The parsed trigger.
    pub fn metadata(&self) -> &SqsQueueMetadata {
        &self.metadata
    }

    async fn message_count(&self) -> Result<i64, String> {
        let client = self
            .client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| "scaler is closed".to_owned())?;
        let wanted = self.metadata.attributes();
        let request = client
            .sdk()
            .get_queue_attributes()
            .queue_url(&self.metadata.queue_url)
            .set_attribute_names(Some(wanted.clone()))
            .send();
        let output = tokio::time::timeout(POLL_TIMEOUT, request)
            .await
            .map_err(|_| {
                format!(
                    "no answer from {} within {POLL_TIMEOUT:?}",
                    client.description()
                )
            })?
            .map_err(|e| {
                format!(
                    "error getting attributes of SQS queue {}: {}",
                    self.metadata.queue_url,
                    aws_sdk_sqs::error::DisplayErrorContext(&e)
                )
            })?;
        let attributes = output.attributes().cloned().unwrap_or_default();
        let mut total: i64 = 0;
        for name in &wanted {
            let raw = attributes.get(name).ok_or_else(|| {
                format!("metric {} not found in SQS queue attributes", name.as_str())
            })?;
            let n: i64 = raw
                .parse()
                .map_err(|e| format!("error parsing {} value {raw:?}: {e}", name.as_str()))?;
            total = total.saturating_add(n);
        }
        Ok(total)
    }
}

#[async_trait]
impl Scaler for SqsQueueScaler {
    fn metric_specs(&self) -> Vec<MetricSpec> {
        #[allow(clippy::cast_precision_loss)]
        let target = self.metadata.queue_length as f64;
        vec![MetricSpec::external(
            self.metric_name.clone(),
            MetricTarget::new(self.metadata.metric_type, target),
        )]
    }

    async fn metrics_and_activity(
        &self,
        metric_name: &str,
    ) -> Result<(Vec<MetricValue>, bool), ScalerError> {
        let count = self.message_count().await.map_err(|e| {
            let e = ScalerError::backend(&self.trigger, e);
            tracing::warn!(trigger = %self.trigger, error = %e, "aws-sqs-queue poll failed");
            e
        })?;
        #[allow(clippy::cast_precision_loss)]
        let value = MetricValue::new(metric_name, count as f64);
        Ok((vec![value], count > self.metadata.activation_queue_length))
    }

    async fn close(&self) {
        self.client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

impl std::fmt::Debug for SqsQueueScaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqsQueueScaler")
            .field("trigger", &self.trigger)
            .field("metric_name", &self.metric_name)
            .field("metadata", &self.metadata)
            .finish_non_exhaustive()
    }
}

/// Registry constructor.
pub(crate) async fn build(
    config: &ScalerConfig,
    pools: &Pools,
) -> Result<Arc<dyn Scaler>, ScalerError> {
    let pod_identity = aws_pod_identity(config);
    Ok(Arc::new(
        SqsQueueScaler::new(config, pools, pod_identity.as_ref()).await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::sqs::AwsCredentials;
    use proptest::prelude::*;

    const URL: &str = "https://sqs.eu-west-1.amazonaws.com/account_id/DeleteArtifactQ";
    const KEYS: &[(&str, &str)] = &[("awsAccessKeyID", "none"), ("awsSecretAccessKey", "none")];

    fn cfg(metadata: &[(&str, &str)], auth: &[(&str, &str)], env: &[(&str, &str)]) -> ScalerConfig {
        ScalerConfig::new("aws-sqs-queue", 0)
            .with_metadata(metadata.iter().copied())
            .with_auth_params(auth.iter().copied())
            .with_resolved_env(env.iter().copied())
    }

    fn rejected(
        metadata: &[(&str, &str)],
        auth: &[(&str, &str)],
        env: &[(&str, &str)],
        parameter: &str,
        message: &str,
    ) {
        let err =
            parse(&cfg(metadata, auth, env), None).expect_err(&format!("{metadata:?} accepted"));
        assert!(err.is_config());
        assert_eq!(err.parameter(), Some(parameter), "{err}");
        assert!(err.message().contains(message), "{err}");
    }

    // KEDA's aws_sqs_queue_scaler_test.go table, as facts.

    #[test]
    fn accepted_cases() {
        let m = parse(
            &cfg(&[("queueURL", URL), ("awsRegion", "eu-west-1")], KEYS, &[]),
            None,
        )
        .unwrap();
        assert_eq!(m.queue_name, "DeleteArtifactQ");
        assert_eq!((m.queue_length, m.activation_queue_length), (5, 0));
        assert!(m.scale_on_in_flight && !m.scale_on_delayed);
        assert_eq!(m.endpoint.region, "eu-west-1");
        assert_eq!(
            m.endpoint.credentials,
            AwsCredentials::Static {
                access_key_id: "none".into(),
                secret_access_key: "none".into(),
                session_token: None
            }
        );
        let m = parse(
            &cfg(
                &[
                    ("queueURL", URL),
                    ("awsRegion", "eu-west-1"),
                    ("identityOwner", "operator"),
                ],
                &[("awsAccessKeyID", ""), ("awsSecretAccessKey", "")],
                &[],
            ),
            None,
        )
        .unwrap();
        assert_eq!(m.endpoint.credentials, AwsCredentials::Default);
        let m = parse(
            &cfg(
                &[("queueURL", "my-queue"), ("awsRegion", "eu-west-1")],
                KEYS,
                &[],
            ),
            None,
        )
        .unwrap();
        assert_eq!(m.queue_name, "my-queue");
        let m = parse(
            &cfg(
                &[
                    ("queueURLFromEnv", "QUEUE_URL"),
                    ("awsRegion", "eu-west-1"),
                    ("queueLength", "7"),
                    ("activationQueueLength", "2"),
                    ("scaleOnInFlight", "false"),
                    ("scaleOnDelayed", "true"),
                    ("awsEndpoint", "http://localhost:4566"),
                ],
                KEYS,
                &[("QUEUE_URL", URL)],
            ),
            None,
        )
        .unwrap();
        assert_eq!(m.queue_url, URL);
        assert_eq!((m.queue_length, m.activation_queue_length), (7, 2));
        assert_eq!(
            m.endpoint.endpoint.as_deref(),
            Some("http://localhost:4566")
        );
        assert_eq!(
            m.attributes(),
            vec![
                QueueAttributeName::ApproximateNumberOfMessages,
                QueueAttributeName::ApproximateNumberOfMessagesDelayed
            ]
        );
        // The region may come from auth params too.
        parse(
            &cfg(
                &[("queueURL", URL)],
                &[("awsRegion", "eu-west-1"), KEYS[0], KEYS[1]],
                &[],
            ),
            None,
        )
        .unwrap();
    }

    #[test]
    fn rejected_cases() {
        let err = parse(&cfg(&[], &[], &[]), None).unwrap_err();
        assert_eq!(err.parameter(), Some("queueURL"));
        assert!(
            err.message()
                .contains("missing required parameter \"awsRegion\"")
        );
        for url in [
            "https://sqs.eu-west-1.amazonaws.com/account_id",
            "https://sqs.eu-west-1.amazonaws.com",
            "https://sqs.eu-west-1.amazonaws.com/account_id/",
            "https://sqs.eu-west-1.amazonaws.com/a/b/c",
        ] {
            rejected(
                &[("queueURL", url), ("awsRegion", "eu-west-1")],
                KEYS,
                &[],
                "queueURL",
                "cannot get queueName from queueURL",
            );
        }
        rejected(
            &[("queueURL", URL), ("awsRegion", "")],
            KEYS,
            &[],
            "awsRegion",
            "missing required parameter \"awsRegion\"",
        );
        for p in ["queueLength", "activationQueueLength"] {
            rejected(
                &[("queueURL", URL), ("awsRegion", "eu-west-1"), (p, "a")],
                KEYS,
                &[],
                p,
                "unable to set param",
            );
        }
        rejected(
            &[("queueURL", URL), ("awsRegion", "eu-west-1")],
            &[("awsAccessKeyID", ""), ("awsSecretAccessKey", "x")],
            &[],
            "awsAccessKeyID",
            "awsAccessKeyID not found",
        );
        rejected(
            &[("queueURL", URL), ("awsRegion", "eu-west-1")],
            &[("awsAccessKeyID", "x"), ("awsSecretAccessKey", "")],
            &[],
            "awsSecretAccessKey",
            "awsSecretAccessKey not found",
        );
        rejected(
            &[("queueURLFromEnv", "QUEUE_URL"), ("awsRegion", "eu-west-1")],
            KEYS,
            &[("QUEUE_URL", "")],
            "queueURL",
            "missing required parameter \"queueURL\"",
        );
        rejected(
            &[("queueURLFromEnv", "MISSING"), ("awsRegion", "eu-west-1")],
            KEYS,
            &[],
            "queueURL",
            "missing required parameter \"queueURL\"",
        );
    }

    #[test]
    fn metric_name_is_normalized() {
        let m = parse(
            &cfg(&[("queueURL", URL), ("awsRegion", "eu-west-1")], KEYS, &[]),
            None,
        )
        .unwrap();
        assert_eq!(
            normalized_metric_name(3, &format!("aws-sqs-{}", m.queue_name)),
            "s3-aws-sqs-DeleteArtifactQ"
        );
        assert_eq!(
            normalized_metric_name(0, "aws-sqs-orders.fifo"),
            "s0-aws-sqs-orders-fifo"
        );
    }

    proptest! {
        #[test]
        fn queue_name_extraction_never_panics(text in ".{0,60}") {
            let _ = queue_name_from_url(&text);
        }

        #[test]
        fn well_formed_urls_give_their_name(account in "[0-9]{12}", name in "[A-Za-z0-9_-]{1,40}") {
            let url = format!("https://sqs.us-east-1.amazonaws.com/{account}/{name}");
            prop_assert_eq!(queue_name_from_url(&url).unwrap(), name);
        }
    }
}
