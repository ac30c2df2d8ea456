//! Reading one number out of a metrics-api response in each `format`: `json` (GJSON path), `yaml`
//! and `xml` (dot path through maps, indexes into lists) and `prometheus` (text exposition format,
//! a `name{label="v",…}` selector). All input is untrusted: every failure is an error, never a panic.

use serde_json::Value;

use super::gjson;
use crate::quantity::parse_quantity;

/// `format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// `json` (default).
    Json,
    /// `xml`.
    Xml,
    /// `yaml`.
    Yaml,
    /// `prometheus`.
    Prometheus,
}

impl Format {
    /// From the parameter text (already enum-checked).
    pub fn from_param(text: &str) -> Self {
        match text {
            "xml" => Self::Xml,
            "yaml" => Self::Yaml,
            "prometheus" => Self::Prometheus,
            _ => Self::Json,
        }
    }
}

/// The value at `location` in `body`.
pub fn extract(format: Format, body: &[u8], location: &str) -> Result<f64, String> {
    match format {
        Format::Json => {
            let doc: Value =
                serde_json::from_slice(body).map_err(|e| format!("invalid JSON response: {e}"))?;
            let found = gjson::get(&doc, location);
            number_or_quantity(found.as_ref(), location)
        }
        Format::Yaml => {
            let doc: Value = serde_yaml::from_slice::<serde_yaml::Value>(body)
                .map_err(|e| format!("invalid YAML response: {e}"))
                .and_then(|y| {
                    serde_json::to_value(y).map_err(|e| format!("unusable YAML response: {e}"))
                })?;
            let found = walk_dot_path(&doc, location)?;
            number_or_quantity(Some(&found), location)
        }
        Format::Xml => {
            let text =
                std::str::from_utf8(body).map_err(|e| format!("invalid XML response: {e}"))?;
            let doc = xml_to_value(text)?;
            let found = walk_dot_path(&doc, location)?;
            number_or_quantity(Some(&found), location)
        }
        Format::Prometheus => {
            let text = std::str::from_utf8(body)
                .map_err(|e| format!("invalid Prometheus text response: {e}"))?;
            prometheus_value(text, location)
        }
    }
}

fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        None | Some(Value::Null) => "Null",
        Some(Value::Bool(_)) => "Bool",
        Some(Value::Number(_)) => "Number",
        Some(Value::String(_)) => "String",
        Some(Value::Array(_)) => "Array",
        Some(Value::Object(_)) => "Object",
    }
}

fn number_or_quantity(v: Option<&Value>, location: &str) -> Result<f64, String> {
    match v {
        Some(Value::Number(n)) => n
            .as_f64()
            .ok_or_else(|| format!("valueLocation {location:?} is not a representable number")),
        Some(Value::String(s)) => parse_quantity(s).map_err(|_| {
            format!(
                "valueLocation {location:?} points to a string that is not parseable as a Quantity"
            )
        }),
        other => Err(format!(
            "valueLocation {location:?} must point to a numeric value or a string parseable as a Quantity, got {}",
            type_name(other)
        )),
    }
}

/// Dot path through maps; list elements by index.
pub fn walk_dot_path(doc: &Value, location: &str) -> Result<Value, String> {
    let mut current = doc;
    for key in location.split('.') {
        let next = match current {
            Value::Object(map) => map.get(key),
            Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        current = next.ok_or_else(|| format!("key '{key}' not found in path '{location}'"))?;
    }
    Ok(current.clone())
}

/// An XML document as nested maps: `{root: {child: "text", repeated: [..], "-attr": ".."}}`.
/// Leaf elements become their text; repeated child names become lists.
pub fn xml_to_value(text: &str) -> Result<Value, String> {
    let doc = roxmltree::Document::parse(text).map_err(|e| format!("invalid XML response: {e}"))?;
    let root = doc.root_element();
    let mut top = serde_json::Map::new();
    top.insert(root.tag_name().name().to_owned(), element_value(root, 0)?);
    Ok(Value::Object(top))
}

fn element_value(node: roxmltree::Node<'_, '_>, depth: usize) -> Result<Value, String> {
    if depth > 128 {
        return Err("XML nested too deeply".to_owned());
    }
    let children: Vec<_> = node
        .children()
        .filter(roxmltree::Node::is_element)
        .collect();
    if children.is_empty() && node.attributes().len() == 0 {
        let text: String = node.children().filter_map(|c| c.text()).collect();
        return Ok(Value::String(text.trim().to_owned()));
    }
    let mut map = serde_json::Map::new();
    for attr in node.attributes() {
        map.insert(
            format!("-{}", attr.name()),
            Value::String(attr.value().to_owned()),
        );
    }
    for child in children {
        let name = child.tag_name().name().to_owned();
        let value = element_value(child, depth + 1)?;
        match map.get_mut(&name) {
            Some(Value::Array(items)) => items.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
            None => {
                map.insert(name, value);
            }
        }
    }
    Ok(Value::Object(map))
}

/// A parsed `name{k="v",…}` selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    /// Metric family name.
    pub name: String,
    /// Label pairs a sample must carry.
    pub labels: Vec<(String, String)>,
}

/// Parses a selector; label values may be quoted (`"v"`) or bare.
pub fn parse_selector(text: &str) -> Result<Selector, String> {
    let text = text.trim();
    let (name, rest) = match text.find('{') {
        Some(i) => (&text[..i], Some(&text[i..])),
        None => (text, None),
    };
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("invalid metric selector {text:?}: no metric name"));
    }
    let labels = match rest {
        None => Vec::new(),
        Some(body) => {
            let inner = body
                .strip_prefix('{')
                .and_then(|b| b.strip_suffix('}'))
                .ok_or_else(|| format!("invalid metric selector {text:?}: unbalanced braces"))?;
            parse_label_pairs(inner, false)
                .map_err(|e| format!("invalid metric selector {text:?}: {e}"))?
        }
    };
    Ok(Selector {
        name: name.to_owned(),
        labels,
    })
}

/// `k="v",k2="v2"`; with `strict` values must be quoted (the exposition format), else bare is fine.
fn parse_label_pairs(inner: &str, strict: bool) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.peek().copied() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') || key.is_empty() {
            return Err(format!("expected label=value near {key:?}"));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some('n') => value.push('\n'),
                        Some(other) => value.push(other),
                        None => break,
                    },
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(format!("unterminated value of label {key:?}"));
            }
        } else if strict {
            return Err(format!("value of label {key:?} must be quoted"));
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        pairs.push((key, value));
    }
}

/// One sample line of the exposition format.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Metric name.
    pub name: String,
    /// Labels in order.
    pub labels: Vec<(String, String)>,
    /// Value.
    pub value: f64,
}

/// Parses the text exposition format (CRLF and a missing final newline tolerated): the samples
/// and the declared type of each family.
pub fn parse_exposition(
    text: &str,
) -> Result<(Vec<Sample>, std::collections::HashMap<String, String>), String> {
    let mut samples = Vec::new();
    let mut types = std::collections::HashMap::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r').trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.split_whitespace();
            if words.next() == Some("TYPE")
                && let (Some(name), Some(kind)) = (words.next(), words.next())
            {
                types.insert(name.to_owned(), kind.to_owned());
            }
            continue;
        }
        let sample = parse_sample(line).map_err(|e| format!("line {}: {e}", n + 1))?;
        samples.push(sample);
    }
    Ok((samples, types))
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or_else(|| format!("no value in {line:?}"))?;
    let name = &line[..name_end];
    let valid_name = name.chars().enumerate().all(|(i, c)| {
        c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
    });
    if name.is_empty() || !valid_name {
        return Err(format!("invalid metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if rest.starts_with('{') {
        let close =
            closing_brace(rest).ok_or_else(|| format!("unterminated labels in {line:?}"))?;
        labels = parse_label_pairs(&rest[1..close], true)?;
        rest = &rest[close + 1..];
    }
    let mut fields = rest.split_whitespace();
    let value_text = fields
        .next()
        .ok_or_else(|| format!("no value in {line:?}"))?;
    let value = match value_text {
        "NaN" => f64::NAN,
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v
            .parse::<f64>()
            .map_err(|_| format!("invalid value {v:?}"))?,
    };
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .map_err(|_| format!("invalid timestamp {ts:?}"))?;
    }
    if fields.next().is_some() {
        return Err(format!("unexpected text after the value in {line:?}"));
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Index of the `}` closing the label set, skipping quoted values.
fn closing_brace(s: &str) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '}' if !in_quotes => return Some(i),
            _ => {}
        }
    }
    None
}

/// The first sample of the selected family carrying all the selector's labels.
pub fn prometheus_value(text: &str, location: &str) -> Result<f64, String> {
    let selector = parse_selector(location)?;
    let (samples, types) = parse_exposition(text)?;
    if let Some(kind) = types.get(&selector.name)
        && !matches!(kind.as_str(), "gauge" | "counter" | "untyped")
    {
        return Err(format!(
            "metric '{}' is a {kind}; only gauge, counter and untyped metrics are supported",
            selector.name
        ));
    }
    let mut family = samples
        .iter()
        .filter(|s| s.name == selector.name)
        .peekable();
    if family.peek().is_none() {
        return Err(format!("metric '{}' not found", selector.name));
    }
    family
        .find(|s| {
            selector
                .labels
                .iter()
                .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        })
        .map(|s| s.value)
        .ok_or_else(|| format!("value {location} not found"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROM: &str = "# HELP backend_queue_size Queue sizes\r\n# TYPE backend_queue_size gauge\r\nbackend_queue_size{queueName=\"zero\",instance=\"zero\"} 0\r\nbackend_queue_size{queueName=\"two\",instance=\"one\"} 2\r\nbackend_queue_size{queueName=\"two\",instance=\"zero\"} 20\r\n# TYPE other_total counter\r\nother_total 5 1700000000000";

    // KEDA's metrics_api_scaler_test.go extraction cases, as facts.

    #[test]
    fn json_cases() {
        let body = br#"{"count":2.43,"components":[{"id":"82328e93e","tasks":32,"str":"64","k":"1k","wrong":"NaN"}]}"#;
        assert_eq!(extract(Format::Json, body, "count"), Ok(2.43));
        assert_eq!(extract(Format::Json, body, "components.0.tasks"), Ok(32.0));
        assert_eq!(extract(Format::Json, body, "components.0.str"), Ok(64.0));
        assert_eq!(extract(Format::Json, body, "components.0.k"), Ok(1000.0));
        assert_eq!(
            extract(Format::Json, body, "components.0.wrong"),
            Err("valueLocation \"components.0.wrong\" points to a string that is not parseable as a Quantity".into())
        );
        assert!(extract(Format::Json, body, "components.0.id").is_err());
        assert_eq!(
            extract(Format::Json, body, "components"),
            Err("valueLocation \"components\" must point to a numeric value or a string parseable as a Quantity, got Array".into())
        );
        assert!(
            extract(Format::Json, body, "nope")
                .unwrap_err()
                .contains("got Null")
        );
        assert!(extract(Format::Json, b"{", "count").is_err());
    }

    #[test]
    fn yaml_cases() {
        let body = b"count: 2.43\ncomponents:\n  - id: a\n    tasks: 32\n    str: \"64\"\n    wrong: NaN\n";
        assert_eq!(extract(Format::Yaml, body, "count"), Ok(2.43));
        assert_eq!(extract(Format::Yaml, body, "components.0.tasks"), Ok(32.0));
        assert_eq!(extract(Format::Yaml, body, "components.0.str"), Ok(64.0));
        assert_eq!(
            extract(Format::Yaml, body, "components.1.tasks"),
            Err("key '1' not found in path 'components.1.tasks'".into())
        );
        assert_eq!(
            extract(Format::Yaml, body, "count2"),
            Err("key 'count2' not found in path 'count2'".into())
        );
        assert!(extract(Format::Yaml, body, "components").is_err());
    }

    #[test]
    fn xml_cases() {
        let body = b"<?xml version=\"1.0\"?><root><count>2.43</count><components><component><tasks>32</tasks></component><component><tasks>4</tasks></component></components><k>1k</k><bad>x</bad></root>";
        assert_eq!(extract(Format::Xml, body, "root.count"), Ok(2.43));
        assert_eq!(
            extract(Format::Xml, body, "root.components.component.1.tasks"),
            Ok(4.0)
        );
        assert_eq!(extract(Format::Xml, body, "root.k"), Ok(1000.0));
        assert!(extract(Format::Xml, body, "root.bad").is_err());
        assert_eq!(
            extract(Format::Xml, body, "root.nope"),
            Err("key 'nope' not found in path 'root.nope'".into())
        );
        assert!(extract(Format::Xml, b"<a><b></a>", "a.b").is_err());
    }

    #[test]
    fn prometheus_cases() {
        assert_eq!(
            prometheus_value(PROM, "backend_queue_size{queueName=\"two\"}"),
            Ok(2.0)
        );
        assert_eq!(
            prometheus_value(
                PROM,
                "backend_queue_size{queueName=\"two\", instance=\"zero\"}"
            ),
            Ok(20.0)
        );
        assert_eq!(
            prometheus_value(PROM, "backend_queue_size{invalid=test}"),
            Err("value backend_queue_size{invalid=test} not found".into())
        );
        assert_eq!(prometheus_value(PROM, "backend_queue_size"), Ok(0.0));
        assert_eq!(prometheus_value(PROM, "other_total"), Ok(5.0));
        assert_eq!(
            prometheus_value(PROM, "missing"),
            Err("metric 'missing' not found".into())
        );
        assert!(prometheus_value("bad line here\n", "x").is_err());
        assert!(prometheus_value(PROM, "{a=\"b\"}").is_err());
        let hist = "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n";
        assert!(prometheus_value(hist, "h").is_err());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn format_parsers_never_panic(body in proptest::collection::vec(any::<u8>(), 0..300), location in ".{0,20}") {
                for f in [Format::Json, Format::Yaml, Format::Xml, Format::Prometheus] {
                    let _ = extract(f, &body, &location);
                }
            }

            #[test]
            fn text_like_inputs_never_panic(body in "[a-z_{}=\",. 0-9#\\n\\r<>/:-]{0,200}", location in "[a-z_{}=\",. 0-9]{0,20}") {
                for f in [Format::Json, Format::Yaml, Format::Xml, Format::Prometheus] {
                    let _ = extract(f, body.as_bytes(), &location);
                }
            }

            #[test]
            fn exposition_round_trip(
                name in "[a-z_][a-z0-9_]{0,10}",
                labels in proptest::collection::vec(("[a-z_]{1,6}", "[a-zA-Z0-9 \"\\\\,{}=]{0,8}"), 0..4),
                value in -1e9_f64..1e9,
                crlf in any::<bool>(),
            ) {
                let mut seen = std::collections::HashSet::new();
                let labels: Vec<_> = labels.into_iter().filter(|(k, _)| seen.insert(k.clone())).collect();
                let escape = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
                let rendered = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect::<Vec<_>>().join(",");
                let nl = if crlf { "\r\n" } else { "\n" };
                let text = format!("# TYPE {name} gauge{nl}{name}{{{rendered}}} {value}");
                let (samples, _) = parse_exposition(&text).unwrap();
                prop_assert_eq!(samples.len(), 1);
                prop_assert_eq!(&samples[0].labels, &labels);
                prop_assert_eq!(samples[0].value, value);
                let selector = format!("{name}{{{rendered}}}");
                prop_assert_eq!(prometheus_value(&text, &selector), Ok(value));
            }

            #[test]
            fn json_numbers_round_trip(v in -1e12_f64..1e12, key in "[a-z]{1,8}") {
                // serde_json's fast float parsing may differ in the last bit.
                let close = |got: Result<f64, String>| got.is_ok_and(|g| (g - v).abs() <= v.abs() * 1e-15);
                let body = serde_json::json!({ key.clone(): v }).to_string();
                prop_assert!(close(extract(Format::Json, body.as_bytes(), &key)));
                let yaml = format!("{key}: {v}\n");
                prop_assert!(close(extract(Format::Yaml, yaml.as_bytes(), &key)));
            }
        }
    }
}
