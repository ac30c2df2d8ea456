//! The AWS family: `aws-sqs-queue` ([`sqs_queue`]) and what every AWS scaler shares: the
//! credentials of a trigger (spec §1.11: pod identity `aws`, else metadata `identityOwner` —
//! `operator` → the operator's own credentials; empty or `pod` → `awsRoleArn`, else an access key
//! pair from auth params, or from metadata / `FromEnv`), the SDK configuration they resolve to
//! (with a ring-based rustls HTTP client), and the classification of SDK errors.

pub mod sqs_queue;

use std::fmt;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_sqs::config::{Credentials, Region};
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

use crate::ScalerMetadata;
use crate::config::ScalerConfig;
use crate::error::{BackendError, BackendKind};
use crate::params::{AUTH_ENV, ENV};
use crate::params::{
    AUTH_METADATA_ENV, AUTH_PARAMS, FromParams, METADATA_ENV, MetadataParser, ParamInfo,
};

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

/// The SDK configuration for `region` and `credentials`; assuming a role resolves the base
/// credentials but makes no request yet.
pub async fn sdk_config(region: &str, credentials: &AwsCredentials) -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let region = Region::new(region.to_owned());
    let defaults = || {
        aws_config::defaults(BehaviorVersion::latest())
            .region(region.clone())
            .http_client(http.clone())
    };
    let mut loader = defaults();
    match credentials {
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
    loader.load().await
}

/// Error codes AWS services use for refused credentials or permissions.
const AUTH_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "ExpiredToken",
    "ExpiredTokenException",
    "IncompleteSignature",
    "InvalidClientTokenId",
    "InvalidSecurity",
    "MissingAuthenticationToken",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
];

/// Classifies a failed SDK call; the message is the SDK's full error context.
pub fn sdk_error<E>(error: &SdkError<E>) -> BackendError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let message = DisplayErrorContext(error).to_string();
    let kind = match error {
        SdkError::TimeoutError(_) => BackendKind::Timeout,
        SdkError::DispatchFailure(failure) if failure.is_timeout() => BackendKind::Timeout,
        SdkError::DispatchFailure(failure) if failure.is_io() => BackendKind::Connect,
        // Failures before the request is sent that are not I/O are resolving credentials
        // (assuming a role, IMDS, web identity) or signing with them.
        SdkError::DispatchFailure(_) if mentions_credentials(error) => BackendKind::Auth,
        SdkError::DispatchFailure(_) => BackendKind::Connect,
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            let status = service.raw().status().as_u16();
            if AUTH_CODES.contains(&code) || matches!(status, 401 | 403) {
                BackendKind::Auth
            } else if code.contains("NonExistent")
                || code.contains("DoesNotExist")
                || code.contains("NotFound")
                || status == 404
            {
                BackendKind::NotFound
            } else {
                BackendKind::Protocol
            }
        }
        _ => BackendKind::Protocol,
    };
    BackendError::new(kind, message)
}

fn mentions_credentials(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.to_string().to_ascii_lowercase().contains("credential") {
            return true;
        }
        current = e.source();
    }
    false
}

/// The `aws` pod identity of the trigger's TriggerAuthentication, if it names one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AwsPodIdentity {
    /// `podIdentity.roleArn`.
    pub role_arn: Option<String>,
    /// `podIdentity.externalId`.
    pub external_id: Option<String>,
}

/// The trigger's pod identity when its provider is `aws`.
pub fn aws_pod_identity(config: &ScalerConfig) -> Option<AwsPodIdentity> {
    config
        .pod_identity
        .as_ref()
        .filter(|p| p.provider == "aws")
        .map(|p| AwsPodIdentity {
            role_arn: p.role_arn.clone().filter(|r| !r.trim().is_empty()),
            external_id: p.external_id.clone().filter(|r| !r.trim().is_empty()),
        })
}

/// Region, endpoint and credentials: the parameters every AWS trigger type reads, flattened into
/// its metadata after the parameters KEDA lists before `awsRegion`.
#[derive(ScalerMetadata)]
pub struct AwsParams {
    /// `awsRegion`.
    #[param(name = "awsRegion", from = METADATA_AUTH)]
    pub region: String,
    /// `awsEndpoint`, for emulators and private endpoints.
    #[param(name = "awsEndpoint")]
    pub endpoint: Option<String>,
    /// The credential parameters; [`AwsAuthParams::credentials`] turns them into credentials.
    #[param(flatten)]
    pub auth: AwsAuthParams,
}

/// The credential parameters (spec §1.11). Which of them count depends on the pod identity and
/// `identityOwner`, so they are all read and [`AwsAuthParams::credentials`] picks. No `Debug`:
/// they hold secrets.
#[derive(ScalerMetadata)]
pub struct AwsAuthParams {
    #[param(name = "awsRoleArn", from = AUTH_PARAMS)]
    role_arn: Option<String>,
    #[param(name = "identityOwner")]
    identity_owner: Option<String>,
    #[param(flatten)]
    keys: AwsKeyParams,
    #[param(name = "awsSessionToken", from = AUTH_PARAMS)]
    session_token: Option<String>,
}

/// The access key pair. Hand-written rather than derived because each half has a source order
/// the derive cannot declare: the key id from auth params under either spelling, else from
/// metadata / `FromEnv` under `awsAccessKeyID` only; the secret from auth params, else `FromEnv`
/// (never from plain metadata).
pub struct AwsKeyParams {
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
}

impl FromParams for AwsKeyParams {
    fn from_params(p: &mut MetadataParser<'_>) -> Self {
        let from_auth: Option<String> = p
            .param("awsAccessKeyID")
            .alias("awsAccessKeyId")
            .from(AUTH_PARAMS)
            .optional();
        let access_key_id = match from_auth {
            Some(k) => Some(k),
            None => p.param("awsAccessKeyID").from(METADATA_ENV).optional(),
        };
        let secret_access_key: Option<String> = p
            .param("awsSecretAccessKey")
            .from(AUTH_PARAMS)
            .optional()
            .or_else(|| p.param("awsSecretAccessKey").from(ENV).optional());
        Self {
            access_key_id,
            secret_access_key,
        }
    }

    fn params() -> Vec<ParamInfo> {
        let row = |name, sources| ParamInfo {
            name,
            aliases: &[],
            sources,
            optional: true,
            default: None,
            allowed: &[],
            exclusive: &[],
            separator: None,
            deprecated: None,
            deprecated_announce: None,
        };
        vec![
            row("awsAccessKeyID", AUTH_METADATA_ENV),
            row("awsAccessKeyId", AUTH_PARAMS),
            row("awsSecretAccessKey", AUTH_ENV),
        ]
    }
}

impl AwsAuthParams {
    /// The credentials these parameters and the trigger's `aws` pod identity (if any) name;
    /// problems are recorded on `p`.
    pub fn credentials(
        self,
        p: &mut MetadataParser<'_>,
        pod_identity: Option<&AwsPodIdentity>,
    ) -> AwsCredentials {
        if let Some(identity) = pod_identity {
            return match identity.role_arn.clone().or(self.role_arn) {
                Some(role_arn) => AwsCredentials::AssumeRole {
                    role_arn,
                    external_id: identity.external_id.clone(),
                },
                None => AwsCredentials::Default,
            };
        }
        match self.identity_owner.as_deref() {
            None | Some("pod") => {}
            // `operator`, or anything else: the operator's own credentials.
            Some(_) => return AwsCredentials::Default,
        }
        if let Some(role_arn) = self.role_arn {
            return AwsCredentials::AssumeRole {
                role_arn,
                external_id: None,
            };
        }
        let Some(access_key_id) = self.keys.access_key_id else {
            p.error("awsAccessKeyID", "awsAccessKeyID not found");
            return AwsCredentials::Default;
        };
        let Some(secret_access_key) = self.keys.secret_access_key else {
            p.error("awsSecretAccessKey", "awsSecretAccessKey not found");
            return AwsCredentials::Default;
        };
        AwsCredentials::Static {
            access_key_id,
            secret_access_key,
            session_token: self.session_token,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(
        metadata: &[(&str, &str)],
        auth: &[(&str, &str)],
        env: &[(&str, &str)],
        pod: Option<&AwsPodIdentity>,
    ) -> Result<AwsCredentials, crate::ScalerError> {
        let config = ScalerConfig::new("aws-sqs-queue", 0)
            .with_metadata(metadata.iter().copied())
            .with_auth_params(auth.iter().copied())
            .with_resolved_env(env.iter().copied());
        let mut p = MetadataParser::new(&config);
        let c = AwsAuthParams::from_params(&mut p).credentials(&mut p, pod);
        p.finish().map(|_| c)
    }

    fn key(id: &str, secret: &str, token: Option<&str>) -> AwsCredentials {
        AwsCredentials::Static {
            access_key_id: id.into(),
            secret_access_key: secret.into(),
            session_token: token.map(Into::into),
        }
    }

    #[test]
    fn access_keys_from_auth_params_either_spelling() {
        let c = creds(
            &[],
            &[("awsAccessKeyID", "AK"), ("awsSecretAccessKey", "SK")],
            &[],
            None,
        );
        assert_eq!(c.unwrap(), key("AK", "SK", None));
        let c = creds(
            &[("identityOwner", "pod")],
            &[
                ("awsAccessKeyId", "AK"),
                ("awsSecretAccessKey", "SK"),
                ("awsSessionToken", "T"),
            ],
            &[],
            None,
        );
        assert_eq!(c.unwrap(), key("AK", "SK", Some("T")));
    }

    #[test]
    fn access_keys_from_metadata_and_env() {
        let c = creds(
            &[
                ("awsAccessKeyIDFromEnv", "AK_ENV"),
                ("awsSecretAccessKeyFromEnv", "SK_ENV"),
            ],
            &[],
            &[("AK_ENV", "ak"), ("SK_ENV", "sk")],
            None,
        );
        assert_eq!(c.unwrap(), key("ak", "sk", None));
        // A secret in plain metadata is not read.
        let err = creds(
            &[("awsAccessKeyID", "AK"), ("awsSecretAccessKey", "SK")],
            &[],
            &[],
            None,
        )
        .unwrap_err();
        assert_eq!(err.parameter(), Some("awsSecretAccessKey"));
        assert!(err.message().contains("awsSecretAccessKey not found"));
    }

    #[test]
    fn missing_or_empty_keys_are_errors() {
        let err = creds(
            &[],
            &[("awsAccessKeyID", ""), ("awsSecretAccessKey", "SK")],
            &[],
            None,
        )
        .unwrap_err();
        assert_eq!(err.parameter(), Some("awsAccessKeyID"));
        assert!(err.message().contains("awsAccessKeyID not found"));
        let err = creds(
            &[],
            &[("awsAccessKeyID", "AK"), ("awsSecretAccessKey", "")],
            &[],
            None,
        )
        .unwrap_err();
        assert_eq!(err.parameter(), Some("awsSecretAccessKey"));
    }

    #[test]
    fn role_and_operator_identity() {
        let c = creds(&[], &[("awsRoleArn", "arn:aws:iam::1:role/r")], &[], None);
        assert_eq!(
            c.unwrap(),
            AwsCredentials::AssumeRole {
                role_arn: "arn:aws:iam::1:role/r".into(),
                external_id: None
            }
        );
        let c = creds(
            &[("identityOwner", "operator")],
            &[("awsAccessKeyID", ""), ("awsSecretAccessKey", "")],
            &[],
            None,
        );
        assert_eq!(c.unwrap(), AwsCredentials::Default);
    }

    #[test]
    fn only_the_aws_provider_counts() {
        let mut config = ScalerConfig::new("aws-sqs-queue", 0);
        assert_eq!(aws_pod_identity(&config), None);
        config.pod_identity = Some(crate::config::PodIdentity {
            provider: "aws".into(),
            role_arn: Some("arn:r".into()),
            ..Default::default()
        });
        assert_eq!(
            aws_pod_identity(&config),
            Some(AwsPodIdentity {
                role_arn: Some("arn:r".into()),
                external_id: None
            })
        );
        config.pod_identity = Some(crate::config::PodIdentity {
            provider: "azure-workload".into(),
            ..Default::default()
        });
        assert_eq!(aws_pod_identity(&config), None);
    }

    #[test]
    fn pod_identity_prefers_its_role_then_auth_role() {
        let pod = AwsPodIdentity {
            role_arn: Some("arn:pod".into()),
            external_id: Some("x".into()),
        };
        let c = creds(&[], &[("awsRoleArn", "arn:auth")], &[], Some(&pod));
        assert_eq!(
            c.unwrap(),
            AwsCredentials::AssumeRole {
                role_arn: "arn:pod".into(),
                external_id: Some("x".into())
            }
        );
        let c = creds(
            &[],
            &[("awsRoleArn", "arn:auth")],
            &[],
            Some(&AwsPodIdentity::default()),
        );
        assert_eq!(
            c.unwrap(),
            AwsCredentials::AssumeRole {
                role_arn: "arn:auth".into(),
                external_id: None
            }
        );
        let c = creds(&[], &[], &[], Some(&AwsPodIdentity::default()));
        assert_eq!(c.unwrap(), AwsCredentials::Default);
    }
}
