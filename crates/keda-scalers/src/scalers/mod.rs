//! One module per scaler (or a folder per family once a family shares code).

pub mod azure_servicebus;
pub mod external;
pub mod gcp_pubsub;
pub mod redis;
