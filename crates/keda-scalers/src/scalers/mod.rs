//! One module per scaler (or a folder per family once a family shares code).

pub mod aws;
pub mod rabbitmq;
pub mod redis;
