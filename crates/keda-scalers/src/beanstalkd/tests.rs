//! KEDA's beanstalkd test table as facts, and the stats arithmetic.

use super::*;
use crate::Registry;
use crate::testing::{ComplianceCase, check_parsing};

fn cfg(index: usize, metadata: &[(&str, &str)]) -> ScalerConfig {
    ScalerConfig::new("beanstalkd", index).with_metadata(metadata.iter().copied())
}

const SERVER: &str = "localhost:3000";

#[test]
fn keda_metadata_table() {
    let cases: &[(&[(&str, &str)], bool)] = &[
        (&[], true),
        (
            &[
                ("server", SERVER),
                ("tube", "delayed"),
                ("value", "1"),
                ("includeDelayed", "true"),
            ],
            false,
        ),
        (
            &[("server", SERVER), ("tube", "no-delayed"), ("value", "1")],
            false,
        ),
        (
            &[
                ("tube", "stats-tube"),
                ("value", "1"),
                ("includeDelayed", "true"),
            ],
            true,
        ),
        (
            &[
                ("server", SERVER),
                ("value", "1"),
                ("includeDelayed", "true"),
            ],
            true,
        ),
        (
            &[
                ("server", SERVER),
                ("tube", "stats-tube"),
                ("includeDelayed", "true"),
            ],
            true,
        ),
        (
            &[
                ("server", SERVER),
                ("tube", "stats-tube"),
                ("value", "lots"),
                ("includeDelayed", "true"),
            ],
            true,
        ),
        (
            &[
                ("server", SERVER),
                ("tube", "stats-tube"),
                ("value", "1"),
                ("includeDelayed", "true"),
                ("timeout", "1000"),
            ],
            false,
        ),
        (
            &[
                ("server", SERVER),
                ("tube", "stats-tube"),
                ("value", "1"),
                ("includeDelayed", "true"),
                ("timeout", "-1"),
            ],
            true,
        ),
        (
            &[
                ("server", SERVER),
                ("tube", "stats-tube"),
                ("value", "1"),
                ("activationValue", "10"),
            ],
            false,
        ),
        (
            &[
                ("server", SERVER),
                ("tube", "stats-tube"),
                ("value", "1"),
                ("activationValue", "AA"),
            ],
            true,
        ),
    ];
    for (i, (metadata, is_error)) in cases.iter().enumerate() {
        let result = parse(&cfg(0, metadata));
        assert_eq!(result.is_err(), *is_error, "case {i}: {result:?}");
        if let Err(e) = result {
            assert!(e.is_config(), "case {i}: {e}");
        }
    }
    let delayed = parse(&cfg(0, cases[1].0)).unwrap();
    assert!(delayed.include_delayed);
    let plain = parse(&cfg(0, cases[2].0)).unwrap();
    assert!(!plain.include_delayed);
    assert_eq!(plain.activation_value, 0.0);
    // KEDA's duration rule reads the default "30" as milliseconds, and "1000" as one second.
    assert_eq!(plain.endpoint.timeout, Duration::from_millis(30));
    assert_eq!(
        parse(&cfg(0, cases[7].0)).unwrap().endpoint.timeout,
        Duration::from_secs(1)
    );
}

#[test]
fn keda_metric_names() {
    let name = |index, tube| {
        DESCRIPTOR
            .parse(&cfg(
                index,
                &[("server", SERVER), ("tube", tube), ("value", "1")],
            ))
            .unwrap()
            .unwrap()[0]
            .external_metric_name()
            .unwrap()
            .to_owned()
    };
    assert_eq!(name(0, "no-delayed"), "s0-beanstalkd-no-delayed");
    assert_eq!(name(1, "delayed"), "s1-beanstalkd-delayed");
    // Query-escaped as KEDA does, then normalized.
    assert_eq!(name(0, "a+b/c"), "s0-beanstalkd-a-2Bb-2Fc");
}

#[test]
fn tube_names_that_would_break_the_command_are_refused() {
    for bad in ["two words", "line\r\nbreak", "-leading", &"x".repeat(201)] {
        let err = parse(&cfg(
            0,
            &[("server", SERVER), ("tube", bad), ("value", "1")],
        ))
        .unwrap_err();
        assert_eq!(err.parameter(), Some("tube"), "{bad:?}");
    }
    assert!(
        parse(&cfg(
            0,
            &[
                ("server", SERVER),
                ("tube", "a-b_c.d$e(f);g+h/i"),
                ("value", "1")
            ]
        ))
        .is_ok()
    );
}

#[test]
fn compliance_without_a_backend() {
    check_parsing(
        &Registry::builtin(),
        &ComplianceCase {
            config: cfg(0, &[("server", SERVER), ("tube", "jobs"), ("value", "2")]),
            required: vec!["server", "tube", "value"],
            invalid: vec![
                ("value", "lots"),
                ("activationValue", "AA"),
                ("timeout", "-1"),
                ("includeDelayed", "maybe"),
            ],
            activation_param: Some("activationValue"),
            current_value: 1.0,
        },
    );
}

fn stats(fields: &[(&str, i64)]) -> Vec<u8> {
    let mut yaml = String::from("---\nname: form-crawler-notifications\n");
    for (k, v) in fields {
        yaml.push_str(&format!("{k}: {v}\n"));
    }
    yaml.into_bytes()
}

// KEDA's stats cases: value/activation against ready, reserved, delayed (buried never counts).
#[test]
fn keda_stats_cases() {
    let active = |fields: &[(&str, i64)], include_delayed: bool, activation: f64| {
        let parsed = parse_stats(&stats(fields)).unwrap();
        let reading = Reading::count_over("m", jobs(&parsed, include_delayed), activation);
        reading.active
    };
    let base = [
        ("cmd-delete", 18),
        ("current-jobs-urgent", 0),
        ("total-jobs", 24),
    ];
    let with = |extra: &[(&'static str, i64)]| {
        let mut all = base.to_vec();
        all.extend_from_slice(extra);
        all
    };
    assert!(active(
        &with(&[
            ("current-jobs-buried", 6),
            ("current-jobs-ready", 10),
            ("current-jobs-delayed", 0),
            ("current-jobs-reserved", 0)
        ]),
        false,
        0.0
    ));
    assert!(!active(
        &with(&[
            ("current-jobs-ready", 1),
            ("current-jobs-delayed", 0),
            ("current-jobs-reserved", 0)
        ]),
        false,
        2.0
    ));
    assert!(!active(
        &with(&[
            ("current-jobs-delayed", 10),
            ("current-jobs-ready", 0),
            ("current-jobs-reserved", 0)
        ]),
        false,
        0.0
    ));
    assert!(active(
        &with(&[
            ("current-jobs-delayed", 10),
            ("current-jobs-ready", 0),
            ("current-jobs-reserved", 0)
        ]),
        true,
        0.0
    ));
    let parsed = parse_stats(&stats(&[
        ("current-jobs-ready", 3),
        ("current-jobs-reserved", 2),
        ("current-jobs-delayed", 4),
    ]))
    .unwrap();
    assert_eq!(jobs(&parsed, false), 5);
    assert_eq!(jobs(&parsed, true), 9);
}

#[test]
fn garbage_stats_are_a_protocol_error() {
    let err = parse_stats(b"- not\n- a map").unwrap_err();
    assert_eq!(err.kind, crate::BackendKind::Protocol);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn stats_parsing_never_panics(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_stats(&body);
        }

        #[test]
        fn tube_validation_never_panics(tube in ".{0,300}") {
            let _ = parse(&cfg(0, &[("server", SERVER), ("tube", &tube), ("value", "1")]));
        }
    }
}
