//! The management-API side of the rabbitmq scaler: the GET for a trigger (URL, vhost, path prefix,
//! regex listing, basic credentials), sent through the one shared HTTP client, and the answer's
//! numbers (totals or ready messages, publish and deliver rates, regex matches aggregated).

use serde::Deserialize;

use super::metadata::{Operation, RabbitMqMetadata, path_segment_escape, query_escape};
use crate::error::BackendError;
use crate::http::{GetRequest, HttpClient, status_error};
use crate::tls::TlsSettings;

/// Splits a management URL path into `(vhost path, prefix)`: the last segment is the vhost (kept
/// escaped; `vhost_name` replaces it), the rest a path prefix; empty or `/` vhost → `/%2F`.
pub fn vhost_and_prefix(escaped_path: &str, vhost_name: Option<&str>) -> (String, String) {
    let (prefix, last) = escaped_path.rsplit_once('/').unwrap_or(("", escaped_path));
    let mut vhost = format!("/{last}");
    if let Some(name) = vhost_name {
        vhost = format!("/{}", query_escape(name));
    }
    if vhost == "/" || vhost == "//" {
        vhost = "/%2F".to_owned();
    }
    (vhost, prefix.trim_end_matches('/').to_owned())
}

/// The TLS identity of the management client: `unsafeSsl` always applies, certificates and CA only
/// with `tls: enable`, as in KEDA.
pub fn management_tls(meta: &RabbitMqMetadata) -> TlsSettings {
    if meta.tls_enabled {
        meta.tls.clone()
    } else {
        TlsSettings {
            unsafe_ssl: meta.tls.unsafe_ssl,
            ..TlsSettings::default()
        }
    }
}

/// The management-API GET of a parsed trigger: URL without credentials, basic credentials from
/// `username`/`password` or the host URL.
pub fn management_request(meta: &RabbitMqMetadata) -> Result<GetRequest, String> {
    let url = url::Url::parse(&meta.host).map_err(|e| format!("invalid host URL: {e}"))?;
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| "host URL has no host".to_owned())?;
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let (vhost, prefix) = vhost_and_prefix(url.path(), meta.vhost_name.as_deref());
    let base = format!("{}://{authority}{prefix}/api/queues{vhost}", url.scheme());
    let full = if meta.use_regex {
        format!(
            "{base}?page=1&use_regex=true&pagination=false&name={}&page_size={}",
            query_escape(&meta.queue_name),
            meta.page_size
        )
    } else {
        format!("{base}/{}", path_segment_escape(&meta.queue_name))
    };
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let basic_auth = match (&meta.username, &meta.password) {
        (Some(u), Some(p)) => Some((u.clone(), Some(p.clone()))),
        _ if !url.username().is_empty() => Some((
            decode(url.username()),
            Some(decode(url.password().unwrap_or_default())),
        )),
        _ => None,
    };
    Ok(GetRequest {
        url: full,
        headers: Vec::new(),
        basic_auth,
    })
}

/// Reads the queue (or the regex matches) once.
pub async fn queue_stats(
    client: &HttpClient,
    request: &GetRequest,
    meta: &RabbitMqMetadata,
) -> Result<QueueStats, BackendError> {
    let url = &request.url;
    let response = client
        .get(request)
        .await
        .map_err(|e| e.context(format!("error requesting {url}")))?;
    if response.status != 200 {
        let status = http::StatusCode::from_u16(response.status)
            .map_or_else(|_| response.status.to_string(), |s| s.to_string());
        return Err(status_error(
            response.status,
            format!(
                "error requesting RabbitMQ API status: {status}, response: {}, from: {url}",
                String::from_utf8_lossy(&response.body)
            ),
        ));
    }
    if meta.use_regex {
        parse_regex_answer(&response.body, meta.exclude_unacknowledged, meta.operation)
    } else {
        parse_queue_answer(&response.body, meta.exclude_unacknowledged)
    }
}

/// The numbers one poll yields.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QueueStats {
    /// Messages (ready + unacknowledged, or ready only with `excludeUnacknowledged`); a float, as
    /// the HPA wants it (JSON integers decode into it exactly up to 2^53).
    pub messages: f64,
    /// Publish rate.
    pub publish_rate: f64,
    /// Deliver + get rate.
    pub deliver_get_rate: f64,
}

#[derive(Deserialize, Default)]
struct QueueInfo {
    #[serde(default)]
    messages: f64,
    #[serde(default)]
    messages_ready: f64,
    #[serde(default)]
    message_stats: MessageStats,
}

#[derive(Deserialize, Default)]
struct MessageStats {
    #[serde(default)]
    publish_details: RateDetails,
    #[serde(default)]
    deliver_get_details: RateDetails,
}

#[derive(Deserialize, Default)]
struct RateDetails {
    #[serde(default)]
    rate: f64,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RegexAnswer {
    Page {
        items: Vec<QueueInfo>,
        #[serde(default)]
        page_count: i64,
    },
    List(Vec<QueueInfo>),
}

impl QueueInfo {
    fn stats(&self, exclude_unacknowledged: bool) -> QueueStats {
        QueueStats {
            messages: if exclude_unacknowledged {
                self.messages_ready
            } else {
                self.messages
            },
            publish_rate: self.message_stats.publish_details.rate,
            deliver_get_rate: self.message_stats.deliver_get_details.rate,
        }
    }
}

/// Parses a single-queue answer.
pub fn parse_queue_answer(
    body: &[u8],
    exclude_unacknowledged: bool,
) -> Result<QueueStats, BackendError> {
    let info: QueueInfo = serde_json::from_slice(body)
        .map_err(|e| BackendError::protocol(format!("error decoding the queue info: {e}")))?;
    Ok(info.stats(exclude_unacknowledged))
}

/// Parses a regex answer and aggregates the matches with `operation`.
pub fn parse_regex_answer(
    body: &[u8],
    exclude_unacknowledged: bool,
    operation: Operation,
) -> Result<QueueStats, BackendError> {
    let answer: RegexAnswer = serde_json::from_slice(body)
        .map_err(|e| BackendError::protocol(format!("error decoding the queue list: {e}")))?;
    let items = match answer {
        RegexAnswer::Page { page_count, .. } if page_count > 1 => {
            return Err(BackendError::protocol(
                "regex matches more queues than can be recovered at once",
            ));
        }
        RegexAnswer::Page { items, .. } | RegexAnswer::List(items) => items,
    };
    let stats: Vec<QueueStats> = items
        .iter()
        .map(|i| i.stats(exclude_unacknowledged))
        .collect();
    Ok(aggregate(&stats, operation))
}

/// Field-wise aggregation of matched queues; no matches → all zero.
pub fn aggregate(stats: &[QueueStats], operation: Operation) -> QueueStats {
    let Some(first) = stats.first() else {
        return QueueStats::default();
    };
    match operation {
        Operation::Sum | Operation::Avg => {
            let mut total = QueueStats::default();
            for s in stats {
                total.messages += s.messages;
                total.publish_rate += s.publish_rate;
                total.deliver_get_rate += s.deliver_get_rate;
            }
            if operation == Operation::Avg {
                let n = f64::from(u32::try_from(stats.len()).unwrap_or(u32::MAX));
                // Counts divide as integers, as in KEDA.
                total.messages = (total.messages / n).trunc();
                total.publish_rate /= n;
                total.deliver_get_rate /= n;
            }
            total
        }
        Operation::Max => stats.iter().fold(*first, |acc, s| QueueStats {
            messages: acc.messages.max(s.messages),
            publish_rate: acc.publish_rate.max(s.publish_rate),
            deliver_get_rate: acc.deliver_get_rate.max(s.deliver_get_rate),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::super::metadata::tests::ok;
    use super::*;

    #[test]
    fn vhost_and_prefix_examples() {
        for (path, vhost_name, vhost, prefix) in [
            ("/myVhost", None, "/myVhost", ""),
            ("/", None, "/%2F", ""),
            ("//", None, "/%2F", ""),
            ("/%2F", None, "/%2F", ""),
            ("", None, "/%2F", ""),
            ("/sub1/myVhost", None, "/myVhost", "/sub1"),
            ("/sub1/", Some("myVhost"), "/myVhost", "/sub1"),
            ("/sub1/sub2/%2FmyVhost", None, "/%2FmyVhost", "/sub1/sub2"),
            ("/sub1//", None, "/%2F", "/sub1"),
            ("/x", Some("/"), "/%2F", ""),
        ] {
            assert_eq!(
                vhost_and_prefix(path, vhost_name),
                (vhost.to_owned(), prefix.to_owned()),
                "{path:?} {vhost_name:?}"
            );
        }
    }

    #[test]
    fn management_urls_and_credentials() {
        let m = ok(
            &[
                ("queueName", "my queue"),
                ("host", "https://user:p%40ss@rabbit:15671/prefix/vh"),
            ],
            &[],
        );
        let r = management_request(&m).unwrap();
        assert_eq!(
            r.url,
            "https://rabbit:15671/prefix/api/queues/vh/my%20queue"
        );
        assert_eq!(r.basic_auth, Some(("user".into(), Some("p@ss".into()))));
        let m = ok(
            &[
                ("queueName", "^q.*"),
                ("host", "http://rabbit:15672"),
                ("useRegex", "true"),
                ("pageSize", "7"),
            ],
            &[("username", "u"), ("password", "p")],
        );
        let r = management_request(&m).unwrap();
        assert_eq!(
            r.url,
            "http://rabbit:15672/api/queues/%2F?page=1&use_regex=true&pagination=false&name=%5Eq.%2A&page_size=7"
        );
        assert_eq!(r.basic_auth, Some(("u".into(), Some("p".into()))));
    }

    #[test]
    fn regex_answers_are_aggregated() {
        let body = br#"{"items":[
            {"messages":2,"messages_ready":1,"message_stats":{"publish_details":{"rate":1.5}}},
            {"messages":5,"messages_ready":5,"message_stats":{"deliver_get_details":{"rate":4.0}}},
            {"messages":9,"messages_ready":3}],"page_count":1}"#;
        let sum = parse_regex_answer(body, false, Operation::Sum).unwrap();
        assert_eq!(
            sum,
            QueueStats {
                messages: 16.0,
                publish_rate: 1.5,
                deliver_get_rate: 4.0
            }
        );
        assert_eq!(
            parse_regex_answer(body, true, Operation::Sum)
                .unwrap()
                .messages,
            9.0
        );
        let max = parse_regex_answer(body, false, Operation::Max).unwrap();
        assert_eq!(
            max,
            QueueStats {
                messages: 9.0,
                publish_rate: 1.5,
                deliver_get_rate: 4.0
            }
        );
        let avg = parse_regex_answer(body, false, Operation::Avg).unwrap();
        assert_eq!(avg.messages, 5.0);
        assert!((avg.publish_rate - 0.5).abs() < 1e-9);
        assert_eq!(
            parse_regex_answer(br#"{"items":[],"page_count":0}"#, false, Operation::Max).unwrap(),
            QueueStats::default()
        );
        let err = parse_regex_answer(br#"{"items":[],"page_count":2}"#, false, Operation::Sum)
            .unwrap_err();
        assert_eq!(
            err.message,
            "regex matches more queues than can be recovered at once"
        );
        assert!(parse_queue_answer(b"not json", false).is_err());
        assert_eq!(
            parse_queue_answer(b"{}", false).unwrap(),
            QueueStats::default()
        );
    }
}
