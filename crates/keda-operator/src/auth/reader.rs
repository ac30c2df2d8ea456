//! Cached reads of the objects authentication refers to (Secrets, ConfigMaps, TriggerAuthentications,
//! ServiceAccounts), by name only: no list or watch, so RBAC can restrict the operator to the
//! names triggers reference. Entries live for a short TTL so a thousand ScaledObjects re-checking
//! the same Secret in one polling interval cause a handful of GETs, while a rotated Secret is seen
//! within the TTL.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use kube::Resource;
use kube::api::Api;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

type Key = (&'static str, String, String);
type Entry = (Instant, Option<Arc<dyn Any + Send + Sync>>);

pub struct ObjectReader {
    client: kube::Client,
    ttl: Duration,
    entries: Mutex<HashMap<Key, Entry>>,
}

impl ObjectReader {
    pub fn new(client: kube::Client, ttl: Duration) -> Self {
        Self {
            client,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    fn cached<K: Send + Sync + 'static>(&self, key: &Key) -> Option<Option<Arc<K>>> {
        let entries = self.entries.lock().ok()?;
        let (at, value) = entries.get(key)?;
        if at.elapsed() > self.ttl {
            return None;
        }
        Some(match value {
            Some(v) => Some(v.clone().downcast::<K>().ok()?),
            None => None,
        })
    }

    fn store<K: Send + Sync + 'static>(&self, key: Key, value: Option<Arc<K>>) {
        if let Ok(mut entries) = self.entries.lock() {
            // Expired entries go on the way in; the map never holds more than the live references.
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() <= ttl);
            entries.insert(
                key,
                (
                    Instant::now(),
                    value.map(|v| v as Arc<dyn Any + Send + Sync>),
                ),
            );
        }
    }

    /// Drops everything cached (after a change is known, e.g. a TriggerAuthentication event).
    pub fn invalidate(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }

    /// A namespaced object, `None` when it does not exist.
    pub async fn namespaced<K>(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<K>>, kube::Error>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + DeserializeOwned
            + Clone
            + Debug
            + Send
            + Sync
            + 'static,
    {
        let key = (
            std::any::type_name::<K>(),
            namespace.to_string(),
            name.to_string(),
        );
        if let Some(hit) = self.cached::<K>(&key) {
            return Ok(hit);
        }
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        let value = api.get_opt(name).await?.map(Arc::new);
        self.store(key, value.clone());
        Ok(value)
    }

    /// A cluster-scoped object, `None` when it does not exist.
    pub async fn cluster<K>(&self, name: &str) -> Result<Option<Arc<K>>, kube::Error>
    where
        K: Resource<DynamicType = (), Scope = ClusterResourceScope>
            + DeserializeOwned
            + Clone
            + Debug
            + Send
            + Sync
            + 'static,
    {
        let key = (std::any::type_name::<K>(), String::new(), name.to_string());
        if let Some(hit) = self.cached::<K>(&key) {
            return Ok(hit);
        }
        let api: Api<K> = Api::all(self.client.clone());
        let value = api.get_opt(name).await?.map(Arc::new);
        self.store(key, value.clone());
        Ok(value)
    }

    /// A Secret's data as text (values that are not UTF-8 are converted lossily, as Go's string()
    /// would keep their bytes; scalers need text).
    pub async fn secret_data(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, kube::Error> {
        Ok(self.namespaced::<Secret>(namespace, name).await?.map(|s| {
            let mut out: BTreeMap<String, String> = s
                .data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
                .collect();
            for (k, v) in s.string_data.iter().flatten() {
                out.entry(k.clone()).or_insert_with(|| v.clone());
            }
            out
        }))
    }

    /// A ConfigMap's `data`.
    pub async fn config_map_data(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, kube::Error> {
        Ok(self
            .namespaced::<ConfigMap>(namespace, name)
            .await?
            .map(|c| c.data.clone().unwrap_or_default()))
    }
}
