//! Starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler and KWOK on loopback,
//! waits until each is usable, and writes an admin kubeconfig.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use k8s_openapi::api::core::v1::{Node, ServiceAccount};
use kube::api::{Api, PostParams};

use crate::Error;
use crate::pki::{ClusterPki, PkiFiles};
use crate::process::Supervisor;

/// Kubernetes version the binaries are built at (see hack/build-control-plane.sh).
pub const KUBERNETES_VERSION: &str = "v1.37.2";
/// Annotation KWOK selects its fake nodes by.
pub const KWOK_NODE_ANNOTATION: (&str, &str) = ("kwok.x-k8s.io/node", "fake");

/// The controllers the tests, the demo and the benchmarks rely on.
const CONTROLLERS: &[&str] = &[
    "deployment-controller",
    "replicaset-controller",
    "statefulset-controller",
    "job-controller",
    "cronjob-controller",
    "ttl-after-finished-controller",
    "garbage-collector-controller",
    "horizontal-pod-autoscaler-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "pod-garbage-collector-controller",
    // Binds PersistentVolumeClaims of tutorials (seed 001) to the PVs tests create.
    "persistentvolume-binder-controller",
];

#[derive(Debug, Clone)]
pub struct Options {
    /// Where certificates, data and logs go; a fresh temporary folder when `None`
    /// (removed again on stop).
    pub dir: Option<PathBuf>,
    /// Fake nodes KWOK manages.
    pub nodes: usize,
    /// `--horizontal-pod-autoscaler-sync-period` of the controller-manager.
    pub hpa_sync_period: Duration,
    /// Folder holding the binaries; found or built by [`binaries_dir`] when `None`.
    pub bin_dir: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            dir: None,
            nodes: 2,
            hpa_sync_period: Duration::from_secs(2),
            bin_dir: None,
        }
    }
}

pub struct ControlPlane {
    dir: PathBuf,
    kubeconfig: PathBuf,
    server: String,
    supervisor: Supervisor,
    pki: ClusterPki,
}

impl ControlPlane {
    /// Blocking: must not be called from inside an async runtime (it runs its own for the
    /// few API calls it makes). Everything started so far is stopped again on error.
    pub fn start(options: &Options) -> Result<Self, Error> {
        let bin = match &options.bin_dir {
            Some(dir) => dir.clone(),
            None => binaries_dir()?,
        };
        let (dir, owned) = match &options.dir {
            Some(dir) => (dir.clone(), false),
            None => (unique_temp_dir()?, true),
        };
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let pki = ClusterPki::generate()?;
        let files = pki.write(&dir.join("pki"))?;
        let supervisor = Supervisor::new(&dir.join("logs"), owned.then(|| dir.clone()))?;
        let api_port = free_port()?;
        let server = format!("https://127.0.0.1:{api_port}");
        let kubeconfig = dir.join("kubeconfig");
        write_kubeconfig(&kubeconfig, &server, &pki)?;
        let mut plane = Self {
            dir,
            kubeconfig,
            server,
            supervisor,
            pki,
        };
        plane.boot(&bin, &files, api_port, options)?;
        Ok(plane)
    }

    fn boot(
        &mut self,
        bin: &Path,
        pki: &PkiFiles,
        api_port: u16,
        options: &Options,
    ) -> Result<(), Error> {
        let started = Instant::now();
        let etcd_port = free_port()?;
        let peer_port = free_port()?;
        let data = self.dir.join("etcd");
        self.supervisor.spawn(
            "etcd",
            &bin.join("etcd"),
            &strings(&[
                "--name=t0",
                &format!("--data-dir={}", data.display()),
                &format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"),
                &format!("--advertise-client-urls=http://127.0.0.1:{etcd_port}"),
                &format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
                &format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"),
                &format!("--initial-cluster=t0=http://127.0.0.1:{peer_port}"),
                "--unsafe-no-fsync",
                "--auto-compaction-retention=1",
                "--quota-backend-bytes=8589934592",
                "--log-level=warn",
            ]),
        )?;
        self.wait("etcd", Duration::from_secs(30), || etcd_healthy(etcd_port))?;

        let p = |f: &str| pki.path(f);
        self.supervisor.spawn(
            "kube-apiserver",
            &bin.join("kube-apiserver"),
            &strings(&[
                &format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                &format!("--secure-port={api_port}"),
                "--endpoint-reconciler-type=none",
                &format!("--tls-cert-file={}", p("apiserver.crt")),
                &format!("--tls-private-key-file={}", p("apiserver.key")),
                &format!("--client-ca-file={}", p("ca.crt")),
                "--authorization-mode=Node,RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                &format!("--service-account-key-file={}", p("sa.pub")),
                &format!("--service-account-signing-key-file={}", p("sa.key")),
                "--service-cluster-ip-range=10.0.0.0/24",
                &format!("--requestheader-client-ca-file={}", p("front-proxy-ca.crt")),
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                &format!("--proxy-client-cert-file={}", p("front-proxy-client.crt")),
                &format!("--proxy-client-key-file={}", p("front-proxy-client.key")),
                // Off, so an ExternalName Service can point an APIService at localhost.
                "--enable-aggregator-routing=false",
                // No node-lifecycle controller runs to lift the not-ready taint it would add.
                "--disable-admission-plugins=TaintNodesByCondition",
                "--allow-privileged=true",
                "--profiling=false",
                "--max-requests-inflight=2000",
                "--max-mutating-requests-inflight=1000",
                "--v=1",
            ]),
        )?;
        let kubeconfig = self.kubeconfig.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Other(format!("cannot build a runtime: {e}")))?;
        let client = runtime.block_on(crate::client_for(&kubeconfig))?;
        self.wait("kube-apiserver", Duration::from_secs(90), || {
            runtime.block_on(async {
                let request = http::Request::get("/readyz").body(Vec::new()).ok()?;
                client
                    .request_text(request)
                    .await
                    .ok()
                    .filter(|body| body.trim() == "ok")
            })
        })?;

        let kc = kubeconfig.display().to_string();
        let kcm_port = free_port()?;
        self.supervisor.spawn(
            "kube-controller-manager",
            &bin.join("kube-controller-manager"),
            &strings(&[
                &format!("--kubeconfig={kc}"),
                &format!("--authentication-kubeconfig={kc}"),
                &format!("--authorization-kubeconfig={kc}"),
                "--bind-address=127.0.0.1",
                &format!("--secure-port={kcm_port}"),
                "--leader-elect=false",
                &format!("--controllers={}", CONTROLLERS.join(",")),
                &format!("--service-account-private-key-file={}", p("sa.key")),
                &format!("--root-ca-file={}", p("ca.crt")),
                &format!(
                    "--horizontal-pod-autoscaler-sync-period={}ms",
                    options.hpa_sync_period.as_millis()
                ),
                "--concurrent-horizontal-pod-autoscaler-syncs=5",
                "--kube-api-qps=200",
                "--kube-api-burst=400",
                "--v=1",
            ]),
        )?;
        let sched_port = free_port()?;
        self.supervisor.spawn(
            "kube-scheduler",
            &bin.join("kube-scheduler"),
            &strings(&[
                &format!("--kubeconfig={kc}"),
                &format!("--authentication-kubeconfig={kc}"),
                &format!("--authorization-kubeconfig={kc}"),
                "--bind-address=127.0.0.1",
                &format!("--secure-port={sched_port}"),
                "--leader-elect=false",
                "--v=1",
            ]),
        )?;
        let kwok_port = free_port()?;
        self.supervisor.spawn(
            "kwok",
            &bin.join("kwok"),
            &strings(&[
                &format!("--kubeconfig={kc}"),
                &format!("--config={}", bin.join("stages.yaml").display()),
                "--manage-all-nodes=false",
                &format!(
                    "--manage-nodes-with-annotation-selector={}={}",
                    KWOK_NODE_ANNOTATION.0, KWOK_NODE_ANNOTATION.1
                ),
                "--node-lease-duration-seconds=40",
                &format!("--server-address=127.0.0.1:{kwok_port}"),
                "--node-ip=127.0.0.1",
            ]),
        )?;

        runtime.block_on(create_nodes(&client, options.nodes))?;
        let nodes: Api<Node> = Api::all(client.clone());
        self.wait("kwok (fake nodes Ready)", Duration::from_secs(60), || {
            runtime.block_on(async {
                let list = nodes.list(&Default::default()).await.ok()?;
                let ready = list.items.iter().filter(|n| node_ready(n)).count();
                (ready >= options.nodes).then_some(())
            })
        })?;
        // The ServiceAccount admission plugin rejects pods until a namespace's `default`
        // ServiceAccount exists; its appearance also proves the controller-manager runs.
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
        self.wait("kube-controller-manager", Duration::from_secs(60), || {
            runtime.block_on(async { accounts.get_opt("default").await.ok().flatten() })
        })?;
        tracing::info!(elapsed = ?started.elapsed(), server = %self.server, "control plane ready");
        Ok(())
    }

    /// Polls `probe` until it yields a value, failing early when a process died.
    fn wait<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut probe: impl FnMut() -> Option<T>,
    ) -> Result<T, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = probe() {
                return Ok(v);
            }
            self.supervisor.check_alive()?;
            if Instant::now() > deadline {
                return Err(Error::Timeout {
                    what: what.to_string(),
                    timeout,
                    logs: self.dir.join("logs"),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }
    pub fn server(&self) -> &str {
        &self.server
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn pki(&self) -> &ClusterPki {
        &self.pki
    }
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.supervisor.pids()
    }
    /// Fails if a component has exited.
    pub fn check_alive(&mut self) -> Result<(), Error> {
        self.supervisor.check_alive()
    }

    /// Stops every process (the temporary folder, if any, goes with them).
    pub fn stop(mut self) {
        self.supervisor.stop(Duration::from_secs(10));
    }
}

fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn create_nodes(client: &kube::Client, count: usize) -> Result<(), Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    for i in 0..count {
        let node: Node = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": format!("kwok-node-{i}"),
                "annotations": {KWOK_NODE_ANNOTATION.0: KWOK_NODE_ANNOTATION.1, "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {"type": "kwok", "kubernetes.io/hostname": format!("kwok-node-{i}"), "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"},
            },
            "status": {
                "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "250"},
                "capacity": {"cpu": "32", "memory": "256Gi", "pods": "250"},
            },
        }))
        .map_err(|e| Error::Other(format!("node manifest: {e}")))?;
        match nodes.create(&PostParams::default(), &node).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(Error::Kube(e)),
        }
    }
    Ok(())
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_string()).collect()
}

fn free_port() -> Result<u16, Error> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| Error::Other(format!("no free port: {e}")))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::Other(format!("no free port: {e}")))
}

fn etcd_healthy(port: u16) -> Option<()> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    body.contains("\"health\":\"true\"").then_some(())
}

fn unique_temp_dir() -> Result<PathBuf, Error> {
    let dir = std::env::temp_dir().join(format!(
        "keda-rs-cluster-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    Ok(dir)
}

fn write_kubeconfig(path: &Path, server: &str, pki: &ClusterPki) -> Result<(), Error> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: keda-rs-test\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\n\
         users:\n- name: test-admin\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\n\
         contexts:\n- name: keda-rs-test\n  context:\n    cluster: keda-rs-test\n    user: test-admin\n    namespace: default\n\
         current-context: keda-rs-test\n",
        ca = b64(&pki.ca.cert_pem),
        cert = b64(&pki.admin.cert_pem),
        key = b64(&pki.admin.key_pem),
    );
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// The folder with the control-plane binaries: `$KEDA_RS_CONTROL_PLANE_BIN` if set, otherwise
/// whatever `hack/build-control-plane.sh` prints (it builds once, then answers from its cache).
pub fn binaries_dir() -> Result<PathBuf, Error> {
    if let Some(dir) = std::env::var_os("KEDA_RS_CONTROL_PLANE_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../hack/build-control-plane.sh");
    let output = std::process::Command::new("bash")
        .arg(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| Error::Spawn {
            name: "build-control-plane".into(),
            program: script.clone(),
            source: e,
        })?;
    if !output.status.success() {
        return Err(Error::Build(format!(
            "{} failed with {}",
            script.display(),
            output.status
        )));
    }
    let dir = String::from_utf8_lossy(&output.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string();
    Ok(PathBuf::from(dir))
}
