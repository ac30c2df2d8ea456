//! The external-metrics API over real HTTPS on loopback: a self-signed serving certificate, a
//! test front-proxy CA for client certificates (as the aggregator presents), HTTP/2 and
//! HTTP/1.1 clients, and a fake provider backed by a HashMap.
// Measures by the wall clock: the cluster and servers do not run on a paused tokio clock.
#![allow(clippy::disallowed_types)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use futures::future::BoxFuture;
use hyper_util::rt::{TokioExecutor, TokioIo};
use keda_operator::metrics_api::{
    self, ExternalMetricSample, MetricsError, MetricsProvider, MetricsServerConfig,
};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const SERVICE: &str = "keda-operator-metrics-apiserver";
const NAMESPACE: &str = "keda";
/// The name the aggregator puts in SNI and verifies.
const SERVER_NAME: &str = "keda-operator-metrics-apiserver.keda.svc";
const FRONT_PROXY_CN: &str = "front-proxy-client";
const METRICS: &str = "/apis/external.metrics.k8s.io/v1beta1/namespaces";
const SELECTOR: &str = "labelSelector=scaledobject.keda.sh%2Fname%3Dmy-so";

/// Values keyed by (namespace, scaled object, lowercased metric name): the operator's cache
/// matches names case-insensitively, and so does this fake.
struct MapProvider(HashMap<(String, String, String), f64>);

impl MetricsProvider for MapProvider {
    fn get(
        &self,
        namespace: &str,
        scaled_object: &str,
        metric_name: &str,
    ) -> BoxFuture<'_, Result<Vec<ExternalMetricSample>, MetricsError>> {
        let metric_name = metric_name.to_ascii_lowercase();
        let key = (namespace.to_owned(), scaled_object.to_owned(), metric_name);
        let result = match self.0.get(&key) {
            Some(&value) => Ok(vec![ExternalMetricSample {
                metric_name: key.2,
                value,
                timestamp: SystemTime::now(),
            }]),
            None => Err(MetricsError::NotFound),
        };
        Box::pin(async move { result })
    }
}

/// A CA and certificates it issues, for the front proxy's client identity.
struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl TestCa {
    fn new(cn: &str) -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("CA cert");
        Self {
            issuer: Issuer::new(params, key),
            cert_pem: cert.pem(),
        }
    }

    /// A client certificate (PEM cert, PEM key) with subject CN `cn`.
    fn client(&self, cn: &str) -> (String, String) {
        let key = KeyPair::generate().expect("client key");
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params.signed_by(&key, &self.issuer).expect("client cert");
        (cert.pem(), key.serialize_pem())
    }
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

struct Fixture {
    addr: std::net::SocketAddr,
    serving_ca_pem: String,
    front_proxy: TestCa,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<Result<(), metrics_api::MetricsApiError>>,
}

impl Fixture {
    async fn start() -> Self {
        let (tls, serving_ca_pem) = metrics_api::self_signed(SERVICE, NAMESPACE).expect("certs");
        let front_proxy = TestCa::new("front-proxy-ca");
        let config = MetricsServerConfig {
            bind: ([127, 0, 0, 1], 0).into(),
            tls,
            client_ca_pem: Some(front_proxy.cert_pem.clone()),
            allowed_names: vec![FRONT_PROXY_CN.to_owned()],
        };
        let values = [
            ("s0-redis-mylist", 5.0),
            ("s1-rate", 2.5),
            ("s2-negative", -4.0),
        ]
        .into_iter()
        .map(|(m, v)| ((NAMESPACE.to_owned(), "my-so".to_owned(), m.to_owned()), v))
        .collect();
        let provider: Arc<dyn MetricsProvider> = Arc::new(MapProvider(values));
        let bound = metrics_api::bind(config).await.expect("bind");
        let addr = bound.local_addr();
        assert_ne!(addr.port(), 0);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(bound.serve(provider, async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            serving_ca_pem,
            front_proxy,
            stop: Some(stop),
            server,
        }
    }

    fn front_proxy_identity(&self) -> Option<(String, String)> {
        Some(self.front_proxy.client(FRONT_PROXY_CN))
    }

    async fn connect(&self, identity: Option<(String, String)>, http2: bool) -> Client {
        self.try_connect(identity, http2, SERVER_NAME)
            .await
            .expect("TLS connection")
    }

    async fn try_connect(
        &self,
        identity: Option<(String, String)>,
        http2: bool,
        server_name: &str,
    ) -> Result<Client, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        let ca = CertificateDer::from_pem_slice(self.serving_ca_pem.as_bytes()).expect("CA PEM");
        roots.add(ca).expect("root");
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots);
        let mut config = match identity {
            Some((cert_pem, key_pem)) => {
                let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .expect("client chain");
                let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("client key");
                builder
                    .with_client_auth_cert(chain, key)
                    .expect("client auth")
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = if http2 {
            vec![b"h2".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(|e| e.to_string())?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let name = ServerName::try_from(server_name.to_owned()).map_err(|e| e.to_string())?;
        let tls = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let negotiated = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        let io = TokioIo::new(tls);
        let sender = if http2 {
            assert_eq!(negotiated.as_deref(), Some(&b"h2"[..]));
            let (sender, conn) =
                hyper::client::conn::http2::handshake::<_, _, Body>(TokioExecutor::new(), io)
                    .await
                    .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            Sender::H2(sender)
        } else {
            let (sender, conn) = hyper::client::conn::http1::handshake::<_, Body>(io)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            Sender::H1(sender)
        };
        Ok(Client { sender })
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(Duration::from_secs(10), &mut self.server)
            .await
            .expect("server stops after the shutdown signal")
            .expect("server task");
        result.expect("serve returns Ok");
    }
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Body>),
    H2(hyper::client::conn::http2::SendRequest<Body>),
}

struct Client {
    sender: Sender,
}

impl Client {
    /// GET `path_and_query`, as the aggregator would (with `X-Remote-User` when `user` is set).
    async fn try_get(
        &mut self,
        path_and_query: &str,
        user: Option<&str>,
    ) -> Result<(u16, Value), String> {
        let uri = match self.sender {
            // HTTP/2 carries scheme and authority as pseudo-headers; HTTP/1.1 uses a Host header.
            Sender::H2(_) => format!("https://{SERVER_NAME}{path_and_query}"),
            Sender::H1(_) => path_and_query.to_owned(),
        };
        let mut request = http::Request::get(uri).header("host", SERVER_NAME);
        if let Some(user) = user {
            request = request
                .header("x-remote-user", user)
                .header("x-remote-group", "system:authenticated");
        }
        let request = request.body(Body::empty()).map_err(|e| e.to_string())?;
        let response = match &mut self.sender {
            Sender::H1(sender) => {
                sender.ready().await.map_err(|e| e.to_string())?;
                sender.send_request(request).await
            }
            Sender::H2(sender) => {
                sender.ready().await.map_err(|e| e.to_string())?;
                sender.send_request(request).await
            }
        }
        .map_err(|e| e.to_string())?;
        let code = response.status().as_u16();
        let bytes = axum::body::to_bytes(Body::new(response.into_body()), 1 << 20)
            .await
            .map_err(|e| e.to_string())?;
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok((code, body))
    }

    async fn get(&mut self, path_and_query: &str, user: Option<&str>) -> (u16, Value) {
        self.try_get(path_and_query, user)
            .await
            .expect("request completes")
    }
}

const HPA_USER: Option<&str> = Some("system:serviceaccount:kube-system:horizontal-pod-autoscaler");

#[tokio::test]
async fn discovery_and_health_over_http2_and_http1() {
    let fixture = Fixture::start().await;
    for http2 in [true, false] {
        // The aggregator's availability check and probes: no request-header identity needed.
        let mut client = fixture.connect(None, http2).await;
        let (code, body) = client
            .get("/apis/external.metrics.k8s.io/v1beta1", None)
            .await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["kind"], "APIResourceList");
        assert_eq!(body["groupVersion"], "external.metrics.k8s.io/v1beta1");
        assert_eq!(body["resources"][0]["name"], "externalmetrics");
        assert_eq!(body["resources"][0]["kind"], "ExternalMetricValueList");
        assert_eq!(body["resources"][0]["namespaced"], true);
        assert_eq!(body["resources"][0]["verbs"], serde_json::json!(["get"]));

        let (code, body) = client.get("/apis/external.metrics.k8s.io", None).await;
        assert_eq!((code, body["kind"].as_str()), (200, Some("APIGroup")));
        let (code, body) = client.get("/apis", None).await;
        assert_eq!((code, body["kind"].as_str()), (200, Some("APIGroupList")));
        for probe in ["/healthz", "/readyz", "/livez"] {
            let (code, body) = client.get(probe, None).await;
            assert_eq!(
                (code, body),
                (200, Value::String("ok".to_owned())),
                "{probe}"
            );
        }
        for missing in [
            "/openapi/v2",
            "/openapi/v3",
            "/apis/custom.metrics.k8s.io/v1beta2",
            "/nope",
        ] {
            let (code, body) = client.get(missing, None).await;
            assert_eq!(code, 404, "{missing}");
            assert_eq!(body["kind"], "Status");
            assert_eq!(body["reason"], "NotFound");
        }
    }
    fixture.stop().await;
}

#[tokio::test]
async fn serving_certificate_names() {
    let fixture = Fixture::start().await;
    for name in [
        SERVER_NAME,
        "keda-operator-metrics-apiserver.keda.svc.cluster.local",
        "localhost",
        "127.0.0.1",
    ] {
        let mut client = fixture
            .try_connect(None, true, name)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(client.get("/healthz", None).await.0, 200);
    }
    assert!(
        fixture
            .try_connect(None, true, "other.keda.svc")
            .await
            .is_err(),
        "a name outside the SANs must fail verification"
    );
    fixture.stop().await;
}

#[tokio::test]
async fn metric_values_through_the_front_proxy_identity() {
    let fixture = Fixture::start().await;
    for http2 in [true, false] {
        let mut client = fixture.connect(fixture.front_proxy_identity(), http2).await;

        let (code, body) = client
            .get(
                &format!("{METRICS}/keda/s0-redis-mylist?{SELECTOR}"),
                HPA_USER,
            )
            .await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["kind"], "ExternalMetricValueList");
        assert_eq!(body["apiVersion"], "external.metrics.k8s.io/v1beta1");
        assert_eq!(body["metadata"], serde_json::json!({}));
        let item = &body["items"][0];
        assert_eq!(item["metricName"], "s0-redis-mylist");
        assert_eq!(item["metricLabels"], serde_json::json!({}));
        assert_eq!(item["value"], "5");
        let timestamp = item["timestamp"].as_str().expect("timestamp");
        assert_eq!(timestamp.len(), "2026-01-01T00:00:00Z".len(), "{timestamp}");
        assert!(timestamp.ends_with('Z'));

        // Milli precision, and negative values clamp to zero.
        let (_, body) = client
            .get(&format!("{METRICS}/keda/s1-rate?{SELECTOR}"), HPA_USER)
            .await;
        assert_eq!(body["items"][0]["value"], "2500m");
        let (_, body) = client
            .get(&format!("{METRICS}/keda/s2-negative?{SELECTOR}"), HPA_USER)
            .await;
        assert_eq!(body["items"][0]["value"], "0");

        // Case-insensitive names, URL-decoded segments, `==` and extra selector terms.
        let (code, body) = client
            .get(
                &format!("{METRICS}/keda/S0-Redis-MyList?labelSelector=app%3Dx%2Cscaledobject.keda.sh%2Fname%3D%3Dmy-so"),
                HPA_USER,
            )
            .await;
        assert_eq!(
            (code, body["items"][0]["value"].as_str()),
            (200, Some("5")),
            "{body}"
        );
        let (code, _) = client
            .get(
                &format!("{METRICS}/keda/s0%2Dredis%2dmylist?{SELECTOR}"),
                HPA_USER,
            )
            .await;
        assert_eq!(code, 200);

        // No selector, or one without the ScaledObject label.
        for query in ["", "?labelSelector=app%3Dx", "?limit=1"] {
            let (code, body) = client
                .get(&format!("{METRICS}/keda/s0-redis-mylist{query}"), HPA_USER)
                .await;
            assert_eq!(code, 400, "{query}");
            assert_eq!(body["kind"], "Status");
            assert_eq!(body["status"], "Failure");
            assert_eq!(body["reason"], "BadRequest");
            assert_eq!(body["message"], "scaledObject name is not specified");
            assert_eq!(body["code"], 400);
        }

        // Unknown metric, unknown ScaledObject, other namespace.
        for path in [
            format!("{METRICS}/keda/s9-unknown?{SELECTOR}"),
            format!(
                "{METRICS}/keda/s0-redis-mylist?labelSelector=scaledobject.keda.sh%2Fname%3Dother"
            ),
            format!("{METRICS}/default/s0-redis-mylist?{SELECTOR}"),
        ] {
            let (code, body) = client.get(&path, HPA_USER).await;
            assert_eq!(code, 404, "{path}");
            assert_eq!(body["reason"], "NotFound");
            assert_eq!(body["message"], "no matching metrics found");
        }
    }
    fixture.stop().await;
}

#[tokio::test]
async fn metric_reads_without_the_front_proxy_identity_are_refused() {
    let fixture = Fixture::start().await;
    let path = format!("{METRICS}/keda/s0-redis-mylist?{SELECTOR}");

    // No client certificate: the handshake succeeds (probes), the metrics route does not.
    let mut client = fixture.connect(None, true).await;
    let (code, body) = client.get(&path, HPA_USER).await;
    assert_eq!(code, 401, "{body}");
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["reason"], "Unauthorized");

    // The front proxy's certificate but no X-Remote-User.
    let mut client = fixture.connect(fixture.front_proxy_identity(), false).await;
    let (code, body) = client.get(&path, None).await;
    assert_eq!((code, body["reason"].as_str()), (401, Some("Unauthorized")));

    // A certificate from the right CA with a CN outside requestheader-allowed-names.
    let rogue = fixture.front_proxy.client("system:kube-controller-manager");
    let mut client = fixture.connect(Some(rogue), true).await;
    let (code, body) = client.get(&path, HPA_USER).await;
    assert_eq!(
        (code, body["reason"].as_str()),
        (403, Some("Forbidden")),
        "{body}"
    );
    // ... which still gets discovery.
    assert_eq!(
        client
            .get("/apis/external.metrics.k8s.io/v1beta1", None)
            .await
            .0,
        200
    );

    // A certificate from another CA fails the handshake (or the first request, with TLS 1.3).
    let foreign = TestCa::new("foreign-ca").client(FRONT_PROXY_CN);
    match fixture.try_connect(Some(foreign), false, SERVER_NAME).await {
        Err(_) => {}
        Ok(mut client) => assert!(client.try_get(&path, HPA_USER).await.is_err()),
    }
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_read_latency() {
    let fixture = Fixture::start().await;
    let path = format!("{METRICS}/keda/s0-redis-mylist?{SELECTOR}");
    let mut client = fixture.connect(fixture.front_proxy_identity(), true).await;
    for _ in 0..50 {
        assert_eq!(client.get(&path, HPA_USER).await.0, 200);
    }
    let mut samples = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let start = Instant::now();
        let (code, _) = client.get(&path, HPA_USER).await;
        samples.push(start.elapsed());
        assert_eq!(code, 200);
    }
    samples.sort();
    let at = |q: f64| {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let index = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[index]
    };
    println!(
        "metrics API, 1000 sequential HTTP/2 reads over TLS on loopback (client included): \
         p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
        at(0.50),
        at(0.90),
        at(0.99),
        at(1.0)
    );
    fixture.stop().await;
}

#[tokio::test]
async fn shutdown_finishes_with_an_open_connection() {
    let fixture = Fixture::start().await;
    let mut client = fixture.connect(fixture.front_proxy_identity(), true).await;
    assert_eq!(client.get("/healthz", None).await.0, 200);
    let addr = fixture.addr;
    fixture.stop().await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed after shutdown"
    );
}
