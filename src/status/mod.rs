//! The status side: the counters every thread updates, the socket server that answers
//! `--status`, the `--status` client, the Prometheus metrics file, and the periodic
//! report (the status line in the log, the metrics file rewritten).

pub(crate) mod counters;
pub(crate) mod metrics;
mod probe;
mod report;
mod server;

pub(crate) use counters::{Count, Stats};
pub(crate) use probe::query;
pub(crate) use report::Report;
pub(crate) use server::StatusServer;
