//! HTTP the bench speaks itself: plain GETs at the operator's telemetry endpoints, and a
//! keep-alive HTTPS connection straight to its external-metrics server that authenticates as
//! the aggregator does (front-proxy client certificate + `X-Remote-User`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET path` over a fresh plain-HTTP/1.1 connection: (status, body).
pub async fn plain_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let fetch = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        anyhow::Ok(String::from_utf8_lossy(&raw).into_owned())
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), fetch)
        .await
        .context("timed out")??;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no HTTP status")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The value of an unlabelled or exactly-labelled series in a Prometheus text page.
pub fn prom_value(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// One HTTP/1.1 keep-alive connection over TLS to the external-metrics server.
pub struct DirectClient {
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    authority: String,
}

impl DirectClient {
    pub async fn connect(
        addr: SocketAddr,
        ca_pem: &str,
        client_cert_pem: &str,
        client_key_pem: &str,
    ) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.context("CA PEM")?)?;
        }
        let chain = CertificateDer::pem_slice_iter(client_cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .context("client certificate PEM")?;
        let key =
            PrivateKeyDer::from_pem_slice(client_key_pem.as_bytes()).context("client key PEM")?;
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost")?.to_owned(), tcp)
            .await
            .context("TLS handshake with the metrics server")?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self {
            sender,
            authority: addr.to_string(),
        })
    }

    /// One GET as the aggregator would send it; returns (status, body, elapsed).
    pub async fn get(&mut self, path_and_query: &str) -> anyhow::Result<(u16, String, Duration)> {
        let request = http::Request::get(path_and_query)
            .header(http::header::HOST, &self.authority)
            .header("X-Remote-User", "bench")
            .header("X-Remote-Group", "system:authenticated")
            .body(Empty::<Bytes>::new())?;
        let started = Instant::now();
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        let elapsed = started.elapsed();
        if body.is_empty() && status == 200 {
            bail!("empty body");
        }
        Ok((status, String::from_utf8_lossy(&body).into_owned(), elapsed))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_values() {
        let page = "# HELP x\nkeda_internal_scale_loop_polls_total 42\nkeda_internal_scale_loop_latency_seconds{quantile=\"0.99\"} 0.0125\n";
        assert_eq!(
            prom_value(page, "keda_internal_scale_loop_polls_total"),
            Some(42.0)
        );
        assert_eq!(
            prom_value(
                page,
                "keda_internal_scale_loop_latency_seconds{quantile=\"0.99\"}"
            ),
            Some(0.0125)
        );
        assert_eq!(prom_value(page, "keda_internal_scale_loop"), None);
    }

    #[test]
    fn chunked_bodies() {
        assert_eq!(dechunk("2\r\nok\r\n3\r\nabc\r\n0\r\n\r\n"), "okabc");
    }
}
