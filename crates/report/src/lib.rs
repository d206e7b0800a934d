//! What cf-allow tells the rest of the host after a run: a metrics file in the node_exporter
//! textfile-collector format ([`metrics`]), and the admin's `on_change` / `on_failure`
//! programs, run with the run's JSON document on stdin ([`hooks`]).

#![forbid(unsafe_code)]

pub mod hooks;
pub mod metrics;
