//! Test doubles for cloud-only APIs: local HTTP servers speaking the documented wire API of the
//! cloud service, so the REST scalers run their real request/response code against them.

#![allow(dead_code, clippy::unwrap_used)]

pub mod azure_servicebus;
pub mod gcp;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};

/// A request as a double sees it: method, path, query, headers and body.
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub body: Bytes,
}

/// A running HTTP server on 127.0.0.1; stops when dropped.
pub struct HttpDouble {
    pub addr: SocketAddr,
    pub requests: Arc<AtomicUsize>,
    pub connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpDouble {
    /// Serves `handler` (status, content type, body) for every request.
    pub async fn start(
        handler: impl Fn(Seen) -> (u16, &'static str, String) + Send + Sync + 'static,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handler = Arc::new(handler);
        let requests = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let (req_count, conn_count) = (Arc::clone(&requests), Arc::clone(&connections));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                conn_count.fetch_add(1, Ordering::SeqCst);
                let handler = Arc::clone(&handler);
                let req_count = Arc::clone(&req_count);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let handler = Arc::clone(&handler);
                        let req_count = Arc::clone(&req_count);
                        async move {
                            req_count.fetch_add(1, Ordering::SeqCst);
                            let header = |name: &str| {
                                req.headers()
                                    .get(name)
                                    .and_then(|v| v.to_str().ok())
                                    .map(str::to_owned)
                            };
                            let seen_head = (
                                req.method().to_string(),
                                req.uri().path().to_owned(),
                                req.uri().query().unwrap_or_default().to_owned(),
                                header("authorization"),
                                header("content-type"),
                            );
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let (status, content_type, text) = handler(Seen {
                                method: seen_head.0,
                                path: seen_head.1,
                                query: seen_head.2,
                                authorization: seen_head.3,
                                content_type: seen_head.4,
                                body,
                            });
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .status(status)
                                    .header("content-type", content_type)
                                    .body(Full::new(Bytes::from(text)))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            requests,
            connections,
            task,
        }
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for HttpDouble {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `a=1&b=2` → value of `name` (percent-decoded).
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}
