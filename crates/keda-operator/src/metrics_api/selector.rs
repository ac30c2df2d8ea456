//! The `labelSelector` query parameter: which ScaledObject a metric read is for.
//!
//! The HPA sends `labelSelector=scaledobject.keda.sh/name=<so>` (KEDA puts that selector in the
//! HPA's external metric). Like Kubernetes' `RequiresExactMatch`, the first requirement on that
//! key decides: `=`, `==` or `in (<one value>)` name the ScaledObject; anything else does not.
//! Other requirements are ignored, and so is syntax we do not understand: everything here is
//! network input and must never panic.

use std::borrow::Cow;

use keda_api::names::labels::SCALED_OBJECT_NAME;

use super::routes::percent_decode;

/// The decoded value of the first `labelSelector` parameter of a raw query string (`+` is a
/// space, `%XX` escapes are decoded). `None` when absent or not decodable.
pub fn label_selector_from_query(query: &str) -> Option<Cow<'_, str>> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if decode_query_component(key)? == "labelSelector" {
            decode_query_component(value)
        } else {
            None
        }
    })
}

/// The ScaledObject named by `selector`, or `None` when the selector does not pin
/// [`SCALED_OBJECT_NAME`] to exactly one non-empty value.
pub fn scaled_object_name(selector: &str) -> Option<&str> {
    top_level_terms(selector)
        .map(str::trim)
        .find(|term| requirement_key(term) == SCALED_OBJECT_NAME)
        .and_then(exact_value)
}

/// The key a requirement is about: `key op …`, or `!key` (does not exist).
fn requirement_key(term: &str) -> &str {
    let term = term.strip_prefix('!').unwrap_or(term).trim_start();
    let end = term
        .find(|c: char| c == '=' || c == '!' || c == '(' || c.is_whitespace())
        .unwrap_or(term.len());
    &term[..end]
}

/// The single non-empty value a requirement pins its key to (`=`, `==`, `in (v)`), if any.
fn exact_value(term: &str) -> Option<&str> {
    if term.starts_with('!') {
        return None;
    }
    let key = requirement_key(term);
    let rest = term.get(key.len()..)?.trim_start();
    if let Some(value) = rest.strip_prefix("==").or_else(|| rest.strip_prefix('=')) {
        return non_empty(value.trim());
    }
    let set = rest.strip_prefix("in")?.trim();
    let values = set.strip_prefix('(')?.strip_suffix(')')?;
    let mut values = values.split(',').map(str::trim);
    let first = values.next()?;
    match values.next() {
        None => non_empty(first),
        Some(_) => None,
    }
}

fn non_empty(value: &str) -> Option<&str> {
    (!value.is_empty()).then_some(value)
}

/// Splits on commas outside parentheses, so `k in (a,b),x=y` is two terms.
fn top_level_terms(selector: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(selector);
    std::iter::from_fn(move || {
        let current = rest?;
        let mut depth = 0_usize;
        for (i, c) in current.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                ',' if depth == 0 => {
                    rest = current.get(i + 1..);
                    return current.get(..i);
                }
                _ => {}
            }
        }
        rest = None;
        Some(current)
    })
}

/// A query key or value: `+` is a space, then percent-decoding.
fn decode_query_component(raw: &str) -> Option<Cow<'_, str>> {
    if raw.contains('+') {
        let spaced = raw.replace('+', " ");
        percent_decode(&spaced).map(|s| Cow::Owned(s.into_owned()))
    } else {
        percent_decode(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exact_match_forms() {
        let cases = [
            ("scaledobject.keda.sh/name=my-so", Some("my-so")),
            ("scaledobject.keda.sh/name==my-so", Some("my-so")),
            (" scaledobject.keda.sh/name = my-so ", Some("my-so")),
            ("scaledobject.keda.sh/name in (my-so)", Some("my-so")),
            ("scaledobject.keda.sh/name in ( my-so )", Some("my-so")),
            ("app=x,scaledobject.keda.sh/name=my-so", Some("my-so")),
            (
                "app in (a,b),scaledobject.keda.sh/name=my-so,tier!=x",
                Some("my-so"),
            ),
            (
                "scaledobject.keda.sh/name=a,scaledobject.keda.sh/name=b",
                Some("a"),
            ),
        ];
        for (selector, want) in cases {
            assert_eq!(scaled_object_name(selector), want, "{selector}");
        }
    }

    #[test]
    fn not_specified_forms() {
        let cases = [
            "",
            "app=x",
            "scaledobject.keda.sh/name",
            "scaledobject.keda.sh/name=",
            "scaledobject.keda.sh/name!=my-so",
            "scaledobject.keda.sh/name in (a,b)",
            "scaledobject.keda.sh/name notin (a)",
            "scaledobject.keda.sh/name in ()",
            "scaledobject.keda.sh/name in my-so",
            "!scaledobject.keda.sh/name",
            "scaledobject.keda.sh/name2=my-so",
            "xscaledobject.keda.sh/name=my-so",
            // The first requirement on the key decides, as in Kubernetes.
            "scaledobject.keda.sh/name!=a,scaledobject.keda.sh/name=b",
        ];
        for selector in cases {
            assert_eq!(scaled_object_name(selector), None, "{selector}");
        }
    }

    #[test]
    fn query_parameter_is_decoded() {
        let q = "labelSelector=scaledobject.keda.sh%2Fname%3Dmy-so";
        let selector = label_selector_from_query(q);
        assert_eq!(selector.as_deref(), Some("scaledobject.keda.sh/name=my-so"));
        let q = "limit=5&labelSelector=app+in+(a%2Cb),scaledobject.keda.sh/name=so&x";
        let selector = label_selector_from_query(q);
        assert_eq!(
            selector.as_deref(),
            Some("app in (a,b),scaledobject.keda.sh/name=so")
        );
        assert_eq!(
            scaled_object_name(selector.as_deref().unwrap_or("")),
            Some("so")
        );
        assert_eq!(label_selector_from_query(""), None);
        assert_eq!(label_selector_from_query("labelselector=x"), None);
        assert_eq!(
            label_selector_from_query("labelSelector"),
            Some(Cow::Borrowed(""))
        );
        // An undecodable first occurrence is skipped, not an error.
        assert_eq!(
            label_selector_from_query("labelSelector=%zz&labelSelector=a%3Db").as_deref(),
            Some("a=b")
        );
    }

    proptest! {
        #[test]
        fn selector_parser_never_panics(selector in ".{0,64}") {
            let _ = scaled_object_name(&selector);
        }

        #[test]
        fn selector_parser_never_panics_on_near_misses(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("scaledobject.keda.sh/name".to_owned()),
                    Just("=".to_owned()), Just("==".to_owned()), Just("!=".to_owned()),
                    Just(",".to_owned()), Just("(".to_owned()), Just(")".to_owned()),
                    Just(" in ".to_owned()), Just(" notin ".to_owned()), Just("é".to_owned()),
                    "[a-z0-9.-]{0,8}",
                ],
                0..12,
            )
        ) {
            let selector = parts.concat();
            if let Some(name) = scaled_object_name(&selector) {
                prop_assert!(!name.is_empty());
                prop_assert!(selector.contains(name));
            }
        }

        #[test]
        fn any_name_round_trips(name in "[a-z0-9]([a-z0-9.-]{0,30}[a-z0-9])?", other in "[a-z]{1,8}=[a-z]{0,8}") {
            let selector = format!("{other},{SCALED_OBJECT_NAME}={name}");
            prop_assert_eq!(scaled_object_name(&selector), Some(name.as_str()));
            let selector = format!("{SCALED_OBJECT_NAME}=={name},{other}");
            prop_assert_eq!(scaled_object_name(&selector), Some(name.as_str()));
        }

        #[test]
        fn query_parser_never_panics(query in ".{0,80}") {
            let _ = label_selector_from_query(&query);
        }
    }
}
