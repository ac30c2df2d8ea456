//! Shared backend clients. One client per backend identity (addresses, database, credentials, TLS),
//! handed out as [`Lease`]s. The pool keeps only weak references: when the last scaler holding a
//! lease is dropped or closed, the client and its connections go away.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::ops::Deref;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Instant;

use crate::clients::azure_servicebus::{ServiceBusClient, ServiceBusEndpoint};
use crate::clients::external::{ExternalClient, ExternalEndpoint};
use crate::clients::gcp::{MonitoringClient, ServiceAccountKey};
use crate::clients::http::{HttpClient, HttpIdentity};
use crate::clients::kafka::{KafkaClient, KafkaEndpoint};
use crate::clients::rabbitmq::{AmqpClient, AmqpEndpoint, HttpClientKey, ManagementClient};
use crate::clients::redis::{RedisClient, RedisEndpoint};
use crate::clients::sqs::{SqsClient, SqsEndpoint};

/// Every client pool of the process. Cheap to clone; clones share the pools.
#[derive(Clone, Default)]
pub struct Pools {
    inner: Arc<PoolsInner>,
}

#[derive(Default)]
struct PoolsInner {
    redis: KeyedPool<RedisEndpoint, RedisClient>,
    http: KeyedPool<HttpIdentity, HttpClient>,
    external: KeyedPool<ExternalEndpoint, ExternalClient>,
    azure_servicebus: KeyedPool<ServiceBusEndpoint, ServiceBusClient>,
    gcp_monitoring: KeyedPool<ServiceAccountKey, MonitoringClient>,
    gcp_monitoring_endpoint: OnceLock<String>,
    kafka: KeyedPool<KafkaEndpoint, KafkaClient>,
    rabbitmq_amqp: KeyedPool<AmqpEndpoint, AmqpClient>,
    rabbitmq_http: KeyedPool<HttpClientKey, ManagementClient>,
    sqs: KeyedPool<SqsEndpoint, SqsClient>,
}

impl Pools {
    /// Empty pools.
    pub fn new() -> Self {
        Self::default()
    }

    /// Redis / Redis Cluster / Redis Sentinel clients.
    pub fn redis(&self) -> &KeyedPool<RedisEndpoint, RedisClient> {
        &self.inner.redis
    }

    /// HTTP clients (prometheus, metrics-api), one per TLS/timeout identity.
    pub fn http(&self) -> &KeyedPool<HttpIdentity, HttpClient> {
        &self.inner.http
    }

    /// gRPC channels to `external` / `external-push` scalers.
    pub fn external(&self) -> &KeyedPool<ExternalEndpoint, ExternalClient> {
        &self.inner.external
    }

    /// Azure Service Bus namespaces (per endpoint and credential).
    pub fn azure_servicebus(&self) -> &KeyedPool<ServiceBusEndpoint, ServiceBusClient> {
        &self.inner.azure_servicebus
    }

    /// Cloud Monitoring clients (per service account; each caches its access token).
    pub fn gcp_monitoring(&self) -> &KeyedPool<ServiceAccountKey, MonitoringClient> {
        &self.inner.gcp_monitoring
    }

    /// The Cloud Monitoring base URL: set once (tests, private endpoints), else the environment's
    /// `KEDA_RS_GCP_MONITORING_ENDPOINT`, else `https://monitoring.googleapis.com`.
    pub fn gcp_monitoring_endpoint(&self) -> &str {
        self.inner.gcp_monitoring_endpoint.get_or_init(|| {
            std::env::var(crate::clients::gcp::MONITORING_ENDPOINT_ENV)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| crate::clients::gcp::MONITORING_ENDPOINT.to_owned())
        })
    }

    /// Overrides the Cloud Monitoring base URL; false when it was already fixed.
    pub fn set_gcp_monitoring_endpoint(&self, url: impl Into<String>) -> bool {
        self.inner.gcp_monitoring_endpoint.set(url.into()).is_ok()
    }

    /// Kafka clusters (one admin client per bootstrap servers + credentials).
    pub fn kafka(&self) -> &KeyedPool<KafkaEndpoint, KafkaClient> {
        &self.inner.kafka
    }

    /// RabbitMQ AMQP connections, one per broker URI (credentials and vhost included).
    pub fn rabbitmq_amqp(&self) -> &KeyedPool<AmqpEndpoint, AmqpClient> {
        &self.inner.rabbitmq_amqp
    }

    /// RabbitMQ management-API HTTP clients, one per TLS setting and timeout.
    pub fn rabbitmq_http(&self) -> &KeyedPool<HttpClientKey, ManagementClient> {
        &self.inner.rabbitmq_http
    }

    /// Amazon SQS clients, one per region, endpoint and credentials.
    pub fn sqs(&self) -> &KeyedPool<SqsEndpoint, SqsClient> {
        &self.inner.sqs
    }

    /// Connected clients still used by at least one scaler, over all backends.
    pub fn live_clients(&self) -> usize {
        self.inner.redis.live_clients()
            + self.inner.http.live_clients()
            + self.inner.external.live_clients()
            + self.inner.azure_servicebus.live_clients()
            + self.inner.gcp_monitoring.live_clients()
            + self.inner.kafka.live_clients()
            + self.inner.rabbitmq_amqp.live_clients()
            + self.inner.rabbitmq_http.live_clients()
            + self.inner.sqs.live_clients()
    }
}

impl fmt::Debug for Pools {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pools")
            .field("redis_live_clients", &self.inner.redis.live_clients())
            .field("http_live_clients", &self.inner.http.live_clients())
            .field("external_live_clients", &self.inner.external.live_clients())
            .field("kafka_live_clients", &self.inner.kafka.live_clients())
            .field(
                "rabbitmq_amqp_live_clients",
                &self.inner.rabbitmq_amqp.live_clients(),
            )
            .field(
                "rabbitmq_http_live_clients",
                &self.inner.rabbitmq_http.live_clients(),
            )
            .field("sqs_live_clients", &self.inner.sqs.live_clients())
            .finish()
    }
}

/// Clients of one backend kind, keyed by identity; `E` is the connect error.
pub struct KeyedPool<K, V, E = String> {
    slots: Mutex<HashMap<K, Weak<Slot<V, E>>>>,
}

struct Slot<V, E> {
    client: OnceLock<Arc<V>>,
    // Serializes connect attempts. Holds the last failure so callers that waited on an attempt
    // share its result instead of each trying again (a thousand scalers building against an
    // unreachable backend make one attempt, not a thousand in a row).
    connecting: tokio::sync::Mutex<Option<(Instant, E)>>,
}

impl<K, V, E> Default for KeyedPool<K, V, E> {
    fn default() -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone, V, E: Clone> KeyedPool<K, V, E> {
    /// The client for `key`, connecting with `connect` if no live one exists. A failed attempt
    /// fails every caller that was waiting for it; a later call tries again.
    pub async fn get_or_connect<F, Fut>(&self, key: &K, connect: F) -> Result<Lease<V, E>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            match slots.get(key).and_then(Weak::upgrade) {
                Some(slot) => slot,
                None => {
                    slots.retain(|_, weak| weak.strong_count() > 0);
                    let slot = Arc::new(Slot {
                        client: OnceLock::new(),
                        connecting: tokio::sync::Mutex::new(None),
                    });
                    slots.insert(key.clone(), Arc::downgrade(&slot));
                    slot
                }
            }
        };
        if let Some(client) = slot.client.get() {
            let client = Arc::clone(client);
            return Ok(Lease {
                _slot: slot,
                client,
            });
        }
        let waiting_since = Instant::now();
        let mut last_failure = slot.connecting.lock().await;
        if let Some(client) = slot.client.get() {
            let client = Arc::clone(client);
            drop(last_failure);
            return Ok(Lease {
                _slot: slot,
                client,
            });
        }
        if let Some((failed_at, error)) = last_failure.as_ref()
            && *failed_at >= waiting_since
        {
            return Err(error.clone());
        }
        match connect().await {
            Ok(value) => {
                let client = Arc::clone(slot.client.get_or_init(|| Arc::new(value)));
                *last_failure = None;
                drop(last_failure);
                Ok(Lease {
                    _slot: slot,
                    client,
                })
            }
            Err(error) => {
                *last_failure = Some((Instant::now(), error.clone()));
                Err(error)
            }
        }
    }

    /// Connected clients that at least one lease still holds.
    pub fn live_clients(&self) -> usize {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots
            .values()
            .filter_map(Weak::upgrade)
            .filter(|slot| slot.client.get().is_some())
            .count()
    }
}

/// A scaler's share of a pooled client; the client lives while any lease does.
pub struct Lease<V, E = String> {
    // Keeps the pool entry alive, so later users of the same identity find this client.
    _slot: Arc<Slot<V, E>>,
    client: Arc<V>,
}

impl<V, E> Clone for Lease<V, E> {
    fn clone(&self) -> Self {
        Self {
            _slot: Arc::clone(&self._slot),
            client: Arc::clone(&self.client),
        }
    }
}

impl<V, E> Deref for Lease<V, E> {
    type Target = V;

    fn deref(&self) -> &V {
        &self.client
    }
}

impl<V, E> Lease<V, E> {
    /// True when both leases share one client.
    pub fn same_client(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.client, &other.client)
    }
}

impl<V: fmt::Debug, E> fmt::Debug for Lease<V, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Lease").field(&self.client).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn one_client_per_key_dropped_when_unused() {
        let pool: KeyedPool<&str, usize, ()> = KeyedPool::default();
        let connects = AtomicUsize::new(0);
        let connect = || async { Ok::<_, ()>(connects.fetch_add(1, Ordering::SeqCst)) };
        let a = pool.get_or_connect(&"a", connect).await.unwrap();
        let a2 = pool.get_or_connect(&"a", connect).await.unwrap();
        assert!(a.same_client(&a2));
        assert_eq!(connects.load(Ordering::SeqCst), 1);
        let b = pool.get_or_connect(&"b", connect).await.unwrap();
        assert!(!a.same_client(&b));
        assert_eq!(pool.live_clients(), 2);
        drop((a, a2));
        assert_eq!(pool.live_clients(), 1);
        let a3 = pool.get_or_connect(&"a", connect).await.unwrap();
        assert_eq!(*a3, 2, "a fresh client after the old one was dropped");
        drop((a3, b));
        assert_eq!(pool.live_clients(), 0);
    }

    #[tokio::test]
    async fn failed_connect_leaves_nothing_and_is_retried() {
        let pool: KeyedPool<&str, u8, &str> = KeyedPool::default();
        let err = pool
            .get_or_connect(&"a", || async { Err::<u8, _>("down") })
            .await
            .unwrap_err();
        assert_eq!(err, "down");
        assert_eq!(pool.live_clients(), 0);
        let ok = pool
            .get_or_connect(&"a", || async { Ok::<u8, &str>(7) })
            .await
            .unwrap();
        assert_eq!(*ok, 7);
    }

    #[tokio::test]
    async fn concurrent_first_users_share_one_connect() {
        let pool: Arc<KeyedPool<u8, usize, ()>> = Arc::new(KeyedPool::default());
        let connects = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let pool = Arc::clone(&pool);
            let connects = Arc::clone(&connects);
            tasks.push(tokio::spawn(async move {
                pool.get_or_connect(&1, || async move {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    Ok::<_, ()>(connects.fetch_add(1, Ordering::SeqCst))
                })
                .await
                .unwrap()
            }));
        }
        let mut leases = Vec::new();
        for t in tasks {
            leases.push(t.await.unwrap());
        }
        assert_eq!(connects.load(Ordering::SeqCst), 1);
        assert_eq!(pool.live_clients(), 1);
    }

    #[tokio::test]
    async fn concurrent_waiters_share_one_failed_attempt() {
        let pool: Arc<KeyedPool<u8, usize, String>> = Arc::new(KeyedPool::default());
        let attempts = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let pool = Arc::clone(&pool);
            let attempts = Arc::clone(&attempts);
            tasks.push(tokio::spawn(async move {
                pool.get_or_connect(&1, || async move {
                    attempts.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    Err::<usize, _>("unreachable".to_owned())
                })
                .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap_err(), "unreachable");
        }
        // The first caller's attempt covers everyone who queued behind it; a few callers may have
        // arrived after it finished and made their own.
        assert!(attempts.load(Ordering::SeqCst) < 5, "{attempts:?}");
        // A later call tries again.
        let ok = pool
            .get_or_connect(&1, || async { Ok::<usize, String>(9) })
            .await
            .unwrap();
        assert_eq!(*ok, 9);
    }
}
