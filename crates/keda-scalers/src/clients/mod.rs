//! Backend clients shared through [`crate::pools::Pools`]: one module per backend family, holding
//! its connection parameters, its identity type and its client.

pub mod azure_servicebus;
pub mod external;
pub mod gcp;
pub mod http;
pub mod kafka;
pub mod rabbitmq;
pub mod redis;
/// Plain HTTPS (hyper) for the cloud REST scalers; `http` is the reqwest client of prometheus/metrics-api.
pub mod rest;
pub mod sqs;
