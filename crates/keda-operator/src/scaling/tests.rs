//! Paused-time tests of the scaling runtime.
