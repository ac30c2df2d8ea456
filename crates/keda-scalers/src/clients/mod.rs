//! Backend clients shared through [`crate::pools::Pools`]: one module per backend family, holding
//! its connection parameters, its identity type and its client.

pub mod rabbitmq;
pub mod redis;
pub mod sqs;
