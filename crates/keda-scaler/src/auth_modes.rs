//! The `authModes` block shared by the HTTP scalers (prometheus, metrics-api, loki, pulsar): which
//! modes are on, their credentials from the resolved TriggerAuthentication parameters, and KEDA's
//! validation messages (which say `<empty>`/`<present>`, never the secret). Each scaler applies the
//! modes it supports to its requests.

use std::fmt;

use crate::http::GetRequest;
use crate::params::{AUTH_PARAMS, METADATA_AUTH, MetadataParser};
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

fn presence(v: Option<&String>) -> &'static str {
    if v.is_some() { "<present>" } else { "<empty>" }
}

impl AuthModes {
    /// True when `mode` is enabled.
    pub fn has(&self, mode: &str) -> bool {
        self.modes.iter().any(|m| m == mode)
    }

    /// Reads the block into `p`, recording KEDA's validation errors.
    pub fn parse(p: &mut MetadataParser<'_>) -> Self {
        let modes: Vec<String> = p
            .param("authModes")
            .alias("authMode")
            .from(METADATA_AUTH)
            .one_of(MODES)
            .exclusive(&["bearer", "basic", "oauth"])
            .with_default(Vec::new());
        let auth = |p: &mut MetadataParser<'_>, name: &'static str| -> Option<String> {
            p.param(name).from(AUTH_PARAMS).optional()
        };
        let bearer_token = p
            .param("bearerToken")
            .alias("token")
            .from(AUTH_PARAMS)
            .optional::<String>();
        let username = auth(p, "username");
        let password = auth(p, "password");
        let cert = auth(p, "cert");
        let key = auth(p, "key");
        let key_password = auth(p, "keyPassword");
        let ca = auth(p, "ca");
        let oauth_token_uri = auth(p, "oauthTokenURI");
        let client_id = auth(p, "clientID");
        let _client_secret = auth(p, "clientSecret");
        let _scopes: Option<Vec<String>> = p
            .param("scopes")
            .alias("scope")
            .from(AUTH_PARAMS)
            .optional();
        let _endpoint_params = auth(p, "endpointParams");
        let custom_header = auth(p, "customAuthHeader");
        let custom_value = auth(p, "customAuthValue");
        let api_key = p.param("apiKey").from(METADATA_AUTH).optional::<String>();
        let method: String = p
            .param("method")
            .from(METADATA_AUTH)
            .one_of(&["header", "query"])
            .with_default("header".to_owned());
        let key_param_name = p
            .param("keyParamName")
            .from(METADATA_AUTH)
            .optional::<String>();

        let this = Self {
            modes,
            bearer_token,
            username,
            password,
            tls: TlsSettings {
                cert,
                key,
                key_password,
                ca,
                unsafe_ssl: false,
            },
            custom_header,
            custom_value,
            api_key,
            api_key_in_query: method == "query",
            key_param_name,
            oauth_token_uri,
            client_id,
        };
        this.validate(p);
        this
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
