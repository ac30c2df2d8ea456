//! `gcp-pubsub` against the Google OAuth2 + Cloud Monitoring test double (tests/doubles): KEDA's
//! metadata table as facts, the MQL sent, values in several states, activation, credentials from
//! auth params / env / env file, errors and pooling (one token for many scalers).

#![allow(clippy::unwrap_used)]

mod doubles;

use doubles::gcp::GcpDouble;
use keda_scalers::testing::{ComplianceCase, check_live, check_parsing};
use keda_scalers::{Pools, Registry, Scaler, ScalerConfig, ScalerSettings};

const SUB_METRIC: &str = "pubsub.googleapis.com/subscription/num_undelivered_messages";

fn creds_for_parsing() -> String {
    serde_json::json!({
        "project_id": "p", "client_email": "a@p.iam.gserviceaccount.com",
        "private_key": doubles::gcp::TEST_KEY_PEM, "token_uri": "http://127.0.0.1:1/token"
    })
    .to_string()
}

fn cfg(metadata: &[(&str, &str)], auth: &[(&str, &str)], env: &[(&str, &str)]) -> ScalerConfig {
    ScalerConfig::new("gcp-pubsub", 0)
        .with_metadata(metadata.iter().copied())
        .with_auth_params(auth.iter().copied())
        .with_resolved_env(env.iter().copied())
}

#[test]
fn metadata_table() {
    let creds = creds_for_parsing();
    let env = [
        ("SA_JSON", creds.as_str()),
        ("SUB", "mysub"),
        ("SA_FILE", "/tmp/key.json"),
    ];
    let parse =
        |m: &[(&str, &str)], a: &[(&str, &str)]| Registry::builtin().parse_only(&cfg(m, a, &env));
    let from_env = ("credentialsFromEnv", "SA_JSON");
    for ok in [
        vec![
            ("subscriptionName", "mysubscription"),
            ("value", "7"),
            from_env,
        ],
        vec![
            ("subscriptionName", "projects/myproject/mysubscription"),
            from_env,
        ],
        vec![("subscriptionName", "mysubscription"), from_env],
        vec![("topicName", "mytopic"), ("mode", "MessageSizes"), from_env],
        vec![("subscriptionNameFromEnv", "SUB"), from_env],
        vec![
            ("subscriptionName", "s1"),
            ("credentialsFromEnvFile", "SA_FILE"),
        ],
        vec![
            ("subscriptionName", "s1"),
            ("aggregation", "percentile99"),
            ("timeHorizon", "10m"),
            ("valueIfNull", "0"),
            from_env,
        ],
    ] {
        parse(&ok, &[]).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
    }
    parse(
        &[("subscriptionName", "s")],
        &[("GoogleApplicationCredentials", &creds)],
    )
    .unwrap();

    for (bad, auth, parameter, text) in [
        (
            vec![],
            vec![],
            "subscriptionName",
            "exactly one of subscription or topic name must be given",
        ),
        (
            vec![("subscriptionName", ""), from_env],
            vec![],
            "subscriptionName",
            "exactly one of",
        ),
        (
            vec![("subscriptionName", "s"), ("topicName", "t"), from_env],
            vec![],
            "subscriptionName",
            "exactly one of",
        ),
        (
            vec![("subscriptionName", "s"), ("credentialsFromEnv", "")],
            vec![],
            "GoogleApplicationCredentials",
            "google application credentials not found",
        ),
        (
            vec![("subscriptionName", "s")],
            vec![("GoogleApplicationCredentials", "")],
            "GoogleApplicationCredentials",
            "google application credentials not found",
        ),
        (
            vec![("subscriptionName", "s"), ("value", "AA"), from_env],
            vec![],
            "value",
            "unable to set param",
        ),
        (
            vec![
                ("subscriptionName", "s"),
                ("activationValue", "AA"),
                from_env,
            ],
            vec![],
            "activationValue",
            "unable to set param",
        ),
        (
            vec![
                ("subscriptionName", "s"),
                ("subscriptionSize", "7"),
                from_env,
            ],
            vec![],
            "subscriptionSize",
            "scaler gcp-pubsub info:",
        ),
        (
            vec![("subscriptionName", "s"), ("aggregation", "max"), from_env],
            vec![],
            "aggregation",
            "unsupported aggregation function: max",
        ),
        (
            vec![("subscriptionName", "s"), ("timeHorizon", "-1"), from_env],
            vec![],
            "timeHorizon",
            "unable to set param",
        ),
        (
            vec![("subscriptionName", "s")],
            vec![("GoogleApplicationCredentials", "{\"project_id\":\"p\"}")],
            "GoogleApplicationCredentials",
            "service account JSON",
        ),
    ] {
        let err = parse(&bad, &auth).unwrap_err();
        assert!(err.is_config(), "{bad:?}");
        assert_eq!(err.parameter(), Some(parameter), "{bad:?}: {err}");
        assert!(err.message().contains(text), "{bad:?}: {err}");
    }
}

fn pools_for(gcp: &GcpDouble) -> Pools {
    let mut settings = ScalerSettings::default();
    settings
        .endpoints
        .insert("gcp-monitoring".into(), gcp.base_url());
    Pools::with_settings(settings)
}

async fn build(config: &ScalerConfig, pools: &Pools) -> std::sync::Arc<Scaler> {
    Registry::builtin().build(config, pools).await.unwrap()
}

async fn poll(scaler: &Scaler) -> Result<(f64, bool), keda_scalers::ScalerError> {
    let name = scaler.metric_specs()[0]
        .external_metric_name()
        .unwrap()
        .to_owned();
    let (values, active) = scaler.metrics_and_activity(&name).await?;
    Ok((values[0].value, active))
}

#[tokio::test]
async fn compliance() {
    let gcp = GcpDouble::start().await;
    gcp.set_int("test-project", "subscription", "orders", SUB_METRIC, 6);
    let case = ComplianceCase {
        config: cfg(
            &[("subscriptionName", "orders")],
            &[("GoogleApplicationCredentials", &gcp.credentials_json())],
            &[],
        ),
        required: vec!["GoogleApplicationCredentials"],
        invalid: vec![
            ("value", "AA"),
            ("activationValue", "x"),
            ("aggregation", "nope"),
        ],
        activation_param: Some("activationValue"),
        current_value: 6.0,
    };
    check_parsing(&Registry::builtin(), &case);
    check_live(&Registry::builtin(), &pools_for(&gcp), &case).await;
}

#[tokio::test]
async fn values_queries_and_activation() {
    let gcp = GcpDouble::start().await;
    let pools = pools_for(&gcp);
    let creds = gcp.credentials_json();
    let sub = build(
        &cfg(
            &[("subscriptionName", "orders"), ("activationValue", "5")],
            &[("GoogleApplicationCredentials", &creds)],
            &[],
        ),
        &pools,
    )
    .await;
    assert_eq!(
        sub.metric_specs()[0].external_metric_name(),
        Some("s0-gcp-ps-orders")
    );
    assert_eq!(
        sub.metric_specs()[0].target().value,
        10.0,
        "value defaults to 10"
    );

    // No series and no valueIfNull: an error quoting the query.
    let err = poll(sub.as_ref()).await.unwrap_err();
    assert!(err.is_backend());
    assert!(
        err.message()
            .starts_with("could not find stackdriver metric with query fetch pubsub_subscription"),
        "{err}"
    );
    assert_eq!(
        gcp.last_query().unwrap(),
        "fetch pubsub_subscription | metric 'pubsub.googleapis.com/subscription/num_undelivered_messages' | filter (resource.project_id == 'test-project' && resource.subscription_id == 'orders') | within 2m0s"
    );
    for (value, active) in [(0, false), (5, false), (6, true), (1200, true)] {
        gcp.set_int("test-project", "subscription", "orders", SUB_METRIC, value);
        #[allow(clippy::cast_precision_loss)]
        let expected = value as f64;
        assert_eq!(poll(sub.as_ref()).await.unwrap(), (expected, active));
    }
    // A series without points reads as −1 (reported as 0 by the quantity rendering), inactive.
    gcp.set_no_points("test-project", "subscription", "orders", SUB_METRIC);
    assert_eq!(poll(sub.as_ref()).await.unwrap(), (-1.0, false));

    // Full resource path: its own project; topic mode in snake case; aggregation and horizon.
    let topic = build(
        &cfg(
            &[
                ("topicName", "projects/other-proj/topics/events"),
                ("mode", "MessageSizes"),
                ("aggregation", "percentile99"),
                ("value", "2.5"),
            ],
            &[("GoogleApplicationCredentials", &creds)],
            &[],
        ),
        &pools,
    )
    .await;
    assert_eq!(
        topic.metric_specs()[0].external_metric_name(),
        Some("s0-gcp-ps-projects-other-proj-topics-events")
    );
    assert_eq!(topic.metric_specs()[0].target().value, 2.5);
    gcp.set_double(
        "other-proj",
        "topic",
        "events",
        "pubsub.googleapis.com/topic/message_sizes",
        812.5,
    );
    assert_eq!(poll(topic.as_ref()).await.unwrap(), (812.5, true));
    assert_eq!(
        gcp.last_query().unwrap(),
        "fetch pubsub_topic | metric 'pubsub.googleapis.com/topic/message_sizes' | filter (resource.project_id == 'other-proj' && resource.topic_id == 'events') | within 5m0s | align delta(3m) | every 3m | group_by [], percentile(value, 99)"
    );

    // valueIfNull when nothing is found; timeHorizon used as given.
    let null = build(
        &cfg(
            &[
                ("subscriptionName", "quiet"),
                ("valueIfNull", "3"),
                ("timeHorizon", "90s"),
            ],
            &[("GoogleApplicationCredentials", &creds)],
            &[],
        ),
        &pools,
    )
    .await;
    assert_eq!(poll(null.as_ref()).await.unwrap(), (3.0, true));
    assert!(gcp.last_query().unwrap().ends_with("| within 1m30s"));

    // One service account, one pooled client, one token for all of them.
    assert_eq!(pools.live_clients(), 1);
    assert_eq!(gcp.token_requests(), 1);
    assert_eq!(gcp.rejected(), 0);
}

#[tokio::test]
async fn bad_resource_names_are_config_errors_at_build() {
    let gcp = GcpDouble::start().await;
    let pools = pools_for(&gcp);
    let creds = gcp.credentials_json();
    for name in ["projects/myproject/mysubscription", "goog-sub", "ab"] {
        // The key's project (known once its file is read) completes the name, so the check runs
        // when the scaler connects, not at parse time.
        let err = Registry::builtin()
            .build(
                &cfg(
                    &[("subscriptionName", name)],
                    &[("GoogleApplicationCredentials", &creds)],
                    &[],
                ),
                &pools,
            )
            .await
            .err()
            .unwrap();
        assert!(err.is_config(), "{name}: {err}");
        assert_eq!(err.parameter(), Some("subscriptionName"));
        assert!(
            err.message().contains("invalid Pub/Sub resource name"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn credentials_from_env_and_env_file() {
    let gcp = GcpDouble::start().await;
    let pools = pools_for(&gcp);
    gcp.set_int("test-project", "subscription", "orders", SUB_METRIC, 2);
    let creds = gcp.credentials_json();
    let env = build(
        &cfg(
            &[
                ("subscriptionName", "orders"),
                ("credentialsFromEnv", "GCP_SA"),
            ],
            &[],
            &[("GCP_SA", &creds)],
        ),
        &pools,
    )
    .await;
    assert_eq!(poll(env.as_ref()).await.unwrap(), (2.0, true));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.json");
    std::fs::write(&path, &creds).unwrap();
    let file = build(
        &cfg(
            &[
                ("subscriptionName", "orders"),
                ("credentialsFromEnvFile", "GCP_SA_FILE"),
            ],
            &[],
            &[("GCP_SA_FILE", path.to_str().unwrap())],
        ),
        &pools,
    )
    .await;
    assert_eq!(poll(file.as_ref()).await.unwrap(), (2.0, true));

    let missing = Registry::builtin()
        .build(
            &cfg(
                &[
                    ("subscriptionName", "orders"),
                    ("credentialsFromEnvFile", "F"),
                ],
                &[],
                &[("F", "/nonexistent/key.json")],
            ),
            &pools,
        )
        .await
        .err()
        .unwrap();
    assert!(missing.is_config());
    assert_eq!(missing.parameter(), Some("credentialsFromEnvFile"));
}

#[tokio::test]
async fn a_token_endpoint_refusal_is_a_backend_error() {
    let gcp = GcpDouble::start().await;
    let pools = pools_for(&gcp);
    // Same key, but the JWT audience is not the double's token URL: the exchange is refused.
    let mut creds: serde_json::Value = serde_json::from_str(&gcp.credentials_json()).unwrap();
    creds["client_email"] = "someone-else@test-project.iam.gserviceaccount.com".into();
    let s = build(
        &cfg(
            &[("subscriptionName", "orders")],
            &[("GoogleApplicationCredentials", &creds.to_string())],
            &[],
        ),
        &pools,
    )
    .await;
    let err = poll(s.as_ref()).await.unwrap_err();
    assert!(err.is_backend());
    assert!(
        err.message().contains("token exchange") && err.message().contains("400"),
        "{err}"
    );
    assert_eq!(gcp.rejected(), 1);
}
