//! The TriggerAuthentication / ClusterTriggerAuthentication rules of KEDA's admission webhook
//! (spec §6), as pure functions shared by `keda-rs validate` and the webhook, plus `filePath`
//! being cluster-only (KEDA only finds that out when a scaler is built).

use crate::problem::Problem;
use crate::trigger_auth::{AuthenticationSpec, IdentityOwner, PodIdentityProvider};

/// Problems of `spec`; `cluster` for a ClusterTriggerAuthentication.
pub fn check_authentication(spec: &AuthenticationSpec, cluster: bool) -> Vec<Problem> {
    let mut problems = Vec::new();
    if !cluster && spec.file_path.as_deref().is_some_and(|p| !p.is_empty()) {
        problems.push(Problem::error(
            "spec.filePath",
            "filePath is only allowed on a ClusterTriggerAuthentication",
        ));
    }
    if let Some(identity) = &spec.pod_identity {
        match identity.provider {
            PodIdentityProvider::AzureWorkload => {
                if identity.identity_id.as_deref() == Some("") {
                    problems.push(Problem::error(
                        "spec.podIdentity.identityId",
                        "identityId of azure-workload cannot be empty; leave it unset instead",
                    ));
                }
                let host_set = identity
                    .identity_authority_host
                    .as_deref()
                    .is_some_and(|h| !h.is_empty());
                let tenant = identity.identity_tenant_id.as_deref();
                if host_set && tenant.is_none_or(str::is_empty) {
                    problems.push(Problem::error(
                        "spec.podIdentity.identityTenantId",
                        "identityTenantId is required when identityAuthorityHost is set",
                    ));
                } else if !host_set && tenant == Some("") {
                    problems.push(Problem::error(
                        "spec.podIdentity.identityTenantId",
                        "identityTenantId cannot be empty; leave it unset instead",
                    ));
                }
            }
            PodIdentityProvider::Aws => {
                let role = identity.role_arn.as_deref().is_some_and(|r| !r.is_empty());
                if role && identity.identity_owner == Some(IdentityOwner::Workload) {
                    problems.push(Problem::error(
                        "spec.podIdentity.roleArn",
                        "roleArn cannot be used together with identityOwner: workload",
                    ));
                }
                if !role
                    && identity
                        .external_id
                        .as_deref()
                        .is_some_and(|e| !e.is_empty())
                {
                    problems.push(Problem::error(
                        "spec.podIdentity.externalID",
                        "externalID requires roleArn",
                    ));
                }
            }
            // KEDA returns before its oauth2 checks for every other provider; kept as is.
            _ => return problems,
        }
    }
    if let Some(oauth) = &spec.oauth2 {
        if oauth.client_id.is_empty() {
            problems.push(Problem::error(
                "spec.oauth2.clientId",
                "clientId is required",
            ));
        }
        if oauth.token_url.is_empty() {
            problems.push(Problem::error(
                "spec.oauth2.tokenUrl",
                "tokenUrl is required",
            ));
        } else if !is_absolute_http_url(&oauth.token_url) {
            problems.push(Problem::error(
                "spec.oauth2.tokenUrl",
                "tokenUrl must be an absolute http or https URL with a host",
            ));
        }
    }
    problems
}

fn is_absolute_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    rest.is_some_and(|r| {
        let host = r.split(['/', '?', '#']).next().unwrap_or_default();
        let host = host.rsplit('@').next().unwrap_or_default();
        !host.is_empty() && !host.starts_with(':')
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(value: serde_json::Value) -> AuthenticationSpec {
        serde_json::from_value(value).unwrap()
    }

    fn fields(value: serde_json::Value, cluster: bool) -> Vec<String> {
        check_authentication(&spec(value), cluster)
            .into_iter()
            .map(|p| p.field)
            .collect()
    }

    #[test]
    fn table() {
        let cases: Vec<(serde_json::Value, bool, Vec<&str>)> = vec![
            (json!({}), false, vec![]),
            (json!({"filePath": "a.json"}), false, vec!["spec.filePath"]),
            (json!({"filePath": "a.json"}), true, vec![]),
            (
                json!({"podIdentity": {"provider": "azure-workload", "identityId": ""}}),
                false,
                vec!["spec.podIdentity.identityId"],
            ),
            (
                json!({"podIdentity": {"provider": "azure-workload", "identityId": "x"}}),
                false,
                vec![],
            ),
            (
                json!({"podIdentity": {"provider": "azure-workload", "identityAuthorityHost": "https://login"}}),
                false,
                vec!["spec.podIdentity.identityTenantId"],
            ),
            (
                json!({"podIdentity": {"provider": "azure-workload", "identityAuthorityHost": "https://login", "identityTenantId": "t"}}),
                false,
                vec![],
            ),
            (
                json!({"podIdentity": {"provider": "azure-workload", "identityTenantId": ""}}),
                false,
                vec!["spec.podIdentity.identityTenantId"],
            ),
            (
                json!({"podIdentity": {"provider": "aws", "roleArn": "arn", "identityOwner": "workload"}}),
                false,
                vec!["spec.podIdentity.roleArn"],
            ),
            (
                json!({"podIdentity": {"provider": "aws", "externalID": "e"}}),
                false,
                vec!["spec.podIdentity.externalID"],
            ),
            (
                json!({"podIdentity": {"provider": "aws", "roleArn": "arn", "externalID": "e"}}),
                false,
                vec![],
            ),
            (
                json!({"oauth2": {"clientId": "", "tokenUrl": ""}}),
                false,
                vec!["spec.oauth2.clientId", "spec.oauth2.tokenUrl"],
            ),
            (
                json!({"oauth2": {"clientId": "c", "tokenUrl": "/token"}}),
                false,
                vec!["spec.oauth2.tokenUrl"],
            ),
            (
                json!({"oauth2": {"clientId": "c", "tokenUrl": "ftp://h/token"}}),
                false,
                vec!["spec.oauth2.tokenUrl"],
            ),
            (
                json!({"oauth2": {"clientId": "c", "tokenUrl": "https://idp.example/token"}}),
                false,
                vec![],
            ),
            // KEDA's quirk: another pod identity provider skips the oauth2 checks.
            (
                json!({"podIdentity": {"provider": "gcp"}, "oauth2": {"clientId": "", "tokenUrl": ""}}),
                false,
                vec![],
            ),
            (
                json!({"podIdentity": {"provider": "none"}, "oauth2": {"clientId": "", "tokenUrl": ""}}),
                false,
                vec![],
            ),
            (
                json!({"podIdentity": {"provider": "aws"}, "oauth2": {"clientId": "", "tokenUrl": "x"}}),
                false,
                vec!["spec.oauth2.clientId", "spec.oauth2.tokenUrl"],
            ),
        ];
        for (value, cluster, want) in cases {
            assert_eq!(fields(value.clone(), cluster), want, "{value}");
        }
    }
}
