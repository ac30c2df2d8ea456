//! One control plane per test run, shared by every test through a namespace each.
//!
//! If `KEDA_RS_TEST_KUBECONFIG` is set (the README's test command starts one cluster for the
//! whole run and sets it), tests use that cluster. Otherwise the first test in a test binary
//! starts a private control plane that lives until the binary exits (the process watchdog
//! removes it then).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, PostParams};

use crate::{ControlPlane, Error, Options};

pub const KUBECONFIG_ENV: &str = "KEDA_RS_TEST_KUBECONFIG";

pub struct SharedCluster {
    kubeconfig: PathBuf,
    /// Held so the processes live as long as the test binary.
    _owned: Option<Mutex<ControlPlane>>,
}

/// The shared cluster, started on first use. Panics with the reason (and where the logs are)
/// when it cannot start: every test that needs it would fail anyway.
pub fn shared() -> &'static SharedCluster {
    static CLUSTER: OnceLock<SharedCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| match start_or_attach() {
        Ok(cluster) => cluster,
        Err(e) => panic!(
            "the test control plane could not start: {e}\n\
             (binaries come from hack/build-control-plane.sh; set {KUBECONFIG_ENV} to use a running cluster)"
        ),
    })
}

fn start_or_attach() -> Result<SharedCluster, Error> {
    if let Some(path) = std::env::var_os(KUBECONFIG_ENV) {
        return Ok(SharedCluster {
            kubeconfig: PathBuf::from(path),
            _owned: None,
        });
    }
    // Started on a thread of its own: callers are usually inside a tokio test runtime, and the
    // control plane runs a short-lived runtime of its own while it boots.
    let plane = std::thread::spawn(|| ControlPlane::start(&Options::default()))
        .join()
        .map_err(|_| Error::Other("control-plane start panicked".into()))??;
    Ok(SharedCluster {
        kubeconfig: plane.kubeconfig_path().to_path_buf(),
        _owned: Some(Mutex::new(plane)),
    })
}

impl SharedCluster {
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// A new client; create one per test (clients are bound to the runtime that made them).
    pub async fn client(&self) -> kube::Client {
        match crate::client_for(&self.kubeconfig).await {
            Ok(c) => c,
            Err(e) => panic!("cannot build a client for the test cluster: {e}"),
        }
    }

    /// A fresh namespace named after the test, ready for pods (its `default` ServiceAccount exists).
    pub async fn namespace(&self, test: &str) -> TestNamespace {
        let client = self.client().await;
        let slug: String = test
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(40)
            .collect();
        let name = format!(
            "t-{}-{:06x}",
            slug.trim_matches('-'),
            rand::random::<u32>() & 0xff_ffff
        );
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"keda-rs.test/namespace": "true"}}
        }))
        .unwrap_or_default();
        if let Err(e) = namespaces.create(&PostParams::default(), &ns).await {
            panic!("cannot create test namespace {name}: {e}");
        }
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &name);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        while accounts.get_opt("default").await.ok().flatten().is_none() {
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "namespace {name}: the default ServiceAccount never appeared (is the controller-manager running?)"
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        TestNamespace { client, name }
    }
}

/// A namespace owned by one test, with a client for the cluster.
pub struct TestNamespace {
    pub client: kube::Client,
    pub name: String,
}

impl TestNamespace {
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Deletes the namespace (Kubernetes finishes it in the background).
    pub async fn delete(self) {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let _ = namespaces.delete(&self.name, &Default::default()).await;
    }
}
