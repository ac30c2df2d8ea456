//! The aws-sqs-queue scaler against a real `moto_server` (PyPI `moto[server]`, installed by
//! `hack/install-moto.sh`) speaking the SQS API.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use keda_scalers::testing::{ComplianceCase, check_live, check_parsing};
use keda_scalers::{BackendKind, Pools, Registry, Scaler, ScalerConfig, ScalerError};
use test_cluster::moto::MotoServer;

const REGION: &str = "eu-west-1";

fn sdk(endpoint: &str) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .http_client(
            aws_smithy_http_client::Builder::new()
                .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                    aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                ))
                .build_https(),
        )
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

fn config(queue_url: &str, endpoint: &str, extra: &[(&str, &str)]) -> ScalerConfig {
    let mut metadata = vec![
        ("queueURL", queue_url),
        ("awsRegion", REGION),
        ("awsEndpoint", endpoint),
    ];
    metadata.extend_from_slice(extra);
    ScalerConfig::new("aws-sqs-queue", 0)
        .with_metadata(metadata)
        .with_auth_params([("awsAccessKeyID", "test"), ("awsSecretAccessKey", "test")])
}

async fn poll(scaler: &Scaler) -> Result<(f64, bool), ScalerError> {
    let name = scaler.metric_specs()[0]
        .external_metric_name()
        .unwrap()
        .to_owned();
    let (values, active) = scaler.metrics_and_activity(&name).await?;
    assert_eq!(values.len(), 1);
    assert_eq!(values[0].metric_name, name);
    Ok((values[0].value, active))
}

async fn build(config: &ScalerConfig, pools: &Pools) -> Arc<Scaler> {
    Registry::builtin().build(config, pools).await.unwrap()
}

async fn send(client: &aws_sdk_sqs::Client, queue_url: &str, n: usize, delay_seconds: i32) {
    for i in 0..n {
        client
            .send_message()
            .queue_url(queue_url)
            .message_body(format!("m{i}"))
            .delay_seconds(delay_seconds)
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_scaler_against_moto() {
    let server = tokio::task::spawn_blocking(MotoServer::start)
        .await
        .unwrap();
    let endpoint = server.endpoint();
    let client = sdk(&endpoint);
    let pools = Pools::new();

    // Empty queue: zero, inactive.
    let empty_url = client
        .create_queue()
        .queue_name("empty")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let scaler = build(&config(&empty_url, &endpoint, &[]), &pools).await;
    assert_eq!(poll(scaler.as_ref()).await.unwrap(), (0.0, false));
    assert_eq!(
        scaler.metric_specs()[0].external_metric_name(),
        Some("s0-aws-sqs-empty")
    );

    // 20 visible, 10 in flight (received, not deleted), 5 delayed.
    let url = client
        .create_queue()
        .queue_name("orders")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    send(&client, &url, 30, 0).await;
    let mut received = 0;
    while received < 10 {
        let out = client
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10 - received)
            .visibility_timeout(600)
            .send()
            .await
            .unwrap();
        received += i32::try_from(out.messages().len()).unwrap();
    }
    send(&client, &url, 5, 600).await;

    for (flags, want) in [
        (vec![], 30.0),
        (vec![("scaleOnInFlight", "false")], 20.0),
        (vec![("scaleOnDelayed", "true")], 35.0),
        (
            vec![("scaleOnInFlight", "false"), ("scaleOnDelayed", "true")],
            25.0,
        ),
    ] {
        let scaler = build(&config(&url, &endpoint, &flags), &pools).await;
        assert_eq!(
            poll(scaler.as_ref()).await.unwrap(),
            (want, true),
            "{flags:?}"
        );
    }

    // Strict activation on the default count (30).
    for (activation, want_active) in [("29", true), ("30", false), ("31", false)] {
        let scaler = build(
            &config(&url, &endpoint, &[("activationQueueLength", activation)]),
            &pools,
        )
        .await;
        assert_eq!(
            poll(scaler.as_ref()).await.unwrap(),
            (30.0, want_active),
            "activationQueueLength={activation}"
        );
    }

    // The compliance check: names, activation, one pooled client, close → backend error.
    let case = ComplianceCase {
        config: config(&url, &endpoint, &[]),
        required: vec!["queueURL", "awsRegion"],
        invalid: vec![
            ("queueLength", "a"),
            ("activationQueueLength", "a"),
            ("scaleOnInFlight", "maybe"),
            ("queueURL", "https://sqs.eu-west-1.amazonaws.com/account_id"),
        ],
        activation_param: Some("activationQueueLength"),
        current_value: 30.0,
    };
    check_parsing(&Registry::builtin(), &case);
    check_live(&Registry::builtin(), &pools, &case).await;

    // Scalers with the same region, endpoint and credentials share one client.
    let fresh = Pools::new();
    let mut many = Vec::new();
    for _ in 0..50 {
        many.push(build(&config(&url, &endpoint, &[]), &fresh).await);
    }
    assert_eq!(fresh.live_clients(), 1);
    drop(many);
    assert_eq!(fresh.live_clients(), 0);

    // A missing queue is a backend error.
    let missing = format!("{endpoint}/123456789012/no-such-queue");
    let scaler = build(&config(&missing, &endpoint, &[]), &pools).await;
    let err = poll(scaler.as_ref()).await.unwrap_err();
    assert!(err.is_backend(), "{err}");
    assert!(err.to_string().contains("no-such-queue"), "{err}");
    assert_eq!(err.backend_kind(), Some(BackendKind::NotFound), "{err}");
}
