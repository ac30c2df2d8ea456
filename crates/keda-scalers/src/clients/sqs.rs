//! Amazon SQS clients, one per identity (region, endpoint, credentials), built on the AWS SDK with
//! a ring-based rustls HTTP client.

use std::fmt;

use aws_config::BehaviorVersion;
use aws_sdk_sqs::config::{Credentials, Region};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

/// Where AWS credentials come from (spec §1.11).
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum AwsCredentials {
    /// Access key id, secret and optional session token.
    Static {
        /// `awsAccessKeyID`.
        access_key_id: String,
        /// `awsSecretAccessKey`.
        secret_access_key: String,
        /// `awsSessionToken`.
        session_token: Option<String>,
    },
    /// Assume `role_arn` with the process's default credentials.
    AssumeRole {
        /// `awsRoleArn` or the pod identity's `roleArn`.
        role_arn: String,
        /// The pod identity's `externalId`.
        external_id: Option<String>,
    },
    /// The process's default credential chain (env, profile, web identity, IMDS).
    Default,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Static { access_key_id, .. } => f
                .debug_struct("Static")
                .field("access_key_id", access_key_id)
                .finish_non_exhaustive(),
            Self::AssumeRole { role_arn, .. } => f
                .debug_struct("AssumeRole")
                .field("role_arn", role_arn)
                .finish_non_exhaustive(),
            Self::Default => f.write_str("Default"),
        }
    }
}

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
    /// Builds the client; assuming a role resolves the base credentials but makes no request yet.
    pub async fn connect(endpoint: &SqsEndpoint) -> Result<Self, String> {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let region = Region::new(endpoint.region.clone());
        let defaults = || {
            aws_config::defaults(BehaviorVersion::latest())
                .region(region.clone())
                .http_client(http.clone())
        };
        let mut loader = defaults();
        match &endpoint.credentials {
            AwsCredentials::Static {
                access_key_id,
                secret_access_key,
                session_token,
            } => {
                loader = loader.credentials_provider(Credentials::new(
                    access_key_id,
                    secret_access_key,
                    session_token.clone(),
                    None,
                    "keda-rs-trigger-auth",
                ));
            }
            AwsCredentials::AssumeRole {
                role_arn,
                external_id,
            } => {
                let base = defaults().load().await;
                let mut role = aws_config::sts::AssumeRoleProvider::builder(role_arn)
                    .session_name("keda-rs")
                    .configure(&base);
                if let Some(id) = external_id {
                    role = role.external_id(id);
                }
                loader = loader.credentials_provider(role.build().await);
            }
            AwsCredentials::Default => {}
        }
        let shared = loader.load().await;
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
