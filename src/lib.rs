//! wsrec: a WebSocket recorder. A reader thread owns the connection, a bounded channel
//! carries batches of finished lines to a writer thread that appends them to hourly
//! files, and a status thread answers `--status` on a Unix socket.
//!
//! Everything is crate-private, so that rustc reports dead code; the binary calls
//! [`main`], and the JSON check is public for `examples/check_speed.rs`.
//!
//! # Layout
//!
//! One job per module; a message goes reader -> `message` -> batch -> channel -> writer.
//!
//! - `app`: wiring: loads the config, runs a tool or `--status`, or starts the threads
//!   of a recording and shuts them down in order.
//! - `cli`: the command line (argh), with the Go streamer's single-dash spellings.
//! - `config`: the config file: each field declared once, validated, with the
//!   mechanisms' parsed specs kept; `config::url` (the endpoint), `config::subscribe`
//!   (subscribe messages for the topics).
//! - `message`: each message's fate (`message::Judge`): the JSON check
//!   ([`jsonline`]), and one file per mechanism: `decode` (binary frames), `pong`,
//!   `heartbeat` (replies), `route_ids`, `template`, `sequence` (sequence gaps),
//!   `cursor` (resume by cursor); `route` decides the file.
//! - `reader`: the reader thread: `connect` (TCP, TLS, handshake), `session` (one
//!   connection's read loop, keep-alive, staleness, the close window), `lines` (batch
//!   assembly from the verdicts), `backoff` (reconnect delays), `handover`
//!   (make-before-break), `redundant` (two lines at once, first arrival wins).
//! - `batch`: what crosses the channel, and the back-pressure policy (`on_full`).
//! - `writer`: the writer thread: hourly files (`hourfile`), rotation, retries, fsync,
//!   files compressed by cron (`closed`).
//! - `status`: the counters and gauges (`counters`), the `--status` socket (`server`)
//!   and client (`probe`), the Prometheus file (`metrics`).
//! - `journal`: the coverage journal (`coverage`) and `wsrec gaps` (`gaps`).
//! - `shutdown`: the one shutdown signal and its deadline.
//! - `clock`: wall-clock time, file periods, the intervals tests shorten.
//! - `presets`: `wsrec init NAME` configs for known venues.
//! - `logging`, `ratelimit`: the log, and log lines that could repeat per message.
//! - `error`: fatal errors; `exit_codes`: every exit status, in one enum.

#![warn(missing_docs)]

mod app;
mod batch;
mod cli;
mod clock;
mod config;
mod error;
mod exit_codes;
mod journal;
mod logging;
mod message;
mod presets;
mod ratelimit;
mod reader;
mod shutdown;
mod status;
mod writer;

pub use message::jsonline;

/// Parses the flags, runs, and turns the outcome into the process exit code.
pub fn main() -> std::process::ExitCode {
    let args = cli::parse();
    match app::run(args) {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("wsrec: {e}");
            std::process::ExitCode::from(e.code())
        }
    }
}
