//! `redis`, `redis-cluster` and `redis-sentinel`: the length of a list (or set, sorted set, hash)
//! against a target length.

use std::sync::LazyLock;

use super::{
    ConnectionParams, RedisClient, RedisEndpoint, RedisTopology, backend_error, parse_endpoint,
};
use crate::ScalerMetadata;
use crate::config::{MetricTargetKind, ScalerConfig};
use crate::error::{BackendError, ConnectError, ScalerError};
use crate::kind::{Descriptor, Example, Reading, ScalerKind};
use crate::metrics::{MetricSpec, MetricTarget, normalized_metric_name};
use crate::params::{FromParams, MetadataParser, ParamInfo};
use crate::pools::{Lease, Pools};

const EXAMPLE: Example = Example::new(
    &[("address", "localhost:6379"), ("listName", "jobs")],
    &["listName", "address"],
);
const CLUSTER_EXAMPLE: Example = Example::new(
    &[("addresses", "a:6379,b:6379"), ("listName", "jobs")],
    // Any of address, addresses or hosts+ports will do, so none is required alone.
    &["listName"],
);
const SENTINEL_EXAMPLE: Example = Example::new(
    &[
        ("addresses", "a:26379"),
        ("sentinelMaster", "mymaster"),
        ("listName", "jobs"),
    ],
    // Any of address, addresses or hosts+ports will do, so none is required alone.
    &["listName"],
);

/// `redis`.
pub static DESCRIPTOR: Descriptor = Descriptor::new::<RedisListScaler>("redis", EXAMPLE);
/// `redis-cluster`.
pub static CLUSTER_DESCRIPTOR: Descriptor =
    Descriptor::new::<RedisListScaler>("redis-cluster", CLUSTER_EXAMPLE);
/// `redis-sentinel`.
pub static SENTINEL_DESCRIPTOR: Descriptor =
    Descriptor::new::<RedisListScaler>("redis-sentinel", SENTINEL_EXAMPLE);

/// Measures the key in one round trip, whatever collection type it holds; a missing key is 0.
static LENGTH_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'list' or kind == 'none' then return redis.call('LLEN', KEYS[1]) end
if kind == 'set' then return redis.call('SCARD', KEYS[1]) end
if kind == 'zset' then return redis.call('ZCARD', KEYS[1]) end
if kind == 'hash' then return redis.call('HLEN', KEYS[1]) end
return redis.error_reply('ERR unsupported key type: ' .. kind)
",
    )
});

/// Parsed trigger of a redis list scaler.
#[derive(Clone, Debug, PartialEq)]
pub struct RedisListMetadata {
    /// `listName`: the key to measure.
    pub list_name: String,
    /// `listLength`: the target (default 5).
    pub list_length: i64,
    /// `activationListLength`: active above this (default 0).
    pub activation_list_length: i64,
    /// `databaseIndex` (default 0; ignored by `redis-cluster`).
    pub database_index: i64,
    /// The backend identity.
    pub endpoint: RedisEndpoint,
    /// From the trigger's `metricType`.
    pub metric_type: MetricTargetKind,
}

/// The parameters of the list trigger types, in KEDA's order.
#[derive(Debug, ScalerMetadata)]
struct ListParams {
    #[param(name = "listLength", default = 5)]
    list_length: i64,
    #[param(name = "activationListLength")]
    activation_list_length: Option<i64>,
    #[param(name = "listName")]
    list_name: String,
    #[param(name = "databaseIndex")]
    database_index: Option<i64>,
    #[param(flatten)]
    connection: ConnectionParams,
}

/// Parses a `redis`/`redis-cluster`/`redis-sentinel` trigger without any I/O.
pub fn parse_with(
    config: &ScalerConfig,
    topology: RedisTopology,
) -> Result<RedisListMetadata, ScalerError> {
    let metric_type = config.external_metric_type()?;
    let mut p = MetadataParser::new(config);
    let params = ListParams::from_params(&mut p);
    let database_index = params.database_index.unwrap_or(0);
    let endpoint = parse_endpoint(&mut p, params.connection, topology, database_index);
    let report = p.finish()?;
    if !report.unmatched_metadata_keys.is_empty() {
        tracing::debug!(
            trigger = %config.trigger_label(),
            keys = ?report.unmatched_metadata_keys,
            "metadata keys not used by the redis scaler"
        );
    }
    Ok(RedisListMetadata {
        list_name: params.list_name,
        list_length: params.list_length,
        activation_list_length: params.activation_list_length.unwrap_or(0),
        database_index,
        endpoint,
        metric_type,
    })
}

/// A connected `redis`/`redis-cluster`/`redis-sentinel` trigger.
pub struct RedisListScaler {
    metadata: RedisListMetadata,
    client: Lease<RedisClient>,
}

impl ScalerKind for RedisListScaler {
    type Metadata = RedisListMetadata;

    fn parse(config: &ScalerConfig) -> Result<RedisListMetadata, ScalerError> {
        parse_with(config, RedisTopology::of_trigger_type(&config.trigger_type))
    }

    fn params() -> Vec<ParamInfo> {
        ListParams::params()
    }

    fn metric_specs(
        metadata: &RedisListMetadata,
        config: &ScalerConfig,
    ) -> Option<Vec<MetricSpec>> {
        let name = normalized_metric_name(
            config.trigger_index,
            &format!("redis-{}", metadata.list_name),
        );
        Some(vec![MetricSpec::external(
            name,
            MetricTarget::count(metadata.metric_type, metadata.list_length),
        )])
    }

    /// Takes a share of the pooled client for the endpoint, connecting (and `PING`ing) if no
    /// scaler uses that endpoint yet.
    async fn connect(
        metadata: RedisListMetadata,
        _config: &ScalerConfig,
        pools: &Pools,
    ) -> Result<Self, ConnectError> {
        let client = pools
            .lease(&metadata.endpoint, || {
                RedisClient::connect(&metadata.endpoint)
            })
            .await?;
        Ok(Self { metadata, client })
    }

    async fn read(&self, metric_name: &str) -> Result<Reading, BackendError> {
        let mut invocation = LENGTH_SCRIPT.prepare_invoke();
        invocation.key(&self.metadata.list_name);
        let length = self
            .client
            .invoke_script::<i64>(&invocation)
            .await
            .map_err(|e| backend_error(&e).context("error getting list length"))?;
        Ok(Reading::count(
            metric_name,
            length,
            self.metadata.activation_list_length,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ERR_NO_ADDRESSES, ERR_UNEQUAL_HOSTS_AND_PORTS, HostPort};
    use super::*;

    fn config(
        trigger_type: &str,
        metadata: &[(&str, &str)],
        auth: &[(&str, &str)],
        env: &[(&str, &str)],
    ) -> ScalerConfig {
        ScalerConfig::new(trigger_type, 0)
            .with_metadata(metadata.iter().copied())
            .with_auth_params(auth.iter().copied())
            .with_resolved_env(env.iter().copied())
    }

    fn single(
        metadata: &[(&str, &str)],
        auth: &[(&str, &str)],
    ) -> Result<RedisListMetadata, ScalerError> {
        parse_with(&config("redis", metadata, auth, &[]), RedisTopology::Single)
    }

    fn hp(host: &str, port: u16) -> HostPort {
        HostPort {
            host: host.into(),
            port,
        }
    }

    const ENV: &[(&str, &str)] = &[
        ("REDIS_HOST", "localhost"),
        ("REDIS_PORT", "6379"),
        ("REDIS_ADDRESS", "localhost:6379"),
        ("REDIS_PASSWORD", "pw"),
    ];

    // The cases of KEDA's redis_scaler_test.go table, as facts.

    #[test]
    fn empty_metadata_is_rejected() {
        let err = single(&[], &[]).unwrap_err();
        assert!(err.is_config());
        assert_eq!(err.parameter(), Some("listName"));
        assert!(
            err.message()
                .contains("missing required parameter \"listName\" in [triggerMetadata]")
        );
        assert!(err.message().contains(ERR_NO_ADDRESSES));
    }

    #[test]
    fn address_and_password_from_env() {
        let cfg = config(
            "redis",
            &[
                ("listName", "mylist"),
                ("listLength", "10"),
                ("addressFromEnv", "REDIS_ADDRESS"),
                ("passwordFromEnv", "REDIS_PASSWORD"),
            ],
            &[],
            ENV,
        );
        let meta = parse_with(&cfg, RedisTopology::Single).unwrap();
        assert_eq!(meta.list_name, "mylist");
        assert_eq!(meta.list_length, 10);
        assert_eq!(meta.activation_list_length, 0);
        assert_eq!(meta.endpoint.addresses, [hp("localhost", 6379)]);
        assert_eq!(meta.endpoint.password.as_deref(), Some("pw"));
        assert_eq!(meta.endpoint.tls, None);
    }

    #[test]
    fn host_and_port_from_env() {
        let cfg = config(
            "redis",
            &[
                ("listName", "mylist"),
                ("hostFromEnv", "REDIS_HOST"),
                ("portFromEnv", "REDIS_PORT"),
            ],
            &[],
            ENV,
        );
        let meta = parse_with(&cfg, RedisTopology::Single).unwrap();
        assert_eq!(meta.endpoint.addresses, [hp("localhost", 6379)]);
    }

    #[test]
    fn host_without_port_gives_no_address() {
        let cfg = config(
            "redis",
            &[("listName", "mylist"), ("hostFromEnv", "REDIS_HOST")],
            &[],
            ENV,
        );
        let err = parse_with(&cfg, RedisTopology::Single).unwrap_err();
        assert_eq!(err.parameter(), Some("host"));
        assert_eq!(err.message(), ERR_NO_ADDRESSES);
    }

    #[test]
    fn empty_values_are_missing() {
        let err = single(
            &[("listName", "mylist"), ("address", ""), ("password", "")],
            &[],
        )
        .unwrap_err();
        assert_eq!(err.parameter(), Some("address"));
        assert_eq!(err.message(), ERR_NO_ADDRESSES);
    }

    #[test]
    fn non_numeric_lengths_are_rejected() {
        for param in ["listLength", "activationListLength", "databaseIndex"] {
            let err =
                single(&[("listName", "l"), ("address", "a:1"), (param, "AA")], &[]).unwrap_err();
            assert!(err.is_config());
            assert_eq!(err.parameter(), Some(param));
            assert!(
                err.message()
                    .starts_with(&format!("unable to set param \"{param}\" value \"AA\""))
            );
        }
    }

    #[test]
    fn address_from_missing_env_var_is_rejected() {
        let cfg = config(
            "redis",
            &[("listName", "mylist"), ("addressFromEnv", "NOT_THERE")],
            &[],
            ENV,
        );
        let err = parse_with(&cfg, RedisTopology::Single).unwrap_err();
        assert_eq!(err.message(), ERR_NO_ADDRESSES);
    }

    #[test]
    fn address_or_host_port_from_auth_params() {
        let meta = single(&[("listName", "l")], &[("address", "localhost:6379")]).unwrap();
        assert_eq!(meta.endpoint.addresses, [hp("localhost", 6379)]);
        let meta = single(
            &[("listName", "l")],
            &[("host", "localhost"), ("port", "6379")],
        )
        .unwrap();
        assert_eq!(meta.endpoint.addresses, [hp("localhost", 6379)]);
    }

    #[test]
    fn tls_from_auth_params() {
        let (ca, cert, key) = test_pem();
        let cases: [&[(&str, &str)]; 3] = [
            &[
                ("tls", "enable"),
                ("ca", &ca),
                ("cert", &cert),
                ("key", &key),
            ],
            &[("tls", "enable"), ("cert", &cert), ("key", &key)],
            &[("tls", "enable"), ("ca", &ca)],
        ];
        for auth in cases {
            let mut auth = auth.to_vec();
            auth.push(("address", "localhost:6379"));
            let meta = single(&[("listName", "l")], &auth).unwrap();
            let tls = meta.endpoint.tls.expect("tls on");
            assert_eq!(tls.ca.is_some(), auth.iter().any(|(k, _)| *k == "ca"));
            assert_eq!(tls.cert.is_some(), auth.iter().any(|(k, _)| *k == "cert"));
        }
        // `Cert` is accepted as well.
        let meta = single(
            &[("listName", "l")],
            &[
                ("address", "a:1"),
                ("tls", "enable"),
                ("Cert", &cert),
                ("key", &key),
            ],
        )
        .unwrap();
        assert!(meta.endpoint.tls.unwrap().cert.is_some());
    }

    #[test]
    fn tls_in_both_places_is_rejected() {
        let err = single(
            &[("listName", "l"), ("address", "a:1"), ("enableTLS", "true")],
            &[("tls", "disable")],
        )
        .unwrap_err();
        assert_eq!(err.parameter(), Some("tls"));
        assert_eq!(
            err.message(),
            "unable to set `tls` in both ScaledObject and TriggerAuthentication together"
        );
    }

    #[test]
    fn tls_switch_values() {
        let meta = single(
            &[("listName", "l"), ("address", "a:1")],
            &[("tls", "disable")],
        )
        .unwrap();
        assert_eq!(meta.endpoint.tls, None);
        let err = single(&[("listName", "l"), ("address", "a:1")], &[("tls", "on")]).unwrap_err();
        assert_eq!(err.parameter(), Some("tls"));
        assert_eq!(err.message(), "error incorrect TLS value given, got on");
        let meta = single(
            &[("listName", "l"), ("address", "a:1"), ("enableTLS", "true")],
            &[],
        )
        .unwrap();
        assert!(meta.endpoint.tls.is_some());
        let meta = single(
            &[
                ("listName", "l"),
                ("address", "a:1"),
                ("enableTLS", "false"),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(meta.endpoint.tls, None);
        let err = single(
            &[("listName", "l"), ("address", "a:1"), ("enableTLS", "no")],
            &[],
        )
        .unwrap_err();
        assert_eq!(err.parameter(), Some("enableTLS"));
        assert!(err.message().starts_with("EnableTLS parsing error"));
    }

    #[test]
    fn unsafe_ssl_must_be_a_bool() {
        let err = single(
            &[
                ("listName", "l"),
                ("address", "a:1"),
                ("unsafeSsl", "maybe"),
            ],
            &[],
        )
        .unwrap_err();
        assert_eq!(err.parameter(), Some("unsafeSsl"));
        let meta = single(
            &[
                ("listName", "l"),
                ("address", "a:1"),
                ("unsafeSsl", "true"),
                ("enableTLS", "true"),
            ],
            &[],
        )
        .unwrap();
        assert!(meta.endpoint.tls.unwrap().unsafe_ssl);
    }

    #[test]
    fn host_only_in_auth_params_is_rejected() {
        let err = single(&[("listName", "l")], &[("host", "localhost")]).unwrap_err();
        assert_eq!(err.message(), ERR_NO_ADDRESSES);
    }

    #[test]
    fn cluster_unequal_hosts_and_ports() {
        let cfg = config(
            "redis-cluster",
            &[("listName", "l"), ("hosts", "a, b, c"), ("ports", "1, 2")],
            &[],
            &[],
        );
        let err = parse_with(&cfg, RedisTopology::Cluster).unwrap_err();
        assert_eq!(err.parameter(), Some("hosts"));
        assert_eq!(err.message(), ERR_UNEQUAL_HOSTS_AND_PORTS);
    }

    #[test]
    fn cluster_hosts_and_ports_from_auth_params() {
        let cfg = config(
            "redis-cluster",
            &[("listName", "l")],
            &[("hosts", "   a, b,    c "), ("ports", "1, 2, 3")],
            &[],
        );
        let meta = parse_with(&cfg, RedisTopology::Cluster).unwrap();
        assert_eq!(
            meta.endpoint.addresses,
            [hp("a", 1), hp("b", 2), hp("c", 3)]
        );
    }

    #[test]
    fn cluster_addresses_from_auth_params_default_list_length() {
        let cfg = config(
            "redis-cluster",
            &[("listName", "l"), ("databaseIndex", "3")],
            &[("addresses", ":7001, :7002")],
            &[],
        );
        let meta = parse_with(&cfg, RedisTopology::Cluster).unwrap();
        assert_eq!(meta.list_length, 5);
        assert_eq!(meta.database_index, 3);
        assert_eq!(meta.endpoint.database, 0, "clusters ignore databaseIndex");
        assert_eq!(
            meta.endpoint.addresses,
            [hp("localhost", 7001), hp("localhost", 7002)]
        );
    }

    #[test]
    fn explicit_addresses_come_before_host_port_pairs() {
        let cfg = config(
            "redis-cluster",
            &[
                ("listName", "l"),
                ("addresses", "x:9"),
                ("hosts", "a,b"),
                ("ports", "1,2"),
            ],
            &[],
            &[],
        );
        let meta = parse_with(&cfg, RedisTopology::Cluster).unwrap();
        assert_eq!(
            meta.endpoint.addresses,
            [hp("x", 9), hp("a", 1), hp("b", 2)]
        );
    }

    #[test]
    fn single_node_uses_the_first_address_only() {
        let meta = single(
            &[("listName", "l"), ("address", "a:1, not-an-address")],
            &[],
        )
        .unwrap();
        assert_eq!(meta.endpoint.addresses, [hp("a", 1)]);
        let err = single(&[("listName", "l"), ("address", "no-port")], &[]).unwrap_err();
        assert_eq!(err.parameter(), Some("address"));
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        let meta = single(&[("listName", "l"), ("host", "::1"), ("port", "6379")], &[]).unwrap();
        assert_eq!(meta.endpoint.addresses, [hp("::1", 6379)]);
    }

    #[test]
    fn password_lookup_order_metadata_env_auth() {
        let cfg = config(
            "redis",
            &[
                ("listName", "l"),
                ("address", "a:1"),
                ("passwordFromEnv", "REDIS_PASSWORD"),
            ],
            &[("password", "from-auth")],
            ENV,
        );
        assert_eq!(
            parse_with(&cfg, RedisTopology::Single)
                .unwrap()
                .endpoint
                .password
                .as_deref(),
            Some("pw")
        );
        let cfg = config(
            "redis",
            &[
                ("listName", "l"),
                ("address", "a:1"),
                ("password", "from-meta"),
            ],
            &[("password", "from-auth")],
            ENV,
        );
        assert_eq!(
            parse_with(&cfg, RedisTopology::Single)
                .unwrap()
                .endpoint
                .password
                .as_deref(),
            Some("from-meta")
        );
    }

    #[test]
    fn address_lookup_order_metadata_auth_env() {
        let cfg = config(
            "redis",
            &[("listName", "l"), ("addressFromEnv", "REDIS_ADDRESS")],
            &[("address", "auth:1")],
            ENV,
        );
        assert_eq!(
            parse_with(&cfg, RedisTopology::Single)
                .unwrap()
                .endpoint
                .addresses,
            [hp("auth", 1)]
        );
    }

    #[test]
    fn sentinel_settings_only_for_sentinel() {
        let metadata = [
            ("listName", "l"),
            ("addresses", "s1:26379, s2:26379"),
            ("sentinelMaster", "mymaster"),
            ("databaseIndex", "2"),
        ];
        let auth = [("sentinelPassword", "spw"), ("sentinelUsername", "su")];
        let cfg = config("redis-sentinel", &metadata, &auth, &[]);
        let meta = parse_with(&cfg, RedisTopology::Sentinel).unwrap();
        assert_eq!(meta.endpoint.addresses.len(), 2);
        assert_eq!(meta.endpoint.sentinel_master.as_deref(), Some("mymaster"));
        assert_eq!(meta.endpoint.sentinel_password.as_deref(), Some("spw"));
        assert_eq!(meta.endpoint.sentinel_username.as_deref(), Some("su"));
        assert_eq!(meta.endpoint.database, 2);
        let cfg = config("redis", &metadata, &auth, &[]);
        let meta = parse_with(&cfg, RedisTopology::Single).unwrap();
        assert_eq!(meta.endpoint.sentinel_master, None);
        assert_eq!(meta.endpoint.addresses.len(), 1);
    }

    #[test]
    fn bad_tls_material_is_a_config_error_only_when_tls_is_on() {
        let auth = [
            ("address", "a:1"),
            ("ca", "junk"),
            ("cert", "junk"),
            ("key", "junk"),
        ];
        single(&[("listName", "l")], &auth).unwrap();
        let mut with_tls = auth.to_vec();
        with_tls.push(("tls", "enable"));
        let err = single(&[("listName", "l")], &with_tls).unwrap_err();
        assert_eq!(err.parameter(), Some("cert"));
    }

    #[test]
    fn utilization_metric_type_is_rejected() {
        let mut cfg = config("redis", &[("listName", "l"), ("address", "a:1")], &[], &[]);
        cfg.metric_type = MetricTargetKind::Utilization;
        let err = parse_with(&cfg, RedisTopology::Single).unwrap_err();
        assert_eq!(err.parameter(), Some("metricType"));
        cfg.metric_type = MetricTargetKind::Value;
        assert_eq!(
            parse_with(&cfg, RedisTopology::Single).unwrap().metric_type,
            MetricTargetKind::Value
        );
    }

    #[test]
    fn values_are_trimmed() {
        let meta = single(
            &[
                ("listName", "  jobs "),
                ("listLength", " 7 "),
                ("address", " a:1 "),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(meta.list_name, "jobs");
        assert_eq!(meta.list_length, 7);
    }

    fn test_pem() -> (String, String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), cert.pem(), key.serialize_pem())
    }
}
