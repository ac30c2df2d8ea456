//! Metric specs (what the HPA is told to watch), metric values (what a poll returns), metric names
//! (`s<index>-…`, normalized) and Kubernetes quantity rendering with milli precision.

use crate::config::MetricTargetKind;

/// Characters the metric-name normalizer replaces with `-`; everything else is kept as is.
const NORMALIZED_CHARS: [char; 6] = ['/', '.', ':', '%', '(', ')'];

/// One metric of a scaler, as it goes into the HPA spec.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricSpec {
    /// An `External` metric served by our external-metrics API.
    External(ExternalMetric),
    /// A `Resource` (or `ContainerResource`, when `container_name` is set) metric: cpu/memory.
    Resource(ResourceMetric),
}

impl MetricSpec {
    /// An External metric spec.
    pub fn external(metric_name: impl Into<String>, target: MetricTarget) -> Self {
        Self::External(ExternalMetric {
            metric_name: metric_name.into(),
            target,
        })
    }

    /// The External metric name, if this is an External metric.
    pub fn external_metric_name(&self) -> Option<&str> {
        match self {
            Self::External(m) => Some(&m.metric_name),
            Self::Resource(_) => None,
        }
    }

    /// The target, whatever the metric source.
    pub fn target(&self) -> &MetricTarget {
        match self {
            Self::External(m) => &m.target,
            Self::Resource(m) => &m.target,
        }
    }
}

/// An External metric: name (already `s<index>-` prefixed) and target.
#[derive(Clone, Debug, PartialEq)]
pub struct ExternalMetric {
    /// e.g. `s0-redis-mylist`.
    pub metric_name: String,
    /// Target type and quantity.
    pub target: MetricTarget,
}

/// A Resource / ContainerResource metric.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceMetric {
    /// `cpu` or `memory`.
    pub resource: String,
    /// Set for a ContainerResource metric.
    pub container_name: Option<String>,
    /// Target type and value.
    pub target: MetricTarget,
}

/// HPA metric target: which field, and the value kept as a float until rendered.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricTarget {
    /// `averageValue`, `value` or `averageUtilization`.
    pub kind: MetricTargetKind,
    /// The target; rendered with [`milli_quantity`].
    pub value: f64,
}

impl MetricTarget {
    /// A target of `kind` with `value`.
    pub fn new(kind: MetricTargetKind, value: f64) -> Self {
        Self { kind, value }
    }

    /// A target of `kind` for a count (list length, lag): the one place a count target becomes the
    /// HPA's float.
    pub fn count(kind: MetricTargetKind, count: i64) -> Self {
        Self::new(kind, count_value(count))
    }

    /// The target as a Kubernetes quantity string (milli precision; NaN/Inf/negative → `"0"`).
    pub fn quantity(&self) -> String {
        milli_quantity(self.value)
    }
}

/// One value returned by a poll.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricValue {
    /// The name the caller asked for.
    pub metric_name: String,
    /// The raw value; activity is computed on it before any clamping.
    pub value: f64,
}

impl MetricValue {
    /// A value for `metric_name`.
    pub fn new(metric_name: impl Into<String>, value: f64) -> Self {
        Self {
            metric_name: metric_name.into(),
            value,
        }
    }

    /// The value as a Kubernetes quantity string (milli precision; NaN/Inf/negative → `"0"`).
    pub fn quantity(&self) -> String {
        milli_quantity(self.value)
    }
}

/// Replaces each of `/ . : % ( )` with `-`; case, `_`, spaces and everything else are kept.
pub fn normalize_metric_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if NORMALIZED_CHARS.contains(&c) {
                '-'
            } else {
                c
            }
        })
        .collect()
}

/// `s<index>-<suffix>`, with `suffix` used as is (for scalers whose names are not normalized).
pub fn metric_name_with_index(trigger_index: usize, suffix: &str) -> String {
    format!("s{trigger_index}-{suffix}")
}

/// `s<index>-<normalized suffix>`: the name most scalers use. The prefix is added after
/// normalizing, as KEDA does.
pub fn normalized_metric_name(trigger_index: usize, suffix: &str) -> String {
    metric_name_with_index(trigger_index, &normalize_metric_name(suffix))
}

/// A backend's count as the HPA's float: the one place the conversion happens. Counts beyond
/// 2^53 lose precision, as they do in KEDA.
pub fn count_value(count: i64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let value = count as f64;
    value
}

/// Renders `value` as a canonical Kubernetes decimal quantity with milli precision: 5 → `"5"`,
/// 2.5 → `"2500m"`, 1500 → `"1500"`, 1e6 → `"1M"`. NaN, ±Inf and negative values render as `"0"`.
pub fn milli_quantity(value: f64) -> String {
    if !value.is_finite() || value <= 0.0 {
        return "0".to_owned();
    }
    // Rounded to 3 decimals like KEDA's `%.3f`; the cast saturates for huge values.
    #[allow(clippy::cast_possible_truncation)]
    let milli = (value * 1000.0).round() as i64;
    canonical_decimal(milli, -3)
}

/// Canonical form of `mantissa × 10^exponent` as Kubernetes prints DecimalSI quantities: the largest
/// exponent that is a multiple of 3 and keeps the mantissa an integer, with its SI suffix.
fn canonical_decimal(mut mantissa: i64, mut exponent: i32) -> String {
    if mantissa == 0 {
        return "0".to_owned();
    }
    while mantissa % 10 == 0 {
        mantissa /= 10;
        exponent += 1;
    }
    while exponent.rem_euclid(3) != 0 {
        // Going back down can overflow only near i64::MAX milli-units; stay there rather than panic.
        match mantissa.checked_mul(10) {
            Some(m) => mantissa = m,
            None => break,
        }
        exponent -= 1;
    }
    let suffix = match exponent {
        -3 => "m",
        0 => "",
        3 => "k",
        6 => "M",
        9 => "G",
        12 => "T",
        15 => "P",
        18 => "E",
        // Unreachable for i64 milli inputs; fall back to an exponent form the API also accepts.
        _ => return format!("{mantissa}e{exponent}"),
    };
    format!("{mantissa}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizer_replaces_only_the_six_characters() {
        assert_eq!(
            normalize_metric_name("redis-a/b.c:d%e(f)g"),
            "redis-a-b-c-d-e-f-g"
        );
        assert_eq!(
            normalize_metric_name("Keep_Case @\"x\" -"),
            "Keep_Case @\"x\" -"
        );
        assert_eq!(normalize_metric_name(""), "");
    }

    #[test]
    fn index_prefix_added_after_normalizing() {
        assert_eq!(normalized_metric_name(0, "redis-mylist"), "s0-redis-mylist");
        assert_eq!(
            normalized_metric_name(12, "redis-my.list:1"),
            "s12-redis-my-list-1"
        );
        assert_eq!(metric_name_with_index(3, "loki"), "s3-loki");
    }

    #[test]
    fn quantities_with_milli_precision() {
        let cases: &[(f64, &str)] = &[
            (5.0, "5"),
            (2.5, "2500m"),
            (0.5, "500m"),
            (0.001, "1m"),
            (0.0004, "0"),
            (0.0005, "1m"),
            (1.0, "1"),
            (10.0, "10"),
            (100.0, "100"),
            (1000.0, "1k"),
            (1024.0, "1024"),
            (1500.0, "1500"),
            (100_000.0, "100k"),
            (1_000_000.0, "1M"),
            (1_500_000.0, "1500k"),
            (1234.5, "1234500m"),
            (2e9, "2G"),
            (0.0, "0"),
            (-0.0, "0"),
            (-3.0, "0"),
            (f64::NAN, "0"),
            (f64::INFINITY, "0"),
            (f64::NEG_INFINITY, "0"),
        ];
        for (value, want) in cases {
            assert_eq!(milli_quantity(*value), *want, "value {value}");
        }
    }

    #[test]
    fn huge_values_do_not_panic() {
        let rendered = milli_quantity(f64::MAX);
        assert!(!rendered.is_empty());
        let rendered = milli_quantity(9.2e15);
        assert!(!rendered.is_empty());
    }

    #[test]
    fn target_and_value_render_through_the_same_helper() {
        let t = MetricTarget::new(MetricTargetKind::AverageValue, 2.5);
        assert_eq!(t.quantity(), "2500m");
        let v = MetricValue::new("s0-x", 7.0);
        assert_eq!(v.quantity(), "7");
        let spec = MetricSpec::external("s0-x", t);
        assert_eq!(spec.external_metric_name(), Some("s0-x"));
        assert_eq!(spec.target().value, 2.5);
    }
}
