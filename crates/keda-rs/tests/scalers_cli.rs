//! `keda-rs scalers` lists the registry and `--schema` prints it in KEDA's schema shape.

#![allow(clippy::unwrap_used)]

use std::process::Command;

fn run(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_keda-rs"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn lists_every_trigger_type_sorted() {
    let types: Vec<String> = run(&["scalers"]).lines().map(str::to_owned).collect();
    let expected: Vec<String> = keda_scalers::Registry::builtin()
        .trigger_types()
        .map(str::to_owned)
        .collect();
    assert_eq!(types, expected);
    assert!(types.iter().any(|t| t == "redis"));
}

#[test]
fn schema_has_kedas_shape_and_every_type() {
    let text = run(&["scalers", "--schema"]);
    let schema: keda_scalers::schema::Schema = serde_yaml::from_str(&text).unwrap();
    assert_eq!(schema.schema_version, 1);
    let redis = schema
        .scalers
        .iter()
        .find(|s| s.trigger_type == "redis")
        .unwrap();
    let list_length = redis
        .parameters
        .iter()
        .find(|p| p.name == "listLength")
        .unwrap();
    assert_eq!(list_length.default.as_deref(), Some("5"));
    assert!(list_length.metadata_variable_readable);
    let password = redis
        .parameters
        .iter()
        .find(|p| p.name == "password")
        .unwrap();
    assert!(password.optional && password.env_variable_readable);
    assert!(password.trigger_authentication_variable_readable);
    assert_eq!(
        schema.scalers.len(),
        keda_scalers::Registry::builtin().trigger_types().count()
    );
    // KEDA's field names, so the two files can be diffed.
    assert!(text.contains("metadataVariableReadable: true"));
    assert!(text.contains("kedaVersion:"));
}
