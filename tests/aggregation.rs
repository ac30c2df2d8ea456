//! The aggregation layer reaches a server we run on loopback: an APIService backed by an
//! ExternalName Service pointing at `localhost` (routing off), served over TLS with the
//! front-proxy client certificate checked, exactly the path the HPA takes to our metrics API.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use keda_rs_e2e::tls_server::{self, json};
use keda_rs_e2e::{shared, wait_for};
use kube::api::{Api, DeleteParams, PostParams};
use test_cluster::pki::Authority;

#[tokio::test]
async fn apiservice_round_trip_through_the_apiserver() {
    let ns = shared().namespace("aggregation").await;
    let client = ns.client.clone();
    let group = format!("{}.aggregation.keda-rs.test", ns.name);
    let apiservice_name = format!("v1alpha1.{group}");
    let service_name = "test-extension-apiserver";

    // Extension apiservers trust the aggregator's client certificate via this ConfigMap.
    let auth: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    let auth = auth
        .get("extension-apiserver-authentication")
        .await
        .expect("extension auth ConfigMap");
    let front_proxy_ca = auth
        .data
        .as_ref()
        .and_then(|d| d.get("requestheader-client-ca-file"))
        .cloned()
        .expect("requestheader-client-ca-file published");

    // The aggregator always uses <service>.<namespace>.svc as the TLS server name.
    let ca = Authority::new("aggregation-test-ca").expect("CA");
    let dns = format!("{service_name}.{}.svc", ns.name);
    let leaf = ca
        .issue_server("test-extension", &[&dns], &[])
        .expect("serving cert");
    let group_for_handler = group.clone();
    let handler: tls_server::Handler = Arc::new(move |req| {
        let user = req
            .headers()
            .get("x-remote-user")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let path = req.uri().path().to_string();
        if path == format!("/apis/{group_for_handler}/v1alpha1") {
            json(
                200,
                &serde_json::json!({
                    "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": format!("{group_for_handler}/v1alpha1"),
                    "resources": [{"name": "echoes", "namespaced": true, "kind": "Echo", "verbs": ["get"]}]
                }),
            )
        } else if path.starts_with(&format!("/apis/{group_for_handler}/v1alpha1/namespaces/")) {
            json(
                200,
                &serde_json::json!({
                    "kind": "Echo", "apiVersion": format!("{group_for_handler}/v1alpha1"),
                    "metadata": {"name": path.rsplit('/').next().unwrap_or_default()},
                    "remoteUser": user,
                }),
            )
        } else {
            json(
                404,
                &serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404}),
            )
        }
    });
    let server = tls_server::serve(
        &leaf.cert_pem,
        &leaf.key_pem,
        Some(&front_proxy_ca),
        handler,
    )
    .await
    .expect("test server starts");

    let services: Api<Service> = Api::namespaced(client.clone(), &ns.name);
    let service: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": service_name},
        "spec": {"type": "ExternalName", "externalName": "localhost"}
    }))
    .expect("service");
    services
        .create(&PostParams::default(), &service)
        .await
        .expect("ExternalName service");

    let apiservices: Api<APIService> = Api::all(client.clone());
    let apiservice: APIService = serde_json::from_value(serde_json::json!({
        "metadata": {"name": apiservice_name},
        "spec": {
            "group": group, "version": "v1alpha1",
            "groupPriorityMinimum": 100, "versionPriority": 100,
            // No Service port mapping for ExternalName: this port is dialed as is.
            "service": {"name": service_name, "namespace": ns.name, "port": server.addr.port()},
            "caBundle": base64_encode(&ca.cert_pem),
        }
    }))
    .expect("apiservice");
    apiservices
        .create(&PostParams::default(), &apiservice)
        .await
        .expect("APIService created");

    let outcome = round_trip(&client, &apiservices, &apiservice_name, &group, &ns.name).await;
    // Always unregister before the server goes away: an unavailable APIService stalls
    // discovery, namespace deletion and garbage collection for everyone sharing the cluster.
    let _ = apiservices
        .delete(&apiservice_name, &DeleteParams::default())
        .await;
    drop(server);
    let (available, echo) = outcome.expect("aggregated round trip");
    assert_eq!(available, "True");
    assert_eq!(echo["kind"], "Echo");
    assert_eq!(echo["metadata"]["name"], "hello");
    // The apiserver authenticated us (system:masters admin) and passed our identity on.
    assert_eq!(echo["remoteUser"], "test-admin");
    ns.delete().await;
}

async fn round_trip(
    client: &kube::Client,
    apiservices: &Api<APIService>,
    name: &str,
    group: &str,
    namespace: &str,
) -> anyhow::Result<(String, serde_json::Value)> {
    let available = wait_for(Duration::from_secs(60), || async {
        let svc = apiservices.get(name).await.ok()?;
        let cond = svc
            .status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "Available")?;
        (cond.status == "True").then_some(cond.status)
    })
    .await
    .map_err(|e| anyhow::anyhow!("APIService {name} never became Available: {e}"))?;
    let request = http::Request::get(format!(
        "/apis/{group}/v1alpha1/namespaces/{namespace}/echoes/hello"
    ))
    .body(Vec::new())?;
    let body = client.request_text(request).await?;
    Ok((available, serde_json::from_str(&body)?))
}

fn base64_encode(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}
