//! The redis family: `redis`, `redis-cluster`, `redis-sentinel` (list length, [`list`]) and their
//! `-streams` variants ([`streams`]). This module holds what they share: connection parameters,
//! the backend identity that keys the pool, and the pooled client: one multiplexed connection per
//! identity for single nodes and sentinel masters, one cluster connection (one socket per node) for
//! clusters.

pub mod list;
pub mod streams;

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, ClientTlsConfig, Cmd, ConnectionAddr, FromRedisValue,
    IntoConnectionInfo, Pipeline, RedisConnectionInfo, RedisError, RedisFuture, RedisResult,
    ScriptInvocation, TlsCertificates, TlsMode, Value,
};

use crate::ScalerMetadata;
use crate::error::BackendError;
use crate::params::{Found, MetadataParser, parse_bool};
use crate::pools::PooledClient;
use crate::tls::{TlsSettings, ensure_crypto_provider};

/// Connect attempts give up after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A command without an answer after this long fails.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// KEDA's error texts for address assembly.
pub const ERR_UNEQUAL_HOSTS_AND_PORTS: &str =
    "not enough hosts or ports given. number of hosts should be equal to the number of ports";
/// See [`ERR_UNEQUAL_HOSTS_AND_PORTS`].
pub const ERR_NO_ADDRESSES: &str = "no addresses or hosts given. address should be a comma separated list of host:port or set the host/port values";

/// Which client a trigger type uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RedisTopology {
    /// `redis`: the first address only.
    Single,
    /// `redis-cluster`: all addresses are seed nodes; `databaseIndex` is ignored.
    Cluster,
    /// `redis-sentinel`: all addresses are sentinels serving `sentinelMaster`.
    Sentinel,
}

impl RedisTopology {
    /// The topology a trigger type names (`redis-cluster`, `redis-sentinel-streams`, …).
    pub fn of_trigger_type(trigger_type: &str) -> Self {
        if trigger_type.starts_with("redis-cluster") {
            Self::Cluster
        } else if trigger_type.starts_with("redis-sentinel") {
            Self::Sentinel
        } else {
            Self::Single
        }
    }

    /// The word KEDA uses in `connection to redis… failed`.
    fn failure_prefix(self) -> &'static str {
        match self {
            Self::Single => "connection to redis failed",
            Self::Cluster => "connection to redis cluster failed",
            Self::Sentinel => "connection to redis sentinel failed",
        }
    }
}

/// `host:port`, host without brackets.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// Host name or IP (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&join_host_port(&self.host, &self.port.to_string()))
    }
}

/// Go's `net.JoinHostPort`: brackets around hosts containing `:`.
pub fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Splits `host:port` (`[v6]:port` for IPv6). An empty host means this machine, as in Go.
pub fn split_host_port(address: &str) -> Result<HostPort, String> {
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("address {address:?}: missing ']'"))?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| format!("address {address:?}: missing port"))?;
        (host, port)
    } else {
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| format!("address {address:?}: missing port"))?;
        if host.contains(':') {
            return Err(format!("address {address:?}: too many colons"));
        }
        (host, port)
    };
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("address {address:?}: invalid port {port:?}"))?;
    let host = if host.is_empty() { "localhost" } else { host };
    Ok(HostPort {
        host: host.to_owned(),
        port,
    })
}

/// Everything that identifies one Redis backend. Scalers with equal endpoints share one client.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RedisEndpoint {
    /// Client kind.
    pub topology: RedisTopology,
    /// The node (single), seed nodes (cluster) or sentinels (sentinel).
    pub addresses: Vec<HostPort>,
    /// `SELECT`ed database; always 0 for clusters.
    pub database: i64,
    /// ACL user of the data nodes.
    pub username: Option<String>,
    /// Password of the data nodes.
    pub password: Option<String>,
    /// Master name (sentinel only).
    pub sentinel_master: Option<String>,
    /// ACL user of the sentinels (sentinel only).
    pub sentinel_username: Option<String>,
    /// Password of the sentinels (sentinel only).
    pub sentinel_password: Option<String>,
    /// TLS, when enabled.
    pub tls: Option<TlsSettings>,
}

impl RedisEndpoint {
    /// Where this endpoint points, without secrets, for logs and errors.
    pub fn describe(&self) -> String {
        let addresses = self
            .addresses
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        match self.topology {
            RedisTopology::Single => format!("redis {addresses} db {}", self.database),
            RedisTopology::Cluster => format!("redis cluster {addresses}"),
            RedisTopology::Sentinel => format!(
                "redis sentinel {addresses} master {:?} db {}",
                self.sentinel_master.as_deref().unwrap_or(""),
                self.database
            ),
        }
    }
}

impl fmt::Debug for RedisEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisEndpoint")
            .field("topology", &self.topology)
            .field("addresses", &self.addresses)
            .field("database", &self.database)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("sentinel_master", &self.sentinel_master)
            .field("sentinel_username", &self.sentinel_username)
            .field(
                "sentinel_password",
                &self.sentinel_password.as_ref().map(|_| "<redacted>"),
            )
            .field("tls", &self.tls)
            .finish()
    }
}

/// Reads the connection parameters shared by the redis scalers (address(es), host(s)/port(s),
/// credentials, sentinel settings, `enableTLS`/`tls` and TLS material) and checks them as KEDA's
/// `Validate()` does. Errors go into `p`; the returned endpoint is only meaningful when `p` has none.
/// The connection parameters every redis trigger type reads (KEDA's order).
#[derive(Debug, ScalerMetadata)]
pub struct ConnectionParams {
    #[param(name = "enableTLS")]
    enable_tls: Option<Found<String>>,
    #[param(name = "tls", from = AUTH_PARAMS)]
    tls_switch: Option<Found<String>>,
    #[param(name = "address", alias = "addresses", from = METADATA_AUTH_ENV)]
    addresses: Option<Found<Vec<String>>>,
    #[param(name = "username", from = METADATA_ENV_AUTH)]
    username: Option<String>,
    #[param(name = "password", from = METADATA_ENV_AUTH)]
    password: Option<String>,
    #[param(name = "sentinelUsername", from = METADATA_AUTH_ENV)]
    sentinel_username: Option<String>,
    #[param(name = "sentinelPassword", from = METADATA_AUTH_ENV)]
    sentinel_password: Option<String>,
    #[param(name = "sentinelMaster", from = METADATA_AUTH_ENV)]
    sentinel_master: Option<String>,
    #[param(name = "host", alias = "hosts", from = METADATA_ENV_AUTH)]
    hosts: Option<Found<Vec<String>>>,
    #[param(name = "port", alias = "ports", from = METADATA_ENV_AUTH)]
    ports: Option<Found<Vec<String>>>,
    #[param(name = "unsafeSsl", optional, default = false)]
    unsafe_ssl: bool,
    #[param(name = "Cert", alias = "cert", from = AUTH_PARAMS)]
    cert: Option<String>,
    #[param(name = "key", from = AUTH_PARAMS)]
    key: Option<String>,
    #[param(name = "keyPassword", from = AUTH_PARAMS)]
    key_password: Option<String>,
    #[param(name = "ca", from = AUTH_PARAMS)]
    ca: Option<String>,
}

/// Builds the endpoint from the parsed connection parameters, reporting problems to `p`.
pub fn parse_endpoint(
    p: &mut MetadataParser<'_>,
    connection: ConnectionParams,
    topology: RedisTopology,
    database: i64,
) -> RedisEndpoint {
    let ConnectionParams {
        enable_tls,
        tls_switch,
        addresses: addresses_found,
        username,
        password,
        sentinel_username,
        sentinel_password,
        sentinel_master,
        hosts,
        ports,
        unsafe_ssl,
        cert,
        key,
        key_password,
        ca,
    } = connection;

    let address_param = addresses_found
        .as_ref()
        .map(|f| f.name)
        .or(hosts.as_ref().map(|f| f.name))
        .unwrap_or("address");
    let mut addresses = addresses_found.map(|f| f.value).unwrap_or_default();
    let mut endpoint = RedisEndpoint {
        topology,
        addresses: Vec::new(),
        database: if topology == RedisTopology::Cluster {
            0
        } else {
            database
        },
        username,
        password,
        sentinel_master: None,
        sentinel_username: None,
        sentinel_password: None,
        tls: None,
    };
    if topology == RedisTopology::Sentinel {
        endpoint.sentinel_master = sentinel_master;
        endpoint.sentinel_username = sentinel_username;
        endpoint.sentinel_password = sentinel_password;
    }

    // Host/port pairs are appended after explicit addresses; one without the other adds nothing.
    if let (Some(hosts), Some(ports)) = (&hosts, &ports) {
        if hosts.value.len() != ports.value.len() {
            p.error(hosts.name, ERR_UNEQUAL_HOSTS_AND_PORTS);
            return endpoint;
        }
        for (host, port) in hosts.value.iter().zip(&ports.value) {
            addresses.push(join_host_port(host, port));
        }
    }
    if addresses.first().is_none_or(String::is_empty) {
        p.error(address_param, ERR_NO_ADDRESSES);
        return endpoint;
    }

    let tls_enabled = match (&enable_tls, &tls_switch) {
        (Some(_), Some(_)) => {
            p.error(
                "tls",
                "unable to set `tls` in both ScaledObject and TriggerAuthentication together",
            );
            false
        }
        (Some(found), None) => parse_bool(&found.value).unwrap_or_else(|cause| {
            p.error("enableTLS", format!("EnableTLS parsing error: {cause}"));
            false
        }),
        (None, Some(found)) => match found.value.as_str() {
            "enable" => true,
            "disable" => false,
            other => {
                p.error(
                    "tls",
                    format!("error incorrect TLS value given, got {other}"),
                );
                false
            }
        },
        (None, None) => false,
    };

    // A single node uses only the first address; later ones are never dialed, so not checked.
    let used = if topology == RedisTopology::Single {
        &addresses[..1]
    } else {
        &addresses[..]
    };
    for address in used {
        match split_host_port(address) {
            Ok(hp) => endpoint.addresses.push(hp),
            Err(message) => p.error(address_param, message),
        }
    }

    if tls_enabled {
        let settings = TlsSettings {
            cert,
            key,
            key_password,
            ca,
            unsafe_ssl,
        };
        if let Err(e) = settings.validate() {
            p.error(e.parameter, e.message);
        }
        endpoint.tls = Some(settings);
    }
    endpoint
}

/// A pooled Redis client.
pub struct RedisClient {
    conn: Conn,
    description: String,
}

enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(Box<SentinelConn>),
}

/// The sentinel client resolves the master on connect; after a connection error the cached
/// connection is dropped so the next call asks the sentinels again (and follows a failover).
struct SentinelConn {
    client: tokio::sync::Mutex<SentinelClient>,
    cached: Mutex<Option<MultiplexedConnection>>,
    config: AsyncConnectionConfig,
}

impl SentinelConn {
    async fn connection(&self) -> RedisResult<MultiplexedConnection> {
        if let Some(conn) = self.cached_connection() {
            return Ok(conn);
        }
        let mut client = self.client.lock().await;
        // Another caller may have connected while this one waited for the lock.
        if let Some(conn) = self.cached_connection() {
            return Ok(conn);
        }
        let conn = client
            .get_async_connection_with_config(&self.config)
            .await?;
        *self.cached.lock().unwrap_or_else(PoisonError::into_inner) = Some(conn.clone());
        Ok(conn)
    }

    fn cached_connection(&self) -> Option<MultiplexedConnection> {
        self.cached
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn forget_connection(&self) {
        *self.cached.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// One connection of whichever kind, so every redis API taking a connection works on all three.
enum AnyConn {
    Manager(ConnectionManager),
    Cluster(ClusterConnection),
    Multiplexed(MultiplexedConnection),
}

impl ConnectionLike for AnyConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Manager(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
            Self::Multiplexed(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Manager(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Multiplexed(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Manager(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
            Self::Multiplexed(c) => c.get_db(),
        }
    }
}

impl RedisClient {
    /// Connects to `endpoint` and checks the connection with `PING`. Errors carry KEDA's
    /// `connection to redis… failed: …` prefix.
    pub async fn connect(endpoint: &RedisEndpoint) -> Result<Self, BackendError> {
        let prefix = endpoint.topology.failure_prefix();
        let client = Self::open(endpoint)
            .await
            .map_err(|e| backend_error(&e).context(prefix))?;
        let pong: RedisResult<String> = client.query(&redis::cmd("PING")).await;
        pong.map_err(|e| backend_error(&e).context(prefix))?;
        tracing::debug!(endpoint = %client.description, "connected to redis");
        Ok(client)
    }

    async fn open(endpoint: &RedisEndpoint) -> RedisResult<Self> {
        if endpoint.tls.is_some() {
            ensure_crypto_provider();
        }
        let certificates = tls_certificates(endpoint.tls.as_ref())?;
        let description = endpoint.describe();
        let conn = match endpoint.topology {
            RedisTopology::Single => {
                let Some(first) = endpoint.addresses.first() else {
                    return Err(invalid_config("no address"));
                };
                let info = connection_info(first, endpoint.tls.as_ref())
                    .into_connection_info()?
                    .set_redis_settings(redis_settings(
                        endpoint.database,
                        endpoint.username.as_deref(),
                        endpoint.password.as_deref(),
                    ));
                let client = match certificates {
                    Some(certs) => Client::build_with_tls(info, certs)?,
                    None => Client::open(info)?,
                };
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    // Fail a poll fast while the server is down; the next poll reconnects.
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_secs(1));
                Conn::Single(ConnectionManager::new_with_config(client, config).await?)
            }
            RedisTopology::Cluster => {
                let nodes = endpoint
                    .addresses
                    .iter()
                    .map(|hp| ConnectionAddr::Tcp(hp.host.clone(), hp.port));
                let mut builder = ClusterClientBuilder::new(nodes)
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(RESPONSE_TIMEOUT)
                    .retries(1);
                if let Some(user) = &endpoint.username {
                    builder = builder.username(user);
                }
                if let Some(password) = &endpoint.password {
                    builder = builder.password(password);
                }
                if let Some(tls) = &endpoint.tls {
                    builder = builder.tls(tls_mode(tls));
                }
                if let Some(certs) = certificates {
                    builder = builder.certs(certs);
                }
                Conn::Cluster(builder.build()?.get_async_connection().await?)
            }
            RedisTopology::Sentinel => {
                let sentinels = endpoint
                    .addresses
                    .iter()
                    .map(|hp| connection_info(hp, endpoint.tls.as_ref()));
                let master = endpoint.sentinel_master.as_deref().unwrap_or_default();
                let mut builder =
                    SentinelClientBuilder::new(sentinels, master, SentinelServerType::Master)?
                        .set_client_to_redis_db(endpoint.database);
                if let Some(user) = &endpoint.username {
                    builder = builder.set_client_to_redis_username(user);
                }
                if let Some(password) = &endpoint.password {
                    builder = builder.set_client_to_redis_password(password);
                }
                if let Some(user) = &endpoint.sentinel_username {
                    builder = builder.set_client_to_sentinel_username(user);
                }
                if let Some(password) = &endpoint.sentinel_password {
                    builder = builder.set_client_to_sentinel_password(password);
                }
                // KEDA's failover client uses one TLS config for sentinels and the master.
                if let Some(tls) = &endpoint.tls {
                    builder = builder
                        .set_client_to_redis_tls_mode(tls_mode(tls))
                        .set_client_to_sentinel_tls_mode(tls_mode(tls));
                }
                if let Some(certs) = certificates {
                    builder = builder
                        .set_client_to_redis_certificates(certs.clone())
                        .set_client_to_sentinel_certificates(certs);
                }
                Conn::Sentinel(Box::new(SentinelConn {
                    client: tokio::sync::Mutex::new(builder.build()?),
                    cached: Mutex::new(None),
                    config: AsyncConnectionConfig::new()
                        .set_connection_timeout(Some(CONNECT_TIMEOUT))
                        .set_response_timeout(Some(RESPONSE_TIMEOUT)),
                }))
            }
        };
        Ok(Self { conn, description })
    }

    /// Where this client points (no secrets).
    pub fn description(&self) -> &str {
        &self.description
    }

    async fn connection(&self) -> RedisResult<AnyConn> {
        Ok(match &self.conn {
            Conn::Single(m) => AnyConn::Manager(m.clone()),
            Conn::Cluster(c) => AnyConn::Cluster(c.clone()),
            Conn::Sentinel(s) => AnyConn::Multiplexed(s.connection().await?),
        })
    }

    fn observe<T>(&self, result: &RedisResult<T>) {
        if let (Err(e), Conn::Sentinel(s)) = (result, &self.conn)
            && (e.is_io_error()
                || e.is_connection_dropped()
                || e.is_unrecoverable_error()
                || e.is_timeout())
        {
            s.forget_connection();
        }
    }

    /// Runs one command.
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        let mut conn = self.connection().await?;
        let result = cmd.query_async(&mut conn).await;
        self.observe(&result);
        result
    }

    /// Runs a Lua script (`EVALSHA`, loading it on `NOSCRIPT`).
    pub async fn invoke_script<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> RedisResult<T> {
        let mut conn = self.connection().await?;
        let result = invocation.invoke_async(&mut conn).await;
        self.observe(&result);
        result
    }
}

impl PooledClient for RedisClient {
    type Key = RedisEndpoint;
    const KIND: &'static str = "redis";
}

/// Classifies a redis error.
pub fn backend_error(e: &RedisError) -> BackendError {
    let message = e.to_string();
    if e.is_timeout() {
        BackendError::timeout(message)
    } else if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() {
        BackendError::connect(message)
    } else if matches!(
        e.kind(),
        redis::ErrorKind::AuthenticationFailed
            | redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm)
    ) || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"))
    {
        BackendError::auth(message)
    } else {
        BackendError::protocol(message)
    }
}

impl fmt::Debug for RedisClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisClient")
            .field("endpoint", &self.description)
            .finish_non_exhaustive()
    }
}

fn invalid_config(message: &'static str) -> RedisError {
    RedisError::from((redis::ErrorKind::InvalidClientConfig, message))
}

fn tls_mode(tls: &TlsSettings) -> TlsMode {
    if tls.unsafe_ssl {
        TlsMode::Insecure
    } else {
        TlsMode::Secure
    }
}

fn connection_info(hp: &HostPort, tls: Option<&TlsSettings>) -> ConnectionAddr {
    match tls {
        Some(tls) => ConnectionAddr::TcpTls {
            host: hp.host.clone(),
            port: hp.port,
            insecure: tls.unsafe_ssl,
            tls_params: None,
        },
        None => ConnectionAddr::Tcp(hp.host.clone(), hp.port),
    }
}

fn redis_settings(db: i64, username: Option<&str>, password: Option<&str>) -> RedisConnectionInfo {
    let mut settings = RedisConnectionInfo::default().set_db(db);
    if let Some(user) = username {
        settings = settings.set_username(user);
    }
    if let Some(password) = password {
        settings = settings.set_password(password);
    }
    settings
}

/// PEM material for the redis client. `None` when TLS is off or nothing beyond system roots is set.
fn tls_certificates(tls: Option<&TlsSettings>) -> RedisResult<Option<TlsCertificates>> {
    let Some(tls) = tls else {
        return Ok(None);
    };
    let to_redis = |e: crate::tls::TlsMaterialError| {
        RedisError::from((
            redis::ErrorKind::InvalidClientConfig,
            "invalid TLS material",
            format!("{}: {}", e.parameter, e.message),
        ))
    };
    let client_tls = tls.client_identity().map_err(to_redis)?;
    let root_cert = tls.ca_pem().map_err(to_redis)?;
    if client_tls.is_none() && root_cert.is_none() {
        return Ok(None);
    }
    Ok(Some(TlsCertificates {
        client_tls: client_tls.map(|id| ClientTlsConfig {
            client_cert: id.cert_pem,
            client_key: id.key_pem,
        }),
        root_cert,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_split_and_join() {
        assert_eq!(
            split_host_port("localhost:6379").unwrap(),
            HostPort {
                host: "localhost".into(),
                port: 6379
            }
        );
        assert_eq!(split_host_port(":7001").unwrap().host, "localhost");
        let v6 = split_host_port("[::1]:6380").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 6380));
        assert_eq!(v6.to_string(), "[::1]:6380");
        assert_eq!(join_host_port("::1", "1"), "[::1]:1");
        assert_eq!(join_host_port("a", "1"), "a:1");
        for bad in [
            "localhost",
            "a:b",
            "::1:6379",
            "[::1]6379",
            "a:70000",
            "[::1",
        ] {
            assert!(split_host_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoint_debug_hides_passwords() {
        let endpoint = RedisEndpoint {
            topology: RedisTopology::Sentinel,
            addresses: vec![],
            database: 0,
            username: None,
            password: Some("pw1".into()),
            sentinel_master: Some("m".into()),
            sentinel_username: None,
            sentinel_password: Some("pw2".into()),
            tls: None,
        };
        let printed = format!("{endpoint:?}");
        assert!(!printed.contains("pw1") && !printed.contains("pw2"));
        assert!(!endpoint.describe().contains("pw"));
    }
}
