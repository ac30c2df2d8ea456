//! One module per scaler (or a folder per family once a family shares code).

pub mod aws;
pub mod azure_servicebus;
pub mod cpu_memory;
pub mod cron;
pub mod cron_schedule;
pub mod external;
pub mod gcp_pubsub;
pub mod kafka;
pub mod metrics_api;
pub mod prometheus;
pub mod rabbitmq;
pub mod redis;
pub mod redis_streams;
