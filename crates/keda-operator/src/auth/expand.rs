//! Kubernetes' `$(VAR)` expansion of container env values: `$(NAME)` is replaced by an already
//! defined variable, an undefined reference stays as written, and `$$` escapes a literal `$`.

use std::collections::BTreeMap;

pub fn expand(input: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('(') {
            match tail.find(')') {
                Some(end) => {
                    let name = &tail[..end];
                    match vars.get(name) {
                        Some(value) => out.push_str(value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &tail[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = tail;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vars() -> BTreeMap<String, String> {
        [("HOST", "redis"), ("PORT", "6379")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn table() {
        let cases = [
            ("$(HOST):$(PORT)", "redis:6379"),
            ("$$(HOST)", "$(HOST)"),
            ("$(MISSING)", "$(MISSING)"),
            ("a$b", "a$b"),
            ("$", "$"),
            ("$$", "$"),
            ("$(HOST", "$(HOST"),
            ("x$(HOST)y$$z", "xredisy$z"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, &vars()), want, "{input}");
        }
    }

    proptest! {
        #[test]
        fn never_panics_and_plain_text_is_unchanged(s in ".*") {
            let out = expand(&s, &vars());
            if !s.contains('$') {
                prop_assert_eq!(out, s);
            }
        }
    }
}
