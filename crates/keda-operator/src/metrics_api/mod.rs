//! The `external.metrics.k8s.io/v1beta1` API server, served inside the operator process.
//!
//! KEDA runs a separate adapter that forwards each HPA read to the operator over gRPC; we keep
//! one hop: the HPA's request (through the apiserver's aggregation layer) lands here and is
//! answered from the operator's metric cache via [`MetricsProvider`]. This module owns the
//! HTTPS listener (rustls, HTTP/1.1 and HTTP/2), request-header authentication of the
//! aggregator's front-proxy identity, routing, discovery documents, and the wire format of
//! values and errors (Kubernetes `Status` objects). It never blocks on anything but the
//! provider call.

mod identity;
mod quantity;
mod responses;
mod routes;
mod selector;
mod server;
mod tls;

use std::net::SocketAddr;
use std::time::SystemTime;

use futures::future::BoxFuture;

pub use identity::{ClientAuthPolicy, Denied, PeerIdentity, authorize, common_name};
pub use quantity::milli_quantity;
pub use selector::{label_selector_from_query, scaled_object_name};
pub use server::{BoundServer, bind, serve};
pub use tls::{RequestHeaderAuth, TlsMaterial, self_signed};

/// The API group served here.
pub const GROUP: &str = "external.metrics.k8s.io";
/// The only version served.
pub const VERSION: &str = "v1beta1";
/// `GROUP/VERSION`.
pub const GROUP_VERSION: &str = "external.metrics.k8s.io/v1beta1";

/// Where the operator's metric values come from (its metric cache).
pub trait MetricsProvider: Send + Sync + 'static {
    /// The current values of `metric_name` for ScaledObject `scaled_object` in `namespace`.
    ///
    /// `metric_name` is passed exactly as requested (URL-decoded): KEDA matches metric names
    /// case-insensitively, so the provider must compare with `eq_ignore_ascii_case` (or
    /// lowercase both sides). Return [`MetricsError::NotFound`] when nothing matches.
    fn get(
        &self,
        namespace: &str,
        scaled_object: &str,
        metric_name: &str,
    ) -> BoxFuture<'_, Result<Vec<ExternalMetricSample>, MetricsError>>;
}

/// One value returned to the HPA.
#[derive(Clone, Debug, PartialEq)]
pub struct ExternalMetricSample {
    /// The metric name as the scaler reports it.
    pub metric_name: String,
    /// The raw value (not divided by replicas); rendered with milli precision, negative → 0.
    pub value: f64,
    /// When the value was read; sent truncated to seconds.
    pub timestamp: SystemTime,
}

/// Why the provider could not answer; decides the HTTP status the HPA sees.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    /// No ScaledObject, or no metric of that name on it (→ 404).
    #[error("no matching metrics found")]
    NotFound,
    /// A scaler failed and no fallback applies (→ 500 with this message).
    #[error("{0}")]
    Backend(String),
}

/// Errors starting or running the server (never per request: those become `Status` bodies).
#[derive(Debug, thiserror::Error)]
pub enum MetricsApiError {
    /// Binding or accepting on the listen address failed.
    #[error("metrics API listener on {addr}: {source}")]
    Listen {
        /// The address we tried.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A PEM block (serving cert, key or client CA) could not be read.
    #[error("reading {what}: {message}")]
    Pem {
        /// Which input: "serving certificate", "serving key", "client CA".
        what: &'static str,
        /// What was wrong with it.
        message: String,
    },
    /// rustls refused the configuration (e.g. key does not match the certificate).
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// Generating a self-signed certificate failed.
    #[error("generating certificates: {0}")]
    Certificate(#[from] rcgen::Error),
    /// A Service or namespace name that is not a DNS label (for [`self_signed`]).
    #[error("{0:?} is not a valid Service or namespace name")]
    InvalidName(String),
    /// The `extension-apiserver-authentication` ConfigMap could not be read or parsed.
    #[error("request-header authentication config: {0}")]
    RequestHeaderConfig(String),
}

/// How to serve the API.
#[derive(Clone, Debug)]
pub struct MetricsServerConfig {
    /// Listen address (port 0 picks a free port; see [`BoundServer::local_addr`]).
    pub bind: SocketAddr,
    /// Serving certificate (chain) and key. For the aggregator the certificate needs the DNS
    /// SAN `<service>.<namespace>.svc` and must chain to the APIService's `caBundle`.
    pub tls: TlsMaterial,
    /// The request-header client CA (`requestheader-client-ca-file` of ConfigMap
    /// `kube-system/extension-apiserver-authentication`). When set, metric reads require a
    /// client certificate from it plus an `X-Remote-User` header; discovery and health stay
    /// open. When `None`, nothing is authenticated (local development only).
    pub client_ca_pem: Option<String>,
    /// `requestheader-allowed-names`: CNs accepted from that CA; empty accepts any CN.
    pub allowed_names: Vec<String>,
}
