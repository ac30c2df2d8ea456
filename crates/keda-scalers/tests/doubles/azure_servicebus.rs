//! **Test double** of the Azure Service Bus management REST API (Atom feed, `api-version=2021-05`):
//! `GET /<queue>`, `GET /<topic>/Subscriptions/<subscription>`, `GET /$Resources/Queues` and
//! `GET /<topic>/Subscriptions` (paged with `$skip`/`$top`), each authorized with a Shared Access
//! Signature that the double verifies against its key, as the service does.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use super::{HttpDouble, Seen, query_param};

pub const KEY_NAME: &str = "RootManageSharedAccessKey";
pub const KEY: &str = "c2VjcmV0LWtleS1mb3ItdGVzdHM=";

#[derive(Default)]
pub struct Namespace {
    pub queues: BTreeMap<String, i64>,
    pub topics: BTreeMap<String, BTreeMap<String, i64>>,
    pub rejected: usize,
}

pub struct ServiceBusDouble {
    pub http: HttpDouble,
    pub state: Arc<Mutex<Namespace>>,
}

impl ServiceBusDouble {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(Namespace::default()));
        let s = Arc::clone(&state);
        let http = HttpDouble::start(move |req| handle(&s, &req)).await;
        Self { http, state }
    }

    /// A connection string for this namespace (`UseDevelopmentEmulator=true`: plain HTTP).
    pub fn connection_string(&self) -> String {
        self.connection_string_with_key(KEY)
    }

    pub fn connection_string_with_key(&self, key: &str) -> String {
        format!(
            "Endpoint=sb://{}/;SharedAccessKeyName={KEY_NAME};SharedAccessKey={key};UseDevelopmentEmulator=true",
            self.http.addr
        )
    }

    pub fn set_queue(&self, name: &str, active: i64) {
        self.state
            .lock()
            .unwrap()
            .queues
            .insert(name.into(), active);
    }

    pub fn set_subscription(&self, topic: &str, sub: &str, active: i64) {
        self.state
            .lock()
            .unwrap()
            .topics
            .entry(topic.into())
            .or_default()
            .insert(sub.into(), active);
    }

    pub fn rejected(&self) -> usize {
        self.state.lock().unwrap().rejected
    }
}

fn authorized(req: &Seen) -> bool {
    let Some(token) = req
        .authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("SharedAccessSignature "))
    else {
        return false;
    };
    let (Some(sr), Some(sig), Some(se), Some(skn)) = (
        query_param(token, "sr"),
        query_param(token, "sig"),
        query_param(token, "se"),
        query_param(token, "skn"),
    ) else {
        return false;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if skn != KEY_NAME || se.parse::<u64>().map_or(true, |se| se <= now) {
        return false;
    }
    // The signature covers the URL-encoded resource and the expiry.
    let encoded: String =
        percent_encoding::utf8_percent_encode(&sr, percent_encoding::NON_ALPHANUMERIC)
            .to_string()
            .replace("%2D", "-")
            .replace("%2E", ".")
            .replace("%5F", "_")
            .replace("%7E", "~");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, KEY.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD
        .encode(ring::hmac::sign(&key, format!("{encoded}\n{se}").as_bytes()).as_ref());
    expected == sig && sr.starts_with("http")
}

fn entry(name: &str, kind: &str, active: i64) -> String {
    format!(
        r#"<entry xmlns="http://www.w3.org/2005/Atom"><id>https://ns/{name}</id><title type="text">{name}</title><content type="application/xml"><{kind} xmlns="http://schemas.microsoft.com/netservices/2010/10/servicebus/connect" xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><MessageCount>{total}</MessageCount><CountDetails xmlns:d2p1="http://schemas.microsoft.com/netservices/2011/06/servicebus"><d2p1:ActiveMessageCount>{active}</d2p1:ActiveMessageCount><d2p1:DeadLetterMessageCount>1</d2p1:DeadLetterMessageCount><d2p1:ScheduledMessageCount>0</d2p1:ScheduledMessageCount></CountDetails></{kind}></content></entry>"#,
        total = active + 1
    )
}

fn feed(title: &str, entries: &[String]) -> String {
    format!(
        r#"<feed xmlns="http://www.w3.org/2005/Atom"><title type="text">{title}</title>{}</feed>"#,
        entries.concat()
    )
}

fn page<'a>(
    items: impl Iterator<Item = (&'a String, &'a i64)>,
    query: &str,
    kind: &str,
) -> Vec<String> {
    let skip = query_param(query, "$skip")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let top = query_param(query, "$top")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
        .min(100);
    items
        .skip(skip)
        .take(top)
        .map(|(name, active)| entry(name, kind, *active))
        .collect()
}

fn handle(state: &Mutex<Namespace>, req: &Seen) -> (u16, &'static str, String) {
    const XML: &str = "application/atom+xml;type=entry;charset=utf-8";
    let mut ns = state.lock().unwrap();
    if !authorized(req) {
        ns.rejected += 1;
        return (
            401,
            "application/xml",
            "<Error><Code>401</Code><Detail>InvalidSignature: The token has an invalid signature.</Detail></Error>".into(),
        );
    }
    if req.method != "GET" || query_param(&req.query, "api-version").is_none() {
        return (
            400,
            "application/xml",
            "<Error><Code>400</Code></Error>".into(),
        );
    }
    let path = percent_encoding::percent_decode_str(req.path.trim_start_matches('/'))
        .decode_utf8_lossy()
        .into_owned();
    if path == "$Resources/Queues" {
        let entries = page(ns.queues.iter(), &req.query, "QueueDescription");
        return (200, XML, feed("Queues", &entries));
    }
    if let Some((topic, sub)) = path.split_once("/Subscriptions/") {
        // Like the service: an unknown entity is an empty feed, not an error status.
        return match ns.topics.get(topic).and_then(|t| t.get(sub)) {
            Some(active) => (200, XML, entry(sub, "SubscriptionDescription", *active)),
            None => (200, XML, feed("Subscriptions", &[])),
        };
    }
    if let Some(topic) = path.strip_suffix("/Subscriptions") {
        return match ns.topics.get(topic) {
            Some(subs) => {
                let entries = page(subs.iter(), &req.query, "SubscriptionDescription");
                (200, XML, feed("Subscriptions", &entries))
            }
            None => (
                404,
                "application/xml",
                "<Error><Code>404</Code></Error>".into(),
            ),
        };
    }
    match ns.queues.get(&path) {
        Some(active) => (200, XML, entry(&path, "QueueDescription", *active)),
        None => (200, XML, feed("Queues", &[])),
    }
}
