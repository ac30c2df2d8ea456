//! Our CRDs on the real apiserver: every seed manifest is accepted unchanged, and the schema
//! rejects what KEDA's rejects, with the same messages.

use keda_rs_e2e::{create, documents, ensure_crds, fixtures, shared};

#[tokio::test]
async fn every_seed_fixture_is_accepted() {
    let ns = shared().namespace("seed-fixtures").await;
    ensure_crds(&ns.client).await.expect("CRDs installed");
    let mut created = 0;
    for entry in std::fs::read_dir(fixtures().join("seeds")).expect("seed fixtures") {
        let path = entry.expect("entry").path();
        if path.to_string_lossy().ends_with(".support.yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("fixture");
        for doc in documents(&text).expect("fixture parses") {
            let name = doc["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            match create(&ns.client, &ns.name, doc).await {
                Ok(_) => created += 1,
                Err(e) => panic!("{}: {name} rejected: {e}", path.display()),
            }
        }
    }
    assert_eq!(created, 8, "all KEDA objects of the seeds were created");
    ns.delete().await;
}

async fn rejection(file: &str) -> String {
    let ns = shared().namespace(file).await;
    ensure_crds(&ns.client).await.expect("CRDs installed");
    let text = std::fs::read_to_string(fixtures().join("invalid").join(file)).expect("fixture");
    let doc = documents(&text).expect("parses").remove(0);
    let outcome = create(&ns.client, &ns.name, doc).await;
    ns.delete().await;
    match outcome {
        Ok(_) => panic!("{file} was accepted"),
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 422, "{file}: {e:?}");
            e.message
        }
        Err(e) => panic!("{file}: unexpected error {e}"),
    }
}

#[tokio::test]
async fn min_above_max_is_rejected_with_kedas_message() {
    let message = rejection("min-above-max.yaml").await;
    assert!(
        message.contains("spec: Invalid value")
            && message.contains("minReplicaCount must be less than or equal to maxReplicaCount"),
        "{message}"
    );
}

#[tokio::test]
async fn scaled_object_without_triggers_is_rejected() {
    let message = rejection("no-triggers.yaml").await;
    assert!(
        message.contains("spec.triggers: Required value"),
        "{message}"
    );
}

#[tokio::test]
async fn bad_fallback_behavior_is_rejected() {
    let message = rejection("bad-fallback-behavior.yaml").await;
    assert!(
        message.contains("spec.fallback.behavior: Unsupported value: \"sometimes\"")
            && message.contains("\"currentReplicasIfHigher\""),
        "{message}"
    );
}
