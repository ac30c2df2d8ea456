//! `boundServiceAccountToken`: short-lived ServiceAccount tokens from the TokenRequest API. A token
//! is reused until half its lifetime has passed, so re-checking a trigger's credentials every
//! polling interval neither mints a token per poll nor rebuilds scalers for an unchanged token.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use tokio::time::Instant;

use super::AuthError;

pub struct BoundTokens {
    client: kube::Client,
    expiry: Duration,
    issued: Mutex<HashMap<(String, String), (Instant, String)>>,
}

impl BoundTokens {
    pub fn new(client: kube::Client, expiry: Duration) -> Self {
        Self {
            client,
            expiry,
            issued: Mutex::new(HashMap::new()),
        }
    }

    /// A token for ServiceAccount `name` in `namespace`.
    pub async fn token(&self, namespace: &str, name: &str) -> Result<String, AuthError> {
        let key = (namespace.to_string(), name.to_string());
        if let Ok(issued) = self.issued.lock()
            && let Some((at, token)) = issued.get(&key)
            && at.elapsed() < self.expiry / 2
        {
            return Ok(token.clone());
        }
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                expiration_seconds: Some(i64::try_from(self.expiry.as_secs()).unwrap_or(3600)),
                ..TokenRequestSpec::default()
            }),
            ..TokenRequest::default()
        };
        let answer = api
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .map_err(|e| match e {
                kube::Error::Api(s) if s.code == 404 => AuthError::MissingObject {
                    kind: "ServiceAccount",
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                    context: "boundServiceAccountToken".into(),
                },
                other => AuthError::Kube(other),
            })?;
        let token = answer
            .status
            .and_then(|s| s.token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                AuthError::Token(format!(
                    "TokenRequest for {namespace}/{name} returned no token"
                ))
            })?;
        if let Ok(mut issued) = self.issued.lock() {
            issued.insert(key, (Instant::now(), token.clone()));
        }
        Ok(token)
    }
}
