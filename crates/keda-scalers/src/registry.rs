//! The table of trigger types: one line per type, each behind its family's cargo feature, kept
//! sorted so lookups are a binary search and a test catches duplicates. Adding a scaler adds its
//! folder, one line here and one feature.

use std::sync::Arc;

use crate::config::ScalerConfig;
use crate::error::ScalerError;
use crate::kind::Descriptor;
use crate::metrics::MetricSpec;
use crate::pools::Pools;
use crate::scaler::Scaler;

/// Every built-in trigger type, sorted by name.
pub static SCALERS: &[&Descriptor] = &[
    #[cfg(feature = "aws-sqs-queue")]
    &crate::aws::sqs_queue::DESCRIPTOR,
    #[cfg(feature = "azure-servicebus")]
    &crate::azure::servicebus::DESCRIPTOR,
    #[cfg(feature = "beanstalkd")]
    &crate::beanstalkd::DESCRIPTOR,
    #[cfg(feature = "cpu-memory")]
    &crate::cpu_memory::CPU_DESCRIPTOR,
    #[cfg(feature = "cron")]
    &crate::cron::DESCRIPTOR,
    #[cfg(feature = "external")]
    &crate::external::DESCRIPTOR,
    #[cfg(feature = "external")]
    &crate::external::PUSH_DESCRIPTOR,
    #[cfg(feature = "gcp-pubsub")]
    &crate::gcp::pubsub::DESCRIPTOR,
    #[cfg(feature = "kafka")]
    &crate::kafka::lag::DESCRIPTOR,
    #[cfg(feature = "cpu-memory")]
    &crate::cpu_memory::MEMORY_DESCRIPTOR,
    #[cfg(feature = "metrics-api")]
    &crate::metrics_api::DESCRIPTOR,
    #[cfg(feature = "prometheus")]
    &crate::prometheus::DESCRIPTOR,
    #[cfg(feature = "rabbitmq")]
    &crate::rabbitmq::DESCRIPTOR,
    #[cfg(feature = "redis")]
    &crate::redis::list::DESCRIPTOR,
    #[cfg(feature = "redis")]
    &crate::redis::list::CLUSTER_DESCRIPTOR,
    #[cfg(feature = "redis")]
    &crate::redis::streams::CLUSTER_DESCRIPTOR,
    #[cfg(feature = "redis")]
    &crate::redis::list::SENTINEL_DESCRIPTOR,
    #[cfg(feature = "redis")]
    &crate::redis::streams::SENTINEL_DESCRIPTOR,
    #[cfg(feature = "redis")]
    &crate::redis::streams::DESCRIPTOR,
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

/// Trigger type → descriptor.
#[derive(Clone, Copy, Debug)]
pub struct Registry {
    entries: &'static [&'static Descriptor],
}

impl Default for Registry {
    fn default() -> Self {
        Self::builtin()
    }
}

impl Registry {
    /// Every scaler compiled into this build.
    pub fn builtin() -> Self {
        Self { entries: SCALERS }
    }

    /// A registry over `entries` (e.g. for tests), which must be strictly sorted.
    pub fn from_entries(entries: &'static [&'static Descriptor]) -> Result<Self, UnsortedRegistry> {
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

    /// The descriptors, sorted.
    pub fn entries(&self) -> &'static [&'static Descriptor] {
        self.entries
    }

    /// The known trigger types, sorted.
    pub fn trigger_types(&self) -> impl Iterator<Item = &'static str> + use<> {
        self.entries.iter().map(|e| e.trigger_type)
    }

    /// The descriptor for `trigger_type`.
    pub fn lookup(&self, trigger_type: &str) -> Option<&'static Descriptor> {
        let entries = self.entries;
        entries
            .binary_search_by(|e| e.trigger_type.cmp(trigger_type))
            .ok()
            .and_then(|i| entries.get(i))
            .copied()
    }

    fn entry_for(&self, config: &ScalerConfig) -> Result<&'static Descriptor, ScalerError> {
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
    ) -> Result<Arc<Scaler>, ScalerError> {
        let entry = self.entry_for(config)?;
        entry.build(config, pools).await.map(Arc::new)
    }

    /// Checks `config` as `build` would, without connecting anywhere (`keda-rs validate`).
    pub fn parse_only(&self, config: &ScalerConfig) -> Result<(), ScalerError> {
        self.metric_specs(config).map(drop)
    }

    /// The metric specs `config` feeds the HPA, without connecting anywhere; `None` where only the
    /// backend knows them (`external`).
    pub fn metric_specs(
        &self,
        config: &ScalerConfig,
    ) -> Result<Option<Vec<MetricSpec>>, ScalerError> {
        self.entry_for(config)?.parse(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MetricTargetKind;
    use crate::testing::{ComplianceCase, check_parsing};

    #[test]
    fn builtin_is_sorted_and_unique() {
        Registry::from_entries(SCALERS).expect("sorted");
        let types: Vec<_> = Registry::builtin().trigger_types().collect();
        let mut sorted = types.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(types, sorted);
    }

    /// Every descriptor's example goes through the shared compliance check without a backend:
    /// it parses, `Utilization` is refused (resource metrics excepted), every required parameter
    /// missing is a config error naming it, and the metric specs are computed without I/O with
    /// `s<index>-` names.
    #[test]
    fn every_descriptor_is_compliant() {
        let registry = Registry::builtin();
        for descriptor in registry.entries() {
            let config = descriptor.example.config(descriptor.trigger_type);
            let case = ComplianceCase {
                config: config.clone(),
                required: descriptor.example.required.to_vec(),
                invalid: Vec::new(),
                activation_param: None,
                current_value: 1.0,
            };
            if descriptor.example.metric_type == MetricTargetKind::Utilization {
                registry.parse_only(&config).unwrap_or_else(|e| {
                    panic!("{}: example does not parse: {e}", descriptor.trigger_type)
                });
            } else {
                check_parsing(&registry, &case);
            }
            let specs = registry.metric_specs(&config).unwrap();
            if let Some(specs) = specs {
                assert!(
                    !specs.is_empty(),
                    "{}: no metric specs",
                    descriptor.trigger_type
                );
                for spec in &specs {
                    if let Some(name) = spec.external_metric_name() {
                        assert!(
                            name.starts_with("s0-"),
                            "{}: metric {name}",
                            descriptor.trigger_type
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn an_example_that_does_not_parse_fails_the_check() {
        static BROKEN: Descriptor = Descriptor::new::<crate::testing::FakeScaler>(
            "fake",
            crate::kind::Example::new(&[], &["value"]),
        );
        static TABLE: &[&Descriptor] = &[&BROKEN];
        let registry = Registry::from_entries(TABLE).unwrap();
        let config = BROKEN.example.config("fake");
        assert!(registry.parse_only(&config).is_err());
    }

    #[test]
    fn unsorted_tables_are_refused() {
        static A: Descriptor = Descriptor::new::<crate::testing::FakeScaler>(
            "a",
            crate::kind::Example::new(&[("value", "1")], &["value"]),
        );
        static B: Descriptor = Descriptor::new::<crate::testing::FakeScaler>(
            "b",
            crate::kind::Example::new(&[("value", "1")], &["value"]),
        );
        static UNSORTED: &[&Descriptor] = &[&B, &A];
        let err = Registry::from_entries(UNSORTED).unwrap_err();
        assert_eq!(err.previous, "b");
        static DUPLICATE: &[&Descriptor] = &[&A, &A];
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
            .expect_err("error");
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

    #[cfg(feature = "redis")]
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
