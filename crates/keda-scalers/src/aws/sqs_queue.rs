//! `aws-sqs-queue`: approximate visible (plus, per flags, in-flight and delayed) messages of an SQS
//! queue against a target length. Clients are pooled per region, endpoint and credentials.

use aws_sdk_sqs::types::QueueAttributeName;

use super::{AwsCredentials, AwsParams, AwsPodIdentity, aws_pod_identity, sdk_error};
use crate::ScalerMetadata;
use crate::config::{MetricTargetKind, ScalerConfig};
use crate::error::{BackendError, ConnectError, ScalerError};
use crate::kind::{Descriptor, Example, Reading, ScalerKind};
use crate::metrics::{MetricSpec, MetricTarget, normalized_metric_name};
use crate::params::{FromParams, MetadataParser, ParamInfo};
use crate::pools::{Lease, PooledClient, Pools};

const EXAMPLE: Example = Example::new(
    &[
        (
            "queueURL",
            "https://sqs.eu-west-1.amazonaws.com/123456789012/orders",
        ),
        ("awsRegion", "eu-west-1"),
    ],
    &["queueURL", "awsRegion"],
)
.with_auth(&[("awsAccessKeyID", "AKID"), ("awsSecretAccessKey", "secret")]);

/// `aws-sqs-queue`.
pub static DESCRIPTOR: Descriptor = Descriptor::new::<SqsQueueScaler>("aws-sqs-queue", EXAMPLE);

/// What identifies one SQS client.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SqsEndpoint {
    /// `awsRegion`.
    pub region: String,
    /// `awsEndpoint`, for emulators and private endpoints.
    pub endpoint: Option<String>,
    /// Credentials.
    pub credentials: AwsCredentials,
}

/// A shared SQS client.
#[derive(Debug)]
pub struct SqsClient {
    client: aws_sdk_sqs::Client,
    description: String,
}

impl SqsClient {
    /// Builds the client; no request is made yet.
    pub async fn connect(endpoint: &SqsEndpoint) -> Result<Self, BackendError> {
        let shared = super::sdk_config(&endpoint.region, &endpoint.credentials).await;
        let mut config = aws_sdk_sqs::config::Builder::from(&shared);
        if let Some(url) = &endpoint.endpoint {
            config = config.endpoint_url(url);
        }
        Ok(Self {
            client: aws_sdk_sqs::Client::from_conf(config.build()),
            description: format!(
                "SQS in {}{}",
                endpoint.region,
                endpoint
                    .endpoint
                    .as_ref()
                    .map(|e| format!(" at {e}"))
                    .unwrap_or_default()
            ),
        })
    }

    /// The SDK client.
    pub fn sdk(&self) -> &aws_sdk_sqs::Client {
        &self.client
    }

    /// Region and endpoint, for errors.
    pub fn description(&self) -> &str {
        &self.description
    }
}

impl PooledClient for SqsClient {
    type Key = SqsEndpoint;
    const KIND: &'static str = "sqs";
}

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

/// The parameters of an `aws-sqs-queue` trigger, in the order they are read.
#[derive(ScalerMetadata)]
struct SqsQueueParams {
    #[param(name = "queueURL", from = METADATA_ENV)]
    queue_url: String,
    #[param(flatten)]
    aws: AwsParams,
    #[param(name = "queueLength", default = 5)]
    queue_length: i64,
    #[param(name = "activationQueueLength", default = 0)]
    activation_queue_length: i64,
    #[param(name = "scaleOnInFlight", default = true)]
    scale_on_in_flight: bool,
    #[param(name = "scaleOnDelayed", default = false)]
    scale_on_delayed: bool,
}

/// Parses an `aws-sqs-queue` trigger without I/O. `pod_identity` is the TriggerAuthentication's
/// `aws` pod identity, when it names one.
pub fn parse(
    config: &ScalerConfig,
    pod_identity: Option<&AwsPodIdentity>,
) -> Result<SqsQueueMetadata, ScalerError> {
    let metric_type = config.external_metric_type()?;
    let mut p = MetadataParser::new(config);
    let SqsQueueParams {
        queue_url,
        aws,
        queue_length,
        activation_queue_length,
        scale_on_in_flight,
        scale_on_delayed,
    } = SqsQueueParams::from_params(&mut p);
    let credentials = aws.auth.credentials(&mut p, pod_identity);
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
            region: aws.region,
            endpoint: aws.endpoint,
            credentials,
        },
        metric_type,
    })
}

/// A connected `aws-sqs-queue` trigger.
pub struct SqsQueueScaler {
    metadata: SqsQueueMetadata,
    client: Lease<SqsClient>,
}

impl ScalerKind for SqsQueueScaler {
    type Metadata = SqsQueueMetadata;

    fn parse(config: &ScalerConfig) -> Result<SqsQueueMetadata, ScalerError> {
        parse(config, aws_pod_identity(config).as_ref())
    }

    fn params() -> Vec<ParamInfo> {
        SqsQueueParams::params()
    }

    fn metric_specs(metadata: &SqsQueueMetadata, config: &ScalerConfig) -> Option<Vec<MetricSpec>> {
        Some(vec![MetricSpec::external(
            normalized_metric_name(
                config.trigger_index,
                &format!("aws-sqs-{}", metadata.queue_name),
            ),
            MetricTarget::count(metadata.metric_type, metadata.queue_length),
        )])
    }

    /// Takes a share of the pooled client for the region, endpoint and credentials.
    async fn connect(
        metadata: SqsQueueMetadata,
        _config: &ScalerConfig,
        pools: &Pools,
    ) -> Result<Self, ConnectError> {
        let client = pools
            .lease(&metadata.endpoint, || {
                SqsClient::connect(&metadata.endpoint)
            })
            .await?;
        Ok(Self { metadata, client })
    }

    async fn read(&self, metric_name: &str) -> Result<Reading, BackendError> {
        let wanted = self.metadata.attributes();
        let output = self
            .client
            .sdk()
            .get_queue_attributes()
            .queue_url(&self.metadata.queue_url)
            .set_attribute_names(Some(wanted.clone()))
            .send()
            .await
            .map_err(|e| {
                sdk_error(&e).context(format!(
                    "error getting attributes of SQS queue {}",
                    self.metadata.queue_url
                ))
            })?;
        let attributes = output.attributes().cloned().unwrap_or_default();
        let mut total: i64 = 0;
        for name in &wanted {
            let raw = attributes.get(name).ok_or_else(|| {
                BackendError::protocol(format!(
                    "metric {} not found in SQS queue attributes",
                    name.as_str()
                ))
            })?;
            let n: i64 = raw.parse().map_err(|e| {
                BackendError::protocol(format!(
                    "error parsing {} value {raw:?}: {e}",
                    name.as_str()
                ))
            })?;
            total = total.saturating_add(n);
        }
        Ok(Reading::count(
            metric_name,
            total,
            self.metadata.activation_queue_length,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
