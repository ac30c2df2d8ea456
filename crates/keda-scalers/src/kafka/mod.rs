//! The kafka family: the `kafka` scaler ([`lag`]) and its small admin client speaking the wire
//! protocol (message codecs from the `kafka-protocol` crate): just what lag needs — Metadata for
//! named topics only, ListOffsets (latest) grouped by partition leader, FindCoordinator and
//! OffsetFetch for a consumer group. One [`KafkaClient`] per cluster identity ([`KafkaEndpoint`])
//! is shared through the pools, and it keeps one connection per broker, so many ScaledObjects on
//! one cluster cost a handful of connections and no full-cluster metadata.

mod connection;
pub mod lag;
mod sasl;
#[cfg(any(test, feature = "testing"))]
pub mod test_admin;
mod tls;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    FindCoordinatorRequest, GroupId, ListOffsetsRequest, MetadataRequest, OffsetFetchRequest,
    TopicName,
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
    metadata_request::MetadataRequestTopic,
    offset_fetch_request::OffsetFetchRequestTopic,
};
use kafka_protocol::protocol::{Request, StrBytes};

use crate::error::{BackendError, BackendKind};
use crate::pools::PooledClient;
use crate::tls::TlsSettings;
use connection::BrokerConnection;

/// SASL settings of a cluster identity.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum KafkaSasl {
    /// No SASL.
    None,
    /// `sasl=plaintext` (mechanism PLAIN).
    Plain {
        /// User.
        username: String,
        /// Password.
        password: String,
    },
    /// `sasl=scram_sha256`.
    ScramSha256 {
        /// User.
        username: String,
        /// Password.
        password: String,
    },
    /// `sasl=scram_sha512`.
    ScramSha512 {
        /// User.
        username: String,
        /// Password.
        password: String,
    },
}

impl fmt::Debug for KafkaSasl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, user) = match self {
            Self::None => return f.write_str("None"),
            Self::Plain { username, .. } => ("Plain", username),
            Self::ScramSha256 { username, .. } => ("ScramSha256", username),
            Self::ScramSha512 { username, .. } => ("ScramSha512", username),
        };
        f.debug_struct(name)
            .field("username", user)
            .finish_non_exhaustive()
    }
}

/// The identity of a cluster connection: bootstrap servers and credentials. Scalers with equal
/// endpoints share one client.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KafkaEndpoint {
    /// `host:port` bootstrap servers, in the order given.
    pub bootstrap_servers: Vec<String>,
    /// TLS settings when `tls=enable`.
    pub tls: Option<TlsSettings>,
    /// SASL settings.
    pub sasl: KafkaSasl,
}

/// A Kafka error code with its name, comparable and cloneable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseErrorText(pub i16);

impl fmt::Display for ResponseErrorText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match ResponseError::try_from_code(self.0) {
            Some(e) => write!(f, "{e} (error code {})", self.0),
            None => f.write_str("no error"),
        }
    }
}

impl ResponseErrorText {
    /// How a failure with this code is classified: a missing topic or group is `not_found`, a
    /// refused authorization `auth`, anything else `protocol`.
    pub fn kind(self) -> BackendKind {
        match ResponseError::try_from_code(self.0) {
            Some(ResponseError::UnknownTopicOrPartition | ResponseError::GroupIdNotFound) => {
                BackendKind::NotFound
            }
            Some(
                ResponseError::TopicAuthorizationFailed
                | ResponseError::GroupAuthorizationFailed
                | ResponseError::ClusterAuthorizationFailed
                | ResponseError::SaslAuthenticationFailed,
            ) => BackendKind::Auth,
            _ => BackendKind::Protocol,
        }
    }
}

/// The broker answered `code` to what `context` describes.
pub fn broker_error(context: impl fmt::Display, code: i16) -> BackendError {
    let error = ResponseErrorText(code);
    BackendError::new(error.kind(), format!("{context}: {error}"))
}

/// One partition of a topic as the metadata describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Partition index.
    pub partition: i32,
    /// Leader broker id (-1 when leaderless).
    pub leader: i32,
    /// Partition-level error code.
    pub error_code: i16,
}

/// One topic as the metadata describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicInfo {
    /// Topic name.
    pub name: String,
    /// Topic-level error code (e.g. 3 = unknown topic).
    pub error_code: i16,
    /// Its partitions.
    pub partitions: Vec<PartitionInfo>,
}

/// A committed offset, or -1 with `error_code` 0 when the group committed nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The offset.
    pub offset: i64,
    /// Partition-level error code.
    pub error_code: i16,
}

/// topic → partition → value.
pub type PerPartition<T> = BTreeMap<String, BTreeMap<i32, T>>;

// Version ranges we encode and decode correctly (field layouts differ across versions; these are
// the single-group/single-key forms). The highest version the broker also supports is used.
const METADATA_VERSIONS: (i16, i16) = (1, 12);
const LIST_OFFSETS_VERSIONS: (i16, i16) = (1, 7);
const FIND_COORDINATOR_VERSIONS: (i16, i16) = (0, 3);
const OFFSET_FETCH_VERSIONS: (i16, i16) = (1, 7);

const ERR_NOT_COORDINATOR: i16 = 16;
const ERR_COORDINATOR_NOT_AVAILABLE: i16 = 15;
const ERR_COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;

/// The shared client of one cluster identity.
pub struct KafkaClient {
    endpoint: Arc<KafkaEndpoint>,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// `host:port` → connection. Bootstrap servers and advertised brokers share entries when
    /// their addresses agree.
    connections: Mutex<HashMap<String, Arc<BrokerConnection>>>,
    /// broker id → `host:port`, from the latest Metadata response.
    brokers: Mutex<HashMap<i32, String>>,
    /// group → coordinator address.
    coordinators: Mutex<HashMap<String, String>>,
}

impl fmt::Debug for KafkaClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaClient")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl KafkaClient {
    /// Builds the client and checks the cluster is reachable (and credentials work) by opening a
    /// connection to a bootstrap server.
    pub async fn connect(endpoint: &KafkaEndpoint) -> Result<Self, BackendError> {
        let tls = match &endpoint.tls {
            Some(settings) => Some(
                tls::client_config(settings)
                    .map_err(|e| BackendError::connect(e).context("error creating kafka client"))?,
            ),
            None => None,
        };
        let client = Self {
            endpoint: Arc::new(endpoint.clone()),
            tls,
            connections: Mutex::new(HashMap::new()),
            brokers: Mutex::new(HashMap::new()),
            coordinators: Mutex::new(HashMap::new()),
        };
        client
            .metadata(&[])
            .await
            .map_err(|e| e.context("error creating kafka client"))?;
        Ok(client)
    }

    /// The identity this client serves.
    pub fn endpoint(&self) -> &KafkaEndpoint {
        &self.endpoint
    }

    fn connection(&self, address: &str) -> Arc<BrokerConnection> {
        let mut connections = locked(&self.connections);
        Arc::clone(connections.entry(address.to_owned()).or_insert_with(|| {
            Arc::new(BrokerConnection::new(
                address.to_owned(),
                Arc::clone(&self.endpoint),
                self.tls.clone(),
            ))
        }))
    }

    /// Sends `request` to `address`.
    pub async fn send_to<R: Request>(
        &self,
        address: &str,
        request: &R,
        versions: (i16, i16),
    ) -> Result<R::Response, BackendError> {
        self.connection(address).send(request, versions).await
    }

    /// Sends `request` to the first bootstrap server that answers.
    pub async fn send_to_any<R: Request>(
        &self,
        request: &R,
        versions: (i16, i16),
    ) -> Result<R::Response, BackendError> {
        let mut last = BackendError::connect("no bootstrap servers");
        for address in &self.endpoint.bootstrap_servers {
            match self.send_to(address, request, versions).await {
                Ok(response) => return Ok(response),
                // Another bootstrap server may be reachable (or accept the credentials).
                Err(e)
                    if matches!(
                        e.kind,
                        BackendKind::Connect | BackendKind::Timeout | BackendKind::Auth
                    ) =>
                {
                    last = e;
                }
                Err(other) => return Err(other),
            }
        }
        Err(last)
    }

    /// Metadata for `topics` only (none: just the brokers). Remembers broker addresses.
    pub async fn metadata(&self, topics: &[String]) -> Result<Vec<TopicInfo>, BackendError> {
        let request = MetadataRequest::default()
            .with_topics(Some(
                topics
                    .iter()
                    .map(|t| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                    })
                    .collect(),
            ))
            .with_allow_auto_topic_creation(false);
        let response = self.send_to_any(&request, METADATA_VERSIONS).await?;
        {
            let mut brokers = locked(&self.brokers);
            for b in &response.brokers {
                brokers.insert(b.node_id.0, format!("{}:{}", b.host.as_str(), b.port));
            }
        }
        Ok(response
            .topics
            .iter()
            .map(|t| TopicInfo {
                name: t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                error_code: t.error_code,
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| PartitionInfo {
                        partition: p.partition_index,
                        leader: p.leader_id.0,
                        error_code: p.error_code,
                    })
                    .collect(),
            })
            .collect())
    }

    fn broker_address(&self, id: i32) -> Result<String, BackendError> {
        locked(&self.brokers).get(&id).cloned().ok_or_else(|| {
            BackendError::protocol(format!("broker {id} is not in the cluster metadata"))
        })
    }

    /// The newest offset of every partition in `partitions` (with its leader from
    /// [`KafkaClient::metadata`]), one ListOffsets request per leader, sent concurrently.
    pub async fn latest_offsets(
        &self,
        partitions: &[(String, PartitionInfo)],
    ) -> Result<PerPartition<i64>, BackendError> {
        let mut by_leader: BTreeMap<i32, BTreeMap<&str, Vec<i32>>> = BTreeMap::new();
        for (topic, p) in partitions {
            by_leader
                .entry(p.leader)
                .or_default()
                .entry(topic.as_str())
                .or_default()
                .push(p.partition);
        }
        let requests = by_leader.into_iter().map(|(leader, topics)| async move {
            let address = self.broker_address(leader)?;
            let request = ListOffsetsRequest::default()
                .with_replica_id((-1).into())
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(topic, partitions)| {
                            ListOffsetsTopic::default()
                                .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                                .with_partitions(
                                    partitions
                                        .into_iter()
                                        .map(|p| {
                                            ListOffsetsPartition::default()
                                                .with_partition_index(p)
                                                .with_current_leader_epoch(-1)
                                                // -1 = the latest offset
                                                .with_timestamp(-1)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                );
            self.send_to(&address, &request, LIST_OFFSETS_VERSIONS)
                .await
        });
        let mut out = PerPartition::new();
        for response in futures::future::join_all(requests).await {
            for topic in response?.topics {
                let name = topic.name.0.to_string();
                for p in topic.partitions {
                    if p.error_code != 0 {
                        return Err(broker_error(
                            format!(
                                "error listing offsets of topic {name} partition {}",
                                p.partition_index
                            ),
                            p.error_code,
                        ));
                    }
                    out.entry(name.clone())
                        .or_default()
                        .insert(p.partition_index, p.offset);
                }
            }
        }
        Ok(out)
    }

    async fn coordinator(&self, group: &str) -> Result<String, BackendError> {
        if let Some(address) = locked(&self.coordinators).get(group) {
            return Ok(address.clone());
        }
        let request = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(group.to_owned()))
            .with_key_type(0);
        let response = self
            .send_to_any(&request, FIND_COORDINATOR_VERSIONS)
            .await?;
        if response.error_code != 0 {
            return Err(broker_error(
                format!("error finding the coordinator of group {group}"),
                response.error_code,
            ));
        }
        let address = format!("{}:{}", response.host.as_str(), response.port);
        locked(&self.coordinators).insert(group.to_owned(), address.clone());
        Ok(address)
    }

    /// Sends `request` to the coordinator of `group`, finding it again if it moved.
    pub async fn send_to_coordinator<R: Request>(
        &self,
        group: &str,
        request: &R,
        versions: (i16, i16),
    ) -> Result<R::Response, BackendError> {
        let address = self.coordinator(group).await?;
        self.send_to(&address, request, versions).await
    }

    fn forget_coordinator(&self, group: &str) {
        locked(&self.coordinators).remove(group);
    }

    /// The offsets `group` committed: for `topics` (topic → partitions), or for every topic it
    /// committed to when `None`.
    pub async fn committed_offsets(
        &self,
        group: &str,
        topics: Option<&BTreeMap<String, Vec<i32>>>,
    ) -> Result<PerPartition<CommittedOffset>, BackendError> {
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
            .with_topics(topics.map(|topics| {
                topics
                    .iter()
                    .map(|(name, partitions)| {
                        OffsetFetchRequestTopic::default()
                            .with_name(TopicName(StrBytes::from_string(name.clone())))
                            .with_partition_indexes(partitions.clone())
                    })
                    .collect()
            }));
        let mut attempt = 0;
        let response = loop {
            attempt += 1;
            let result = self
                .send_to_coordinator(group, &request, OFFSET_FETCH_VERSIONS)
                .await;
            let code = match &result {
                Ok(r) => r.error_code,
                Err(_) => 0,
            };
            let moved = matches!(
                code,
                ERR_NOT_COORDINATOR
                    | ERR_COORDINATOR_NOT_AVAILABLE
                    | ERR_COORDINATOR_LOAD_IN_PROGRESS
            );
            if (moved || result.is_err()) && attempt < 3 {
                self.forget_coordinator(group);
                if code == ERR_COORDINATOR_LOAD_IN_PROGRESS {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                continue;
            }
            let response = result?;
            if response.error_code != 0 {
                return Err(broker_error(
                    format!("error listing offsets of consumer group {group}"),
                    response.error_code,
                ));
            }
            break response;
        };
        let mut out = PerPartition::new();
        for topic in response.topics {
            let name = topic.name.0.to_string();
            for p in topic.partitions {
                out.entry(name.clone()).or_default().insert(
                    p.partition_index,
                    CommittedOffset {
                        offset: p.committed_offset,
                        error_code: p.error_code,
                    },
                );
            }
        }
        Ok(out)
    }

    /// Open broker connections of this client (for tests and debugging).
    pub fn connection_count(&self) -> usize {
        locked(&self.connections).len()
    }
}

impl PooledClient for KafkaClient {
    type Key = KafkaEndpoint;
    const KIND: &'static str = "kafka";
}
