//! AWS credentials of a trigger (spec §1.11): pod identity `aws`, else metadata `identityOwner`
//! (`operator` → the operator's own credentials; empty or `pod` → `awsRoleArn`, else an access key
//! pair from auth params, or from metadata / `FromEnv`).

use crate::clients::sqs::AwsCredentials;
use crate::config::ScalerConfig;
use crate::params::{AUTH_PARAMS, METADATA, METADATA_ENV, MetadataParser, Source};

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

/// `awsSecretAccessKey` is read from auth params, or from the env var named by
/// `awsSecretAccessKeyFromEnv` (never from plain metadata).
const ENV_ONLY: &[Source] = &[Source::ResolvedEnv];

/// Reads the credential parameters; errors are recorded on `p`.
pub fn parse_credentials(
    p: &mut MetadataParser<'_>,
    pod_identity: Option<&AwsPodIdentity>,
) -> AwsCredentials {
    let role_arn: Option<String> = p.param("awsRoleArn").from(AUTH_PARAMS).optional();
    if let Some(identity) = pod_identity {
        return match identity.role_arn.clone().or(role_arn) {
            Some(role_arn) => AwsCredentials::AssumeRole {
                role_arn,
                external_id: identity.external_id.clone(),
            },
            None => AwsCredentials::Default,
        };
    }
    let owner: Option<String> = p.param("identityOwner").from(METADATA).optional();
    match owner.as_deref() {
        None | Some("pod") => {}
        // `operator`, or anything else: the operator's own credentials.
        Some(_) => return AwsCredentials::Default,
    }
    if let Some(role_arn) = role_arn {
        return AwsCredentials::AssumeRole {
            role_arn,
            external_id: None,
        };
    }
    let from_auth: Option<String> = p
        .param("awsAccessKeyID")
        .alias("awsAccessKeyId")
        .from(AUTH_PARAMS)
        .optional();
    let access_key_id = match from_auth {
        Some(k) => Some(k),
        None => p.param("awsAccessKeyID").from(METADATA_ENV).optional(),
    };
    let secret: Option<String> = p
        .param("awsSecretAccessKey")
        .from(AUTH_PARAMS)
        .optional()
        .or_else(|| p.param("awsSecretAccessKey").from(ENV_ONLY).optional());
    let session_token: Option<String> = p.param("awsSessionToken").from(AUTH_PARAMS).optional();
    let Some(access_key_id) = access_key_id else {
        p.error("awsAccessKeyID", "awsAccessKeyID not found");
        return AwsCredentials::Default;
    };
    let Some(secret_access_key) = secret else {
        p.error("awsSecretAccessKey", "awsSecretAccessKey not found");
        return AwsCredentials::Default;
    };
    AwsCredentials::Static {
        access_key_id,
        secret_access_key,
        session_token,
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
        let c = parse_credentials(&mut p, pod);
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
