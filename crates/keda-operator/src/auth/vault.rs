//! `hashiCorpVault`: log in (token or Kubernetes auth), then read each secret (kv v1, kv v2, or a
//! PKI issue). Speaks Vault's HTTP API directly: the calls are few and stable, and a client crate
//! would pull a second HTTP stack.

use std::collections::BTreeMap;
use std::path::Path;

use ::http::Method;
use base64::Engine;
use keda_api::trigger_auth::{HashiCorpVault, VaultAuthentication, VaultSecret, VaultSecretType};
use serde_json::{Value, json};

use super::AuthError;
use super::http;

/// Where Vault's Kubernetes auth takes the operator's own token from when no ServiceAccount is named.
pub const DEFAULT_SERVICE_ACCOUNT_TOKEN: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// How the Kubernetes-auth JWT is obtained.
pub enum Jwt {
    /// From a TokenRequest for `credential.serviceAccountName`.
    Token(String),
    /// From a file (`credential.serviceAccount`, or the default path).
    File(String),
}

fn err(message: impl Into<String>) -> AuthError {
    AuthError::Vault(message.into())
}

struct Session<'a> {
    address: String,
    token: String,
    namespace: Option<&'a str>,
}

impl Session<'_> {
    fn headers(&self) -> Vec<(&str, &str)> {
        let mut h = vec![("x-vault-token", self.token.as_str())];
        if let Some(ns) = self.namespace.filter(|n| !n.is_empty()) {
            h.push(("x-vault-namespace", ns));
        }
        h
    }
}

/// Logs in and reads every secret of `vault` into `params` (by `parameter`).
pub async fn resolve(
    vault: &HashiCorpVault,
    operator_token: Option<&str>,
    jwt: Option<Jwt>,
    params: &mut BTreeMap<String, String>,
) -> Result<(), AuthError> {
    let address = vault.address.trim_end_matches('/').to_string();
    if address.is_empty() {
        return Err(err("hashiCorpVault.address is empty"));
    }
    let namespace = vault.namespace.as_deref();
    let token = match vault.authentication {
        VaultAuthentication::Token => {
            let from_spec = vault.credential.as_ref().and_then(|c| c.token.clone());
            operator_token
                .map(str::to_string)
                .filter(|t| !t.is_empty())
                .or(from_spec)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    err("token authentication needs VAULT_TOKEN or hashiCorpVault.credential.token")
                })?
        }
        VaultAuthentication::Kubernetes => {
            let mount = vault
                .mount
                .as_deref()
                .filter(|m| !m.is_empty())
                .ok_or_else(|| err("kubernetes authentication needs hashiCorpVault.mount"))?;
            let role = vault
                .role
                .as_deref()
                .filter(|r| !r.is_empty())
                .ok_or_else(|| err("kubernetes authentication needs hashiCorpVault.role"))?;
            let jwt = match jwt {
                Some(Jwt::Token(t)) => t,
                Some(Jwt::File(path)) => read_service_account_jwt(Path::new(&path))?,
                None => read_service_account_jwt(Path::new(DEFAULT_SERVICE_ACCOUNT_TOKEN))?,
            };
            login(&address, namespace, mount, role, &jwt).await?
        }
    };
    let session = Session {
        address,
        token,
        namespace,
    };
    for secret in &vault.secrets {
        let value = read_secret(&session, secret).await?;
        params.insert(secret.parameter.clone(), value);
    }
    Ok(())
}

/// Reads a ServiceAccount token file. Only a Kubernetes-issued JWT is accepted, so a
/// TriggerAuthentication cannot make the operator send arbitrary node files to Vault
/// (CVE-2025-68476).
fn read_service_account_jwt(path: &Path) -> Result<String, AuthError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        err(format!(
            "cannot read the service account token {}: {e}",
            path.display()
        ))
    })?;
    let token = text.trim().to_string();
    if !is_kubernetes_jwt(&token) {
        return Err(err(format!(
            "{} is not a Kubernetes service account token",
            path.display()
        )));
    }
    Ok(token)
}

pub fn is_kubernetes_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    let [_, payload, _] = parts.as_slice() else {
        return false;
    };
    let Ok(bytes) =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('='))
    else {
        return false;
    };
    let Ok(claims) = serde_json::from_slice::<Value>(&bytes) else {
        return false;
    };
    claims.get("kubernetes.io").is_some()
        || claims
            .get("sub")
            .and_then(Value::as_str)
            .is_some_and(|s| s.starts_with("system:serviceaccount:"))
}

async fn login(
    address: &str,
    namespace: Option<&str>,
    mount: &str,
    role: &str,
    jwt: &str,
) -> Result<String, AuthError> {
    let url = format!("{address}/v1/auth/{}/login", mount.trim_matches('/'));
    let mut headers = Vec::new();
    if let Some(ns) = namespace.filter(|n| !n.is_empty()) {
        headers.push(("x-vault-namespace", ns));
    }
    let (status, body) = http::json(
        Method::POST,
        &url,
        &headers,
        Some(&json!({"role": role, "jwt": jwt})),
    )
    .await
    .map_err(err)?;
    if status != 200 {
        return Err(err(format!(
            "login at {url} failed with HTTP {status}: {}",
            vault_errors(&body)
        )));
    }
    body.pointer("/auth/client_token")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| err(format!("login at {url} returned no client token")))
}

fn vault_errors(body: &Value) -> String {
    body.get("errors")
        .and_then(Value::as_array)
        .map(|e| {
            e.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

async fn read_secret(session: &Session<'_>, secret: &VaultSecret) -> Result<String, AuthError> {
    let url = format!(
        "{}/v1/{}",
        session.address,
        secret.path.trim_start_matches('/')
    );
    let headers = session.headers();
    let kind = secret.r#type.unwrap_or(VaultSecretType::Unspecified);
    let (status, body) = if kind == VaultSecretType::Pki {
        let request = pki_request(secret);
        http::json(Method::POST, &url, &headers, Some(&request)).await
    } else {
        http::json(Method::GET, &url, &headers, None).await
    }
    .map_err(err)?;
    let context = format!(
        "parameter {:?} (path {:?}, key {:?})",
        secret.parameter, secret.path, secret.key
    );
    if status != 200 {
        return Err(err(format!(
            "reading {context} failed with HTTP {status}: {}",
            vault_errors(&body)
        )));
    }
    let data = body
        .get("data")
        .ok_or_else(|| err(format!("{context}: answer has no data")))?;
    let data = match kind {
        VaultSecretType::SecretV2 => data.get("data").unwrap_or(&Value::Null),
        VaultSecretType::Secret | VaultSecretType::Pki => data,
        // Auto-detect kv v2 by its nested `data.data`.
        VaultSecretType::Unspecified => match data.get("data") {
            Some(inner) if inner.is_object() => inner,
            _ => data,
        },
    };
    match data.get(&secret.key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Null) | None => Err(err(format!("{context}: key not found in the secret"))),
        Some(other) => Ok(other.to_string()),
    }
}

fn pki_request(secret: &VaultSecret) -> Value {
    let mut request = serde_json::Map::new();
    if let Some(pki) = &secret.pki_data {
        let fields = [
            ("common_name", &pki.common_name),
            ("alt_names", &pki.alt_names),
            ("ip_sans", &pki.ip_sans),
            ("uri_sans", &pki.uri_sans),
            ("other_sans", &pki.other_sans),
            ("ttl", &pki.ttl),
            ("format", &pki.format),
        ];
        for (name, value) in fields {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                request.insert(name.to_string(), Value::String(v.to_string()));
            }
        }
    }
    Value::Object(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &Value) -> String {
        let enc = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        format!(
            "{}.{}.{}",
            enc(br#"{"alg":"RS256"}"#),
            enc(claims.to_string().as_bytes()),
            enc(b"sig")
        )
    }

    #[test]
    fn only_kubernetes_tokens_are_sent() {
        assert!(is_kubernetes_jwt(&jwt(
            &json!({"sub": "system:serviceaccount:ns:sa"})
        )));
        assert!(is_kubernetes_jwt(&jwt(
            &json!({"kubernetes.io": {"namespace": "ns"}})
        )));
        assert!(!is_kubernetes_jwt(&jwt(&json!({"sub": "root"}))));
        assert!(!is_kubernetes_jwt("root:x:0:0:root:/root:/bin/bash"));
        assert!(!is_kubernetes_jwt("a.b.c"));
    }
}
