//! Test-only Kafka administration over the scaler's own client (feature `testing`): create
//! topics, produce records, commit a group's offsets the way a standalone consumer does. Tests
//! use it to put a real broker into the states whose lag they check.

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::messages::{
    CreateTopicsRequest, GroupId, OffsetCommitRequest, ProduceRequest, TopicName,
    create_topics_request::CreatableTopic,
    offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic},
    produce_request::{PartitionProduceData, TopicProduceData},
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::{KafkaClient, KafkaEndpoint, KafkaSasl};

fn name(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// A client for a plaintext broker at `address`.
pub async fn connect(address: &str) -> KafkaClient {
    let endpoint = KafkaEndpoint {
        bootstrap_servers: vec![address.to_owned()],
        tls: None,
        sasl: KafkaSasl::None,
    };
    match KafkaClient::connect(&endpoint).await {
        Ok(client) => client,
        Err(e) => panic!("cannot connect to the test broker: {e}"),
    }
}

/// Creates `topic` with `partitions` partitions and waits until every partition has a leader.
pub async fn create_topic(client: &KafkaClient, topic: &str, partitions: i32) {
    let request = CreateTopicsRequest::default()
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(name(topic)))
                .with_num_partitions(partitions)
                .with_replication_factor(1),
        ])
        .with_timeout_ms(30_000);
    let response = client
        .send_to_any(&request, (2, 7))
        .await
        .unwrap_or_else(|e| panic!("CreateTopics: {e}"));
    for t in &response.topics {
        assert_eq!(t.error_code, 0, "creating {topic}: {:?}", t.error_message);
    }
    for _ in 0..100 {
        if let Ok(meta) = client.metadata(&[topic.to_owned()]).await
            && let Some(t) = meta.first()
            && t.error_code == 0
            && t.partitions.len() == usize::try_from(partitions).unwrap_or_default()
            && t.partitions
                .iter()
                .all(|p| p.leader >= 0 && p.error_code == 0)
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("topic {topic} did not get leaders");
}

/// Appends `n` records to `topic`/`partition` (acks=all).
pub async fn produce(client: &KafkaClient, topic: &str, partition: i32, n: usize) {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or_default());
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i64::try_from(i).unwrap_or_default(),
            // The encoder derives the batch's base sequence and deltas from these.
            sequence: i32::try_from(i).unwrap_or_default(),
            timestamp: now_ms,
            key: None,
            value: Some(Bytes::from(format!("message-{i}"))),
            headers: IndexMap::new(),
        })
        .collect();
    let mut batch = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut batch,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap_or_else(|e| panic!("encoding records: {e}"));
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(name(topic)))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(batch.freeze())),
                ]),
        ]);
    let mut last = String::new();
    for _ in 0..100 {
        let response = client
            .send_to_any(&request, (3, 12))
            .await
            .unwrap_or_else(|e| panic!("Produce: {e}"));
        let codes: Vec<i16> = response
            .responses
            .iter()
            .flat_map(|t| t.partition_responses.iter().map(|p| p.error_code))
            .collect();
        if codes.iter().all(|c| *c == 0) {
            return;
        }
        // A new partition's leader may need a moment before it accepts writes.
        last = format!("error codes {codes:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("producing to {topic}/{partition} failed: {last}");
}

/// Commits `offset` for `group` on `topic`/`partition`, as a consumer outside any group
/// generation does (generation -1, no member id).
pub async fn commit(client: &KafkaClient, group: &str, topic: &str, partition: i32, offset: i64) {
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(name(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::from_static_str(""))
        .with_retention_time_ms(-1)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(name(topic)))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(partition)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(-1),
                ]),
        ]);
    let mut last = String::new();
    for _ in 0..50 {
        match client.send_to_coordinator(group, &request, (2, 9)).await {
            Ok(response) => {
                let codes: Vec<i16> = response
                    .topics
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
                    .collect();
                if codes.iter().all(|c| *c == 0) {
                    return;
                }
                last = format!("error codes {codes:?}");
            }
            Err(e) => last = e.to_string(),
        }
        // The offsets topic may still be loading right after the broker started.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("committing {group} {topic}/{partition}@{offset} failed: {last}");
}
