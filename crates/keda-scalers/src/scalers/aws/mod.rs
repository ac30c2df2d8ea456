//! AWS scalers and what they share: credential resolution (spec §1.11).

pub mod auth;
pub mod sqs_queue;
