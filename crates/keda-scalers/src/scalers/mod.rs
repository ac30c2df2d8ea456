//! Scalers of the families not yet moved into their own folders.

#[cfg(feature = "aws-sqs-queue")]
pub mod aws;
#[cfg(feature = "azure-servicebus")]
pub mod azure_servicebus;
#[cfg(feature = "cpu-memory")]
pub mod cpu_memory;
#[cfg(feature = "cron")]
pub mod cron;
#[cfg(feature = "cron")]
pub mod cron_schedule;
#[cfg(feature = "external")]
pub mod external;
#[cfg(feature = "gcp-pubsub")]
pub mod gcp_pubsub;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "metrics-api")]
pub mod metrics_api;
#[cfg(feature = "prometheus")]
pub mod prometheus;
#[cfg(feature = "rabbitmq")]
pub mod rabbitmq;
