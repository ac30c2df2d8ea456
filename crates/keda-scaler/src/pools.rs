//! Shared backend clients. One client per backend identity (addresses, database, credentials, TLS),
//! handed out as [`Lease`]s. The pool keeps only weak references: when the last scaler holding a
//! lease is dropped or closed, the client and its connections go away.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::ops::Deref;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use tokio::time::Instant;

use crate::error::BackendError;
use crate::settings::ScalerSettings;

/// A client that scalers share through [`Pools`]: its key says which connections are
/// interchangeable (addresses, credentials, TLS). Implementing it is all a new backend does to get
/// a pool; no shared file changes.
pub trait PooledClient: Send + Sync + 'static {
    /// What makes two clients interchangeable.
    type Key: Clone + Eq + Hash + Send + Sync + 'static;
    /// The backend's name, for `Debug` and telemetry (`redis`, `kafka`, …).
    const KIND: &'static str;
}

/// Every client pool of the process, one per client type, plus the settings clients are built
/// with. Cheap to clone; clones share the pools.
#[derive(Clone, Default)]
pub struct Pools {
    inner: Arc<PoolsInner>,
}

#[derive(Default)]
struct PoolsInner {
    settings: ScalerSettings,
    by_type: Mutex<HashMap<TypeId, Arc<dyn ErasedPool>>>,
}

/// A pool whose client type is known only to the code that made it.
trait ErasedPool: Send + Sync {
    fn kind(&self) -> &'static str;
    fn live_clients(&self) -> usize;
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

struct TypedPool<C: PooledClient>(KeyedPool<C::Key, C>);

impl<C: PooledClient> ErasedPool for TypedPool<C> {
    fn kind(&self) -> &'static str {
        C::KIND
    }

    fn live_clients(&self) -> usize {
        self.0.live_clients()
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

impl Pools {
    /// Empty pools with default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Empty pools whose clients are built with `settings`.
    pub fn with_settings(settings: ScalerSettings) -> Self {
        Self {
            inner: Arc::new(PoolsInner {
                settings,
                by_type: Mutex::default(),
            }),
        }
    }

    /// The settings clients and scalers are built with.
    pub fn settings(&self) -> &ScalerSettings {
        &self.inner.settings
    }

    fn pool<C: PooledClient>(&self) -> Arc<TypedPool<C>> {
        let erased = {
            let mut by_type = self
                .inner
                .by_type
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            Arc::clone(by_type.entry(TypeId::of::<C>()).or_insert_with(|| {
                Arc::new(TypedPool::<C>(KeyedPool::default())) as Arc<dyn ErasedPool>
            }))
        };
        match erased.as_any().downcast::<TypedPool<C>>() {
            Ok(pool) => pool,
            // Entries are keyed by the TypeId of the very type they hold, so this cannot differ;
            // a fresh, unshared pool is still a correct (if wasteful) answer.
            Err(_) => Arc::new(TypedPool(KeyedPool::default())),
        }
    }

    /// The client of type `C` for `key`, connecting with `connect` if no live one exists. A failed
    /// attempt fails every caller that was waiting for it; a later call tries again.
    pub async fn lease<C, F, Fut>(&self, key: &C::Key, connect: F) -> Result<Lease<C>, BackendError>
    where
        C: PooledClient,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<C, BackendError>>,
    {
        self.pool::<C>().0.get_or_connect(key, connect).await
    }

    /// Connected clients of type `C` still used by at least one scaler.
    pub fn live_clients_of<C: PooledClient>(&self) -> usize {
        self.pool::<C>().0.live_clients()
    }

    /// Connected clients still used by at least one scaler, over all backends.
    pub fn live_clients(&self) -> usize {
        self.live_clients_by_kind().values().sum()
    }

    /// Connected clients per backend kind.
    pub fn live_clients_by_kind(&self) -> BTreeMap<&'static str, usize> {
        let pools: Vec<_> = self
            .inner
            .by_type
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(Arc::clone)
            .collect();
        let mut counts = BTreeMap::new();
        for pool in pools {
            *counts.entry(pool.kind()).or_insert(0) += pool.live_clients();
        }
        counts
    }
}

impl fmt::Debug for Pools {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pools")
            .field("live_clients", &self.live_clients_by_kind())
            .field("settings", &self.inner.settings)
            .finish()
    }
}

/// Clients of one backend kind, keyed by identity; `E` is the connect error.
pub struct KeyedPool<K, V, E = BackendError> {
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
pub struct Lease<V, E = BackendError> {
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

    struct Alpha(u8);
    impl PooledClient for Alpha {
        type Key = &'static str;
        const KIND: &'static str = "alpha";
    }
    #[derive(Debug)]
    struct Beta;
    impl PooledClient for Beta {
        type Key = u16;
        const KIND: &'static str = "beta";
    }

    #[tokio::test]
    async fn pools_are_kept_per_client_type() {
        let pools = Pools::new();
        let a = pools
            .lease::<Alpha, _, _>(&"x", || async { Ok(Alpha(1)) })
            .await
            .unwrap();
        let a2 = pools
            .lease::<Alpha, _, _>(&"x", || async { Ok(Alpha(2)) })
            .await
            .unwrap();
        assert!(a.same_client(&a2), "same type and key share one client");
        assert_eq!(a2.0, 1);
        let b = pools
            .lease::<Beta, _, _>(&7, || async { Ok(Beta) })
            .await
            .unwrap();
        assert_eq!(pools.live_clients_of::<Alpha>(), 1);
        assert_eq!(pools.live_clients(), 2);
        assert_eq!(
            pools.live_clients_by_kind(),
            BTreeMap::from([("alpha", 1), ("beta", 1)])
        );
        let clone = pools.clone();
        drop((a, a2));
        assert_eq!(
            clone.live_clients_of::<Alpha>(),
            0,
            "clones share the pools"
        );
        let err = pools
            .lease::<Beta, _, _>(&8, || async { Err(BackendError::connect("refused")) })
            .await
            .unwrap_err();
        assert_eq!(err.kind, crate::error::BackendKind::Connect);
        drop(b);
        assert_eq!(pools.live_clients(), 0);
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
