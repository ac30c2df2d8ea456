//! The `authModes` block shared by the HTTP scalers (prometheus, metrics-api, loki, pulsar): which
//! modes are on, their credentials from the resolved TriggerAuthentication parameters, and KEDA's
//! validation messages (which say `<empty>`/`<present>`, never the secret). Each scaler applies the
//! modes it supports to its requests.

use std::fmt;

use crate::ScalerMetadata;
use crate::http::GetRequest;
use crate::params::{FromParams, MetadataParser, ParamInfo};
use crate::tls::TlsSettings;

/// The mode names, as written in `authModes`.
pub const MODES: &[&str] = &["apiKey", "basic", "tls", "bearer", "custom", "oauth"];

/// Parsed `authModes` block. Secrets are not printed by `Debug`.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct AuthModes {
    /// Enabled modes, as written.
    pub modes: Vec<String>,
    /// `bearerToken` / `token`.
    pub bearer_token: Option<String>,
    /// `username`.
    pub username: Option<String>,
    /// `password`.
    pub password: Option<String>,
    /// `cert`, `key`, `keyPassword`, `ca` (used when `tls` is on).
    pub tls: TlsSettings,
    /// `customAuthHeader`.
    pub custom_header: Option<String>,
    /// `customAuthValue`.
    pub custom_value: Option<String>,
    /// `apiKey`.
    pub api_key: Option<String>,
    /// `method`: `header` (default) or `query`.
    pub api_key_in_query: bool,
    /// `keyParamName`.
    pub key_param_name: Option<String>,
    /// `oauthTokenURI`, `clientID`, `clientSecret`, `scopes`, `endpointParams` (validated only:
    /// neither prometheus nor metrics-api uses oauth).
    pub oauth_token_uri: Option<String>,
    /// `clientID`.
    pub client_id: Option<String>,
}

/// The block's parameters, in KEDA's order. `clientSecret`, `scopes` and `endpointParams` are
/// read so they count as declared; no scaler using this block does oauth.
#[derive(ScalerMetadata)]
struct AuthModeParams {
    #[param(name = "authModes", alias = "authMode", from = METADATA_AUTH, one_of = ["apiKey", "basic", "tls", "bearer", "custom", "oauth"], exclusive = ["bearer", "basic", "oauth"])]
    modes: Option<Vec<String>>,
    #[param(name = "bearerToken", alias = "token", from = AUTH_PARAMS)]
    bearer_token: Option<String>,
    #[param(name = "username", from = AUTH_PARAMS)]
    username: Option<String>,
    #[param(name = "password", from = AUTH_PARAMS)]
    password: Option<String>,
    #[param(name = "cert", from = AUTH_PARAMS)]
    cert: Option<String>,
    #[param(name = "key", from = AUTH_PARAMS)]
    key: Option<String>,
    #[param(name = "keyPassword", from = AUTH_PARAMS)]
    key_password: Option<String>,
    #[param(name = "ca", from = AUTH_PARAMS)]
    ca: Option<String>,
    #[param(name = "oauthTokenURI", from = AUTH_PARAMS)]
    oauth_token_uri: Option<String>,
    #[param(name = "clientID", from = AUTH_PARAMS)]
    client_id: Option<String>,
    #[param(name = "clientSecret", from = AUTH_PARAMS)]
    _client_secret: Option<String>,
    #[param(name = "scopes", alias = "scope", from = AUTH_PARAMS)]
    _scopes: Option<Vec<String>>,
    #[param(name = "endpointParams", from = AUTH_PARAMS)]
    _endpoint_params: Option<String>,
    #[param(name = "customAuthHeader", from = AUTH_PARAMS)]
    custom_header: Option<String>,
    #[param(name = "customAuthValue", from = AUTH_PARAMS)]
    custom_value: Option<String>,
    #[param(name = "apiKey", from = METADATA_AUTH)]
    api_key: Option<String>,
    #[param(name = "method", from = METADATA_AUTH, one_of = ["header", "query"], default = "header", optional)]
    method: String,
    #[param(name = "keyParamName", from = METADATA_AUTH)]
    key_param_name: Option<String>,
}

fn presence(v: Option<&String>) -> &'static str {
    if v.is_some() { "<present>" } else { "<empty>" }
}

impl AuthModes {
    /// True when `mode` is enabled.
    pub fn has(&self, mode: &str) -> bool {
        self.modes.iter().any(|m| m == mode)
    }

    /// Reads the block into `p`, recording KEDA's validation errors (the same as
    /// [`FromParams::from_params`], for scalers that read it by hand).
    pub fn parse(p: &mut MetadataParser<'_>) -> Self {
        <Self as FromParams>::from_params(p)
    }

    fn validate(&self, p: &mut MetadataParser<'_>) {
        if self.has("bearer") && self.bearer_token.is_none() {
            p.error(
                "bearerToken",
                "bearer token=<empty> is required when bearer auth is enabled",
            );
        }
        if self.has("basic") && self.username.is_none() {
            p.error(
                "username",
                "username=<empty> is required when basic auth is enabled",
            );
        }
        if self.has("tls") && (self.tls.cert.is_none() || self.tls.key.is_none()) {
            p.error(
                if self.tls.cert.is_none() {
                    "cert"
                } else {
                    "key"
                },
                format!(
                    "cert={} and key={} are required when tls auth is enabled",
                    presence(self.tls.cert.as_ref()),
                    presence(self.tls.key.as_ref())
                ),
            );
        }
        if self.has("tls")
            && let Err(e) = self.tls.validate()
        {
            p.error(e.parameter, e.message);
        }
        if self.has("oauth") && (self.oauth_token_uri.is_none() || self.client_id.is_none()) {
            p.error(
                "oauthTokenURI",
                format!(
                    "oauthTokenURI={} and clientID={} are required when oauth is enabled",
                    presence(self.oauth_token_uri.as_ref()),
                    presence(self.client_id.as_ref())
                ),
            );
        }
        if self.has("custom") && (self.custom_header.is_none() || self.custom_value.is_none()) {
            p.error(
                "customAuthHeader",
                format!(
                    "customAuthHeader={} and customAuthValue={} are required when custom auth is enabled",
                    presence(self.custom_header.as_ref()),
                    presence(self.custom_value.as_ref())
                ),
            );
        }
        if self.has("apiKey") && self.api_key.is_none() {
            p.error("apiKey", "apiKey is required when apiKey auth is enabled");
        }
    }

    /// TLS material to put in the client identity (only when `tls` is on).
    pub fn client_tls(&self, unsafe_ssl: bool) -> TlsSettings {
        let mut tls = if self.has("tls") {
            self.tls.clone()
        } else {
            TlsSettings::default()
        };
        tls.unsafe_ssl = unsafe_ssl;
        tls
    }

    /// Bearer, else basic, else custom header: the one credential prometheus sends.
    pub fn apply_first_of_bearer_basic_custom(&self, request: &mut GetRequest) {
        if self.has("bearer")
            && let Some(token) = &self.bearer_token
        {
            request
                .headers
                .push(("Authorization".into(), format!("Bearer {token}")));
        } else if self.has("basic")
            && let Some(user) = &self.username
        {
            request.basic_auth = Some((user.clone(), self.password.clone()));
        } else if self.has("custom")
            && let (Some(h), Some(v)) = (&self.custom_header, &self.custom_value)
        {
            request.headers.push((h.clone(), v.clone()));
        }
    }

    /// metrics-api: API key (header or query), basic and bearer, each when enabled.
    pub fn apply_api_key_basic_bearer(&self, request: &mut GetRequest) -> Result<(), String> {
        if self.has("apiKey")
            && let Some(key) = &self.api_key
        {
            if self.api_key_in_query {
                let name = self.key_param_name.as_deref().unwrap_or("api_key");
                let mut url = url::Url::parse(&request.url).map_err(|e| e.to_string())?;
                // Replace rather than append, like Go's url.Values.Set.
                let kept: Vec<(String, String)> = url
                    .query_pairs()
                    .filter(|(k, _)| k != name)
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                url.query_pairs_mut()
                    .clear()
                    .extend_pairs(kept)
                    .append_pair(name, key);
                request.url = url.to_string();
            } else {
                let name = self.key_param_name.as_deref().unwrap_or("X-API-KEY");
                request.headers.push((name.to_owned(), key.clone()));
            }
        }
        if self.has("basic")
            && let Some(user) = &self.username
        {
            request.basic_auth = Some((user.clone(), self.password.clone()));
        }
        if self.has("bearer")
            && let Some(token) = &self.bearer_token
        {
            request
                .headers
                .push(("Authorization".into(), format!("Bearer {token}")));
        }
        Ok(())
    }
}

/// Flattened into the HTTP scalers' parameter structs: reads [`AuthModeParams`], then KEDA's
/// cross-parameter checks.
impl FromParams for AuthModes {
    fn from_params(p: &mut MetadataParser<'_>) -> Self {
        let params = AuthModeParams::from_params(p);
        let this = Self {
            modes: params.modes.unwrap_or_default(),
            bearer_token: params.bearer_token,
            username: params.username,
            password: params.password,
            tls: TlsSettings {
                cert: params.cert,
                key: params.key,
                key_password: params.key_password,
                ca: params.ca,
                unsafe_ssl: false,
            },
            custom_header: params.custom_header,
            custom_value: params.custom_value,
            api_key: params.api_key,
            api_key_in_query: params.method == "query",
            key_param_name: params.key_param_name,
            oauth_token_uri: params.oauth_token_uri,
            client_id: params.client_id,
        };
        this.validate(p);
        this
    }

    fn params() -> Vec<ParamInfo> {
        AuthModeParams::params()
    }
}

impl fmt::Debug for AuthModes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthModes")
            .field("modes", &self.modes)
            .field("bearer_token", &presence(self.bearer_token.as_ref()))
            .field("username", &self.username)
            .field("password", &presence(self.password.as_ref()))
            .field("tls", &self.tls)
            .field("custom_header", &self.custom_header)
            .field("api_key", &presence(self.api_key.as_ref()))
            .field("api_key_in_query", &self.api_key_in_query)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_declared_modes_are_the_public_list() {
        let params = AuthModes::params();
        assert_eq!(params[0].name, "authModes");
        assert_eq!(params[0].allowed, MODES);
    }
}
