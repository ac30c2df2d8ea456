//! Metric values as Kubernetes quantity strings, with the milli precision KEDA sends.
//!
//! Same rendering as `keda_scalers::metrics::milli_quantity` (kept local so the metrics API does
//! not depend on the scaler crate's exports; the tests below pin the shared cases).

/// Renders `value` as a canonical Kubernetes decimal quantity with milli precision: 5 → `"5"`,
/// 2.5 → `"2500m"`, 1500 → `"1500"`, 1e6 → `"1M"`. NaN, ±Inf and negative values render as `"0"`.
pub fn milli_quantity(value: f64) -> String {
    if !value.is_finite() || value <= 0.0 {
        return "0".to_owned();
    }
    // Rounded to 3 decimals; the cast saturates for huge values.
    #[allow(clippy::cast_possible_truncation)]
    let milli = (value * 1000.0).round() as i64;
    canonical_decimal(milli, -3)
}

/// Canonical form of `mantissa × 10^exponent` as Kubernetes prints DecimalSI quantities: the
/// largest exponent that is a multiple of 3 and keeps the mantissa an integer, with its suffix.
fn canonical_decimal(mut mantissa: i64, mut exponent: i32) -> String {
    if mantissa == 0 {
        return "0".to_owned();
    }
    while mantissa % 10 == 0 {
        mantissa /= 10;
        exponent += 1;
    }
    while exponent.rem_euclid(3) != 0 {
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
        // Unreachable for i64 milli inputs; an exponent form the API also accepts.
        _ => return format!("{mantissa}e{exponent}"),
    };
    format!("{mantissa}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn milli_precision_table() {
        let cases = [
            (5.0, "5"),
            (2.5, "2500m"),
            (0.001, "1m"),
            (0.0004, "0"),
            (0.0005, "1m"),
            (1500.0, "1500"),
            (1000.0, "1k"),
            (1e6, "1M"),
            (1_234_567.0, "1234567"),
            (12.345_6, "12346m"),
            (0.0, "0"),
            (-0.0, "0"),
            (-3.0, "0"),
            (f64::NAN, "0"),
            (f64::INFINITY, "0"),
            (f64::NEG_INFINITY, "0"),
        ];
        for (value, want) in cases {
            assert_eq!(milli_quantity(value), want, "value {value}");
        }
    }

    #[test]
    fn huge_values_saturate_without_panicking() {
        let q = milli_quantity(f64::MAX);
        assert!(!q.is_empty());
        assert!(q.bytes().all(|b| b.is_ascii_alphanumeric()), "{q}");
    }

    /// Parses what we render back into milli-units (digits then an optional SI suffix).
    fn parse_milli(q: &str) -> Option<i128> {
        let split = q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len());
        let (digits, suffix) = q.split_at(split);
        let mantissa: i128 = digits.parse().ok()?;
        let scale: i128 = match suffix {
            "m" => 1,
            "" => 1_000,
            "k" => 1_000_000,
            "M" => 1_000_000_000,
            "G" => 1_000_000_000_000,
            "T" => 1_000_000_000_000_000,
            "P" => 1_000_000_000_000_000_000,
            "E" => 1_000_000_000_000_000_000_000,
            _ => return None,
        };
        Some(mantissa * scale)
    }

    proptest! {
        #[test]
        fn round_trips_milli_units(milli in 0_i64..1_000_000_000_000_000) {
            #[allow(clippy::cast_precision_loss)]
            let value = milli as f64 / 1000.0;
            let q = milli_quantity(value);
            #[allow(clippy::cast_possible_truncation)]
            let expected = (value * 1000.0).round() as i64;
            prop_assert_eq!(parse_milli(&q), Some(i128::from(expected)), "{}", q);
        }

        #[test]
        fn never_panics_and_is_ascii(value in any::<f64>()) {
            let q = milli_quantity(value);
            prop_assert!(!q.is_empty());
            prop_assert!(q.is_ascii());
        }
    }
}
