//! Log sinks: the log file (opened for append, so `logrotate`'s copytruncate is safe:
//! every write lands at the current end of the file), stdout, and stderr when it is a
//! terminal: someone who started wsrec by hand sees it connect, subscribe and open
//! its first file, instead of a silent prompt while the log goes to a file.

use std::fs::OpenOptions;
use std::io::IsTerminal;

use simplelog::{CombinedLogger, ConfigBuilder, LevelFilter, SharedLogger, WriteLogger};

use std::path::Path;

use crate::config::{ConfigError, Operations};
use crate::error::Fatal;

/// Installs the loggers the config (at `path`) asks for; `debug` forces stdout and
/// debug level.
/// When the log goes to neither stdout nor a terminal, the log is only in the file.
pub(crate) fn init(ops: &Operations, path: &Path, debug: bool) -> Result<(), Fatal> {
    let level = if debug {
        LevelFilter::Debug
    } else {
        LevelFilter::Info
    };
    let mut builder = ConfigBuilder::new();
    builder
        .set_time_format_rfc3339()
        .set_thread_level(LevelFilter::Off)
        .set_target_level(LevelFilter::Off);
    // Only our own records: the TLS and WebSocket crates log internals at debug level.
    builder.add_filter_allow_str("wsrec");
    let config = builder.build();
    let mut loggers: Vec<Box<dyn SharedLogger>> = Vec::new();
    if let Some(log) = &ops.log_file {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| {
                ConfigError::field(
                    path,
                    "log_file",
                    format!("cannot open {}: {e}", log.display()),
                )
            })?;
        loggers.push(WriteLogger::new(level, config.clone(), file));
    }
    if ops.log_to_stdout || debug {
        loggers.push(WriteLogger::new(level, config, std::io::stdout()));
    } else if std::io::stderr().is_terminal() {
        loggers.push(WriteLogger::new(level, config, std::io::stderr()));
    }
    if !loggers.is_empty() {
        CombinedLogger::init(loggers).map_err(|e| Fatal::Other(format!("logger: {e}")))?;
    }
    Ok(())
}
