//! Our parameter tables against KEDA v2.21.1's generated `scalers-schema.yaml` (the fixture is
//! KEDA's file, unchanged): for every trigger type we build, the parameter names, defaults,
//! optionality and sources must match, except for the differences listed here with their reason.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use keda_scalers::Registry;
use keda_scalers::schema::{ParameterSchema, Schema, schema};

const KEDA_SCHEMA: &str = include_str!("fixtures/keda-v2.21.1-scalers-schema.yaml");

/// `(trigger type, parameter, what differs)` that are known and intended.
const KNOWN_DIFFERENCES: &[(&str, &str, &str)] = &[
    // KEDA reads the AWS credentials in GetAwsAuthorization from the raw maps, outside its typed
    // config, so its table omits them; ours is the shared group every AWS scaler flattens.
    ("aws-sqs-queue", "awsAccessKeyID", "not in KEDA"),
    ("aws-sqs-queue", "awsAccessKeyId", "not in KEDA"),
    ("aws-sqs-queue", "awsRoleArn", "not in KEDA"),
    ("aws-sqs-queue", "awsSecretAccessKey", "not in KEDA"),
    ("aws-sqs-queue", "awsSessionToken", "not in KEDA"),
    // KEDA reads cloud/endpointSuffix from the raw metadata (pod-identity path), outside its
    // typed config, so its table omits them; we declare every parameter we read.
    ("azure-servicebus", "cloud", "not in KEDA"),
    ("azure-servicebus", "endpointSuffix", "not in KEDA"),
    // KEDA authenticates through getGCPAuthorization, outside its typed config: authParams
    // GoogleApplicationCredentials (absent from its table), the JSON only via credentialsFromEnv
    // (its table also lists plain metadata), and credentialsFromEnvFile's metadata value names the
    // env var holding the path (its table lists it as metadata+env). Ours reads what is used.
    ("gcp-pubsub", "GoogleApplicationCredentials", "not in KEDA"),
    ("gcp-pubsub", "credentials", "sources"),
    ("gcp-pubsub", "credentialsFromEnvFile", "sources"),
    // GSSAPI is validated but not spoken by our kafka client, so a Kerberos credential cache
    // (ccacheName) is not read; password or keytab stay the only accepted GSSAPI secrets.
    ("kafka", "ccacheName", "missing"),
    // keyPassword: we also decrypt PKCS#8-encrypted client keys of the tls auth mode.
    ("metrics-api", "keyPassword", "not in KEDA"),
    ("prometheus", "keyPassword", "not in KEDA"),
    // metricName: the legacy parameter is still accepted (and ignored) so old triggers parse.
    ("prometheus", "metricName", "not in KEDA"),
    // rabbitmq reads only the OAuth2 part of KEDA's embedded auth block (oauthTokenURI, clientID,
    // clientSecret, scopes, endpointParams); the other auth modes never applied to it.
    ("rabbitmq", "apiKey", "missing"),
    ("rabbitmq", "authMode", "missing"),
    ("rabbitmq", "authModes", "missing"),
    ("rabbitmq", "bearerToken", "missing"),
    ("rabbitmq", "customAuthHeader", "missing"),
    ("rabbitmq", "customAuthValue", "missing"),
    ("rabbitmq", "keyParamName", "missing"),
    ("rabbitmq", "method", "missing"),
    // KEDA's default "Unknown" is its not-given sentinel; ours is an absent mode (an explicit
    // "Unknown" stays an error).
    ("rabbitmq", "mode", "default"),
    // KEDA's schema lists username/password twice (its own, authParams+resolvedEnv, which we
    // match, and the auth block's, authParams only); the comparison sees the second.
    ("rabbitmq", "password", "sources"),
    ("rabbitmq", "token", "missing"),
    ("rabbitmq", "username", "sources"),
];

fn by_type(schema: &Schema) -> BTreeMap<&str, BTreeMap<&str, &ParameterSchema>> {
    schema
        .scalers
        .iter()
        .map(|s| {
            (
                s.trigger_type.as_str(),
                s.parameters.iter().map(|p| (p.name.as_str(), p)).collect(),
            )
        })
        .collect()
}

fn differences(ours: &ParameterSchema, keda: &ParameterSchema) -> Vec<&'static str> {
    let mut out = Vec::new();
    if ours.optional != keda.optional {
        out.push("optional");
    }
    if ours.default != keda.default {
        out.push("default");
    }
    if (
        ours.metadata_variable_readable,
        ours.env_variable_readable,
        ours.trigger_authentication_variable_readable,
    ) != (
        keda.metadata_variable_readable,
        keda.env_variable_readable,
        keda.trigger_authentication_variable_readable,
    ) {
        out.push("sources");
    }
    out
}

#[test]
fn our_parameters_match_kedas() {
    let keda: Schema = serde_yaml::from_str(KEDA_SCHEMA).unwrap();
    let ours = schema(&Registry::builtin(), "keda-rs");
    let keda = by_type(&keda);
    let known: BTreeSet<(&str, &str, &str)> = KNOWN_DIFFERENCES.iter().copied().collect();
    let mut found = BTreeSet::new();
    for (trigger_type, params) in by_type(&ours) {
        let Some(keda_params) = keda.get(trigger_type) else {
            continue;
        };
        assert!(!params.is_empty(), "{trigger_type}: no parameter table");
        for (name, keda_param) in keda_params {
            match params.get(name) {
                None => {
                    found.insert((trigger_type, *name, "missing"));
                }
                Some(ours) => {
                    for what in differences(ours, keda_param) {
                        found.insert((trigger_type, *name, what));
                    }
                }
            }
        }
        for name in params.keys() {
            if !keda_params.contains_key(name) {
                found.insert((trigger_type, *name, "not in KEDA"));
            }
        }
    }
    // Entries of trigger types this build leaves out (features) are neither found nor stale.
    let built: BTreeSet<&str> = Registry::builtin().trigger_types().collect();
    let known: BTreeSet<_> = known
        .into_iter()
        .filter(|(trigger_type, _, _)| built.contains(trigger_type))
        .collect();
    let unexpected: Vec<_> = found.difference(&known).collect();
    let stale: Vec<_> = known.difference(&found).collect();
    assert!(
        unexpected.is_empty() && stale.is_empty(),
        "differences not listed in KNOWN_DIFFERENCES: {unexpected:#?}\nlisted but gone: {stale:#?}"
    );
}

#[test]
fn the_schema_round_trips_through_yaml() {
    let ours = schema(&Registry::builtin(), "keda-rs");
    let text = serde_yaml::to_string(&ours).unwrap();
    let back: Schema = serde_yaml::from_str(&text).unwrap();
    assert_eq!(back, ours);
}
