//! Property test over the parsers of the prometheus, metrics-api, cron, cpu/memory and
//! redis-streams triggers: any metadata, auth params and env give either a scaler config or a
//! config error naming a parameter, never a panic.

#![allow(clippy::unwrap_used)]

use keda_scalers::{MetricTargetKind, Registry, ScalerConfig};
use proptest::collection::btree_map;
use proptest::prelude::*;

const TYPES: &[&str] = &[
    "cpu",
    "cron",
    "memory",
    "metrics-api",
    "prometheus",
    "redis-cluster-streams",
    "redis-sentinel-streams",
    "redis-streams",
];

/// Parameter names these scalers read, so generated maps reach real code paths.
const KNOWN: &[&str] = &[
    "serverAddress",
    "query",
    "threshold",
    "activationThreshold",
    "queryParameters",
    "namespace",
    "customHeaders",
    "ignoreNullValues",
    "unsafeSsl",
    "timeout",
    "authModes",
    "authMode",
    "bearerToken",
    "token",
    "username",
    "password",
    "cert",
    "key",
    "ca",
    "customAuthHeader",
    "customAuthValue",
    "apiKey",
    "method",
    "keyParamName",
    "url",
    "valueLocation",
    "targetValue",
    "activationTargetValue",
    "format",
    "aggregationType",
    "aggregateFromKubeServiceEndpoints",
    "timezone",
    "start",
    "end",
    "desiredReplicas",
    "value",
    "containerName",
    "type",
    "stream",
    "consumerGroup",
    "pendingEntriesCount",
    "streamLength",
    "lagCount",
    "activationLagCount",
    "address",
    "addresses",
    "host",
    "port",
    "databaseIndex",
    "enableTLS",
    "tls",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(KNOWN).prop_map(str::to_owned),
        1 => ".{0,12}",
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ ,:=*/?0-9a-zA-Z._-]{0,24}",
        ".{0,40}",
        Just("http://127.0.0.1:9090".to_owned()),
        Just("0 */2 * * *".to_owned()),
        Just("bearer,basic".to_owned()),
        Just("tls".to_owned()),
        Just("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----".to_owned()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn parsing_never_panics(
        type_index in 0..TYPES.len(),
        metric_type in 0..3_usize,
        metadata in btree_map(key(), value(), 0..12),
        auth in btree_map(key(), value(), 0..6),
    ) {
        let mut config = ScalerConfig::new(TYPES[type_index], 0);
        config.metadata = metadata;
        config.auth_params = auth;
        config.metric_type = [
            MetricTargetKind::AverageValue,
            MetricTargetKind::Value,
            MetricTargetKind::Utilization,
        ][metric_type];
        if let Err(e) = Registry::builtin().parse_only(&config) {
            prop_assert!(e.is_config());
            prop_assert!(e.parameter().is_some_and(|p| !p.is_empty()));
        }
    }
}
