//! A protocol peer for the `external` / `external-push` tests (feature `testing`): a real gRPC
//! server implementing KEDA's `externalscaler.ExternalScaler` service over the same generated
//! code, whose answers the test sets and which counts what it sees (TCP connections accepted, calls
//! per RPC, push streams opened, the last `ScaledObjectRef`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::{BroadcastStream, TcpListenerStream};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::proto::external_scaler_server::{ExternalScaler, ExternalScalerServer};
use super::proto::{
    GetMetricSpecResponse, GetMetricsRequest, GetMetricsResponse, IsActiveResponse, MetricSpec,
    MetricValue, ScaledObjectRef,
};

#[derive(Default)]
struct PeerState {
    specs: Mutex<Vec<MetricSpec>>,
    /// `(metricValue, metricValueFloat)` returned for every metric.
    value: Mutex<(i64, f64)>,
    active: AtomicBool,
    fail_with: Mutex<Option<tonic::Code>>,
    connections: AtomicUsize,
    streams_opened: AtomicUsize,
    calls: Mutex<BTreeMap<&'static str, usize>>,
    last_ref: Mutex<Option<ScaledObjectRef>>,
    last_metric_name: Mutex<Option<String>>,
    pushes: Mutex<Option<broadcast::Sender<bool>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl PeerState {
    fn record(&self, rpc: &'static str, object: Option<&ScaledObjectRef>) -> Result<(), Status> {
        *lock(&self.calls).entry(rpc).or_default() += 1;
        if let Some(object) = object {
            *lock(&self.last_ref) = Some(object.clone());
        }
        match *lock(&self.fail_with) {
            Some(code) => Err(Status::new(code, format!("{rpc} fails on purpose"))),
            None => Ok(()),
        }
    }
}

struct Service(Arc<PeerState>);

type PushStream = Pin<Box<dyn Stream<Item = Result<IsActiveResponse, Status>> + Send>>;
type SpecStream = Pin<Box<dyn Stream<Item = Result<GetMetricSpecResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ExternalScaler for Service {
    async fn is_active(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<IsActiveResponse>, Status> {
        self.0.record("IsActive", Some(request.get_ref()))?;
        Ok(Response::new(IsActiveResponse {
            result: self.0.active.load(Ordering::SeqCst),
        }))
    }

    type StreamIsActiveStream = PushStream;

    async fn stream_is_active(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<PushStream>, Status> {
        self.0.record("StreamIsActive", Some(request.get_ref()))?;
        let receiver = lock(&self.0.pushes)
            .as_ref()
            .map(broadcast::Sender::subscribe)
            .ok_or_else(|| Status::unavailable("peer is shutting down"))?;
        self.0.streams_opened.fetch_add(1, Ordering::SeqCst);
        let stream = BroadcastStream::new(receiver)
            .filter_map(|pushed| pushed.ok().map(|result| Ok(IsActiveResponse { result })));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_metric_spec(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<GetMetricSpecResponse>, Status> {
        self.0.record("GetMetricSpec", Some(request.get_ref()))?;
        Ok(Response::new(GetMetricSpecResponse {
            metric_specs: lock(&self.0.specs).clone(),
        }))
    }

    async fn get_metrics(
        &self,
        request: Request<GetMetricsRequest>,
    ) -> Result<Response<GetMetricsResponse>, Status> {
        let request = request.into_inner();
        self.0
            .record("GetMetrics", request.scaled_object_ref.as_ref())?;
        *lock(&self.0.last_metric_name) = Some(request.metric_name.clone());
        let (metric_value, metric_value_float) = *lock(&self.0.value);
        Ok(Response::new(GetMetricsResponse {
            metric_values: vec![MetricValue {
                metric_name: request.metric_name,
                metric_value,
                metric_value_float,
            }],
        }))
    }

    type StreamMetricSpecStream = SpecStream;

    async fn stream_metric_spec(
        &self,
        _request: Request<ScaledObjectRef>,
    ) -> Result<Response<SpecStream>, Status> {
        Err(Status::unimplemented("StreamMetricSpec is optional"))
    }
}

async fn serve<IO>(
    service: ExternalScalerServer<Service>,
    incoming: impl Stream<Item = std::io::Result<IO>> + Send + 'static,
) where
    IO: tokio::io::AsyncRead
        + tokio::io::AsyncWrite
        + tonic::transport::server::Connected
        + Unpin
        + Send
        + 'static,
{
    if let Err(e) = tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming(incoming)
        .await
    {
        tracing::error!(error = %e, "external scaler peer stopped");
    }
}

/// A server-side TLS connection tonic can serve.
struct TlsConnection(tokio_rustls::server::TlsStream<tokio::net::TcpStream>);

impl tonic::transport::server::Connected for TlsConnection {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl tokio::io::AsyncRead for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// A running peer on 127.0.0.1; stops when dropped.
pub struct ExternalScalerPeer {
    addr: SocketAddr,
    state: Arc<PeerState>,
    server: JoinHandle<()>,
}

impl ExternalScalerPeer {
    /// Starts a plaintext peer on a free port, answering one spec `metric` with target 10, value
    /// 0, inactive.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(None).await
    }

    /// Starts a TLS peer (`config` gets ALPN `h2` added; require client certificates through its
    /// verifier). Failed handshakes are counted as connections but never reach the gRPC server.
    pub async fn start_tls(config: rustls::ServerConfig) -> std::io::Result<Self> {
        Self::start_with(Some(config)).await
    }

    async fn start_with(tls: Option<rustls::ServerConfig>) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(PeerState::default());
        *lock(&state.pushes) = Some(broadcast::channel(64).0);
        *lock(&state.specs) = vec![MetricSpec {
            metric_name: "metric".into(),
            target_size: 10,
            target_size_float: 0.0,
        }];
        let service = ExternalScalerServer::new(Service(Arc::clone(&state)));
        let counted = Arc::clone(&state);
        let server = match tls {
            None => {
                let incoming = TcpListenerStream::new(listener).map(move |connection| {
                    counted.connections.fetch_add(1, Ordering::SeqCst);
                    connection
                });
                tokio::spawn(serve(service, incoming))
            }
            Some(mut config) => {
                config.alpn_protocols = vec![b"h2".to_vec()];
                let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
                let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<TlsConnection>>(16);
                tokio::spawn(async move {
                    while let Ok((tcp, _)) = listener.accept().await {
                        counted.connections.fetch_add(1, Ordering::SeqCst);
                        let (acceptor, tx) = (acceptor.clone(), tx.clone());
                        tokio::spawn(async move {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                let _ = tx.send(Ok(TlsConnection(stream))).await;
                            }
                        });
                    }
                });
                tokio::spawn(serve(
                    service,
                    tokio_stream::wrappers::ReceiverStream::new(rx),
                ))
            }
        };
        Ok(Self {
            addr,
            state,
            server,
        })
    }

    /// `127.0.0.1:<port>`, for `scalerAddress`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// The specs `GetMetricSpec` answers: `(metricName, targetSize, targetSizeFloat)`.
    pub fn set_specs(&self, specs: &[(&str, i64, f64)]) {
        *lock(&self.state.specs) = specs
            .iter()
            .map(|&(name, size, float)| MetricSpec {
                metric_name: name.to_owned(),
                target_size: size,
                target_size_float: float,
            })
            .collect();
    }

    /// The value `GetMetrics` answers: `(metricValue, metricValueFloat)`.
    pub fn set_value(&self, metric_value: i64, metric_value_float: f64) {
        *lock(&self.state.value) = (metric_value, metric_value_float);
    }

    /// What `IsActive` answers.
    pub fn set_active(&self, active: bool) {
        self.state.active.store(active, Ordering::SeqCst);
    }

    /// Makes every RPC fail with `code` (`None`: answer again).
    pub fn set_failing(&self, code: Option<tonic::Code>) {
        *lock(&self.state.fail_with) = code;
    }

    /// Sends `result` on every open `StreamIsActive` stream; how many streams got it.
    pub fn push(&self, result: bool) -> usize {
        lock(&self.state.pushes)
            .as_ref()
            .and_then(|s| s.send(result).ok())
            .unwrap_or(0)
    }

    /// Ends every open push stream (clean EOF for the clients).
    pub fn end_streams(&self) {
        let mut pushes = lock(&self.state.pushes);
        *pushes = Some(broadcast::channel(64).0);
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// `StreamIsActive` streams opened so far.
    pub fn streams_opened(&self) -> usize {
        self.state.streams_opened.load(Ordering::SeqCst)
    }

    /// Calls of `rpc` (`IsActive`, `GetMetrics`, …) so far, failed ones included.
    pub fn calls(&self, rpc: &str) -> usize {
        lock(&self.state.calls).get(rpc).copied().unwrap_or(0)
    }

    /// The last `ScaledObjectRef` received.
    pub fn last_ref(&self) -> Option<ScaledObjectRef> {
        lock(&self.state.last_ref).clone()
    }

    /// The metric name of the last `GetMetrics` call.
    pub fn last_metric_name(&self) -> Option<String> {
        lock(&self.state.last_metric_name).clone()
    }
}

impl Drop for ExternalScalerPeer {
    fn drop(&mut self) {
        self.server.abort();
    }
}
