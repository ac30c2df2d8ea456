//! Backend clients shared through [`crate::pools::Pools`]: one module per backend family, holding
//! its connection parameters, its identity type and its client.

pub mod azure_servicebus;
pub mod external;
pub mod gcp;
pub mod http;
pub mod redis;
