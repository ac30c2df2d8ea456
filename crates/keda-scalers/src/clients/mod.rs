//! Backend clients of the families not yet moved into their own folders.

#[cfg(feature = "azure-servicebus")]
pub mod azure_servicebus;
#[cfg(feature = "external")]
pub mod external;
#[cfg(feature = "gcp-pubsub")]
pub mod gcp;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "rabbitmq")]
pub mod rabbitmq;
/// Plain HTTPS (hyper) for the cloud REST scalers.
#[cfg(any(feature = "azure-servicebus", feature = "gcp-pubsub"))]
pub mod rest;
#[cfg(feature = "aws-sqs-queue")]
pub mod sqs;
