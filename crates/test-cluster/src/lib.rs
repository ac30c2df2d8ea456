//! A real Kubernetes control plane on loopback for tests, benchmarks and the demo: etcd,
//! kube-apiserver, kube-controller-manager, kube-scheduler and KWOK (fake nodes whose pods
//! become Running/Ready and whose Job pods complete), built from source by
//! `hack/build-control-plane.sh` and cached outside the repository.

// Test tooling, not product: it reads its own environment (cache paths, versions) and times
// processes by the wall clock.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

pub mod control_plane;
pub mod harness;
pub mod http_peer;
pub mod kafka;
pub mod moto;
pub mod pki;
pub mod process;
pub mod prometheus;
pub mod rabbitmq;
pub mod redis;

use std::path::{Path, PathBuf};

pub use control_plane::{ControlPlane, Options};
pub use harness::{SharedCluster, TestNamespace, shared};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start {name} ({program}): {source}")]
    Spawn {
        name: String,
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{name} exited ({status}); last lines of {log}:\n{log_tail}")]
    Exited {
        name: String,
        status: String,
        log: PathBuf,
        log_tail: String,
    },
    #[error("{what} was not ready within {timeout:?}; logs in {logs}")]
    Timeout {
        what: String,
        timeout: std::time::Duration,
        logs: PathBuf,
    },
    #[error("building the control-plane binaries failed: {0}")]
    Build(String),
    #[error("certificate generation failed: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A client for the cluster a kubeconfig file points at.
pub async fn client_for(kubeconfig: &Path) -> Result<kube::Client, Error> {
    let config = kube::config::Kubeconfig::read_from(kubeconfig)
        .map_err(|e| Error::Kubeconfig(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(config, &Default::default())
        .await
        .map_err(|e| Error::Kubeconfig(e.to_string()))?;
    Ok(kube::Client::try_from(config)?)
}
