//! wsrec: a WebSocket recorder. A reader thread owns the connection, a bounded channel
//! carries batches of finished lines to a writer thread that appends them to hourly
//! files, and a status thread answers `--status` on a Unix socket.
//!
//! Everything is crate-private, so that rustc reports dead code; the binary calls
//! [`main`], and the JSON check is public for `examples/check_speed.rs`.

#![warn(missing_docs)]

mod app;
mod batch;
mod cli;
mod clock;
mod config;
mod error;
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
