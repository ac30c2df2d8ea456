//! Test double of HashiCorp Vault's HTTP API (no Vault-compatible server can be built from the
//! module proxy here: OpenBao is not served, and Vault's module uses replace directives that
//! `go install` refuses). It speaks the documented wire format for what keda-rs uses: token
//! checks (`X-Vault-Token`), `X-Vault-Namespace`, Kubernetes auth login (the JWT is verified with
//! a real TokenReview against the test control plane), kv v1 and kv v2 reads, and PKI issue
//! (certificates really issued by a CA generated here).

// A test double: a poisoned lock or a bad canned answer should fail the test loudly.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub struct VaultDouble {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for VaultDouble {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct State {
    client: kube::Client,
    root_token: String,
    /// Vault namespace every request must name (Vault Enterprise namespaces), if any.
    namespace: Option<String>,
    tokens: Mutex<BTreeSet<String>>,
    /// kv v1 under `kv/`, kv v2 under `secret/` (path without the mount → data).
    kv1: Mutex<BTreeMap<String, Value>>,
    kv2: Mutex<BTreeMap<String, Value>>,
    /// Kubernetes auth: role → allowed `system:serviceaccount:<ns>:<name>` users.
    roles: Mutex<BTreeMap<String, Vec<String>>>,
    ca: (rcgen::Certificate, rcgen::KeyPair),
    pub requests: Mutex<Vec<String>>,
}

impl VaultDouble {
    pub async fn start(client: kube::Client, root_token: &str, namespace: Option<&str>) -> Self {
        let ca_key = rcgen::KeyPair::generate().expect("ca key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "vault-double-ca");
        let ca_cert = params.self_signed(&ca_key).expect("ca cert");
        let state = Arc::new(State {
            client,
            root_token: root_token.to_string(),
            namespace: namespace.map(str::to_string),
            tokens: Mutex::new(BTreeSet::new()),
            kv1: Mutex::new(BTreeMap::new()),
            kv2: Mutex::new(BTreeMap::new()),
            roles: Mutex::new(BTreeMap::new()),
            ca: (ca_cert, ca_key),
            requests: Mutex::new(Vec::new()),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let served = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = served.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, std::convert::Infallible>(handle(&state, req).await) }
                    });
                    let _ = Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, state, task }
    }

    pub fn address(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn put_kv1(&self, path: &str, data: Value) {
        self.state
            .kv1
            .lock()
            .unwrap()
            .insert(path.to_string(), data);
    }

    pub fn put_kv2(&self, path: &str, data: Value) {
        self.state
            .kv2
            .lock()
            .unwrap()
            .insert(path.to_string(), data);
    }

    /// Lets ServiceAccount `namespace/name` log in with `role`.
    pub fn allow_role(&self, role: &str, namespace: &str, name: &str) {
        self.state
            .roles
            .lock()
            .unwrap()
            .entry(role.to_string())
            .or_default()
            .push(format!("system:serviceaccount:{namespace}:{name}"));
    }

    /// The PEM of the PKI CA, to verify issued certificates.
    pub fn ca_pem(&self) -> String {
        self.state.ca.0.pem()
    }

    /// `METHOD /path` of every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.state.requests.lock().unwrap().clone()
    }
}

fn reply(status: u16, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn denied() -> Response<Full<Bytes>> {
    reply(403, json!({"errors": ["permission denied"]}))
}

async fn handle(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    state
        .requests
        .lock()
        .unwrap()
        .push(format!("{method} {path}"));
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    if state.namespace.is_some() && header("x-vault-namespace") != state.namespace {
        return reply(
            404,
            json!({"errors": ["no handler for route (wrong namespace)"]}),
        );
    }
    let token = header("x-vault-token");
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(rest) = path.strip_prefix("/v1/") else {
        return reply(404, json!({"errors": []}));
    };
    if let Some(mount_login) = rest.strip_prefix("auth/") {
        let Some(mount) = mount_login.strip_suffix("/login") else {
            return reply(404, json!({"errors": []}));
        };
        return kubernetes_login(state, mount, &body).await;
    }
    let authorized = token
        .as_deref()
        .is_some_and(|t| t == state.root_token || state.tokens.lock().unwrap().contains(t));
    if !authorized {
        return denied();
    }
    if let Some(p) = rest.strip_prefix("kv/") {
        return match state.kv1.lock().unwrap().get(p) {
            Some(data) => reply(200, json!({"data": data, "lease_duration": 2764800})),
            None => reply(404, json!({"errors": []})),
        };
    }
    if let Some(p) = rest.strip_prefix("secret/data/") {
        return match state.kv2.lock().unwrap().get(p) {
            Some(data) => reply(
                200,
                json!({"data": {"data": data, "metadata": {"version": 1}}}),
            ),
            None => reply(404, json!({"errors": []})),
        };
    }
    if let Some(role) = rest.strip_prefix("pki/issue/") {
        if method != hyper::Method::POST && method != hyper::Method::PUT {
            return reply(405, json!({"errors": ["unsupported operation"]}));
        }
        return issue(state, role, &body);
    }
    reply(
        404,
        json!({"errors": [format!("no handler for route {rest:?}")]}),
    )
}

async fn kubernetes_login(state: &State, _mount: &str, body: &Value) -> Response<Full<Bytes>> {
    let (Some(role), Some(jwt)) = (
        body.get("role").and_then(Value::as_str),
        body.get("jwt").and_then(Value::as_str),
    ) else {
        return reply(400, json!({"errors": ["missing role or jwt"]}));
    };
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: jwt.to_string(),
            ..TokenReviewSpec::default()
        },
        ..TokenReview::default()
    };
    let api: Api<TokenReview> = Api::all(state.client.clone());
    let Ok(answer) = api.create(&PostParams::default(), &review).await else {
        return reply(500, json!({"errors": ["token review failed"]}));
    };
    let status = answer.status.unwrap_or_default();
    let user = status.user.and_then(|u| u.username).unwrap_or_default();
    let allowed = status.authenticated == Some(true)
        && state
            .roles
            .lock()
            .unwrap()
            .get(role)
            .is_some_and(|users| users.contains(&user));
    if !allowed {
        return denied();
    }
    let token = format!("s.{}", uuid_like());
    state.tokens.lock().unwrap().insert(token.clone());
    reply(
        200,
        json!({"auth": {"client_token": token, "policies": ["default"], "lease_duration": 3600, "renewable": true}}),
    )
}

fn issue(state: &State, _role: &str, body: &Value) -> Response<Full<Bytes>> {
    let Some(cn) = body.get("common_name").and_then(Value::as_str) else {
        return reply(400, json!({"errors": ["missing common_name in request"]}));
    };
    let mut names = vec![cn.to_string()];
    if let Some(alt) = body.get("alt_names").and_then(Value::as_str) {
        names.extend(
            alt.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
        );
    }
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(names).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let issuer = rcgen::Issuer::from_ca_cert_der(state.ca.0.der(), &state.ca.1).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    reply(
        200,
        json!({"data": {
            "certificate": cert.pem(),
            "private_key": key.serialize_pem(),
            "private_key_type": "ec",
            "issuing_ca": state.ca.0.pem(),
            "ca_chain": [state.ca.0.pem()],
            "serial_number": "01"
        }}),
    )
}

fn uuid_like() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    format!("{:016x}", h.finish())
}
