//! ScaledJob support: pure strategy math and Job construction, the rules shared with
//! `keda-rs validate`, and status helpers; the poll lives in `crate::scaling::scaled_job`.

pub mod job;
pub mod status;
pub mod strategy;
