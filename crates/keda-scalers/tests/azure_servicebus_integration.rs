//! `azure-servicebus` against the Service Bus management API test double (tests/doubles): the
//! metadata table of KEDA's tests as facts, metric names, counts in several states, regex with
//! sum/max/avg over paged listings, activation, errors and pooling.

#![allow(clippy::unwrap_used)]

mod doubles;

use doubles::azure_servicebus::ServiceBusDouble;
use keda_scalers::testing::{ComplianceCase, check_live, check_parsing};
use keda_scalers::{Pools, Registry, Scaler, ScalerConfig};

fn cfg(metadata: &[(&str, &str)], auth: &[(&str, &str)], env: &[(&str, &str)]) -> ScalerConfig {
    ScalerConfig::new("azure-servicebus", 0)
        .with_metadata(metadata.iter().copied())
        .with_auth_params(auth.iter().copied())
        .with_resolved_env(env.iter().copied())
}

const CONN: &str =
    "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=v";

fn parse(
    metadata: &[(&str, &str)],
    auth: &[(&str, &str)],
) -> Result<(), keda_scalers::ScalerError> {
    Registry::builtin().parse_only(&cfg(metadata, auth, &[("CONN", CONN)]))
}

#[test]
fn metadata_table() {
    let env = ("connectionFromEnv", "CONN");
    // Accepted.
    for ok in [
        vec![("queueName", "q"), env],
        vec![("topicName", "t"), ("subscriptionName", "s"), env],
        vec![("queueName", "q"), ("cloud", "AzureChinaCloud"), env],
        vec![
            ("queueName", "q"),
            ("cloud", "Private"),
            ("endpointSuffix", "sb.example"),
            env,
        ],
        vec![
            ("queueName", "q"),
            ("endpointSuffix", "ignored.example"),
            env,
        ],
        vec![
            ("queueName", "q"),
            ("useRegex", "true"),
            ("queueName", "q.*"),
            env,
        ],
        vec![("queueName", "q"), ("operation", "max"), env],
    ] {
        parse(&ok, &[]).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
    }
    parse(&[("queueName", "q")], &[("connection", CONN)]).unwrap();

    // Rejected, naming the parameter.
    for (bad, parameter, text) in [
        (
            vec![("queueName", "q"), ("topicName", "t"), env],
            "topicName",
            "both topic and queue name metadata provided",
        ),
        (
            vec![("queueName", "q"), ("subscriptionName", "s"), env],
            "subscriptionName",
            "subscription name provided with queue name",
        ),
        (
            vec![("topicName", "t"), env],
            "subscriptionName",
            "no subscription name provided with topic name",
        ),
        (
            vec![("subscriptionName", "s"), env],
            "queueName",
            "no service bus entity type set",
        ),
        (
            vec![("queueName", "q")],
            "connection",
            "no connection setting given",
        ),
        (
            vec![("queueName", "q"), ("activationMessageCount", "AA"), env],
            "activationMessageCount",
            "unable to set param",
        ),
        (
            vec![("queueName", "q"), ("messageCount", "AA"), env],
            "messageCount",
            "unable to set param",
        ),
        (
            vec![("queueName", "q"), ("useRegex", "ababa"), env],
            "useRegex",
            "unable to set param",
        ),
        (
            vec![("queueName", "q"), ("operation", "random"), env],
            "operation",
            "must be one of [sum max avg]",
        ),
        (
            vec![("queueName", "*"), ("useRegex", "true"), env],
            "queueName",
            "queueName is not a valid regular expression",
        ),
        (
            vec![
                ("topicName", "t"),
                ("subscriptionName", "("),
                ("useRegex", "true"),
                env,
            ],
            "subscriptionName",
            "subscriptionName is not a valid regular expression",
        ),
        (
            vec![("queueName", "q"), ("cloud", "InvalidCloud")],
            "cloud",
            "invalid cloud environment InvalidCloud",
        ),
        (
            vec![("queueName", "q"), ("cloud", "Private")],
            "cloud",
            "endpointSuffix must be provided for Private cloud type",
        ),
    ] {
        let err = parse(&bad, &[]).unwrap_err();
        assert!(err.is_config(), "{bad:?}");
        assert_eq!(err.parameter(), Some(parameter), "{bad:?}: {err}");
        assert!(err.message().contains(text), "{bad:?}: {err}");
    }
    // `connection` is never read from plain metadata.
    let err = parse(&[("queueName", "q"), ("connection", CONN)], &[]).unwrap_err();
    assert_eq!(err.parameter(), Some("connection"));
    let err = parse(&[("queueName", "q")], &[("connection", "Endpoint=sb://x/")]).unwrap_err();
    assert_eq!(err.parameter(), Some("connection"));
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
    let sb = ServiceBusDouble::start().await;
    sb.set_queue("orders", 4);
    let case = ComplianceCase {
        config: cfg(
            &[("queueName", "orders")],
            &[("connection", &sb.connection_string())],
            &[],
        ),
        required: vec!["connection"],
        invalid: vec![
            ("messageCount", "AA"),
            ("activationMessageCount", "x"),
            ("operation", "random"),
        ],
        activation_param: Some("activationMessageCount"),
        current_value: 4.0,
    };
    check_parsing(&Registry::builtin(), &case);
    check_live(&Registry::builtin(), &Pools::new(), &case).await;
}

#[tokio::test]
async fn queue_and_subscription_counts() {
    let sb = ServiceBusDouble::start().await;
    let pools = Pools::new();
    let conn = sb.connection_string();
    let queue = build(
        &cfg(
            &[("queueName", "orders"), ("activationMessageCount", "2")],
            &[("connection", &conn)],
            &[],
        ),
        &pools,
    )
    .await;
    assert_eq!(
        queue.metric_specs()[0].external_metric_name(),
        Some("s0-azure-servicebus-orders")
    );
    assert_eq!(
        queue.metric_specs()[0].target().value,
        5.0,
        "messageCount defaults to 5"
    );

    let err = poll(queue.as_ref()).await.unwrap_err();
    assert!(err.is_backend());
    assert!(
        err.message().contains("queue orders doesn't exist"),
        "{err}"
    );
    for (active_messages, expect_active) in [(0, false), (2, false), (3, true), (250, true)] {
        sb.set_queue("orders", active_messages);
        #[allow(clippy::cast_precision_loss)]
        let expected = active_messages as f64;
        assert_eq!(
            poll(queue.as_ref()).await.unwrap(),
            (expected, expect_active)
        );
    }

    let sub = build(
        &cfg(
            &[
                ("topicName", "events/v1"),
                ("subscriptionName", "billing"),
                ("messageCount", "10"),
            ],
            &[],
            &[("SB", &conn)],
        )
        .with_metadata([
            ("topicName", "events/v1"),
            ("subscriptionName", "billing"),
            ("messageCount", "10"),
            ("connectionFromEnv", "SB"),
        ]),
        &pools,
    )
    .await;
    assert_eq!(
        sub.metric_specs()[0].external_metric_name(),
        Some("s0-azure-servicebus-events-v1")
    );
    let err = poll(sub.as_ref()).await.unwrap_err();
    assert!(
        err.message()
            .contains("subscription billing doesn't exist in topic events/v1"),
        "{err}"
    );
    sb.set_subscription("events/v1", "billing", 17);
    sb.set_subscription("events/v1", "audit", 99);
    assert_eq!(poll(sub.as_ref()).await.unwrap(), (17.0, true));
    // One pooled client for the namespace, whichever entity.
    assert_eq!(pools.live_clients(), 1);
    assert_eq!(sb.rejected(), 0);
}

#[tokio::test]
async fn regex_combines_matching_entities_over_pages() {
    let sb = ServiceBusDouble::start().await;
    let conn = sb.connection_string();
    let pools = Pools::new();
    // 150 queues: more than one page of 100.
    for i in 0..150 {
        sb.set_queue(&format!("job-{i:03}"), i);
    }
    sb.set_queue("jobs-archive", 1000);
    sb.set_queue("xjob-001", 1000);
    let with = |op: &str| {
        cfg(
            &[
                ("queueName", "job-.*"),
                ("useRegex", "true"),
                ("operation", op),
            ],
            &[("connection", &conn)],
            &[],
        )
    };
    let sum = build(&with("sum"), &pools).await;
    assert_eq!(
        sum.metric_specs()[0].external_metric_name(),
        Some("s0-azure-servicebus-queue-regex")
    );
    // The pattern must match the whole name: "jobs-archive" and "xjob-001" are left out.
    assert_eq!(
        poll(sum.as_ref()).await.unwrap().0,
        (0..150).sum::<i64>() as f64
    );
    assert_eq!(
        poll(build(&with("max"), &pools).await.as_ref())
            .await
            .unwrap()
            .0,
        149.0
    );
    // Integer average: 11175 / 150 = 74.5 → 74.
    assert_eq!(
        poll(build(&with("avg"), &pools).await.as_ref())
            .await
            .unwrap()
            .0,
        74.0
    );
    let none = build(
        &cfg(
            &[
                ("queueName", "nothing-.*"),
                ("useRegex", "true"),
                ("operation", "avg"),
            ],
            &[("connection", &conn)],
            &[],
        ),
        &pools,
    )
    .await;
    assert_eq!(poll(none.as_ref()).await.unwrap(), (0.0, false));

    sb.set_subscription("t", "worker-a", 3);
    sb.set_subscription("t", "worker-b", 5);
    sb.set_subscription("t", "other", 50);
    let subs = build(
        &cfg(
            &[
                ("topicName", "t"),
                ("subscriptionName", "worker-.*"),
                ("useRegex", "true"),
                ("operation", "max"),
            ],
            &[("connection", &conn)],
            &[],
        ),
        &pools,
    )
    .await;
    assert_eq!(
        subs.metric_specs()[0].external_metric_name(),
        Some("s0-azure-servicebus-topic-regex")
    );
    assert_eq!(poll(subs.as_ref()).await.unwrap(), (5.0, true));
}

#[tokio::test]
async fn a_wrong_key_is_a_backend_error_from_the_service() {
    let sb = ServiceBusDouble::start().await;
    sb.set_queue("orders", 1);
    let bad = build(
        &cfg(
            &[("queueName", "orders")],
            &[("connection", &sb.connection_string_with_key("d3Jvbmc="))],
            &[],
        ),
        &Pools::new(),
    )
    .await;
    let err = poll(bad.as_ref()).await.unwrap_err();
    assert!(err.is_backend());
    assert!(err.message().contains("401"), "{err}");
    assert_eq!(sb.rejected(), 1);
}

#[tokio::test]
async fn scalers_on_one_namespace_share_one_client_and_connection() {
    let sb = ServiceBusDouble::start().await;
    sb.set_queue("orders", 1);
    let pools = Pools::new();
    let mut scalers = Vec::new();
    for i in 0..50 {
        let mut c = cfg(
            &[("queueName", "orders")],
            &[("connection", &sb.connection_string())],
            &[],
        );
        c.trigger_index = i % 4;
        scalers.push(build(&c, &pools).await);
    }
    for s in &scalers {
        poll(s.as_ref()).await.unwrap();
    }
    assert_eq!(pools.live_clients(), 1);
    assert_eq!(
        sb.http.connections(),
        1,
        "sequential polls reuse one keep-alive connection"
    );
}
