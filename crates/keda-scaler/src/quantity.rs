//! Kubernetes quantities (`500m`, `1Gi`, `2k`, `1e3`) as floats: cpu/memory targets and
//! metrics-api string values.

/// A Kubernetes quantity (`500m`, `1Gi`, `2`, `1.5e3`, `10k`) as a float.
pub fn parse_quantity(raw: &str) -> Result<f64, String> {
    let raw = raw.trim();
    let (number, multiplier) = split_suffix(raw)?;
    let well_formed = !number.is_empty()
        && number
            .trim_start_matches(['+', '-'])
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.')
        && number
            .trim_start_matches(['+', '-'])
            .chars()
            .any(|c| c.is_ascii_digit())
        && number.matches('.').count() <= 1
        && number.len() - number.trim_start_matches(['+', '-']).len() <= 1;
    if !well_formed {
        return Err("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'".to_owned());
    }
    let n: f64 = number.parse().map_err(|_| "not a number".to_owned())?;
    let v = n * multiplier;
    if v.is_finite() {
        Ok(v)
    } else {
        Err("quantity out of range".to_owned())
    }
}

fn split_suffix(raw: &str) -> Result<(&str, f64), String> {
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("Pi", 1_125_899_906_842_624.0),
        ("Ei", 1_152_921_504_606_846_976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    for (suffix, multiplier) in SUFFIXES {
        if let Some(number) = raw.strip_suffix(suffix) {
            return Ok((number, *multiplier));
        }
    }
    // Decimal exponent form: 1e3, 2E-2.
    if let Some(pos) = raw.find(['e', 'E']) {
        let (number, exp) = raw.split_at(pos);
        let exp = exp.get(1..).unwrap_or_default();
        let e: i32 = exp
            .parse()
            .map_err(|_| format!("invalid exponent in {raw:?}"))?;
        return Ok((number, 10_f64.powi(e)));
    }
    Ok((raw, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        for (q, v) in [
            ("1", 1.0),
            ("250m", 0.25),
            ("1.5", 1.5),
            ("2k", 2000.0),
            ("1Mi", 1_048_576.0),
            ("1e3", 1000.0),
        ] {
            assert_eq!(parse_quantity(q), Ok(v), "{q}");
        }
        for q in ["", "m", "abc", "1.2.3", "--1", "1x"] {
            assert!(parse_quantity(q).is_err(), "{q}");
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn never_panics(s in ".{0,20}") {
                let _ = parse_quantity(&s);
            }

            #[test]
            fn integers_parse(n in 0_u32..1_000_000) {
                prop_assert_eq!(parse_quantity(&n.to_string()), Ok(f64::from(n)));
            }
        }
    }
}
