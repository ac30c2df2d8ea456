//! ScaledJob support: pure strategy math and Job construction, the rules shared with
//! `keda-rs validate`, status helpers, and the poll loops.

pub mod job;
pub mod loops;
pub mod status;
pub mod strategy;
