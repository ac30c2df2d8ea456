//! The part of GJSON path syntax (github.com/tidwall/gjson) that points at one value: keys
//! separated by `.`, `\` escaping the next character, `*`/`?` wildcards in keys, array indexes,
//! `#` for an array's length and `#.rest` to collect `rest` from every element. Queries (`#(…)`)
//! and modifiers (`@…`) are not supported and never match.

use serde_json::Value;

/// One path component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Component {
    /// A key (may hold wildcards) or, on arrays, an index.
    Key {
        /// The unescaped text.
        text: String,
        /// True when it holds an unescaped `*` or `?`.
        wild: bool,
    },
    /// `#`.
    Hash,
}

/// Splits `path` into components.
pub fn parse_path(path: &str) -> Vec<Component> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut wild = false;
    let mut escaped_any = false;
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    text.push(next);
                    escaped_any = true;
                }
            }
            '.' => {
                parts.push(finish(std::mem::take(&mut text), wild, escaped_any));
                wild = false;
                escaped_any = false;
            }
            '*' | '?' => {
                wild = true;
                text.push(c);
            }
            c => text.push(c),
        }
    }
    parts.push(finish(text, wild, escaped_any));
    parts
}

fn finish(text: String, wild: bool, escaped: bool) -> Component {
    if text == "#" && !escaped {
        Component::Hash
    } else {
        Component::Key { text, wild }
    }
}

/// The value at `path` in `doc`, if any.
pub fn get(doc: &Value, path: &str) -> Option<Value> {
    walk(doc, &parse_path(path))
}

fn walk(value: &Value, path: &[Component]) -> Option<Value> {
    let Some((first, rest)) = path.split_first() else {
        return Some(value.clone());
    };
    match (first, value) {
        (Component::Hash, Value::Array(items)) if rest.is_empty() => Some(Value::from(items.len())),
        (Component::Hash, Value::Array(items)) => Some(Value::Array(
            items.iter().filter_map(|item| walk(item, rest)).collect(),
        )),
        (Component::Key { text, wild: false }, Value::Object(map)) => {
            walk(map.get(text.as_str())?, rest)
        }
        (Component::Key { text, wild: true }, Value::Object(map)) => {
            let (_, v) = map.iter().find(|(k, _)| wildcard_match(text, k))?;
            walk(v, rest)
        }
        (Component::Key { text, wild: false }, Value::Array(items)) => {
            let index: usize = text.parse().ok()?;
            walk(items.get(index)?, rest)
        }
        _ => None,
    }
}

/// `*` matches any run of characters, `?` any one character.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matching with one backtrack point for the last `*`.
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < t.len() {
        match p.get(i) {
            Some('?') => {
                i += 1;
                j += 1;
            }
            Some('*') => {
                star = Some((i, j));
                i += 1;
            }
            Some(c) if *c == t[j] => {
                i += 1;
                j += 1;
            }
            _ => match star {
                Some((si, sj)) => {
                    i = si + 1;
                    j = sj + 1;
                    star = Some((si, sj + 1));
                }
                None => return false,
            },
        }
    }
    p[i.min(p.len())..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gjson_paths() {
        let doc = json!({
            "count": 2.43,
            "components": [{"id": "82328e93e", "tasks": 32, "str": "64", "k": "1k", "wrong": "NaN"}],
            "a.b": {"c": 5},
            "list": [1, 2, 3],
            "nested": {"deep": {"deeper": 7}},
            "people": [{"age": 1}, {"age": 2}]
        });
        assert_eq!(get(&doc, "count"), Some(json!(2.43)));
        assert_eq!(get(&doc, "components.0.tasks"), Some(json!(32)));
        assert_eq!(get(&doc, "components.0.str"), Some(json!("64")));
        assert_eq!(get(&doc, "a\\.b.c"), Some(json!(5)));
        assert_eq!(get(&doc, "list.#"), Some(json!(3)));
        assert_eq!(get(&doc, "list.2"), Some(json!(3)));
        assert_eq!(get(&doc, "list.3"), None);
        assert_eq!(get(&doc, "nest*.d??p.deeper"), Some(json!(7)));
        assert_eq!(get(&doc, "people.#.age"), Some(json!([1, 2])));
        assert_eq!(get(&doc, "missing"), None);
        assert_eq!(get(&doc, "count.x"), None);
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("a*c", "abbbc"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a?c", "abc"));
        assert!(!wildcard_match("a?c", "ac"));
        assert!(wildcard_match("*b*", "abc"));
        assert!(!wildcard_match("abc", "abcd"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn json_value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i32>().prop_map(Value::from),
                "[a-z0-9.]{0,6}".prop_map(Value::from),
            ];
            leaf.prop_recursive(4, 32, 4, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    proptest::collection::btree_map("[a-z.*?#]{0,4}", inner, 0..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #[test]
            fn lookups_never_panic(doc in json_value(), path in "[a-z0-9.*?#\\\\]{0,16}") {
                let _ = get(&doc, &path);
            }

            #[test]
            fn plain_keys_round_trip(keys in proptest::collection::vec("[a-z_]{1,8}", 1..5), leaf in any::<i64>()) {
                let mut doc = Value::from(leaf);
                for k in keys.iter().rev() {
                    doc = serde_json::json!({ k.clone(): doc });
                }
                prop_assert_eq!(get(&doc, &keys.join(".")), Some(Value::from(leaf)));
            }

            #[test]
            fn escaped_dots_round_trip(a in "[a-z]{1,4}", b in "[a-z]{1,4}", leaf in any::<i64>()) {
                let doc = serde_json::json!({ format!("{a}.{b}"): leaf });
                prop_assert_eq!(get(&doc, &format!("{a}\\.{b}")), Some(Value::from(leaf)));
            }
        }
    }
}
