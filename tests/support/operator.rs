//! One in-process keda-rs operator per test binary, on the shared control plane, with the
//! external-metrics APIService pointed at it (ExternalName Service → localhost). Tests can stop
//! and start it again to check what survives an operator restart.

use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use keda_operator::operator::{self, MetricsApiOptions, OperatorConfig, OperatorHandle};
use kube::api::{Api, Patch, PatchParams};

const SERVICE: &str = "keda-metrics-apiserver";
const NAMESPACE: &str = "keda";

enum Command {
    Start(mpsc::Sender<Result<(), String>>),
    Stop(mpsc::Sender<()>),
}

pub struct SharedOperator {
    commands: Mutex<mpsc::Sender<Command>>,
}

impl SharedOperator {
    /// Restarts the operator as a crash would: everything in memory is gone.
    pub fn restart(&self) {
        self.stop();
        self.start();
    }

    pub fn stop(&self) {
        let (tx, rx) = mpsc::channel();
        if let Ok(c) = self.commands.lock() {
            let _ = c.send(Command::Stop(tx));
        }
        let _ = rx.recv();
    }

    pub fn start(&self) {
        let (tx, rx) = mpsc::channel();
        if let Ok(c) = self.commands.lock() {
            let _ = c.send(Command::Start(tx));
        }
        if let Ok(Err(e)) = rx.recv() {
            panic!("the keda-rs operator could not start: {e}");
        }
    }
}

/// The operator for this test binary, started (with CRDs and APIService) on first use.
pub fn shared_operator() -> &'static SharedOperator {
    static OPERATOR: OnceLock<SharedOperator> = OnceLock::new();
    OPERATOR.get_or_init(|| {
        let kubeconfig = crate::shared().kubeconfig_path().to_path_buf();
        let (tx, rx) = mpsc::channel::<Command>();
        std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let mut running: Option<OperatorHandle> = None;
                while let Ok(command) = rx.recv() {
                    match command {
                        Command::Start(reply) => {
                            let outcome = start_operator(&kubeconfig).await;
                            let result = outcome.as_ref().map(|_| ()).map_err(|e| format!("{e:#}"));
                            running = outcome.ok();
                            let _ = reply.send(result);
                        }
                        Command::Stop(reply) => {
                            if let Some(handle) = running.take() {
                                handle.shutdown().await;
                            }
                            let _ = reply.send(());
                        }
                    }
                }
            });
        });
        let operator = SharedOperator {
            commands: Mutex::new(tx),
        };
        operator.start();
        operator
    })
}

/// The operator's `--filepath-auth-root-path` in tests: a directory private to this test process.
pub fn filepath_auth_root() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("keda-rs-filepath-auth-{}", std::process::id()))
}

/// The operator's cluster-object namespace (where ClusterTriggerAuthentications read Secrets).
pub const CLUSTER_OBJECT_NAMESPACE: &str = NAMESPACE;

async fn start_operator(kubeconfig: &std::path::Path) -> anyhow::Result<OperatorHandle> {
    let client = test_cluster::client_for(kubeconfig).await?;
    crate::ensure_crds(&client).await?;
    std::fs::create_dir_all(filepath_auth_root())?;
    let mut config = OperatorConfig::default();
    config.auth.filepath_root = Some(filepath_auth_root());
    config.auth.cluster_object_namespace = CLUSTER_OBJECT_NAMESPACE.into();
    let handle = operator::start(
        client.clone(),
        config,
        MetricsApiOptions {
            bind: "127.0.0.1:0".parse()?,
            service: SERVICE.into(),
            namespace: NAMESPACE.into(),
            tls: None,
            patch_apiservice: false,
            authenticate_aggregator: true,
        },
    )
    .await?;
    register_apiservice(&client, handle.metrics_addr.port(), &handle.metrics_ca_pem).await?;
    Ok(handle)
}

async fn register_apiservice(client: &kube::Client, port: u16, ca_pem: &str) -> anyhow::Result<()> {
    let apply = PatchParams::apply("keda-rs-tests").force();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .patch(NAMESPACE, &apply, &Patch::Apply(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})))
        .await?;
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    services
        .patch(
            SERVICE,
            &apply,
            &Patch::Apply(serde_json::json!({
                "apiVersion": "v1", "kind": "Service", "metadata": {"name": SERVICE, "namespace": NAMESPACE},
                "spec": {"type": "ExternalName", "externalName": "localhost"}
            })),
        )
        .await?;
    let apiservices: Api<APIService> = Api::all(client.clone());
    apiservices
        .patch(
            "v1beta1.external.metrics.k8s.io",
            &apply,
            &Patch::Apply(serde_json::json!({
                "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
                "metadata": {"name": "v1beta1.external.metrics.k8s.io"},
                "spec": {
                    "group": "external.metrics.k8s.io", "version": "v1beta1",
                    "groupPriorityMinimum": 100, "versionPriority": 100,
                    "service": {"name": SERVICE, "namespace": NAMESPACE, "port": port},
                    "caBundle": k8s_openapi::ByteString(ca_pem.as_bytes().to_vec()),
                }
            })),
        )
        .await?;
    crate::wait_for(std::time::Duration::from_secs(60), || async {
        let svc = apiservices
            .get("v1beta1.external.metrics.k8s.io")
            .await
            .ok()?;
        let available = svc
            .status?
            .conditions?
            .into_iter()
            .any(|c| c.type_ == "Available" && c.status == "True");
        available.then_some(())
    })
    .await
    .map_err(|e| anyhow::anyhow!("the external-metrics APIService never became Available: {e}"))?;
    Ok(())
}
