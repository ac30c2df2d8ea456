//! The table from trigger type (`redis`, `aws-sqs-queue`, …) to constructor. One entry per type,
//! kept sorted so lookups are a binary search and a test catches duplicates.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::clients::redis::RedisTopology;
use crate::config::ScalerConfig;
use crate::error::ScalerError;
use crate::pools::Pools;
use crate::scaler::Scaler;
use crate::scalers;
use crate::scalers::cpu_memory::ResourceName;

/// Future returned by a constructor.
pub type BuildFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Arc<dyn Scaler>, ScalerError>> + Send + 'a>>;

/// Builds a scaler; may connect to its backend.
pub type BuildFn = for<'a> fn(&'a ScalerConfig, &'a Pools) -> BuildFuture<'a>;

/// Parses a trigger without I/O.
pub type ParseFn = fn(&ScalerConfig) -> Result<(), ScalerError>;

/// One trigger type.
#[derive(Clone, Copy, Debug)]
pub struct RegistryEntry {
    /// The trigger type, exactly as KEDA spells it.
    pub trigger_type: &'static str,
    /// Builds the scaler.
    pub build: BuildFn,
    /// Parses only.
    pub parse: ParseFn,
}

/// Every built-in trigger type, sorted by name.
const BUILTIN: &[RegistryEntry] = &[
    RegistryEntry {
        trigger_type: "aws-sqs-queue",
        build: |c, p| Box::pin(scalers::aws::sqs_queue::build(c, p)),
        parse: |c| {
            let pod = scalers::aws::auth::aws_pod_identity(c);
            scalers::aws::sqs_queue::parse(c, pod.as_ref()).map(drop)
        },
    },
    RegistryEntry {
        trigger_type: "azure-servicebus",
        build: |c, p| Box::pin(scalers::azure_servicebus::build(c, p)),
        parse: |c| scalers::azure_servicebus::parse(c).map(drop),
    },
    RegistryEntry {
        trigger_type: "cpu",
        build: |c, p| Box::pin(scalers::cpu_memory::build(c, p, ResourceName::Cpu)),
        parse: |c| scalers::cpu_memory::parse(c).map(drop),
    },
    RegistryEntry {
        trigger_type: "cron",
        build: |c, p| Box::pin(scalers::cron::build(c, p)),
        parse: |c| scalers::cron::parse(c).map(drop),
    },
    RegistryEntry {
        trigger_type: "external",
        build: |c, p| Box::pin(scalers::external::build(c, p, false)),
        parse: |c| scalers::external::parse(c).map(drop),
    },
    RegistryEntry {
        trigger_type: "external-push",
        build: |c, p| Box::pin(scalers::external::build(c, p, true)),
        parse: |c| scalers::external::parse(c).map(drop),
    },
    RegistryEntry {
        trigger_type: "gcp-pubsub",
        build: |c, p| Box::pin(scalers::gcp_pubsub::build(c, p)),
        parse: |c| scalers::gcp_pubsub::parse(c).map(drop),
    },
    RegistryEntry {
        trigger_type: "kafka",
        build: |c, p| Box::pin(scalers::kafka::build(c, p)),
        parse: |c| scalers::kafka::parse(c).map(drop),
    },
    RegistryEntry {
        trigger_type: "memory",
        build: |c, p| Box::pin(scalers::cpu_memory::build(c, p, ResourceName::Memory)),
        parse: |c| scalers::cpu_memory::parse(c).map(drop),
    },
    RegistryEntry {
        trigger_type: "metrics-api",
        build: |c, p| Box::pin(scalers::metrics_api::build(c, p)),
        parse: |c| scalers::metrics_api::parse(c).map(drop),
    },
    RegistryEntry {
        trigger_type: "prometheus",
        build: |c, p| Box::pin(scalers::prometheus::build(c, p)),
        parse: |c| scalers::prometheus::parse(c).map(drop),
    },
    RegistryEntry {
        trigger_type: "rabbitmq",
        build: |c, p| Box::pin(scalers::rabbitmq::build(c, p)),
        parse: |c| scalers::rabbitmq::parse(c).map(drop),
    },
    RegistryEntry {
        trigger_type: "redis",
        build: |c, p| Box::pin(scalers::redis::build(c, p, RedisTopology::Single)),
        parse: |c| scalers::redis::parse(c, RedisTopology::Single).map(drop),
    },
    RegistryEntry {
        trigger_type: "redis-cluster",
        build: |c, p| Box::pin(scalers::redis::build(c, p, RedisTopology::Cluster)),
        parse: |c| scalers::redis::parse(c, RedisTopology::Cluster).map(drop),
    },
    RegistryEntry {
        trigger_type: "redis-cluster-streams",
        build: |c, p| Box::pin(scalers::redis_streams::build(c, p, RedisTopology::Cluster)),
        parse: |c| scalers::redis_streams::parse(c, RedisTopology::Cluster).map(drop),
    },
    RegistryEntry {
        trigger_type: "redis-sentinel",
        build: |c, p| Box::pin(scalers::redis::build(c, p, RedisTopology::Sentinel)),
        parse: |c| scalers::redis::parse(c, RedisTopology::Sentinel).map(drop),
    },
    RegistryEntry {
        trigger_type: "redis-sentinel-streams",
        build: |c, p| Box::pin(scalers::redis_streams::build(c, p, RedisTopology::Sentinel)),
        parse: |c| scalers::redis_streams::parse(c, RedisTopology::Sentinel).map(drop),
    },
    RegistryEntry {
        trigger_type: "redis-streams",
        build: |c, p| Box::pin(scalers::redis_streams::build(c, p, RedisTopology::Single)),
        parse: |c| scalers::redis_streams::parse(c, RedisTopology::Single).map(drop),
    },
];

/// Error for a table that is not strictly sorted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "registry entries must be strictly sorted by trigger type: {previous:?} is followed by {next:?}"
)]
pub struct UnsortedRegistry {
    /// The earlier entry.
    pub previous: &'static str,
    /// The entry that is not greater than it.
    pub next: &'static str,
}

/// Trigger type → constructor.
#[derive(Clone, Copy, Debug)]
pub struct Registry {
    entries: &'static [RegistryEntry],
}

impl Default for Registry {
    fn default() -> Self {
        Self::builtin()
    }
}

impl Registry {
    /// Every scaler of this crate.
    pub fn builtin() -> Self {
        Self { entries: BUILTIN }
    }

    /// A registry over `entries` (e.g. for tests), which must be strictly sorted.
    pub fn from_entries(entries: &'static [RegistryEntry]) -> Result<Self, UnsortedRegistry> {
        for pair in entries.windows(2) {
            if let [a, b] = pair
                && a.trigger_type >= b.trigger_type
            {
                return Err(UnsortedRegistry {
                    previous: a.trigger_type,
                    next: b.trigger_type,
                });
            }
        }
        Ok(Self { entries })
    }

    /// The entries, sorted.
    pub fn entries(&self) -> &'static [RegistryEntry] {
        self.entries
    }

    /// The known trigger types, sorted.
    pub fn trigger_types(&self) -> impl Iterator<Item = &'static str> + use<> {
        self.entries.iter().map(|e| e.trigger_type)
    }

    /// The entry for `trigger_type`.
    pub fn lookup(&self, trigger_type: &str) -> Option<&'static RegistryEntry> {
        let entries = self.entries;
        entries
            .binary_search_by(|e| e.trigger_type.cmp(trigger_type))
            .ok()
            .and_then(|i| entries.get(i))
    }

    fn entry_for(&self, config: &ScalerConfig) -> Result<&'static RegistryEntry, ScalerError> {
        self.lookup(&config.trigger_type).ok_or_else(|| {
            ScalerError::config(
                format!("trigger {}", config.trigger_index),
                "type",
                format!("no scaler found for type: {}", config.trigger_type),
            )
        })
    }

    /// Builds the scaler for `config`, sharing clients through `pools`.
    pub async fn build(
        &self,
        config: &ScalerConfig,
        pools: &Pools,
    ) -> Result<Arc<dyn Scaler>, ScalerError> {
        let entry = self.entry_for(config)?;
        (entry.build)(config, pools).await
    }

    /// Checks `config` as `build` would, without connecting anywhere (`keda-rs validate`).
    pub fn parse_only(&self, config: &ScalerConfig) -> Result<(), ScalerError> {
        let entry = self.entry_for(config)?;
        (entry.parse)(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_is_sorted_and_unique() {
        Registry::from_entries(BUILTIN).expect("sorted");
        let types: Vec<_> = Registry::builtin().trigger_types().collect();
        let mut sorted = types.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(types, sorted);
    }

    #[test]
    fn unsorted_tables_are_refused() {
        static UNSORTED: &[RegistryEntry] = &[
            RegistryEntry {
                trigger_type: "redis-cluster",
                build: |c, p| Box::pin(scalers::redis::build(c, p, RedisTopology::Cluster)),
                parse: |_| Ok(()),
            },
            RegistryEntry {
                trigger_type: "redis",
                build: |c, p| Box::pin(scalers::redis::build(c, p, RedisTopology::Single)),
                parse: |_| Ok(()),
            },
        ];
        let err = Registry::from_entries(UNSORTED).unwrap_err();
        assert_eq!(err.previous, "redis-cluster");
        static DUPLICATE: &[RegistryEntry] = &[
            RegistryEntry {
                trigger_type: "redis",
                build: |c, p| Box::pin(scalers::redis::build(c, p, RedisTopology::Single)),
                parse: |_| Ok(()),
            },
            RegistryEntry {
                trigger_type: "redis",
                build: |c, p| Box::pin(scalers::redis::build(c, p, RedisTopology::Single)),
                parse: |_| Ok(()),
            },
        ];
        assert!(Registry::from_entries(DUPLICATE).is_err());
    }

    #[test]
    fn lookup_finds_every_entry() {
        let registry = Registry::builtin();
        for t in registry.trigger_types() {
            assert_eq!(registry.lookup(t).map(|e| e.trigger_type), Some(t));
        }
        assert!(registry.lookup("redis-streams-nope").is_none());
    }

    #[test]
    fn unknown_type_is_a_config_error_naming_the_type() {
        let config = ScalerConfig::new("kafkaa", 1);
        let err = Registry::builtin().parse_only(&config).unwrap_err();
        assert!(err.is_config());
        assert_eq!(err.parameter(), Some("type"));
        assert_eq!(
            err.to_string(),
            "trigger 1: parameter \"type\": no scaler found for type: kafkaa"
        );
    }

    #[tokio::test]
    async fn unknown_type_build_fails_without_io() {
        let config = ScalerConfig::new("", 0);
        let err = Registry::builtin()
            .build(&config, &Pools::new())
            .await
            .err()
            .expect("error");
        assert!(err.is_config());
    }

    mod properties {
        use super::*;
        use crate::config::MetricTargetKind;
        use proptest::collection::btree_map;
        use proptest::prelude::*;

        /// Parameter names the scalers read, so generated maps hit real code paths.
        const KNOWN: &[&str] = &[
            "listName",
            "listLength",
            "activationListLength",
            "databaseIndex",
            "enableTLS",
            "tls",
            "address",
            "addresses",
            "host",
            "hosts",
            "port",
            "ports",
            "username",
            "password",
            "sentinelUsername",
            "sentinelPassword",
            "sentinelMaster",
            "unsafeSsl",
            "Cert",
            "cert",
            "key",
            "keyPassword",
            "ca",
            "addressFromEnv",
            "hostFromEnv",
            "portFromEnv",
            "passwordFromEnv",
            "hostsFromEnv",
            "portsFromEnv",
        ];

        fn key() -> impl Strategy<Value = String> {
            prop_oneof![
                3 => proptest::sample::select(KNOWN).prop_map(str::to_owned),
                1 => ".{0,12}",
            ]
        }

        fn value() -> impl Strategy<Value = String> {
            prop_oneof![
                "[ ,:\\[\\]0-9a-z.-]{0,24}",
                ".{0,40}",
                Just("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----".to_owned()),
                Just("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----".to_owned()),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn parsing_never_panics(
                type_index in 0..4_usize,
                metric_type in 0..3_usize,
                metadata in btree_map(key(), value(), 0..10),
                auth in btree_map(key(), value(), 0..6),
                env in btree_map(".{0,8}", value(), 0..4),
            ) {
                let types = ["redis", "redis-cluster", "redis-sentinel", "nope"];
                let mut config = ScalerConfig::new(types[type_index], 0);
                config.metadata = metadata;
                config.auth_params = auth;
                config.resolved_env = env;
                config.metric_type = [
                    MetricTargetKind::AverageValue,
                    MetricTargetKind::Value,
                    MetricTargetKind::Utilization,
                ][metric_type];
                if let Err(e) = Registry::builtin().parse_only(&config) {
                    prop_assert!(e.is_config());
                    prop_assert!(!e.to_string().is_empty());
                }
            }
        }
    }

    #[test]
    fn parse_only_dispatches_by_type() {
        let ok = ScalerConfig::new("redis-sentinel", 0)
            .with_metadata([("listName", "l"), ("addresses", "s:26379")]);
        Registry::builtin().parse_only(&ok).unwrap();
        let bad = ScalerConfig::new("redis", 0);
        assert!(
            Registry::builtin()
                .parse_only(&bad)
                .unwrap_err()
                .is_config()
        );
    }
}
