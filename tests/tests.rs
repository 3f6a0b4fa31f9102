//! The integration tests: one binary, one module per behaviour. Each test runs the
//! real `wsrec` binary (`WSREC_BIN`, else the one cargo built) against a real server
//! on 127.0.0.1 and checks the files, the log, the status socket or the exit code.
//!
//! Where a test goes (the module of the behaviour it checks, not of the code it
//! happens to exercise):
//!
//! - `cli`: flags, `--help`/`--version`, config errors, the default config file, the
//!   shipped examples, the quick start.
//! - `recording`: what lands in the files: verbatim, in order, in the right hour's
//!   file; rotation; timestamped lines; the clock.
//! - `frames`: frames as they arrive: bad frames, binary frames and their decoding,
//!   size limits.
//! - `keepalive`: pings either way, heartbeat replies, staleness.
//! - `connect`: connecting, subscribing, reconnecting, back-off, `ws_url_command`.
//! - `routing`: several topics on one connection and which file a message goes to.
//! - `shutdown`: SIGTERM and SIGKILL, what is flushed and what is kept.
//! - `close_window`: frames that arrive after SIGTERM, text and binary alike.
//! - `disk`: the output directory and the disk: full, deleted, files moved away.
//! - `tls`: wss:// and the trust stores.
//! - `status`: `--status`, the status socket, exit codes for monitoring, the metrics
//!   file.
//! - `coverage`: the coverage journal and `wsrec gaps`.
//! - `handover`: gaps avoided and stated: planned reconnects (notices,
//!   `max_connection_age`) handed over make-before-break, a 1001 close, `data_timeout`.
//! - `redundant`: two lines (`redundant`, `ws_url_b`), first arrival wins: resets of
//!   either line lose and duplicate nothing, a gap only where both were down, a line
//!   refused is a degraded status.
//! - `resume`: resume by cursor (`cursor`) against a Jetstream-like server: a drop,
//!   a SIGTERM and a SIGKILL lose nothing and write nothing twice.
//! - `sequence`: sequence checks (`sequence`): injected breaks are the sequence gaps
//!   of `wsrec gaps`, `--status --json` and the metrics file; a documented reset is
//!   not one.
//! - `operate`: deploy/ (systemd units, cron, logrotate) and log rotation.
//! - `compress`: `scripts/compress-closed-hours`.
//! - `archive`: `scripts/ship-closed-hours` against a real S3 server (moto) with
//!   rclone, and docs/analysis.md's examples run on a compressed recording.
//! - `newcomer`: a newcomer's first minutes: the start line, short flags, usage
//!   errors, why `--status` is unhealthy.
//! - `peers`: servers no one here wrote (Python `websockets`, Node `ws`).
//! - `presets`: every venue preset (`wsrec init NAME`) against an imitation of its
//!   venue (tests/venues/sim.py), and against the unit and cron job that install it.
//!
//! A new behaviour gets a new file `tests/NAME.rs` starting with `use
//! crate::common::*;` and a `mod NAME;` line here. A file in tests/ without one runs
//! nowhere (Cargo.toml has `autotests = false`): `layout::every_test_file_is_compiled`
//! fails then. Helpers used by more than one module go in `common`. A test whose
//! dependency is missing fails (`common::missing`); `scripts/install-test-deps`
//! installs them all.
//!
//! Run one module with `cargo test --test integration keepalive::`.

mod common;

mod archive;
mod cli;
mod close_window;
mod compress;
mod connect;
mod coverage;
mod disk;
mod frames;
mod handover;
mod keepalive;
mod layout;
mod newcomer;
mod operate;
mod peers;
mod presets;
mod recording;
mod redundant;
mod resume;
mod routing;
mod sequence;
mod shutdown;
mod status;
mod tls;
