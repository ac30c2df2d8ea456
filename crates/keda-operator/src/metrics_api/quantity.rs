//! Metric values as Kubernetes quantity strings, with the milli precision KEDA sends.
//!
//! The rendering is shared with the HPA targets (`keda_scalers::milli_quantity`); the tests
//! here pin what the HPA receives from this API.

pub use keda_scalers::milli_quantity;

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
