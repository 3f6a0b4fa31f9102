//! wsrec: a WebSocket recorder. A reader thread owns the connection, a bounded channel
//! carries batches of finished lines to a writer thread that appends them to hourly
//! files, and a status thread answers `--status` on a Unix socket.

#![warn(missing_docs)]

pub mod app;
pub mod backoff;
pub mod batch;
pub mod cli;
pub mod clock;
pub mod config;
pub mod coverage;
pub mod error;
pub mod gaps;
pub mod hourfile;
pub mod jsonline;
pub mod logging;
pub mod metrics;
pub mod ratelimit;
pub mod reader;
pub mod stats;
pub mod status;
pub mod writer;
