//! `awsSecretManager`: GetSecretValue per listed secret, with the TriggerAuthentication's static
//! keys (read from Secrets in the trigger namespace), or the operator's default credential chain
//! for `podIdentity: aws`. `secretKey` picks one field of a JSON secret. Unlike KEDA (which only
//! logs), a secret that cannot be read is an error naming it.

use std::collections::BTreeMap;

use aws_config::BehaviorVersion;
use aws_sdk_secretsmanager::config::{Credentials, Region};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use keda_api::trigger_auth::AwsSecretManager;

use super::AuthError;

/// Static credentials from the TriggerAuthentication.
pub struct StaticKeys {
    pub access_key: String,
    pub secret_key: String,
    pub session_token: Option<String>,
}

fn err(message: impl Into<String>) -> AuthError {
    AuthError::AwsSecretManager(message.into())
}

pub async fn resolve(
    spec: &AwsSecretManager,
    keys: Option<StaticKeys>,
    endpoint: Option<&str>,
    params: &mut BTreeMap<String, String>,
) -> Result<(), AuthError> {
    let region = spec
        .region
        .clone()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "us-east-1".to_string());
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region))
        .http_client(http);
    if let Some(k) = keys {
        loader = loader.credentials_provider(Credentials::new(
            k.access_key,
            k.secret_key,
            k.session_token,
            None,
            "keda-rs-trigger-auth",
        ));
    }
    let shared = loader.load().await;
    let mut config = aws_sdk_secretsmanager::config::Builder::from(&shared);
    if let Some(url) = endpoint {
        config = config.endpoint_url(url);
    }
    let client = aws_sdk_secretsmanager::Client::from_conf(config.build());
    for secret in &spec.secrets {
        let mut request = client.get_secret_value().secret_id(&secret.name);
        if let Some(v) = secret.version_id.as_deref().filter(|v| !v.is_empty()) {
            request = request.version_id(v);
        }
        if let Some(v) = secret.version_stage.as_deref().filter(|v| !v.is_empty()) {
            request = request.version_stage(v);
        }
        let answer = request.send().await.map_err(|e| {
            err(format!(
                "reading secret {:?} for parameter {:?}: {}",
                secret.name,
                secret.parameter,
                aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
            ))
        })?;
        let text = answer.secret_string().unwrap_or_default().to_string();
        let value = match secret.secret_key.as_deref().filter(|k| !k.is_empty()) {
            None => text,
            Some(key) => json_field(&text, key).ok_or_else(|| {
                err(format!(
                    "secret {:?} has no JSON field {key:?} (parameter {:?})",
                    secret.name, secret.parameter
                ))
            })?,
        };
        params.insert(secret.parameter.clone(), value);
    }
    Ok(())
}

fn json_field(text: &str, key: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    match value.get(key)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_fields() {
        assert_eq!(json_field(r#"{"a":"x","n":5}"#, "a").as_deref(), Some("x"));
        assert_eq!(json_field(r#"{"a":"x","n":5}"#, "n").as_deref(), Some("5"));
        assert_eq!(json_field(r#"{"a":"x"}"#, "b"), None);
        assert_eq!(json_field("not json", "a"), None);
    }
}
