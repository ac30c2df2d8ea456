//! The CRDs committed under config/crd/ must be exactly what the code generates.
//! Regenerate with `cargo run -p keda-rs -- crds --output-dir config/crd`.

use std::path::PathBuf;

#[test]
fn committed_crds_match_the_generated_ones() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/crd");
    let mut stale = Vec::new();
    for (file, crd) in keda_api::crd::all() {
        let generated = keda_api::crd::to_yaml(&crd).expect("CRD renders as YAML");
        let committed = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        if committed != generated {
            stale.push(file);
        }
    }
    assert!(
        stale.is_empty(),
        "config/crd is out of date for {stale:?}; run `cargo run -p keda-rs -- crds --output-dir config/crd`"
    );
}

#[test]
fn names_scope_and_printer_columns_match_keda() {
    let crds = keda_api::crd::all();
    let get = |file: &str| {
        crds.iter()
            .find(|(f, _)| *f == file)
            .map(|(_, c)| c.clone())
            .expect("crd exists")
    };
    let columns = |file: &str| -> Vec<String> {
        get(file).spec.versions[0]
            .additional_printer_columns
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.name)
            .collect()
    };
    assert_eq!(
        columns("keda.sh_scaledobjects.yaml"),
        [
            "ScaleTargetKind",
            "ScaleTargetName",
            "Min",
            "Max",
            "Ready",
            "Active",
            "Fallback",
            "Paused",
            "Triggers",
            "Authentications",
            "Age"
        ]
    );
    assert_eq!(
        columns("keda.sh_scaledjobs.yaml"),
        [
            "Min",
            "Max",
            "Ready",
            "Active",
            "Paused",
            "Triggers",
            "Authentications",
            "Age"
        ]
    );
    assert_eq!(
        columns("keda.sh_triggerauthentications.yaml"),
        [
            "PodIdentity",
            "Secret",
            "Env",
            "VaultAddress",
            "ScaledObjects",
            "ScaledJobs"
        ]
    );
    assert_eq!(
        columns("keda.sh_clustertriggerauthentications.yaml"),
        [
            "PodIdentity",
            "Secret",
            "Env",
            "FilePath",
            "VaultAddress",
            "ScaledObjects",
            "ScaledJobs"
        ]
    );
    let names = |file: &str| get(file).spec.names;
    assert_eq!(
        names("keda.sh_scaledobjects.yaml").short_names,
        Some(vec!["so".to_string()])
    );
    assert_eq!(
        names("keda.sh_scaledjobs.yaml").short_names,
        Some(vec!["sj".to_string()])
    );
    assert_eq!(
        names("keda.sh_triggerauthentications.yaml").short_names,
        Some(vec!["ta".to_string(), "triggerauth".to_string()])
    );
    assert_eq!(
        names("keda.sh_clustertriggerauthentications.yaml").short_names,
        Some(vec!["cta".to_string(), "clustertriggerauth".to_string()])
    );
    assert_eq!(
        get("keda.sh_clustertriggerauthentications.yaml").spec.scope,
        "Cluster"
    );
    for (file, crd) in &crds {
        assert_eq!(
            crd.spec.scope == "Namespaced",
            !file.contains("cluster"),
            "{file}"
        );
        assert_eq!(
            crd.spec.names.categories,
            Some(vec!["keda".to_string()]),
            "{file}"
        );
        let v = &crd.spec.versions[0];
        assert!(v.served && v.storage, "{file}");
        assert!(
            v.subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{file} has a status subresource"
        );
    }
}
