//! Declarative trigger-parameter parsing shared by every scaler.
//!
//! A scaler declares each parameter where it reads it: its names (the first is canonical, the rest
//! are aliases), the sources it may come from in lookup order, and its type through the terminal
//! call (`required`, `optional`, `with_default`). Lookup follows KEDA's typed config: sources outer,
//! names inner, first hit wins; `resolvedEnv` is reached through `metadata["<name>FromEnv"]`; every
//! value is trimmed and a value that is empty after trimming counts as absent. Errors are collected
//! rather than returned early, so one parse reports every problem of a trigger, and their texts
//! follow KEDA's (`missing required parameter "x" in [triggerMetadata]`, `unable to set param …`).
//!
//! ```
//! use keda_scaler::params::{MetadataParser, METADATA};
//! use keda_scaler::ScalerConfig;
//!
//! let config = ScalerConfig::new("redis", 0).with_metadata([("listName", "jobs")]);
//! let mut p = MetadataParser::new(&config);
//! let list_name: String = p.param("listName").from(METADATA).required();
//! let list_length: i64 = p.param("listLength").from(METADATA).with_default(5);
//! p.finish().unwrap();
//! assert_eq!((list_name.as_str(), list_length), ("jobs", 5));
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::config::ScalerConfig;
use crate::error::ScalerError;

/// Where a parameter value may come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// `spec.triggers[i].metadata[name]`.
    TriggerMetadata,
    /// Resolved TriggerAuthentication parameters.
    AuthParams,
    /// The scale target's env var named by `metadata["<name>FromEnv"]`.
    ResolvedEnv,
}

impl Source {
    /// KEDA's name for the source, as used in error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TriggerMetadata => "triggerMetadata",
            Self::AuthParams => "authParams",
            Self::ResolvedEnv => "resolvedEnv",
        }
    }
}

/// Metadata only.
pub const METADATA: &[Source] = &[Source::TriggerMetadata];
/// Auth params only.
pub const AUTH_PARAMS: &[Source] = &[Source::AuthParams];
/// Metadata, then `FromEnv`.
pub const METADATA_ENV: &[Source] = &[Source::TriggerMetadata, Source::ResolvedEnv];
/// Metadata, then auth params.
pub const METADATA_AUTH: &[Source] = &[Source::TriggerMetadata, Source::AuthParams];
/// Metadata, then auth params, then `FromEnv`.
pub const METADATA_AUTH_ENV: &[Source] = &[
    Source::TriggerMetadata,
    Source::AuthParams,
    Source::ResolvedEnv,
];
/// Metadata, then `FromEnv`, then auth params.
pub const METADATA_ENV_AUTH: &[Source] = &[
    Source::TriggerMetadata,
    Source::ResolvedEnv,
    Source::AuthParams,
];
/// Auth params, then `FromEnv` (secrets never read from plain metadata).
pub const AUTH_ENV: &[Source] = &[Source::AuthParams, Source::ResolvedEnv];
/// `FromEnv` only.
pub const ENV: &[Source] = &[Source::ResolvedEnv];
/// Auth params, then metadata, then `FromEnv`.
pub const AUTH_METADATA_ENV: &[Source] = &[
    Source::AuthParams,
    Source::TriggerMetadata,
    Source::ResolvedEnv,
];

/// A group of parameters parsed together: a scaler's metadata struct or a shared group (TLS, auth
/// modes). Implemented by `#[derive(ScalerMetadata)]`.
pub trait FromParams: Sized {
    /// Declares and reads every parameter, in field order; problems are collected in `p`.
    fn from_params(p: &mut MetadataParser<'_>) -> Self;

    /// The parameter table, in the same order.
    fn params() -> Vec<ParamInfo>;
}

/// One row of a trigger type's parameter table (KEDA's `scalers-schema.yaml` entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamInfo {
    /// The canonical name.
    pub name: &'static str,
    /// Other accepted names.
    pub aliases: &'static [&'static str],
    /// Where it is looked up, in order.
    pub sources: &'static [Source],
    /// Declared optional (KEDA's `optional` tag); a parameter that is neither optional nor has a
    /// default is required.
    pub optional: bool,
    /// The value used when absent, as the schema shows it.
    pub default: Option<&'static str>,
    /// Allowed values (empty: any).
    pub allowed: &'static [&'static str],
    /// Values of which a list may hold at most one.
    pub exclusive: &'static [&'static str],
    /// A list separator other than the default `,`.
    pub separator: Option<char>,
    /// Removed: using it is an error with this message.
    pub deprecated: Option<&'static str>,
    /// Still accepted, on its way out.
    pub deprecated_announce: Option<&'static str>,
}

/// A looked-up and converted value, with where it was found.
#[derive(Clone, Debug, PartialEq)]
pub struct Found<T> {
    /// The converted value.
    pub value: T,
    /// The name it was found under (canonical or alias).
    pub name: &'static str,
    /// The source it was found in.
    pub source: Source,
}

/// What a successful parse leaves besides the values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParseReport {
    /// Messages of `deprecated_announce` parameters that were used (KEDA emits them as events).
    pub announcements: Vec<String>,
    /// Metadata keys (`FromEnv` stripped) no parameter declared (KEDA's optional unexpected-param check).
    pub unmatched_metadata_keys: Vec<String>,
}

/// Collects parameters of one trigger and the errors found while reading them.
#[derive(Debug)]
pub struct MetadataParser<'c> {
    config: &'c ScalerConfig,
    errors: Vec<(String, String)>,
    announcements: Vec<String>,
    consumed: BTreeSet<&'static str>,
}

impl<'c> MetadataParser<'c> {
    /// Starts parsing `config`.
    pub fn new(config: &'c ScalerConfig) -> Self {
        Self {
            config,
            errors: Vec::new(),
            announcements: Vec::new(),
            consumed: BTreeSet::new(),
        }
    }

    /// The config being parsed.
    pub fn config(&self) -> &'c ScalerConfig {
        self.config
    }

    /// Declares parameter `name`, read from metadata unless [`Param::from`] says otherwise.
    pub fn param(&mut self, name: &'static str) -> Param<'_, 'c> {
        Param {
            parser: self,
            names: vec![name],
            sources: METADATA,
            allowed: None,
            exclusive: None,
            separator: ',',
            deprecated: None,
            announce: None,
        }
    }

    /// Records a scaler-specific validation error about `parameter` (KEDA's `Validate()` step).
    pub fn error(&mut self, parameter: impl Into<String>, message: impl Into<String>) {
        self.errors.push((parameter.into(), message.into()));
    }

    /// True once any error was recorded.
    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// Ends parsing: every recorded error, joined one per line, as a single config error naming the
    /// first failing parameter.
    pub fn finish(self) -> Result<ParseReport, ScalerError> {
        if let Some((parameter, _)) = self.errors.first() {
            let message = self
                .errors
                .iter()
                .map(|(_, m)| m.as_str())
                .collect::<Vec<_>>()
                .join("\n");
            return Err(ScalerError::config(
                self.config.trigger_label(),
                parameter.clone(),
                message,
            ));
        }
        let unmatched_metadata_keys = self
            .config
            .metadata
            .keys()
            .map(|k| k.strip_suffix("FromEnv").unwrap_or(k))
            .filter(|k| !self.consumed.contains(k))
            .map(str::to_owned)
            .collect();
        Ok(ParseReport {
            announcements: self.announcements,
            unmatched_metadata_keys,
        })
    }

    /// Sources outer, names inner; trimmed; empty is absent.
    fn lookup(
        &self,
        names: &[&'static str],
        sources: &[Source],
    ) -> Option<(&'static str, Source, String)> {
        for &source in sources {
            for &name in names {
                let raw = match source {
                    Source::TriggerMetadata => self.config.metadata.get(name),
                    Source::AuthParams => self.config.auth_params.get(name),
                    Source::ResolvedEnv => self
                        .config
                        .metadata
                        .get(&format!("{name}FromEnv"))
                        .and_then(|env_name| self.config.resolved_env.get(env_name)),
                };
                if let Some(value) = raw.map(|v| v.trim()).filter(|v| !v.is_empty()) {
                    return Some((name, source, value.to_owned()));
                }
            }
        }
        None
    }
}

/// One parameter being declared; finish it with a typed terminal call.
#[derive(Debug)]
pub struct Param<'p, 'c> {
    parser: &'p mut MetadataParser<'c>,
    names: Vec<&'static str>,
    sources: &'static [Source],
    allowed: Option<&'static [&'static str]>,
    exclusive: Option<&'static [&'static str]>,
    separator: char,
    deprecated: Option<&'static str>,
    announce: Option<&'static str>,
}

impl<'p, 'c> Param<'p, 'c> {
    /// Another accepted name (KEDA's `name=a;b`), tried after the earlier names within each source.
    #[must_use]
    pub fn alias(mut self, name: &'static str) -> Self {
        self.names.push(name);
        self
    }

    /// The sources, in lookup order.
    #[must_use]
    pub fn from(mut self, sources: &'static [Source]) -> Self {
        self.sources = sources;
        self
    }

    /// The value (each element, for lists) must be one of `values` (case-sensitive).
    #[must_use]
    pub fn one_of(mut self, values: &'static [&'static str]) -> Self {
        self.allowed = Some(values);
        self
    }

    /// At most one of `values` may appear in a list value.
    #[must_use]
    pub fn exclusive(mut self, values: &'static [&'static str]) -> Self {
        self.exclusive = Some(values);
        self
    }

    /// List element separator (default `,`).
    #[must_use]
    pub fn separator(mut self, separator: char) -> Self {
        self.separator = separator;
        self
    }

    /// The parameter is gone: using it at all is an error carrying `message`.
    #[must_use]
    pub fn deprecated(mut self, message: &'static str) -> Self {
        self.deprecated = Some(message);
        self
    }

    /// The parameter still works but is on its way out: using it records `message` as an announcement.
    #[must_use]
    pub fn deprecated_announce(mut self, message: &'static str) -> Self {
        self.announce = Some(message);
        self
    }

    /// Required: absent → `missing required parameter` (and `T::default()` is returned so parsing
    /// can go on collecting errors).
    pub fn required<T: ParamValue + Default>(self) -> T {
        // The error's parameter is the canonical name; the message lists every accepted name.
        let canonical = self.names.first().copied().unwrap_or_default();
        let names = self.names.join(",");
        let sources = self
            .sources
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let deprecated = self.deprecated.is_some();
        match self.lookup_and_convert::<T>() {
            Lookup::Found(found) => found.value,
            Lookup::Invalid => T::default(),
            Lookup::Absent(parser) => {
                if !deprecated {
                    parser.error(
                        canonical,
                        format!("missing required parameter {names:?} in [{sources}]"),
                    );
                }
                T::default()
            }
        }
    }

    /// Optional: absent → `None`.
    pub fn optional<T: ParamValue>(self) -> Option<T> {
        self.found().map(|f| f.value)
    }

    /// Absent → `default`.
    pub fn with_default<T: ParamValue>(self, default: T) -> T {
        self.optional().unwrap_or(default)
    }

    /// Absent → `raw` converted as a given value would be (KEDA's `default=` tag text). A default
    /// that does not convert is reported like a bad value, so a wrong declaration fails every parse
    /// of the trigger type instead of passing unnoticed.
    pub fn with_default_text<T: ParamValue + Default>(self, raw: &'static str) -> T {
        let canonical = self.names.first().copied().unwrap_or_default();
        let separator = self.separator;
        match self.lookup_and_convert::<T>() {
            Lookup::Found(found) => found.value,
            Lookup::Invalid => T::default(),
            Lookup::Absent(parser) => T::parse_param(raw, separator).unwrap_or_else(|cause| {
                parser.error(canonical, format!("invalid default {raw:?}: {cause}"));
                T::default()
            }),
        }
    }

    /// Optional, with the name and source the value was found under (for follow-up error messages).
    pub fn found<T: ParamValue>(self) -> Option<Found<T>> {
        match self.lookup_and_convert() {
            Lookup::Found(found) => Some(found),
            Lookup::Invalid | Lookup::Absent(_) => None,
        }
    }

    fn lookup_and_convert<T: ParamValue>(self) -> Lookup<'p, 'c, T> {
        let Param {
            parser,
            names,
            sources,
            allowed,
            exclusive,
            separator,
            deprecated,
            announce,
        } = self;
        parser.consumed.extend(names.iter().copied());
        let Some((name, source, raw)) = parser.lookup(&names, sources) else {
            return Lookup::Absent(parser);
        };
        if let Some(message) = deprecated {
            let trigger_type = parser.config.trigger_type.clone();
            parser.error(name, format!("scaler {trigger_type} info: {message}"));
            return Lookup::Invalid;
        }
        if let Some(message) = announce {
            tracing::info!(
                trigger = %parser.config.trigger_label(),
                parameter = name,
                "{message}"
            );
            parser.announcements.push(message.to_owned());
        }
        let elements = || -> Vec<&str> {
            if T::IS_LIST {
                raw.split(separator).map(str::trim).collect()
            } else {
                vec![raw.as_str()]
            }
        };
        if let Some(values) = allowed
            && elements().iter().any(|e| !values.contains(e))
        {
            parser.error(
                name,
                format!(
                    "parameter {name:?} value {raw:?} must be one of [{}]",
                    values.join(" ")
                ),
            );
            return Lookup::Invalid;
        }
        if let Some(values) = exclusive
            && elements().iter().filter(|e| values.contains(e)).count() > 1
        {
            parser.error(
                name,
                format!(
                    "parameter {name:?} value {raw:?} must contain only one of [{}]",
                    values.join(" ")
                ),
            );
            return Lookup::Invalid;
        }
        match T::parse_param(&raw, separator) {
            Ok(value) => Lookup::Found(Found {
                value,
                name,
                source,
            }),
            Err(cause) => {
                parser.error(
                    name,
                    format!("unable to set param {name:?} value {raw:?}: {cause}"),
                );
                Lookup::Invalid
            }
        }
    }
}

enum Lookup<'p, 'c, T> {
    Found(Found<T>),
    /// Present but rejected; the error is already recorded.
    Invalid,
    /// Not present in any source; the parser is handed back to record a missing-parameter error.
    Absent(&'p mut MetadataParser<'c>),
}

/// A type a parameter can be converted to. Conversion follows KEDA: integers and floats are JSON
/// numbers, booleans use Go's `ParseBool` spellings, durations use Go syntax or bare milliseconds.
pub trait ParamValue: Sized {
    /// Lists are split before `one_of`/`exclusive` checks.
    const IS_LIST: bool = false;

    /// Converts the trimmed, non-empty `raw` text. The error is the cause only; the caller adds the
    /// parameter name and value.
    fn parse_param(raw: &str, separator: char) -> Result<Self, String>;
}

impl ParamValue for String {
    fn parse_param(raw: &str, _: char) -> Result<Self, String> {
        Ok(raw.to_owned())
    }
}

impl ParamValue for bool {
    fn parse_param(raw: &str, _: char) -> Result<Self, String> {
        parse_bool(raw)
    }
}

macro_rules! int_param {
    ($($t:ty),*) => {$(
        impl ParamValue for $t {
            fn parse_param(raw: &str, _: char) -> Result<Self, String> {
                let wide = parse_json_int(raw)?;
                <$t>::try_from(wide).map_err(|_| format!("out of range for {}", stringify!($t)))
            }
        }
    )*};
}
int_param!(i64, i32, u16, u32, u64, usize);

impl ParamValue for f64 {
    fn parse_param(raw: &str, _: char) -> Result<Self, String> {
        parse_json_float(raw)
    }
}

impl ParamValue for Duration {
    fn parse_param(raw: &str, _: char) -> Result<Self, String> {
        parse_duration(raw)
    }
}

impl<T: ParamValue> ParamValue for Vec<T> {
    const IS_LIST: bool = true;

    /// Split on the separator, each element trimmed; empty elements are kept (as KEDA does).
    fn parse_param(raw: &str, separator: char) -> Result<Self, String> {
        raw.split(separator)
            .map(str::trim)
            .enumerate()
            .map(|(i, element)| {
                T::parse_param(element, separator).map_err(|e| format!("slice element {i}: {e}"))
            })
            .collect()
    }
}

impl ParamValue for BTreeMap<String, String> {
    /// `k=v` pairs separated by the separator; each must have exactly one `=`.
    fn parse_param(raw: &str, separator: char) -> Result<Self, String> {
        let mut map = BTreeMap::new();
        for pair in raw.split(separator).map(str::trim) {
            let parts: Vec<&str> = pair.split('=').collect();
            let [key, value] = parts.as_slice() else {
                return Err(format!("expected format key=value, got {pair:?}"));
            };
            map.insert(key.trim().to_owned(), value.trim().to_owned());
        }
        Ok(map)
    }
}

/// Go's `strconv.ParseBool` spellings.
pub fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err("not a boolean (use true or false)".to_owned()),
    }
}

/// A JSON integer: `-?(0|[1-9][0-9]*)`; no `+`, leading zeros, fractions or exponents.
pub fn parse_json_int(raw: &str) -> Result<i128, String> {
    let digits = raw.strip_prefix('-').unwrap_or(raw);
    let well_formed = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    if !well_formed {
        return Err("not an integer".to_owned());
    }
    raw.parse::<i128>()
        .map_err(|_| "integer out of range".to_owned())
}

/// A JSON number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, finite.
pub fn parse_json_float(raw: &str) -> Result<f64, String> {
    if !is_json_number(raw) {
        return Err("not a number".to_owned());
    }
    match raw.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err("number out of range".to_owned()),
    }
}

fn is_json_number(raw: &str) -> bool {
    let b = raw.as_bytes();
    let mut i = 0;
    if b.first() == Some(&b'-') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_len = i - int_start;
    if int_len == 0 || (int_len > 1 && b[int_start] == b'0') {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == frac_start {
            return false;
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let exp_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start {
            return false;
        }
    }
    i == b.len()
}

/// Go duration syntax (`500ms`, `1m30s`, `0`), else a bare integer number of milliseconds.
/// Negative durations are rejected.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    match parse_go_duration(raw) {
        Some(Ok(d)) => Ok(d),
        Some(Err(e)) => Err(e),
        None => match parse_json_int(raw) {
            Ok(ms) if ms < 0 => Err("negative duration".to_owned()),
            Ok(ms) => u64::try_from(ms)
                .map(Duration::from_millis)
                .map_err(|_| "duration out of range".to_owned()),
            Err(_) => {
                Err("not a duration (use e.g. 30s, 500ms or a number of milliseconds)".to_owned())
            }
        },
    }
}

/// `None` when `raw` is not Go duration syntax at all (so the millisecond fallback applies).
fn parse_go_duration(raw: &str) -> Option<Result<Duration, String>> {
    let (negative, body) = match raw.as_bytes().first() {
        Some(b'-') => (true, &raw[1..]),
        Some(b'+') => (false, &raw[1..]),
        _ => (false, raw),
    };
    if body == "0" {
        return Some(Ok(Duration::ZERO));
    }
    if body.is_empty() {
        return None;
    }
    let mut total: u128 = 0;
    let mut rest = body;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after_unit) = after.split_at(unit_len);
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        if frac_part.contains('.') {
            return None;
        }
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let int_value: u128 = if int_part.is_empty() {
            0
        } else {
            match int_part.parse::<u128>() {
                Ok(v) => v,
                Err(_) => return Some(Err("duration out of range".to_owned())),
            }
        };
        let mut nanos = int_value.checked_mul(unit_nanos)?;
        // Fractions beyond what fits are dropped, like Go's truncation to nanoseconds.
        let mut scale = unit_nanos;
        for digit in frac_part.bytes().take(30) {
            scale /= 10;
            nanos += u128::from(digit - b'0') * scale;
        }
        total = total.checked_add(nanos)?;
        rest = after_unit;
    }
    if negative && total > 0 {
        return Some(Err("negative duration".to_owned()));
    }
    let Ok(total) = u64::try_from(total) else {
        return Some(Err("duration out of range".to_owned()));
    };
    Some(Ok(Duration::from_nanos(total)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ScalerConfig {
        ScalerConfig::new("test", 0)
    }

    #[test]
    fn sources_outer_names_inner() {
        let config = cfg()
            .with_metadata([("addresses", "m:1")])
            .with_auth_params([("address", "a:1")]);
        let mut p = MetadataParser::new(&config);
        let found: Found<String> = p
            .param("address")
            .alias("addresses")
            .from(METADATA_AUTH_ENV)
            .found()
            .unwrap();
        assert_eq!(found.value, "m:1");
        assert_eq!(found.name, "addresses");
        assert_eq!(found.source, Source::TriggerMetadata);
        p.finish().unwrap();
    }

    #[test]
    fn from_env_goes_through_metadata_key() {
        let config = cfg()
            .with_metadata([("passwordFromEnv", "REDIS_PW")])
            .with_resolved_env([("REDIS_PW", " s3cret ")]);
        let mut p = MetadataParser::new(&config);
        let pw: Option<String> = p.param("password").from(METADATA_ENV_AUTH).optional();
        assert_eq!(pw.as_deref(), Some("s3cret"));
        // A FromEnv key naming a variable that does not exist is simply absent.
        let config = cfg().with_metadata([("passwordFromEnv", "NOPE")]);
        let mut p = MetadataParser::new(&config);
        let pw: Option<String> = p.param("password").from(METADATA_ENV_AUTH).optional();
        assert_eq!(pw, None);
        // Without the FromEnv key, resolvedEnv is never consulted by variable name.
        let config = cfg().with_resolved_env([("password", "x")]);
        let mut p = MetadataParser::new(&config);
        let pw: Option<String> = p.param("password").from(METADATA_ENV_AUTH).optional();
        assert_eq!(pw, None);
    }

    #[test]
    fn unlisted_sources_are_never_consulted() {
        let config = cfg().with_metadata([("password", "x")]);
        let mut p = MetadataParser::new(&config);
        let pw: Option<String> = p.param("password").from(AUTH_PARAMS).optional();
        assert_eq!(pw, None);
    }

    #[test]
    fn empty_after_trim_is_missing() {
        for value in ["", "   ", "\t\n"] {
            let config = cfg().with_metadata([("listName", value), ("listLength", value)]);
            let mut p = MetadataParser::new(&config);
            let name: String = p.param("listName").required();
            let len: i64 = p.param("listLength").with_default(5);
            assert_eq!(name, "");
            assert_eq!(len, 5);
            let err = p.finish().unwrap_err();
            assert!(err.is_config());
            assert_eq!(err.parameter(), Some("listName"));
            assert_eq!(
                err.message(),
                "missing required parameter \"listName\" in [triggerMetadata]"
            );
        }
    }

    #[test]
    fn missing_required_lists_all_names_and_sources() {
        let config = cfg();
        let mut p = MetadataParser::new(&config);
        let _: String = p.param("owner").alias("org").from(METADATA_ENV).required();
        let err = p.finish().unwrap_err();
        assert_eq!(err.parameter(), Some("owner"));
        assert_eq!(
            err.message(),
            "missing required parameter \"owner,org\" in [triggerMetadata resolvedEnv]"
        );
    }

    #[test]
    fn errors_are_collected_and_joined() {
        let config = cfg().with_metadata([("listLength", "AA"), ("enable", "yes")]);
        let mut p = MetadataParser::new(&config);
        let _: String = p.param("listName").required();
        let _: i64 = p.param("listLength").with_default(5);
        let _: bool = p.param("enable").with_default(false);
        let err = p.finish().unwrap_err();
        assert_eq!(err.parameter(), Some("listName"));
        let lines: Vec<&str> = err.message().lines().collect();
        assert_eq!(
            lines,
            [
                "missing required parameter \"listName\" in [triggerMetadata]",
                "unable to set param \"listLength\" value \"AA\": not an integer",
                "unable to set param \"enable\" value \"yes\": not a boolean (use true or false)",
            ]
        );
    }

    #[test]
    fn enum_and_exclusive_checks() {
        let config = cfg().with_metadata([("mode", "fast"), ("auth", "basic, bearer")]);
        let mut p = MetadataParser::new(&config);
        let mode: Option<String> = p.param("mode").one_of(&["slow", "medium"]).optional();
        assert_eq!(mode, None);
        let auth: Option<Vec<String>> = p
            .param("auth")
            .one_of(&["basic", "bearer", "tls"])
            .exclusive(&["basic", "bearer"])
            .optional();
        assert_eq!(auth, None);
        let err = p.finish().unwrap_err();
        assert_eq!(
            err.message(),
            "parameter \"mode\" value \"fast\" must be one of [slow medium]\nparameter \"auth\" value \"basic, bearer\" must contain only one of [basic bearer]"
        );

        let config = cfg().with_metadata([("auth", "tls , basic")]);
        let mut p = MetadataParser::new(&config);
        let auth: Vec<String> = p
            .param("auth")
            .one_of(&["basic", "bearer", "tls"])
            .exclusive(&["basic", "bearer"])
            .required();
        assert_eq!(auth, ["tls", "basic"]);
        p.finish().unwrap();
    }

    #[test]
    fn deprecated_is_an_error_only_when_used() {
        let config = cfg();
        let mut p = MetadataParser::new(&config);
        let old: Option<String> = p.param("type").deprecated("use metricType").optional();
        assert_eq!(old, None);
        p.finish().unwrap();

        let config = cfg().with_metadata([("type", "Utilization")]);
        let mut p = MetadataParser::new(&config);
        let _: Option<String> = p.param("type").deprecated("use metricType").optional();
        let err = p.finish().unwrap_err();
        assert_eq!(err.message(), "scaler test info: use metricType");
        assert_eq!(err.parameter(), Some("type"));
    }

    #[test]
    fn deprecated_announce_is_accepted_and_reported() {
        let config =
            cfg().with_metadata([("queueLength", "5"), ("stray", "1"), ("hostFromEnv", "H")]);
        let mut p = MetadataParser::new(&config);
        let v: i64 = p
            .param("queueLength")
            .deprecated_announce("use value instead")
            .required();
        let _: Option<String> = p.param("host").from(METADATA_ENV).optional();
        assert_eq!(v, 5);
        let report = p.finish().unwrap();
        assert_eq!(report.announcements, ["use value instead"]);
        assert_eq!(report.unmatched_metadata_keys, ["stray"]);
    }

    #[test]
    fn lists_keep_empty_elements_and_trim() {
        let config = cfg().with_metadata([("hosts", "   a, b,    c "), ("ports", "1,,2")]);
        let mut p = MetadataParser::new(&config);
        let hosts: Vec<String> = p.param("hosts").required();
        let ports: Vec<String> = p.param("ports").required();
        assert_eq!(hosts, ["a", "b", "c"]);
        assert_eq!(ports, ["1", "", "2"]);
        let ints: Option<Vec<i64>> = p.param("ports").optional();
        assert_eq!(ints, None);
        let err = p.finish().unwrap_err();
        assert_eq!(
            err.message(),
            "unable to set param \"ports\" value \"1,,2\": slice element 1: not an integer"
        );
    }

    #[test]
    fn maps() {
        assert_eq!(
            BTreeMap::<String, String>::parse_param(" a = 1 ,b=2", ',').unwrap(),
            BTreeMap::from([("a".into(), "1".into()), ("b".into(), "2".into())])
        );
        assert!(BTreeMap::<String, String>::parse_param("a=1=2", ',').is_err());
        assert!(BTreeMap::<String, String>::parse_param("a=1,", ',').is_err());
        assert!(BTreeMap::<String, String>::parse_param("a", ',').is_err());
    }

    #[test]
    fn go_parse_bool_spellings() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_bool(t), Ok(true), "{t}");
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_bool(f), Ok(false), "{f}");
        }
        for bad in ["yes", "enable", "notvalid", "tRUE", "no", "2"] {
            assert!(parse_bool(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_numbers() {
        for (raw, want) in [("10", 10), ("-1", -1), ("0", 0), ("-0", 0)] {
            assert_eq!(i64::parse_param(raw, ','), Ok(want), "{raw}");
        }
        for bad in [
            "10.5", "1e3", "+5", "05", "NaN", "0x10", "-", "1_000", " 1", "AA",
        ] {
            assert!(i64::parse_param(bad, ',').is_err(), "{bad}");
        }
        assert!(i64::parse_param("9223372036854775808", ',').is_err());
        assert!(u32::parse_param("-1", ',').is_err());
        for (raw, want) in [
            ("10", 10.0),
            ("-1", -1.0),
            ("2.5", 2.5),
            ("1e3", 1000.0),
            ("1E-2", 0.01),
            ("0.5", 0.5),
        ] {
            assert_eq!(f64::parse_param(raw, ','), Ok(want), "{raw}");
        }
        for bad in [
            "+5", "05", "NaN", "Inf", "0x10", ".5", "5.", "1e", "1e400", "--1",
        ] {
            assert!(f64::parse_param(bad, ',').is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        let ok = [
            ("500ms", Duration::from_millis(500)),
            ("30s", Duration::from_secs(30)),
            ("1m", Duration::from_secs(60)),
            ("2h45m", Duration::from_secs(2 * 3600 + 45 * 60)),
            ("0", Duration::ZERO),
            ("1.5s", Duration::from_millis(1500)),
            ("1000", Duration::from_secs(1)),
            ("30", Duration::from_millis(30)),
            ("10us", Duration::from_micros(10)),
            ("10µs", Duration::from_micros(10)),
            ("-0s", Duration::ZERO),
        ];
        for (raw, want) in ok {
            assert_eq!(parse_duration(raw), Ok(want), "{raw}");
        }
        for bad in ["-1", "-10s", "abc", "10x", "1.2.3s", "s", "", "."] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
