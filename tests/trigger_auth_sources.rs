//! TriggerAuthentication sources that need more than a Secret: bound ServiceAccount tokens
//! (checked with a real TokenReview), HashiCorp Vault (token and Kubernetes auth, kv v1 and v2,
//! PKI) against a Vault API test double, and the TriggerAuthentication controller's finalizer,
//! events and status lists.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::events::v1::Event;
use keda_api::common::ScaleTriggers;
use keda_api::{ScaledObject, TriggerAuthentication};
use keda_operator::auth::{AuthOptions, AuthResolver, WorkloadTemplate};
use keda_rs_e2e::operator::shared_operator;
use keda_rs_e2e::vault_double::VaultDouble;
use keda_rs_e2e::{TestNamespace, shared, wait_for};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

async fn trigger_auth(ns: &TestNamespace, name: &str, spec: Value) {
    let ta: TriggerAuthentication = serde_json::from_value(json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
        "metadata": {"name": name}, "spec": spec
    }))
    .expect("valid TriggerAuthentication");
    ns.api::<TriggerAuthentication>()
        .create(&PostParams::default(), &ta)
        .await
        .expect("created");
}

async fn service_account(ns: &TestNamespace, name: &str) {
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("sa");
    ns.api::<ServiceAccount>()
        .create(&PostParams::default(), &sa)
        .await
        .expect("service account");
}

fn trigger_with_auth(name: &str) -> ScaleTriggers {
    serde_json::from_value(json!({
        "type": "redis", "metadata": {"listName": "q"},
        "authenticationRef": {"name": name}
    }))
    .expect("trigger")
}

async fn resolver(options: AuthOptions) -> AuthResolver {
    AuthResolver::new(shared().client().await, options)
}

async fn resolve(
    resolver: &AuthResolver,
    ns: &TestNamespace,
    ta: &str,
) -> Result<std::collections::BTreeMap<String, String>, String> {
    resolver
        .resolve(
            &ns.name,
            &trigger_with_auth(ta),
            None,
            &WorkloadTemplate::given(None),
        )
        .await
        .map(|r| r.auth_params)
        .map_err(|e| e.to_string())
}

async fn review(token: &str) -> (bool, String) {
    let api: Api<TokenReview> = Api::all(shared().client().await);
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: token.to_string(),
            ..TokenReviewSpec::default()
        },
        ..TokenReview::default()
    };
    let status = api
        .create(&PostParams::default(), &review)
        .await
        .expect("token review")
        .status
        .unwrap_or_default();
    (
        status.authenticated == Some(true),
        status.user.and_then(|u| u.username).unwrap_or_default(),
    )
}

#[tokio::test]
async fn bound_service_account_token_is_accepted_by_the_apiserver() {
    shared_operator();
    let ns = shared().namespace("auth-bound-token").await;
    service_account(&ns, "scaler-reader").await;
    trigger_auth(
        &ns,
        "bound",
        json!({"boundServiceAccountToken": [{"parameter": "bearerToken", "serviceAccountName": "scaler-reader"}]}),
    )
    .await;
    let resolver = resolver(AuthOptions::default()).await;
    let params = resolve(&resolver, &ns, "bound").await.expect("resolved");
    let token = &params["bearerToken"];
    let (authenticated, user) = review(token).await;
    assert!(authenticated, "TokenReview accepts the token");
    assert_eq!(
        user,
        format!("system:serviceaccount:{}:scaler-reader", ns.name)
    );
    // Re-resolving within the token's half-life reuses it: credentials look unchanged, so
    // scalers are not rebuilt every polling interval.
    let again = resolve(&resolver, &ns, "bound").await.expect("resolved");
    assert_eq!(&again["bearerToken"], token);

    trigger_auth(
        &ns,
        "bound-missing",
        json!({"boundServiceAccountToken": [{"parameter": "bearerToken", "serviceAccountName": "nobody"}]}),
    )
    .await;
    let error = resolve(&resolver, &ns, "bound-missing").await.unwrap_err();
    assert!(
        error.contains("ServiceAccount \"nobody\" not found"),
        "{error}"
    );
    ns.delete().await;
}

#[tokio::test]
async fn vault_token_auth_reads_kv_v1_and_v2_and_issues_pki() {
    shared_operator();
    let ns = shared().namespace("auth-vault-token").await;
    let vault = VaultDouble::start(shared().client().await, "root-token", Some("team-a")).await;
    vault.put_kv1("redis", json!({"password": "v1-pw"}));
    vault.put_kv2("redis", json!({"password": "v2-pw", "port": 6379}));
    trigger_auth(
        &ns,
        "vault",
        json!({"hashiCorpVault": {
            "address": vault.address(), "authentication": "token", "namespace": "team-a",
            "credential": {"token": "root-token"},
            "secrets": [
                {"parameter": "v1", "path": "kv/redis", "key": "password", "type": "secret"},
                {"parameter": "v2", "path": "secret/data/redis", "key": "password", "type": "secretV2"},
                {"parameter": "auto", "path": "secret/data/redis", "key": "password"},
                {"parameter": "port", "path": "secret/data/redis", "key": "port"},
                {"parameter": "cert", "path": "pki/issue/keda", "key": "certificate", "type": "pki",
                 "pkiData": {"commonName": "worker.example", "altNames": "a.example,b.example", "ttl": "1h"}},
                {"parameter": "ca", "path": "pki/issue/keda", "key": "issuing_ca", "type": "pki",
                 "pkiData": {"commonName": "worker.example"}}
            ]}}),
    )
    .await;
    let resolver = resolver(AuthOptions::default()).await;
    let params = resolve(&resolver, &ns, "vault").await.expect("resolved");
    assert_eq!(params["v1"], "v1-pw");
    assert_eq!(params["v2"], "v2-pw");
    assert_eq!(params["auto"], "v2-pw", "kv v2 detected by its nested data");
    assert_eq!(params["port"], "6379", "non-string values as JSON text");
    assert!(params["cert"].starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(params["ca"], vault.ca_pem());
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::CertificateDer::from_pem_slice(params["cert"].as_bytes())
        .expect("PEM certificate");
    // dNSName SANs are plain ASCII inside the DER.
    assert!(
        der.windows(9).any(|w| w == b"b.example"),
        "altNames reach the PKI request"
    );

    // The operator's VAULT_TOKEN wins over the spec's token; a wrong one is refused by Vault.
    let wrong = resolver_with_token("wrong").await;
    let error = resolve(&wrong, &ns, "vault").await.unwrap_err();
    assert!(
        error.contains("hashiCorpVault") && error.contains("403"),
        "{error}"
    );

    // A key the secret does not have is named, not turned into "".
    trigger_auth(
        &ns,
        "vault-no-key",
        json!({"hashiCorpVault": {
            "address": vault.address(), "authentication": "token", "namespace": "team-a",
            "credential": {"token": "root-token"},
            "secrets": [{"parameter": "password", "path": "kv/redis", "key": "nope"}]}}),
    )
    .await;
    let error = resolve(&resolver, &ns, "vault-no-key").await.unwrap_err();
    assert!(
        error.contains("\"nope\"") && error.contains("key not found"),
        "{error}"
    );
    ns.delete().await;
}

async fn resolver_with_token(token: &str) -> AuthResolver {
    resolver(AuthOptions {
        vault_token: Some(token.to_string()),
        ..AuthOptions::default()
    })
    .await
}

#[tokio::test]
async fn vault_kubernetes_auth_logs_in_with_a_service_account_token() {
    shared_operator();
    let ns = shared().namespace("auth-vault-k8s").await;
    let vault = VaultDouble::start(shared().client().await, "root-token", None).await;
    vault.put_kv2("app/redis", json!({"password": "from-k8s-login"}));
    service_account(&ns, "vault-reader").await;
    service_account(&ns, "someone-else").await;
    vault.allow_role("keda", &ns.name, "vault-reader");
    let spec = |sa: &str| {
        json!({"hashiCorpVault": {
            "address": vault.address(), "authentication": "kubernetes",
            "mount": "kubernetes", "role": "keda",
            "credential": {"serviceAccountName": sa},
            "secrets": [{"parameter": "password", "path": "secret/data/app/redis", "key": "password"}]}})
    };
    trigger_auth(&ns, "vault-k8s", spec("vault-reader")).await;
    trigger_auth(&ns, "vault-k8s-denied", spec("someone-else")).await;
    let resolver = resolver(AuthOptions::default()).await;
    let params = resolve(&resolver, &ns, "vault-k8s")
        .await
        .expect("resolved");
    assert_eq!(params["password"], "from-k8s-login");
    assert!(
        vault
            .requests()
            .contains(&"POST /v1/auth/kubernetes/login".to_string())
    );
    let error = resolve(&resolver, &ns, "vault-k8s-denied")
        .await
        .unwrap_err();
    assert!(error.contains("login") && error.contains("403"), "{error}");

    // Without mount/role the configuration is refused before any request.
    trigger_auth(
        &ns,
        "vault-k8s-no-role",
        json!({"hashiCorpVault": {"address": vault.address(), "authentication": "kubernetes",
               "mount": "kubernetes", "secrets": [{"parameter": "p", "path": "kv/x", "key": "k"}]}}),
    )
    .await;
    let error = resolve(&resolver, &ns, "vault-k8s-no-role")
        .await
        .unwrap_err();
    assert!(error.contains("role"), "{error}");
    ns.delete().await;
}

async fn events_for(ns: &TestNamespace, name: &str) -> Vec<(String, String)> {
    ns.api::<Event>()
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect()
}

async fn wait_event(ns: &TestNamespace, name: &str, reason: &str) -> String {
    wait_for(Duration::from_secs(30), || async {
        events_for(ns, name)
            .await
            .into_iter()
            .find(|(r, _)| r == reason)
            .map(|(_, note)| note)
    })
    .await
    .unwrap_or_else(|_| panic!("no {reason} event for {name}"))
}

async fn scaled_objects_list(ns: &TestNamespace, ta: &str) -> Option<String> {
    ns.api::<TriggerAuthentication>()
        .get(ta)
        .await
        .ok()?
        .status?
        .scaledobjects
}

#[tokio::test]
async fn trigger_authentication_lifecycle_events_finalizer_and_status_list() {
    shared_operator();
    let ns = shared().namespace("auth-lifecycle").await;
    trigger_auth(
        &ns,
        "shared-auth",
        json!({"secretTargetRef": [{"parameter": "password", "name": "s", "key": "k"}]}),
    )
    .await;
    let tas = ns.api::<TriggerAuthentication>();
    let note = wait_event(&ns, "shared-auth", "TriggerAuthenticationAdded").await;
    assert_eq!(note, "New TriggerAuthentication configured");
    let ta = tas.get("shared-auth").await.expect("ta");
    assert!(ta.finalizers().iter().any(|f| f == "finalizer.keda.sh"));

    for name in ["first", "second"] {
        let so: ScaledObject = serde_json::from_value(json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": name},
            "spec": {"scaleTargetRef": {"name": name},
                "triggers": [{"type": "redis", "metadata": {"address": "127.0.0.1:1", "listName": "q"},
                              "authenticationRef": {"name": "shared-auth"}}]}
        }))
        .expect("so");
        ns.api::<ScaledObject>()
            .create(&PostParams::default(), &so)
            .await
            .expect("so created");
    }
    wait_for(Duration::from_secs(30), || async {
        scaled_objects_list(&ns, "shared-auth")
            .await
            .filter(|l| l.split(',').count() == 2)
    })
    .await
    .expect("both ScaledObjects are listed in the TriggerAuthentication's status");

    // A spec change: KEDA's quirky reason and message for a namespaced TriggerAuthentication.
    tas.patch(
        "shared-auth",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"secretTargetRef": [{"parameter": "password", "name": "s2", "key": "k"}]}})),
    )
    .await
    .expect("patched");
    let note = wait_event(&ns, "shared-auth", "ClusterTriggerAuthenticationUpdated").await;
    assert_eq!(note, "ClusterTriggerAuthentication shared-auth is updated");
    // The status-list writes did not count as updates.
    let updates = events_for(&ns, "shared-auth")
        .await
        .into_iter()
        .filter(|(r, _)| r == "ClusterTriggerAuthenticationUpdated")
        .count();
    assert_eq!(updates, 1);

    ns.api::<ScaledObject>()
        .delete("first", &DeleteParams::default())
        .await
        .expect("deleted");
    wait_for(Duration::from_secs(30), || async {
        scaled_objects_list(&ns, "shared-auth")
            .await
            .filter(|l| l == "second")
    })
    .await
    .expect("the deleted ScaledObject leaves the list");

    tas.delete("shared-auth", &DeleteParams::default())
        .await
        .expect("deleted");
    wait_event(&ns, "shared-auth", "TriggerAuthenticationDeleted").await;
    wait_for(Duration::from_secs(30), || async {
        tas.get_opt("shared-auth")
            .await
            .ok()
            .and_then(|o| o.is_none().then_some(()))
    })
    .await
    .expect("finalizer removed, object gone");
    ns.delete().await;
}

/// Server-side applies every document of `yaml`, putting namespaced objects without a namespace
/// into `namespace`.
async fn apply_all(client: &kube::Client, yaml: &str, namespace: &str) {
    for mut doc in keda_rs_e2e::documents(yaml).expect("yaml") {
        let api_version = doc["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
        let gvk = kube::core::GroupVersionKind::gvk(group, version, &kind);
        let (resource, caps) = kube::discovery::pinned_kind(client, &gvk)
            .await
            .expect("discovery");
        let name = doc["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let api: Api<kube::api::DynamicObject> = if caps.scope == kube::discovery::Scope::Namespaced
        {
            let ns = doc["metadata"]["namespace"]
                .as_str()
                .unwrap_or(namespace)
                .to_string();
            doc["metadata"]["namespace"] = Value::String(ns.clone());
            Api::namespaced_with(client.clone(), &ns, &resource)
        } else {
            Api::all_with(client.clone(), &resource)
        };
        api.patch(
            &name,
            &PatchParams::apply("keda-rs-tests").force(),
            &Patch::Apply(&doc),
        )
        .await
        .unwrap_or_else(|e| panic!("apply {kind} {name}: {e}"));
    }
}

/// A client that acts as the operator's ServiceAccount, so only config/rbac's grants apply.
async fn as_operator_service_account() -> kube::Client {
    let kubeconfig =
        kube::config::Kubeconfig::read_from(shared().kubeconfig_path()).expect("kubeconfig");
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("config");
    config.auth_info.impersonate = Some("system:serviceaccount:keda:keda-operator".into());
    config.auth_info.impersonate_groups = Some(vec![
        "system:serviceaccounts".into(),
        "system:serviceaccounts:keda".into(),
        "system:authenticated".into(),
    ]);
    kube::Client::try_from(config).expect("client")
}

#[tokio::test]
async fn least_privilege_rbac_reads_only_the_named_secrets() {
    shared_operator();
    let ns = shared().namespace("auth-rbac").await;
    let admin = shared().client().await;
    let rbac = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rbac/operator.yaml"),
    )
    .expect("config/rbac/operator.yaml");
    apply_all(&admin, &rbac, "keda").await;
    // The per-namespace grant, as config/rbac/namespace-access.yaml shows it, for one Secret.
    let access = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rbac/namespace-access.yaml"),
    )
    .expect("config/rbac/namespace-access.yaml")
    .replace("namespace: my-app", &format!("namespace: {}", ns.name));
    apply_all(&admin, &access, &ns.name).await;

    let secrets = ns.api::<k8s_openapi::api::core::v1::Secret>();
    for name in ["redis-auth", "unrelated"] {
        let s: k8s_openapi::api::core::v1::Secret = serde_json::from_value(
            json!({"metadata": {"name": name}, "stringData": {"password": format!("{name}-pw")}}),
        )
        .expect("secret");
        secrets
            .create(&PostParams::default(), &s)
            .await
            .expect("secret");
    }
    trigger_auth(
        &ns,
        "granted",
        json!({"secretTargetRef": [{"parameter": "password", "name": "redis-auth", "key": "password"}]}),
    )
    .await;
    trigger_auth(
        &ns,
        "not-granted",
        json!({"secretTargetRef": [{"parameter": "password", "name": "unrelated", "key": "password"}]}),
    )
    .await;

    let operator = as_operator_service_account().await;
    let resolver = AuthResolver::new(operator.clone(), AuthOptions::default());
    // RBAC grants propagate through the apiserver's authorizer cache; allow a moment.
    let params = wait_for(Duration::from_secs(15), || async {
        resolve(&resolver, &ns, "granted").await.ok()
    })
    .await
    .expect("the named Secret is readable with the shipped RBAC");
    assert_eq!(params["password"], "redis-auth-pw");

    let error = resolve(&resolver, &ns, "not-granted").await.unwrap_err();
    assert!(error.contains("forbidden"), "{error}");
    let as_scaler_error = resolver
        .resolve(
            &ns.name,
            &trigger_with_auth("not-granted"),
            None,
            &WorkloadTemplate::given(None),
        )
        .await
        .unwrap_err()
        .into_scaler_error("redis trigger 0".into());
    assert!(
        as_scaler_error.is_config(),
        "forbidden is a configuration problem, not an outage"
    );

    // No list or watch of Secrets anywhere, and nothing outside the granted namespace.
    let own: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(operator.clone(), &ns.name);
    assert!(
        own.list(&ListParams::default()).await.is_err(),
        "list is refused"
    );
    let all: Api<k8s_openapi::api::core::v1::Secret> = Api::all(operator.clone());
    assert!(
        all.list(&ListParams::default()).await.is_err(),
        "cluster-wide list is refused"
    );
    let elsewhere: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(operator, "kube-system");
    assert!(elsewhere.get("anything").await.is_err());
    ns.delete().await;
}

#[tokio::test]
async fn restricted_secret_access_reads_only_the_cluster_object_namespace() {
    shared_operator();
    let ns = shared().namespace("auth-restrict").await;
    let client = shared().client().await;
    let name = format!("restricted-{}", ns.name);
    for (namespace, value) in [
        ("keda", "from-keda-namespace"),
        (ns.name.as_str(), "from-own-namespace"),
    ] {
        let api: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(client.clone(), namespace);
        let s: k8s_openapi::api::core::v1::Secret = serde_json::from_value(
            json!({"metadata": {"name": name}, "stringData": {"password": value}}),
        )
        .expect("secret");
        api.create(&PostParams::default(), &s)
            .await
            .expect("secret");
    }
    trigger_auth(
        &ns,
        "restricted",
        json!({"secretTargetRef": [{"parameter": "password", "name": name, "key": "password"}]}),
    )
    .await;
    let open = resolver(AuthOptions::default()).await;
    let restricted = resolver(AuthOptions {
        restrict_secret_access: true,
        cluster_object_namespace: "keda".into(),
        operator_namespace: "keda".into(),
        ..AuthOptions::default()
    })
    .await;
    assert_eq!(
        resolve(&open, &ns, "restricted").await.unwrap()["password"],
        "from-own-namespace"
    );
    assert_eq!(
        resolve(&restricted, &ns, "restricted").await.unwrap()["password"],
        "from-keda-namespace"
    );

    // Workload env: Secret references are skipped for workloads outside the operator's namespace.
    let template: k8s_openapi::api::core::v1::PodTemplateSpec = serde_json::from_value(json!({
        "spec": {"containers": [{"name": "w", "image": "x", "env": [
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": name, "key": "password"}}},
            {"name": "PLAIN", "value": "visible"}]}]}
    }))
    .expect("template");
    let trigger: ScaleTriggers = serde_json::from_value(json!({
        "type": "redis", "metadata": {"listName": "q", "passwordFromEnv": "PW"}
    }))
    .expect("trigger");
    let open_env = resolved_env(&open, &ns.name, &trigger, &template).await;
    assert_eq!(open_env["PW"], "from-own-namespace");
    let restricted_env = resolved_env(&restricted, &ns.name, &trigger, &template).await;
    assert!(!restricted_env.contains_key("PW"));
    assert_eq!(restricted_env["PLAIN"], "visible");
    let keda_secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client, "keda");
    let _ = keda_secrets.delete(&name, &DeleteParams::default()).await;
    ns.delete().await;
}

async fn resolved_env(
    resolver: &AuthResolver,
    namespace: &str,
    trigger: &ScaleTriggers,
    template: &k8s_openapi::api::core::v1::PodTemplateSpec,
) -> std::collections::BTreeMap<String, String> {
    resolver
        .resolve(
            namespace,
            trigger,
            None,
            &WorkloadTemplate::given(Some(template)),
        )
        .await
        .expect("resolved")
        .resolved_env
}

#[tokio::test]
async fn aws_secret_manager_reads_secrets_from_moto() {
    shared_operator();
    let ns = shared().namespace("auth-aws-sm").await;
    let moto = test_cluster::moto::MotoServer::start();
    // Put two secrets into the real moto server with the SDK.
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let shared_config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_sdk_secretsmanager::config::Region::new("eu-west-1"))
        .http_client(http)
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            "AKIDTEST", "secret", None, None, "test",
        ))
        .load()
        .await;
    let sm = aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(&shared_config)
            .endpoint_url(moto.endpoint())
            .build(),
    );
    sm.create_secret()
        .name("redis/plain")
        .secret_string("plain-pw")
        .send()
        .await
        .expect("secret created");
    sm.create_secret()
        .name("redis/json")
        .secret_string(r#"{"password":"json-pw","port":6379}"#)
        .send()
        .await
        .expect("secret created");

    let creds: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "metadata": {"name": "aws-keys"},
        "stringData": {"id": "AKIDTEST", "key": "secret"}
    }))
    .expect("secret");
    ns.api::<k8s_openapi::api::core::v1::Secret>()
        .create(&PostParams::default(), &creds)
        .await
        .expect("keys");
    let keys = json!({
        "accessKey": {"valueFrom": {"secretKeyRef": {"name": "aws-keys", "key": "id"}}},
        "accessSecretKey": {"valueFrom": {"secretKeyRef": {"name": "aws-keys", "key": "key"}}}
    });
    trigger_auth(
        &ns,
        "aws-sm",
        json!({"awsSecretManager": {"region": "eu-west-1", "credentials": keys, "secrets": [
            {"parameter": "plain", "name": "redis/plain"},
            {"parameter": "password", "name": "redis/json", "secretKey": "password"},
            {"parameter": "port", "name": "redis/json", "secretKey": "port"}
        ]}}),
    )
    .await;
    trigger_auth(
        &ns,
        "aws-sm-missing",
        json!({"awsSecretManager": {"region": "eu-west-1", "credentials": keys, "secrets": [
            {"parameter": "password", "name": "redis/nope"}
        ]}}),
    )
    .await;
    let resolver = resolver(AuthOptions {
        aws_secrets_manager_endpoint: Some(moto.endpoint()),
        ..AuthOptions::default()
    })
    .await;
    let params = resolve(&resolver, &ns, "aws-sm").await.expect("resolved");
    assert_eq!(params["plain"], "plain-pw");
    assert_eq!(params["password"], "json-pw");
    assert_eq!(params["port"], "6379");
    let error = resolve(&resolver, &ns, "aws-sm-missing").await.unwrap_err();
    assert!(
        error.contains("awsSecretManager") && error.contains("redis/nope"),
        "{error}"
    );
    ns.delete().await;
}
