//! The HTTPS listener and the request handler.
//!
//! One task per connection: TLS handshake (bounded in time), then hyper serves HTTP/2 (what the
//! aggregator speaks, chosen by ALPN) or HTTP/1.1 on it. The handler is a pure dispatch on the
//! path plus one call to the [`MetricsProvider`]; nothing else awaits, and no lock is held.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use futures::FutureExt;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio_rustls::TlsAcceptor;

use super::identity::{ClientAuthPolicy, PeerIdentity, authorize};
use super::responses::{API_GROUP, API_GROUP_LIST, API_RESOURCE_LIST, metric_value_list, status};
use super::routes::{Route, route};
use super::selector::{label_selector_from_query, scaled_object_name};
use super::{MetricsApiError, MetricsError, MetricsProvider, MetricsServerConfig, tls};

/// A client that has not finished the TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Connections beyond this wait in the kernel's backlog (the aggregator needs a handful).
const MAX_CONNECTIONS: usize = 4096;
/// Request heads are small GETs; anything bigger is not a client of ours.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The message KEDA's adapter returns when the selector does not name a ScaledObject.
pub(crate) const NO_SCALED_OBJECT: &str = "scaledObject name is not specified";
const NOT_FOUND_ROUTE: &str = "the server could not find the requested resource";

/// A listener bound and ready to [`serve`](BoundServer::serve); lets callers learn the port
/// before serving (bind on port 0 in tests).
pub struct BoundServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    acceptor: TlsAcceptor,
    policy: ClientAuthPolicy,
}

impl std::fmt::Debug for BoundServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundServer")
            .field("local_addr", &self.local_addr)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Validates the TLS material and binds `config.bind`.
///
/// # Errors
/// Unreadable or mismatched PEM material, or the address cannot be bound.
pub async fn bind(config: MetricsServerConfig) -> Result<BoundServer, MetricsApiError> {
    let (server_config, policy) = tls::server_config(&config)?;
    let listener =
        TcpListener::bind(config.bind)
            .await
            .map_err(|source| MetricsApiError::Listen {
                addr: config.bind,
                source,
            })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| MetricsApiError::Listen {
            addr: config.bind,
            source,
        })?;
    Ok(BoundServer {
        listener,
        local_addr,
        acceptor: TlsAcceptor::from(Arc::new(server_config)),
        policy,
    })
}

/// Binds and serves until `shutdown` completes; see [`BoundServer::serve`].
///
/// # Errors
/// As [`bind`]; serving itself does not fail.
pub async fn serve(
    config: MetricsServerConfig,
    provider: Arc<dyn MetricsProvider>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), MetricsApiError> {
    bind(config).await?.serve(provider, shutdown).await
}

/// What every connection task shares.
struct Shared {
    provider: Arc<dyn MetricsProvider>,
    policy: ClientAuthPolicy,
    acceptor: TlsAcceptor,
    /// Detects HTTP/1.1 or HTTP/2 from the first bytes (clients without ALPN).
    auto: auto::Builder<TokioExecutor>,
    /// Used when ALPN chose h2, skipping the detection.
    h2: auto::Builder<TokioExecutor>,
}

impl BoundServer {
    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests finish
    /// (up to a few seconds) and returns. Errors accepting a connection are logged, not fatal.
    ///
    /// # Errors
    /// None today; the `Result` leaves room for fatal listener errors.
    pub async fn serve(
        self,
        provider: Arc<dyn MetricsProvider>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), MetricsApiError> {
        let mut auto = auto::Builder::new(TokioExecutor::new());
        auto.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30))
            .max_buf_size(MAX_HEADER_BYTES);
        auto.http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .max_concurrent_streams(256)
            .max_header_list_size(u32::try_from(MAX_HEADER_BYTES).unwrap_or(u32::MAX));
        let h2 = auto.clone().http2_only();
        let shared = Arc::new(Shared {
            provider,
            policy: self.policy,
            acceptor: self.acceptor,
            auto,
            h2,
        });
        let listener = self.listener;
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let (stop_tx, stop_rx) = watch::channel(false);
        // Each connection task holds a sender; recv() returns None once all have finished.
        let (alive_tx, mut alive_rx) = mpsc::channel::<Infallible>(1);
        tracing::info!(addr = %self.local_addr, "external metrics API listening");

        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                biased;
                () = &mut shutdown => break,
                permit = permits.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
            };
            let accepted = tokio::select! {
                biased;
                () = &mut shutdown => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) => {
                    let task = connection(
                        stream,
                        peer,
                        shared.clone(),
                        stop_rx.clone(),
                        permit,
                        alive_tx.clone(),
                    );
                    tokio::spawn(task);
                }
                Err(error) => {
                    // Usually a client gone before accept, or fd exhaustion: pause briefly.
                    tracing::warn!(%error, "accepting a metrics API connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }

        drop(listener);
        let _ = stop_tx.send(true);
        drop(alive_tx);
        if tokio::time::timeout(SHUTDOWN_GRACE, alive_rx.recv())
            .await
            .is_err()
        {
            tracing::warn!("metrics API connections still open after the shutdown grace period");
        }
        tracing::info!("external metrics API stopped");
        Ok(())
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
    _alive: mpsc::Sender<Infallible>,
) {
    // Responses are small and latency matters more than packet count.
    let _ = stream.set_nodelay(true);
    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, shared.acceptor.accept(stream));
    let tls = tokio::select! {
        result = handshake => match result {
            Ok(Ok(tls)) => tls,
            Ok(Err(error)) => {
                tracing::debug!(%peer, %error, "metrics API TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "metrics API TLS handshake timed out");
                return;
            }
        },
        () = stopped(&mut stop) => return,
    };
    let (_, session) = tls.get_ref();
    let identity = Arc::new(PeerIdentity::from_verified_chain(
        session.peer_certificates(),
    ));
    let builder = if session.alpn_protocol() == Some(b"h2") {
        &shared.h2
    } else {
        &shared.auto
    };

    let handler = shared.clone();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let handler = handler.clone();
        let identity = identity.clone();
        async move { Ok::<_, Infallible>(handle(&handler, &identity, request).await) }
    });
    let conn = builder.serve_connection(TokioIo::new(tls), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "metrics API connection ended with an error");
            }
        }
        () = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Resolves once shutdown began (or the server went away); holds no borrow of the value.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

async fn handle(
    shared: &Shared,
    peer: &PeerIdentity,
    request: Request<Incoming>,
) -> Response<Body> {
    let (parts, _body) = request.into_parts();
    let remote_user = parts
        .headers
        .get("x-remote-user")
        .and_then(|value| value.to_str().ok());
    respond(
        shared.provider.as_ref(),
        &shared.policy,
        peer,
        &parts.method,
        parts.uri.path(),
        parts.uri.query().unwrap_or_default(),
        remote_user,
    )
    .await
}

/// Answers one request; everything but the provider call is pure.
pub(crate) async fn respond(
    provider: &dyn MetricsProvider,
    policy: &ClientAuthPolicy,
    peer: &PeerIdentity,
    method: &Method,
    path: &str,
    query: &str,
    remote_user: Option<&str>,
) -> Response<Body> {
    let route = route(path);
    if matches!(route, Route::NotFound) {
        return failure(StatusCode::NOT_FOUND, NOT_FOUND_ROUTE);
    }
    if method != Method::GET {
        return failure(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("the server does not allow method {method} on this resource"),
        );
    }
    match route {
        Route::Apis => json(StatusCode::OK, Body::from(API_GROUP_LIST)),
        Route::Group => json(StatusCode::OK, Body::from(API_GROUP)),
        Route::GroupVersion => json(StatusCode::OK, Body::from(API_RESOURCE_LIST)),
        Route::Health => reply(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            Body::from("ok"),
        ),
        Route::BadPath => failure(
            StatusCode::BAD_REQUEST,
            "invalid escape in the request path",
        ),
        Route::NotFound => failure(StatusCode::NOT_FOUND, NOT_FOUND_ROUTE),
        Route::Metric { namespace, metric } => {
            if let Err(denied) = authorize(policy, peer, remote_user) {
                tracing::debug!(%denied, "metrics read refused");
                let code =
                    StatusCode::from_u16(denied.status_code()).unwrap_or(StatusCode::UNAUTHORIZED);
                return failure(code, &denied.to_string());
            }
            let selector = label_selector_from_query(query);
            let Some(scaled_object) = selector.as_deref().and_then(scaled_object_name) else {
                return failure(StatusCode::BAD_REQUEST, NO_SCALED_OBJECT);
            };
            read_metric(provider, &namespace, scaled_object, &metric).await
        }
    }
}

async fn read_metric(
    provider: &dyn MetricsProvider,
    namespace: &str,
    scaled_object: &str,
    metric: &str,
) -> Response<Body> {
    // A panicking provider must cost one request, not the connection.
    let call = AssertUnwindSafe(async { provider.get(namespace, scaled_object, metric).await });
    match call.catch_unwind().await {
        Ok(Ok(samples)) => json(StatusCode::OK, Body::from(metric_value_list(&samples))),
        Ok(Err(error @ MetricsError::NotFound)) => {
            failure(StatusCode::NOT_FOUND, &error.to_string())
        }
        Ok(Err(MetricsError::Backend(message))) => {
            tracing::debug!(namespace, scaled_object, metric, %message, "metric read failed");
            failure(StatusCode::INTERNAL_SERVER_ERROR, &message)
        }
        Err(_) => {
            tracing::error!(
                namespace,
                scaled_object,
                metric,
                "metrics provider panicked"
            );
            failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error reading the metric",
            )
        }
    }
}

fn failure(code: StatusCode, message: &str) -> Response<Body> {
    json(
        code,
        Body::from(Bytes::from(status(code.as_u16(), message))),
    )
}

fn json(code: StatusCode, body: Body) -> Response<Body> {
    reply(code, "application/json", body)
}

fn reply(code: StatusCode, content_type: &'static str, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = code;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::SystemTime;

    use futures::future::BoxFuture;
    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;
    use crate::metrics_api::ExternalMetricSample;

    /// Values keyed by (namespace, scaled object, lowercased metric).
    struct FakeProvider(HashMap<(String, String, String), Result<f64, MetricsError>>);

    impl MetricsProvider for FakeProvider {
        fn get(
            &self,
            namespace: &str,
            scaled_object: &str,
            metric_name: &str,
        ) -> BoxFuture<'_, Result<Vec<ExternalMetricSample>, MetricsError>> {
            let key = (
                namespace.to_owned(),
                scaled_object.to_owned(),
                metric_name.to_ascii_lowercase(),
            );
            let found = self.0.get(&key).cloned();
            Box::pin(async move {
                if key.2 == "panic" {
                    panic!("provider bug");
                }
                let value = found.ok_or(MetricsError::NotFound)??;
                Ok(vec![ExternalMetricSample {
                    metric_name: key.2,
                    value,
                    timestamp: SystemTime::UNIX_EPOCH,
                }])
            })
        }
    }

    fn provider() -> FakeProvider {
        let mut values = HashMap::new();
        let key = |m: &str| ("ns".to_owned(), "so".to_owned(), m.to_owned());
        values.insert(key("s0-queue"), Ok(2.5));
        values.insert(
            key("s1-broken"),
            Err(MetricsError::Backend(
                "metric:s1-broken encountered error".to_owned(),
            )),
        );
        FakeProvider(values)
    }

    async fn call(
        policy: &ClientAuthPolicy,
        peer: &PeerIdentity,
        method: Method,
        uri: &str,
        user: Option<&str>,
    ) -> (StatusCode, String, Value) {
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        let response = respond(&provider(), policy, peer, &method, path, query, user).await;
        let code = response.status();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (code, content_type, body)
    }

    const METRIC: &str = "/apis/external.metrics.k8s.io/v1beta1/namespaces/ns/";
    const SELECTOR: &str = "?labelSelector=scaledobject.keda.sh%2Fname%3Dso";

    #[tokio::test]
    async fn dispatch_table() {
        let open = ClientAuthPolicy::Open;
        let anon = PeerIdentity::Anonymous;
        let get = |uri: String| {
            let open = open.clone();
            let anon = anon.clone();
            async move { call(&open, &anon, Method::GET, &uri, None).await }
        };

        let (code, ct, body) = get(format!("{METRIC}s0-queue{SELECTOR}")).await;
        assert_eq!((code, ct.as_str()), (StatusCode::OK, "application/json"));
        assert_eq!(body["items"][0]["value"], "2500m");
        assert_eq!(body["items"][0]["timestamp"], "1970-01-01T00:00:00Z");

        let (code, _, body) = get(format!("{METRIC}S0-QUEUE{SELECTOR}")).await;
        assert_eq!(code, StatusCode::OK, "{body}");

        let (code, _, body) = get(format!("{METRIC}s0-queue")).await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert_eq!(body["message"], NO_SCALED_OBJECT);
        assert_eq!(body["reason"], "BadRequest");

        let (code, _, body) = get(format!("{METRIC}s0-queue?labelSelector=app%3Dx")).await;
        assert_eq!(
            (code, body["message"].as_str()),
            (StatusCode::BAD_REQUEST, Some(NO_SCALED_OBJECT))
        );

        let (code, _, body) = get(format!("{METRIC}nope{SELECTOR}")).await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        assert_eq!(body["message"], "no matching metrics found");
        assert_eq!(body["kind"], "Status");

        let (code, _, body) = get(format!("{METRIC}s1-broken{SELECTOR}")).await;
        assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["reason"], "InternalError");
        assert_eq!(body["message"], "metric:s1-broken encountered error");

        let (code, _, body) = get(format!("{METRIC}panic{SELECTOR}")).await;
        assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["code"], 500);

        let (code, _, body) = get(format!("{METRIC}s0%zz{SELECTOR}")).await;
        assert_eq!(
            (code, body["reason"].as_str()),
            (StatusCode::BAD_REQUEST, Some("BadRequest"))
        );

        for path in [
            "/apis",
            "/apis/external.metrics.k8s.io",
            "/apis/external.metrics.k8s.io/v1beta1",
        ] {
            let (code, ct, body) = get(path.to_owned()).await;
            assert_eq!(
                (code, ct.as_str()),
                (StatusCode::OK, "application/json"),
                "{path}"
            );
            assert!(body["kind"].is_string(), "{path}");
        }
        for path in ["/healthz", "/readyz", "/livez"] {
            let (code, _, body) = get(path.to_owned()).await;
            assert_eq!(
                (code, body),
                (StatusCode::OK, Value::String("ok".to_owned()))
            );
        }
        for path in ["/openapi/v2", "/openapi/v3", "/metrics", "/"] {
            let (code, _, body) = get(path.to_owned()).await;
            assert_eq!(code, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(body["reason"], "NotFound");
        }

        let (code, _, body) = call(&open, &anon, Method::POST, "/apis", None).await;
        assert_eq!(
            (code, body["reason"].as_str()),
            (StatusCode::METHOD_NOT_ALLOWED, Some("MethodNotAllowed"))
        );
    }

    #[tokio::test]
    async fn metric_reads_need_the_front_proxy_identity() {
        let policy = ClientAuthPolicy::RequestHeader {
            allowed_names: vec!["front-proxy-client".to_owned()],
        };
        let proxy = PeerIdentity::Verified {
            common_name: Some("front-proxy-client".to_owned()),
        };
        let uri = format!("{METRIC}s0-queue{SELECTOR}");
        let (code, _, _) = call(
            &policy,
            &proxy,
            Method::GET,
            &uri,
            Some("system:serviceaccount:kube-system:hpa"),
        )
        .await;
        assert_eq!(code, StatusCode::OK);
        let (code, _, body) = call(
            &policy,
            &PeerIdentity::Anonymous,
            Method::GET,
            &uri,
            Some("u"),
        )
        .await;
        assert_eq!(
            (code, body["reason"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("Unauthorized"))
        );
        let (code, _, _) = call(&policy, &proxy, Method::GET, &uri, None).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
        let other = PeerIdentity::Verified {
            common_name: Some("kubelet".to_owned()),
        };
        let (code, _, body) = call(&policy, &other, Method::GET, &uri, Some("u")).await;
        assert_eq!(
            (code, body["reason"].as_str()),
            (StatusCode::FORBIDDEN, Some("Forbidden"))
        );
        // Discovery and health stay open: the aggregator's availability check and probes.
        for path in ["/apis/external.metrics.k8s.io/v1beta1", "/healthz"] {
            let (code, _, _) =
                call(&policy, &PeerIdentity::Anonymous, Method::GET, path, None).await;
            assert_eq!(code, StatusCode::OK, "{path}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn any_request_gets_a_status_json_or_success(path in "/[ -~]{0,80}", query in "[ -~]{0,60}") {
            let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
            let response = runtime.block_on(respond(
                &provider(), &ClientAuthPolicy::Open, &PeerIdentity::Anonymous,
                &Method::GET, &path, &query, None,
            ));
            let code = response.status();
            let bytes = runtime
                .block_on(axum::body::to_bytes(response.into_body(), 1 << 20))
                .expect("body");
            if code.is_success() {
                prop_assert!(!bytes.is_empty());
            } else {
                let body: Value = serde_json::from_slice(&bytes).expect("Status JSON");
                prop_assert_eq!(&body["kind"], "Status");
                prop_assert_eq!(body["code"].as_u64(), Some(u64::from(code.as_u16())));
            }
        }
    }
}
