//! Maps a request path to what we serve. Pure and total: any byte string from the network
//! yields a [`Route`], never a panic.

use std::borrow::Cow;

/// What a path asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// `/apis`: APIGroupList.
    Apis,
    /// `/apis/external.metrics.k8s.io`: APIGroup.
    Group,
    /// `/apis/external.metrics.k8s.io/v1beta1`: APIResourceList (the aggregator's
    /// availability check reads this).
    GroupVersion,
    /// `/healthz`, `/readyz`, `/livez` (and their sub-checks).
    Health,
    /// `/apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/{metric}`, decoded.
    Metric {
        /// The namespace segment.
        namespace: Cow<'a, str>,
        /// The metric name segment, as requested (case preserved).
        metric: Cow<'a, str>,
    },
    /// A path segment with an invalid `%` escape or that decodes to invalid UTF-8.
    BadPath,
    /// Anything else (including `/openapi/v2` and `/openapi/v3`).
    NotFound,
}

/// Routes `path` (the URI path, without the query).
pub fn route(path: &str) -> Route<'_> {
    // One trailing slash is tolerated, as Go's mux redirects do for discovery paths.
    let path = match path.strip_suffix('/') {
        Some(trimmed) if !trimmed.is_empty() => trimmed,
        _ => path,
    };
    match path {
        "/apis" => return Route::Apis,
        "/apis/external.metrics.k8s.io" => return Route::Group,
        "/apis/external.metrics.k8s.io/v1beta1" => return Route::GroupVersion,
        "/healthz" | "/readyz" | "/livez" => return Route::Health,
        _ => {}
    }
    if let Some(check) = ["/healthz/", "/readyz/", "/livez/"]
        .iter()
        .find_map(|prefix| path.strip_prefix(prefix))
        && !check.is_empty()
        && !check.contains('/')
    {
        return Route::Health;
    }
    let Some(rest) = path.strip_prefix("/apis/external.metrics.k8s.io/v1beta1/namespaces/") else {
        return Route::NotFound;
    };
    let mut segments = rest.split('/');
    let (Some(namespace), Some(metric), None) = (segments.next(), segments.next(), segments.next())
    else {
        return Route::NotFound;
    };
    if namespace.is_empty() || metric.is_empty() {
        return Route::NotFound;
    }
    match (percent_decode(namespace), percent_decode(metric)) {
        (Some(namespace), Some(metric)) if !namespace.is_empty() && !metric.is_empty() => {
            Route::Metric { namespace, metric }
        }
        (Some(_), Some(_)) => Route::NotFound,
        _ => Route::BadPath,
    }
}

/// Decodes `%XX` escapes. `None` for a malformed escape or a result that is not UTF-8.
/// Borrows when there is nothing to decode (the common case).
pub(crate) fn percent_decode(raw: &str) -> Option<Cow<'_, str>> {
    if !raw.contains('%') {
        return Some(Cow::Borrowed(raw));
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = hex(*bytes.get(i + 1)?)?;
            let lo = hex(*bytes.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn metric<'a>(namespace: &'a str, metric: &'a str) -> Route<'a> {
        Route::Metric {
            namespace: Cow::Borrowed(namespace),
            metric: Cow::Borrowed(metric),
        }
    }

    #[test]
    fn routes_table() {
        let cases = [
            ("/apis", Route::Apis),
            ("/apis/", Route::Apis),
            ("/apis/external.metrics.k8s.io", Route::Group),
            ("/apis/external.metrics.k8s.io/v1beta1", Route::GroupVersion),
            (
                "/apis/external.metrics.k8s.io/v1beta1/",
                Route::GroupVersion,
            ),
            ("/healthz", Route::Health),
            ("/readyz", Route::Health),
            ("/livez", Route::Health),
            ("/healthz/ping", Route::Health),
            ("/readyz/a/b", Route::NotFound),
            ("/openapi/v2", Route::NotFound),
            ("/openapi/v3", Route::NotFound),
            ("/", Route::NotFound),
            ("", Route::NotFound),
            ("/apis/custom.metrics.k8s.io/v1beta1", Route::NotFound),
            ("/apis/external.metrics.k8s.io/v1beta2", Route::NotFound),
            (
                "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/s0-redis-mylist",
                metric("default", "s0-redis-mylist"),
            ),
            (
                "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/S0-Redis/",
                metric("default", "S0-Redis"),
            ),
            (
                "/apis/external.metrics.k8s.io/v1beta1/namespaces/default",
                Route::NotFound,
            ),
            (
                "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/",
                Route::NotFound,
            ),
            (
                "/apis/external.metrics.k8s.io/v1beta1/namespaces//m",
                Route::NotFound,
            ),
            (
                "/apis/external.metrics.k8s.io/v1beta1/namespaces/a/b/c",
                Route::NotFound,
            ),
            (
                "/apis/external.metrics.k8s.io/v1beta1/namespaces/a/%zz",
                Route::BadPath,
            ),
            (
                "/apis/external.metrics.k8s.io/v1beta1/namespaces/a/%ff",
                Route::BadPath,
            ),
        ];
        for (path, want) in cases {
            assert_eq!(route(path), want, "{path:?}");
        }
    }

    #[test]
    fn segments_are_percent_decoded() {
        let r = route("/apis/external.metrics.k8s.io/v1beta1/namespaces/ns/s1-m%C3%A9tric%2Fx");
        assert_eq!(r, metric("ns", "s1-métric/x"));
        assert!(matches!(
            r,
            Route::Metric {
                metric: Cow::Owned(_),
                namespace: Cow::Borrowed(_)
            }
        ));
    }

    #[test]
    fn percent_decode_edges() {
        assert_eq!(percent_decode("a%2fb").as_deref(), Some("a/b"));
        assert_eq!(percent_decode("%41%42").as_deref(), Some("AB"));
        assert_eq!(percent_decode("%"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%4g"), None);
        assert_eq!(percent_decode("%C3"), None);
        assert_eq!(percent_decode("%25"), Some(Cow::Owned("%".to_owned())));
    }

    proptest! {
        #[test]
        fn any_path_routes_without_panicking(path in "/.{0,100}") {
            let _ = route(&path);
        }

        #[test]
        fn metric_paths_with_arbitrary_segments(ns in "[^/]{0,20}", m in "[^/]{0,20}", tail in "(/[^/]{0,5}){0,2}") {
            let path = format!("/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{m}{tail}");
            if let Route::Metric { namespace, metric } = route(&path) {
                prop_assert!(!namespace.is_empty());
                prop_assert!(!metric.is_empty());
            }
        }

        #[test]
        fn encoded_segments_round_trip(ns in "[a-z0-9-]{1,20}", m in "\\PC{1,20}") {
            let encoded: String = m.bytes().map(|b| format!("%{b:02X}")).collect();
            let path = format!("/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{encoded}");
            prop_assert_eq!(route(&path), metric(&ns, &m));
        }
    }
}
