//! The status side: the counters every thread updates, the socket server that answers
//! `--status`, the `--status` client, and the Prometheus metrics file.

pub(crate) mod counters;
pub(crate) mod metrics;
mod probe;
mod server;

pub(crate) use counters::{Count, Stats};
pub(crate) use probe::query;
pub(crate) use server::StatusServer;
