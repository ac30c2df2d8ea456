//! The keda-rs operator: one process with the controllers, one scheduler for every poll loop,
//! the scalers, the metric cache and the external-metrics API.

// Tests may unwrap; library code may not (workspace lint).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod auth;
pub mod config;
pub mod controllers;
pub mod events;
pub mod executor;
pub mod fallback;
pub mod hpa;
pub mod metric_cache;
pub mod metrics_api;
pub mod operator;
pub mod pause;
pub mod scaled_job;
pub mod scaler_metrics;
pub mod scaling;
pub mod status;
pub mod target;
pub mod telemetry;
