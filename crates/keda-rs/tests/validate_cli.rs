//! `keda-rs validate` exit codes and output, run as a user would run it.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn validate(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keda-rs"))
        .arg("validate")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("keda-rs runs");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("keda-rs finishes")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn every_seed_fixture_passes_the_schema() {
    let seeds = fixtures().join("seeds");
    for entry in std::fs::read_dir(&seeds).expect("seed fixtures") {
        let path = entry.expect("entry").path();
        let out = validate(
            &["--schema-only", "-f", path.to_str().expect("utf-8 path")],
            None,
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            path.display(),
            stdout(&out)
        );
    }
    // The folder form covers all of them at once and counts the KEDA objects.
    let out = validate(
        &["--schema-only", "-f", seeds.to_str().expect("utf-8 path")],
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("8 KEDA object(s) checked, 0 invalid"));
}

#[test]
fn the_seeds_trigger_mistakes_are_found() {
    // What the tutorials lost or got wrong, which KEDA too would only report after applying:
    // a redis trigger without an address, an elided trigger type, a scaler type that does not exist.
    let seeds = fixtures().join("seeds");
    let out = validate(&["-f", seeds.to_str().expect("utf-8 path")], None);
    assert_eq!(out.status.code(), Some(1));
    let errors: Vec<String> = stdout(&out)
        .lines()
        .filter(|l| l.contains(": error: "))
        .map(String::from)
        .collect();
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(
        errors[0].contains("ScaledJob csv-processor: error: spec.triggers[0].metadata.address:"),
        "{errors:#?}"
    );
    assert!(errors[1].contains(
        "ScaledObject ftonend-scaler: error: spec.triggers[0].type: no scaler found for type: ..."
    ));
    assert!(
        errors[2].contains("error: spec.triggers[0].type: no scaler found for type: rabbit-queue")
    );
    // Seed 003's kafka trigger goes through the kafka scaler's parser and is valid.
    assert!(
        !stdout(&out).contains("the kafka scaler is not built"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn operator_rules_and_scaler_metadata_are_checked() {
    let text = r#"
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: idle-not-below-min}
spec:
  scaleTargetRef: {name: w}
  idleReplicaCount: 0
  triggers: [{type: redis, metadata: {address: "r:6379", listName: q}}]
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: duplicate-names}
spec:
  scaleTargetRef: {name: w}
  triggers:
  - {type: redis, name: a, metadata: {address: "r:6379", listName: q}}
  - {type: redis, name: a, metadata: {address: "r:6379", listName: p}}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: bad-list-length}
spec:
  scaleTargetRef: {name: w}
  triggers: [{type: redis, metadata: {address: "r:6379", listName: q, listLength: abc}}]
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: from-env}
spec:
  scaleTargetRef: {name: w}
  triggers: [{type: redis, metadata: {addressFromEnv: REDIS_ADDRESS, listName: q}}]
---
apiVersion: keda.sh/v1alpha1
kind: ScaledJob
metadata: {name: job-metric-type}
spec:
  jobTargetRef: {template: {spec: {containers: [{name: c, image: i}]}}}
  triggers: [{type: redis, metricType: Value, metadata: {address: "r:6379", listName: q}}]
"#;
    let out = validate(&["-f", "-"], Some(text));
    assert_eq!(out.status.code(), Some(1));
    let o = stdout(&out);
    assert!(
        o.contains("ScaledObject idle-not-below-min: error: spec.idleReplicaCount: IdleReplicaCount=0 must be less than MinReplicaCount=0"),
        "{o}"
    );
    assert!(o.contains("ScaledObject duplicate-names: error: spec.triggers: triggerName \"a\" is defined multiple times"), "{o}");
    assert!(
        o.contains("ScaledObject bad-list-length: error: spec.triggers[0].metadata.listLength:"),
        "{o}"
    );
    assert!(
        o.contains("ScaledObject from-env: warning: spec.triggers[0].metadata.address:"),
        "{o}"
    );
    assert!(
        o.contains("ScaledJob job-metric-type: error: spec.triggers[0].metricType:"),
        "{o}"
    );
}

#[test]
fn each_bad_manifest_exits_1_naming_the_field() {
    let cases = [
        (
            "min-above-max.yaml",
            "ScaledObject min-above-max: error: spec.minReplicaCount: minReplicaCount must be less than or equal to maxReplicaCount",
        ),
        (
            "no-triggers.yaml",
            "ScaledObject no-triggers: error: spec.triggers: required field is missing",
        ),
        (
            "bad-fallback-behavior.yaml",
            "ScaledObject bad-fallback-behavior: error: spec.fallback.behavior: unsupported value \"sometimes\"",
        ),
        (
            "ta-file-path.yaml",
            "TriggerAuthentication ta-file-path: error: spec.filePath: filePath is only allowed on a ClusterTriggerAuthentication",
        ),
        (
            "cta-aws-role-and-workload.yaml",
            "ClusterTriggerAuthentication cta-aws-role-and-workload: error: spec.podIdentity.roleArn: roleArn cannot be used together with identityOwner: workload",
        ),
    ];
    for (file, expected) in cases {
        let path = fixtures().join("invalid").join(file);
        let out = validate(&["-f", path.to_str().expect("utf-8 path")], None);
        assert_eq!(out.status.code(), Some(1), "{file}: {}", stdout(&out));
        assert!(
            stdout(&out).contains(expected),
            "{file}: expected {expected:?} in {:?}",
            stdout(&out)
        );
        assert_eq!(
            stdout(&out).lines().count(),
            1,
            "one line per problem: {}",
            stdout(&out)
        );
    }
}

#[test]
fn unreadable_input_exits_2() {
    let not_yaml = fixtures().join("invalid/not-yaml.yaml");
    let out = validate(&["-f", not_yaml.to_str().expect("utf-8 path")], None);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid YAML"));
    let out = validate(&["-f", "/nonexistent/keda.yaml"], None);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn reads_stdin_and_ignores_other_kinds() {
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\n\
                apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: ok}\n\
                spec: {scaleTargetRef: {name: w}, triggers: [{type: cpu, metricType: Utilization, metadata: {value: '50'}}]}\n";
    let out = validate(&["-f", "-"], Some(text));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 KEDA object(s) checked"));
}
